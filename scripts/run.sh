#!/usr/bin/env bash
# Sets up and launches Pixelflow on its embedded default: the bundled reference workflow, the
# history in SQLite, and the watch and output folders under the user's data dir
# (~/.local/share/pixelflow). With a display it opens the desktop app; without one (or with
# PIXELFLOW_HEADLESS=1) it runs the headless service instead.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
source "$repo/scripts/setup.sh"
cd "$repo"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ "${PIXELFLOW_HEADLESS:-0}" != 1 ]; then
  source "$repo/scripts/desktop.sh"
  desktop_deps
  build_ui
  cargo build --release --locked -p pixelflow-desktop
  exec "$CARGO_TARGET_DIR/release/pixelflow-desktop" "$@"
fi
echo "run.sh: no display (DISPLAY and WAYLAND_DISPLAY are unset): starting the headless watch service instead of the desktop app" >&2
cargo build --release --locked --bin pixelflow
bin="$CARGO_TARGET_DIR/release/pixelflow"
"$bin" paths
exec "$bin" watch "$@"
