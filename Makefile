# unet: the two commands the README promises, and the developer chores.
#   make demo   segment a real image with the embedded default model and score it (main job)
#   make test   the whole test suite (fetches ONNX Runtime first)
SHELL := /bin/bash
ORT_DIR := $(CURDIR)/.onnxruntime
export UNET_ORT_LIB := $(ORT_DIR)
OUT := out

.PHONY: demo test lint ort demo-image header baseline-model bench clean package train-default-model check-cuda \
	gpu-prepare gpu-dry-run fuzz fiji-update-site

ort:
	@scripts/fetch-onnxruntime.sh >/dev/null

demo-image:
	@scripts/fetch-demo-image.sh >/dev/null

# A real fluorescence image (fetched, pinned, never trained on): instance count, SEG against its ground truth and a
# picture with the outlines.
demo: ort
	@echo "building unet (release; about 3 minutes the first time)"
	cargo build --release
	mkdir -p $(OUT)
	demo=$$(scripts/fetch-demo-image.sh) && ./target/release/unet segment $$demo/images/dsb2018-nuclei.tif \
	  -o $(OUT)/mask.png --labels $(OUT)/labels.tif --probabilities $(OUT)/probabilities.tif \
	  --overlay $(OUT)/overlay.png --truth $$demo/labels/dsb2018-nuclei.tif
	@echo "wrote $(OUT)/overlay.png (open it), $(OUT)/mask.png, $(OUT)/labels.tif, $(OUT)/probabilities.tif"

# `cargo test` does not build the cdylib that the C test links: build it first. Then each host, for real
# (scripts/test-all.sh: a line per suite as it ends, logs in out/test-logs/, one summary table at the end).
test: ort demo-image
	scripts/test-all.sh

lint:
	cargo fmt --check
	cargo clippy --all-targets --features train -- -D warnings

# Regenerate the committed C header after changing src/ffi (a test fails while it is stale).
header:
	UNET_WRITE_HEADER=1 cargo build --quiet

# The untrained intensity baseline the tests use (never written over the trained onnx/default.onnx).
baseline-model:
	mkdir -p $(OUT)
	cargo run --quiet --release -- export-baseline $(OUT)/baseline.onnx

bench: ort
	scripts/bench-segment.sh
	scripts/bench-live-loop.sh
	cargo bench --bench weight_map
	cargo bench --bench instances
	cargo bench --bench postprocessing
	cargo bench --features train --bench train_step

# Retrain the shipped default model from ../shared/data/ctc (4.3 h on 2 cores, then 10 min on a GPU or hours with
# DEVICE=cpu; each stage resumable; onnx/MODEL_CARD.md).
train-default-model:
	scripts/train-default-model.sh

# The CUDA training backend must build on machines without CUDA (it is loaded at run time).
check-cuda:
	cargo check --features cuda

# The GPU check (scripts/gpu-check.sh): `gpu-prepare` builds and packs everything a GPU machine needs into .gpu/;
# `gpu-dry-run` runs the same steps here on the CPU, small, to check the script before spending GPU time.
gpu-prepare: ort
	scripts/gpu-check.sh prepare

gpu-dry-run: ort demo-image
	cargo build --release --features cuda
	scripts/gpu-check.sh run --dry-run info train-bench tests bench train

# An installable folder: include/, lib/ (libunet.so and ONNX Runtime), lib/cmake/unet, lib/pkgconfig.
package:
	scripts/package.sh $(or $(PREFIX),out/package)

# Fiji update-site files (plugins/, lib/linux64/ with ONNX Runtime) and how to upload them: out/fiji-update-site.
fiji-update-site: ort
	scripts/fiji-update-site.sh $(OUT)/fiji-update-site

clean:
	cargo clean
	rm -rf $(OUT)

# AFL++ fuzzing of the model reader, metadata parser, image readers, unet_segment and unet_weight_map
# (tests/fuzz; installs afl++ and cargo-afl when missing). FUZZ_SECONDS per target; findings in out/fuzz.
FUZZ_SECONDS ?= 60
fuzz: ort
	scripts/fuzz.sh $(FUZZ_SECONDS)
