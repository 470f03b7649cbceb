#!/usr/bin/env bash
# Interoperability suite: independent MCP clients against a real toolgate process in front
# of a real upstream REST API (the sample restaurant API, served by a second process).
# Installs what it needs into ignored folders of the repo; starts and stops every process.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"

cargo build --locked --quiet
bin="$root/target/debug/toolgate"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {
  local url="$1" tries=0
  until "$venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$url" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -gt 300 ]; then echo "interop: $url never became ready" >&2; exit 1; fi
    sleep 0.1
  done
}

upstream_port="$(free_port)"; upstream_mcp_port="$(free_port)"; gateway_port="$(free_port)"
cat > "$work/upstream.yaml" <<YAML
listen: 127.0.0.1:$upstream_mcp_port
demo: { listen: 127.0.0.1:$upstream_port }
YAML
cat > "$work/gateway.yaml" <<YAML
listen: 127.0.0.1:$gateway_port
gateway: { name: toolgate-interop, page_size: 2 }
targets:
  - name: restaurants
    openapi: { spec: $root/specs/restaurants.yaml, base_url: "http://127.0.0.1:$upstream_port/v1" }
    credentials: { api_key: { in: header, name: X-API-Key, value: demo-key } }
    timeout: 10s
YAML
"$bin" serve --config "$work/upstream.yaml" 2>"$work/upstream.log" & pids+=($!)
"$bin" serve --config "$work/gateway.yaml" 2>"$work/gateway.log" & pids+=($!)
wait_ready "http://127.0.0.1:$upstream_mcp_port/readyz"
wait_ready "http://127.0.0.1:$gateway_port/readyz"

url="http://127.0.0.1:$gateway_port/mcp"
status=0
"$venv/bin/python" "$here/python_client.py" "$url" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- gateway log ---" >&2; tail -n 50 "$work/gateway.log" >&2
  exit "$status"
fi
