//! Data around the network: image files ([`imageio`]) and the pixel size they record ([`pixel_size`]), annotated datasets ([`dataset`]), synthetic images with
//! known truth ([`synthetic`]), training augmentation ([`augment`]), the paper's loss weights ([`weight_map`]), and
//! scoring ([`metrics`], [`evaluate`]).

pub mod augment;
pub mod dataset;
pub mod evaluate;
pub mod imageio;
pub mod metrics;
pub mod pixel_size;
pub mod synthetic;
pub mod weight_map;
