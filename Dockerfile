# syntax=docker/dockerfile:1
# Build:  docker build -t kenar-chat .
# Run:    docker run --env-file .env -p 8080:8080 kenar-chat   (or use docker-compose.yml)

# ---- builder -----------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
# No database at build time: sqlx macros must use offline metadata if any are used.
ENV SQLX_OFFLINE=true
COPY . .
# BuildKit cache mounts keep the cargo registry and compiled dependencies between
# builds, so a source change only recompiles this crate. Templates (askama) and
# migrations (sqlx::migrate!) are compiled into the binary. The production image
# has no simulated Divar: kenar-chat is built without its `sandbox` feature.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kenar-chat --no-default-features --bin kenar-chat \
    && install -D -m 0755 target/release/kenar-chat /out/kenar-chat

# ---- runtime -----------------------------------------------------------------
FROM debian:bookworm-slim
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

# Default DATABASE_URL (sqlite://data/kenar.db) resolves to /app/data, which is writable.
ENV BIND_ADDR=0.0.0.0:8080
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["kenar-chat"]
CMD ["serve"]
