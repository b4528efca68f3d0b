#!/usr/bin/env bash
# Regenerates every figure of the default model's card, each in one file written here:
#   onnx/MODEL_CARD.md        (between its "figures" markers) per dataset and image kind, on this project's
#                             validation parts (../shared data: the
#                             DSB 2018 stage-1 kinds, the last 20 % of each HeLa and U373 sequence, silver truth) and
#                             on the demo image: AP@0.5, AP@0.75 (TP/FP/FN), SEG and foreground IoU, with the
#                             model's recommended post-processing and with connected components
#   onnx/default-quality.csv  the committed CC0 evaluation subset (tests/data/dsb2018-eval): what
#                             tests/model_quality.rs asserts in `make test`
# Usage: scripts/model-card-figures.sh [SHARED_DATA_DIR]   (MODEL=path.onnx scores another model, writing the
# tables to out/figures-MODELNAME.md instead and leaving onnx/ alone)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${1:-$root/../shared/data}
model=${MODEL:-default}
export UNET_ORT_LIB=$(scripts/fetch-onnxruntime.sh)
demo=$(scripts/fetch-demo-image.sh)
cargo build --release --features train --quiet
unet=$root/target/release/unet
mkdir -p out/figures
sets=("$data/dsb2018-stage1" "$data/ctc/DIC-C2DH-HeLa" "$data/ctc/PhC-C2DH-U373")
for inst in model components; do
  echo "== $model, validation parts, instances: $inst" >&2
  "$unet" eval "$model" "${sets[@]}" --held-out 0.2 --truth silver --instances "$inst" --csv "out/figures/val-$inst.csv"
  "$unet" eval "$model" "$demo" --instances "$inst" --csv "out/figures/demo-$inst.csv"
done
if [ "$model" = default ]; then
  table=onnx/MODEL_CARD.md
else
  table=out/figures-$(basename "$model" .onnx).md
fi
python3 - "$model" "$table" <<'EOF'
import csv, sys, datetime, subprocess
model, out = sys.argv[1], sys.argv[2]
def rows(name):
    return list(csv.DictReader(open(f"out/figures/{name}.csv")))
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
lines = [
    f"Written by `scripts/model-card-figures.sh` for `{model}` (commit {commit}, {datetime.date.today()}).",
    "",
    "Validation parts: DSB 2018 stage 1 by image kind (within each kind every fifth image in name order, never",
    "trained on), the last 20 % of each CTC sequence (silver truth); the demo image (never trained on, used for no",
    "choice). AP@τ = TP / (TP + FP + FN), pooled over the set, a match at IoU > τ; SEG as the Cell Tracking Challenge.",
    "",
]
for inst, title in [("model", "recommended post-processing (the model's metadata)"), ("components", "connected components")]:
    lines += [f"**With {title}**", "",
              "| set | images | objects | instances | AP@0.5 | TP / FP / FN | AP@0.75 | SEG | IoU |",
              "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for r in rows(f"val-{inst}") + [dict(r, set="demo image (dsb2018-nuclei)") for r in rows(f"demo-{inst}")]:
        lines.append(f"| {r['set']} | {r['images']} | {r['objects']} | {r['instances']} | **{r['ap50']}** | "
                     f"{r['tp50']} / {r['fp50']} / {r['fn50']} | {r['ap75']} | **{r['seg']}** | {r['iou']} |")
    lines.append("")
begin, end = "<!-- figures: begin (scripts/model-card-figures.sh) -->", "<!-- figures: end -->"
block = begin + "\n" + "\n".join(lines) + end
if out.endswith("MODEL_CARD.md"):
    card = open(out).read()
    if begin not in card or end not in card:
        sys.exit(f"{out} has no figures markers")
    text = card[:card.index(begin)] + block + card[card.index(end) + len(end):]
else:
    text = block + "\n"
open(out + ".tmp", "w").write(text)
import os; os.replace(out + ".tmp", out)
print("wrote", out)
EOF
if [ "$model" = default ]; then
  UNET_WRITE_QUALITY=1 cargo test --release --features train --test model_quality -- --nocapture
fi
