# syntax=docker/dockerfile:1
# Multi-stage build: one small static (musl), non-root image per binary.
#   docker build --target verifier -t mcpgate-verifier .
#   docker build --target issuer   -t mcpgate-issuer .
# The binaries are static musl builds: no libc in the image, and host names
# (issuer, Redis) resolve through musl's own resolver, not glibc's NSS.
# Prebuilt path (no Rust builder stage): build the static binaries on the
# host, then use the *-prebuilt targets, which copy them into FROM scratch:
#   rustup target add x86_64-unknown-linux-musl   # and: apt-get install musl-tools
#   cargo build --release --target x86_64-unknown-linux-musl \
#     --no-default-features --features verifier --bin verifier
#   podman build --target verifier-prebuilt -t mcpgate-verifier .
# (.dockerignore lets exactly those two binaries through). Scratch images
# carry no CA bundle and the binaries refuse to start without one (their
# HTTPS client needs trust roots): mount one at
# /etc/ssl/certs/ca-certificates.crt, where it is found without further
# settings (or point SSL_CERT_FILE at it). The distroless targets include one.

ARG RUST_VERSION=1
ARG BIN_DIR=target/x86_64-unknown-linux-musl/release

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY proto ./proto
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
      --no-default-features --features verifier --bin verifier \
 && cargo build --release --locked --target x86_64-unknown-linux-musl \
      --no-default-features --features issuer --bin issuer

FROM gcr.io/distroless/static-debian12:nonroot AS verifier
COPY --from=builder /src/target/x86_64-unknown-linux-musl/release/verifier /usr/local/bin/verifier
USER 65532:65532
# 8091: /metrics, on loopback unless MCPGW_VERIFIER_METRICS_ADDR=0.0.0.0:8091.
EXPOSE 8081 9191 8091
ENTRYPOINT ["/usr/local/bin/verifier"]

FROM gcr.io/distroless/static-debian12:nonroot AS issuer
COPY --from=builder /src/target/x86_64-unknown-linux-musl/release/issuer /usr/local/bin/issuer
USER 65532:65532
# 8090: admin API and /metrics, on loopback unless admin_listen = "0.0.0.0:8090".
EXPOSE 8080 8090
ENTRYPOINT ["/usr/local/bin/issuer"]

FROM scratch AS verifier-prebuilt
ARG BIN_DIR
COPY ${BIN_DIR}/verifier /verifier
USER 65532:65532
# 8091: /metrics, on loopback unless MCPGW_VERIFIER_METRICS_ADDR=0.0.0.0:8091.
EXPOSE 8081 9191 8091
ENTRYPOINT ["/verifier"]

FROM scratch AS issuer-prebuilt
ARG BIN_DIR
COPY ${BIN_DIR}/issuer /issuer
USER 65532:65532
# 8090: admin API and /metrics, on loopback unless admin_listen = "0.0.0.0:8090".
EXPOSE 8080 8090
ENTRYPOINT ["/issuer"]
