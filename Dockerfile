# syntax=docker/dockerfile:1
# sluice container image: `docker build -t sluice .`, then `docker run --rm -p 8080:8080 sluice`.
# The shipped config (config/, pipelines/, schemas/) is baked in under /app; to use your own, mount it
# and point SLUICE_CONFIG (or `run --config`) at its sluice.yaml. tests/dockerfile.rs keeps this file
# and the README's "Container image" section in agreement; CI lints it with hadolint.

# Build stage: the release binary. Cache mounts keep the crate registry and target/ between builds.
FROM rust:1.91-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin sluice \
    && install -D -m 0755 target/release/sluice /out/sluice \
    && strip /out/sluice

# Runtime stage: glibc, CA roots and the binary; no shell, no package manager, a non-root user.
FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /out/sluice /usr/local/bin/sluice
COPY config ./config
COPY pipelines ./pipelines
COPY schemas ./schemas
# Listen on every interface inside the container (the health check probes loopback); the lake
# defaults to a scratch folder: set SLUICE_LAKE=gs://bucket/prefix in production.
ENV SLUICE_CONFIG=/app/config/sluice.yaml \
    SLUICE_LISTEN=0.0.0.0:8080 \
    SLUICE_LAKE=/tmp/lake
EXPOSE 8080
# distroless's "nonroot" user, numeric so the runtime can check it is not root.
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/sluice", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["run"]
