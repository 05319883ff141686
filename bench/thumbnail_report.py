"""The report of bench/thumbnail.sh: medians of its samples as markdown tables, the machine, and
a sanity check of the outputs. Run by thumbnail.sh with the Pillow venv's python:

  python thumbnail_report.py WORK_DIR    (what it knows of the run comes in BENCH_* variables)

WORK_DIR holds samples.tsv (key, round, wall s, user s, sys s, max RSS KiB, other load),
corpus.json (from `pil.py info`) and out/<key>/ with each tool's outputs from the last round.
Exits 1 when a tool did not write one JPEG per input or Pixelflow's sizes differ from sharp's
by more than 1 px.
"""

import json
import os
import statistics
import sys
from collections import defaultdict

from PIL import Image

work = sys.argv[1]
env = os.environ.get
rounds, jobs, files = int(env("BENCH_ROUNDS")), int(env("BENCH_JOBS")), int(env("BENCH_FILES"))
corpus = json.load(open(os.path.join(work, "corpus.json")))
mp = corpus["megapixels"]
total_mp = sum(mp.values())
jpeg_mp = sum(mp[f] for f in corpus["jpeg"])
png_mp = sum(mp[f] for f in corpus["png"])

samples = defaultdict(list)
for line in open(os.path.join(work, "samples.tsv")):
    key, _round, wall, user, sys_, rss, other = line.rstrip("\n").split("\t")
    samples[key].append((float(wall), float(user) + float(sys_), int(rss), float(other)))


def med(key, i):
    return statistics.median(s[i] for s in samples[key])


def version(name, default=None):
    text = env(name) or ""
    try:
        return json.loads(text)
    except ValueError:
        return text or default


sharp_v = version("BENCH_SHARP", {})
pil_v = version("BENCH_PILLOW", {})
simd_v = version("BENCH_PILLOW_SIMD", None)
tools = [
    ("pixelflow", f"Pixelflow `run --jobs {jobs}` ({env('BENCH_PIXELFLOW')})", "1 process"),
    ("pixelflow-nodecode", "Pixelflow, validate with `decode: false`", "1 process"),
    ("sharp", f"sharp {sharp_v.get('sharp', '?')} (libvips {sharp_v.get('vips', '?')}, node {env('BENCH_NODE')})", "1 process"),
    ("pillow-simd", f"pillow-simd {simd_v['pillow'] if simd_v else '?'}", "largest of the pool's processes"),
    ("pillow", f"Pillow {pil_v.get('pillow', '?')}", "largest of the pool's processes"),
    ("imagemagick", f"{env('BENCH_IMAGEMAGICK')} `convert`", "largest `convert`"),
]
tools = [t for t in tools if samples.get(t[0])]
sharp_s = med("sharp", 0)

out = []
p = out.append
p(f"### Thumbnail job: {len(mp)} photos ({len(corpus['jpeg'])} JPEG + {len(corpus['png'])} PNG, {total_mp:.1f} MP)")
p("")
p(f"Fit within 800x800, Lanczos3, never enlarged, EXIF orientation applied, JPEG quality 80, {jobs} workers each; "
  f"medians of {rounds} alternating rounds.")
p("")
p("| tool | seconds | images/s | MP/s | CPU s | peak RSS MiB | output KiB | speed vs sharp | other load |")
p("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for key, name, _ in tools:
    wall, cpu, other = med(key, 0), med(key, 1), med(key, 3)
    rss = max(s[2] for s in samples[key]) / 1024
    folder = os.path.join(work, "out", key)
    kib = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)) / 1024
    p(f"| {name} | {wall:.2f} | {len(mp) / wall:.1f} | {total_mp / wall:.1f} | {cpu:.2f} | {rss:.0f} | {kib:.0f} | "
      f"{sharp_s / wall:.2f} | {other:.2f} |")
p("")
p("Decode floor, 2 files at a time (no resize, no encode):")
p("")
p("| decode | images | seconds | images/s | source MP/s | other load |")
p("|---|---:|---:|---:|---:|---:|")
floors = [
    ("djpeg-full", "djpeg, full size (JPEG)", len(corpus["jpeg"]), jpeg_mp),
    ("djpeg-eighth", "djpeg `-scale 1/8` (JPEG)", len(corpus["jpeg"]), jpeg_mp),
    ("djpeg-pixelflow", "djpeg at Pixelflow's shrink-on-load scale (JPEG)", len(corpus["jpeg"]), jpeg_mp),
    ("djpeg-sharp", "djpeg at sharp's shrink-on-load scale (JPEG)", len(corpus["jpeg"]), jpeg_mp),
    ("djpeg-pillow", "djpeg at Pillow's draft scale (JPEG)", len(corpus["jpeg"]), jpeg_mp),
    ("png-decode", f"Pillow {pil_v.get('pillow', '?')} (PNG)", len(corpus["png"]), png_mp),
]
for key, name, n, m in floors:
    if samples.get(key):
        wall = med(key, 0)
        p(f"| {name} | {n} | {wall:.2f} | {n / wall:.1f} | {m / wall:.1f} | {med(key, 3):.2f} |")
p("")
def shrinks(tool):
    return ", ".join(f"1/{d}: {n}" for d in (1, 2, 4, 8) if (n := sum(1 for v in corpus["scale"][tool].values() if v == d)))


p(f"JPEG shrink-on-load scales (images at each): Pixelflow {shrinks('pixelflow')}; sharp {shrinks('sharp')}; "
  f"Pillow {shrinks('pillow')} (Pillow's draft keeps twice the 800x800 box, then `reduce()`s).")
p("")
p(f"Machine: {env('BENCH_NPROC')} CPUs (nproc), {env('BENCH_CPU')}, {env('BENCH_MEM_GIB')} GiB RAM; {env('BENCH_DATE')}; "
  f"load average {env('BENCH_LOAD_BEFORE')} before, {env('BENCH_LOAD_AFTER')} after.")
p("")
p("- seconds: wall time of the whole command (process start, and for Pixelflow hashing the inputs and recording "
  "every execution in a fresh SQLite history); MP/s: input megapixels per second; CPU s: user + system time of "
  "the command and its children; speed vs sharp: sharp's seconds / the tool's seconds.")
p("- peak RSS: GNU time's maximum resident set size, the largest over the rounds; "
  + "; ".join(f"{name.split(' (')[0]}: {what}" for _, name, what in tools) + " (not a sum over processes).")
p("- other load: CPU time used by other processes during the runs, per second of wall time (in cores); above about 0.1 "
  "the row is noise.")
p(f"- sharp: `sharp.concurrency({jobs})` and {jobs} images in flight; Pillow, pillow-simd: a pool of {jobs} processes, "
  f"`Image.thumbnail` (draft + reduce + Lanczos); ImageMagick: `xargs -P{jobs}`, MAGICK_THREAD_LIMIT=1, "
  "`-auto-orient -filter Lanczos -resize 800x800> -background white -alpha remove -quality 80`; "
  f"djpeg from libjpeg-turbo-progs {env('BENCH_DJPEG')}.")
if simd_v:
    p(f"- pillow-simd built from source{' with -mavx2' if 'avx2' in open('/proc/cpuinfo').read() else ''}.")
if env("BENCH_SIMD_NOTE"):
    p(f"- {env('BENCH_SIMD_NOTE')}")
print("\n".join(out))

# --- sanity -----------------------------------------------------------------------------------
def dims(key):
    folder = os.path.join(work, "out", key)
    result = {}
    for f in os.listdir(folder):
        if f.endswith(".jpg"):
            with Image.open(os.path.join(folder, f)) as im:
                result[f[:-4]] = im.size
    return result


failed = False
reference = dims("sharp")
lines = []
for key, name, _ in tools:
    got = dims(key)
    off = sorted(s for s in reference if s in got and max(abs(a - b) for a, b in zip(got[s], reference[s])) > 1)
    status = "ok"
    if len(got) != files:
        status = f"WROTE {len(got)} JPEGs, not {files}"
        failed = True
    elif key != "sharp" and off:
        status = f"{len(off)} sizes differ from sharp's by more than 1 px: " + ", ".join(
            f"{s} {got[s][0]}x{got[s][1]} vs {reference[s][0]}x{reference[s][1]}" for s in off[:3])
        failed = failed or key.startswith("pixelflow")
    lines.append(f"- {name.split(' (')[0]}: {len(got)} JPEGs; sizes vs sharp: {status}")
print("\nOutput check (last round):\n" + "\n".join(lines))
if failed:
    print("thumbnail.sh: the output check FAILED (see above)", file=sys.stderr)
    sys.exit(1)
