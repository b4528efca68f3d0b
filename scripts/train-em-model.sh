#!/usr/bin/env bash
# Reproduces onnx/em.onnx: the default model fine-tuned on ISBI 2012 EM slices 0-14 in two runs (em1: 400 steps,
# ~33 min on 2 CPU cores; em2: 3 750 more steps, ~100 min; each resumable), post-processing tuned for the Rand score
# on slices 15-19 (never trained on), written with float16 weights. em1 started from the default model of its day
# (2026-11-26, before the GPU runs): `--init default` with today's default gives a similar, not identical, em1.
# Usage: scripts/train-em-model.sh [ISBI2012_DIR] [RUN_DIR]   (add --device cuda via UNET_TRAIN_DEVICE=cuda)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${1:-$root/../shared/data/isbi2012}
run=${2:-$HOME/unet-runs/em}
export UNET_ORT_LIB=$(scripts/fetch-onnxruntime.sh)
cargo build --release --features train --quiet
unet=$root/target/release/unet
mkdir -p "$run"/train/train/{image,label} "$run"/isbi2012/slices-15-19/train/{image,label}
for i in $(seq 0 14); do
  ln -sf "$data/train/image/$i.png" "$run/train/train/image/$i.png"
  ln -sf "$data/train/label/$i.png" "$run/train/train/label/$i.png"
done
for i in 15 16 17 18 19; do
  ln -sf "$data/train/image/$i.png" "$run/isbi2012/slices-15-19/train/image/$i.png"
  ln -sf "$data/train/label/$i.png" "$run/isbi2012/slices-15-19/train/label/$i.png"
done
resume=()
[ -f "$run/em1/checkpoints/latest" ] && resume=(--resume)
# The shipped model stopped after epoch 8 of this 12-epoch cosine schedule.
"$unet" train "$run/train" --out "$run/em1" --init default --tile 572 --batch 1 --epochs 12 --steps-per-epoch 50 \
  --optimizer adam --lr 0.0003 --schedule cosine --dropout 0.5 --val-fraction 0 --no-tune --seed 7 --quiet \
  --stop-after 8 --device "${UNET_TRAIN_DEVICE:-cpu}" "${resume[@]}"
# em2: 75 more epochs from em1 as it shipped before (float16 weights), Adam 1e-4 cosine.
[ -f "$run/em1-fp16.onnx" ] || "$unet" convert "$run/em1/model.onnx" "$run/em1-fp16.onnx" --fp16
resume=()
[ -f "$run/em2/checkpoints/latest" ] && resume=(--resume)
"$unet" train "$run/train" --out "$run/em2" --init "$run/em1-fp16.onnx" --tile 572 --batch 1 --epochs 75 \
  --steps-per-epoch 50 --optimizer adam --lr 0.0001 --schedule cosine --dropout 0.5 --val-fraction 0 --no-tune \
  --seed 8 --quiet --device "${UNET_TRAIN_DEVICE:-cpu}" "${resume[@]}"
"$unet" eval "$run/em2/model.onnx" "$run/isbi2012/slices-15-19" --held-out 0.99 --tune --tune-for rand \
  --write "$run/em-tuned.onnx"
"$unet" convert "$run/em-tuned.onnx" onnx/em.onnx --fp16 --check "$data/train/image/15.png" --provider cpu
"$unet" eval onnx/em.onnx "$run/isbi2012/slices-15-19"
