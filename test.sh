#!/usr/bin/env bash
# The test command: Rust unit and integration tests, then the interoperability suite
# (official MCP clients against a real toolgate process). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")"
tests/lambda-fixtures/install.sh   # cargo-lambda (pip wheel) for tests/lambda_target.rs
cargo test --locked
tests/interop/run.sh
