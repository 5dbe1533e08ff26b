# syntax=docker/dockerfile:1
# Build stage: compile sluice in release mode.
FROM rust:1.91-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked && strip target/release/sluice

# Runtime stage: a small image with only the binary, CA roots and the default config.
FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
COPY config ./config
COPY pipelines ./pipelines
COPY schemas ./schemas
# Listen on all interfaces inside the container; Cloud Run sets PORT-based routing to 8080.
ENV SLUICE_LISTEN=0.0.0.0:8080 \
    SLUICE_LAKE=/tmp/lake
EXPOSE 8080
USER nonroot
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["run", "--config", "/app/config/sluice.yaml"]
