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
# The demo image for the napari sample (the folder make demo uses); UNET_TEST_ONLINE: the sample's own download
# from PyPI is tested too (CI reaches PyPI).
export UNET_DEMO_IMAGE=$(scripts/fetch-demo-image.sh) UNET_TEST_ONLINE=${UNET_TEST_ONLINE:-1}
export UNET_TEST_SAMPLE=$root/out/hosts-sample.tif UNET_TEST_SAMPLE_LABELS=$root/out/hosts-sample-watershed.tif
target/debug/unet sample-image "$UNET_TEST_SAMPLE" --width 256 --height 192 --cells 40 --seed 3 >/dev/null
target/debug/unet segment "$UNET_TEST_SAMPLE" --model "$UNET_TEST_MODEL" --provider cpu --instances watershed \
  --labels "$UNET_TEST_SAMPLE_LABELS" --quiet
# The shipped default with everything left to it (its recommended post-processing): Python must agree.
export UNET_TEST_SAMPLE_DEFAULT_LABELS=$root/out/hosts-sample-default.tif
target/debug/unet segment "$UNET_TEST_SAMPLE" --provider cpu --labels "$UNET_TEST_SAMPLE_DEFAULT_LABELS" --quiet
# The same image at a given object size (resampled to the model's 30 px and back): Python must agree.
export UNET_TEST_SAMPLE_SIZED_LABELS=$root/out/hosts-sample-size12.tif
target/debug/unet segment "$UNET_TEST_SAMPLE" --model "$UNET_TEST_MODEL" --provider cpu --object-size 12 \
  --labels "$UNET_TEST_SAMPLE_SIZED_LABELS" --quiet
# The baseline as if trained at 0.65 µm per pixel (the pixel-size rule through ctypes).
mkdir -p out/calibration-data/images out/calibration-data/labels
target/debug/unet sample-image out/calibration-data/images/a.tif --labels out/calibration-data/labels/a.tif \
  --width 128 --height 128 --cells 6 >/dev/null
export UNET_TEST_CALIBRATED_MODEL=$root/out/calibrated.onnx
target/debug/unet object-size out/calibration-data --into "$UNET_TEST_MODEL" -o "$UNET_TEST_CALIBRATED_MODEL" \
  --pixel-size 0.65 >/dev/null
unset UNET_ORT_LIB  # ONNX Runtime must come from the onnxruntime package, as napari users have it
(cd plugin/napari && xvfb-run -a "$root/.venv/bin/python" -m pytest -q -rs -p no:cacheprovider -W ignore tests)
# The plain-ctypes example from the README, with no package at all.
.venv/bin/python plugin/python/segment_ctypes.py target/debug/libunet.so "$UNET_TEST_MODEL" | tee out/ctypes-example.txt
grep -q ": 3 instance(s)" out/ctypes-example.txt || { echo "the ctypes example did not find the 3 squares"; exit 1; }
wheel=$(scripts/build-napari-plugin.sh out/wheels | tail -1)
listing=$(python3 -m zipfile -l "$wheel")
grep -q "unet_napari/lib/libunet.so" <<<"$listing" || { echo "the wheel lacks libunet.so"; exit 1; }
echo "wheel carries libunet.so: $wheel"
# The two ways a user gets ONNX Runtime (they install the same `onnxruntime` module and must not be mixed), and
# neither: each in a fresh venv from the wheel alone, as `pip install unet-napari[cpu|gpu]` would.
for extra in cpu gpu none; do
  venv=out/venv-ort-$extra
  rm -rf "$venv" && python3 -m venv "$venv"
  spec=$wheel; [ "$extra" = none ] || spec="$wheel[$extra]"
  "$venv/bin/pip" install --quiet "$spec" >&2
  UNET_EXTRA=$extra "$venv/bin/python" - "$UNET_TEST_MODEL" <<'PY'
import importlib.metadata as md, os, sys
import numpy as np
import unet_napari as un
extra, model = os.environ["UNET_EXTRA"], sys.argv[1]
installed = {d.metadata["Name"].lower() for d in md.distributions()}
if extra == "none":
    assert not installed & {"onnxruntime", "onnxruntime-gpu"}, installed
    try:
        un.load_model(model, "cpu")
        raise SystemExit("FAIL: a model loaded without any ONNX Runtime")
    except un.UnetError as e:
        assert "unet-napari[cpu]" in str(e) and "unet-napari[gpu]" in str(e), str(e)
        print("[none] no ONNX Runtime: the error names both extras")
else:
    want, other = ("onnxruntime", "onnxruntime-gpu") if extra == "cpu" else ("onnxruntime-gpu", "onnxruntime")
    assert want in installed and other not in installed, installed
    m = un.load_model(model, "cpu")
    lib = m.info["ort_library"]
    assert lib and lib.startswith(sys.prefix), (lib, sys.prefix)
    image = np.full((120, 160), 10, np.uint16)
    image[20:60, 20:60] = image[70:110, 90:140] = 3000
    n = int(un.segment(image, m, outputs=("labels",))["labels"].max())
    assert n == 2, n
    print(f"[{extra}] {want} {md.version(want)}: ONNX Runtime {m.info['ort_version']} from {lib}, {n} instances")
PY
done
