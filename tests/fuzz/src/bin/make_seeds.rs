//! Writes the seed corpus (committed in corpus/): small valid inputs of every target, from which AFL mutates.
//! Run from tests/fuzz: `cargo run --bin make_seeds` (deterministic; rerun when an input format changes).
use std::{fs, path::Path};

use unet::{
    Architecture, ModelMetadata, UNetWeights,
    imageio::{Plane, write_plane},
    onnx::{Precision, encode_unet_with},
};

fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    // Models: the smallest network in both precisions, and one with two input channels and three classes.
    let tiny = Architecture { in_channels: 1, classes: 2, base_width: 1, depth: 1 };
    let other = Architecture { in_channels: 2, classes: 3, base_width: 1, depth: 1 };
    for (arch, name) in [(tiny, "tiny"), (other, "two-channel-three-class")] {
        let meta = ModelMetadata::new(arch, "seed");
        for (precision, suffix) in [(Precision::F32, "fp32"), (Precision::F16, "fp16")] {
            let bytes = encode_unet_with(&UNetWeights::he_normal(arch, 1), &meta, precision).unwrap();
            put("model_bytes", &format!("{name}-{suffix}.onnx"), &bytes);
        }
        let text: String = meta.to_props().iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        put("model_metadata", &format!("{name}.txt"), text.as_bytes());
    }
    // bioimage.io packages (unet_model_load_from_memory takes a zip too): the tiny network described by rdf.yaml
    // in formats 0.5 and 0.4, so the fuzzer reaches the zip reader, the YAML reader and the graph adapter.
    let onnx = encode_unet_with(&UNetWeights::he_normal(tiny, 1), &ModelMetadata::new(tiny, "seed"), Precision::F32)
        .unwrap();
    let g = tiny.geometry();
    let v05 = format!(
        "format_version: 0.5.4\ntype: model\nname: seed\ninputs:\n  - id: raw\n    axes:\n      - type: batch\n      \
         - type: channel\n        channel_names: [gray]\n      - {{type: space, id: y, size: {{min: {m}, step: {s}}}}}\n      \
         - {{type: space, id: x, size: {{min: {m}, step: {s}}}}}\n    preprocessing:\n      - id: scale_range\n        \
         kwargs: {{axes: [y, x], min_percentile: 1, max_percentile: 99.8}}\noutputs:\n  - id: p\n    axes:\n      \
         - type: batch\n      - type: channel\n        channel_names: [background, cells]\n      \
         - {{type: space, id: y, size: {{tensor_id: raw, axis_id: y, offset: -{o}}}, halo: 2}}\n      \
         - {{type: space, id: x, size: {{tensor_id: raw, axis_id: x, offset: -{o}}}, halo: 2}}\nweights:\n  onnx:\n    \
         source: net.onnx\n",
        m = g.min_input + 4 * g.size_step,
        s = g.size_step,
        o = 2 * g.halo
    );
    let v04 = format!(
        "format_version: 0.4.10\ntype: model\nname: seed\ninputs:\n  - name: raw\n    axes: bcyx\n    \
         shape: [1, 1, {m}, {m}]\n    preprocessing:\n      - name: zero_mean_unit_variance\n        \
         kwargs: {{mode: per_sample, axes: xy}}\noutputs:\n  - name: p\n    axes: bcyx\n    \
         shape: {{reference_tensor: raw, scale: [1, 2, 1, 1], offset: [0, 0, -{h}, -{h}]}}\n    halo: [0, 0, 1, 1]\n\
         weights:\n  onnx:\n    source: net.onnx\n",
        m = g.min_input + 2 * g.size_step,
        h = g.halo
    );
    for (name, rdf) in [("package-v05.zip", v05), ("package-v04.zip", v04)] {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut out);
        let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        use std::io::Write;
        z.start_file("rdf.yaml", stored).unwrap();
        z.write_all(rdf.as_bytes()).unwrap();
        z.start_file("net.onnx", stored).unwrap();
        z.write_all(&onnx).unwrap();
        z.finish().unwrap();
        put("model_bytes", name, &out.into_inner());
    }

    let mut meta = ModelMetadata::new(tiny, "seed");
    meta.postprocessing =
        Some(unet::PostProcessing::parse("watershed h=2 smoothing=1 threshold=0.4 min_size=20").unwrap());
    let text: String = meta.to_props().iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    put("model_metadata", "watershed.txt", text.as_bytes());

    // Image files: small TIFFs of every written type and PNGs.
    let tmp = std::env::temp_dir().join("unet-fuzz-seeds");
    fs::create_dir_all(&tmp).unwrap();
    let (w, h) = (5, 4);
    let u8s: Vec<u8> = (0..w * h).map(|i| (i * 13) as u8).collect();
    let u16s: Vec<u16> = (0..w * h).map(|i| (i * 3001) as u16).collect();
    let u32s: Vec<u32> = (0..w * h).map(|i| (i % 3) as u32).collect();
    let f32s: Vec<f32> = (0..w * h).map(|i| i as f32 / 7.0).collect();
    for (name, plane) in [
        ("u8.tif", Plane::U8(&u8s)),
        ("u16.tif", Plane::U16(&u16s)),
        ("u32.tif", Plane::U32(&u32s)),
        ("f32.tif", Plane::F32(&f32s)),
        ("u8.png", Plane::U8(&u8s)),
        ("u16.png", Plane::U16(&u16s)),
    ] {
        let path = tmp.join(name);
        write_plane(&path, plane, w, h).unwrap();
        put("image_file", name, &fs::read(&path).unwrap());
    }

    // unet_segment: header bytes (see src/bin/segment.rs) then pixels.
    put("segment", "u8-defaults", &[20, 20, 0b0000_0100, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    put(
        "segment",
        "u16-watershed-labels",
        &[33, 17, 0b0000_1000, 0x00, 0x51, 2, 0x80, 0x3f, 0, 0, 0x80, 0x3f, 200, 7, 1, 90],
    );
    put("segment", "f32-tiles", &[70, 45, 0b0000_1100, 0x60, 0x70, 8, 0, 0, 0, 0x40, 0x3f, 16, 0, 0, 0, 0, 0, 1]);
    put("segment", "cancel", &[30, 30, 0b0000_0100, 0x20, 0x04, 24, 4, 1, 2, 3]);

    // unet_weight_map: header bytes (see src/bin/weight_map.rs) then label values.
    put("weight_map", "u8-two-cells", &[12, 10, 1, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0]);
    put(
        "weight_map",
        "u16-explicit",
        &[9, 9, 2, 1, 0b0001_1100, 2, 0, 0, 0x80, 0x3f, 0, 0, 0x20, 0x41, 3, 1, 0, 2, 0, 0, 0],
    );
    put(
        "weight_map",
        "u32-options",
        &[16, 16, 4, 0, 0b0000_0011, 0, 0, 0x20, 0x41, 0, 0, 0xa0, 0x40, 5, 0, 0, 0, 6, 0, 0, 0],
    );
}
