#!/usr/bin/env bash
# Cloud sync throughput: `pixelflow export` side by side with rclone, copying the same files to
# the same local servers in one run: moto (S3) and Azurite (Azure Blob), both in memory on
# loopback. Two sets: many small files (per-request overhead dominates) and a few large ones
# (multipart). Prints a Markdown table for BENCHMARKS.md.
#
#   bash bench/sync.sh [SMALL_COUNT=1000] [LARGE_COUNT=20] [LARGE_MB=100]
#
# SYNC_BENCH_ROUNDS=N (default 1) repeats each measurement N times, alternating which tool goes
# first in each round (on a machine busy with other work, a load spike then hits both tools
# alike); every round starts on an empty prefix. SYNC_BENCH_SETS="small large" picks the sets.
#
# Installs what it needs: rclone (Debian package), moto/boto3 (the test venv), Azurite (npm).
# Both tools run with 32 files in flight (rclone --transfers 32 --checkers 32; pixelflow's
# default), and each starts on an empty prefix, so both send every file.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
small_count=${1:-1000}
large_count=${2:-20}
large_mb=${3:-100}
cache=$HOME/.cache/pixelflow
venv=$cache/test-venv
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}

if ! command -v rclone >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone >/dev/null
fi
if ! "$venv/bin/python" -c 'import moto, boto3, azure.storage.blob' 2>/dev/null; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/reference/requirements.txt
fi
if [ ! -d tests/servers/node_modules ]; then
  (cd tests/servers && npm ci --no-audit --no-fund --loglevel=error)
fi
# SYNC_BENCH_LIBRARY=1 times crates/sync's `upload` example (the same `upload_all`, without the
# history and the selection) instead of `pixelflow export`: a far smaller release build.
if [ "${SYNC_BENCH_LIBRARY:-0}" = 1 ]; then
  cargo build --release --quiet -p pixelflow-sync --example upload
  pf_label="pixelflow (upload_all)"
else
  pf_label="pixelflow export"
  # PIXELFLOW_BIN: an already built release binary (skips the build).
  [ -n "${PIXELFLOW_BIN:-}" ] || cargo build --release --quiet --bin pixelflow
fi
pixelflow=${PIXELFLOW_BIN:-$CARGO_TARGET_DIR/release/pixelflow}
pf_upload() { # destination set
  if [ "${SYNC_BENCH_LIBRARY:-0}" = 1 ]; then
    "$CARGO_TARGET_DIR/release/examples/upload" "$1" "$work/$2" 32
  else
    "$pixelflow" --data-dir "$work/data" export "$1" --workflow "$2"
  fi
}

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "no server on $1" >&2; exit 1; }

s3_port=$(free_port)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >/dev/null 2>&1 &
pids+=($!)
az_port=$(free_port)
tests/servers/node_modules/.bin/azurite-blob --blobHost 127.0.0.1 --blobPort "$az_port" --inMemoryPersistence \
  --skipApiVersionCheck --silent >/dev/null 2>&1 &
pids+=($!)
wait_port "$s3_port"
wait_port "$az_port"

key=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==
az_cs="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$key;BlobEndpoint=http://127.0.0.1:$az_port/devstoreaccount1;"
"$venv/bin/python" tests/servers/storage.py s3 "http://127.0.0.1:$s3_port" create bench
"$venv/bin/python" tests/servers/storage.py az "$az_cs" create bench
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_ENDPOINT_URL=http://127.0.0.1:$s3_port
export AZURE_STORAGE_CONNECTION_STRING=$az_cs
export AWS_SHARED_CREDENTIALS_FILE=$work/none AWS_CONFIG_FILE=$work/none PIXELFLOW_LOG=warn
s3_remote=":s3,provider=Other,access_key_id=testing,secret_access_key=testing,endpoint='http://127.0.0.1:$s3_port',region=us-east-1,force_path_style=true:bench"
# rclone 1.60 (Debian 12) takes a custom Azure endpoint only as a container SAS URL.
sas_url=$("$venv/bin/python" - "$az_port" "$key" <<'PY'
import sys
from datetime import datetime, timedelta, timezone
from azure.storage.blob import ContainerSasPermissions, generate_container_sas
port, key = sys.argv[1], sys.argv[2]
perm = ContainerSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True)
sas = generate_container_sas("devstoreaccount1", "bench", account_key=key, permission=perm, expiry=datetime.now(timezone.utc) + timedelta(hours=4))
print(f"http://127.0.0.1:{port}/devstoreaccount1/bench?{sas}")
PY
)
az_remote=":azureblob,sas_url='$sas_url':bench/"

# The files, and one execution per set whose output names them (what `export` selects).
make_set() { # name count bytes_each(0 = random 2-64 KiB)
  local dir=$work/$1
  mkdir -p "$dir"
  "$venv/bin/python" - "$dir" "$2" "$3" <<'PY'
import os, random, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(6)
for i in range(n):
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        left = size or rng.randint(2048, 65536)
        while left:
            chunk = min(left, 1 << 24)
            f.write(os.urandom(chunk))
            left -= chunk
PY
  "$venv/bin/python" - "$dir" "$work/$1.asl.json" <<'PY'
import json, os, sys
d, out = sys.argv[1], sys.argv[2]
files = [{"name": "bench", "path": os.path.join(d, f)} for f in sorted(os.listdir(d))]
json.dump({"StartAt": "Made", "States": {"Made": {"Type": "Pass", "Result": {"files": files}, "End": True}}}, open(out, "w"))
PY
  if [ "${SYNC_BENCH_LIBRARY:-0}" != 1 ]; then
    "$pixelflow" --data-dir "$work/data" workflow run "$work/$1.asl.json" >/dev/null
  fi
}

now() { date +%s.%N; }
rows=()
measure() { # server set tool command...
  local server=$1 set=$2 tool=$3
  shift 3
  local t0 t1
  t0=$(now)
  "$@" >/dev/null 2>"$work/err" || { echo "$tool to $server failed:" >&2; cat "$work/err" >&2; exit 1; }
  t1=$(now)
  local files bytes
  files=$(find "$work/$set" -type f | wc -l)
  bytes=$(du -sb "$work/$set" | cut -f1)
  rows+=("$(awk -v s="$server" -v set="$set" -v tool="$tool" -v t0="$t0" -v t1="$t1" -v f="$files" -v b="$bytes" \
    'BEGIN { d = t1 - t0; printf "| %s | %s (%d files, %.0f MB) | %s | %.2f | %.0f | %.1f |", s, set, f, b / 1e6, tool, d, f / d, b / 1e6 / d }')")
  echo "${rows[-1]}" >&2
}

# rclone in a clean environment: the AWS_* variables above (and a machine's AWS_CA_BUNDLE) are
# for pixelflow; rclone gets everything from its remote strings.
rc() { env -i PATH="$PATH" HOME="$HOME" rclone "$@"; }

# Both servers keep everything in memory: emptied after each measurement.
empty_servers() {
  rc purge "$s3_remote" >/dev/null 2>&1 || true
  rc delete "${az_remote}" >/dev/null 2>&1 || true
  "$venv/bin/python" tests/servers/storage.py s3 "http://127.0.0.1:$s3_port" create bench
  "$venv/bin/python" tests/servers/storage.py az "$az_cs" create bench
}

rounds=${SYNC_BENCH_ROUNDS:-1}
run_set() { # set
  local set=$1 round server tool
  for round in $(seq "$rounds"); do
    for server in moto azurite; do
      local tools=(pf rclone)
      [ $((round % 2)) -eq 0 ] && tools=(rclone pf)
      for tool in "${tools[@]}"; do
        case $server/$tool in
          moto/pf) measure moto "$set" "$pf_label" pf_upload "s3://bench/pf-$set-$round/" "$set" ;;
          moto/rclone) measure moto "$set" "rclone copy" rc copy "$work/$set" "$s3_remote/rc-$set-$round" --transfers 32 --checkers 32 ;;
          azurite/pf) measure azurite "$set" "$pf_label" pf_upload "az://bench/pf-$set-$round/" "$set" ;;
          azurite/rclone) measure azurite "$set" "rclone copy" rc copy "$work/$set" "${az_remote}rc-$set-$round" --transfers 32 --checkers 32 ;;
        esac
        empty_servers
      done
    done
  done
  rm -rf "${work:?}/$set"
}

for set in ${SYNC_BENCH_SETS:-small large}; do
  case $set in
    small) make_set small "$small_count" 0 ;;
    large) [ "$large_count" -gt 0 ] || continue; make_set large "$large_count" $((large_mb * 1024 * 1024)) ;;
  esac
  run_set "$set"
done

echo
echo "| server | files | tool | seconds | files/s | MB/s |"
echo "| --- | --- | --- | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
