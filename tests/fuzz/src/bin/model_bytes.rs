//! Model bytes: the ONNX reader and its metadata parser (`unet convert`, `unet train --init`, `unet info` read
//! models through them). Any input must give weights that fit their architecture, or an error with a message.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        match unet::onnx::read_unet_with_precision(data) {
            Ok((weights, metadata, _)) => {
                weights.validate().expect("weights read from a model fit its architecture");
                assert_eq!(weights.arch, metadata.arch, "weights and metadata describe one network");
            }
            Err(e) => assert!(!e.message().is_empty()),
        }
    });
}
