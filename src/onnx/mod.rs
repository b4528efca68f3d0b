//! Writing the paper's U-Net as an ONNX model from a set of weights.

pub mod proto;
mod unet_graph;

pub use unet_graph::{encode_unet, write_unet};
