#!/usr/bin/env bash
# Host test: unet's bioimage.io model packages checked by the official runner (`bioimageio test` from bioimageio.core
# on PyPI), which validates rdf.yaml against the 0.5 spec and reproduces the test output from the test input through
# ONNX Runtime with the preprocessing the package describes. A package with a wrong description must fail it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# Its own venv: bioimageio.core pins differ from napari's. pydantic 2.12+ breaks bioimageio.spec 0.5.12's
# serialisers ("'index_key' is expected to be an integer"), hence the pin.
venv=$root/.venv-bioimageio
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c "import bioimageio.core, onnxruntime, onnx" 2>/dev/null; then
  "$venv/bin/pip" install --quiet "bioimageio.core==0.11.0" "bioimageio.spec==0.5.12.0" "pydantic==2.11.10" \
    "onnxruntime==1.32.0" "onnx==1.23.2" >&2
fi
cargo build --quiet --bin unet
unet=$root/target/debug/unet
out=$root/out/bioimageio
rm -rf "$out" && mkdir -p "$out"
# The two shipped models, a float16 one, and an architecture of another shape (3 channels in, 3 classes, depth 3).
"$unet" convert default "$out/default-fp16.onnx" --fp16 >/dev/null
"$unet" init-model --in-channels 3 --classes 3 --base-width 4 --depth 3 --seed 5 "$out/rgb-3class.onnx" >/dev/null
for model in ${MODELS:-default em "$out/default-fp16.onnx" "$out/rgb-3class.onnx"}; do
  package=$out/$(basename "$model" .onnx).zip
  "$unet" export-bioimageio "$model" -o "$package"
  "$venv/bin/bioimageio" test "$package" > "$package.log" 2>&1 || { cat "$package.log"; echo "bioimageio test failed: $package"; exit 1; }
  grep -q "Reproduce test outputs from test inputs (onnx)" "$package.log" || { cat "$package.log"; exit 1; }
  echo "bioimageio test passed: $package"
done
# The runner really compares: the same package claiming another normalisation (percentiles 5..95) must fail.
wrong=$out/wrong-normalisation
mkdir -p "$wrong" && (cd "$wrong" && python3 -m zipfile -e "$out/default.zip" . && \
  sed -i 's/min_percentile: 1, max_percentile: 99.8/min_percentile: 5, max_percentile: 95/' rdf.yaml && \
  grep -q "max_percentile: 95" rdf.yaml && python3 -m zipfile -c ../wrong-normalisation.zip ./*)
if "$venv/bin/bioimageio" test "$out/wrong-normalisation.zip" > "$out/wrong-normalisation.log" 2>&1; then
  cat "$out/wrong-normalisation.log"; echo "a package with the wrong normalisation passed bioimageio test"; exit 1
fi
echo "a package with the wrong normalisation fails bioimageio test, as it must"

# Packages unet did not write (networks made with the onnx package, described with bioimageio.spec), run by
# `unet segment --model PACKAGE.zip` and compared with the whole-image run; then the official runner checks them
# too, and unet's own default package must run as a package with the model's exact probabilities.
foreign=$out/foreign
"$unet" sample-image "$out/foreign-sample.tif" --width 300 --height 260 >/dev/null
(cd /tmp && "$venv/bin/python" "$root/scripts/bioimageio_foreign.py" "$unet" "$out/foreign-sample.tif" "$foreign" \
  "$out/default.zip" default)
for package in "$foreign"/nhwc-sigmoid.zip "$foreign"/fixed-softmax.zip; do
  "$venv/bin/bioimageio" test "$package" > "$package.log" 2>&1 || { cat "$package.log"; echo "bioimageio test failed: $package"; exit 1; }
  echo "bioimageio test passed: $package (not unet's)"
done
