//! The trainer: the paper's network in burn, its weighted loss, and the training loop. Built with the `train`
//! feature; the network's parameters travel through [`crate::weights::UNetWeights`], so what it trains is exactly
//! what the ONNX writer exports and the plugin runs.

pub mod benchmark;
pub mod device;
pub mod loss;
pub mod model;
pub mod trainer;

pub use burn;

/// CPU backend with automatic differentiation.
pub type TrainBackend = burn::backend::Autodiff<burn::backend::Flex>;
