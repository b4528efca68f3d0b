//! bioimage.io packages made by others run through `Model::load` (the CLI's `--model PACKAGE.zip`, the C ABI's
//! load by path or from memory): networks unet did not write, with other axis orders, padded convolutions, a
//! sigmoid or softmax in the package's post-processing, fixed input sizes, no batch axis, older opsets and
//! format 0.4, each checked against a float64 computation of the same network over the mirrored image. The
//! packages are built here (ONNX by hand, rdf.yaml as text, zipped), so nothing comes from outside.

mod common;

use std::io::Write;

use prost::Message;
use unet::{
    ImageView, Model, Pixels, SegmentOptions, SegmentOutputs, UnetStatus,
    onnx::proto::{
        AttributeProto, Dimension, DimensionValue, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
        TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto, attribute_type, data_type,
    },
    tiling::mirror,
};

fn dims(d: &[&str]) -> Vec<Dimension> {
    d.iter()
        .map(|s| match s.parse::<i64>() {
            Ok(n) => Dimension { value: Some(DimensionValue::DimValue(n)) },
            Err(_) => Dimension { value: Some(DimensionValue::DimParam(s.to_string())) },
        })
        .collect()
}

fn value(name: &str, d: &[&str]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto { dim: dims(d) }),
            }),
        }),
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: v.to_vec(), r#type: attribute_type::INTS, ..Default::default() }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: output.into(),
        op_type: op.into(),
        attribute,
    }
}

fn floats(name: &str, shape: &[i64], v: &[f32]) -> TensorProto {
    TensorProto {
        dims: shape.to_vec(),
        data_type: data_type::FLOAT,
        name: name.into(),
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A one-layer "network": a padded 3x3 convolution from 1 channel to `outputs` channels (weights `w`, bias `b`),
/// whose input and output axes are given as strings over "bcyx"; opset 11 or 17.
struct Net {
    input_axes: &'static str,
    output_axes: &'static str,
    outputs: usize,
    opset: i64,
    w: Vec<f32>,
    b: Vec<f32>,
}

impl Net {
    fn new(input_axes: &'static str, output_axes: &'static str, outputs: usize, opset: i64, seed: u64) -> Net {
        let mut rng = common::Rng(seed);
        let w = (0..outputs * 9).map(|_| (rng.unit() as f32 - 0.5) * 0.8).collect();
        let b = (0..outputs).map(|_| (rng.unit() as f32 - 0.5) * 0.2).collect();
        Net { input_axes, output_axes, outputs, opset, w, b }
    }

    /// The graph: the input's axes brought to [1, 1, H, W], the convolution, the result to the output's axes.
    fn onnx(&self) -> Vec<u8> {
        let mut nodes = Vec::new();
        let mut x = "raw".to_string();
        // To NCHW: unsqueeze what is missing (at the front), then transpose.
        let missing: String = "bc".chars().filter(|c| !self.input_axes.contains(*c)).collect();
        let full: String = missing.clone() + self.input_axes;
        if !missing.is_empty() {
            nodes.push(self.squeeze("Unsqueeze", &x, "in4", missing.len()));
            x = "in4".into();
        }
        let perm: Vec<i64> = "bcyx".chars().map(|a| full.find(a).unwrap() as i64).collect();
        nodes.push(node("Transpose", &[&x], "nchw", vec![ints("perm", &perm)]));
        nodes.push(node(
            "Conv",
            &["nchw", "W", "B"],
            "conv",
            vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])],
        ));
        let missing_out: String = "bc".chars().filter(|c| !self.output_axes.contains(*c)).collect();
        let full_out: String = missing_out.clone() + self.output_axes;
        let perm: Vec<i64> = full_out.chars().map(|a| "bcyx".find(a).unwrap() as i64).collect();
        nodes.push(node("Transpose", &["conv"], "out4", vec![ints("perm", &perm)]));
        let mut y = "out4".to_string();
        if !missing_out.is_empty() {
            nodes.push(self.squeeze("Squeeze", &y, "squeezed", missing_out.len()));
            y = "squeezed".into();
        }
        nodes.push(node("Identity", &[&y], "prediction", vec![]));
        let shape = |axes: &str, c: usize| -> Vec<String> {
            axes.chars()
                .map(|a| match a {
                    'b' => "n".to_string(),
                    'c' => c.to_string(),
                    'y' => "h".to_string(),
                    _ => "w".to_string(),
                })
                .collect()
        };
        let (si, so) = (shape(self.input_axes, 1), shape(self.output_axes, self.outputs));
        let model = ModelProto {
            ir_version: 7,
            producer_name: "a test that is not unet".into(),
            graph: Some(GraphProto {
                node: nodes,
                name: "foreign".into(),
                initializer: vec![
                    floats("W", &[self.outputs as i64, 1, 3, 3], &self.w),
                    floats("B", &[self.outputs as i64], &self.b),
                ],
                input: vec![value("raw", &si.iter().map(String::as_str).collect::<Vec<_>>())],
                output: vec![value("prediction", &so.iter().map(String::as_str).collect::<Vec<_>>())],
                ..Default::default()
            }),
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: self.opset }],
            ..Default::default()
        };
        model.encode_to_vec()
    }

    fn squeeze(&self, op: &str, x: &str, out: &str, n: usize) -> NodeProto {
        let axes: Vec<i64> = (0..n as i64).collect();
        assert!(self.opset < 13, "the test builds opset-11 squeezes only");
        node(op, &[x], out, vec![ints("axes", &axes)])
    }

    /// Channel `k` of the convolution at (y, x) over the mirrored, pre-processed image `v`.
    fn conv_at(&self, v: &[f64], h: usize, w: usize, k: usize, y: usize, x: usize) -> f64 {
        let mut s = self.b[k] as f64;
        for dy in 0..3 {
            for dx in 0..3 {
                let yy = mirror(y as isize + dy as isize - 1, h);
                let xx = mirror(x as isize + dx as isize - 1, w);
                s += self.w[k * 9 + dy * 3 + dx] as f64 * v[yy * w + xx];
            }
        }
        s
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn zip_package(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut out);
        for (name, bytes) in files {
            z.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            z.write_all(bytes).unwrap();
        }
        z.finish().unwrap();
    }
    out.into_inner()
}

/// A smooth test image with texture (u16), not square, not a multiple of any tile.
fn image() -> (Vec<u16>, usize, usize) {
    let (h, w) = (77, 100);
    let mut rng = common::Rng(5);
    let px = (0..h * w)
        .map(|i| {
            let (y, x) = ((i / w) as f64, (i % w) as f64);
            (1000.0 + 600.0 * (x / 9.0).sin() * (y / 7.0).cos() + 200.0 * rng.unit()) as u16
        })
        .collect();
    (px, h, w)
}

fn foreground(model: &Model, px: &[u16], h: usize, w: usize) -> Vec<f32> {
    let view = ImageView::new(Pixels::U16(px), w, h, 1, w).unwrap();
    let mut p = vec![0f32; h * w];
    model
        .segment(&view, SegmentOptions::default(), SegmentOutputs { probabilities: Some(&mut p), ..Default::default() })
        .unwrap();
    p
}

fn max_difference(a: &[f32], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).abs()).fold(0.0, f64::max)
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

const RDF_V05: &str = r#"format_version: 0.5.4
type: model
name: NHWC sigmoid test
description: a padded convolution with channels last
authors: [{name: Someone Else}]
license: CC-BY-4.0
cite: [{text: "Nobody 2026", doi: 10.0000/none}]
inputs:
  - id: raw
    axes:
      - type: batch
      - type: space
        id: y
        size: {min: 32, step: 16}
      - type: space
        id: x
        size: {tensor_id: raw, axis_id: y}
      - type: channel
        channel_names: [dapi]
    preprocessing:
      - id: ensure_dtype
        kwargs: {dtype: float32}
      - id: zero_mean_unit_variance
        kwargs: {axes: [y, x]}
      - id: scale_linear
        kwargs: {gain: 2.0, offset: 0.5}
outputs:
  - id: prediction
    axes:
      - type: batch
      - type: channel
        channel_names: [CHANNELS]
      - type: space
        id: y
        size: {tensor_id: raw, axis_id: y}
        halo: 4
      - type: space
        id: x
        size: {tensor_id: raw, axis_id: x}
        halo: 4
    postprocessing:
      - id: POST
weights:
  onnx:
    source: weights/net.onnx
    sha256: SHA
    opset_version: 17
"#;

#[test]
fn channels_last_sigmoid_package_matches_float64() {
    let net = Net::new("byxc", "bcyx", 1, 11, 1);
    let onnx = net.onnx();
    let rdf = RDF_V05.replace("SHA", &sha256(&onnx)).replace("CHANNELS", "nucleus").replace("POST", "sigmoid");
    let zip = zip_package(&[("rdf.yaml", rdf.as_bytes()), ("weights/net.onnx", &onnx)]);
    let dir = std::env::temp_dir().join(format!("unet-bioimageio-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("other.zip");
    std::fs::write(&path, &zip).unwrap();
    let model = Model::load(&path, &common::options()).unwrap();
    let meta = model.metadata();
    assert!(meta.imported.is_some() && meta.arch.classes == 2, "{meta:?}");
    assert!(meta.provenance.contains("NHWC sigmoid test") && meta.provenance.contains("Someone Else"));
    assert_eq!(meta.geometry().halo, 4);

    let (px, h, w) = image();
    let n = (h * w) as f64;
    let mean = px.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (px.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let v: Vec<f64> = px.iter().map(|&p| (p as f64 - mean) / (std + 1e-6) * 2.0 + 0.5).collect();
    let want: Vec<f64> = (0..h * w).map(|i| sigmoid(net.conv_at(&v, h, w, 0, i / w, i % w))).collect();
    let got = foreground(&model, &px, h, w);
    let d = max_difference(&got, &want);
    assert!(d < 1e-5, "tiled probabilities differ from the float64 reference by {d}");
    // Small tiles (many seams) give the same.
    let view = ImageView::new(Pixels::U16(&px), w, h, 1, w).unwrap();
    let mut small = vec![0f32; h * w];
    let options = SegmentOptions { max_tile: Some(24), ..Default::default() };
    model.segment(&view, options, SegmentOutputs { probabilities: Some(&mut small), ..Default::default() }).unwrap();
    assert!(max_difference(&small, &want) < 1e-5);

    // The same package in memory (the C ABI's load from memory) and unpacked as a folder.
    let in_memory = Model::from_bytes(&zip, &common::options()).unwrap();
    assert_eq!(in_memory.metadata(), meta);
    std::fs::create_dir_all(dir.join("unpacked/weights")).unwrap();
    std::fs::write(dir.join("unpacked/rdf.yaml"), &rdf).unwrap();
    std::fs::write(dir.join("unpacked/weights/net.onnx"), &onnx).unwrap();
    let folder = Model::load(&dir.join("unpacked"), &common::options()).unwrap();
    assert!(max_difference(&foreground(&folder, &px, h, w), &want) < 1e-5);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn softmax_classes_package_matches_float64() {
    let net = Net::new("byxc", "bcyx", 2, 11, 2);
    let onnx = net.onnx();
    let rdf = RDF_V05.replace("SHA", &sha256(&onnx)).replace("CHANNELS", "a, b").replace("POST", "softmax");
    let model = Model::from_bytes(
        &zip_package(&[("rdf.yaml", rdf.as_bytes()), ("weights/net.onnx", &onnx)]),
        &common::options(),
    )
    .unwrap();
    assert_eq!(model.metadata().class_names, vec!["a", "b"]);
    let (px, h, w) = image();
    let n = (h * w) as f64;
    let mean = px.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (px.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let v: Vec<f64> = px.iter().map(|&p| (p as f64 - mean) / (std + 1e-6) * 2.0 + 0.5).collect();
    let want: Vec<f64> = (0..h * w)
        .map(|i| {
            let (z0, z1) = (net.conv_at(&v, h, w, 0, i / w, i % w), net.conv_at(&v, h, w, 1, i / w, i % w));
            1.0 / (1.0 + (z0 - z1).exp())
        })
        .collect();
    let d = max_difference(&foreground(&model, &px, h, w), &want);
    assert!(d < 1e-5, "softmax: {d}");
}

const RDF_V04: &str = r#"format_version: 0.4.10
type: model
name: fixed size, no batch
description: format 0.4, a network exported for 48x48 inputs only
authors: [{name: Someone Else}]
license: MIT
inputs:
  - name: raw
    axes: cyx
    data_type: float32
    shape: [1, 48, 48]
    preprocessing:
      - name: scale_range
        kwargs: {mode: per_sample, axes: xy, min_percentile: 0, max_percentile: 100}
outputs:
  - name: prediction
    axes: cyx
    data_type: float32
    shape: {reference_tensor: raw, scale: [2, 1, 1], offset: [0, 0, 0]}
    halo: [0, 8, 8]
    postprocessing:
      - name: sigmoid
weights:
  onnx:
    source: net.onnx
"#;

#[test]
fn fixed_size_format_04_package_without_batch_axis() {
    let net = Net::new("cyx", "cyx", 2, 11, 3);
    let onnx = net.onnx();
    let model =
        Model::from_bytes(&zip_package(&[("rdf.yaml", RDF_V04.as_bytes()), ("net.onnx", &onnx)]), &common::options())
            .unwrap();
    let g = model.metadata().geometry();
    assert!(g.fixed && g.min_input == 48 && g.halo == 8, "{g:?}");
    assert!(model.metadata().provenance.contains("channel 0 of 2"), "{}", model.metadata().provenance);
    let (px, h, w) = image();
    let (lo, hi) = (*px.iter().min().unwrap() as f64, *px.iter().max().unwrap() as f64);
    let v: Vec<f64> = px.iter().map(|&p| (p as f64 - lo) / (hi - lo)).collect();
    // Two output channels not named "background" and no softmax: the first is the foreground probability.
    let want: Vec<f64> = (0..h * w).map(|i| sigmoid(net.conv_at(&v, h, w, 0, i / w, i % w))).collect();
    let d = max_difference(&foreground(&model, &px, h, w), &want);
    assert!(d < 1e-5, "fixed size: {d}");
}

#[test]
fn what_cannot_run_is_refused_naming_the_field() {
    let net = Net::new("byxc", "bcyx", 1, 11, 4);
    let onnx = net.onnx();
    let good = RDF_V05.replace("SHA", &sha256(&onnx)).replace("CHANNELS", "nucleus").replace("POST", "sigmoid");
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace(
                "  onnx:\n    source: weights/net.onnx",
                "  pytorch_state_dict:\n    source: weights/net.onnx",
            ),
            "weights",
        ),
        (good.replace("id: x\n        size: {tensor_id: raw, axis_id: y}", "id: z\n        size: 8"), "'z'"),
        (good.replace(&sha256(&onnx), &"0".repeat(64)), "sha256"),
        (good.replace("kwargs: {axes: [y, x]}", "kwargs: {axes: [channel, y, x]}"), "across channels"),
        (good.replace("source: weights/net.onnx", "source: https://example.org/net.onnx"), "URL"),
        (good.replace("- id: sigmoid", "- id: binarize"), "outputs[0].postprocessing[0].id"),
        (good.replace("format_version: 0.5.4", "format_version: 0.3.0"), "format_version"),
    ];
    for (rdf, needle) in cases {
        let zip = zip_package(&[("rdf.yaml", rdf.as_bytes()), ("weights/net.onnx", &onnx)]);
        let err = Model::from_bytes(&zip, &common::options()).unwrap_err();
        assert!(err.message().contains(needle), "expected '{needle}' in: {err}");
        assert!(matches!(err.status(), UnetStatus::ModelIncompatible | UnetStatus::ModelInvalid), "{err}");
    }
    // Bytes that are no model at all: ONNX Runtime's own error is kept as the cause.
    let err = Model::from_bytes(b"PK\x03\x04 not really a zip", &common::options()).unwrap_err();
    assert_eq!(err.status(), UnetStatus::ModelInvalid, "{err}");
    let err = Model::from_bytes(&[0x08; 64], &common::options()).unwrap_err();
    assert_eq!(err.status(), UnetStatus::ModelInvalid, "{err}");
    assert!(std::error::Error::source(&err).is_some(), "the ONNX Runtime error is the cause");
    let no_rdf = zip_package(&[("net.onnx", &onnx)]);
    assert!(Model::from_bytes(&no_rdf, &common::options()).unwrap_err().message().contains("rdf.yaml"));
}
