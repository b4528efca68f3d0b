//! The paper's U-Net as a burn module: the same graph as `crate::onnx` writes (unpadded 3x3 convolutions, 2x2
//! max-pool, 2x2 up-convolution, centre crop and `[skip, up]` concatenation, 1x1 head) plus dropout at the end of
//! the contracting path, which is the identity at inference. Parameters load from and export to
//! [`UNetWeights`] in the ONNX layout (burn's conv weights are `[out, in, k, k]`, up-conv `[in, out, k, k]`).

use burn::{
    config::Config,
    module::{Module, Param},
    nn::{
        Dropout, DropoutConfig, PaddingConfig2d,
        conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig},
        pool::{MaxPool2d, MaxPool2dConfig},
    },
    tensor::{Tensor, TensorData, activation::relu, backend::Backend},
};

use super::conv::{TrainConv, train_conv2d};
use crate::{geometry::Architecture, weights::UNetWeights};

/// The network's configuration, burn-style: `UNetConfig::new(1, 2, 64, 4).with_dropout(0.5).init(&device)` (He
/// initialisation) or `.init_with(&weights, &device)`. Saved with every training run as `model-config.json`
/// (`Config::save` / `UNetConfig::load`).
#[derive(Config, Debug)]
pub struct UNetConfig {
    pub in_channels: usize,
    pub classes: usize,
    /// Feature channels at the top level; level `l` has `base_width << l`.
    pub base_width: usize,
    /// Number of 2x2 max-pool steps.
    pub depth: usize,
    /// Dropout at the end of the contracting path (the paper's); the identity at inference.
    #[config(default = 0.5)]
    pub dropout: f64,
    /// Seed of the He-normal initialisation (`init`).
    #[config(default = 0)]
    pub seed: u64,
}

impl UNetConfig {
    pub fn from_architecture(arch: Architecture) -> Self {
        UNetConfig::new(arch.in_channels, arch.classes, arch.base_width, arch.depth)
    }

    pub fn architecture(&self) -> Architecture {
        Architecture {
            in_channels: self.in_channels,
            classes: self.classes,
            base_width: self.base_width,
            depth: self.depth,
        }
    }

    /// A network with He-normal weights (std sqrt(2 / fan-in), the paper's) from `seed`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> UNet<B> {
        self.init_with(&UNetWeights::he_normal(self.architecture(), self.seed), device)
    }

    /// A network with the given weights (fine-tuning, resuming, an exported model).
    pub fn init_with<B: Backend>(&self, weights: &UNetWeights, device: &B::Device) -> UNet<B> {
        assert_eq!(weights.arch, self.architecture(), "the weights are of another architecture");
        UNet::from_weights(weights, self.dropout, device)
    }
}

/// A convolution layer through [`train_conv2d`] (burn's `Conv2d::forward` would take burn's slow weight gradient).
fn conv<B: TrainConv>(layer: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let bias = layer.bias.as_ref().expect("the network's convolutions have biases").val();
    train_conv2d(x, layer.weight.val(), bias)
}

#[derive(Module, Debug)]
pub struct DoubleConv<B: Backend> {
    conv1: Conv2d<B>,
    conv2: Conv2d<B>,
}

impl<B: Backend> DoubleConv<B> {
    fn new(input: usize, output: usize, device: &B::Device) -> Self {
        let conv = |i, o| Conv2dConfig::new([i, o], [3, 3]).with_padding(PaddingConfig2d::Valid).init(device);
        DoubleConv { conv1: conv(input, output), conv2: conv(output, output) }
    }
}

impl<B: TrainConv> DoubleConv<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        relu(conv(&self.conv2, relu(conv(&self.conv1, x))))
    }
}

#[derive(Module, Debug)]
pub struct UpBlock<B: Backend> {
    up: ConvTranspose2d<B>,
    convs: DoubleConv<B>,
}

#[derive(Module, Debug)]
pub struct UNet<B: Backend> {
    /// Levels 0..=depth of the contracting path.
    encoder: Vec<DoubleConv<B>>,
    /// Levels depth-1 down to 0 of the expansive path.
    decoder: Vec<UpBlock<B>>,
    head: Conv2d<B>,
    pool: MaxPool2d,
    dropout: Dropout,
}

impl<B: Backend> UNet<B> {
    /// A network of the given shape with the given weights (e.g. `UNetWeights::he_normal`).
    pub fn from_weights(weights: &UNetWeights, dropout: f64, device: &B::Device) -> Self {
        let (down, up, head) = weights.arch.topology();
        let encoder = down.iter().map(|l| DoubleConv::new(l.layers[0].input, l.layers[0].output, device)).collect();
        let decoder = up
            .iter()
            .map(|l| {
                let (u, c) = (&l.layers[0], &l.layers[1]);
                let up = ConvTranspose2dConfig::new([u.input, u.output], [2, 2]).with_stride([2, 2]).init(device);
                UpBlock { up, convs: DoubleConv::new(c.input, c.output, device) }
            })
            .collect();
        let head = Conv2dConfig::new([head.input, head.output], [1, 1]).init(device);
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        let mut net = UNet { encoder, decoder, head, pool, dropout: DropoutConfig::new(dropout).init() };
        net.load_weights(weights, device);
        net
    }

    pub fn architecture(&self) -> Architecture {
        let w = self.encoder[0].conv1.weight.dims();
        Architecture {
            in_channels: w[1],
            classes: self.head.weight.dims()[0],
            base_width: w[0],
            depth: self.encoder.len() - 1,
        }
    }

    /// Every (name, conv weight, bias) in the canonical order of [`Architecture::layers`], whose names these are.
    fn visit_mut(&mut self, mut f: impl FnMut(&str, &mut Param<Tensor<B, 4>>, &mut Param<Tensor<B, 1>>)) {
        let names: Vec<String> = self.architecture().layers().into_iter().map(|l| l.name).collect();
        let mut names = names.iter();
        let mut next = || names.next().expect("one name per layer").as_str();
        for block in &mut self.encoder {
            f(next(), &mut block.conv1.weight, block.conv1.bias.as_mut().unwrap());
            f(next(), &mut block.conv2.weight, block.conv2.bias.as_mut().unwrap());
        }
        for block in &mut self.decoder {
            f(next(), &mut block.up.weight, block.up.bias.as_mut().unwrap());
            f(next(), &mut block.convs.conv1.weight, block.convs.conv1.bias.as_mut().unwrap());
            f(next(), &mut block.convs.conv2.weight, block.convs.conv2.bias.as_mut().unwrap());
        }
        f(next(), &mut self.head.weight, self.head.bias.as_mut().unwrap());
    }

    fn load_weights(&mut self, weights: &UNetWeights, device: &B::Device) {
        weights.validate().expect("weights fit their architecture");
        self.visit_mut(|name, w, b| {
            let tw = weights.get(&format!("{name}.weight")).expect("weight present");
            let tb = weights.get(&format!("{name}.bias")).expect("bias present");
            let shape: [usize; 4] = tw.shape.clone().try_into().unwrap();
            assert_eq!(w.dims(), shape, "{name}.weight");
            *w = Param::from_tensor(Tensor::from_data(TensorData::new(tw.data.clone(), shape), device));
            *b = Param::from_tensor(Tensor::from_data(TensorData::new(tb.data.clone(), [tb.data.len()]), device));
        });
    }

    /// The parameters in the ONNX writer's layout.
    pub fn to_weights(&self) -> UNetWeights {
        let arch = self.architecture();
        let mut values = std::collections::HashMap::new();
        let mut me = self.clone();
        me.visit_mut(|name, w, b| {
            values.insert(format!("{name}.weight"), w.val().into_data().convert::<f32>().to_vec::<f32>().unwrap());
            values.insert(format!("{name}.bias"), b.val().into_data().convert::<f32>().to_vec::<f32>().unwrap());
        });
        UNetWeights::from_fn(arch, |name, _| values.remove(name).expect("every parameter visited"))
    }

    /// The gradient of the parameter `name` (e.g. "enc0.conv1.weight") in `grads`, flattened.
    pub fn to_weights_grad(
        &self,
        name: &str,
        grads: &<B as burn::tensor::backend::AutodiffBackend>::Gradients,
    ) -> Option<Vec<f32>>
    where
        B: burn::tensor::backend::AutodiffBackend,
    {
        let mut found = None;
        let mut me = self.clone();
        me.visit_mut(|n, w, b| {
            if format!("{n}.weight") == name {
                found = w.grad(grads).map(|g| g.into_data().convert::<f32>().to_vec::<f32>().unwrap());
            } else if format!("{n}.bias") == name {
                found = b.grad(grads).map(|g| g.into_data().convert::<f32>().to_vec::<f32>().unwrap());
            }
        });
        found
    }
}

impl<B: TrainConv> UNet<B> {
    /// Class logits `[n, classes, h - 2 halo, w - 2 halo]` of images `[n, in_channels, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let depth = self.encoder.len() - 1;
        let mut x = x;
        let mut skips = Vec::with_capacity(depth);
        for (level, block) in self.encoder.iter().enumerate() {
            if level > 0 {
                x = self.pool.forward(x);
            }
            x = block.forward(x);
            if level < depth {
                skips.push(x.clone());
            }
        }
        x = self.dropout.forward(x);
        for block in &self.decoder {
            let up = if B::matmul_up_conv() {
                let bias = block.up.bias.as_ref().map(|b| b.val());
                super::im2col::up_conv2x2(x, block.up.weight.val(), bias)
            } else {
                block.up.forward(x)
            };
            let skip = skips.pop().expect("one skip per level");
            let [n, c, sh, sw] = skip.dims();
            let [_, _, uh, uw] = up.dims();
            let (oy, ox) = ((sh - uh) / 2, (sw - uw) / 2);
            let skip = skip.slice([0..n, 0..c, oy..oy + uh, ox..ox + uw]);
            x = block.convs.forward(Tensor::cat(vec![skip, up], 1));
        }
        conv(&self.head, x)
    }
}

#[cfg(test)]
mod tests {
    use burn::config::Config;

    use super::*;

    #[test]
    fn config_builds_saves_and_loads() {
        type B = burn::backend::Flex;
        let config = UNetConfig::new(1, 2, 4, 2).with_dropout(0.25).with_seed(3);
        assert_eq!(UNetConfig::new(1, 2, 4, 2).dropout, 0.5, "the paper's dropout by default");
        let net: UNet<B> = config.init(&Default::default());
        assert_eq!(net.architecture(), config.architecture());
        // He initialisation from the seed: the same weights as UNetWeights::he_normal gives.
        assert_eq!(net.to_weights(), UNetWeights::he_normal(config.architecture(), 3));
        let path = std::env::temp_dir().join(format!("unet-model-config-{}.json", std::process::id()));
        config.save(&path).unwrap();
        let back = UNetConfig::load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!((back.architecture(), back.dropout, back.seed), (config.architecture(), 0.25, 3));
    }
}
