# drillbook for scheduled in-cluster drills (`drillbook schedule` renders the CronJob that runs
# this image). Build: docker build -t registry.example/drillbook:0.1.0 .
#
# Stage 1 builds the release binary; stage 2 is distroless (glibc + libgcc, no shell, no package
# manager) and runs as the distroless `nonroot` user (65532), matching the CronJob's
# securityContext (runAsNonRoot, read-only root filesystem; reports and the undo journal go to
# an emptyDir at /tmp/drillbook).
#
# Note: helm_upgrade and kubectl `command` steps need those binaries, which this image does not
# ship; scenarios scheduled with this image should use the API-based steps (kill_pods, evict,
# scale, patch_env, patch_configmap, rollout_restart, waits) or extend the final stage.

# Same Debian release as the runtime image, so the binary's glibc requirement is met.
FROM rust:1.95-bookworm AS build
# aws-lc-sys (the TLS crypto provider) compiles C code; cmake covers its fallback build path.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake clang \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so source edits do not rebuild them: build a stub against the lockfile.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin drillbook \
    && rm -rf src
COPY src ./src
# The stub's build is newer than the copied sources; touch them so cargo rebuilds the crate.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin drillbook \
    && ./target/release/drillbook --version

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/drillbook /usr/local/bin/drillbook
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/drillbook"]
CMD ["--help"]
