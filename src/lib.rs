//! unet: native U-Net segmentation for microscopy.
//!
//! The data flow reads left to right: [`image::ImageView`] -> [`normalize`] -> [`tiling`] -> [`model::Model`]
//! (ONNX Runtime) -> [`segment`] (stitching, mask) -> [`labels`]. The C ABI in [`ffi`] is a thin skin over this
//! Rust API. [`onnx`] writes the paper's network as ONNX from [`weights`].

pub mod augment;
pub mod baseline;
pub mod dataset;
pub mod error;
pub mod evaluate;
pub mod ffi;
pub mod fsutil;
pub mod geometry;
pub mod gpu_memory;
pub mod image;
pub mod imageio;
pub mod instances;
pub mod labels;
pub mod metadata;
pub mod metrics;
pub mod model;
pub mod normalize;
pub mod onnx;
pub mod provider;
pub mod runtime;
pub mod segment;
pub mod synthetic;
pub mod tiling;
#[cfg(feature = "train")]
pub mod train;
pub mod weight_map;
pub mod weights;

pub use error::{Error, Result, UnetStatus};
pub use geometry::Architecture;
pub use image::{ImageView, Pixels};
pub use instances::{InstanceMethod, InstanceRequest, PostProcessing, Watershed, WatershedOverrides};
pub use labels::Connectivity;
pub use metadata::{ModelMetadata, Normalization};
pub use model::{Model, ModelOptions};
pub use provider::Provider;
pub use segment::{Progress, SegmentOptions, SegmentOutputs, SegmentReport, SegmentTimings};
pub use weights::UNetWeights;
