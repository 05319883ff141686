#!/usr/bin/env bash
# The desktop app's tests (run by test.sh): builds the UI and the debug `pixelflow-desktop` once,
# then runs the UI's unit tests (Vitest), the built UI in headless Chromium with the IPC mocked
# (Playwright), the shell's own Rust tests (the keychain, which CI does not have), and the real
# app under Xvfb through WebDriver (tauri-driver, WebKitWebDriver; its export goes to moto).
# Each suite prints one cargo-style `test result:` line, which test.sh adds to its total.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
source "$repo/scripts/setup.sh"
source "$repo/scripts/desktop.sh"
cd "$repo"

desktop_deps test
tools=$HOME/.cache/pixelflow/tauri-driver
if [ ! -x "$tools/bin/tauri-driver" ]; then
  cargo install tauri-driver --locked --version 2.1.0 --root "$tools" --quiet
fi
build_ui
cargo build -p pixelflow-desktop --locked

reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
status=0
suite() { # suite NAME PROJECT [launcher...]
  local name=$1 project=$2
  shift 2
  (cd ui && "$@" npx vitest run --project "$project" --reporter=default --reporter=json --outputFile="$reports/$project.json") || status=1
  node ui/scripts/summary.mjs "$reports/$project.json" "$name" || status=1
}
export PIXELFLOW_CHROMIUM PIXELFLOW_DESKTOP_BIN PIXELFLOW_TAURI_DRIVER PIXELFLOW_REQUIRE_DESKTOP_E2E=1
# The Export view's end-to-end test sends to moto, which test.sh installs for the sync tests.
export PIXELFLOW_MOTO=${PIXELFLOW_MOTO:-$HOME/.cache/pixelflow/test-venv/bin/moto_server}
PIXELFLOW_CHROMIUM=$(command -v chromium)
PIXELFLOW_DESKTOP_BIN=$CARGO_TARGET_DIR/debug/pixelflow-desktop
PIXELFLOW_TAURI_DRIVER=$tools/bin/tauri-driver
# Types first (svelte-check): a type error fails the run like a failed test.
(cd ui && npx svelte-check --tsconfig ./tsconfig.json --threshold error --output human) || status=1
suite "ui unit" unit
suite "ui browser (mocked IPC)" browser
suite "desktop app (WebDriver)" app xvfb-run -a -s "-screen 0 1280x860x24"
# The shell's Rust tests (not in test.sh's workspace run, which leaves this crate out).
cargo test -p pixelflow-desktop --locked || status=1
echo "desktop: screenshots in ui/test-output/" >&2
exit "$status"
