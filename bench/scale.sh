#!/usr/bin/env bash
# A photographer's library at scale: IMAGES small distinct PNGs (default 40,000, 64x48, in
# folders of 1,000: day000/IMG_00000.png ...) through `pixelflow run` with the thumbnail
# workflow, then what a person does next with that history:
#   batch      the first run (every image hashed, processed, recorded);
#   rerun      the same command again (every image "already done");
#   show       `history show` of the batch's execution (every event, streamed);
#   show json  the same with --json;
#   prune      `history prune` of that execution (its events, checkpoints, Map counts);
# with wall time, CPU time and peak RSS from GNU time, the database's size and how it splits.
# The images are tiny so that the per-image cost of the engine, the history and the file
# system shows, not the decoder (bench/thumbnail.sh measures real photos against sharp).
#
# There is no peer for this: no other tool keeps a history of every image it touched. It is
# the regression check for scale (a `history show` that once held 1.2 GB, a flat output folder
# that once lost same-named images).
#
# Usage: bash bench/scale.sh        (IMAGES=4000 bash bench/scale.sh for a quick look)
#   KEEP=1   keep the work folder (images, data dir, outputs)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
IMAGES="${IMAGES:-40000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pixelflow/target}"
command -v sqlite3 >/dev/null || { echo "bench/scale.sh: needs sqlite3 (apt-get install sqlite3)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/scale.sh: needs GNU time (apt-get install time)" >&2; exit 2; }

cargo build --release --quiet --bin pixelflow
pixelflow="$CARGO_TARGET_DIR/release/pixelflow"
work="$(mktemp -d)"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT

# Distinct images: a gradient whose offset and colour differ per image (stdlib only).
python3 - "$work/photos" "$IMAGES" <<'EOF'
import os, random, struct, sys, zlib
root, n = sys.argv[1], int(sys.argv[2])
def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
rnd = random.Random(7)
w, h = 64, 48
for i in range(n):
    folder = os.path.join(root, f'day{i // 1000:03d}')
    os.makedirs(folder, exist_ok=True)
    base = [rnd.randrange(256) for _ in range(3)]
    rows = b''.join(b'\0' + bytes((base[c] + x * 3 + y * 5 + i) % 256 for x in range(w) for c in range(3)) for y in range(h))
    png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(rows, 1)) + chunk(b'IEND', b'')
    with open(os.path.join(folder, f'IMG_{i:05d}.png'), 'wb') as f:
        f.write(png)
EOF

data="$work/data"
run() { # NAME COMMAND...: one row of the table
    local name="$1"; shift
    local t="$work/time.txt"
    /usr/bin/time -f '%e %U %S %M' -o "$t" "$@" > "$work/$name.out" 2> "$work/$name.err" || {
        echo "bench/scale.sh: '$name' failed:" >&2; tail -5 "$work/$name.err" >&2; exit 1; }
    read -r wall user sys rss < "$t"
    printf '| %s | %s | %s | %s | %s |\n' "$name" "$wall" "$(awk "BEGIN { print $user + $sys }")" "$((rss / 1024))" "$(du -m "$data/history.sqlite" | cut -f1)"
}

echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u '+%Y-%m-%d %H:%M UTC'); $IMAGES images"
echo
echo "| step | wall s | CPU s | peak RSS MiB | database MiB |"
echo "|---|---:|---:|---:|---:|"
workflow="$repo/workflows/thumbnail.asl.json"
run batch "$pixelflow" --data-dir "$data" run --workflow "$workflow" --out "$work/out" "$work/photos"
run rerun "$pixelflow" --data-dir "$data" run --workflow "$workflow" --out "$work/out" "$work/photos"
execution="$(sed -n 's/^execution //p' "$work/batch.out")"
run show "$pixelflow" --data-dir "$data" history show "$execution"
run "show json" "$pixelflow" --data-dir "$data" history show "$execution" --json
echo
echo "The batch: $(tail -2 "$work/batch.out" | head -1)"
echo "Rerun: $(tail -1 "$work/rerun.out")"
echo "Events: $(grep -cE '^ +[0-9]+  [0-9]{4}-' "$work/show.out"); outputs: $(find "$work/out" -type f | wc -l) in $(find "$work/out" -mindepth 1 -type d | wc -l) folders"
echo
echo "Where the database's pages go (MiB):"
sqlite3 "$data/history.sqlite" "SELECT name, round(sum(pgsize) / 1048576.0, 1) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 6" | sed 's/^/  /'
echo
echo "| step | wall s | CPU s | peak RSS MiB | database MiB |"
echo "|---|---:|---:|---:|---:|"
run prune "$pixelflow" --data-dir "$data" history prune --before 2999-01-01
echo
echo "After prune: $(sqlite3 "$data/history.sqlite" 'PRAGMA freelist_count') free pages of $(sqlite3 "$data/history.sqlite" 'PRAGMA page_count') (reused by what is recorded next)"
