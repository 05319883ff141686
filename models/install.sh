#!/usr/bin/env bash
# Installs the IS-Net background-removal models for the segment step, from the npm package
# @imgly/background-removal-data (AGPL-3.0; the weights come from the DIS project and its
# dataset is for non-commercial use: read models/README.md before using them).
#
#   bash models/install.sh [small|medium|all]    # default: small
#
# The package (a pinned version, its tarball checked against a pinned sha512) ships each model
# as chunks named by their sha256, listed in dist/resources.json. Each chunk's hash is checked,
# the chunks are concatenated in order, and the total size and the sha256 of the result are
# checked against the manifest (models/<name>.json) before the file is moved into place.
# Output: ${PIXELFLOW_MODELS_DIR:-~/.cache/pixelflow/models}/<name>.onnx plus its manifest,
# where the segment step looks. Idempotent: an installed, intact model is left as it is.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${PIXELFLOW_MODELS_DIR:-$HOME/.cache/pixelflow/models}
dest=${dest%%:*}
version=1.4.5
integrity=sha512-iRXZpPd7YirbJ4eOZ3SlvbdJkAc/LxVjzWLMHOezmRrVThPJPdPc+Y2kHEAVFEVvpDIuvBDyOfTTFBSJT2QR5w==

case "${1:-small}" in
  small) which=(small) ;;
  medium) which=(medium) ;;
  all) which=(small medium) ;;
  *) echo "usage: $0 [small|medium|all]" >&2; exit 2 ;;
esac

mkdir -p "$dest"
python=$(command -v python3)

# Already installed and intact?
missing=()
for size in "${which[@]}"; do
  name=isnet-general-$size
  if ! "$python" - "$here/$name.json" "$dest/$name.onnx" <<'PY'
import hashlib, json, os, sys
m = json.load(open(sys.argv[1])); f = sys.argv[2]
ok = os.path.isfile(f) and os.path.getsize(f) == m["bytes"]
if ok:
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    ok = h.hexdigest() == m["sha256"]
sys.exit(0 if ok else 1)
PY
  then
    missing+=("$size")
  fi
  cp "$here/$name.json" "$dest/$name.json"
done
if ((${#missing[@]} == 0)); then
  echo "models: ${which[*]} already installed in $dest" >&2
  exit 0
fi

# The package tarball, from the npm registry through npm, checked against the pinned sha512.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack "@imgly/background-removal-data@$version" --json --loglevel=error >pack.json)
got=$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["integrity"])' "$work/pack.json")
if [ "$got" != "$integrity" ]; then
  echo "models: the package's integrity is $got, expected $integrity" >&2
  exit 1
fi
tar -xzf "$work"/imgly-background-removal-data-$version.tgz -C "$work" package/dist package/LICENSE.md

for size in "${missing[@]}"; do
  name=isnet-general-$size
  "$python" - "$work/package/dist" "/models/$size" "$here/$name.json" "$dest/$name.onnx" <<'PY'
import hashlib, json, os, sys
dist, key, manifest, out = sys.argv[1:]
m = json.load(open(manifest))
entry = json.load(open(os.path.join(dist, "resources.json")))[key]
total = hashlib.sha256()
size = 0
tmp = out + ".part"
with open(tmp, "wb") as f:
    for i, chunk in enumerate(entry["chunks"]):
        data = open(os.path.join(dist, chunk["hash"]), "rb").read()
        start, end = chunk["offsets"]
        if hashlib.sha256(data).hexdigest() != chunk["hash"] or len(data) != end - start or start != size:
            sys.exit(f"models: chunk {i} ({chunk['hash']}) of {key} does not match resources.json")
        f.write(data)
        total.update(data)
        size += len(data)
if size != entry["size"] or size != m["bytes"]:
    sys.exit(f"models: {key} assembled to {size} bytes; resources.json says {entry['size']}, the manifest {m['bytes']}")
if total.hexdigest() != m["sha256"]:
    sys.exit(f"models: {key} has sha256 {total.hexdigest()}, the manifest says {m['sha256']}")
os.replace(tmp, out)
PY
  cp "$work/package/LICENSE.md" "$dest/LICENSE-background-removal-data.md"
  echo "models: installed $dest/$name.onnx" >&2
done
