#!/usr/bin/env bash
# User-space instructions per request (valgrind --tool=callgrind) of toolgate `tools/call`,
# toolgate `tools/list` and the bare hyper proxy of examples/loadgen.rs, each in front of the
# same loopback upstream. Deterministic where wall-clock figures on a shared machine are not.
#
#   cargo build --profile profiling --bin toolgate      # symbols for the per-function profile
#   cargo build --release --example loadgen              # upstream + bare proxy
#   benches/profile/callgrind.sh [N]                     # N measured requests (default 2000)
#
# Results: target/callgrind/summary.txt, and callgrind.out files for callgrind_annotate /
# kcachegrind.
set -euo pipefail
N=${1:-2000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TG=${TOOLGATE:-$ROOT/target/profiling/toolgate}
LG=${LOADGEN:-$ROOT/target/release/examples/loadgen}
OUT=$ROOT/target/callgrind
DRIVE="python3 $ROOT/benches/profile/drive.py"
rm -rf "$OUT" && mkdir -p "$OUT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# await REGEX FILE...: waits (bounded: 120 s) until a FILE has a match; prints it.
await() {
  local re=$1; shift
  for _ in $(seq 1200); do
    if m=$(cat "$@" 2>/dev/null | grep -o -m1 -E "$re"); then echo "$m"; return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $re in $*" >&2; return 1
}

"$LG" __upstream > "$OUT/upstream.log" & pids+=($!)
UP=$(await '127\.0\.0\.1:[0-9]+' "$OUT/upstream.log")

cp "$ROOT/tests/fixtures/testapi.yaml" "$OUT/"
printf 'listen: 127.0.0.1:0\ntargets:\n  - name: api\n    openapi: {spec: testapi.yaml, base_url: "http://%s/api"}\n' "$UP" > "$OUT/gateway.yaml"

# measure NAME METHOD CMD...: runs CMD under callgrind, warms up, counts N requests.
measure() {
  local name=$1 method=$2; shift 2
  valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.out" \
    "$@" > "$OUT/$name.stdout" 2> "$OUT/$name.stderr" & local pid=$!
  pids+=($pid)
  local addr
  addr=$(await '(LISTENING |http://)127\.0\.0\.1:[0-9]+' "$OUT/$name.stdout" "$OUT/$name.stderr" | grep -o -E '127\.0\.0\.1:[0-9]+')
  $DRIVE "$addr" 200 "$method"
  callgrind_control -z "$pid" > /dev/null   # zero the counters after the warm-up
  $DRIVE "$addr" "$N" "$method"
  callgrind_control -d "$pid" > /dev/null
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local dump total
  dump="$OUT/$name.out.1"   # the dump taken after the N requests
  total=$(callgrind_annotate "$dump" 2>/dev/null | grep -m1 'PROGRAM TOTALS' | awk '{gsub(",","",$1); print $1}')
  printf '%-28s %12d instructions/request\n' "$name" $((total / N)) | tee -a "$OUT/summary.txt"
}

measure bare_hyper_proxy tools/call "$LG" __proxy "$UP"
measure toolgate_tools_call tools/call "$TG" serve --config "$OUT/gateway.yaml"
measure toolgate_tools_list tools/list "$TG" serve --config "$OUT/gateway.yaml"
echo "profiles: $OUT (callgrind_annotate --inclusive=yes $OUT/toolgate_tools_call.out.1)"
