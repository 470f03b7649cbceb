#!/usr/bin/env bash
# The tool-search benchmark in one command (see benches/search/README.md):
#   1. a venv under target/bench-search/venv with bfcl-eval (its data files only: --no-deps);
#   2. benches/search/prepare.py -> target/bench-search/bfcl.json;
#   3. the static embedding model (tests/search-model/install.sh, else $TOOLGATE_SEARCH_MODEL
#      or /tmp/search-model/minilm-static; without one, lexical only);
#   4. examples/search_eval.rs in release, with the vendored OpenAPI corpus as distractors.
# Markdown goes to stdout (and target/bench-search/report.md), the numbers to
# target/bench-search/report.json. Extra arguments go to the example, e.g.
#   benches/search/run.sh --pad-to 20000 --failures 40
#   benches/search/run.sh --distractors tests/corpus tests/sweep/specs
set -euo pipefail
cd "$(dirname "$0")/../.."

BFCL_VERSION=2026.3.23
work=target/bench-search
venv=$work/venv
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("bfcl-eval"))' 2>/dev/null)" != "$BFCL_VERSION" ]; then
  echo "bench-search: installing bfcl-eval==$BFCL_VERSION (data only, --no-deps)" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    "bfcl-eval==$BFCL_VERSION"
fi
data_dir=$("$venv/bin/python" -c 'import importlib.util, pathlib; s = importlib.util.find_spec("bfcl_eval"); print(pathlib.Path(list(s.submodule_search_locations)[0]) / "data")')
"$venv/bin/python" benches/search/prepare.py --data "$data_dir" --out "$work/bfcl.json"

model=
if [ -x tests/search-model/install.sh ]; then
  tests/search-model/install.sh >&2
  model=target/search-model/minilm-static
else
  model=${TOOLGATE_SEARCH_MODEL:-/tmp/search-model/minilm-static}
fi
model_args=()
if [ -f "$model/model.safetensors" ]; then
  model_args=(--model "$model")
else
  echo "bench-search: no model at $model: lexical ranking only" >&2
fi

# Distractors: the vendored corpus, unless the arguments name their own.
distractor_args=(--distractors tests/corpus/real tests/corpus/oai tests/corpus/features)
for arg in "$@"; do
  if [ "$arg" = --distractors ]; then distractor_args=(); fi
done

cargo build --release --locked --quiet --example search_eval
target/release/examples/search_eval --data "$work/bfcl.json" "${model_args[@]}" \
  "${distractor_args[@]}" --json "$work/report.json" "$@" | tee "$work/report.md"
