//! Job tokens of both modes: stateless HS256 JWTs (job id in `sub`, expiry in `exp`) and legacy
//! random opaque tokens that only mean something to a proxy that registered them.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Default shared HMAC key of the lab. Not a secret: the lab only runs on loopback.
pub const DEFAULT_SIGNING_KEY: &str = "drillbook-lab-shared-signing-key";

/// Claims of a stateless job token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobClaims {
    /// The job id the token was minted for.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
}

/// Why a stateless token was refused. [`TokenRejection::reason`] is the metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// Not a JWT at all (e.g. a legacy opaque token).
    #[error("token is not a well-formed JWT")]
    Malformed,
    /// Signed with another key, or tampered with.
    #[error("token signature does not verify")]
    BadSignature,
    /// `exp` is in the past.
    #[error("token has expired")]
    Expired,
    /// Well-formed and signed, but otherwise invalid (wrong algorithm, missing claims).
    #[error("token is invalid")]
    Invalid,
}

impl TokenRejection {
    /// Every reason, so metrics can expose each series from the start.
    pub const ALL: [TokenRejection; 4] = [
        TokenRejection::Malformed,
        TokenRejection::BadSignature,
        TokenRejection::Expired,
        TokenRejection::Invalid,
    ];

    /// Short snake_case reason used in 401 bodies and metric labels.
    pub const fn reason(self) -> &'static str {
        match self {
            TokenRejection::Malformed => "malformed",
            TokenRejection::BadSignature => "bad_signature",
            TokenRejection::Expired => "expired",
            TokenRejection::Invalid => "invalid",
        }
    }
}

/// Minting a JWT failed (only possible with a broken crypto provider).
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the job token")]
pub struct SigningError(#[source] jsonwebtoken::errors::Error);

/// The shared HMAC key, ready to sign and verify.
#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material, not even in debug logs.
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// A key from the shared secret (`--signing-key` / `LAB_SIGNING_KEY`).
    pub fn from_secret(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // The lab drills expiry explicitly; no grace period hides an expired token.
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// Mints a JWT for `job_id`, valid for `ttl` from now.
    pub fn mint(&self, job_id: &str, ttl: Duration) -> Result<String, SigningError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = JobClaims {
            sub: job_id.to_owned(),
            exp: now.saturating_add(ttl.as_secs()),
            iat: now,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(SigningError)
    }

    /// Checks signature and expiry; returns the claims of a good token.
    pub fn verify(&self, token: &str) -> Result<JobClaims, TokenRejection> {
        jsonwebtoken::decode::<JobClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                ErrorKind::InvalidToken
                | ErrorKind::Base64(_)
                | ErrorKind::Json(_)
                | ErrorKind::Utf8(_) => TokenRejection::Malformed,
                ErrorKind::InvalidSignature => TokenRejection::BadSignature,
                ErrorKind::ExpiredSignature => TokenRejection::Expired,
                _ => TokenRejection::Invalid,
            })
    }
}

/// A random opaque legacy token: 32 hex digits from the thread-local CSPRNG.
pub fn opaque_token() -> String {
    random_hex::<16>()
}

/// A new unique job id with `prefix` (`job`, `caller`): unique across jobs-manager restarts.
pub fn new_job_id(prefix: &str) -> String {
    format!("{prefix}-{}", random_hex::<6>())
}

fn random_hex<const BYTES: usize>() -> String {
    let bytes: [u8; BYTES] = rand::random();
    bytes
        .iter()
        .fold(String::with_capacity(BYTES * 2), |mut hex, byte| {
            use fmt::Write as _;
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_token_verifies_with_the_same_key_only() {
        let key = SigningKey::from_secret("k1");
        let token = key.mint("job-1", Duration::from_secs(60)).expect("mint");
        assert_eq!(key.verify(&token).expect("verify").sub, "job-1");
        let other = SigningKey::from_secret("k2");
        assert_eq!(other.verify(&token), Err(TokenRejection::BadSignature));
    }

    #[test]
    fn tampered_expired_and_opaque_tokens_are_rejected_with_their_reason() {
        let key = SigningKey::from_secret("k");
        let token = key.mint("job-1", Duration::from_secs(60)).expect("mint");
        let mut tampered = token.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii token");
        assert_eq!(key.verify(&tampered), Err(TokenRejection::BadSignature));

        let past = JobClaims {
            sub: "job-2".into(),
            exp: 1_000,
            iat: 900,
        };
        let expired = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &past, &key.encoding)
            .expect("encode");
        assert_eq!(key.verify(&expired), Err(TokenRejection::Expired));

        assert_eq!(key.verify(&opaque_token()), Err(TokenRejection::Malformed));
    }

    #[test]
    fn opaque_tokens_and_job_ids_are_distinct_hex() {
        let token = opaque_token();
        assert_eq!(token.len(), 32);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(opaque_token(), token);
        assert!(new_job_id("job").starts_with("job-"));
    }
}
