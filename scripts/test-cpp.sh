#!/usr/bin/env bash
# Host test: package unet, then configure, build and ctest the C++ example with CMake (find_package(unet)),
# and compile it once more through pkg-config.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
pkg=$(scripts/package.sh out/package debug)
cargo build --quiet --bin unet
target/debug/unet export-baseline out/baseline.onnx >/dev/null
export UNET_EXAMPLE_MODEL=$root/out/baseline.onnx
build=out/cpp-build
rm -rf "$build"
cmake -S plugin/cpp/example -B "$build" -Dunet_DIR="$pkg/lib/cmake/unet" >/dev/null
cmake --build "$build" -j2 >/dev/null
# No UNET_ORT_LIB: ONNX Runtime must be found beside libunet.so in the package.
(cd "$build" && env -u UNET_ORT_LIB ctest --output-on-failure)
# pkg-config is installed by scripts/setup-hosts.sh: without it this leg fails rather than being skipped quietly.
command -v pkg-config >/dev/null || { echo "pkg-config is missing: run scripts/setup-hosts.sh"; exit 1; }
flags=$(PKG_CONFIG_PATH="$pkg/lib/pkgconfig" pkg-config --cflags --libs unet)
# shellcheck disable=SC2086
g++ -std=c++17 -Wall -Wextra -Werror plugin/cpp/example/main.cpp $flags -Wl,-rpath,"$pkg/lib" -lpthread -o "$build/example-pkgconfig"
env -u UNET_ORT_LIB "$build/example-pkgconfig" | tail -1
