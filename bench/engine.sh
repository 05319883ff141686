#!/usr/bin/env bash
# Engine overhead, side by side: state transitions per second, with every event of the run
# committed to the SQLite history, of
#   (a) Pixelflow's engine in process (crates/history/benches/engine.rs): an execution created,
#       run and finished, the clock stopped once its events are committed; the same boundaries
#       as (c), which times only the run;
#   (b) the whole `pixelflow workflow run` command (process start, opening the database,
#       validation, the run), as a user sees it;
#   (c) aws-local-stepfunctions in node (bench/engine-oracle.mjs; only the run is timed, and it
#       keeps no history);
#   and, for reference, (a) without any history (`--no-history`): the engine's own cost;
# on the same definitions:
#   chain  a chain of 1,000 Pass states;
#   map    a Map state over 10,000 items, each item two Pass states.
# A transition is a state entered: the chain makes 1,000, the map 1 + 10,000 x 2 = 20,001.
#
# "first run": the first run in a fresh process (what a user's command does; node's JIT is cold
# too). "warm": the median of runs 2 to 6 in one process (node's JIT warm, Pixelflow's history
# file already holding the earlier runs).
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
in_process="$(cargo bench --quiet --no-run -p pixelflow-history --bench engine --message-format json \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{for(const l of s.split("\n")){if(!l)continue;const m=JSON.parse(l);if(m.reason==="compiler-artifact"&&m.target.name==="engine"&&m.executable)console.log(m.executable)}})')"

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

# {"seconds": [...]} on stdin (both benchmark programs print it) -> one run time per line.
run_times() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{for(const t of JSON.parse(s).seconds)console.log(t.toFixed(6))})'; }

run_oracle() { # workload runs -> the run times, one per line
    local line
    if ! line="$(node bench/engine-oracle.mjs "$work/$1.json" "$work/$1-input.json" "$2")"; then
        echo "aws-local-stepfunctions failed on $1: $line" >&2
        exit 1
    fi
    echo "$line" | run_times
}

run_in_process() { # workload runs [--no-history] -> the run times, one per line
    "$in_process" "$work/$1.json" "$work/$1-input.json" "$2" ${3:-} \
        | run_times
}

# The engine alone (a journal that drops events, no execution row): what the history costs is
# the difference to run_in_process.
run_bare() { # workload runs
    run_in_process "$1" "$2" --no-history
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# One sample of each kind: first runs in fresh processes, and the warm median of a 6-run process.
# Each sample starts with the files of the one before written out (`sync`) and a second of
# quiet: the kernel writing back a deleted history's pages, or reclaiming node's memory, during
# the next sample made that sample's first run up to 5 times slower than the same run alone.
sample() { # engine workload
    local runs
    sync
    sleep 1
    case "$1" in
        cli) run_pixelflow "$2" >>"$work/first-cli-$2" ;;
        *)
            runs="$("run_$1" "$2" 1)"
            echo "$runs" >>"$work/first-$1-$2"
            runs="$("run_$1" "$2" 6)"
            echo "$runs" | tail -n +2 | median >>"$work/warm-$1-$2"
            ;;
    esac
}

for rep in $(seq 1 "$REPS"); do
    for workload in chain map; do
        sample in_process "$workload"
        sample bare "$workload"
        sample cli "$workload"
        sample oracle "$workload"
    done
    echo "repetition $rep of $REPS done" >&2
done

echo
echo "Engine overhead: $cpus CPUs, $cpu_model; node $(node --version); medians of $REPS alternating samples"
echo
echo "| engine | workload | transitions | first run s | transitions/s | ratio | warm run s | transitions/s | ratio |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for workload in chain map; do
    n="$(transitions "$workload")"
    node_first="$(median <"$work/first-oracle-$workload")"
    node_warm="$(median <"$work/warm-oracle-$workload")"
    row() { # label first warm
        awk -v label="$1" -v n="$n" -v w="$workload" -v a="$2" -v b="$node_first" -v c="$3" -v d="$node_warm" 'BEGIN {
            if (c == "") warm = "| | | "; else warm = sprintf("| %.4f | %.0f | %.2f |", c, n / c, d / c)
            printf "| %s | %s | %d | %.4f | %.0f | %.2f %s\n", label, w, n, a, n / a, b / a, warm
        }'
    }
    row "Pixelflow engine, in process (SQLite history)" "$(median <"$work/first-in_process-$workload")" "$(median <"$work/warm-in_process-$workload")"
    row "pixelflow workflow run, whole command (SQLite history)" "$(median <"$work/first-cli-$workload")" ""
    row "Pixelflow engine, in process, no history (reference)" "$(median <"$work/first-bare-$workload")" "$(median <"$work/warm-bare-$workload")"
    row "aws-local-stepfunctions 3.0.0 (node, run only, no history)" "$node_first" "$node_warm"
done
echo
echo "ratio: transitions/s relative to aws-local-stepfunctions on the same workload, first runs against first runs, warm against warm."
