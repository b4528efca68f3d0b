#!/usr/bin/env bash
# Fuzzes unet with AFL++ on the stable toolchain (cargo-afl): the ONNX model reader, the model metadata parser,
# the TIFF/PNG readers, unet_segment and unet_weight_map through the C ABI (tests/fuzz/src/bin/*.rs).
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 s each, every target
# Installs afl++ (Debian) and cargo-afl when missing. Findings and statistics go to out/fuzz/TARGET; the summary
# prints executions, paths, crashes and hangs per target and the exit status is 1 when any target crashed or hung.
# A crash reproduces with: tests/fuzz/target/release/TARGET < out/fuzz/TARGET/default/crashes/id:...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(model_bytes model_metadata image_file weight_map segment)

if ! command -v afl-fuzz >/dev/null; then
  sudo=$(command -v sudo || true)
  $sudo apt-get install -y -q afl++ >/dev/null
fi
command -v cargo-afl >/dev/null || cargo install --quiet cargo-afl --version 0.18.2
cargo afl config --build >/dev/null 2>&1 || true   # builds AFL++'s runtime for this rustc once
export UNET_ORT_LIB=${UNET_ORT_LIB:-$(scripts/fetch-onnxruntime.sh)}

(cd tests/fuzz && cargo afl build --release --quiet --bins)
# No core dump handler to wait for, no CPU frequency checks, plain status lines instead of the full-screen UI.
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
status=0
printf '%-16s %12s %10s %10s %8s %8s\n' target executions exec/s corpus crashes hangs > out/fuzz-summary.txt 2>/dev/null ||
  { mkdir -p out; printf '%-16s %12s %10s %10s %8s %8s\n' target executions exec/s corpus crashes hangs > out/fuzz-summary.txt; }
for t in "${targets[@]}"; do
  out=out/fuzz/$t
  mkdir -p "$out"
  # Resume a previous run's queue when there is one ("-i -"), else start from the committed seeds.
  input=tests/fuzz/corpus/$t
  [ -d "$out/default/queue" ] && input=-
  echo "== fuzzing $t for $seconds s"
  timeout $((seconds + 60)) cargo afl fuzz -i "$input" -o "$out" -V "$seconds" -t 2000 \
    "tests/fuzz/target/release/$t" > "$out/afl.log" 2>&1 || true
  stats=$out/default/fuzzer_stats
  if [ ! -f "$stats" ]; then
    echo "afl-fuzz did not start for $t:"; tail -20 "$out/afl.log"; status=1; continue
  fi
  get() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
  printf '%-16s %12s %10s %10s %8s %8s\n' "$t" "$(get execs_done)" "$(get execs_per_sec)" "$(get corpus_count)" \
    "$(get saved_crashes)" "$(get saved_hangs)" | tee -a out/fuzz-summary.txt
  if [ "$(get saved_crashes)" != 0 ] || [ "$(get saved_hangs)" != 0 ]; then status=1; fi
done
cat out/fuzz-summary.txt
exit $status
