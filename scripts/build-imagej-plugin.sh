#!/usr/bin/env bash
# Builds the ImageJ/Fiji plugin in Fiji's layout: DEST/plugins/UNet_Plugin.jar and DEST/lib/linux64/ with
# libunet.so and ONNX Runtime beside it. Copy DEST's two folders into Fiji.app. Uses the JDK and Debian's ij.jar/jna.jar.
# Usage: scripts/build-imagej-plugin.sh [DEST] [debug|release]   (default out/imagej, release)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dest=${1:-out/imagej}
profile=${2:-release}
IJ_JAR=${IJ_JAR:-/usr/share/java/ij.jar}
JNA_JAR=${JNA_JAR:-/usr/share/java/jna.jar}
if [ "$profile" = release ]; then cargo build --release --lib --quiet; else cargo build --lib --quiet; fi
ort=$(scripts/fetch-onnxruntime.sh)
classes=$(mktemp -d)
trap 'rm -rf "$classes"' EXIT
# Java 8 bytecode: runs in every Fiji and ImageJ since 2014.
javac --release 8 -Xlint:all,-options -Werror -cp "$IJ_JAR:$JNA_JAR" -d "$classes" plugin/imagej/src/unet/imagej/*.java
cp plugin/imagej/src/plugins.config "$classes/"
mkdir -p "$dest/plugins" "$dest/lib/linux64"
jar cf "$dest/plugins/UNet_Plugin.jar" -C "$classes" .
cp "target/$profile/libunet.so" "$dest/lib/linux64/"
strip --strip-debug "$dest/lib/linux64/libunet.so"  # no debug info in the plugin (32 MB -> ~10 MB)
cp "$ort" "$dest/lib/linux64/"
echo "$dest"
