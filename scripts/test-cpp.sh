#!/usr/bin/env bash
# Host test: package unet, then configure, build and ctest the C++ example with CMake (find_package(unet)),
# and compile it once more through pkg-config. Then the C ABI's non-network part (weight maps, errors) under valgrind.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
pkg=$(scripts/package.sh out/package debug)
# The installed library carries no debug info, only a link to the split-off file, which has it.
! readelf -S "$pkg/lib/libunet.so" | grep -q '\.debug_info' || { echo "libunet.so is not stripped"; exit 1; }
readelf --string-dump=.gnu_debuglink "$pkg/lib/libunet.so" | grep -q 'libunet.so.debug'
readelf -S "$pkg/lib/.debug/libunet.so.debug" | grep -q '\.debug_info'
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
# valgrind (installed by scripts/setup-hosts.sh) on the part of the C test that never loads ONNX Runtime: any
# invalid read or write, uninitialised use or bad free fails the run.
command -v valgrind >/dev/null || { echo "valgrind is missing: run scripts/setup-hosts.sh"; exit 1; }
cc -std=c11 -O1 -g -D_GNU_SOURCE -I include tests/c/test_abi.c -o "$build/test_abi" -Ltarget/debug \
  -Wl,-rpath,"$root/target/debug" -lunet -lpthread -lm
valgrind --error-exitcode=3 --leak-check=no -q "$build/test_abi" "$build" no-network | tail -1
