#!/usr/bin/env bash
# Host test: the ImageJ plugin in Debian's real ImageJ 1.x, headless through a macro and through the real menu
# commands under Xvfb. ImageJ's -batch exits 0 even when a macro fails, so the test reads what the macro printed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup-hosts.sh --no-python
dest=$(scripts/build-imagej-plugin.sh out/imagej debug)
# The intensity baseline: its behaviour on bright squares is known (the embedded default changes when retrained).
cargo build --quiet --bin unet
baseline=$root/out/baseline.onnx
target/debug/unet export-baseline "$baseline" >/dev/null
package=$root/out/baseline-package.zip  # the same network as a bioimage.io package
target/debug/unet export-bioimageio "$baseline" -o "$package" >/dev/null
# The same image and model through the CLI, for the cross-host check in headless.ijm.
sample=$root/out/hosts-sample.tif sample_labels=$root/out/hosts-sample-watershed.tif
target/debug/unet sample-image "$sample" --width 256 --height 192 --cells 40 --seed 3 >/dev/null
target/debug/unet segment "$sample" --model "$baseline" --provider cpu --instances watershed --labels "$sample_labels" --quiet
# ... and with the shipped default, everything left to its recommendation.
default_labels=$root/out/hosts-sample-default.tif
target/debug/unet segment "$sample" --provider cpu --labels "$default_labels" --quiet
# The baseline as if trained at 0.65 µm per pixel: a calibrated ImageJ image is resampled by the ratio.
calibrated=$root/out/calibrated.onnx
mkdir -p out/calibration-data/images out/calibration-data/labels
target/debug/unet sample-image out/calibration-data/images/a.tif --labels out/calibration-data/labels/a.tif \
  --width 128 --height 128 --cells 6 >/dev/null
target/debug/unet object-size out/calibration-data --into "$baseline" -o "$calibrated" --pixel-size 0.65 >/dev/null
unset UNET_ORT_LIB  # ONNX Runtime must be found beside libunet.so, as in Fiji's lib/linux64
cp_="/usr/share/java/ij.jar:/usr/share/java/jna.jar"
run_macro() {  # NAME MACRO [java args...]
  local name=$1 macro=$2; shift 2
  local script; script=$(mktemp --suffix=.ijm)
  cat plugin/imagej/test/common.ijm "$macro" | sed "s|@BASELINE@|$baseline|g; s|@PACKAGE@|$package|g; s|@SAMPLE@|$sample|g; s|@SAMPLE_LABELS@|$sample_labels|g; s|@CALIBRATED@|$calibrated|g; s|@DEFAULT_LABELS@|$default_labels|g" > "$script"
  local log="out/imagej-$name.log"
  # A macro error opens a modal dialog under a display and would wait forever: bound the run. No
  # -Djna.library.path: the plugin must find lib/linux64 beside its jar by itself, as a new user's ImageJ would.
  timeout 600 "$@" ij.ImageJ -batch "$script" > "$log" 2>&1 || true
  rm -f "$script"
  local pass fail
  pass=$(grep -c '^PASS' "$log" || true)
  fail=$(grep -c '^FAIL' "$log" || true)
  { grep -E '^(PASS|FAIL)' "$log" || true; } | sed "s/^/  [$name] /"
  if [ "$fail" != 0 ] || [ "$pass" -lt 8 ] || ! grep -q '^DONE' "$log"; then
    echo "ImageJ $name test failed; log:"; cat "$log"; return 1
  fi
  echo "ImageJ $name: $pass passed, $fail failed"
}
run_macro headless plugin/imagej/test/headless.ijm java -Djava.awt.headless=true -cp "$cp_:$dest/plugins/UNet_Plugin.jar"
grep -q "U-Net error: .*nonexistent/model.onnx" out/imagej-headless.log || { echo "the error did not reach the log"; exit 1; }
# The menu test runs from the Fiji update-site folder (`make fiji-update-site`, release build), as a user installs it.
site=$(scripts/fiji-update-site.sh out/fiji-update-site | tail -1)
run_macro menu plugin/imagej/test/menu.ijm xvfb-run -a java -Dplugins.dir="$site" -cp "$cp_"
# Progress bar and Esc, which no macro can observe: a Java harness records what the plugin shows on ImageJ's bar.
classes=$(mktemp -d)
javac -d "$classes" -cp "$cp_:$dest/plugins/UNet_Plugin.jar" plugin/imagej/test/ProgressAndEscape.java
log=out/imagej-progress.log
timeout 300 java -Djava.awt.headless=true -cp "$cp_:$dest/plugins/UNet_Plugin.jar:$classes" ProgressAndEscape \
  "$baseline" > "$log" 2>&1 || true
rm -rf "$classes"
{ grep -E '^(PASS|FAIL)' "$log" || true; } | sed "s/^/  [progress] /"
if grep -q '^FAIL' "$log" || [ "$(grep -c '^PASS' "$log")" -lt 7 ] || ! grep -q '^DONE' "$log"; then
  echo "ImageJ progress test failed; log:"; cat "$log"; exit 1
fi
