//! Benchmark (not a timed test): `cargo bench --features train --bench train_step`.
//!
//! Seconds per training step (forward, backward, SGD update) of the paper's network at base width 16 and 64 on a
//! 572x572 tile, and the forward pass alone in burn against ONNX Runtime on the exported network, in the same run.
//! On a GPU (a build with `--features cuda`): `unet bench-train --device cuda`.
//! Medians of a few repetitions; the machine is shared and noisy.

use std::time::Instant;

use burn::{
    backend::{Autodiff, Flex},
    module::AutodiffModule,
    tensor::{Tensor, TensorData},
};
use unet::{
    Architecture, Model, ModelMetadata, ModelOptions, Provider,
    train::benchmark::{median, time_steps},
};

type AD = Autodiff<Flex>;

fn main() {
    unet::train::keep_freed_memory_for_reuse();
    // `cargo test` runs bench targets too: there, one base-16 step on a small tile only proves it still runs.
    cpu(std::env::args().any(|a| a == "--bench"));
}

fn cpu(full: bool) {
    let device = Default::default();
    let ort = ModelOptions {
        provider: Provider::Cpu,
        threads: 0,
        ort_library: std::env::var_os("UNET_ORT_LIB").map(Into::into),
        cuda_device: 0,
    };
    let tile = if full { 572 } else { 188 };
    println!(
        "training step benchmark: {tile}x{tile} tile, batch 1, {} CPU threads, medians",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:>10} {:>12} {:>16} {:>16} {:>10} {:>10}",
        "base width", "train step s", "burn forward s", "ORT forward s", "burn/ORT", "step/ORT"
    );
    let plan: &[(usize, usize)] = if full { &[(16, 5), (64, 3)] } else { &[(16, 1)] };
    for &(base_width, reps) in plan {
        let arch = Architecture { in_channels: 1, classes: 2, base_width, depth: 4 };
        let (steps, model) = time_steps::<AD>(arch, tile, 0, reps, &device);
        let input: Vec<f32> = (0..tile * tile).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
        let inference = model.valid();
        let bytes = unet::onnx::encode_unet(&inference.to_weights(), &ModelMetadata::new(arch, "bench")).unwrap();
        let session = Model::from_bytes(&bytes, &ort).expect("ONNX Runtime (set UNET_ORT_LIB)");
        let array = ndarray::Array4::from_shape_vec((1, 1, tile, tile), input.clone()).unwrap();
        let (mut burn_fwd, mut ort_fwd) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let t = Instant::now();
            let x = Tensor::<Flex, 4>::from_data(TensorData::new(input.clone(), [1, 1, tile, tile]), &device);
            let _ = inference.forward(x).into_data();
            burn_fwd.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            session.run(array.view(), |_| Ok(())).unwrap();
            ort_fwd.push(t.elapsed().as_secs_f64());
        }
        let (s, b, o) = (median(steps), median(burn_fwd), median(ort_fwd));
        println!("{base_width:>10} {s:>12.2} {b:>16.2} {o:>16.2} {:>10.2} {:>10.1}", b / o, s / o);
    }
}
