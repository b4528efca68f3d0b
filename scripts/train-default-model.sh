#!/usr/bin/env bash
# Reproduces the shipped default model (onnx/default.onnx) as the chain of runs it really was (onnx/MODEL_CARD.md):
#   1. base: a base-width-16 U-Net from scratch on CTC HeLa + U373 sequence 01 (silver truth), 16 epochs x 100 steps
#   2. ft1: fine-tuned from 1 with synthetic bright cells added; epochs 1-4 of a 15-epoch cosine schedule
#   3. ft2: fine-tuned from 2 with synthetic fluorescence nuclei instead; the first STOP2 epochs of a 10-epoch
#      schedule
#   4. ft3: fine-tuned from 3 on the same data, a full 6-epoch cosine schedule
#   5. ft4: fine-tuned from 4 on the same data, 6 more epochs (Adam 2e-4)
#   6. gpu1, gpu2: fine-tuned from 5 on a GPU (--device cuda; DEVICE=cpu runs them here, for hours): every second
#      training frame of HeLa + U373 and synthetic nuclei n1-n40, 1150 and then 2650 steps of 50-step epochs
#      (gpu2 is the first 53 epochs of a 58-epoch schedule: the GPU time ran out there)
#   7. gpu3: fine-tuned from gpu2 on a GPU with synthetic nuclei seeds 3001-3080 instead (half the samples), Adam
#      1e-4, the first 58 epochs of a 64-epoch schedule
#   8. post-processing tuned on the held-out frames (the last 20 % of each sequence; synthetic nuclei n68-n80)
#   9. ft6: fine-tuned from 8 on the CPU with all training frames and 100 new synthetic nuclei (seeds 4001-4100)
#  10. post-processing tuned again on the same held-out frames
#  11-13. dsb1, dsb2: fine-tuned on DSB 2018 stage 1 + HeLa + U373 (CPU), post-processing chosen by mean(AP@0.5, SEG)
# Every run resumes after a crash (run the script again). Hours on the 2-core CPU machine; see the model card.
# Usage: scripts/train-default-model.sh [CTC_DIR] [WORK_DIR]   (DSB=DIR names the DSB 2018 stage-1 folder; default
#        CTC_DIR/../dsb2018-stage1)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${1:-$root/../shared/data/ctc}
work=${2:-$root/out/default-model-runs}
STOP2=${STOP2:-5}
export UNET_ORT_LIB=$(scripts/fetch-onnxruntime.sh)
DEVICE=${DEVICE:-cuda}
cargo build --release --features "$([ "$DEVICE" = cpu ] && echo train || echo cuda)" --quiet
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

# 5. ft4: 6 more epochs from ft3.
"$unet" train "$data/DIC-C2DH-HeLa" "$data/PhC-C2DH-U373" "$work/synth-nuclei" --out "$work/ft4" $(resume "$work/ft4") \
  --init "$work/ft3/model.onnx" "${common[@]}" --epochs 6 --lr 0.0002 --seed 5 --no-tune

# 6. gpu1, gpu2 on a GPU: the data scripts/gpu-check.sh sends there (every second training frame, nuclei n1-n40).
python3 scripts/pack_ctc_train.py "$data" "$work/ctc-train-half" 0.2 --every 2 >/dev/null
mkdir -p "$work/nuclei-1-40/images" "$work/nuclei-1-40/labels"
for i in $(seq 1 40); do
  cp "$work/synth-nuclei/images/n$i.tif" "$work/nuclei-1-40/images/" && cp "$work/synth-nuclei/labels/n$i.tif" "$work/nuclei-1-40/labels/"
done
gpu=(--device "$DEVICE" --cuda-conv im2col --base-width 16 --depth 4 --tile 572 --batch 1 --steps-per-epoch 50
     --dropout 0.5 --w0 10 --sigma 5 --border-width 2 --truth silver --val-fraction 0 --no-tune --optimizer adam
     --schedule cosine --seed 7 --quiet)
half=("$work/ctc-train-half/DIC-C2DH-HeLa" "$work/ctc-train-half/PhC-C2DH-U373" "$work/nuclei-1-40")
"$unet" train "${half[@]}" --out "$work/gpu1" $(resume "$work/gpu1") --init "$work/ft4/model.onnx" "${gpu[@]}" --lr 0.0002 \
  --epochs 23
"$unet" train "${half[@]}" --out "$work/gpu2" $(resume "$work/gpu2") --init "$work/gpu1/model.onnx" "${gpu[@]}" \
  --lr 0.0002 --epochs 58 --stop-after 53

# 7. gpu3: 80 synthetic nuclei made as scripts/gpu-check.sh makes them there (seeds 3001-3080), Adam 1e-4.
mkdir -p "$work/nuclei-3001-3080/images" "$work/nuclei-3001-3080/labels"
for s in $(seq 3001 3080); do
  [ -f "$work/nuclei-3001-3080/images/n$s.tif" ] || "$unet" sample-image --style nuclei \
    "$work/nuclei-3001-3080/images/n$s.tif" --labels "$work/nuclei-3001-3080/labels/n$s.tif" --seed "$s" >/dev/null
done
"$unet" train "$work/ctc-train-half/DIC-C2DH-HeLa" "$work/ctc-train-half/PhC-C2DH-U373" "$work/nuclei-3001-3080" \
  --out "$work/gpu3" $(resume "$work/gpu3") --init "$work/gpu2/model.onnx" "${gpu[@]}" --lr 0.0001 --epochs 64 \
  --stop-after 58

# 8. Post-processing chosen on the held-out frames alone (copies, so that --held-out 0.99 scores all of them).
python3 - "$data" "$work/ctc-val" <<'PY'
import glob, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
for ds in ["DIC-C2DH-HeLa", "PhC-C2DH-U373"]:
    frames = sorted(glob.glob(f"{src}/{ds}/01/t*.tif"))
    os.makedirs(f"{dst}/{ds}/01", exist_ok=True); os.makedirs(f"{dst}/{ds}/01_ST/SEG", exist_ok=True)
    for f in frames[int(len(frames) * 0.8 + 0.5):]:
        num = int(os.path.basename(f)[1:-4])
        shutil.copy(f, f"{dst}/{ds}/01/")
        shutil.copy(f"{src}/{ds}/01_ST/SEG/man_seg{num:03d}.tif", f"{dst}/{ds}/01_ST/SEG/")
PY
mkdir -p "$work/nuclei-val/images" "$work/nuclei-val/labels"
for i in $(seq 68 80); do
  cp "$work/synth-nuclei/images/n$i.tif" "$work/nuclei-val/images/" && cp "$work/synth-nuclei/labels/n$i.tif" "$work/nuclei-val/labels/"
done
"$unet" eval "$work/gpu3/model.onnx" "$work/ctc-val/DIC-C2DH-HeLa" "$work/ctc-val/PhC-C2DH-U373" "$work/nuclei-val" \
  --held-out 0.99 --truth silver --tune --write "$work/gpu3-tuned.onnx"

# 9. ft6 (CPU, about 90 minutes on 2 cores): from the tuned gpu3, all training frames of HeLa + U373 and 100 new
#    synthetic nuclei (seeds 4001-4100; the last 20 % validate), Adam 5e-5 cosine, seed 9: the shipped model is
#    epoch 17 of the 32-epoch schedule (it scored higher on the validation frames than epoch 32): STOP6=17.
mkdir -p "$work/nuclei-4001-4100/images" "$work/nuclei-4001-4100/labels"
for s in $(seq 4001 4100); do
  [ -f "$work/nuclei-4001-4100/images/n$s.tif" ] || "$unet" sample-image --style nuclei \
    "$work/nuclei-4001-4100/images/n$s.tif" --labels "$work/nuclei-4001-4100/labels/n$s.tif" --seed "$s" >/dev/null
done
"$unet" train "$data/DIC-C2DH-HeLa" "$data/PhC-C2DH-U373" "$work/nuclei-4001-4100" --out "$work/ft6" $(resume "$work/ft6") \
  --init "$work/gpu3-tuned.onnx" "${common[@]}" --epochs 32 --stop-after "${STOP6:-17}" --lr 0.00005 --seed 9 --no-tune

# 10. Post-processing chosen again on the same held-out frames.
"$unet" eval "$work/ft6/model.onnx" "$work/ctc-val/DIC-C2DH-HeLa" "$work/ctc-val/PhC-C2DH-U373" "$work/nuclei-val" \
  --held-out 0.99 --truth silver --tune --write "$work/default.onnx"
# 11. dsb1 (CPU, 19 min): from the model of step 10 (ft6 tuned: the previous default), on DSB 2018 stage 1 (all three
#     kinds, stained tissue as its luminance; within each kind every fifth image validates) with HeLa + U373 (every
#     sequence, the last 20 % validate); 444-px tiles (DSB images are 256-1024 px), --augment versatile (zoom
#     1/1.5-1.5, inverted contrast in 30 % of tiles); the first 5 epochs of a 20 x 120-step cosine schedule, Adam
#     2e-4; the best epoch by validation mean(AP@0.5, SEG) is kept as best.onnx (epoch 5).
dsb=${DSB:-$data/../dsb2018-stage1}
dsbc=(--tile 444 --batch 1 --steps-per-epoch 120 --optimizer adam --lr 0.0002 --schedule cosine --augment versatile
      --val-fraction 0.2 --truth silver --quiet --no-tune)
"$unet" train "$dsb" "$data/DIC-C2DH-HeLa" "$data/PhC-C2DH-U373" --out "$work/dsb1" $(resume "$work/dsb1") \
  --init "$work/default.onnx" "${dsbc[@]}" --epochs 20 --stop-after 5 --seed 11
# 12. dsb2 (CPU): from dsb1's best, each dataset and image kind drawn by the square root of its size
#     (--balance-groups), a 14-epoch schedule, seed 12; its best epoch (best.onnx) goes on.
"$unet" train "$dsb" "$data/DIC-C2DH-HeLa" "$data/PhC-C2DH-U373" --out "$work/dsb2" $(resume "$work/dsb2") \
  --init "$work/dsb1/best.onnx" "${dsbc[@]}" --epochs 14 --balance-groups --seed 12
# 13. The post-processing, chosen on the same validation parts by mean(AP@0.5, SEG) over the five sets.
"$unet" eval "$work/dsb2/best.onnx" "$dsb" "$data/DIC-C2DH-HeLa" "$data/PhC-C2DH-U373" --held-out 0.2 --truth silver \
  --tune --quick --write "$work/default-dsb.onnx"
echo "trained: $work/default-dsb.onnx (copy it to onnx/default.onnx, run scripts/model-card-figures.sh, update onnx/MODEL_CARD.md)"
