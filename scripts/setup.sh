#!/usr/bin/env bash
# Installs what Pixelflow needs to build and test, idempotently, on a fresh Debian machine (as
# root) or a developer's machine: Debian packages, the Node tools the tests use, and the Rust
# build itself. Sourced by run.sh and test.sh; safe to run again.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Keep the build out of the clone so reruns are incremental and clean clones stay small.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/pixelflow/target}

need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
# mozjpeg's SIMD (1.5-2.5x faster JPEG) and rav1e's (AVIF encoding; image's `nasm` feature) are
# assembled with nasm: rav1e's build needs it.
command -v nasm >/dev/null || need_apt+=(nasm)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
python3 -m venv --help >/dev/null 2>&1 || need_apt+=(python3-venv)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install: ${need_apt[*]} (sudo apt-get install ...)" >&2
    exit 1
  fi
fi

if ! command -v cargo >/dev/null; then
  for c in "$HOME/.cargo/bin/cargo" /usr/local/cargo/bin/cargo; do
    [ -x "$c" ] && export PATH="$(dirname "$c"):$PATH" && break
  done
fi
command -v cargo >/dev/null || { echo "setup: Rust (cargo) is required: https://rustup.rs" >&2; exit 1; }
