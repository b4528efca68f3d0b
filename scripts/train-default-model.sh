#!/usr/bin/env bash
# Reproduces the shipped default model (onnx/default.onnx) as the chain of runs it really was (onnx/MODEL_CARD.md):
#   1. base: a base-width-16 U-Net from scratch on CTC HeLa + U373 sequence 01 (silver truth), 16 epochs x 100 steps
#   2. ft1: fine-tuned from 1 with synthetic bright cells added; epochs 1-4 of a 15-epoch cosine schedule
#   3. ft2: fine-tuned from 2 with synthetic fluorescence nuclei instead; the first STOP2 epochs of a 10-epoch
#      schedule
#   4. ft3: fine-tuned from 3 on the same data, a full 6-epoch cosine schedule; post-processing tuned on each
#      dataset's held-out frames (the last 20 % of each sequence)
# Every run resumes after a crash (run the script again). Hours on the 2-core CPU machine; see the model card.
# Usage: scripts/train-default-model.sh [SHARED_DATA_DIR] [WORK_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${1:-$root/../shared/data/ctc}
work=${2:-$root/out/default-model-runs}
STOP2=${STOP2:-5}
export UNET_ORT_LIB=$(scripts/fetch-onnxruntime.sh)
cargo build --release --features train --quiet
unet=$root/target/release/unet
mkdir -p "$work"
common=(--base-width 16 --depth 4 --tile 572 --batch 1 --steps-per-epoch 100 --dropout 0.5 --w0 10 --sigma 5
        --border-width 2 --truth silver --val-fraction 0.2 --optimizer adam --schedule cosine --quiet)
resume() { [ -f "$1/checkpoints/latest" ] && echo --resume || true; }

# 1. The base model (76 min).
"$unet" train "$data/DIC-C2DH-HeLa" "$data/PhC-C2DH-U373" --out "$work/base" $(resume "$work/base") \
  "${common[@]}" --epochs 16 --lr 0.001 --seed 1 --no-tune

# 2. ft1: synthetic bright cells (30 images) join the CTC data.
mkdir -p "$work/synth-cells/images" "$work/synth-cells/labels"
for i in $(seq 1 30); do
  "$unet" sample-image "$work/synth-cells/images/s$i.tif" --labels "$work/synth-cells/labels/s$i.tif" \
    --seed $((1000 + i)) --cells $((30 + (i * 37) % 130)) >/dev/null
done
"$unet" train "$data/DIC-C2DH-HeLa" "$data/PhC-C2DH-U373" "$work/synth-cells" --out "$work/ft1" $(resume "$work/ft1") \
  --init "$work/base/model.onnx" "${common[@]}" --epochs 15 --stop-after 4 --lr 0.0003 --seed 2 --no-tune

# 3. ft2: realistic synthetic fluorescence nuclei (80 images) instead; tuned post-processing at the end.
mkdir -p "$work/synth-nuclei/images" "$work/synth-nuclei/labels"
for i in $(seq 1 80); do
  "$unet" sample-image "$work/synth-nuclei/images/n$i.tif" --labels "$work/synth-nuclei/labels/n$i.tif" \
    --style nuclei --seed $((2000 + i)) >/dev/null
done
"$unet" train "$data/DIC-C2DH-HeLa" "$data/PhC-C2DH-U373" "$work/synth-nuclei" --out "$work/ft2" $(resume "$work/ft2") \
  --init "$work/ft1/model.onnx" "${common[@]}" --epochs 10 --stop-after "$STOP2" --lr 0.0003 --seed 3 --no-tune

# 4. ft3: the same data again from ft2, a whole schedule; tuned post-processing at the end.
"$unet" train "$data/DIC-C2DH-HeLa" "$data/PhC-C2DH-U373" "$work/synth-nuclei" --out "$work/ft3" $(resume "$work/ft3") \
  --init "$work/ft2/model.onnx" "${common[@]}" --epochs 6 --lr 0.0003 --seed 4
echo "trained: $work/ft3/model.onnx (copy it to onnx/default.onnx and update onnx/MODEL_CARD.md)"
