//! Timing the training step (forward, weighted loss, backward, SGD update) on any backend: used by
//! `benches/train_step.rs` and `unet bench-train` (which runs where no cargo is, e.g. on a GPU machine).

use std::time::Instant;

use burn::{
    optim::{GradientsParams, Optimizer, SgdConfig, momentum::MomentumConfig},
    tensor::{Int, Tensor, TensorData, backend::AutodiffBackend},
};

use super::{conv::TrainConv, loss::weighted_cross_entropy, model::UNet};
use crate::{geometry::Architecture, weights::UNetWeights};

/// Runs `warmup + reps` steps of the network at `arch` on a `tile`x`tile` input (batch 1, dropout 0.5, SGD with
/// momentum 0.99) and returns the seconds of the `reps` timed ones and the trained network. Each clock stops after
/// the backend has finished (`sync`), so asynchronous GPU work is timed in full.
pub fn time_steps<B: AutodiffBackend + TrainConv>(
    arch: Architecture,
    tile: usize,
    warmup: usize,
    reps: usize,
    device: &B::Device,
) -> (Vec<f64>, UNet<B>) {
    let out = tile - 2 * arch.geometry().halo;
    let weights = UNetWeights::he_normal(arch, 1);
    let mut model = super::model::UNetConfig::from_architecture(weights.arch).init_with::<B>(&weights, device);
    let mut optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig::new().with_momentum(0.99).with_dampening(0.0)))
        .init::<B, UNet<B>>();
    let input: Vec<f32> = (0..tile * tile).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let target: Vec<i64> = (0..out * out).map(|i| (i % 3 == 0) as i64).collect();
    let mut steps = Vec::new();
    for i in 0..warmup + reps {
        let t = Instant::now();
        let x = Tensor::<B, 4>::from_data(TensorData::new(input.clone(), [1, arch.in_channels, tile, tile]), device);
        let y = Tensor::<B, 3, Int>::from_data(TensorData::new(target.clone(), [1, out, out]), device);
        let w = Tensor::<B, 3>::ones([1, out, out], device);
        let loss = weighted_cross_entropy(model.forward(x), y, w);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
        B::sync(device).expect("the backend failed");
        if i >= warmup {
            steps.push(t.elapsed().as_secs_f64());
        }
    }
    (steps, model)
}

/// The median of `v` (the upper one for an even count); NaN for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
