//! Model metadata (the `unet.*` keys every loaded model's ONNX metadata is parsed from): lines `key=value`.
//! Parsed metadata must be self-consistent: a geometry that can be computed and a post-processing that validates.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        let pairs: Vec<(String, String)> =
            text.lines().filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect();
        let lookup = |key: &str| pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        match unet::metadata::ModelMetadata::from_lookup(lookup) {
            Ok(meta) => {
                let g = meta.geometry();
                assert!(g.min_input > 2 * g.halo, "a valid model has a positive output size");
                // What is written back reads back the same.
                let props = meta.to_props();
                let again = unet::metadata::ModelMetadata::from_lookup(|k| {
                    props.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone())
                })
                .expect("written metadata reads back");
                assert_eq!(again.to_props(), props);
            }
            Err(e) => assert!(!e.message().is_empty()),
        }
    });
}
