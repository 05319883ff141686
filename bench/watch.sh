#!/usr/bin/env bash
# Watch-folder figures (issue 4): latency from a writer's close to the thumbnail on disk,
# throughput of a watched folder against `pixelflow run`, and the catch-up scan of a folder of
# already-processed files. Prints JSON; BENCHMARKS.md has the table.
#   LATENCY=200 THROUGHPUT=2000 CATCHUP=100000 ROUNDS=1 bash bench/watch.sh [--only latency|throughput|catchup]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
source "$repo/scripts/setup.sh"
cd "$repo"
cargo build --release --locked --bin pixelflow
bin="$CARGO_TARGET_DIR/release/pixelflow"

cache=$HOME/.cache/pixelflow
venv=$cache/test-venv
if ! "$venv/bin/python" -c 'import PIL' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/reference/requirements.txt
fi
corpus=${PIXELFLOW_CORPUS:-$cache/corpus}
[ -d "$corpus/photos" ] || bash "$repo/../shared/corpus.sh" "$corpus" >/dev/null
work=$(mktemp -d "${TMPDIR:-/tmp}/pixelflow-watch-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d)" >&2
"$venv/bin/python" bench/watch_bench.py --bin "$bin" --corpus "$corpus/photos" --work "$work" \
  --latency "${LATENCY:-200}" --throughput "${THROUGHPUT:-2000}" --catchup "${CATCHUP:-100000}" --rounds "${ROUNDS:-1}" "$@"
