# syntax=docker/dockerfile:1
# AtlasMesh fleet stream workers: one binary (`atlasmesh`) for workers, API, migrations,
# simulator and bench. Multi-stage: build with the Rust toolchain, run on debian-slim.
#
#   docker build -t atlasmesh:local .
#
# Keep target/ and .stack/ out of the build context (a .dockerignore with `target` and
# `.stack` is recommended; the COPY lines below only take the sources either way).

# 1.95 is the toolchain this was last built with locally (workspace MSRV: 1.89).
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
# rdkafka is built from source (cmake-build); native-tls needs OpenSSL headers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake build-essential pkg-config libssl-dev libcurl4-openssl-dev zlib1g-dev libsasl2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY core core
COPY schemas schemas
COPY sinks sinks
COPY pipelines pipelines
COPY query-api query-api
COPY simulator simulator
COPY cli cli
COPY test-support test-support
COPY migrations migrations
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p atlasmesh \
 && install -D target/release/atlasmesh /out/atlasmesh

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 libcurl4 zlib1g libsasl2-2 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin atlasmesh
COPY --from=build /out/atlasmesh /usr/local/bin/atlasmesh
USER atlasmesh
# A fixed mmap threshold: glibc otherwise raises it to the size of the last large buffer freed
# (a full checkpoint's serialisation), and keeps such buffers in the heap after use (BENCHMARKS 6).
ENV GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072 \
    ATLASMESH_LOG_FORMAT=json \
    ATLASMESH_API__LISTEN=0.0.0.0:8080 \
    ATLASMESH_RUNNER__METRICS_LISTEN=0.0.0.0:9100
EXPOSE 8080 9100
ENTRYPOINT ["/usr/local/bin/atlasmesh"]
CMD ["worker"]
