// Measures ONNX Runtime's peak memory for one tile: `memprobe BASE_WIDTH INPUT_SIZE`.
use unet::{Architecture, Model, ModelMetadata, ModelOptions, Provider, UNetWeights};
fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines().find(|l| l.starts_with("VmHWM:")).unwrap().split_whitespace().nth(1).unwrap().parse::<usize>().unwrap()
        * 1024
}
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let arch = Architecture { in_channels: 1, classes: 2, base_width: a[0], depth: 4 };
    let bytes = unet::onnx::encode_unet(&UNetWeights::he_normal(arch, 1), &ModelMetadata::new(arch, "")).unwrap();
    let opts =
        ModelOptions { provider: Provider::Cpu, threads: 2, ort_library: Some(".onnxruntime".into()), cuda_device: 0 };
    let model = Model::from_bytes(&bytes, &opts).unwrap();
    let input = ndarray::Array4::<f32>::zeros((1, 1, a[1], a[1]));
    let before = rss();
    model.run(input.view(), |_| Ok(())).unwrap();
    let grown = rss() - before;
    println!(
        "base {} input {}: peak +{} MiB = {:.1} bytes per input px = {:.2} per px per base channel",
        a[0],
        a[1],
        grown >> 20,
        grown as f64 / (a[1] * a[1]) as f64,
        grown as f64 / (a[1] * a[1] * a[0]) as f64
    );
}
