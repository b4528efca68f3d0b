#!/usr/bin/env bash
# Host test: the Python package and napari plugin in a real napari under Xvfb (pytest-qt), plus the wheel layout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup-hosts.sh
cargo build --lib --quiet
.venv/bin/python -m pip install --quiet --no-deps -e plugin/napari
export UNET_LIBRARY=$root/target/debug/libunet.so UNET_TEST_ARTIFACTS=$root/out/test-artifacts
unset UNET_ORT_LIB  # ONNX Runtime must come from the onnxruntime package, as napari users have it
(cd plugin/napari && xvfb-run -a "$root/.venv/bin/python" -m pytest -q -p no:cacheprovider -W ignore tests)
wheel=$(scripts/build-napari-plugin.sh out/wheels | tail -1)
python3 -m zipfile -l "$wheel" | grep -q "unet_napari/lib/libunet.so" && echo "wheel carries libunet.so: $wheel"
