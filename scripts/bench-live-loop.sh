#!/usr/bin/env bash
# Benchmark of the C++ live acquisition loop (plugin/cpp/example/live_loop.cpp): per-frame latency of strided u16
# frames through one model with reused output buffers, 512x512 and 2048x2048, the embedded default model, release
# build; the same frames with fresh output vectors per frame are the reference in the same run. Medians.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
pkg=$(scripts/package.sh out/package-release release)
build=out/cpp-bench
cmake -S plugin/cpp/example -B "$build" -DCMAKE_BUILD_TYPE=Release -Dunet_DIR="$pkg/lib/cmake/unet" >/dev/null
cmake --build "$build" -j2 --target live_loop >/dev/null
unset UNET_EXAMPLE_MODEL
for size in "512 512 20" "2048 2048 6"; do
  # shellcheck disable=SC2086
  env -u UNET_ORT_LIB "$build/live_loop" $size bench | grep -E "^(live loop|median|fresh)"
done
