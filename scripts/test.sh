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

# The reference for resize quality: Pillow in a venv outside the clone, and real photos from
# Debian's wallpaper packages (../shared/corpus.sh; needs root for apt-get download).
cache=$HOME/.cache/pixelflow
venv=$cache/test-venv
if ! "$venv/bin/python" -c 'import PIL' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/reference/requirements.txt
fi
export PIXELFLOW_PYTHON=$venv/bin/python
corpus=${PIXELFLOW_CORPUS:-$cache/corpus}
if [ ! -f "$corpus/photos/lxqt_flowers.png" ] && [ -f "$repo/../shared/corpus.sh" ] && [ "$(id -u)" -eq 0 ]; then
  bash "$repo/../shared/corpus.sh" "$corpus" >/dev/null || echo "test.sh: warning: the photo corpus could not be built; the resize quality test is skipped" >&2
fi
if [ -f "$corpus/photos/lxqt_flowers.png" ]; then
  export PIXELFLOW_CORPUS=$corpus PIXELFLOW_REQUIRE_CORPUS=1
fi

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
