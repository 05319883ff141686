#!/usr/bin/env bash
# GPU filters, side by side in one run: a 24 MP image (6000x4000 RGB, 8-bit) through a
# five-filter chain on the CPU path (crates/imaging's filter, rayon on every core) and on the
# GPU path (crates/gpu, wgpu on Vulkan), from the same in-memory image, the two alternating run
# by run (a loaded machine then slows both alike):
#   GPU filter work  the dispatches alone (every tile), from a profiled run that waits after
#                    each step;
#   GPU end to end   staging the samples, upload, dispatches, readback and unpacking, pipelined
#                    over the tiles, as the step pays it.
# Each with the CPU time the process used (all threads: lavapipe's too), which other work on
# the machine disturbs less than wall time. One warm-up run each (pipelines compiled, buffers
# allocated), then RUNS timed runs; medians. Also prints the largest difference from the CPU's
# result, and the profiled run's time per step (pack, upload, each dispatch, readback).
#
# The GPU is the adapter `pixelflow doctor` shows: on a machine without one, install
# mesa-vulkan-drivers for lavapipe (a software rasteriser running on the same cores).
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
