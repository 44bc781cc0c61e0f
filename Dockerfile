# Container images for the binaries: ampel-api, ampel-worker, and alert-catcher (the local
# stand-in for PagerDuty, Slack and SMTP that compose's Alertmanager notifies). Always pass a
# target:
#
#   docker build --target api    -t localhost/ampel/api:dev .       # compile inside the image
#   docker build --target worker -t localhost/ampel/worker:dev .
#
#   cargo build --release --locked -p ampel-api -p ampel-worker      # or compile on the host,
#   docker build --target api-prebuilt    -t localhost/ampel/api:dev .     # then only package
#   docker build --target worker-prebuilt -t localhost/ampel/worker:dev .  # target/release/*
#
# The *-prebuilt targets exist because some machines (CI here) cannot pull a rust: image; they
# need only RUNTIME_BASE. compose/compose.yaml builds these targets (AMPEL_APP_TARGET_SUFFIX=
# -prebuilt selects the *-prebuilt ones); `cargo xtask obs-up` drives it. alert-catcher and
# alert-catcher-prebuilt build the same way (`-p alert-catcher`).
#
# Stages:
#   skeleton          every workspace manifest, and a stub in place of every .rs file
#   builder           dependencies compiled against the skeleton (a layer that stays cached until
#                     a Cargo.toml or Cargo.lock changes), then the real sources
#   web               the dashboard's page (frontend/, `npm ci && npm run build`) on NODE_IMAGE
#   runtime           RUNTIME_BASE + ca-certificates + a non-root user
#   api, worker,      runtime + the binary from builder (api: + the page from web, in the
#   alert-catcher     folder its ENV AMPEL_WEB_DIR names; `cargo xtask check` holds them together)
#   *-prebuilt        runtime + the binary from the build context's target/release/
#                     (the host's glibc must not be newer than RUNTIME_BASE's: bookworm = 2.36);
#                     api-prebuilt also the page from the context's frontend/dist (build it on the
#                     host first: `npm ci && npm run build` in frontend/; obs-up does)

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_BASE=debian:bookworm-slim
ARG NODE_IMAGE=node:22-bookworm-slim

# ------------------------------------------------------------------------------------ skeleton
# A dummy workspace with the same manifests and lock file. Every .rs file becomes a stub, so any
# target path a manifest names (src/main.rs, src/bin/*.rs, tests/*/main.rs, build.rs) exists. The
# output depends on manifests and file names only; editing code leaves it byte-identical, so the
# COPY --from below stays a cache hit. (Same idea as cargo-chef, without installing a tool.)
# `#![allow(warnings)]` keeps the stubs clean under workspace lints such as missing_docs = "deny".
FROM ${RUST_IMAGE} AS skeleton
WORKDIR /src
COPY . .
RUN set -eu; \
    mkdir -p /skeleton; \
    find . -path ./target -prune -o \
        \( -name Cargo.toml -o -name Cargo.lock -o -path ./.cargo/config.toml \) -type f -print \
        | xargs cp --parents -t /skeleton; \
    find . -path ./target -prune -o -name '*.rs' -type f -print | while read -r f; do \
        mkdir -p "/skeleton/$(dirname "$f")"; \
        printf '#![allow(warnings)]\nfn main() {}\n' > "/skeleton/$f"; \
    done

# ------------------------------------------------------------------------------------- builder
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# Outside /src so that host binaries in the context (target/release/, for the *-prebuilt
# targets) never mix with this build's output. SQLX_OFFLINE: sqlx macros use the committed
# .sqlx/ data instead of a live database.
ENV CARGO_TARGET_DIR=/build/target \
    CARGO_TERM_COLOR=never \
    SQLX_OFFLINE=true
COPY --from=skeleton /skeleton/ ./
RUN cargo build --release --locked -p ampel-api -p ampel-worker -p alert-catcher
COPY . .
# COPY keeps the context's mtimes, which can be older than the stub build: touch the sources so
# cargo rebuilds the workspace crates (dependencies stay compiled).
RUN find . -path ./target -prune -o -name '*.rs' -type f -exec touch {} + \
 && cargo build --release --locked -p ampel-api -p ampel-worker -p alert-catcher \
 && mkdir -p /out \
 && cp /build/target/release/ampel-api /build/target/release/ampel-worker \
       /build/target/release/alert-catcher /out/

# ----------------------------------------------------------------------------------------- web
# The lock file alone first, so the installed modules stay cached until it changes.
FROM ${NODE_IMAGE} AS web
WORKDIR /web
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

# ------------------------------------------------------------------------------------- runtime
FROM ${RUNTIME_BASE} AS runtime
# ca-certificates: the worker calls the Git provider over HTTPS (rustls reads the system roots).
# No curl: the compose healthchecks fall back to bash's /dev/tcp.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ampel \
 && useradd --system --uid 10001 --gid ampel --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin ampel
USER 10001:10001
ENV RUST_LOG=info

# ---------------------------------------------------------------------- images built from source
FROM runtime AS api
COPY --from=builder /out/ampel-api /usr/local/bin/ampel-api
COPY --from=web /web/dist /usr/local/share/ampel/web
ENV API_LISTEN_ADDR=0.0.0.0:8080 AMPEL_WEB_DIR=/usr/local/share/ampel/web
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ampel-api"]

FROM runtime AS worker
COPY --from=builder /out/ampel-worker /usr/local/bin/ampel-worker
ENV WORKER_LISTEN_ADDR=0.0.0.0:8081
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/ampel-worker"]

# HTTP (PagerDuty, Slack, the list of what arrived) on 9095, SMTP on 2525.
FROM runtime AS alert-catcher
COPY --from=builder /out/alert-catcher /usr/local/bin/alert-catcher
ENV ALERT_CATCHER_LISTEN_ADDR=0.0.0.0:9095 ALERT_CATCHER_SMTP_LISTEN_ADDR=0.0.0.0:2525
EXPOSE 9095 2525
ENTRYPOINT ["/usr/local/bin/alert-catcher"]

# --------------------------------------------------------------- images from host-built binaries
FROM runtime AS api-prebuilt
COPY target/release/ampel-api /usr/local/bin/ampel-api
COPY frontend/dist /usr/local/share/ampel/web
ENV API_LISTEN_ADDR=0.0.0.0:8080 AMPEL_WEB_DIR=/usr/local/share/ampel/web
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ampel-api"]

FROM runtime AS worker-prebuilt
COPY target/release/ampel-worker /usr/local/bin/ampel-worker
ENV WORKER_LISTEN_ADDR=0.0.0.0:8081
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/ampel-worker"]

FROM runtime AS alert-catcher-prebuilt
COPY target/release/alert-catcher /usr/local/bin/alert-catcher
ENV ALERT_CATCHER_LISTEN_ADDR=0.0.0.0:9095 ALERT_CATCHER_SMTP_LISTEN_ADDR=0.0.0.0:2525
EXPOSE 9095 2525
ENTRYPOINT ["/usr/local/bin/alert-catcher"]
