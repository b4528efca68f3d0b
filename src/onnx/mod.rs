//! Writing the paper's U-Net as an ONNX model from a set of weights, and reading one back.

pub mod proto;
mod read;
mod unet_graph;

pub use read::{read_unet, read_unet_file};
pub use unet_graph::{encode_unet, write_unet};
