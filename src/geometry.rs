//! Sizes of the paper's U-Net: unpadded 3x3 convolutions shrink every level, so the output is smaller than the
//! input by a fixed margin (the halo) and only some input sizes are valid (each pooled map must have an even size).
//! All of it follows from the depth; the numbers also travel in the model's metadata.

/// Shape of one U-Net: the paper's network is `in_channels = 1, classes = 2, base_width = 64, depth = 4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Architecture {
    pub in_channels: usize,
    pub classes: usize,
    /// Feature channels at the top level; level `l` has `base_width << l`.
    pub base_width: usize,
    /// Number of 2x2 max-pool steps.
    pub depth: usize,
}

impl Architecture {
    /// The paper's network (31.03 M parameters).
    pub const PAPER: Architecture = Architecture { in_channels: 1, classes: 2, base_width: 64, depth: 4 };

    pub fn geometry(&self) -> Geometry {
        Geometry::for_depth(self.depth)
    }

    /// Number of trainable parameters (weights and biases).
    pub fn parameter_count(&self) -> usize {
        self.layers().iter().map(Layer::parameter_count).sum()
    }
}

/// One convolution of the network: the name its parameters carry (`NAME.weight`, `NAME.bias`) in every file and
/// module (ONNX initializers, the trainer's modules, checkpoints), its channels and its kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub name: String,
    pub input: usize,
    pub output: usize,
    pub kind: LayerKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// An unpadded 3x3 convolution followed by ReLU.
    Conv3,
    /// The 2x2, stride-2 up-convolution at the start of an expansive level.
    UpConv,
    /// The final 1x1 convolution to class scores.
    Head,
}

/// One level of the contracting path (`level` 0 is the top; `depth` the bottom), or of the expansive path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Level {
    pub level: usize,
    /// Contracting: [conv1, conv2]. Expansive: [up, conv1, conv2] (conv1 reads the skip connection and the
    /// up-sampled map concatenated: twice the width).
    pub layers: Vec<Layer>,
}

impl Architecture {
    /// The network's topology, the one description every walker uses: the contracting levels top to bottom,
    /// the expansive levels bottom to top, and the head.
    pub fn topology(&self) -> (Vec<Level>, Vec<Level>, Layer) {
        let layer = |name: String, input, output, kind| Layer { name, input, output, kind };
        let mut ch = self.in_channels;
        let mut down = Vec::with_capacity(self.depth + 1);
        for level in 0..=self.depth {
            let w = self.base_width << level;
            down.push(Level {
                level,
                layers: vec![
                    layer(format!("enc{level}.conv1"), ch, w, LayerKind::Conv3),
                    layer(format!("enc{level}.conv2"), w, w, LayerKind::Conv3),
                ],
            });
            ch = w;
        }
        let mut up = Vec::with_capacity(self.depth);
        for level in (0..self.depth).rev() {
            let w = self.base_width << level;
            up.push(Level {
                level,
                layers: vec![
                    layer(format!("dec{level}.up"), ch, w, LayerKind::UpConv),
                    layer(format!("dec{level}.conv1"), 2 * w, w, LayerKind::Conv3),
                    layer(format!("dec{level}.conv2"), w, w, LayerKind::Conv3),
                ],
            });
            ch = w;
        }
        (down, up, layer("head".into(), ch, self.classes, LayerKind::Head))
    }

    /// Every layer in the canonical order: contracting, expansive, head.
    pub fn layers(&self) -> Vec<Layer> {
        let (down, up, head) = self.topology();
        down.into_iter().chain(up).flat_map(|l| l.layers).chain([head]).collect()
    }
}

impl Layer {
    /// Kernel edge: 3, 2 (up-convolution) or 1 (head).
    pub fn kernel(&self) -> usize {
        match self.kind {
            LayerKind::Conv3 => 3,
            LayerKind::UpConv => 2,
            LayerKind::Head => 1,
        }
    }

    /// Weights and biases.
    pub fn parameter_count(&self) -> usize {
        self.input * self.output * self.kernel() * self.kernel() + self.output
    }
}

/// Input/output size rules of a network: those of a U-Net of a given depth (two unpadded 3x3 convolutions per
/// level), or those an imported model declares (a bioimage.io package: padded convolutions whose border pixels are
/// cropped as halo, perhaps one fixed input size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Pixels lost (or cropped) on each side: output = input - 2 * halo.
    pub halo: usize,
    /// Valid input sizes are `size_step * k + size_offset` (16k + 60 for depth 4), at least `min_input`. For a
    /// fixed-size network, the grid that tile origins keep to.
    pub size_step: usize,
    pub size_offset: usize,
    /// Smallest valid input size (its output is at least one pixel).
    pub min_input: usize,
    /// Only `min_input` is valid (a network exported for one input size).
    pub fixed: bool,
}

impl Geometry {
    pub fn for_depth(depth: usize) -> Geometry {
        assert!((1..=8).contains(&depth), "depth {depth} out of range 1..=8");
        let size_step = 1usize << depth;
        let min_input = (1..).find(|&s| output_size(depth, s).is_some()).expect("some size is valid");
        let halo = (min_input - output_size(depth, min_input).unwrap()) / 2;
        // Written as the paper writes it (16k + 60 for depth 4): the 4 pixels each level's two convolutions lose,
        // scaled back to the input: 4 * (2^depth - 1).
        Geometry { halo, size_step, size_offset: 4 * (size_step - 1), min_input, fixed: false }
    }

    /// Size rules an imported network declares: inputs `min_input + step * k` (only `min_input` when `fixed`),
    /// `halo` pixels cropped on each side. `None` when they leave no output pixel or the step is 0.
    pub fn declared(min_input: usize, step: usize, halo: usize, fixed: bool) -> Option<Geometry> {
        (step > 0 && min_input > 2 * halo).then(|| Geometry {
            halo,
            size_step: step,
            size_offset: min_input % step,
            min_input,
            fixed,
        })
    }

    pub fn output_for_input(&self, input: usize) -> Option<usize> {
        let valid = input >= self.min_input
            && if self.fixed {
                input == self.min_input
            } else {
                input % self.size_step == self.size_offset % self.size_step
            };
        valid.then(|| input - 2 * self.halo)
    }

    /// Smallest valid output size that is at least `n` (the one size of a fixed network, even when smaller).
    pub fn output_at_least(&self, n: usize) -> usize {
        let min_output = self.min_input - 2 * self.halo;
        if n <= min_output || self.fixed {
            return min_output;
        }
        min_output + (n - min_output).div_ceil(self.size_step) * self.size_step
    }

    /// Valid output sizes are `size_step * k + output_residue`.
    pub fn output_residue(&self) -> usize {
        (self.min_input - 2 * self.halo) % self.size_step
    }

    /// Largest valid output size that is at most `n` (at least the smallest valid output).
    pub fn output_at_most(&self, n: usize) -> usize {
        let min_output = self.min_input - 2 * self.halo;
        if n <= min_output || self.fixed {
            return min_output;
        }
        min_output + (n - min_output) / self.size_step * self.size_step
    }
}

/// Output edge length for an input edge, or `None` when the size is not valid for this depth.
pub fn output_size(depth: usize, input: usize) -> Option<usize> {
    let mut s = input as i64;
    for _ in 0..depth {
        s -= 4;
        if s <= 0 || s % 2 != 0 {
            return None;
        }
        s /= 2;
    }
    s -= 4;
    if s <= 0 {
        return None;
    }
    for _ in 0..depth {
        s = 2 * s - 4;
        if s <= 0 {
            return None;
        }
    }
    Some(s as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_sizes() {
        let g = Architecture::PAPER.geometry();
        assert_eq!(g.halo, 92);
        assert_eq!(g.size_step, 16);
        assert_eq!(g.size_offset, 60);
        assert_eq!(g.output_for_input(572), Some(388));
        assert_eq!(g.output_for_input(1004), Some(820));
        assert_eq!(g.output_for_input(573), None);
        assert_eq!(g.output_residue(), 4);
        // Counted by hand: 18,842,048 contracting + 12,188,480 expansive + 130 head.
        assert_eq!(Architecture::PAPER.parameter_count(), 31_030_658);
    }

    #[test]
    fn every_valid_size_follows_the_rule() {
        for depth in 1..=5 {
            let g = Geometry::for_depth(depth);
            for s in 1..2000 {
                let valid = output_size(depth, s).is_some();
                let rule = s >= g.min_input && s % g.size_step == g.size_offset % g.size_step;
                assert_eq!(valid, rule, "depth {depth} size {s}");
                assert_eq!(g.output_for_input(s), output_size(depth, s), "depth {depth} size {s}");
                if valid {
                    assert_eq!(output_size(depth, s), Some(s - 2 * g.halo));
                }
            }
            for n in 1..300 {
                let o = g.output_at_least(n);
                assert!(o >= n && output_size(depth, o + 2 * g.halo).is_some());
                assert!(o < n + g.size_step || o == g.min_input - 2 * g.halo);
            }
        }
    }
}
