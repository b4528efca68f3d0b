//! The shipped default model's metadata: it recommends a post-processing and names no machine's absolute paths.
//! Its quality (the figures of its card) is `tests/model_quality.rs`, one source of truth for every score.

mod common;

use unet::Model;

fn default_model() -> Model {
    Model::embedded_default(&common::options()).expect("this build embeds onnx/default.onnx")
}

#[test]
fn metadata_recommends_post_processing_and_names_no_absolute_path() {
    let model = default_model();
    let meta = model.metadata();
    assert!(meta.postprocessing.is_some(), "the default model should carry its tuned post-processing");
    for forbidden in ["/root/", "/work/", "/home/", "/tmp/"] {
        assert!(!meta.provenance.contains(forbidden), "provenance names a machine path: {}", meta.provenance);
    }
}
