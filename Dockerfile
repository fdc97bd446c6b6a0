# Build:  docker build -t kenar-chat .
# Run:    docker run --env-file .env -v kenar-chat-data:/app/data -p 127.0.0.1:8080:8080 kenar-chat
#         (or use docker-compose.yml). With the default DATABASE_URL (SQLite) the database is a
#         file in /app/data: the named volume keeps it through `docker rm` and upgrades.
#
# Behind a registry mirror (Docker Hub may be unreachable), name the base images through it:
#   docker build --build-arg RUST_IMAGE=mirror.example.ir/library/rust:1-bookworm \
#                --build-arg RUNTIME_IMAGE=mirror.example.ir/library/debian:bookworm-slim -t kenar-chat .
# No `# syntax=` line on purpose: it makes BuildKit pull a frontend image from Docker Hub first.
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---- dependencies, cached as an ordinary layer ---------------------------------
# cargo-chef turns the workspace's manifests into a recipe; the dependencies it names are built
# in a layer of their own, reused as long as Cargo.toml/Cargo.lock do not change (no BuildKit
# cache mounts, which ephemeral CI builders lose).
FROM ${RUST_IMAGE} AS chef
RUN cargo install cargo-chef --locked --version ^0.1
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# No database at build time: sqlx macros must use offline metadata if any are used.
ENV SQLX_OFFLINE=true
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --no-default-features -p kenar-chat --recipe-path recipe.json
# Templates (askama) and migrations (sqlx::migrate!) are compiled into the binary. The production
# image has no simulated Divar: kenar-chat is built without its `sandbox` feature.
COPY . .
RUN cargo build --release --locked -p kenar-chat --no-default-features --bin kenar-chat \
    && install -D -m 0755 target/release/kenar-chat /out/kenar-chat

# ---- runtime -----------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 kenar \
    && useradd --system --uid 10001 --gid kenar --home-dir /app --no-create-home --shell /usr/sbin/nologin kenar \
    && mkdir -p /app/data \
    && chown kenar:kenar /app/data

WORKDIR /app
COPY --from=builder /out/kenar-chat /usr/local/bin/kenar-chat
COPY static /app/static

# Default DATABASE_URL (sqlite://data/kenar.db) resolves to /app/data, which is writable. A volume:
# a container started without `-v` still keeps its SQLite file outside the container's own layer
# (an anonymous volume that `docker rm` leaves behind; `docker volume ls` finds it).
VOLUME /app/data
ENV BIND_ADDR=0.0.0.0:8080 LOG_FORMAT=json
USER 10001:10001
EXPOSE 8080
# Ready = not draining, workers alive, database reachable (`/readyz`).
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 CMD ["kenar-chat", "healthcheck"]
# SIGTERM drains (KENAR_SHUTDOWN_DELAY + KENAR_SHUTDOWN_TIMEOUT, 35 s by default): give it that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["kenar-chat"]
CMD ["serve"]
