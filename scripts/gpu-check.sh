#!/usr/bin/env bash
# The GPU check, in two halves: `prepare` on a build machine (no GPU needed), `run` on the GPU machine.
#
#   scripts/gpu-check.sh prepare [CTC_DIR]   build the CUDA CLI, libunet.so and the GPU test binary; fetch
#       onnxruntime-gpu 1.31.1 (PyPI), keep only its Hopper (sm_90) kernels (the GPU machines here are H100/H200)
#       and pack it in two parts; pack the training frames of CTC_DIR (Cell Tracking Challenge, sequence 01
#       minus its held-out tail); with INIT=MODEL.onnx, copy the model `run train` starts from. Everything lands in
#       .gpu/ (git-ignored): bin, tests, ort.part00/01, ctc, isbi, init.onnx, each call carrying what its steps need.
#   scripts/gpu-check.sh run STEP...           on the GPU machine, with .gpu/ beside it; steps, in order given:
#       stash     copy the parts in .gpu/ to /tmp/unet-gpu (they survive between calls while the machine is warm)
#       info      GPU, driver, PyTorch
#       train-bench  burn CUDA training step (base 16 and 64, each --cuda-conv) and PyTorch's same step
#       ort       reassemble ONNX Runtime with the CUDA provider in /tmp/unet-gpu/ort
#       tests     the GPU tests (tests/gpu.rs) and the CLI's errors for a missing device
#       bench     inference: unet (C ABI) against PyTorch, float32 and float16, 512x512 latency, 4096x4096 MP/s
#       train     fine-tune .gpu/init.onnx (else the default) on CUDA for $TRAIN_SECONDS (default 180): a cosine
#                 schedule sized by train-bench's step time, the fastest convolution ($CUDA_CONV overrides); export it.
#                 TRAIN_UNTIL=EPOCH_SECONDS ends it in time for the export instead; LR, TRAIN_EPOCHS, CUDA_CONV and
#                 SYNTH_IMAGES (synthetic nuclei beside the CTC frames, default 40) change the run.
#       train-em  fine-tune the default on ISBI 2012 EM slices 0-14 for $EM_SECONDS (default 120), export it
#   Results and logs go to $OUT (the device tool brings them back), else out/gpu.
#   scripts/gpu-check.sh run --dry-run STEP... runs the same steps on this machine's CPU, small, to check the script:
#       its `tests` step runs every GPU test with the CPU standing in for the GPU (UNET_GPU_TESTS_ON_CPU=1).
#   A step that fails (a GPU test, an expected error that does not come) is reported, the later steps still run,
#   and the script exits non-zero with the number of failed checks.
# No `set -e`: one failing step must not hide what the later ones measure; failures are counted instead.
set -uo pipefail
failures=0
fail() { echo "FAILED: $*"; failures=$((failures + 1)); }
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
G=$root/.gpu
STASH=/tmp/unet-gpu
# The GPU machine has no zstd: the one from .gpu/ (stashed) is used there.
export PATH=$PATH:$STASH
mode=${1:-}; shift || true

prepare() {
  local ctc=${1:-../shared/data/ctc}
  mkdir -p "$G" "$HOME/.cache/unet-gpu"
  local cache=$HOME/.cache/unet-gpu
  # Binaries: the CLI with CUDA training, the C library, the GPU tests, the training-step benchmark (stripped,
  # compressed).
  cargo build --release --features cuda --bins --lib || return 1
  local tests
  tests=$(cargo test --release --features cuda --test gpu --no-run --message-format=json 2>/dev/null |
    python3 -c 'import sys,json;[print(m["executable"]) for l in sys.stdin for m in [json.loads(l)] if m.get("executable") and m["target"]["name"]=="gpu"]' | tail -1)
  [ -x "$tests" ] || { echo "could not build the GPU test binary"; return 1; }
  rm -rf "$cache/bin" "$cache/tests" && mkdir -p "$cache/bin" "$cache/tests/bin"
  cp target/release/unet target/release/libunet.so "$cache/bin/"
  cp "$tests" "$cache/tests/bin/gpu-tests"
  strip "$cache"/bin/* "$cache"/tests/bin/*
  # Two archives, so that a training-only call can leave the test binary behind.
  tar -C "$cache" -cf - bin | zstd -q -19 -T0 -f -o "$G/bin.tar.zst"
  tar -C "$cache/tests" -cf - bin | zstd -q -19 -T0 -f -o "$G/tests.tar.zst"
  # The model to fine-tune on the GPU (`run train`), if INIT names one.
  rm -f "$G/init.onnx"
  [ -n "${INIT:-}" ] && cp "$INIT" "$G/init.onnx"
  # ONNX Runtime with the CUDA provider, Hopper kernels only.
  if [ ! -f "$cache/ort.tar.zst" ]; then
    pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
      onnxruntime-gpu==1.31.1 -d "$cache" || return 1
    rm -rf "$cache/ort" && mkdir -p "$cache/ort"
    unzip -q -j -o "$cache"/onnxruntime_gpu-1.31.1-*.whl 'onnxruntime/capi/libonnxruntime.so.1.31.1' \
      'onnxruntime/capi/libonnxruntime_providers_cuda.so' 'onnxruntime/capi/libonnxruntime_providers_shared.so' \
      -d "$cache/ort" || return 1
    python3 scripts/fatbin_keep.py "$cache/ort/libonnxruntime_providers_cuda.so" 90 || return 1
    tar -C "$cache" -cf - ort | zstd -q -19 -T0 --long=27 -f -o "$cache/ort.tar.zst"
  fi
  rm -f "$G"/ort.part*
  # Two parts, sized for the device tool's 64 MiB per call, which also counts the tracked tree (~13 MB): 10 MB
  # travel with the binaries (~42 MB) in the first call, the rest (~51 MB) alone in the second. Carry the
  # training data (ctc, isbi) in a third call when a step needs it.
  head -c 10000000 "$cache/ort.tar.zst" > "$G/ort.part00"
  tail -c +10000001 "$cache/ort.tar.zst" > "$G/ort.part01"
  # EM slices 0-14 of ISBI 2012 (15-19 stay here for evaluation).
  local isbi=${ctc%/ctc}/isbi2012
  if [ -d "$isbi/train/image" ]; then
    rm -rf "$cache/isbi" && mkdir -p "$cache/isbi/train/image" "$cache/isbi/train/label"
    for i in $(seq 0 14); do
      cp "$isbi/train/image/$i.png" "$cache/isbi/train/image/" && cp "$isbi/train/label/$i.png" "$cache/isbi/train/label/"
    done
    tar -C "$cache" -cf - isbi | zstd -q -19 -T0 -f -o "$G/isbi.tar.zst"
  fi
  # Training frames: every second frame of sequence 01 without its last 20 % (the frames every evaluation here
  # holds out).
  if [ -d "$ctc" ]; then
    rm -rf "$cache/ctc"
    python3 scripts/pack_ctc_train.py "$ctc" "$cache/ctc" 0.2 --every 2 && tar -C "$cache" -cf - ctc |
      zstd -q -19 -T0 -f -o "$G/ctc.tar.zst"
  fi
  ls -la "$G"
}

log() { echo "== $* ($(date +%T))"; }

run() {
  local dry=0
  if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
  local out=${OUT:-$root/out/gpu}
  mkdir -p "$out" "$STASH"
  local bin=$STASH/bin ort=$STASH/ort
  if [ $dry = 1 ]; then
    bin=$STASH/dry-bin
    mkdir -p "$bin"
    cp target/release/unet target/release/libunet.so "$bin/" 2>/dev/null
    ort=$root/.onnxruntime
  fi
  export UNET_ORT_LIB=$ort
  if [ $dry = 0 ] && command -v python3 >/dev/null; then
    # CUDA 13 / cuDNN 9 libraries of the PyTorch install (ONNX Runtime's CUDA provider and NVRTC for burn).
    local nv
    nv=$(python3 -c 'import nvidia, os; print(os.pathsep.join(nvidia.__path__))' 2>/dev/null)
    local libs
    libs=$(for d in ${nv//:/ }; do find "$d" -maxdepth 3 -type d -name lib; done | tr '\n' ':')
    export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:-}"
  fi
  local step
  for step in "$@"; do
    case $step in
      stash)
        log stash
        for f in "$G"/*; do [ -f "$f" ] && cp "$f" "$STASH/"; done
        for a in bin tests ctc isbi; do
          [ -f "$STASH/$a.tar.zst" ] && [ ! -f "$STASH/$a.done" ] && zstd -q -d -c "$STASH/$a.tar.zst" | tar -C "$STASH" -xf - &&
            touch "$STASH/$a.done"
        done
        ls -la "$STASH" ;;
      info)
        log info
        if [ $dry = 0 ]; then
          nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.max.sm --format=csv
          python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), torch.cuda.get_device_name())'
        fi
        nproc; "$bin/unet" --version ;;
      train-bench)
        log train-bench
        if [ $dry = 0 ]; then
          # Every way of running the convolutions, so the before (direct) and after are in the same run.
          timeout 300 "$bin/unet" bench-train --device cuda --reps 10 --cuda-conv im2col,implicit-gemm,direct 2>&1 |
            tee "$out/train-step-burn.txt"
          timeout 120 python3 benches/bench_gpu.py --train-only --lib "$bin/libunet.so" --ort-lib none \
            --model-dir /nonexistent --reps 20 --json "$out/train-step-torch.json" 2>&1 | tee "$out/train-step-torch.txt"
        else
          "$bin/unet" bench-train --device cpu --base-width 4 --tile 188 --warmup 1 --reps 1
        fi ;;
      ort)
        log ort
        if [ $dry = 0 ]; then
          if [ ! -f "$ort/libonnxruntime_providers_cuda.so" ]; then
            ls "$STASH"/ort.part* || { echo "ONNX Runtime parts missing"; continue; }
            cat "$STASH"/ort.part* | zstd -q -d -c --long=27 | tar -C "$STASH" -xf - || echo "ONNX Runtime parts incomplete"
          fi
          ls -la "$ort"
        fi ;;
      tests)
        log tests
        if [ $dry = 0 ]; then
          # shellcheck disable=SC2086
          timeout 300 "$bin/gpu-tests" --ignored --test-threads 1 --nocapture ${GPU_TESTS:-} 2>&1 | tee "$out/gpu-tests.txt" ||
            fail "GPU tests (see $out/gpu-tests.txt)"
        else
          # Every GPU test, the CPU standing in for the GPU: each comparison and assertion runs; the ones that need
          # CUDA itself (its memory arena, NVML) say they are skipped.
          UNET_GPU_TESTS_ON_CPU=1 cargo test --features train --test gpu -- --ignored --test-threads 1 --nocapture 2>&1 |
            tee "$out/gpu-tests.txt" | grep -E "test result|skipped on the CPU" || fail "GPU tests on the CPU"
        fi
        grep -Eq "test result: ok\. [1-9]" "$out/gpu-tests.txt" || fail "the GPU tests did not all pass (or none ran)"
        # No such device: an error naming the cause, not a crash.
        local said
        said=$("$bin/unet" train "$STASH" --out /tmp/x --device cuda:7 --init default 2>&1)
        local status=$?
        echo "$said" | tail -2
        { [ $status -ne 0 ] && [ $status -lt 128 ] && echo "$said" | grep -qi "cuda"; } ||
          fail "a missing CUDA device gave exit status $status without naming CUDA" ;;
      bench)
        log bench
        local models=$STASH/models
        mkdir -p "$models"
        "$bin/unet" convert default "$models/default-fp32.onnx" --fp32 >/dev/null
        "$bin/unet" convert default "$models/default-fp16.onnx" --fp16 >/dev/null
        if [ $dry = 0 ]; then
          "$bin/unet" init-model --base-width 64 "$models/paper64-fp32.onnx" >/dev/null
          "$bin/unet" convert "$models/paper64-fp32.onnx" "$models/paper64-fp16.onnx" --fp16 >/dev/null
          timeout 400 python3 benches/bench_gpu.py --lib "$bin/libunet.so" --ort-lib "$ort/libonnxruntime.so.1.31.1" \
            --model-dir "$models" --reps ${BENCH_REPS:-20} --json "$out/bench-gpu.json" 2>&1 | tee "$out/bench-gpu.txt"
          if [ -f .demo-image/images/dsb2018-nuclei.tif ]; then
            "$bin/unet" convert default "$models/check-fp16.onnx" --fp16 --check .demo-image/images/dsb2018-nuclei.tif \
              --provider cuda 2>&1 | tee "$out/fp16-check.txt"
          fi
        else
          .venv/bin/python benches/bench_gpu.py --dry-run --lib "$bin/libunet.so" --ort-lib "$ort/libonnxruntime.so" \
            --model-dir "$models" --models default --json "$out/bench-gpu.json"
        fi ;;
      train)
        log train
        local seconds=${TRAIN_SECONDS:-180} data=$STASH/ctc device=cuda steps=50 init=default conv=${CUDA_CONV:-}
        # TRAIN_UNTIL (seconds since 1970) caps it, keeping 30 s to export: one call's limit holds the whole script.
        [ -n "${TRAIN_UNTIL:-}" ] && seconds=$(( TRAIN_UNTIL - $(date +%s) - 30 ))
        [ "$seconds" -ge 30 ] || { echo "no time left to train ($seconds s)"; continue; }
        [ -f "$STASH/init.onnx" ] && init=$STASH/init.onnx
        # The fastest convolution of train-bench at base 16 (im2col without one), and as many epochs of a cosine
        # schedule as that step time allows (x1.5 for data preparation; the time limit cuts a slow run short).
        local bench=$out/train-step-burn.txt ms=
        if [ -z "$conv" ] && [ -f "$bench" ]; then
          # implicit-gemm is timed but not trained with: its gradients were wrong (tests/gpu.rs).
          conv=$(awk '$2 == 16 && $3 ~ /^[0-9.]+$/ && $1 != "implicit-gemm" { print $3, $1 }' "$bench" | sort -n |
            head -1 | cut -d' ' -f2)
        fi
        conv=${conv:-im2col}
        [ -f "$bench" ] && ms=$(awk -v c="$conv" '$1 == c && $2 == 16 { print $3 }' "$bench")
        local epochs=${TRAIN_EPOCHS:-$(python3 -c "print(max(1, int($seconds * 1000 / (1.5 * ${ms:-300} * $steps))))")}
        echo "training with --cuda-conv $conv, $epochs epochs of $steps steps, from $init"
        if [ $dry = 1 ]; then data=$STASH/dry-ctc; device=cpu; seconds=60; steps=2
          python3 scripts/pack_ctc_train.py "${CTC:-../shared/data/ctc}" "$data" 0.2 --limit 3 >/dev/null || continue
        fi
        [ -d "$data" ] || { echo "no training data in $data"; continue; }
        mkdir -p "$STASH/synth"
        # Seeds from 3001 ($SYNTH_IMAGES of them, default 40): the default model's synthetic validation images are
        # seeds 2007-2009 and 2068-2080.
        for s in $(seq 3001 $((3000 + ${SYNTH_IMAGES:-40}))); do
          [ -f "$STASH/synth/images/n$s.tif" ] && continue
          mkdir -p "$STASH/synth/images" "$STASH/synth/labels"
          "$bin/unet" sample-image --style nuclei "$STASH/synth/images/n$s.tif" --labels "$STASH/synth/labels/n$s.tif" \
            --seed "$s" >/dev/null
        done
        local run=$STASH/run
        # Epochs of 50 steps: a checkpoint every few seconds, so the time limit loses little.
        timeout "$seconds" "$bin/unet" train "$data"/DIC-C2DH-HeLa "$data"/PhC-C2DH-U373 "$STASH/synth" --out "$run" \
          --device $device --init "$init" --tile 572 --batch 1 --epochs "$epochs" --steps-per-epoch $steps \
          --optimizer adam --lr ${LR:-0.0002} --schedule cosine --dropout 0.5 --truth silver --val-fraction 0 --no-tune \
          --seed 7 --quiet $( [ $dry = 0 ] && echo --cuda-conv "$conv" ) \
          $( [ -d "$run/checkpoints" ] && echo --resume ) 2>&1 | tail -5
        "$bin/unet" train "$data"/DIC-C2DH-HeLa --out "$run" --export-only --init "$init" --export "$out/gpu-trained.onnx"
        cp "$run/metrics.csv" "$out/gpu-train-metrics.csv" 2>/dev/null
        ls "$run/checkpoints" | tail -2 ;;
      train-em)
        # The paper's first experiment on the GPU: ISBI 2012 EM slices 0-14 (packed by `prepare`; 15-19 are held out
        # for evaluation elsewhere), fine-tuned from the default for $EM_SECONDS (default 120).
        log train-em
        local data=$STASH/isbi run=$STASH/em-run
        [ -d "$data" ] || { echo "no EM data in $data"; continue; }
        timeout "${EM_SECONDS:-120}" "$bin/unet" train "$data" --out "$run" --device cuda --init default --tile 572 \
          --batch 1 --epochs 1000 --steps-per-epoch 50 --optimizer adam --lr 0.0003 --schedule constant --dropout 0.5 \
          --val-fraction 0 --no-tune --seed 7 --quiet $( [ -d "$run/checkpoints" ] && echo --resume ) 2>&1 | tail -3
        "$bin/unet" train "$data" --out "$run" --export-only --init default --export "$out/em-gpu.onnx"
        cp "$run/metrics.csv" "$out/em-gpu-metrics.csv" 2>/dev/null ;;
      *) echo "unknown step $step"; return 2 ;;
    esac
  done
  log "done ($failures failed check(s))"
  return $(( failures > 0 ))
}

case $mode in
  prepare) prepare "$@" ;;
  run) run "$@" ;;
  *) sed -n '2,22p' "$0"; exit 2 ;;
esac
