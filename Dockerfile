# lotus-p2p in a container: built from this repository, run as a non-root
# user with its data (keys, API cookie, config.toml) in the /data volume.
#
#   docker build -t lotus-p2p --build-arg LOTUS_P2P_COMMIT=$(git rev-parse --short=12 HEAD) .
#   docker run -d --name lotus-p2p -p 4001:4001 -p 4002:4002 -v lotus-p2p:/data lotus-p2p
#   docker exec lotus-p2p lotus-p2p peers
#
# The HTTP API listens on 127.0.0.1:4010 inside the container (the CLI and
# the health check use it); publish it only with --api 0.0.0.0:4010 and a
# token you set (--api-token or LOTUS_P2P_API_TOKEN).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
ARG LOTUS_P2P_COMMIT=unknown
ENV LOTUS_P2P_COMMIT=${LOTUS_P2P_COMMIT}
RUN cargo build --release --locked -p p2p-node --bin lotus-p2p

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin lotus \
    && mkdir -p /data && chown lotus:lotus /data
COPY --from=build /src/target/release/lotus-p2p /usr/local/bin/lotus-p2p
COPY LICENSE-MIT LICENSE-APACHE /usr/share/doc/lotus-p2p/
USER lotus
ENV LOTUS_P2P_DATA_DIR=/data
VOLUME ["/data"]
# TCP and WebSocket listeners.
EXPOSE 4001 4002
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["lotus-p2p", "stats"]
ENTRYPOINT ["lotus-p2p"]
CMD ["run", "--json"]
