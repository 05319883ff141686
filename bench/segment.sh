#!/usr/bin/env bash
# The segment step, side by side with Python onnxruntime, over the benchmark corpus: the same
# IS-Net model (isnet-general-small, uint8), the same pre-processing (1024x1024 bilinear,
# (px-128)/256, CHW) and post-processing (8-bit mask resized back bilinearly, written as PNG),
# both on the machine's two cores, in one run of ROUNDS alternating rounds:
#   pixelflow, 1 at a time   `pixelflow run --jobs 1` of a mask-only segment workflow (release
#                            build, fresh data dir): per-image latency from the step's debug log
#                            (step total, decode, pre, inference, post, mask written), images/s from the wall time;
#   pixelflow, 2 at a time   the same with --jobs 2 (one image's decode/encode overlaps
#                            another's inference): images/s;
#   python                   tests/reference/segment_reference.py bench: Pillow decode and
#                            resize, onnxruntime with 2 intra-op threads, Pillow resize back and
#                            PNG (compress_level 1), one image at a time;
# then the IoU at 0.5 of every Pixelflow mask against the Python reference's.
#
# Installs what it needs, idempotently: the venv of tests/reference/requirements.txt
# (~/.cache/pixelflow/test-venv), the model (models/install.sh), the corpus (../shared/corpus.sh).
#
# Usage: bash bench/segment.sh
#   CORPUS=DIR    where the corpus is (photos in DIR/photos; default ~/.cache/pixelflow/corpus)
#   LIMIT=N       only the first N photos
#   ROUNDS=N      rounds of the three runs, alternating (default 3)
#   KEEP=1        keep the work folder
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pixelflow/target}"
cache=$HOME/.cache/pixelflow
CORPUS="${CORPUS:-$cache/corpus}"
LIMIT="${LIMIT:-0}"
ROUNDS="${ROUNDS:-3}"
venv=$cache/test-venv
log() { printf 'segment.sh: %s\n' "$*" >&2; }

if ! cmp -s tests/reference/requirements.txt "$venv/requirements.installed"; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/reference/requirements.txt
  cp tests/reference/requirements.txt "$venv/requirements.installed"
fi
py=$venv/bin/python
ORT_DYLIB_PATH=$(ls "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.* | sort -V | tail -n 1)
export ORT_DYLIB_PATH
bash models/install.sh small
model=${PIXELFLOW_MODELS_DIR:-$cache/models}
model=${model%%:*}/isnet-general-small.onnx
[ -d "$CORPUS/photos" ] || bash ../shared/corpus.sh "$CORPUS" >/dev/null
mapfile -t photos < <(find "$CORPUS/photos" -maxdepth 1 -type f | sort)
if [ "$LIMIT" -gt 0 ]; then photos=("${photos[@]:0:$LIMIT}"); fi
log "building pixelflow (release)"
cargo build --release --bin pixelflow >&2
bin=$CARGO_TARGET_DIR/release/pixelflow

work=$(mktemp -d)
[ "${KEEP:-0}" = 1 ] && log "work folder: $work" || trap 'rm -rf "$work"' EXIT
cat >"$work/mask.asl.json" <<'JSON'
{"Comment": "segment benchmark: the mask only",
 "StartAt": "Segment", "States": {"Segment": {"Type": "Task", "Resource": "pixelflow:segment", "End": true,
   "Parameters": {"path.$": "$.path", "outputDir.$": "$.outputDir", "model": "isnet-general-small", "outputs": ["mask"]}}}}
JSON

now() { date +%s.%N; }
pixelflow_run() { # jobs, name
  local t0 t1
  t0=$(now)
  PIXELFLOW_LOG=warn,pixelflow_segment=debug "$bin" --data-dir "$work/data-$2" run --workflow "$work/mask.asl.json" \
    --out "$work/out-$2" --jobs "$1" --json "${photos[@]}" >"$work/$2.json" 2>"$work/$2.log"
  t1=$(now)
  echo "$t0 $t1" >"$work/$2.wall"
}
python_run() { # name
  local t0 t1
  t0=$(now)
  "$py" tests/reference/segment_reference.py bench "$model" 2 "${photos[@]}" >"$work/$1.jsonl"
  t1=$(now)
  echo "$t0 $t1" >"$work/$1.wall"
}
# The machine may be shared: the three runs alternate, in a rotated order each round, so that
# a busy spell does not fall on one side only; the summary takes medians over the rounds.
configs=(p1 p2 py)
for ((r = 1; r <= ROUNDS; r++)); do
  for ((k = 0; k < 3; k++)); do
    c=${configs[$(((k + r - 1) % 3))]}
    log "round $r/$ROUNDS: $c (${#photos[@]} photos; $(uptime | sed 's/.*load/load/'))"
    case $c in
      p1) pixelflow_run 1 "p1-$r" ;;
      p2) pixelflow_run 2 "p2-$r" ;;
      py) python_run "py-$r" ;;
    esac
  done
  uptime | sed 's/.*load average: //' >"$work/load-$r"
done
log "IoU against the reference"
pairs=()
for p in "${photos[@]}"; do
  stem=$(basename "${p%.*}")
  pairs+=("$p" "$work/out-p1-1/$stem-mask.png")
done
"$py" tests/reference/segment_reference.py iou "$model" "${pairs[@]}" >"$work/iou.jsonl"

"$py" - "$work" "${#photos[@]}" "$ROUNDS" <<'PY'
import json, re, statistics, sys
work, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
med = statistics.median
def wall(name):
    a, b = open(f"{work}/{name}.wall").read().split()
    return float(b) - float(a)
def fields(name, message):
    out = []
    for line in open(f"{work}/{name}.log"):
        if message in line:
            out.append({k: float(v) for k, v in re.findall(r"(\w+_ms)=([0-9.]+)", line)})
    return out
R = range(1, rounds + 1)
steps = [s for r in R for s in fields(f"p1-{r}", "segment step done")]
inner = [s for r in R for s in fields(f"p1-{r}", "segmented")]
py = [json.loads(l) for r in R for l in open(f"{work}/py-{r}.jsonl")]
total = [s["total_ms"] for s in steps]
decode = [s["decode_ms"] for s in steps]
write = [s["write_ms"] for s in steps]
infer = [s["inference_ms"] for s in inner]
pre = [s["pre_ms"] for s in inner]
post = [s["post_ms"] for s in inner]
py_total = [p["total"] * 1e3 for p in py]
py_infer = [p["inference"] * 1e3 for p in py]
rate = {c: [n / wall(f"{c}-{r}") for r in R] for c in ("p1", "p2", "py")}
loads = [open(f"{work}/load-{r}").read().strip() for r in R]
print(f"{n} photos x {rounds} rounds (load average after each round: {'; '.join(loads)}); medians per image, ms\n")
print("| | end to end | inference | decode | pre | post | mask written | images/s (wall), median of rounds | end to end / inference |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
print(f"| pixelflow, 1 at a time | {med(total):.0f} | {med(infer):.0f} | {med(decode):.0f} | {med(pre):.0f} | {med(post):.0f} | {med(write):.0f} | {med(rate['p1']):.3f} | {sum(total) / sum(infer):.3f} |")
print(f"| pixelflow, 2 at a time | | | | | | | {med(rate['p2']):.3f} | |")
print(f"| python onnxruntime | {med(py_total):.0f} | {med(py_infer):.0f} | | | | | {med(rate['py']):.3f} | {sum(py_total) / sum(py_infer):.3f} |")
by_round = [(med([s["total_ms"] for s in fields(f"p1-{r}", "segment step done")]), med([json.loads(l)["total"] * 1e3 for l in open(f"{work}/py-{r}.jsonl")])) for r in R]
print("\nper round, median end to end per image, pixelflow (1 at a time) / python: " + ", ".join(f"{a:.0f}/{b:.0f} ms = {a / b:.3f}" for a, b in by_round))
print("images/s per round: " + "; ".join(f"{c} " + ", ".join(f"{x:.3f}" for x in v) for c, v in rate.items()))
print(f"pixelflow wall (1 at a time, incl. start-up, hashing, history) / sum of inference: {sum(wall(f'p1-{r}') for r in R) * 1e3 / sum(infer):.3f}")
print(f"pixelflow end to end vs python end to end (sums): {sum(total) / sum(py_total):.3f}; inference vs python's (sums): {sum(infer) / sum(py_infer):.3f}")
print(f"images/s vs python (medians of rounds): 1 at a time {med(rate['p1']) / med(rate['py']):.3f}, 2 at a time {med(rate['p2']) / med(rate['py']):.3f}")
ious = [json.loads(l) for l in open(f"{work}/iou.jsonl")]
vals = sorted((r["iou"], r["photo"].rsplit("/", 1)[-1]) for r in ious if "iou" in r)
print(f"\nIoU at 0.5 vs python: median {med([v for v, _ in vals]):.4f}, min {vals[0][0]:.4f} ({vals[0][1]}), >= 0.99: {sum(v >= 0.99 for v, _ in vals)}/{len(vals)}")
for v, name in vals:
    if v < 0.99:
        print(f"  {name}: {v:.4f}")
PY
