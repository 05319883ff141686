#!/usr/bin/env bash
# GPU filters, side by side in one run: a 24 MP image (6000x4000 RGB, 8-bit) through a
# five-filter chain on the CPU path (crates/imaging's filter, rayon on every core) and on the
# GPU path (crates/gpu, wgpu on Vulkan), from the same in-memory image:
#   GPU filter work  the dispatches alone (every tile), timed between two device waits;
#   GPU end to end   packing, upload, dispatches, readback and unpacking, as the step pays it.
# One warm-up run each (pipelines compiled, buffers allocated), then RUNS timed runs; medians.
# Also prints the largest difference from the CPU's result.
#
# The GPU is the adapter `pixelflow doctor` shows: on a machine without one, install
# mesa-vulkan-drivers for lavapipe (a software rasteriser: expect it slower than the CPU path).
# Usage: bench/gpu.sh            (RUNS=5 bench/gpu.sh for more runs)
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/pixelflow/target}
RUNS="${RUNS:-3}"

cargo build --release --locked -q -p pixelflow-gpu --bin pixelflow-gpu-bench
cpu="$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//' || echo '?')"
echo "Machine: ${cpu}, $(nproc) CPUs, $(free -g 2>/dev/null | awk '/Mem:/ {print $2}') GiB; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
"$CARGO_TARGET_DIR/release/pixelflow-gpu-bench" --runs "$RUNS"
