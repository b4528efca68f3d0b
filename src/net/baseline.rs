//! An intensity baseline written as U-Net weights: P(foreground) = sigmoid(gain * (S(x) - threshold)), where
//! x is the percentile-normalised image and S four successive 3x3 box filters (the two top-level convolutions on
//! the way down and the two on the way up, joined by the skip connection; deeper levels are zero).
//!
//! It is not the default model (a trained one is, `onnx/default.onnx`): it is a real, runnable model that segments
//! bright objects on a dark background, and whose output is known in closed form, which makes it an exact
//! reference for the whole pipeline in the tests.

use crate::{geometry::Architecture, metadata::ModelMetadata, weights::UNetWeights};

pub const ARCH: Architecture = Architecture { in_channels: 1, classes: 2, base_width: 2, depth: 4 };
/// Added before the first ReLU so that normalised values down to -OFFSET pass unchanged.
pub const OFFSET: f32 = 4.0;
pub const THRESHOLD: f32 = 0.5;
pub const GAIN: f32 = 12.0;

/// The baseline's weights.
pub fn weights() -> UNetWeights {
    let box3 = |shape: &[usize], input_channel: usize| {
        // Output channel 0 averages input channel `input_channel`; everything else is zero.
        let (o, i, k) = (shape[0], shape[1], shape[2]);
        let mut w = vec![0.0; o * i * k * k];
        for j in 0..k * k {
            w[input_channel * k * k + j] = 1.0 / 9.0;
        }
        w
    };
    UNetWeights::from_fn(ARCH, |name, shape| {
        let n: usize = shape.iter().product();
        match name {
            "enc0.conv1.weight" | "enc0.conv2.weight" | "dec0.conv2.weight" => box3(shape, 0),
            // The skip connection comes first in the concatenation: channel 0 of [skip, up].
            "dec0.conv1.weight" => box3(shape, 0),
            "enc0.conv1.bias" => {
                let mut b = vec![0.0; n];
                b[0] = OFFSET;
                b
            }
            // logit(foreground) - logit(background) = GAIN * (S - OFFSET - THRESHOLD)
            "head.weight" => vec![0.0, 0.0, GAIN, 0.0], // [class][channel]: foreground reads channel 0
            "head.bias" => vec![0.0, -GAIN * (OFFSET + THRESHOLD)],
            _ => vec![0.0; n],
        }
    })
}

pub fn metadata() -> ModelMetadata {
    ModelMetadata::new(
        ARCH,
        format!(
            "intensity baseline, not trained: P(foreground) = sigmoid({GAIN} * (box3^4(x) - {THRESHOLD})) of the image \
             normalised to its 1-99.8 percentiles; segments bright objects on a dark background. A test reference, \
             not a trained model. Made by `unet export-baseline`."
        ),
    )
}

/// The baseline as ONNX bytes.
pub fn onnx_bytes() -> Vec<u8> {
    crate::onnx::encode_unet(&weights(), &metadata()).expect("the baseline's weights fit its architecture")
}
