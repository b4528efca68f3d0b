//! The paper's network as an ONNX graph: per level two unpadded 3x3 Conv+ReLU, 2x2 MaxPool going down; 2x2
//! ConvTranspose, centre crop of the skip connection (a constant Slice, since the crop does not depend on the
//! input size), Concat `[skip, up]` and two Conv+ReLU going up; a 1x1 Conv head and Softmax over classes.
//! Batch, height and width are dynamic. Dropout is a no-op at inference and is left out.

use std::path::Path;

use prost::Message;

use super::proto::*;
use crate::{
    error::{Error, Result, UnetStatus},
    geometry::Architecture,
    metadata::ModelMetadata,
    weights::UNetWeights,
};

pub const INPUT_NAME: &str = "image";
pub const OUTPUT_NAME: &str = "probabilities";
const OPSET: i64 = 17;
const IR_VERSION: i64 = 8;

/// Pixels cropped on each side of the skip connection at each level (index = level), so that it matches the
/// up-sampled map from below.
pub fn skip_crops(arch: &Architecture) -> Vec<usize> {
    let g = arch.geometry();
    let mut s = g.min_input;
    let mut skip_sizes = Vec::new();
    for _ in 0..arch.depth {
        s -= 4;
        skip_sizes.push(s);
        s /= 2;
    }
    s -= 4;
    let mut crops = vec![0; arch.depth];
    for level in (0..arch.depth).rev() {
        s *= 2;
        crops[level] = (skip_sizes[level] - s) / 2;
        s -= 4;
    }
    crops
}

struct GraphBuilder {
    graph: GraphProto,
    counter: usize,
}

impl GraphBuilder {
    fn fresh(&mut self, op: &str) -> String {
        self.counter += 1;
        format!("{op}_{}", self.counter)
    }

    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op.into(),
            attribute: attrs,
        });
        out
    }

    fn initializer_float(&mut self, name: &str, shape: &[usize], data: &[f32], precision: Precision) {
        let (data_type, raw_data) = match precision {
            Precision::F32 => (data_type::FLOAT, data.iter().flat_map(|v| v.to_le_bytes()).collect()),
            Precision::F16 => {
                (data_type::FLOAT16, data.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect())
            }
        };
        self.graph.initializer.push(TensorProto {
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type,
            name: name.into(),
            raw_data,
            ..Default::default()
        });
    }

    fn initializer_i64(&mut self, name: &str, data: &[i64]) {
        self.graph.initializer.push(TensorProto {
            dims: vec![data.len() as i64],
            data_type: data_type::INT64,
            name: name.into(),
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
    }

    fn conv_relu(&mut self, x: &str, prefix: &str) -> String {
        let y = self.conv(x, prefix, 3);
        self.node("Relu", &[&y], vec![])
    }

    fn conv(&mut self, x: &str, prefix: &str, kernel: i64) -> String {
        let (w, b) = (format!("{prefix}.weight"), format!("{prefix}.bias"));
        self.node("Conv", &[x, &w, &b], vec![ints("kernel_shape", &[kernel, kernel])])
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: v.to_vec(), r#type: attribute_type::INTS, ..Default::default() }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: v, r#type: attribute_type::INT, ..Default::default() }
}

fn tensor_value(name: &str, elem_type: i32, dims: [Dimension; 4]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor { elem_type, shape: Some(TensorShapeProto { dim: dims.to_vec() }) }),
        }),
    }
}

fn dim_param(p: &str) -> Dimension {
    Dimension { value: Some(DimensionValue::DimParam(p.into())) }
}

fn dim_value(v: usize) -> Dimension {
    Dimension { value: Some(DimensionValue::DimValue(v as i64)) }
}

/// The element type of the weights and of the computation inside the graph. The graph's input and output stay
/// float32 either way, so every host feeds and reads the same buffers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    F32,
    /// Half the size and, on GPUs with tensor cores, about twice the speed. The input is cast to float16 at the
    /// start and the logits back to float32 before the softmax, so probabilities are computed in float32.
    F16,
}

impl Precision {
    /// The value of the `unet.precision` metadata key.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "float32",
            Precision::F16 => "float16",
        }
    }
}

/// Metadata key naming the weights' precision (absent in float32 models written before it existed).
pub const PRECISION_KEY: &str = "unet.precision";

/// Builds the ONNX model (serialised protobuf bytes) with float32 weights.
pub fn encode_unet(weights: &UNetWeights, metadata: &ModelMetadata) -> Result<Vec<u8>> {
    encode_unet_with(weights, metadata, Precision::F32)
}

/// Builds the ONNX model with weights and arithmetic in `precision`.
pub fn encode_unet_with(weights: &UNetWeights, metadata: &ModelMetadata, precision: Precision) -> Result<Vec<u8>> {
    let arch = weights.arch;
    weights.validate().map_err(|e| Error::invalid_argument(format!("weights do not fit the architecture: {e}")))?;
    if metadata.arch != arch {
        return Err(Error::invalid_argument("metadata architecture differs from the weights' architecture"));
    }
    let mut b = GraphBuilder { graph: GraphProto { name: "unet".into(), ..Default::default() }, counter: 0 };
    for t in &weights.tensors {
        b.initializer_float(&t.name, &t.shape, &t.data, precision);
    }
    let crops = skip_crops(&arch);

    let mut x = INPUT_NAME.to_string();
    if precision == Precision::F16 {
        x = b.node("Cast", &[&x], vec![int("to", data_type::FLOAT16 as i64)]);
    }
    let (down, up, head) = arch.topology();
    let mut skips = Vec::new();
    for level in &down {
        if level.level > 0 {
            x = b.node("MaxPool", &[&x], vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])]);
        }
        for conv in &level.layers {
            x = b.conv_relu(&x, &conv.name);
        }
        if level.level < arch.depth {
            skips.push(x.clone());
        }
    }
    b.initializer_i64("crop.axes", &[2, 3]);
    for level in &up {
        let [upconv, convs @ ..] = level.layers.as_slice() else { unreachable!("an expansive level has 3 layers") };
        let (w, bias) = (format!("{}.weight", upconv.name), format!("{}.bias", upconv.name));
        let upsampled =
            b.node("ConvTranspose", &[&x, &w, &bias], vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])]);
        let (l, c) = (level.level, crops[level.level] as i64);
        let (starts, ends) = (format!("crop{l}.starts"), format!("crop{l}.ends"));
        b.initializer_i64(&starts, &[c, c]);
        b.initializer_i64(&ends, &[-c, -c]);
        let skip = b.node("Slice", &[&skips[l], &starts, &ends, "crop.axes"], vec![]);
        x = b.node("Concat", &[&skip, &upsampled], vec![int("axis", 1)]);
        for conv in convs {
            x = b.conv_relu(&x, &conv.name);
        }
    }
    let mut logits = b.conv(&x, &head.name, 1);
    if precision == Precision::F16 {
        logits = b.node("Cast", &[&logits], vec![int("to", data_type::FLOAT as i64)]);
    }
    b.graph.node.push(NodeProto {
        input: vec![logits],
        output: vec![OUTPUT_NAME.into()],
        name: "softmax".into(),
        op_type: "Softmax".into(),
        attribute: vec![int("axis", 1)],
    });
    b.graph.input.push(tensor_value(
        INPUT_NAME,
        data_type::FLOAT,
        [dim_param("batch"), dim_value(arch.in_channels), dim_param("height"), dim_param("width")],
    ));
    b.graph.output.push(tensor_value(
        OUTPUT_NAME,
        data_type::FLOAT,
        [dim_param("batch"), dim_value(arch.classes), dim_param("out_height"), dim_param("out_width")],
    ));

    let model = ModelProto {
        ir_version: IR_VERSION,
        producer_name: "unet".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: "org.unet".into(),
        model_version: 1,
        doc_string: format!("U-Net (Ronneberger et al. 2015), {arch:?}, {} weights", precision.name()),
        graph: Some(b.graph),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        metadata_props: metadata
            .to_props()
            .into_iter()
            .chain([(PRECISION_KEY.to_string(), precision.name().to_string())])
            .map(|(key, value)| StringStringEntryProto { key, value })
            .collect(),
    };
    Ok(model.encode_to_vec())
}

/// Writes the model to `path` atomically (temporary file in the same folder, then rename).
pub fn write_unet(path: &Path, weights: &UNetWeights, metadata: &ModelMetadata) -> Result<()> {
    write_unet_with(path, weights, metadata, Precision::F32)
}

/// Writes the model with weights in `precision` to `path` atomically.
pub fn write_unet_with(
    path: &Path,
    weights: &UNetWeights,
    metadata: &ModelMetadata,
    precision: Precision,
) -> Result<()> {
    let bytes = encode_unet_with(weights, metadata, precision)?;
    crate::fsutil::write_atomic(path, &bytes)
        .map_err(|e| Error::new(UnetStatus::Io, format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_crops() {
        // 572 input: skips 568, 280, 136, 64; up-sampled 392, 200, 104, 56.
        assert_eq!(skip_crops(&Architecture::PAPER), vec![88, 40, 16, 4]);
    }
}
