#!/usr/bin/env bash
# Fetch the official ONNX Runtime shared library (CPU build) from its PyPI wheel into a project-local folder.
# Idempotent: does nothing when the pinned library is already there. No Python import is needed: the wheel is a zip.
# Usage: scripts/fetch-onnxruntime.sh [DEST]   (default: .onnxruntime in the repository root)
set -euo pipefail
ORT_VERSION=1.31.1
WHEEL=onnxruntime-${ORT_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl
WHEEL_SHA256=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/.onnxruntime}
lib=$dest/libonnxruntime.so.$ORT_VERSION
if [ -f "$lib" ] && [ -f "$dest/.complete" ]; then
  echo "$lib"
  exit 0
fi
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 "onnxruntime==$ORT_VERSION" -d "$tmp" >&2
echo "$WHEEL_SHA256  $tmp/$WHEEL" | sha256sum --check --quiet - >&2
python3 - "$tmp/$WHEEL" "$tmp" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract("onnxruntime/capi/libonnxruntime.so.1.31.1", sys.argv[2])
PY
# Write atomically: a half-copied library must never look complete.
mv "$tmp/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" "$lib.part"
mv "$lib.part" "$lib"
ln -sf "libonnxruntime.so.$ORT_VERSION" "$dest/libonnxruntime.so"
touch "$dest/.complete"
echo "$lib"
