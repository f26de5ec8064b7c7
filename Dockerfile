# Herald container image: the static binary on an empty base.
#
# Base images cannot be pulled everywhere Herald is built, so this image
# needs none: `make image` compiles the static binary (CGO off) and stages
# it, the default config and the CA bundle in $(IMAGE_CONTEXT), then runs
#   podman build --format docker -f Dockerfile $(IMAGE_CONTEXT)
# (--format docker keeps the HEALTHCHECK, which the OCI format drops).
#
# Configure with HERALD_* variables (HERALD_API__KEY, HERALD_FANOUT__REDIS__SHARDS, ...)
# and/or a file mounted over /etc/herald/herald.yaml.
FROM scratch

ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown

LABEL org.opencontainers.image.title="herald" \
      org.opencontainers.image.description="Real-time edge: WebSocket and SSE fan-out with history and resume" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${DATE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/heraldrt/herald"

COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY herald.yaml /etc/herald/herald.yaml
COPY herald /usr/local/bin/herald

# No shell, no package manager, nothing writable: Herald keeps no files.
# 65532 is an unprivileged uid/gid with no home (the image has no passwd).
USER 65532:65532
WORKDIR /
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/herald", "health", "--config", "/etc/herald/herald.yaml"]

ENTRYPOINT ["/usr/local/bin/herald"]
CMD ["serve", "--config", "/etc/herald/herald.yaml"]
