//! The drill's Alertmanager silence (scenario `silence:`): its removal registered (and, on
//! Kubernetes, journaled) first, then created before the load and the first fault; removed
//! with the other undos on every exit path, or by `recover` after a crash, and expiring by
//! itself past the drill's planned length if all of that fails.

use super::error::{DrillError, Refusal};
use super::timeline::Drill;
use crate::report::model::SilenceReport;
use crate::support::alertmanager::{Alertmanager, AlertmanagerError, NewSilence, SilenceUndo};
use crate::targets::Target;

/// The undo stack's name for the silence's removal.
pub(super) const SILENCE_STEP: &str = "silence";

impl<T: Target> Drill<'_, T> {
    /// Creates the scenario's silence, if it has one. An Alertmanager that refuses it refuses
    /// the drill (nothing changed) unless `silence.required: false`, which runs unsilenced.
    pub(super) async fn silence(&self, run_id: &str) -> Result<Option<SilenceReport>, DrillError> {
        let scenario = &self.loaded.scenario;
        let Some(spec) = &scenario.silence else {
            return Ok(None);
        };
        let spec = &spec.value;
        let url = spec.alertmanager.clone();
        let run = if run_id.is_empty() {
            format!("{:08x}", self.seed & 0xffff_ffff)
        } else {
            run_id.to_string()
        };
        let undo = SilenceUndo::for_run(&url, &run);
        let matchers = scenario.silence_matchers();
        let length = scenario.silence_length().map(|l| l.0).unwrap_or_default();
        let ends_at = self
            .started
            .checked_add(
                jiff::SignedDuration::try_from(length).unwrap_or(jiff::SignedDuration::MAX),
            )
            .unwrap_or(self.started);
        let mut comment = format!(
            "drill `{}` {} (drillbook removes it when the drill ends)",
            scenario.name.value, undo.marker
        );
        if let Some(words) = &spec.comment {
            comment = format!("{words}; {comment}");
        }
        // Registered (journaled) before it exists: a crash right after the POST still has
        // its way back.
        self.undo
            .register(SILENCE_STEP, T::Undo::from(undo.clone()))
            .map_err(Refusal::SilenceNotRecorded)?;
        let created = match Alertmanager::new(&url) {
            Ok(am) => {
                let silence = NewSilence {
                    matchers: matchers.clone(),
                    ends_at,
                    comment: comment.clone(),
                };
                am.create_silence(&silence).await
            }
            Err(e) => Err(e),
        };
        let id = match created {
            Ok(id) => id,
            Err(refused) => return self.unsilenced(spec.required, &undo, refused).await,
        };
        let silenced: Vec<String> = matchers.iter().map(ToString::to_string).collect();
        let kept_audible: Vec<String> = scenario
            .expected_alerts()
            .into_iter()
            .map(str::to_string)
            .collect();
        self.progress.note(format!(
            "silence {id} at {url}: {} until {ends_at}{}",
            silenced.join(", "),
            if kept_audible.is_empty() {
                String::new()
            } else {
                format!(" (kept audible: {})", kept_audible.join(", "))
            }
        ));
        Ok(Some(SilenceReport {
            alertmanager: url,
            id,
            silenced,
            kept_audible,
            expires_at: ends_at,
            comment,
        }))
    }

    /// The silence was not created: its registered removal runs now (an answer lost after a
    /// POST may still have created it) and leaves the stack once that succeeded; then the
    /// drill is refused, or runs without a silence when it is not required.
    async fn unsilenced(
        &self,
        required: bool,
        undo: &SilenceUndo,
        refused: AlertmanagerError,
    ) -> Result<Option<SilenceReport>, DrillError> {
        match undo.apply().await {
            Ok(_) => {
                if let Err(e) = self.undo.keep(SILENCE_STEP) {
                    tracing::warn!("the silence's removal stays registered: {e}");
                }
            }
            Err(e) => tracing::warn!(
                "could not make sure no silence was left ({e}); its removal stays registered"
            ),
        }
        if required {
            return Err(Refusal::Silence(refused).into());
        }
        let warning = format!("running without the silence (`silence.required: false`): {refused}");
        self.progress.note(warning.clone());
        if let Ok(mut warnings) = self.warnings.lock() {
            warnings.push(warning);
        }
        Ok(None)
    }
}
