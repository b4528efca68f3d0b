#!/usr/bin/env bash
# The README's fine-tuning recipe, measured: adapt the default model (never trained on electron microscopy) to
# ISBI 2012 EM slices with 5 annotated images, then score held-out slices before and after.
# Usage: scripts/fine-tune-example.sh [ISBI2012_DIR] [RUN_DIR] [STEPS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${1:-$root/../shared/data/isbi2012}
run=${2:-$root/out/fine-tune-example}
steps=${3:-300}
ort=$(scripts/fetch-onnxruntime.sh)
export UNET_ORT_LIB=$ort
cargo build --release --features train --quiet
unet=$root/target/release/unet
mkdir -p "$run"/{few,held-out}/{images,labels}
for i in 0 1 2 3 4; do  # the 5 annotated images a user brings
  ln -sf "$data/train/image/$i.png" "$run/few/images/$i.png"
  ln -sf "$data/train/label/$i.png" "$run/few/labels/$i.png"
done
for i in 15 16 17 18 19; do  # never trained on
  ln -sf "$data/train/image/$i.png" "$run/held-out/images/$i.png"
  ln -sf "$data/train/label/$i.png" "$run/held-out/labels/$i.png"
done
echo "before (the default model as shipped):"
"$unet" eval default "$run/held-out" --instances components
resume=()
[ -f "$run/train/checkpoints/latest" ] && resume=(--resume)
started=$(date +%s)
"$unet" train "$run/few" --init default --out "$run/train" "${resume[@]}" --val-fraction 0 \
  --epochs 3 --steps-per-epoch $((steps / 3)) --optimizer adam --lr 0.0003 --schedule cosine --quiet
echo "fine-tuned on 5 images, $steps steps, $(( $(date +%s) - started )) s"
echo "after:"
"$unet" eval "$run/train/model.onnx" "$run/held-out" --instances components
