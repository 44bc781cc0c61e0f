# The collector's image on Fly (fly/collector.toml): upstream's release with the shared config
# and the Fly overlay. Built by `flyctl deploy` with the repository as context.
FROM otel/opentelemetry-collector-contrib:0.161.0
COPY observability/otel-collector/config.yaml /etc/otelcol-contrib/config.yaml
COPY fly/collector.yaml /etc/otelcol-contrib/fly.yaml
# Fly mounts the queue volume owned by root, and the image (distroless, no shell) cannot chown
# it at start; the Machine is a VM of its own, so the collector runs as root there.
USER 0:0
CMD ["--config=/etc/otelcol-contrib/config.yaml", "--config=/etc/otelcol-contrib/fly.yaml"]
