//! The network itself: its weights ([`weights`]), the ONNX reader and writer ([`onnx`]), model files and the
//! embedded models ([`model_files`]), and the untrained
//! intensity baseline the tests use as an exact reference ([`baseline`]).

pub mod baseline;
pub mod bioimageio;
pub mod model_files;
pub mod onnx;
pub mod weights;
