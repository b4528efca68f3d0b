#!/usr/bin/env bash
# Host test: the Python package and napari plugin in a real napari under Xvfb (pytest-qt), plus the wheel layout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup-hosts.sh
cargo build --lib --quiet
.venv/bin/python -m pip install --quiet --no-deps -e plugin/napari
cargo build --quiet --bin unet
mkdir -p out && target/debug/unet export-baseline out/baseline.onnx >/dev/null
export UNET_LIBRARY=$root/target/debug/libunet.so UNET_TEST_ARTIFACTS=$root/out/test-artifacts
export UNET_TEST_MODEL=$root/out/baseline.onnx UNET_TEST_RANDOM_MODEL=$root/out/random-depth4.onnx
target/debug/unet init-model --base-width 2 --depth 4 --seed 3 "$UNET_TEST_RANDOM_MODEL" >/dev/null
# The same image and model through the CLI, for the cross-host check in tests/test_api.py.
export UNET_TEST_SAMPLE=$root/out/hosts-sample.tif UNET_TEST_SAMPLE_LABELS=$root/out/hosts-sample-watershed.tif
target/debug/unet sample-image "$UNET_TEST_SAMPLE" --width 256 --height 192 --cells 40 --seed 3 >/dev/null
target/debug/unet segment "$UNET_TEST_SAMPLE" --model "$UNET_TEST_MODEL" --provider cpu --instances watershed \
  --labels "$UNET_TEST_SAMPLE_LABELS" --quiet
unset UNET_ORT_LIB  # ONNX Runtime must come from the onnxruntime package, as napari users have it
(cd plugin/napari && xvfb-run -a "$root/.venv/bin/python" -m pytest -q -rs -p no:cacheprovider -W ignore tests)
# The plain-ctypes example from the README, with no package at all.
.venv/bin/python plugin/python/segment_ctypes.py target/debug/libunet.so "$UNET_TEST_MODEL" | tee out/ctypes-example.txt
grep -q ": 3 instance(s)" out/ctypes-example.txt || { echo "the ctypes example did not find the 3 squares"; exit 1; }
wheel=$(scripts/build-napari-plugin.sh out/wheels | tail -1)
listing=$(python3 -m zipfile -l "$wheel")
grep -q "unet_napari/lib/libunet.so" <<<"$listing" || { echo "the wheel lacks libunet.so"; exit 1; }
echo "wheel carries libunet.so: $wheel"
