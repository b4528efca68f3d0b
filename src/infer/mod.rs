//! Inference: what the C ABI needs. An image is normalised ([`normalize`]), cut into overlapping tiles
//! ([`tiling`]), run through ONNX Runtime ([`runtime`], [`provider`], [`model`]), stitched into probabilities and a
//! mask ([`segment`]) and labelled into instances ([`labels`], [`instances`]).

pub mod gpu_memory;
pub mod instances;
pub mod labels;
pub mod model;
pub mod normalize;
pub mod object_size;
pub mod provider;
pub mod runtime;
pub mod segment;
pub mod tiling;
