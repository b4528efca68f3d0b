//! Models compiled into the library, loaded by name wherever a model path is accepted (CLI `--model em`, the C
//! ABI's unet_model_load("em"), napari and ImageJ through it).

mod common;

use std::path::Path;

use unet::{
    Model, UnetStatus,
    model::{MODEL_NAMES, embedded_model},
};

#[test]
fn every_embedded_name_loads_and_says_what_it_is() {
    for name in MODEL_NAMES {
        let Some(bytes) = embedded_model(name) else {
            let err = Model::named(name, &common::options()).unwrap_err();
            assert!(err.message().contains(name), "{err}");
            continue;
        };
        let model = Model::named(name, &common::options()).unwrap();
        assert_eq!(model.source(), format!("<embedded {name} model>"));
        assert!(!model.metadata().provenance.is_empty(), "{name} says where it comes from");
        assert!(!model.metadata().provenance.contains("/root/"), "{name}: no machine's absolute path");
        // A name where a path is expected gives the same model, unless a file of that name exists.
        let by_path = Model::load_path_or_name(Path::new(name), &common::options()).unwrap();
        assert_eq!(by_path.metadata(), model.metadata());
        assert_eq!(unet::onnx::read_unet_file(name).unwrap().1, *model.metadata());
        assert!(bytes.len() < 16 << 20, "{name} is {} bytes", bytes.len());
    }
    assert!(embedded_model("default").is_some(), "the default model ships with the library");
}

#[test]
fn unknown_names_are_missing_files() {
    let err = Model::load_path_or_name(Path::new("no-such-model"), &common::options()).unwrap_err();
    assert_eq!(err.status(), UnetStatus::ModelNotFound);
    assert!(Model::named("no-such-model", &common::options()).unwrap_err().message().contains("default, em, cells"));
}
