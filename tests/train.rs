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
use unet::{Architecture, ModelMetadata, UNetWeights, train::{loss::weighted_cross_entropy, model::UNet}};

type B = Flex;

#[test]
fn burn_forward_equals_onnx_runtime_on_the_export() {
    let device = Default::default();
    for (base_width, seed) in [(4, 1), (8, 2)] {
        let arch = Architecture { in_channels: 1, classes: 2, base_width, depth: 4 };
        let weights = UNetWeights::he_normal(arch, seed);
        let net = UNet::<B>::from_weights(&weights, 0.5, &device);
        assert_eq!(net.to_weights(), weights, "weights survive the round trip through burn");
        let model = common::load(&unet::onnx::encode_unet(&net.to_weights(), &ModelMetadata::new(arch, "test")).unwrap());
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
    let loss_of = |weights: &UNetWeights, name: &str| -> (f32, Option<Vec<f32>>) {
        let net = UNet::<AD>::from_weights(weights, 0.0, &device);
        let x = Tensor::<AD, 4>::from_data(TensorData::new(input.clone(), [1, 1, size, size]), &device);
        let t = Tensor::<AD, 3, Int>::from_data(TensorData::new(target.clone(), [1, out, out]), &device);
        let w = Tensor::<AD, 3>::from_data(TensorData::new(wmap.clone(), [1, out, out]), &device);
        let loss = weighted_cross_entropy(net.forward(x), t, w);
        let value = loss.clone().into_data().to_vec::<f32>().unwrap()[0];
        let grads = loss.backward();
        (value, net.to_weights_grad(name, &grads))
    };
    let weights = UNetWeights::he_normal(arch, 5);
    // A small step: ReLU and max-pool kinks make larger ones cross non-differentiable points.
    let eps = 1e-3f32;
    let mut checked = 0;
    for name in ["head.weight", "head.bias", "dec0.up.weight", "dec0.conv1.weight", "enc1.conv1.weight", "enc0.conv1.weight"] {
        let grad = loss_of(&weights, name).1.expect("a gradient");
        let idx = weights.tensors.iter().position(|t| t.name == name).unwrap();
        for k in [0, 1, 3] {
            let (mut plus, mut minus) = (weights.clone(), weights.clone());
            plus.tensors[idx].data[k] += eps;
            minus.tensors[idx].data[k] -= eps;
            let numeric = (loss_of(&plus, name).0 - loss_of(&minus, name).0) / (2.0 * eps);
            let tol = 3e-2 * numeric.abs().max(grad[k].abs()) + 5e-4;
            assert!((numeric - grad[k]).abs() <= tol, "{name}[{k}]: autodiff {} vs finite difference {numeric}", grad[k]);
            checked += 1;
        }
    }
    assert_eq!(checked, 18);
}
