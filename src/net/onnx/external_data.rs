//! Models that keep tensors in external files are refused before ONNX Runtime sees them.
//!
//! unet hands ONNX Runtime a model as bytes, so an `external_data` location would be resolved against the host
//! program's *working directory* (Fiji's, a microscope program's), not the model's folder: a crafted `.onnx`
//! could read whatever file of that name lies there as weights, and a legitimate model saved with external data
//! would work only when the host happens to run in its folder. Every model unet writes or imports is one
//! self-contained file, so the rule is simple: any tensor with external data is an error that says how to fix it.
//!
//! The scan decodes only the fields that can hold tensors (initializers, sparse initializers, node attributes,
//! subgraphs, functions), with messages of their own so the writer's [`super::proto`] stays minimal.

use prost::Message;

use crate::error::{Error, Result, UnetStatus};

#[derive(Clone, PartialEq, prost::Message)]
struct Model {
    #[prost(message, optional, tag = "7")]
    graph: Option<Graph>,
    #[prost(message, repeated, tag = "25")]
    functions: Vec<Function>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Function {
    #[prost(message, repeated, tag = "7")]
    node: Vec<Node>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Graph {
    #[prost(message, repeated, tag = "1")]
    node: Vec<Node>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<Tensor>,
    #[prost(message, repeated, tag = "15")]
    sparse_initializer: Vec<Sparse>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Node {
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<Attribute>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Attribute {
    #[prost(message, optional, tag = "5")]
    t: Option<Tensor>,
    #[prost(message, optional, tag = "6")]
    g: Option<Graph>,
    #[prost(message, repeated, tag = "10")]
    tensors: Vec<Tensor>,
    #[prost(message, repeated, tag = "11")]
    graphs: Vec<Graph>,
    #[prost(message, optional, tag = "22")]
    sparse_tensor: Option<Sparse>,
    #[prost(message, repeated, tag = "23")]
    sparse_tensors: Vec<Sparse>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Sparse {
    #[prost(message, optional, tag = "1")]
    values: Option<Tensor>,
    #[prost(message, optional, tag = "2")]
    indices: Option<Tensor>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Tensor {
    #[prost(string, tag = "8")]
    name: String,
    #[prost(message, repeated, tag = "13")]
    external_data: Vec<Entry>,
    /// 1 = EXTERNAL.
    #[prost(int32, tag = "14")]
    data_location: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Entry {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

/// The first tensor of `bytes` (an ONNX model) stored outside the file: its name and location. Bytes that do not
/// parse are left to ONNX Runtime, which says what is wrong with them.
pub fn first_external_tensor(bytes: &[u8]) -> Option<(String, String)> {
    let model = Model::decode(bytes).ok()?;
    let mut graphs: Vec<&Graph> = model.graph.iter().collect();
    let mut nodes: Vec<&Node> = model.functions.iter().flat_map(|f| &f.node).collect();
    let mut tensors: Vec<&Tensor> = Vec::new();
    fn sparse(s: &Sparse) -> [Option<&Tensor>; 2] {
        [s.values.as_ref(), s.indices.as_ref()]
    }
    while !graphs.is_empty() || !nodes.is_empty() {
        for g in std::mem::take(&mut graphs) {
            tensors.extend(&g.initializer);
            tensors.extend(g.sparse_initializer.iter().flat_map(sparse).flatten());
            nodes.extend(&g.node);
        }
        for n in std::mem::take(&mut nodes) {
            for a in &n.attribute {
                tensors.extend(a.t.iter().chain(&a.tensors));
                tensors.extend(a.sparse_tensor.iter().chain(&a.sparse_tensors).flat_map(sparse).flatten());
                graphs.extend(a.g.iter().chain(&a.graphs));
            }
        }
    }
    tensors.into_iter().find(|t| t.data_location == 1 || !t.external_data.is_empty()).map(|t| {
        let location = t.external_data.iter().find(|e| e.key == "location").map(|e| e.value.clone());
        (t.name.clone(), location.unwrap_or_default())
    })
}

/// An error when the model keeps any tensor in an external file (see the module comment).
pub fn refuse_external_data(bytes: &[u8]) -> Result<()> {
    match first_external_tensor(bytes) {
        None => Ok(()),
        Some((name, location)) => Err(Error::new(
            UnetStatus::ModelIncompatible,
            format!(
                "the model keeps tensor '{name}' in an external file ('{location}'): unet loads self-contained \
                 models only (an external location would be read relative to the program's working directory); \
                 save it with the weights inside, e.g. onnx.save(model, path, save_as_external_data=False)"
            ),
        )),
    }
}
