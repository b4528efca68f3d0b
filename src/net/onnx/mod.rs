//! Writing the paper's U-Net as an ONNX model from a set of weights, and reading one back.

pub mod external_data;
pub mod proto;
mod read;
mod unet_graph;

pub use read::{read_unet, read_unet_file, read_unet_with_precision};
pub use unet_graph::{PRECISION_KEY, Precision, encode_unet, encode_unet_with, write_unet, write_unet_with};
