#!/usr/bin/env bash
# Sets up and runs every test: unit tests of each crate, the integration tests (CLI contract,
# workflow cases, crash/resume), and the differential tests against aws-local-stepfunctions.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
source "$repo/scripts/setup.sh"
cd "$repo"

# The differential oracle (npm); `npm ci` is a no-op when node_modules matches the lock file.
if [ ! -d tests/oracle/node_modules ] || [ tests/oracle/package-lock.json -nt tests/oracle/node_modules ]; then
  (cd tests/oracle && npm ci --no-audit --no-fund --loglevel=error)
fi
export PIXELFLOW_REQUIRE_ORACLE=1

# Two cores: build once with both, run test binaries with both.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for every test binary together (cargo's last line is the doc-tests').
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
