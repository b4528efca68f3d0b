//! The network's convolutions written as im2col + matrix products in burn's tensor API, so they run on any backend
//! with whatever matmul it has.
//!
//! Why: burn's CUDA backend without autotuning (which we keep off, see `Cargo.toml`) runs every convolution with its
//! direct kernel, and computes a weight gradient as a convolution whose "kernel" is the whole image: one thread per
//! weight summing a whole image, most of a CUDA training step. Here the three passes of a valid 3x3 convolution and
//! the 2x2 up-convolution become GEMMs:
//! - forward `Y = W · im2col(X)`, input gradient the same with the flipped, transposed kernel on the zero-padded
//!   output gradient ("full" convolution), weight gradient `dW = dY · im2col(X)ᵀ`;
//! - the 2x2 stride-2 up-convolution is a 1x1 convolution to `4 · out` channels followed by a depth-to-space
//!   shuffle, so autodiff differentiates it through one matmul and permutes.
//!
//! The cost is memory: `im2col(X)` holds `in · k² · out_h · out_w` values (743 MB for the 64-channel 3x3
//! convolutions of a 572x572 tile at base width 64, 186 MB at base 16), transient, one convolution at a time.

use burn::tensor::{Tensor, backend::Backend};

/// `im2col(x)`: `[n, in · k · k, out_h · out_w]` with columns in the weight layout's order `(in, ky, kx)`.
pub fn im2col<B: Backend>(x: Tensor<B, 4>, k: usize) -> Tensor<B, 3> {
    let [n, c, h, w] = x.dims();
    let (oh, ow) = (h - k + 1, w - k + 1);
    if k == 1 {
        return x.reshape([n, c, h * w]);
    }
    let mut shifted = Vec::with_capacity(k * k);
    for ky in 0..k {
        for kx in 0..k {
            shifted.push(x.clone().slice([0..n, 0..c, ky..ky + oh, kx..kx + ow]));
        }
    }
    // [n, c, k·k, oh, ow]: channel-major, then kernel position, as `[out, in, ky, kx]` weights flatten.
    Tensor::<B, 4>::stack::<5>(shifted, 2).reshape([n, c * k * k, oh * ow])
}

/// Valid, stride-1 convolution `[n, in, h, w] * [out, in, k, k] (+ bias [out])`.
pub fn conv2d<B: Backend>(x: Tensor<B, 4>, weight: Tensor<B, 4>, bias: Option<Tensor<B, 1>>) -> Tensor<B, 4> {
    let [n, _, h, w] = x.dims();
    let [out, inputs, k, _] = weight.dims();
    let (oh, ow) = (h - k + 1, w - k + 1);
    let cols = im2col(x, k);
    let w2 = weight.reshape([1, out, inputs * k * k]).repeat_dim(0, n);
    let y = w2.matmul(cols).reshape([n, out, oh, ow]);
    match bias {
        Some(b) => y + b.reshape([1, out, 1, 1]),
        None => y,
    }
}

/// The input gradient of [`conv2d`]: the output gradient, zero-padded by `k - 1`, convolved with the flipped kernel
/// whose in/out axes are swapped.
pub fn conv2d_x_grad<B: Backend>(weight: Tensor<B, 4>, grad: Tensor<B, 4>) -> Tensor<B, 4> {
    let [out, _, k, _] = weight.dims();
    let flipped = weight.swap_dims(0, 1).flip([2, 3]);
    if k == 1 {
        return conv2d(grad, flipped, None);
    }
    let [n, _, gh, gw] = grad.dims();
    let p = k - 1;
    let padded = Tensor::<B, 4>::zeros([n, out, gh + 2 * p, gw + 2 * p], &grad.device())
        .slice_assign([0..n, 0..out, p..p + gh, p..p + gw], grad);
    conv2d(padded, flipped, None)
}

/// The weight gradient of [`conv2d`]: `dW = Σ_images dY · im2col(X)ᵀ`, reshaped to `[out, in, k, k]`.
pub fn conv2d_weight_grad<B: Backend>(x: Tensor<B, 4>, grad: Tensor<B, 4>, k: usize) -> Tensor<B, 4> {
    let [n, inputs, _, _] = x.dims();
    let [_, out, oh, ow] = grad.dims();
    let cols = im2col(x, k);
    let dw = grad.reshape([n, out, oh * ow]).matmul(cols.swap_dims(1, 2)); // [n, out, in·k·k]
    dw.sum_dim(0).reshape([out, inputs, k, k])
}

/// The 2x2, stride-2 up-convolution with weights in burn's/ONNX's `[in, out, 2, 2]` layout: every input pixel
/// becomes a 2x2 block, `y[o, 2i + a, 2j + b] = Σ_c x[c, i, j] · w[c, o, a, b] + bias[o]`.
pub fn up_conv2x2<B: Backend>(x: Tensor<B, 4>, weight: Tensor<B, 4>, bias: Option<Tensor<B, 1>>) -> Tensor<B, 4> {
    let [n, inputs, h, w] = x.dims();
    let [_, out, _, _] = weight.dims();
    let pixels = x.permute([0, 2, 3, 1]).reshape([n * h * w, inputs]);
    let blocks = pixels.matmul(weight.reshape([inputs, out * 4])); // [n·h·w, out·2·2]
    let y: Tensor<B, 4> = blocks
        .reshape([n, h, w, out, 2, 2])
        .permute([0, 3, 1, 4, 2, 5]) // [n, out, h, a, w, b]
        .reshape([n, out, 2 * h, 2 * w]);
    match bias {
        Some(b) => y + b.reshape([1, out, 1, 1]),
        None => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::{
        backend::{Autodiff, Flex},
        nn::conv::ConvTranspose2dConfig,
        tensor::{
            Distribution, Tolerance,
            ops::{ConvOptions, ConvTransposeOptions},
        },
    };

    type AD = Autodiff<Flex>;

    fn random<const D: usize>(shape: [usize; D]) -> Tensor<Flex, D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
    }

    /// Forward, input gradient and weight gradient against burn's own convolution (through autodiff), for 3x3 and
    /// 1x1 kernels, one and two images.
    #[test]
    fn convolution_passes_equal_burns() {
        let tol = Tolerance::absolute(1e-4);
        for (n, inputs, outputs, size, k) in [(1, 1, 4, 12, 3), (2, 3, 5, 9, 3), (2, 4, 2, 7, 1)] {
            let (x, w, b) = (random([n, inputs, size, size]), random([outputs, inputs, k, k]), random([outputs]));
            let g = random([n, outputs, size - k + 1, size - k + 1]);
            let xa = Tensor::<AD, 4>::from_inner(x.clone()).require_grad();
            let wa = Tensor::<AD, 4>::from_inner(w.clone()).require_grad();
            let y = burn::tensor::module::conv2d(
                xa.clone(),
                wa.clone(),
                Some(Tensor::from_inner(b.clone())),
                ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
            );
            let grads = (y.clone() * Tensor::from_inner(g.clone())).sum().backward();
            conv2d(x.clone(), w.clone(), Some(b)).into_data().assert_approx_eq::<f32>(&y.inner().into_data(), tol);
            conv2d_x_grad(w.clone(), g.clone())
                .into_data()
                .assert_approx_eq::<f32>(&xa.grad(&grads).unwrap().into_data(), tol);
            conv2d_weight_grad(x, g, k).into_data().assert_approx_eq::<f32>(&wa.grad(&grads).unwrap().into_data(), tol);
        }
    }

    /// The matmul up-convolution against burn's transposed convolution: forward and, under autodiff, the gradients
    /// of input, weight and bias.
    #[test]
    fn up_convolution_equals_burns_transposed_convolution() {
        let tol = Tolerance::absolute(1e-4);
        let device = Default::default();
        for (n, inputs, outputs, h, w) in [(1, 3, 2, 5, 4), (2, 8, 4, 3, 6)] {
            let layer = ConvTranspose2dConfig::new([inputs, outputs], [2, 2]).with_stride([2, 2]).init::<AD>(&device);
            let x = Tensor::<AD, 4>::from_inner(random([n, inputs, h, w])).require_grad();
            let g = Tensor::<AD, 4>::from_inner(random([n, outputs, 2 * h, 2 * w]));
            let run = |ours: bool| {
                let (weight, bias) = (layer.weight.val(), layer.bias.as_ref().unwrap().val());
                let y = if ours {
                    up_conv2x2(x.clone(), weight.clone(), Some(bias.clone()))
                } else {
                    burn::tensor::module::conv_transpose2d(
                        x.clone(),
                        weight.clone(),
                        Some(bias.clone()),
                        ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], 1),
                    )
                };
                let grads = (y.clone() * g.clone()).sum().backward();
                (
                    y.inner().into_data(),
                    x.grad(&grads).unwrap().into_data(),
                    weight.grad(&grads).unwrap().into_data(),
                    bias.grad(&grads).unwrap().into_data(),
                )
            };
            let (ours, burns) = (run(true), run(false));
            ours.0.assert_approx_eq::<f32>(&burns.0, tol);
            ours.1.assert_approx_eq::<f32>(&burns.1, tol);
            ours.2.assert_approx_eq::<f32>(&burns.2, tol);
            ours.3.assert_approx_eq::<f32>(&burns.3, tol);
        }
    }
}
