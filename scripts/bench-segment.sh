#!/usr/bin/env bash
# CPU benchmark of unet_segment through the C ABI against raw ONNX Runtime (Python onnxruntime) on the same
# tiles, in one process and one run. Installs what it needs into .venv (idempotent).
# Usage: scripts/bench-segment.sh [extra args for benches/bench_segment.py]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import onnxruntime, numpy" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet "onnxruntime==1.31.1" "numpy<3"
fi
cargo build --release --quiet
mkdir -p out/bench
for w in 16 64; do
  [ -f out/bench/unet-base$w.onnx ] || ./target/release/unet init-model --base-width $w out/bench/unet-base$w.onnx >/dev/null
done
exec .venv/bin/python benches/bench_segment.py --lib target/release/libunet.so --models out/bench "$@"
