# syntax=docker/dockerfile:1
# Multi-stage build: one small static, non-root image per binary.
#   docker build --target verifier -t mcpgate-verifier .
#   docker build --target issuer   -t mcpgate-issuer .
# Offline / prebuilt path (no Rust builder needed): build a static binary on the
# host, then use the *-prebuilt targets, which copy it into FROM scratch:
#   RUSTFLAGS='-C target-feature=+crt-static' cargo build --release \
#     --target x86_64-unknown-linux-gnu --no-default-features --features verifier --bin verifier
#   podman build --target verifier-prebuilt \
#     --build-arg BIN_DIR=target/x86_64-unknown-linux-gnu/release -t mcpgate-verifier .
# (.dockerignore lets exactly those two binaries through)

ARG RUST_VERSION=1
ARG BIN_DIR=target/x86_64-unknown-linux-gnu/release

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY proto ./proto
ENV RUSTFLAGS="-C target-feature=+crt-static"
RUN cargo build --release --locked --target x86_64-unknown-linux-gnu \
      --no-default-features --features verifier --bin verifier \
 && cargo build --release --locked --target x86_64-unknown-linux-gnu \
      --no-default-features --features issuer --bin issuer

FROM gcr.io/distroless/static-debian12:nonroot AS verifier
COPY --from=builder /src/target/x86_64-unknown-linux-gnu/release/verifier /usr/local/bin/verifier
USER 65532:65532
EXPOSE 8081 9191
ENTRYPOINT ["/usr/local/bin/verifier"]

FROM gcr.io/distroless/static-debian12:nonroot AS issuer
COPY --from=builder /src/target/x86_64-unknown-linux-gnu/release/issuer /usr/local/bin/issuer
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/issuer"]

FROM scratch AS verifier-prebuilt
ARG BIN_DIR
COPY ${BIN_DIR}/verifier /verifier
USER 65532:65532
EXPOSE 8081 9191
ENTRYPOINT ["/verifier"]

FROM scratch AS issuer-prebuilt
ARG BIN_DIR
COPY ${BIN_DIR}/issuer /issuer
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/issuer"]
