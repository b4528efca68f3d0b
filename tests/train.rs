//! The trainer's network and loss: burn forward against ONNX Runtime on the exported file, and the weighted loss's
//! gradient against finite differences.
#![cfg(feature = "train")]

mod common;

use burn::{
    backend::{Autodiff, Flex},
    tensor::{Int, Tensor, TensorData, activation::softmax},
};
use common::Rng;
use ndarray::Array4;
use unet::{
    Architecture, ModelMetadata, UNetWeights,
    train::{loss::weighted_cross_entropy, model::UNet},
};

type B = Flex;

#[test]
fn burn_forward_equals_onnx_runtime_on_the_export() {
    let device = Default::default();
    for (base_width, seed) in [(4, 1), (8, 2)] {
        let arch = Architecture { in_channels: 1, classes: 2, base_width, depth: 4 };
        let weights = UNetWeights::he_normal(arch, seed);
        let net = UNet::<B>::from_weights(&weights, 0.5, &device);
        assert_eq!(net.to_weights(), weights, "weights survive the round trip through burn");
        let model =
            common::load(&unet::onnx::encode_unet(&net.to_weights(), &ModelMetadata::new(arch, "test")).unwrap());
        let g = arch.geometry();
        for size in [g.min_input, g.min_input + 2 * g.size_step] {
            let mut rng = Rng(seed * 31 + size as u64);
            let input: Vec<f32> = (0..size * size).map(|_| rng.unit() as f32 * 2.0 - 0.5).collect();
            let x = Tensor::<B, 4>::from_data(TensorData::new(input.clone(), [1, 1, size, size]), &device);
            let burn_probs = softmax(net.forward(x), 1).into_data().to_vec::<f32>().unwrap();
            let arr = Array4::from_shape_vec((1, 1, size, size), input).unwrap();
            let diff = model
                .run(arr.view(), |p| {
                    assert_eq!(p.len(), burn_probs.len());
                    Ok(p.iter().zip(&burn_probs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max))
                })
                .unwrap();
            assert!(diff <= 1e-4, "base {base_width}, input {size}: max |burn - ORT| = {diff:e}");
        }
    }
}

#[test]
fn weighted_loss_gradient_matches_finite_differences() {
    type AD = Autodiff<Flex>;
    let device = Default::default();
    let arch = Architecture { in_channels: 1, classes: 2, base_width: 2, depth: 1 };
    let g = arch.geometry();
    let size = g.min_input + g.size_step;
    let out = size - 2 * g.halo;
    let mut rng = Rng(77);
    let input: Vec<f32> = (0..size * size).map(|_| rng.unit() as f32).collect();
    let target: Vec<i32> = (0..out * out).map(|_| (rng.next() % 2) as i32).collect();
    let wmap: Vec<f32> = (0..out * out).map(|_| rng.unit() as f32 * 3.0).collect();
    // Dropout 0: the loss must be a deterministic function of the weights.
    let loss_of = |weights: &UNetWeights, name: &str| -> (f64, Option<Vec<f32>>) {
        let net = UNet::<AD>::from_weights(weights, 0.0, &device);
        let x = Tensor::<AD, 4>::from_data(TensorData::new(input.clone(), [1, 1, size, size]), &device);
        let t = Tensor::<AD, 3, Int>::from_data(TensorData::new(target.clone(), [1, out, out]), &device);
        let w = Tensor::<AD, 3>::from_data(TensorData::new(wmap.clone(), [1, out, out]), &device);
        let loss = weighted_cross_entropy(net.forward(x), t, w);
        let value = loss.clone().into_data().convert::<f64>().to_vec::<f64>().unwrap()[0];
        let grads = loss.backward();
        (value, net.to_weights_grad(name, &grads))
    };
    let weights = UNetWeights::he_normal(arch, 5);
    let loss_at = |name: &str, idx: usize, k: usize, delta: f32| {
        let mut w = weights.clone();
        w.tensors[idx].data[k] += delta;
        loss_of(&w, name).0
    };
    let (mut checked, mut at_kinks) = (0, 0);
    for name in
        ["head.weight", "head.bias", "dec0.up.weight", "dec0.conv1.weight", "enc1.conv1.weight", "enc0.conv1.weight"]
    {
        let grad = loss_of(&weights, name).1.expect("a gradient");
        let idx = weights.tensors.iter().position(|t| t.name == name).unwrap();
        let n = grad.len();
        let mut ks = vec![0, n / 4, n / 2, 3 * n / 4, n - 1];
        ks.dedup();
        for k in ks {
            let centre = loss_at(name, idx, k, 0.0);
            // ReLU and max-pool make the loss piecewise smooth: where forward and backward differences disagree, a
            // kink lies within the step and the derivative is undefined there; try a smaller step, else skip.
            let smooth = [1e-2f32, 3e-3, 1e-3].iter().find_map(|&eps| {
                let forward = (loss_at(name, idx, k, eps) - centre) / eps as f64;
                let backward = (centre - loss_at(name, idx, k, -eps)) / eps as f64;
                // f32 rounding of a loss near 1 is ~6e-8, so difference quotients carry ~6e-8 / eps of noise.
                let noise = 2.0 * 6e-8 / eps as f64;
                ((forward - backward).abs() <= 5e-3 * forward.abs().max(backward.abs()) + noise)
                    .then_some((forward + backward) / 2.0)
            });
            let Some(numeric) = smooth else {
                at_kinks += 1;
                continue;
            };
            let tol = 1e-2 * numeric.abs().max(grad[k].abs() as f64) + 1e-4;
            assert!(
                (numeric - grad[k] as f64).abs() <= tol,
                "{name}[{k}]: autodiff {} vs finite difference {numeric}",
                grad[k]
            );
            checked += 1;
        }
    }
    assert!(checked >= 20 && at_kinks * 4 <= checked, "{checked} parameters checked, {at_kinks} at kinks");
}
