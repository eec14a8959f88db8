# rancher-cert-guard: a FROM-scratch image holding one static binary.
#
# Two ways to build it:
#   offline, from a binary built on the host (what CI, the tests and the demo use):
#       ./scripts/build-image.sh            # -> rancher-cert-guard:local
#   from source, with a registry to pull the Rust toolchain from:
#       docker build -t rancher-cert-guard .
#
# The offline stage comes first on purpose: the classic builder builds the stages up to
# --target in order and never reaches the registry stage below it.
#
# Keep the metadata blocks of the two final stages identical.

ARG VERSION=0.1.0
ARG REVISION=unknown

# ---------------------------------------------------------------- offline (--target local)
# Context prepared by scripts/build-image.sh: the static binary, and rootfs/ with an empty
# tmp/ (mode 1777) and an empty backups/ (mode 0700: a fresh named volume mounted there takes
# that mode).
FROM scratch AS local
ARG VERSION
ARG REVISION
COPY rootfs/ /
COPY rancher-cert-guard /rancher-cert-guard
LABEL org.opencontainers.image.title="rancher-cert-guard" \
      org.opencontainers.image.description="Keeps a Rancher single-node Docker install alive when the certificates of its embedded K3s expire" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENV CERT_GUARD_LISTEN=0.0.0.0:9795 \
    CERT_GUARD_ADDR_FILE=/tmp/rancher-cert-guard.addr
EXPOSE 9795
# `healthcheck` reads the address `watch` really bound from the address file, so it works
# whatever --listen the user passed in `command:`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/rancher-cert-guard", "healthcheck"]
ENTRYPOINT ["/rancher-cert-guard"]
CMD ["watch"]

# ---------------------------------------------------------------- from source
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN arch="$(uname -m)-unknown-linux-gnu" \
 && RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked -p rancher-cert-guard --target "$arch" \
 && mkdir -p /out/tmp /out/backups && chmod 1777 /out/tmp && chmod 700 /out/backups \
 && cp "target/$arch/release/rancher-cert-guard" /out/rancher-cert-guard

# ---------------------------------------------------------------- default: from source
FROM scratch
ARG VERSION
ARG REVISION
COPY --from=build /out/ /
LABEL org.opencontainers.image.title="rancher-cert-guard" \
      org.opencontainers.image.description="Keeps a Rancher single-node Docker install alive when the certificates of its embedded K3s expire" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENV CERT_GUARD_LISTEN=0.0.0.0:9795 \
    CERT_GUARD_ADDR_FILE=/tmp/rancher-cert-guard.addr
EXPOSE 9795
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/rancher-cert-guard", "healthcheck"]
ENTRYPOINT ["/rancher-cert-guard"]
CMD ["watch"]
