//! Parameters of a U-Net as named tensors in one canonical order and layout (ONNX's: conv `[out, in, k, k]`,
//! up-conv `[in, out, 2, 2]`). The ONNX writer and the trainer both use this, so their weights line up exactly.

use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal};

use crate::geometry::{Architecture, LayerKind};

/// One parameter tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// What a parameter is, which decides its shape and its He fan-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// `[out, in, k, k]`
    ConvWeight {
        input: usize,
        output: usize,
        kernel: usize,
    },
    /// `[in, out, 2, 2]`
    UpConvWeight {
        input: usize,
        output: usize,
    },
    Bias {
        len: usize,
    },
}

impl ParamKind {
    pub fn shape(self) -> Vec<usize> {
        match self {
            ParamKind::ConvWeight { input, output, kernel } => vec![output, input, kernel, kernel],
            ParamKind::UpConvWeight { input, output } => vec![input, output, 2, 2],
            ParamKind::Bias { len } => vec![len],
        }
    }

    /// Inputs of one output neuron (the paper's N in std = sqrt(2/N)). A stride-2 2x2 up-convolution feeds each
    /// output pixel from exactly one kernel tap per input channel.
    pub fn fan_in(self) -> usize {
        match self {
            ParamKind::ConvWeight { input, kernel, .. } => input * kernel * kernel,
            ParamKind::UpConvWeight { input, .. } => input,
            ParamKind::Bias { .. } => 0,
        }
    }
}

/// Names and kinds of all parameters of `arch`, in canonical order (that of [`Architecture::layers`]).
pub fn parameter_layout(arch: &Architecture) -> Vec<(String, ParamKind)> {
    let mut layout = Vec::new();
    for l in arch.layers() {
        let weight = match l.kind {
            LayerKind::UpConv => ParamKind::UpConvWeight { input: l.input, output: l.output },
            _ => ParamKind::ConvWeight { input: l.input, output: l.output, kernel: l.kernel() },
        };
        layout.push((format!("{}.weight", l.name), weight));
        layout.push((format!("{}.bias", l.name), ParamKind::Bias { len: l.output }));
    }
    layout
}

/// All parameters of one network.
#[derive(Clone, Debug, PartialEq)]
pub struct UNetWeights {
    pub arch: Architecture,
    pub tensors: Vec<Tensor>,
}

impl UNetWeights {
    /// He-normal weights (std = sqrt(2 / fan_in)) and zero biases, reproducible from `seed`.
    pub fn he_normal(arch: Architecture, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let tensors = parameter_layout(&arch)
            .into_iter()
            .map(|(name, kind)| {
                let shape = kind.shape();
                let n: usize = shape.iter().product();
                let data = match kind {
                    ParamKind::Bias { .. } => vec![0.0; n],
                    _ => {
                        let std = (2.0 / kind.fan_in() as f64).sqrt();
                        let normal = Normal::new(0.0, std).expect("finite std");
                        (0..n).map(|_| normal.sample(&mut rng) as f32).collect()
                    }
                };
                Tensor { name, shape, data }
            })
            .collect();
        UNetWeights { arch, tensors }
    }

    /// Weights filled by `fill(name, shape) -> data`; used to construct models with known behaviour.
    pub fn from_fn(arch: Architecture, mut fill: impl FnMut(&str, &[usize]) -> Vec<f32>) -> Self {
        let tensors = parameter_layout(&arch)
            .into_iter()
            .map(|(name, kind)| {
                let shape = kind.shape();
                let data = fill(&name, &shape);
                assert_eq!(data.len(), shape.iter().product::<usize>(), "{name}: wrong element count");
                Tensor { name, shape, data }
            })
            .collect();
        UNetWeights { arch, tensors }
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Checks names, order and shapes against the architecture.
    pub fn validate(&self) -> Result<(), String> {
        let layout = parameter_layout(&self.arch);
        if layout.len() != self.tensors.len() {
            return Err(format!("expected {} tensors, got {}", layout.len(), self.tensors.len()));
        }
        for ((name, kind), t) in layout.iter().zip(&self.tensors) {
            if *name != t.name || kind.shape() != t.shape || t.data.len() != t.shape.iter().product::<usize>() {
                return Err(format!(
                    "tensor {} (shape {:?}) does not match {name} {:?}",
                    t.name,
                    t.shape,
                    kind.shape()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_parameter_count() {
        for arch in [Architecture::PAPER, Architecture { in_channels: 3, classes: 4, base_width: 8, depth: 2 }] {
            let n: usize = parameter_layout(&arch).iter().map(|(_, k)| k.shape().iter().product::<usize>()).sum();
            assert_eq!(n, arch.parameter_count());
        }
    }

    #[test]
    fn he_normal_has_the_right_spread() {
        let arch = Architecture { in_channels: 1, classes: 2, base_width: 16, depth: 2 };
        let w = UNetWeights::he_normal(arch, 7);
        w.validate().unwrap();
        let t = w.get("enc1.conv2.weight").unwrap();
        let var = t.data.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / t.data.len() as f64;
        let expected = 2.0 / (32.0 * 9.0);
        assert!((var / expected - 1.0).abs() < 0.05, "variance {var} vs {expected}");
        assert_eq!(w, UNetWeights::he_normal(arch, 7), "same seed, same weights");
    }
}
