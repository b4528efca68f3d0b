//! unet: native U-Net segmentation for microscopy.
//!
//! The data flow reads left to right: [`image::ImageView`] -> [`normalize`] -> [`tiling`] -> [`model::Model`]
//! (ONNX Runtime) -> [`segment`] (stitching, mask) -> [`labels`]. The C ABI in [`ffi`] is a thin skin over this
//! Rust API. [`onnx`] writes the paper's network as ONNX from [`weights`].

// Shared types and algorithms.
pub mod color;
pub mod distance;
pub mod error;
pub mod fsutil;
pub mod geometry;
pub mod image;
pub mod metadata;
pub mod postprocessing;
pub mod resample;

// The layers: inference (what the C ABI needs), the network, data and scoring, training, and the C skin.
pub mod data;
pub mod ffi;
pub mod infer;
pub mod net;
#[cfg(feature = "train")]
pub mod train;

// Every module keeps its short path (`unet::segment`, `crate::onnx`, ...): hosts, tests and the CLI use them.
pub use data::{augment, dataset, evaluate, imageio, metrics, pixel_size, synthetic, weight_map};
pub use infer::{gpu_memory, instances, labels, model, normalize, object_size, provider, runtime, segment, tiling};
pub use net::{baseline, onnx, weights};

pub use error::{Error, Result, UnetStatus};
pub use geometry::Architecture;
pub use image::{ImageView, Pixels};
pub use labels::Connectivity;
pub use metadata::{ModelMetadata, Normalization};
pub use model::{Model, ModelOptions};
pub use object_size::ObjectSize;
pub use postprocessing::{InstanceMethod, InstanceRequest, PostProcessing, Watershed, WatershedOverrides};
pub use provider::Provider;
pub use segment::{
    Progress, SegmentOptions, SegmentOutputs, SegmentReport, SegmentTimings, instances_from_probabilities,
};
pub use weights::UNetWeights;
