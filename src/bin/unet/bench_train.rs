//! `unet bench-train`: medians of the training step per device and base width.

use super::*;

#[derive(clap::Args)]
pub struct BenchTrainArgs {
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    pub base_width: Vec<usize>,
    #[arg(long, default_value_t = 572)]
    pub tile: usize,
    /// Untimed steps first (kernel compilation and autotuning on a GPU).
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    #[arg(long, default_value_t = 10)]
    pub reps: usize,
    /// How convolutions run on CUDA (one row each): im2col, implicit-gemm, direct.
    #[arg(long, value_delimiter = ',', default_value = "im2col", value_parser = train::parse_cuda_conv)]
    pub cuda_conv: Vec<unet::train::conv::CudaConv>,
}

pub fn run(args: BenchTrainArgs) -> unet::Result<()> {
    let BenchTrainArgs { device, base_width, tile, warmup, reps, cuda_conv } = args;
    use unet::train::device::TrainDevice;
    unet::train::keep_freed_memory_for_reuse();
    let train_device = TrainDevice::parse(&device)?;
    train_device.check_built()?;
    println!("training step on {train_device}: {tile}x{tile} tile, batch 1, SGD, median of {reps} after {warmup}");
    println!("{:>14} {:>10} {:>14} {:>14} {:>12}", "convolution", "base width", "median ms", "min ms", "total s");
    // The CPU has one way to run convolutions; CUDA gets one row per --cuda-conv.
    let convs = if train_device == TrainDevice::Cpu { vec![None] } else { cuda_conv.into_iter().map(Some).collect() };
    for conv in convs {
        let name = conv.map_or("flex", |c: unet::train::conv::CudaConv| c.name());
        if let Some(c) = conv {
            c.select();
        }
        for &width in &base_width {
            let arch = unet::Architecture { in_channels: 1, classes: 2, base_width: width, depth: 4 };
            if arch.geometry().output_for_input(tile).is_none() {
                return Err(unet::Error::new(
                    unet::UnetStatus::InvalidArgument,
                    format!("{tile} is not a valid input size (16k + 60 for depth 4, e.g. 572)"),
                ));
            }
            let started = Instant::now();
            // A strategy that fails on this GPU loses its row, not the others.
            let timed: std::thread::Result<unet::Result<Vec<f64>>> = std::panic::catch_unwind(|| match train_device {
                TrainDevice::Cpu => Ok(unet::train::benchmark::time_steps::<unet::train::TrainBackend>(
                    arch,
                    tile,
                    warmup,
                    reps,
                    &Default::default(),
                )
                .0),
                #[cfg(feature = "cuda")]
                TrainDevice::Cuda(index) => unet::train::device::cuda_device(index).map(|cuda| {
                    unet::train::benchmark::time_steps::<unet::train::device::CudaTrainBackend>(
                        arch, tile, warmup, reps, &cuda,
                    )
                    .0
                }),
                #[cfg(not(feature = "cuda"))]
                TrainDevice::Cuda(_) => unreachable!("check_built refused CUDA in this build"),
            });
            match timed {
                Ok(steps) => {
                    let steps = steps?;
                    let min = steps.iter().copied().fold(f64::INFINITY, f64::min);
                    println!(
                        "{name:>14} {width:>10} {:>14.2} {:>14.2} {:>12.1}",
                        1e3 * unet::train::benchmark::median(steps),
                        1e3 * min,
                        started.elapsed().as_secs_f64()
                    );
                }
                Err(_) => println!("{name:>14} {width:>10} {:>14} (failed, see above)", "-"),
            }
        }
    }
    Ok(())
}
