# Multi-stage build: compile with the Rust toolchain, run in a small image as a non-root user.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY config ./config
COPY sql ./sql
COPY benches ./benches
RUN cargo build --release --locked --bin rtc-quality-sync

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --create-home rtcsync
COPY --from=build /src/target/release/rtc-quality-sync /usr/local/bin/rtc-quality-sync
COPY --chown=rtcsync config /app/config
WORKDIR /app
USER 10001
ENTRYPOINT ["rtc-quality-sync"]
CMD ["sync"]
