# syntax=docker/dockerfile:1
# otp-harness container image: a release build of the harness on a slim Debian runtime, run as a
# non-root user. Used by docs/kubernetes/indexed-job.yaml; see docs/deploy.md.
#   docker build -t registry.example.test/otp-harness:0.1.0 .
#   docker run --rm registry.example.test/otp-harness:0.1.0 run /scenarios/nightly-imap.toml
# (mount the scenario at /scenarios and pass secrets through the environment, never the image).

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Only what the build reads (.dockerignore keeps the rest out): the manifest and lock file, the
# sources, and testdata/ (the Dovecot test config is compiled into the testkit).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY testdata ./testdata
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin otp-harness \
 && install -D -m 0755 target/release/otp-harness /out/otp-harness

FROM debian:bookworm-slim AS runtime
# ca-certificates only: TLS to Cognito, S3, SES and the IMAP server uses the system roots. The
# version follows the base image's security updates rather than a pin that would go stale.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 otp \
 && useradd --uid 10001 --gid otp --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin otp
COPY --from=build /out/otp-harness /usr/local/bin/otp-harness
COPY scenarios /usr/share/otp-harness/scenarios
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["otp-harness"]
CMD ["--help"]
