#!/usr/bin/env bash
# Installs the pinned cargo-lambda (PyPI wheel: the binary plus the Zig toolchain it may use
# for cross builds; `cargo lambda watch` itself builds natively with cargo) into the ignored
# tests/lambda-fixtures/.venv. Idempotent; tests/lambda_target.rs runs it when needed.
set -euo pipefail
cd "$(dirname "$0")"
VERSION=1.9.2
if [ -x .venv/bin/cargo-lambda ] && .venv/bin/cargo-lambda lambda --version 2>/dev/null | grep -q " $VERSION "; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check "cargo-lambda==$VERSION"
.venv/bin/cargo-lambda lambda --version
