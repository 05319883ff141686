#!/usr/bin/env bash
# Sets up and launches Pixelflow on its embedded default: the bundled reference workflow, the
# history in SQLite, and the watch and output folders under the user's data dir
# (~/.local/share/pixelflow). Until the desktop app lands this is the headless service.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
source "$repo/scripts/setup.sh"
cd "$repo"
cargo build --release --locked --bin pixelflow
bin="$CARGO_TARGET_DIR/release/pixelflow"
"$bin" paths
exec "$bin" watch "$@"
