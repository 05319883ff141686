#!/usr/bin/env bash
# The thumbnail job, side by side: the job users run most, "fit within 800x800, Lanczos3, never
# enlarge, EXIF orientation applied, transparency onto white, JPEG quality 80, {stem}.jpg, both
# cores", over the benchmark corpus (41 photos: 34 JPEG + 7 PNG, 234.2 MP) with
#   pixelflow    `pixelflow run --workflow workflows/thumbnail.asl.json --jobs 2` (release build,
#                a fresh data dir each run, so every run hashes, records and processes all 41);
#   pixelflow, validate decode:false   the same with ValidateImage's full decode turned off (a
#                variant written to the work dir; VARIANT=0 leaves it out);
#   sharp        bench/peers/sharp.mjs: libvips with concurrency 2, 2 images in flight;
#   pillow-simd  bench/peers/pil.py in a venv of pillow-simd (built with -mavx2), a pool of 2
#                processes; left out, with a note, when it cannot be built here;
#   Pillow       the same script in a venv of Pillow;
#   ImageMagick  2 `convert` processes at a time (xargs -P2, MAGICK_THREAD_LIMIT=1 so 2
#                processes use 2 cores): -auto-orient -filter Lanczos -resize '800x800>'
#                -background white -alpha remove -quality 80;
# and the decode floor, 2 files at a time: djpeg over the JPEGs at full size, at 1/8, and at the
# shrink-on-load scales that Pixelflow, sharp and Pillow pick; Pillow decoding the PNGs.
#
# Runs alternate between the tools, ROUNDS rounds (default 3), each into a fresh output folder;
# the table shows medians. Wall time is taken around the command; CPU time and peak RSS come from
# GNU time (/usr/bin/time -v). For a tool of several processes (ImageMagick, Pillow's pool) the
# RSS is that of its largest process, not a sum. "other load" is the CPU time that processes
# other than the tool used during its runs, per second (in cores): above ~0.1 the numbers are noise.
#
# Installs what it needs, idempotently, outside the clone (PIXELFLOW_BENCH_CACHE, default
# ~/.cache/pixelflow/bench): sharp with `npm ci` of bench/package.json, Pillow and pillow-simd
# in venvs, and, as root, Debian's imagemagick, libjpeg-turbo-progs, time (and the headers
# pillow-simd builds against). Builds the corpus with ../shared/corpus.sh when it is missing.
#
# Usage: bash bench/thumbnail.sh
#   ROUNDS=5          more rounds
#   CORPUS=/tmp/corpus   where the corpus is (photos in $CORPUS/photos)
#   WORKFLOW=FILE     time another thumbnail workflow as "pixelflow"
#   VARIANT=0         leave out the decode:false variant
#   WAIT_IDLE=120     before each run, wait up to 120 s for other processes to leave the CPUs
#   KEEP=1            keep the work folder (outputs of the last round, logs, samples)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

ROUNDS="${ROUNDS:-3}"
JOBS="${JOBS:-2}"
CORPUS="${CORPUS:-/tmp/corpus}"
PHOTOS="$CORPUS/photos"
CORPUS_FILES=41
CACHE="${PIXELFLOW_BENCH_CACHE:-$HOME/.cache/pixelflow/bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pixelflow/target}"
WORKFLOW="${WORKFLOW:-workflows/thumbnail.asl.json}"
VARIANT="${VARIANT:-1}"
WAIT_IDLE="${WAIT_IDLE:-0}"
PYTHON="${PYTHON:-python3}"

log() { printf 'thumbnail.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive whole number (got '$ROUNDS')"
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "JOBS must be a positive whole number (got '$JOBS')"
[ -f "$WORKFLOW" ] || die "no workflow at $WORKFLOW"
[ "$(uname -s)" = Linux ] || die "Linux only (reads /proc for the machine and its load)"

# --- system packages --------------------------------------------------------------------------
apt_missing() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
    done
}

apt_install() { # packages...: installs those missing (as root), or names them and fails
    local missing
    missing="$(apt_missing "$@" | tr '\n' ' ')"
    [ -z "${missing// /}" ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        die "missing Debian packages: $missing (install them, e.g. sudo apt-get install $missing)"
    fi
    log "installing $missing"
    apt-get update -qq >&2
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
}

command -v dpkg-query >/dev/null || die "needs a Debian-like system (dpkg, apt-get)"
apt_install time imagemagick libjpeg-turbo-progs libjpeg-dev zlib1g-dev python3-dev
[ -x /usr/bin/time ] || die "GNU time is missing at /usr/bin/time"
command -v djpeg >/dev/null || die "djpeg is missing (Debian package libjpeg-turbo-progs)"
command -v node >/dev/null || die "needs Node.js 20.9 or newer (for sharp)"
command -v cargo >/dev/null || die "needs cargo (rustup) to build pixelflow"
command -v "$PYTHON" >/dev/null || die "needs $PYTHON"

# ImageMagick itself: a machine may have a stand-in `convert` earlier on PATH, so take the
# real binaries first (IM7's magick, then IM6's convert).
IM=""
for c in /usr/bin/magick /usr/local/bin/magick /usr/bin/convert-im6.q16 /usr/bin/convert; do
    if [ -x "$c" ] && "$c" -version 2>/dev/null | grep -q '^Version: ImageMagick'; then
        IM="$c"
        break
    fi
done
[ -n "$IM" ] || die "ImageMagick not found (Debian package imagemagick)"

# --- corpus -----------------------------------------------------------------------------------
count_photos() { find "$PHOTOS" -maxdepth 1 -type f \( -name '*.jpg' -o -name '*.png' \) 2>/dev/null | wc -l; }
if [ "$(count_photos)" != "$CORPUS_FILES" ]; then
    corpus_sh="$repo/../shared/corpus.sh"
    [ -f "$corpus_sh" ] || die "the corpus is not at $PHOTOS and $corpus_sh, which builds it, is missing"
    log "building the corpus in $CORPUS"
    bash "$corpus_sh" "$CORPUS" >&2
    [ "$(count_photos)" = "$CORPUS_FILES" ] || die "$PHOTOS has $(count_photos) photos after corpus.sh, not $CORPUS_FILES"
fi

# --- peers ------------------------------------------------------------------------------------
mkdir -p "$CACHE"

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

# sharp: `npm ci` of bench/package.json + its lock into the cache.
sharp_dir="$CACHE/sharp"
sharp_stamp="$(stamp_of bench/package.json bench/package-lock.json) node $(node --version)"
if [ ! -d "$sharp_dir/node_modules/sharp" ] || [ "$(cat "$sharp_dir/.stamp" 2>/dev/null)" != "$sharp_stamp" ]; then
    log "installing sharp into $sharp_dir"
    rm -rf "$sharp_dir"
    mkdir -p "$sharp_dir"
    cp bench/package.json bench/package-lock.json "$sharp_dir/"
    (cd "$sharp_dir" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci of sharp failed (in $sharp_dir)"
    echo "$sharp_stamp" >"$sharp_dir/.stamp"
fi
export SHARP_DIR="$sharp_dir"
sharp_versions="$(node bench/peers/sharp.mjs --versions)" || die "sharp does not load from $sharp_dir"

# Python peers: one venv each, rebuilt when its requirements file changes.
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3-venv
fi

make_venv() { # name requirements [VAR=value...] -> 0 when the venv is ready
    local name="$1" req="$2" dir="$CACHE/venv-$1" stamp
    shift 2
    stamp="$(stamp_of "$req") $("$PYTHON" --version 2>&1) $*"
    if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi
    if [ -f "$dir.failed" ] && [ "$(head -n1 "$dir.failed")" = "$stamp" ]; then
        return 1 # failed before with the same requirements: see the note
    fi
    log "installing $name into $dir (log: $dir.log)"
    rm -rf "$dir" "$dir.failed"
    if "$PYTHON" -m venv "$dir" >"$dir.log" 2>&1 &&
        env "$@" "$dir/bin/pip" install --no-cache-dir --disable-pip-version-check -r "$req" >>"$dir.log" 2>&1 &&
        "$dir/bin/python" -c 'import PIL.Image' >>"$dir.log" 2>&1; then
        echo "$stamp" >"$dir/.stamp"
        return 0
    fi
    { echo "$stamp"; tail -n 30 "$dir.log"; } >"$dir.failed"
    rm -rf "$dir"
    return 1
}

make_venv pillow bench/peers/requirements-pillow.txt || die "Pillow did not install: see $CACHE/venv-pillow.log"
pillow_py="$CACHE/venv-pillow/bin/python"

simd_cc="cc"
grep -qw avx2 /proc/cpuinfo && simd_cc="cc -mavx2"
simd_note=""
if make_venv pillow-simd bench/peers/requirements-pillow-simd.txt "CC=$simd_cc"; then
    simd_py="$CACHE/venv-pillow-simd/bin/python"
else
    simd_py=""
    reason="$(grep -m1 -iE 'error[: ]' "$CACHE/venv-pillow-simd.failed" || tail -n1 "$CACHE/venv-pillow-simd.failed")"
    simd_note="pillow-simd left out: it did not build here ($reason; full log: $CACHE/venv-pillow-simd.failed, delete it to try again)"
    log "$simd_note"
fi

# --- pixelflow --------------------------------------------------------------------------------
log "building pixelflow (release) in $CARGO_TARGET_DIR"
cargo build --release --quiet --bin pixelflow >&2 || die "cargo build --release --bin pixelflow failed"
pixelflow="$CARGO_TARGET_DIR/release/pixelflow"
[[ "$pixelflow" = /* ]] || pixelflow="$repo/$pixelflow"
[ -x "$pixelflow" ] || die "no pixelflow binary at $pixelflow"

# --- work folder, corpus facts ----------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/pixelflow-thumbnail.XXXXXX")"
cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

"$pillow_py" bench/peers/pil.py info "$PHOTOS" >"$work/corpus.json"
# Argument lists for xargs -0: every image; djpeg's "-scale 1/D FILE" for each JPEG.
"$PYTHON" - "$work" <<'EOF'
import json, sys
work = sys.argv[1]
c = json.load(open(f"{work}/corpus.json"))
def write(name, items):
    with open(f"{work}/{name}", "w") as f:
        f.write("".join(i + "\0" for i in items))
write("all.list", sorted(c["jpeg"] + c["png"]))
write("png.list", c["png"])
scales = [("full", lambda f: 1), ("eighth", lambda f: 8)] + [(k, v.get) for k, v in c["scale"].items()]
for name, scale in scales:
    write(f"djpeg-{name}.list", [x for f in c["jpeg"] for x in ("-scale", f"1/{scale(f)}", f)])
EOF

variant_wf=""
if [ "$VARIANT" = 1 ]; then
    variant_wf="$work/thumbnail-validate-nodecode.asl.json"
    if ! "$PYTHON" - "$WORKFLOW" "$variant_wf" <<'EOF'; then
import json, sys
wf = json.load(open(sys.argv[1]))
params = wf["States"]["ValidateImage"]["Parameters"]
params["decode"] = False
json.dump(wf, open(sys.argv[2], "w"), indent=2)
EOF
        log "the decode:false variant needs a ValidateImage state in $WORKFLOW: left out"
        variant_wf=""
    fi
fi

# --- measuring --------------------------------------------------------------------------------
clk_tck="$(getconf CLK_TCK)"
cpu_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

wait_idle() { # waits up to WAIT_IDLE seconds until others use under 0.1 core (over 2 s)
    [ "$WAIT_IDLE" -gt 0 ] 2>/dev/null || return 0
    local deadline=$((SECONDS + WAIT_IDLE)) b0 b1
    while :; do
        b0="$(cpu_busy_ticks)"
        sleep 2
        b1="$(cpu_busy_ticks)"
        awk -v d="$((b1 - b0))" -v t="$clk_tck" 'BEGIN { exit !(d / t / 2 < 0.1) }' && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "the machine stayed busy for ${WAIT_IDLE}s; measuring anyway"
            return 0
        fi
    done
}

measure() { # key round command... : runs it once under GNU time, appends a sample
    local key="$1" round="$2" t0 t1 b0 b1
    shift 2
    wait_idle
    b0="$(cpu_busy_ticks)"
    t0="$(date +%s.%N)"
    if ! /usr/bin/time -v -o "$work/time.txt" "$@" >"$work/run.log" 2>&1; then
        log "$key failed in round $round: $*"
        tail -n 20 "$work/run.log" >&2
        exit 1
    fi
    t1="$(date +%s.%N)"
    b1="$(cpu_busy_ticks)"
    awk -F': ' -v key="$key" -v round="$round" -v t0="$t0" -v t1="$t1" -v busy="$((b1 - b0))" -v tck="$clk_tck" '
        /User time \(seconds\)/ { user = $2 }
        /System time \(seconds\)/ { sys = $2 }
        /Maximum resident set size \(kbytes\)/ { rss = $2 }
        END {
            wall = t1 - t0; other = busy / tck - user - sys; if (other < 0) other = 0
            printf "%s\t%d\t%.4f\t%.2f\t%.2f\t%d\t%.3f\n", key, round, wall, user, sys, rss, other / wall
        }' "$work/time.txt" >>"$work/samples.tsv"
}

fresh_out() { # key -> a new, empty output folder for that tool
    rm -rf "$work/out/$1"
    mkdir -p "$work/out/$1"
    echo "$work/out/$1"
}

run_pixelflow() { # key workflow round
    local out data
    out="$(fresh_out "$1")"
    data="$(mktemp -d "$work/data.XXXXXX")"
    measure "$1" "$3" "$pixelflow" --data-dir "$data" run --workflow "$2" --out "$out" --jobs "$JOBS" --force "$PHOTOS"
    rm -rf "$data"
}

run_sharp() {
    local out
    out="$(fresh_out sharp)"
    measure sharp "$1" node bench/peers/sharp.mjs --jobs "$JOBS" "$PHOTOS" "$out"
}

run_pil() { # key python round
    local out
    out="$(fresh_out "$1")"
    measure "$1" "$3" "$2" bench/peers/pil.py thumbnail --jobs "$JOBS" "$PHOTOS" "$out"
}

run_imagemagick() {
    local out
    out="$(fresh_out imagemagick)"
    # shellcheck disable=SC2016
    measure imagemagick "$1" env MAGICK_THREAD_LIMIT=1 IM="$IM" OUT="$out" xargs -0 -r -P "$JOBS" -n 1 -a "$work/all.list" \
        sh -c 'f="$1"; b="${f##*/}"; exec "$IM" "$f" -auto-orient -filter Lanczos -resize "800x800>" -background white -alpha remove -alpha off -quality 80 "$OUT/${b%.*}.jpg"' sh
}

run_floor() {
    local s
    for s in full eighth pixelflow sharp pillow; do
        measure "djpeg-$s" "$1" xargs -0 -r -P "$JOBS" -n 3 -a "$work/djpeg-$s.list" djpeg -outfile /dev/null
    done
    measure png-decode "$1" xargs -0 -r -a "$work/png.list" "$pillow_py" bench/peers/pil.py decode --jobs "$JOBS"
}

cat "$PHOTOS"/* >/dev/null # the corpus in the page cache before the first run
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
log "measuring: $ROUNDS rounds, $JOBS jobs each; load average now $load_before"
: >"$work/samples.tsv"
for round in $(seq 1 "$ROUNDS"); do
    run_pixelflow pixelflow "$WORKFLOW" "$round"
    if [ -n "$variant_wf" ]; then run_pixelflow pixelflow-nodecode "$variant_wf" "$round"; fi
    run_sharp "$round"
    if [ -n "$simd_py" ]; then run_pil pillow-simd "$simd_py" "$round"; fi
    run_pil pillow "$pillow_py" "$round"
    run_imagemagick "$round"
    run_floor "$round"
    log "round $round of $ROUNDS done (load average $(cut -d' ' -f1-3 /proc/loadavg))"
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- report -----------------------------------------------------------------------------------
pf_version="$("$pixelflow" --version 2>/dev/null || echo pixelflow)"
pil_version="$("$pillow_py" bench/peers/pil.py version)"
simd_version=""
[ -n "$simd_py" ] && simd_version="$("$simd_py" bench/peers/pil.py version)"
im_version="$("$IM" -version | sed -n 's/^Version: \(ImageMagick [^ ]*\).*/\1/p')"
djpeg_version="$(dpkg-query -W -f='${Version}' libjpeg-turbo-progs 2>/dev/null || echo '?')"
cpu_model="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)"
[ -n "$cpu_model" ] || cpu_model="$(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -n1)"
mem_gib="$(awk '/^MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)"

BENCH_ROUNDS="$ROUNDS" BENCH_JOBS="$JOBS" BENCH_FILES="$CORPUS_FILES" BENCH_PHOTOS="$PHOTOS" \
    BENCH_WORKFLOW="$WORKFLOW" BENCH_NPROC="$(nproc)" BENCH_CPU="${cpu_model:-unknown}" BENCH_MEM_GIB="$mem_gib" \
    BENCH_DATE="$(date -u +%Y-%m-%d)" BENCH_LOAD_BEFORE="$load_before" BENCH_LOAD_AFTER="$load_after" \
    BENCH_PIXELFLOW="$pf_version" BENCH_SHARP="$sharp_versions" BENCH_NODE="$(node --version)" \
    BENCH_PILLOW="$pil_version" BENCH_PILLOW_SIMD="$simd_version" BENCH_SIMD_NOTE="$simd_note" \
    BENCH_IMAGEMAGICK="$im_version" BENCH_DJPEG="$djpeg_version" \
    "$pillow_py" bench/thumbnail_report.py "$work"
