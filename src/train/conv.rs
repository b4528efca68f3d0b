//! The U-Net's valid convolutions as one training op with a backward pass that suits the CPU.
//!
//! burn computes a convolution's weight gradient as another convolution: the input convolved with the output
//! gradient, i.e. a "kernel" the size of the whole image over one channel. burn's CPU backend (flex) runs that
//! shape with its direct small-channel loop, which took about half of a training step at base width 16 (perf,
//! 572x572 tile). The same gradient is `dW = dY · im2col(X)ᵀ`, one GEMM with the forward convolution's FLOPs.
//! The input gradient becomes flex's tiled forward convolution with the flipped kernel (see
//! [`TrainConv::train_conv2d_x_grad`] on flex); the bias gradient stays burn's (a sum).
//!
//! [`TrainConv`] is implemented for the inner backends as burn's plain `conv2d` and, for `Autodiff<B>`, as a
//! tracked op with that backward, so the network calls one function whatever it runs on. flex overrides the
//! gradients as above; CUDA runs all three passes as [`CudaConv`] says (by default GEMMs in burn tensor ops,
//! [`super::im2col`]), because burn's CUDA convolutions without autotuning are direct kernels.

use std::sync::atomic::{AtomicU8, Ordering};

use burn::{
    backend::autodiff::{
        Autodiff, NodeId,
        checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
        grads::Gradients,
        ops::{Backward, Ops, OpsKind},
    },
    tensor::{
        Tensor, TensorMetadata, TensorPrimitive,
        backend::Backend,
        ops::{ConvOptions, FloatTensor, FloatTensorOps, ModuleOps},
    },
};

/// Stride 1, no padding, no dilation, one group: the paper's convolution.
fn valid_options() -> ConvOptions<2> {
    ConvOptions::new([1, 1], [0, 0], [1, 1], 1)
}

/// A backend that can run the network's convolutions during training.
pub trait TrainConv: Backend {
    /// `conv2d(x, weight, bias)` with [`valid_options`]: `x [n, in, h, w]`, `weight [out, in, k, k]`, `bias [out]`.
    fn train_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::conv2d(x, weight, Some(bias), valid_options())
    }

    /// The input gradient of [`TrainConv::train_conv2d`]; by default burn's own.
    fn train_conv2d_x_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, grad, valid_options())
    }

    /// The weight gradient of [`TrainConv::train_conv2d`]; by default burn's own.
    fn train_conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, grad, valid_options())
    }

    /// Whether the network's 2x2 up-convolutions run as a matmul and a shuffle ([`super::im2col::up_conv2x2`])
    /// instead of burn's transposed convolution; by default not.
    fn matmul_up_conv() -> bool {
        false
    }
}

/// How the training convolutions run on CUDA. `unet bench-train --cuda-conv` times each; `unet train --cuda-conv`
/// picks one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CudaConv {
    /// burn's own kernels (direct convolutions; the weight gradient as an image-sized convolution).
    Direct,
    /// GEMMs in burn tensor ops ([`super::im2col`]), which cubecl multiplies on tensor cores (TF32), more memory.
    /// The default.
    Im2col,
    /// cubecl's implicit-GEMM kernels on tensor cores (TF32 precision), [`CudaConv::Im2col`] where they refuse a
    /// shape. Timing only: on an H100 (2026-11-27) its training step's weights differed from the CPU step's by 3.6x
    /// each tensor's largest weight (`tests/gpu.rs`), so `unet train` refuses it.
    ImplicitGemm,
}

static CUDA_CONV: AtomicU8 = AtomicU8::new(CudaConv::Im2col as u8);

impl CudaConv {
    pub const ALL: [CudaConv; 3] = [CudaConv::Direct, CudaConv::Im2col, CudaConv::ImplicitGemm];

    pub fn name(self) -> &'static str {
        match self {
            CudaConv::Direct => "direct",
            CudaConv::Im2col => "im2col",
            CudaConv::ImplicitGemm => "implicit-gemm",
        }
    }

    /// `direct`, `im2col` or `implicit-gemm`; anything else is an error listing them.
    pub fn parse(s: &str) -> Result<CudaConv, String> {
        CudaConv::ALL
            .into_iter()
            .find(|c| c.name() == s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown CUDA convolution '{s}': use direct, im2col or implicit-gemm"))
    }

    /// The ones whose training step matched the CPU's on a GPU (`tests/gpu.rs`), which `unet train` accepts.
    pub const TRAINS_CORRECTLY: [CudaConv; 2] = [CudaConv::Direct, CudaConv::Im2col];

    /// [`CudaConv::parse`] for training: a way measured to compute wrong gradients is an error saying so.
    pub fn parse_for_training(s: &str) -> Result<CudaConv, String> {
        let conv = CudaConv::parse(s)?;
        if !CudaConv::TRAINS_CORRECTLY.contains(&conv) {
            return Err(format!(
                "--cuda-conv {}: its weight gradients were wrong on an H100 (3.6x the largest weight off the CPU \
                 step's, tests/gpu.rs); use im2col (`unet bench-train` still times it)",
                conv.name()
            ));
        }
        Ok(conv)
    }

    /// The one in use (process-wide).
    pub fn current() -> CudaConv {
        CudaConv::ALL[CUDA_CONV.load(Ordering::Relaxed) as usize]
    }

    /// Use this one from now on (process-wide; the trainer's entry points set it before building a network).
    pub fn select(self) {
        CUDA_CONV.store(self as u8, Ordering::Relaxed);
    }
}

impl TrainConv for burn::backend::Flex {
    /// A "full" convolution of the output gradient with the flipped, transposed kernel: flex runs forward
    /// convolutions on bounded im2col tiles, where its transposed convolution (burn's default here) builds one
    /// im2col matrix of the whole image, 9 x channels x pixels (190 MB at base 16), whose fresh pages were a fifth
    /// of the step.
    fn train_conv2d_x_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let kernel = weight.shape().dims::<4>()[2];
        if kernel == 1 {
            return Self::conv2d_x_backward(x, weight, grad, valid_options());
        }
        let flipped = Self::float_flip(Self::float_swap_dims(weight, 0, 1), &[2, 3]);
        let pad = kernel - 1;
        Self::conv2d(grad, flipped, None, ConvOptions::new([1, 1], [pad, pad], [1, 1], 1))
    }

    /// Image rows copied into a bounded im2col block, multiplied with the GEMM flex itself uses (a version in burn
    /// tensor ops, slice + reshape + cat + matmul, spent most of its time in flex's strided copies).
    fn train_conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        use burn::tensor::{DType, TensorData};
        if x.dtype() != DType::F32 || grad.dtype() != DType::F32 {
            return Self::conv2d_weight_backward(x, weight, grad, valid_options());
        }
        let kernel = weight.shape().dims::<4>()[2];
        let contiguous = |t: burn_flex::FlexTensor| if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() };
        let (x, grad) = (contiguous(x), contiguous(grad));
        let [n, inputs, h, w] = x.shape().dims::<4>();
        let [_, outputs, oh, ow] = grad.shape().dims::<4>();
        let shape = ConvShape { n, inputs, h, w, outputs, oh, ow, kernel };
        let dw = cpu_weight_grad(x.as_slice::<f32>().unwrap(), grad.as_slice::<f32>().unwrap(), shape, 1 << 20);
        burn_flex::FlexTensor::from_data(TensorData::new(dw, [outputs, inputs, kernel, kernel]))
    }
}

/// The sizes of one valid, stride-1 convolution.
#[derive(Clone, Copy, Debug)]
struct ConvShape {
    n: usize,
    inputs: usize,
    h: usize,
    w: usize,
    outputs: usize,
    oh: usize,
    ow: usize,
    kernel: usize,
}

/// `dW[o, (c, ky, kx)] = Σ_(image, y, x) dY[image, o, y, x] · X[image, c, y + ky, x + kx]`, over blocks of output
/// rows (one im2col block of about `block_values` values each, so memory stays small), blocks spread over rayon's
/// threads.
fn cpu_weight_grad(x: &[f32], grad: &[f32], s: ConvShape, block_values: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let columns = s.inputs * s.kernel * s.kernel;
    let rows_per_block = (block_values / (columns * s.ow).max(1)).clamp(1, s.oh);
    let blocks: Vec<(usize, usize)> =
        (0..s.n).flat_map(|image| (0..s.oh).step_by(rows_per_block).map(move |y0| (image, y0))).collect();
    let new_partial = || (vec![0f32; s.outputs * columns], vec![0f32; columns * rows_per_block * s.ow]);
    blocks
        .par_iter()
        .fold(new_partial, |(mut dw, mut block), &(image, y0)| {
            let rows = rows_per_block.min(s.oh - y0);
            let len = rows * s.ow;
            // block[r][j], r = (c, ky, kx), j = (y - y0, x): the input pixel under kernel tap r for output (y, x).
            for c in 0..s.inputs {
                let plane = &x[(image * s.inputs + c) * s.h * s.w..][..s.h * s.w];
                for ky in 0..s.kernel {
                    for kx in 0..s.kernel {
                        let r = (c * s.kernel + ky) * s.kernel + kx;
                        let dst = &mut block[r * len..(r + 1) * len];
                        for (dy, out_row) in dst.chunks_exact_mut(s.ow).enumerate() {
                            let src = (y0 + dy + ky) * s.w + kx;
                            out_row.copy_from_slice(&plane[src..src + s.ow]);
                        }
                    }
                }
            }
            let g = &grad[(image * s.outputs * s.oh + y0) * s.ow..];
            // dw[o, r] += Σ_j g[o, j] · block[r, j]; g's rows are one channel plane apart.
            // SAFETY: every pointer/stride pair stays inside its slice: g spans (outputs - 1) planes + len values,
            // block is columns x len, dw is outputs x columns.
            unsafe {
                gemm::gemm(
                    s.outputs,
                    columns,
                    len,
                    dw.as_mut_ptr(),
                    1,
                    columns as isize,
                    true,
                    g.as_ptr(),
                    1,
                    (s.oh * s.ow) as isize,
                    block.as_ptr(),
                    len as isize,
                    1,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            (dw, block)
        })
        .map(|(dw, _)| dw)
        .reduce(
            || vec![0f32; s.outputs * columns],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        )
}

#[cfg(feature = "cuda")]
impl TrainConv for burn::backend::Cuda {
    fn train_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        use burn_cubecl::kernel::conv::{ConvStrategy, conv_forward};
        let im2col = |x, weight, bias| {
            primitive(super::im2col::conv2d(tensor::<Self, 4>(x), tensor(weight), Some(tensor::<Self, 1>(bias))))
        };
        match CudaConv::current() {
            CudaConv::Direct => Self::conv2d(x, weight, Some(bias), valid_options()),
            CudaConv::Im2col => im2col(x, weight, bias),
            CudaConv::ImplicitGemm => implicit_gemm_or(
                "forward",
                || {
                    conv_forward::<_, 2>(
                        x.clone(),
                        weight.clone(),
                        Some(bias.clone()),
                        valid_options(),
                        ConvStrategy::ImplicitGemm,
                    )
                },
                || im2col(x.clone(), weight.clone(), bias.clone()),
            ),
        }
    }

    fn train_conv2d_x_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        use burn_cubecl::kernel::conv::{ConvStrategy, conv_data_backward};
        let im2col = |weight, grad| primitive(super::im2col::conv2d_x_grad(tensor::<Self, 4>(weight), tensor(grad)));
        match CudaConv::current() {
            CudaConv::Direct => Self::conv2d_x_backward(x, weight, grad, valid_options()),
            CudaConv::Im2col => im2col(weight, grad),
            CudaConv::ImplicitGemm => implicit_gemm_or(
                "input gradient",
                || {
                    conv_data_backward::<_, 2>(
                        grad.clone(),
                        weight.clone(),
                        x.shape(),
                        valid_options(),
                        ConvStrategy::ImplicitGemm,
                    )
                },
                || im2col(weight.clone(), grad.clone()),
            ),
        }
    }

    fn train_conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        use burn_cubecl::kernel::conv::{ConvStrategy, conv_weight_backward};
        let kernel = weight.shape().dims::<4>()[2];
        let im2col = |x, grad| primitive(super::im2col::conv2d_weight_grad(tensor::<Self, 4>(x), tensor(grad), kernel));
        match CudaConv::current() {
            CudaConv::Direct => Self::conv2d_weight_backward(x, weight, grad, valid_options()),
            CudaConv::Im2col => im2col(x, grad),
            CudaConv::ImplicitGemm => implicit_gemm_or(
                "weight gradient",
                || {
                    conv_weight_backward::<_, 2>(
                        x.clone(),
                        grad.clone(),
                        weight.shape(),
                        valid_options(),
                        ConvStrategy::ImplicitGemm,
                    )
                },
                || im2col(x.clone(), grad.clone()),
            ),
        }
    }

    fn matmul_up_conv() -> bool {
        CudaConv::current() != CudaConv::Direct
    }
}

/// cubecl's implicit GEMM, or `fallback` where it refuses the shape (an error, or a panic inside cubecl); said once
/// per pass.
#[cfg(feature = "cuda")]
fn implicit_gemm_or<T, E: std::fmt::Debug>(
    pass: &str,
    gemm: impl FnOnce() -> Result<T, E>,
    fallback: impl FnOnce() -> T,
) -> T {
    use std::{collections::HashSet, sync::Mutex};
    static SAID: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let why = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(gemm)) {
        Ok(Ok(t)) => return t,
        Ok(Err(e)) => format!("{e:?}"),
        Err(_) => "a panic in cubecl".to_string(),
    };
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if said.get_or_insert_with(HashSet::new).insert(pass.to_string()) {
        log::warn!("CUDA implicit-GEMM convolution ({pass}) refused ({why}); using im2col for it");
        eprintln!("note: CUDA implicit-GEMM convolution ({pass}) refused ({why}); using im2col for it");
    }
    fallback()
}

/// A backend primitive as a tensor of rank `D`, and back.
#[cfg(feature = "cuda")]
fn tensor<B: Backend, const D: usize>(p: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

#[cfg(feature = "cuda")]
fn primitive<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

#[derive(Debug)]
struct TrainConvBackward;

impl<B: TrainConv> Backward<B, 3> for TrainConvBackward {
    /// Checkpointed input and weight, and the bias's shape source.
    type State = (NodeId, NodeId, NodeId);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, weight_state, bias_state) = ops.state;
        let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
        let weight = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(weight_state);
        let bias = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(bias_state);
        if let Some(node) = node_x {
            let dx = B::train_conv2d_x_grad(x.clone(), weight.clone(), grad.clone());
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_weight {
            grads.register::<B>(node.id, B::train_conv2d_weight_grad(x.clone(), weight.clone(), grad.clone()));
        }
        if let Some(node) = node_bias {
            grads.register::<B>(node.id, B::conv2d_bias_backward(x, bias, grad));
        }
    }
}

impl<B: TrainConv, C: CheckpointStrategy> TrainConv for Autodiff<B, C> {
    fn matmul_up_conv() -> bool {
        B::matmul_up_conv()
    }

    fn train_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        match TrainConvBackward
            .prepare::<C>([x.node.clone(), weight.node.clone(), bias.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&weight), prep.checkpoint(&bias));
                prep.finish(state, B::train_conv2d(x.primitive, weight.primitive, bias.primitive))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::train_conv2d(x.primitive, weight.primitive, bias.primitive)),
        }
    }
}

/// [`TrainConv::train_conv2d`] on tensors.
pub fn train_conv2d<B: TrainConv>(x: Tensor<B, 4>, weight: Tensor<B, 4>, bias: Tensor<B, 1>) -> Tensor<B, 4> {
    Tensor::from_primitive(TensorPrimitive::Float(B::train_conv2d(
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        bias.into_primitive().tensor(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::{
        backend::Flex,
        tensor::{Distribution, TensorData, Tolerance},
    };

    type AD = Autodiff<Flex>;

    /// The names `--cuda-conv` accepts, round trip, and a clear error for others; the default is im2col.
    #[test]
    fn cuda_convolution_names() {
        for c in CudaConv::ALL {
            assert_eq!(CudaConv::parse(c.name()), Ok(c));
        }
        assert_eq!(CudaConv::parse("Implicit-GEMM"), Ok(CudaConv::ImplicitGemm));
        assert_eq!(CudaConv::parse_for_training("im2col"), Ok(CudaConv::Im2col));
        let refused = CudaConv::parse_for_training("implicit-gemm").unwrap_err();
        assert!(refused.contains("wrong") && refused.contains("im2col"), "{refused}");
        let err = CudaConv::parse("cudnn").unwrap_err();
        assert!(err.contains("cudnn") && err.contains("im2col"), "{err}");
        assert_eq!(CudaConv::current(), CudaConv::Im2col);
    }

    /// The GEMM weight gradient against burn's own (the image-sized convolution), and the whole op's gradients
    /// against burn's tracked `conv2d`.
    #[test]
    fn gradients_equal_burns_convolution() {
        let device = Default::default();
        for (n, inputs, outputs, size, kernel) in [(1, 1, 4, 12, 3), (2, 3, 5, 9, 3), (1, 4, 2, 7, 1)] {
            let x = Tensor::<Flex, 4>::random([n, inputs, size, size], Distribution::Normal(0.0, 1.0), &device);
            let w =
                Tensor::<Flex, 4>::random([outputs, inputs, kernel, kernel], Distribution::Normal(0.0, 1.0), &device);
            let b = Tensor::<Flex, 1>::random([outputs], Distribution::Normal(0.0, 1.0), &device);
            let g_out = Tensor::<Flex, 4>::random(
                [n, outputs, size - kernel + 1, size - kernel + 1],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let burns: Tensor<Flex, 4> = Tensor::from_primitive(TensorPrimitive::Float(Flex::conv2d_weight_backward(
                x.clone().into_primitive().tensor(),
                w.clone().into_primitive().tensor(),
                g_out.clone().into_primitive().tensor(),
                valid_options(),
            )));
            let burns = burns.into_data();
            // The CPU path, with blocks of one output row and of the whole image.
            let [_, _, oh, ow] = g_out.dims();
            let shape = ConvShape { n, inputs, h: size, w: size, outputs, oh, ow, kernel };
            let (xv, gv) = (x.to_data().to_vec::<f32>().unwrap(), g_out.to_data().to_vec::<f32>().unwrap());
            for block_values in [1, 1 << 20] {
                let cpu = cpu_weight_grad(&xv, &gv, shape, block_values);
                TensorData::new(cpu, [outputs, inputs, kernel, kernel])
                    .assert_approx_eq::<f32>(&burns, Tolerance::absolute(1e-4));
            }

            // Whole op under autodiff: forward and all three gradients equal burn's conv2d.
            let run = |ours: bool| {
                let xa = Tensor::<AD, 4>::from_inner(x.clone()).require_grad();
                let wa = Tensor::<AD, 4>::from_inner(w.clone()).require_grad();
                let ba = Tensor::<AD, 1>::from_inner(b.clone()).require_grad();
                let y = if ours {
                    train_conv2d(xa.clone(), wa.clone(), ba.clone())
                } else {
                    burn::tensor::module::conv2d(xa.clone(), wa.clone(), Some(ba.clone()), valid_options())
                };
                let grads = (y.clone() * Tensor::from_inner(g_out.clone())).sum().backward();
                let grad_of = |t: Tensor<AD, 4>| t.grad(&grads).unwrap().into_data();
                (y.inner().into_data(), grad_of(xa), grad_of(wa), ba.grad(&grads).unwrap().into_data())
            };
            let (ya, xa, wa, ba) = run(true);
            let (yb, xb, wb, bb) = run(false);
            let tol = Tolerance::absolute(1e-4);
            ya.assert_approx_eq::<f32>(&yb, tol);
            xa.assert_approx_eq::<f32>(&xb, tol);
            wa.assert_approx_eq::<f32>(&wb, tol);
            ba.assert_approx_eq::<f32>(&bb, tol);
        }
    }
}
