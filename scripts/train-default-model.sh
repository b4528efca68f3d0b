#!/usr/bin/env bash
# Reproduces the shipped default model (onnx/default.onnx) with one command: a base-width-16 U-Net trained on the
# Cell Tracking Challenge HeLa and U373 sequence 01 (silver truth; the last 20 % of frames held out, validated on
# their gold truth). About an hour on the project's 2-core CPU machine. Resumable: run it again after a crash.
# Usage: scripts/train-default-model.sh [SHARED_DATA_DIR] [RUN_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${1:-$root/../shared/data/ctc}
run=${2:-$root/out/default-model-run}
ort=$(scripts/fetch-onnxruntime.sh)
cargo build --release --features train --quiet
resume=()
[ -f "$run/checkpoints/latest" ] && resume=(--resume)
./target/release/unet train "$data/DIC-C2DH-HeLa" "$data/PhC-C2DH-U373" --out "$run" "${resume[@]}" \
  --base-width 16 --depth 4 --tile 572 --batch 1 --epochs 16 --steps-per-epoch 100 \
  --optimizer adam --lr 0.001 --schedule cosine --dropout 0.5 --w0 10 --sigma 5 --border-width 2 \
  --truth silver --val-fraction 0.2 --seed 1 --ort-lib "$ort" --quiet
echo "trained: $run/model.onnx (copy it to onnx/default.onnx and update onnx/MODEL_CARD.md)"
