//! Wraps an imported ONNX network in unet's convention, so that everything downstream (tiling, batching, the C ABI,
//! every host) runs it unchanged: input `unet_input` [batch, channels, height, width] float32, output
//! `unet_probabilities` [batch, classes, height', width'] float32 with class 0 the background, and the facts in the
//! metadata. Nodes are added before and after the network's own graph (axis order, fixed pre-processing, the
//! package's post-processing, the halo crop, and a foreground map turned into two classes); the network's own
//! fields are copied byte for byte at the wire level.

use prost::Message;

use super::{
    rdf::{Axis, Step},
    wire,
};
use crate::{
    error::{Error, Result, UnetStatus},
    onnx::proto::{
        AttributeProto, Dimension, DimensionValue, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
        TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto, attribute_type, data_type,
    },
};

pub const INPUT: &str = "unet_input";
pub const OUTPUT: &str = "unet_probabilities";

/// What the network's output channels mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputMeaning {
    /// Channel `channel` is the foreground probability (the others are ignored): output [1 - p, p].
    Foreground { channel: usize },
    /// The channels are class probabilities, channel 0 the background.
    Classes,
}

/// How to wrap one network.
#[derive(Clone, Debug)]
pub struct Wrapping {
    pub input_axes: Vec<Axis>,
    pub output_axes: Vec<Axis>,
    /// Steps after unet's normalisation: only `Affine`, `Clip` and `Float32`.
    pub input_steps: Vec<Step>,
    /// The package's post-processing: `Sigmoid`, `Softmax`, `Affine`, `Clip`, `Float32`.
    pub output_steps: Vec<Step>,
    pub input_channels: usize,
    pub output_channels: usize,
    /// Pixels cropped from each side of the output (the package's halo).
    pub crop: usize,
    pub meaning: OutputMeaning,
    /// unet's metadata for the wrapped model.
    pub props: Vec<(String, String)>,
}

fn incompatible(m: impl Into<String>) -> Error {
    Error::new(UnetStatus::ModelIncompatible, m.into())
}

fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M> {
    M::decode(bytes).map_err(|e| Error::new(UnetStatus::ModelInvalid, format!("not a valid ONNX model: {what}: {e}")))
}

/// The name (field 8) of a TensorProto, read without decoding its data.
fn tensor_name(bytes: &[u8]) -> Result<String> {
    for f in wire::fields(bytes)? {
        if f.number == 8 {
            return Ok(String::from_utf8_lossy(f.payload).into_owned());
        }
    }
    Ok(String::new())
}

fn elem_type(v: &ValueInfoProto) -> i32 {
    v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).map_or(data_type::FLOAT, |t| t.elem_type)
}

/// Adds nodes one after another; names are `unet_adapter/N` so they cannot meet the network's own.
struct Chain {
    nodes: Vec<NodeProto>,
    counter: usize,
    opset: i64,
}

impl Chain {
    fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        self.counter += 1;
        let out = format!("unet_adapter/{}_{}", op.to_lowercase(), self.counter);
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op.into(),
            attribute,
        });
        out
    }

    fn constant(&mut self, dims: &[i64], value: TensorValue) -> String {
        let (data_type, raw_data) = match value {
            TensorValue::F32(v) => (data_type::FLOAT, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            TensorValue::I64(v) => (data_type::INT64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        };
        let t = TensorProto { dims: dims.to_vec(), data_type, name: String::new(), raw_data, ..Default::default() };
        let attr =
            AttributeProto { name: "value".into(), t: Some(t), r#type: attribute_type::TENSOR, ..Default::default() };
        self.node("Constant", &[], vec![attr])
    }

    /// A float per channel ([1, C, 1, 1]) or one for all (a scalar).
    fn per_channel(&mut self, values: &[f32]) -> String {
        let dims: Vec<i64> = if values.len() == 1 { vec![] } else { vec![1, values.len() as i64, 1, 1] };
        self.constant(&dims, TensorValue::F32(values.to_vec()))
    }

    fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        if perm.iter().enumerate().all(|(i, &p)| p == i as i64) {
            return x.to_string();
        }
        self.node("Transpose", &[x], vec![ints("perm", perm)])
    }

    /// Squeeze (or unsqueeze) the leading `n` axes.
    fn squeeze(&mut self, op: &str, x: &str, n: usize) -> String {
        if n == 0 {
            return x.to_string();
        }
        let axes: Vec<i64> = (0..n as i64).collect();
        if self.opset >= 13 {
            let a = self.constant(&[n as i64], TensorValue::I64(axes));
            self.node(op, &[x, &a], vec![])
        } else {
            self.node(op, &[x], vec![ints("axes", &axes)])
        }
    }

    fn slice(&mut self, x: &str, axes: &[i64], starts: &[i64], ends: &[i64]) -> String {
        if self.opset >= 10 {
            let len = axes.len() as i64;
            let s = self.constant(&[len], TensorValue::I64(starts.to_vec()));
            let e = self.constant(&[len], TensorValue::I64(ends.to_vec()));
            let a = self.constant(&[len], TensorValue::I64(axes.to_vec()));
            self.node("Slice", &[x, &s, &e, &a], vec![])
        } else {
            self.node("Slice", &[x], vec![ints("axes", axes), ints("starts", starts), ints("ends", ends)])
        }
    }

    fn step(&mut self, x: &str, step: &Step) -> String {
        match step {
            Step::Affine { gain, offset } => {
                let g = self.per_channel(gain);
                let y = self.node("Mul", &[x, &g], vec![]);
                let o = self.per_channel(offset);
                self.node("Add", &[&y, &o], vec![])
            }
            Step::Clip { min, max } => {
                let mut y = x.to_string();
                if let Some(lo) = min {
                    let c = self.per_channel(&[*lo]);
                    y = self.node("Max", &[&y, &c], vec![]);
                }
                if let Some(hi) = max {
                    let c = self.per_channel(&[*hi]);
                    y = self.node("Min", &[&y, &c], vec![]);
                }
                y
            }
            Step::Sigmoid => self.node("Sigmoid", &[x], vec![]),
            // Softmax over channels on NHWC's last axis: right in every opset (before 13, Softmax flattens the
            // axes from `axis` on).
            Step::Softmax => {
                let nhwc = self.transpose(x, &[0, 2, 3, 1]);
                let s = self.node("Softmax", &[&nhwc], vec![int("axis", 3)]);
                self.transpose(&s, &[0, 3, 1, 2])
            }
            Step::Float32 | Step::ScaleRange { .. } | Step::ZeroMeanUnitVariance => x.to_string(),
        }
    }

    /// Makes the value `x` appear under `name`.
    fn finish(&mut self, x: &str, name: &str) {
        match self.nodes.last_mut() {
            Some(last) if last.output[0] == x => {
                last.output[0] = name.to_string();
            }
            _ => {
                self.node("Identity", &[x], vec![]);
                self.nodes.last_mut().expect("just added").output[0] = name.to_string();
            }
        }
    }
}

enum TensorValue {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: v.to_vec(), r#type: attribute_type::INTS, ..Default::default() }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: v, r#type: attribute_type::INT, ..Default::default() }
}

const NCHW: [Axis; 4] = [Axis::Batch, Axis::Channel, Axis::Y, Axis::X];

/// The network's axes with the ones it lacks put first (batch, then channel): a 4-D order.
fn full_order(axes: &[Axis]) -> (Vec<Axis>, usize) {
    let missing: Vec<Axis> = NCHW.iter().copied().filter(|a| !axes.contains(a)).collect();
    let n = missing.len();
    (missing.into_iter().chain(axes.iter().copied()).collect(), n)
}

fn position(order: &[Axis], a: Axis) -> i64 {
    order.iter().position(|&x| x == a).expect("a full 4-D order has every axis") as i64
}

/// The wrapped model's bytes.
pub fn wrap(model: &[u8], w: &Wrapping) -> Result<Vec<u8>> {
    let top = wire::fields(model)?;
    let graph = top.iter().find(|f| f.number == 7).ok_or_else(|| incompatible("the ONNX file has no graph"))?;
    let opset = top
        .iter()
        .filter(|f| f.number == 8)
        .map(|f| decode::<OperatorSetIdProto>(f.payload, "opset_import"))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(1, |o| o.version);
    if opset < 8 {
        return Err(incompatible(format!("the network uses ONNX opset {opset}; unet runs opset 8 and newer")));
    }
    let graph_fields = wire::fields(graph.payload)?;
    let ((input_at, input), (output_at, output)) = graph_input_and_output(&graph_fields)?;
    let pre = before_network(w, &input, opset);
    let post = after_network(w, &output, opset, pre.counter);

    let mut new_graph = Vec::with_capacity(graph.payload.len() + 4096);
    for n in &pre.nodes {
        wire::put_message(&mut new_graph, 1, &n.encode_to_vec());
    }
    for (i, f) in graph_fields.iter().enumerate() {
        if i != input_at && i != output_at {
            new_graph.extend_from_slice(f.encoded);
        }
    }
    for n in &post.nodes {
        wire::put_message(&mut new_graph, 1, &n.encode_to_vec());
    }
    wire::put_message(
        &mut new_graph,
        11,
        &value_info(INPUT, [dim("batch"), fixed(w.input_channels), dim("height"), dim("width")]),
    );
    wire::put_message(
        &mut new_graph,
        12,
        &value_info(OUTPUT, [dim("batch"), fixed(classes_of(w)), dim("out_height"), dim("out_width")]),
    );
    with_graph_and_props(model.len(), &top, &new_graph, &w.props)
}

/// The graph's one image input (not an initializer) and one output, with their field positions.
fn graph_input_and_output(graph_fields: &[wire::Field]) -> Result<((usize, ValueInfoProto), (usize, ValueInfoProto))> {
    let initializers: Vec<String> =
        graph_fields.iter().filter(|f| f.number == 5).map(|f| tensor_name(f.payload)).collect::<Result<_>>()?;
    let mut inputs = Vec::new();
    for (i, f) in graph_fields.iter().enumerate().filter(|(_, f)| f.number == 11) {
        let v: ValueInfoProto = decode(f.payload, "graph input")?;
        if !initializers.contains(&v.name) {
            inputs.push((i, v));
        }
    }
    let mut outputs: Vec<(usize, ValueInfoProto)> = graph_fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.number == 12)
        .map(|(i, f)| decode(f.payload, "graph output").map(|v| (i, v)))
        .collect::<Result<_>>()?;
    if inputs.len() != 1 || outputs.len() != 1 {
        return Err(incompatible(format!(
            "the ONNX network has {} inputs and {} outputs; unet runs one image in, one map out",
            inputs.len(),
            outputs.len()
        )));
    }
    Ok((inputs.remove(0), outputs.remove(0)))
}

/// Before the network: unet's [N, C, H, W] float32, then the package's fixed steps, then its axis order and type.
fn before_network(w: &Wrapping, input: &ValueInfoProto, opset: i64) -> Chain {
    let mut pre = Chain { nodes: Vec::new(), counter: 0, opset };
    let mut x = INPUT.to_string();
    for s in &w.input_steps {
        x = pre.step(&x, s);
    }
    let (order, missing) = full_order(&w.input_axes);
    let perm: Vec<i64> = order.iter().map(|&a| position(&NCHW, a)).collect();
    x = pre.transpose(&x, &perm);
    x = pre.squeeze("Squeeze", &x, missing);
    let input_type = elem_type(input);
    if input_type != data_type::FLOAT {
        x = pre.node("Cast", &[&x], vec![int("to", input_type as i64)]);
    }
    pre.finish(&x, &input.name);
    pre
}

/// After it: back to [N, C, H, W] float32, the package's post-processing, the halo crop, two classes.
fn after_network(w: &Wrapping, output: &ValueInfoProto, opset: i64, counter: usize) -> Chain {
    let mut post = Chain { nodes: Vec::new(), counter, opset };
    let mut y = output.name.clone();
    if elem_type(output) != data_type::FLOAT {
        y = post.node("Cast", &[&y], vec![int("to", data_type::FLOAT as i64)]);
    }
    let (order, missing) = full_order(&w.output_axes);
    y = post.squeeze("Unsqueeze", &y, missing);
    let perm: Vec<i64> = NCHW.iter().map(|&a| position(&order, a)).collect();
    y = post.transpose(&y, &perm);
    for s in &w.output_steps {
        y = post.step(&y, s);
    }
    if w.crop > 0 {
        let c = w.crop as i64;
        y = post.slice(&y, &[2, 3], &[c, c], &[-c, -c]);
    }
    if let OutputMeaning::Foreground { channel } = w.meaning {
        if w.output_channels > 1 {
            let c = channel as i64;
            y = post.slice(&y, &[1], &[c], &[c + 1]);
        }
        let one = post.per_channel(&[1.0]);
        let background = post.node("Sub", &[&one, &y], vec![]);
        y = post.node("Concat", &[&background, &y], vec![int("axis", 1)]);
    }
    post.finish(&y, OUTPUT);
    post
}

/// The model's top-level fields with the graph replaced and unet's metadata properties instead of any it had.
fn with_graph_and_props(
    size: usize,
    top: &[wire::Field],
    new_graph: &[u8],
    props: &[(String, String)],
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(new_graph.len() + size / 16 + 4096);
    for f in top {
        match f.number {
            7 => wire::put_message(&mut out, 7, new_graph),
            14 => {
                let entry: StringStringEntryProto = decode(f.payload, "metadata_props")?;
                if !entry.key.starts_with("unet.") {
                    out.extend_from_slice(f.encoded);
                }
            }
            _ => out.extend_from_slice(f.encoded),
        }
    }
    for (key, value) in props {
        wire::put_message(
            &mut out,
            14,
            &StringStringEntryProto { key: key.clone(), value: value.clone() }.encode_to_vec(),
        );
    }
    Ok(out)
}

fn classes_of(w: &Wrapping) -> usize {
    match w.meaning {
        OutputMeaning::Classes => w.output_channels,
        OutputMeaning::Foreground { .. } => 2,
    }
}

fn dim(p: &str) -> Dimension {
    Dimension { value: Some(DimensionValue::DimParam(p.into())) }
}

fn fixed(v: usize) -> Dimension {
    Dimension { value: Some(DimensionValue::DimValue(v as i64)) }
}

fn value_info(name: &str, dims: [Dimension; 4]) -> Vec<u8> {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto { dim: dims.to_vec() }),
            }),
        }),
    }
    .encode_to_vec()
}
