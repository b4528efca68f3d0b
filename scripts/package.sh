#!/usr/bin/env bash
# Lays out an installable unet package: DEST/{include, lib (libunet.so + ONNX Runtime beside it), lib/cmake/unet,
# lib/pkgconfig}. Usage: scripts/package.sh DEST [debug|release]   (builds the library first)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:?usage: package.sh DEST [debug|release]}
profile=${2:-release}
cd "$root"
if [ "$profile" = release ]; then cargo build --release --lib --quiet; else cargo build --lib --quiet; fi
ort=$(scripts/fetch-onnxruntime.sh)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
mkdir -p "$dest"/include/unet "$dest"/lib/cmake/unet "$dest"/lib/pkgconfig
dest=$(cd "$dest" && pwd)
cp include/unet.h "$dest"/include/
cp plugin/cpp/include/unet/unet.hpp "$dest"/include/unet/
cp "target/$profile/libunet.so" "$dest"/lib/
# Shipped stripped (~10 MB instead of ~40 MB); the debug info goes beside it, split off, where gdb finds it by the
# debug link (lib/.debug/libunet.so.debug): crash reports from users stay readable.
mkdir -p "$dest"/lib/.debug
objcopy --only-keep-debug "$dest"/lib/libunet.so "$dest"/lib/.debug/libunet.so.debug
strip --strip-debug "$dest"/lib/libunet.so
(cd "$dest"/lib && objcopy --add-gnu-debuglink=.debug/libunet.so.debug libunet.so)
# ONNX Runtime beside libunet.so: the library finds it there with nothing else configured.
cp "$ort" "$dest"/lib/
subst() { sed -e "s|@VERSION@|$version|g" -e "s|@MAJOR@|${version%%.*}|g" -e "s|@PREFIX@|$dest|g" "$1" > "$2"; }
subst plugin/cpp/cmake/unetConfig.cmake.in "$dest"/lib/cmake/unet/unetConfig.cmake
subst plugin/cpp/cmake/unetConfigVersion.cmake.in "$dest"/lib/cmake/unet/unetConfigVersion.cmake
subst plugin/cpp/cmake/unet.pc.in "$dest"/lib/pkgconfig/unet.pc
echo "$dest"
