# syntax=docker/dockerfile:1
# Verdant's operator and agent images, as a release pipeline with a registry builds them:
#
#   docker buildx build --target operator -t ghcr.io/verdant-dev/verdant-operator:0.1.0 --push .
#   docker buildx build --target agent    -t ghcr.io/verdant-dev/verdant-agent:0.1.0 --push .
#
# The tag is helm/verdant/Chart.yaml's appVersion, which the chart uses by default. Without
# a container engine, `make images` (hack/images.sh) builds equivalent images from the same
# release binaries and Debian packages, and loads them into the local node.

ARG RUST_VERSION=1.95
ARG VERSION=0.1.0
ARG REVISION=unknown

# --- build: the release binaries ----------------------------------------------------------
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p verdant-operator -p verdant-agent \
 && install -D -m 0755 target/release/verdant-operator /out/verdant-operator \
 && install -D -m 0755 target/release/verdant-agent /out/verdant-agent

# --- runtime: glibc, libgcc_s, CA certificates, tzdata; user nonroot (65532) -------------
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION
ARG REVISION
LABEL org.opencontainers.image.source="https://github.com/verdant-dev/verdant" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
WORKDIR /home/nonroot

FROM runtime AS operator
LABEL org.opencontainers.image.title="verdant-operator" \
      org.opencontainers.image.description="Verdant's Kubernetes operator: places distributed GPU training where renewable power is"
COPY --from=builder /out/verdant-operator /usr/local/bin/verdant-operator
ENTRYPOINT ["/usr/local/bin/verdant-operator"]

# The chart runs the agent as root (it reads /proc and the kubelet's pod-resources socket).
FROM runtime AS agent
LABEL org.opencontainers.image.title="verdant-agent" \
      org.opencontainers.image.description="Verdant's GPU node agent: samples power and utilization through NVML and reports to the operator"
COPY --from=builder /out/verdant-agent /usr/local/bin/verdant-agent
ENTRYPOINT ["/usr/local/bin/verdant-agent"]
