#!/usr/bin/env bash
# Engine overhead, side by side: state transitions per second of
#   (a) `pixelflow workflow run` (release build, history on SQLite, every event recorded), and
#   (b) aws-local-stepfunctions in node (bench/engine-oracle.mjs; only the run is timed),
# on the same definitions:
#   chain  a chain of 1,000 Pass states;
#   map    a Map state over 10,000 items, each item two Pass states.
# A transition is a state entered: the chain makes 1,000, the map 1 + 10,000 x 2 = 20,001.
# For pixelflow the whole command is timed (process start, opening the database, validation and
# the run), as a user would see it.
#
# Runs alternate between the engines, REPS times each (default 3); the table shows medians.
#
# Needs: cargo, node 20+, and `npm ci` in tests/oracle.
# Usage: bench/engine.sh            (REPS=5 bench/engine.sh for more repetitions)
set -euo pipefail

cd "$(dirname "$0")/.."
REPS="${REPS:-3}"
CHAIN_STATES=1000
MAP_ITEMS=10000
MAP_ITEM_STATES=2

if [ ! -d tests/oracle/node_modules/aws-local-stepfunctions ]; then
    echo "bench/engine.sh: run 'npm ci' in tests/oracle first" >&2
    exit 2
fi

# --- the machine ------------------------------------------------------------------------------
cpus="$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo '?')"
cpu_model="$( (grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2-) \
    || sysctl -n machdep.cpu.brand_string 2>/dev/null || true)"
cpu_model="$(echo "${cpu_model:-unknown}" | sed 's/^ *//')"

# --- build ------------------------------------------------------------------------------------
cargo build --release --quiet --bin pixelflow
target_dir="$(cargo metadata --format-version 1 --no-deps \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
pixelflow="$target_dir/release/pixelflow"

# --- workloads --------------------------------------------------------------------------------
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

node - "$work" "$CHAIN_STATES" "$MAP_ITEMS" <<'EOF'
const fs = require('fs');
const [dir, chainStates, mapItems] = [process.argv[2], +process.argv[3], +process.argv[4]];
const write = (name, value) => fs.writeFileSync(`${dir}/${name}`, JSON.stringify(value));
const chain = {};
for (let i = 0; i < chainStates; i++) {
  chain[`S${i}`] = i + 1 < chainStates ? { Type: 'Pass', Next: `S${i + 1}` } : { Type: 'Pass', End: true };
}
write('chain.json', { Comment: 'benchmark: a chain of Pass states', StartAt: 'S0', States: chain });
write('chain-input.json', { n: 1 });
write('map.json', {
  Comment: 'benchmark: a Map of two Pass states per item',
  StartAt: 'Fan',
  States: {
    Fan: {
      Type: 'Map', ItemsPath: '$.items', ResultPath: null, OutputPath: null, End: true,
      ItemProcessor: { StartAt: 'A', States: {
        A: { Type: 'Pass', Parameters: { 'id.$': '$.id' }, Next: 'B' },
        B: { Type: 'Pass', End: true },
      } },
    },
  },
});
write('map-input.json', { items: Array.from({ length: mapItems }, (_, i) => ({ id: i })) });
EOF

transitions() {
    case "$1" in
        chain) echo "$CHAIN_STATES" ;;
        map) echo $((1 + MAP_ITEMS * MAP_ITEM_STATES)) ;;
    esac
}

now() {
    local t
    t="$(date +%s.%N 2>/dev/null || true)"
    if [[ "$t" =~ ^[0-9]+\.[0-9]+$ ]]; then echo "$t"; else node -e 'console.log(Date.now() / 1000)'; fi
}

run_pixelflow() { # workload -> seconds
    local data="$work/data-$1-$RANDOM$RANDOM" start end
    start="$(now)"
    if ! "$pixelflow" --data-dir "$data" workflow run "$work/$1.json" --input "$work/$1-input.json" >"$work/out" 2>"$work/err"; then
        echo "pixelflow failed on $1:" >&2
        cat "$work/out" "$work/err" >&2
        exit 1
    fi
    end="$(now)"
    rm -rf "$data"
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.6f\n", b - a }'
}

run_oracle() { # workload -> seconds
    local line
    if ! line="$(node bench/engine-oracle.mjs "$work/$1.json" "$work/$1-input.json")"; then
        echo "aws-local-stepfunctions failed on $1: $line" >&2
        exit 1
    fi
    echo "$line" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).seconds.toFixed(6)))'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for rep in $(seq 1 "$REPS"); do
    for workload in chain map; do
        run_pixelflow "$workload" >>"$work/samples-pixelflow-$workload"
        run_oracle "$workload" >>"$work/samples-oracle-$workload"
    done
    echo "repetition $rep of $REPS done" >&2
done

echo
echo "Engine overhead: $cpus CPUs, $cpu_model; node $(node --version); medians of $REPS alternating runs"
echo
echo "| engine | workload | transitions | seconds | transitions/s | ratio |"
echo "|---|---|---:|---:|---:|---:|"
for workload in chain map; do
    n="$(transitions "$workload")"
    ours="$(median <"$work/samples-pixelflow-$workload")"
    theirs="$(median <"$work/samples-oracle-$workload")"
    awk -v n="$n" -v w="$workload" -v a="$ours" -v b="$theirs" 'BEGIN {
        printf "| pixelflow workflow run (SQLite history) | %s | %d | %.3f | %.0f | %.2f |\n", w, n, a, n / a, (n / a) / (n / b)
        printf "| aws-local-stepfunctions 3.0.0 (node, run only) | %s | %d | %.3f | %.0f | 1.00 |\n", w, n, b, n / b
    }'
done
echo
echo "ratio: transitions/s relative to aws-local-stepfunctions on the same workload."
