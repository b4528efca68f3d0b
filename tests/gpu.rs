//! GPU tests: ONNX Runtime's CUDA provider against its CPU provider, the out-of-memory retry, float16 models, and
//! (with `--features cuda`) the trainer's CUDA step against its CPU step. They need an NVIDIA GPU, so they are
//! ignored in the default suite; `scripts/gpu-check.sh` runs them on a GPU machine with
//! `gpu-<hash> --ignored --test-threads 1` and `UNET_ORT_LIB` naming an ONNX Runtime with the CUDA provider.
//! With `UNET_GPU_TESTS_ON_CPU=1` (the script's dry run) the CPU stands in for the GPU, so every comparison and
//! assertion runs on any machine; the tests that need CUDA itself (its arena limit, NVML) say they are skipped.

mod common;

use unet::{
    Model, ModelOptions, Provider, SegmentOptions, SegmentOutputs,
    onnx::{Precision, encode_unet_with, read_unet},
};

/// The provider that plays the GPU: CUDA, or the CPU in a dry run.
fn gpu() -> Provider {
    if on_cpu() { Provider::Cpu } else { Provider::Cuda }
}

fn on_cpu() -> bool {
    std::env::var_os("UNET_GPU_TESTS_ON_CPU").is_some_and(|v| v == "1")
}

/// True (and says so) when a test needs CUDA itself and the CPU stands in.
fn skipped_on_cpu(test: &str) -> bool {
    if on_cpu() {
        eprintln!("{test}: skipped on the CPU (needs CUDA itself)");
    }
    on_cpu()
}

fn options(provider: Provider) -> ModelOptions {
    ModelOptions { provider, threads: 0, ort_library: Some(common::ort_lib()), cuda_device: 0 }
}

fn default_model(provider: Provider, precision: Precision) -> Model {
    let (w, m) = read_unet(unet::model::EMBEDDED_DEFAULT.expect("embedded default")).unwrap();
    let model = Model::from_bytes(&encode_unet_with(&w, &m, precision).unwrap(), &options(provider)).unwrap();
    assert_eq!(model.provider().used, provider, "{:?}", model.provider().fallback_reason);
    model
}

struct Result {
    probabilities: Vec<f32>,
    labels: Vec<u32>,
    report: unet::SegmentReport,
}

fn segment(model: &Model, pixels: &[u16], w: usize, h: usize, max_tile: Option<usize>) -> Result {
    let view = unet::ImageView::new(unet::Pixels::U16(pixels), w, h, 1, w).unwrap();
    let (mut probabilities, mut labels) = (vec![0f32; w * h], vec![0u32; w * h]);
    let report = model
        .segment(
            &view,
            SegmentOptions { max_tile, ..Default::default() },
            SegmentOutputs { probabilities: Some(&mut probabilities), labels: Some(&mut labels), mask: None },
        )
        .unwrap();
    Result { probabilities, labels, report }
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
#[ignore = "needs an NVIDIA GPU (scripts/gpu-check.sh)"]
fn cuda_segments_like_the_cpu() {
    let img = unet::synthetic::nuclei(700, 600, 11);
    let (gpu, cpu) = (default_model(gpu(), Precision::F32), default_model(Provider::Cpu, Precision::F32));
    assert!(gpu.provider().fallback_reason.is_none());
    let (a, b) = (segment(&gpu, &img.pixels, 700, 600, None), segment(&cpu, &img.pixels, 700, 600, None));
    // TF32 convolutions on the GPU: close to, not equal to, float32.
    let diff = max_difference(&a.probabilities, &b.probabilities);
    let seg = unet::metrics::seg(&b.labels, &a.labels).unwrap();
    eprintln!("CUDA vs CPU: max probability difference {diff:.2e}, SEG {seg:.4}, {} tiles", a.report.tiles);
    assert!(diff < 5e-3, "max probability difference {diff}");
    assert!(seg > 0.98, "SEG of CUDA instances against CPU instances {seg}");
    assert!(a.report.label_count > 20, "{} instances", a.report.label_count);
}

#[test]
#[ignore = "needs an NVIDIA GPU (scripts/gpu-check.sh)"]
fn cuda_tiles_agree_with_one_pass() {
    let img = unet::synthetic::nuclei(600, 520, 12);
    let gpu = default_model(gpu(), Precision::F32);
    let (one, tiled) = (segment(&gpu, &img.pixels, 600, 520, None), segment(&gpu, &img.pixels, 600, 520, Some(132)));
    assert_eq!(one.report.tiles, 1);
    assert!(tiled.report.tiles >= 16, "{} tiles", tiled.report.tiles);
    let diff = max_difference(&one.probabilities, &tiled.probabilities);
    assert!(diff < 5e-3, "tiled vs one pass on CUDA: {diff}");
}

#[test]
#[ignore = "needs an NVIDIA GPU (scripts/gpu-check.sh)"]
fn float16_on_cuda_is_close_to_float32() {
    let img = unet::synthetic::nuclei(512, 512, 13);
    let (full, half) = (default_model(gpu(), Precision::F32), default_model(gpu(), Precision::F16));
    let (a, b) = (segment(&full, &img.pixels, 512, 512, None), segment(&half, &img.pixels, 512, 512, None));
    let diff = max_difference(&a.probabilities, &b.probabilities);
    let seg = unet::metrics::seg(&a.labels, &b.labels).unwrap();
    eprintln!("float16 vs float32 on CUDA: max probability difference {diff:.2e}, SEG {seg:.4}");
    assert!(diff < 0.03 && seg > 0.97, "max probability difference {diff}, SEG {seg}");
}

/// ONNX Runtime's arena limited to 2 GiB (`gpu_mem_limit`): a tile that needs more fails with out-of-memory, and
/// segment retries with smaller tiles, reports it, and still gets the result of small tiles without the limit.
#[test]
#[ignore = "needs an NVIDIA GPU (scripts/gpu-check.sh)"]
fn out_of_memory_is_retried_with_smaller_tiles() {
    if skipped_on_cpu("out_of_memory_is_retried_with_smaller_tiles") {
        return;
    }
    let img = unet::synthetic::nuclei(4096, 4096, 14);
    let free = default_model(gpu(), Precision::F32);
    let want = segment(&free, &img.pixels, 4096, 4096, Some(1028));
    // SAFETY (set_var): the GPU tests run with --test-threads 1; nothing else reads the environment meanwhile.
    unsafe { std::env::set_var(unet::model::CUDA_OPTIONS_ENV, "gpu_mem_limit=2147483648") };
    let limited = default_model(gpu(), Precision::F32);
    unsafe { std::env::remove_var(unet::model::CUDA_OPTIONS_ENV) };
    let got = segment(&limited, &img.pixels, 4096, 4096, Some(4100));
    eprintln!(
        "2 GiB arena: {} out-of-memory retries, tiles {:?}",
        got.report.out_of_memory_retries, got.report.tile_shape
    );
    assert!(got.report.out_of_memory_retries >= 1, "no out-of-memory retry: {:?}", got.report.tile_shape);
    assert!(got.report.tile_shape.0 < 4100);
    let diff = max_difference(&want.probabilities, &got.probabilities);
    assert!(diff < 5e-3, "retried result differs from the unlimited one by {diff}");
}

/// Without a tile size, a GPU's budget comes from its free memory (NVML): a 2048x2048 image is one tile, where the
/// CPU's 1 GiB budget would cut it into several.
#[test]
#[ignore = "needs an NVIDIA GPU (scripts/gpu-check.sh)"]
fn gpu_tiles_follow_free_memory() {
    if skipped_on_cpu("gpu_tiles_follow_free_memory") {
        return;
    }
    let free = unet::gpu_memory::free_bytes(0).expect("NVML reports the GPU's free memory");
    let img = unet::synthetic::nuclei(2048, 2048, 15);
    let (gpu, cpu) = (default_model(gpu(), Precision::F32), default_model(Provider::Cpu, Precision::F32));
    let view = unet::ImageView::new(unet::Pixels::U16(&img.pixels), 2048, 2048, 1, 2048).unwrap();
    let mut p = vec![0f32; 2048 * 2048];
    let mut tiles = |m: &Model| {
        m.segment(
            &view,
            SegmentOptions::default(),
            SegmentOutputs { probabilities: Some(&mut p), ..Default::default() },
        )
        .unwrap()
        .tiles
    };
    let (on_gpu, on_cpu) = (tiles(&gpu), tiles(&cpu));
    eprintln!("{:.1} GB free: {on_gpu} tile(s) on the GPU, {on_cpu} on the CPU", free as f64 / 1e9);
    if free >= 24 << 30 {
        assert_eq!(on_gpu, 1);
    }
    assert!(on_cpu > on_gpu, "GPU {on_gpu} tiles, CPU {on_cpu}");
}

/// The trainer's step on burn's CUDA backend against the same step on the CPU backend, from the same weights:
/// the same loss and the same updated weights, within TF32-free float32 rounding.
#[cfg(feature = "cuda")]
#[test]
#[ignore = "needs an NVIDIA GPU (scripts/gpu-check.sh)"]
fn training_step_on_cuda_matches_cpu() {
    use unet::train::{
        TrainBackend,
        burn::{
            module::AutodiffModule,
            optim::{GradientsParams, Optimizer, SgdConfig},
            tensor::{Int, Tensor, TensorData, backend::AutodiffBackend},
        },
        device::{CudaTrainBackend, cuda_device},
        loss::weighted_cross_entropy,
        model::UNet,
    };
    let arch = unet::Architecture { in_channels: 1, classes: 2, base_width: 4, depth: 3 };
    let tile = arch.geometry().min_input + 2 * arch.geometry().size_step;
    let out = tile - 2 * arch.geometry().halo;
    let weights = unet::UNetWeights::he_normal(arch, 3);
    let input: Vec<f32> = (0..tile * tile).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let target: Vec<i64> = (0..out * out).map(|i| ((i / 7) % 2) as i64).collect();
    let wmap: Vec<f32> = (0..out * out).map(|i| 1.0 + (i % 5) as f32).collect();
    fn step<B: AutodiffBackend + unet::train::conv::TrainConv>(
        w: &unet::UNetWeights,
        input: &[f32],
        target: &[i64],
        wmap: &[f32],
        tile: usize,
        out: usize,
        device: &B::Device,
    ) -> (f32, unet::UNetWeights) {
        let model = UNet::<B>::from_weights(w, 0.0, device);
        let x = Tensor::<B, 4>::from_data(TensorData::new(input.to_vec(), [1, 1, tile, tile]), device);
        let t = Tensor::<B, 3, Int>::from_data(TensorData::new(target.to_vec(), [1, out, out]), device);
        let m = Tensor::<B, 3>::from_data(TensorData::new(wmap.to_vec(), [1, out, out]), device);
        let loss = weighted_cross_entropy(model.forward(x), t, m);
        let value = loss.clone().into_data().convert::<f32>().to_vec::<f32>().unwrap()[0];
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = SgdConfig::new().init::<B, UNet<B>>().step(0.1, model, grads);
        (value, model.valid().to_weights())
    }
    let cuda = cuda_device(0).expect("CUDA device 0");
    let (loss_cpu, w_cpu) = step::<TrainBackend>(&weights, &input, &target, &wmap, tile, out, &Default::default());
    let moved = weights.tensors.iter().zip(&w_cpu.tensors).any(|(a, b)| a.data != b.data);
    assert!(moved, "the step changed no weight");
    // Every way CUDA can run the convolutions. Both GEMM paths multiply on tensor cores in TF32 (10-bit mantissa):
    // on an H100 (2026-11-27) im2col's updated weights differed from the CPU's by 1.33e-2 of each tensor's largest
    // weight, its loss by 2e-5; burn's direct kernels (float32 FMA) by 1.2e-6.
    // implicit-gemm is left out: on the H100 its weights differed by 3.58 (relative), so `unet train` refuses it.
    for conv in unet::train::conv::CudaConv::TRAINS_CORRECTLY {
        conv.select();
        let (loss_gpu, w_gpu) = step::<CudaTrainBackend>(&weights, &input, &target, &wmap, tile, out, &cuda);
        let tf32 = conv != unet::train::conv::CudaConv::Direct;
        let tolerance = if tf32 { 3e-2 } else { 1e-3 };
        let mut worst = 0f32;
        for (a, b) in w_gpu.tensors.iter().zip(&w_cpu.tensors) {
            let scale = b.data.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
            let d = a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) / scale;
            worst = worst.max(d);
        }
        eprintln!(
            "CUDA ({}) vs CPU training step: loss {loss_gpu} vs {loss_cpu}, largest relative weight difference \
             {worst:.2e}",
            conv.name()
        );
        assert!(
            (loss_gpu - loss_cpu).abs() <= tolerance * loss_cpu.abs().max(1.0),
            "{}: loss {loss_gpu} vs {loss_cpu}",
            conv.name()
        );
        assert!(
            worst < tolerance,
            "{}: updated weights differ by {worst} (relative to each tensor's largest)",
            conv.name()
        );
    }
}
