#!/usr/bin/env bash
# Builds the unet-napari wheel with the native library inside it (unet_napari/lib/libunet.so).
# Usage: scripts/build-napari-plugin.sh [OUT_DIR]   (default out/wheels)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${1:-out/wheels}
cargo build --release --lib --quiet
lib=plugin/napari/src/unet_napari/lib
mkdir -p "$lib" "$out"
cp target/release/libunet.so "$lib/"
strip --strip-debug "$lib/libunet.so"  # the wheel carries no debug info (32 MB -> ~10 MB)
trap 'rm -rf "$lib" plugin/napari/build plugin/napari/src/*.egg-info' EXIT
rm -f "$out"/unet_napari-*.whl
python3 -m pip wheel --quiet --no-deps --no-build-isolation -w "$out" plugin/napari 2>/dev/null \
  || .venv/bin/python -m pip wheel --quiet --no-deps -w "$out" plugin/napari
# Tagged for this platform by plugin/napari/setup.py (it carries native code): never py3-none-any.
ls "$out"/unet_napari-*-py3-none-linux_*.whl
