# Build stage: compile the release binary.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked

# Runtime stage: a small image with the binary, run as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --create-home app
COPY --from=build /src/target/release/session-service /usr/local/bin/session-service
USER app
WORKDIR /app
ENV HOST=0.0.0.0 \
    PORT=3000 \
    DATABASE_URL=sqlite:///app/data/sessions.db \
    LOG_FORMAT=json
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/session-service"]
