# Dockerfile -- StreamDb server image (README.md "Running in Docker").
#
#   docker build -t streamdb .
#   docker run -d --name streamdb -p 7878:7878 -e STREAMDB_TOKEN=secret \
#       -v streamdb-data:/var/lib/streamdb streamdb
#
# Stage 1 builds with the -dev packages and `make install` into /out (it does
# not run the tests); stage 2 holds only the runtime libraries, the binaries,
# the config and the entry point, and runs as the unprivileged user streamdb
# (uid/gid 7878).  The config (/etc/streamdb/streamdbd.json, overridable by a
# mount) listens on 0.0.0.0:7878, so a token is required: see
# docker/entrypoint.sh for the ways to pass one.
ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config zlib1g-dev libuv1-dev libcjson-dev check \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j"$(nproc)" \
    && make install DESTDIR=/out PREFIX=/usr/local \
    && sed -i 's|"listen": *"[^"]*"|"listen": "0.0.0.0:7878"|' /out/etc/streamdb/streamdbd.json \
    && grep -q '"listen": "0.0.0.0:7878"' /out/etc/streamdb/streamdbd.json

FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libuv1 libcjson1 zlib1g \
    && apt-get clean && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 7878 streamdb \
    && useradd --system --uid 7878 --gid streamdb --home-dir /var/lib/streamdb \
        --no-create-home --shell /usr/sbin/nologin streamdb \
    && install -d -o streamdb -g streamdb -m 0700 /var/lib/streamdb \
    && install -d -o streamdb -g streamdb -m 0755 /run/streamdb
COPY --from=build /out/usr/local/bin/ /usr/local/bin/
COPY --from=build /out/etc/streamdb/streamdbd.json /etc/streamdb/streamdbd.json
COPY docker/entrypoint.sh /usr/local/bin/streamdb-entrypoint
# Both binaries must be there (the HEALTHCHECK uses the CLI) and find their
# libraries in this stage, not only in the build stage.
RUN for f in /usr/local/bin/streamdbd /usr/local/bin/streamdb; do \
        test -x "$f" || { echo "missing $f" >&2; exit 1; }; \
        if ldd "$f" | grep 'not found'; then exit 1; fi; \
    done \
    && streamdbd --version
USER streamdb:streamdb
WORKDIR /var/lib/streamdb
VOLUME /var/lib/streamdb
EXPOSE 7878
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/streamdb-entrypoint", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/streamdb-entrypoint"]
