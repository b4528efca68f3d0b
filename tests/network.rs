//! The ONNX writer's graph, run by ONNX Runtime, against an independent float64 implementation of the paper's
//! network; and the committed default model against the code that makes it.

mod common;

use common::{Map, Rng, load, random_model_bytes, reference_forward};
use ndarray::Array4;
use unet::{Architecture, UNetWeights};

fn check_against_reference(arch: Architecture, seed: u64, extra_steps: usize) {
    let g = arch.geometry();
    let (h, w) = (g.min_input + extra_steps * g.size_step, g.min_input + (extra_steps + 1) * g.size_step);
    let model = load(&random_model_bytes(arch, seed));
    let weights = UNetWeights::he_normal(arch, seed);
    let mut rng = Rng(seed + 1);
    let mut input = Map::new(arch.in_channels, h, w);
    input.v.iter_mut().for_each(|v| *v = rng.unit() * 2.0 - 0.5);
    let want = reference_forward(&weights, &input);
    // A dead random net (constant output) would agree with anything: the reference must vary across pixels.
    let fg: Vec<f64> =
        (0..want.h).flat_map(|y| (0..want.w).map(move |x| (y, x))).map(|(y, x)| want.at(1, y, x)).collect();
    let (lo, hi) = fg.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(hi - lo > 1e-4, "{arch:?} seed {seed}: reference output nearly constant ({lo}..{hi})");
    let tensor =
        Array4::from_shape_vec((1, arch.in_channels, h, w), input.v.iter().map(|&v| v as f32).collect()).unwrap();
    let max_diff = model
        .run(tensor.view(), |probs| {
            assert_eq!(probs.dim(), (1, arch.classes, want.h, want.w), "output shape");
            assert_eq!((want.h, want.w), (h - 2 * g.halo, w - 2 * g.halo));
            let mut m = 0f64;
            for c in 0..arch.classes {
                for y in 0..want.h {
                    for x in 0..want.w {
                        m = m.max((probs[[0, c, y, x]] as f64 - want.at(c, y, x)).abs());
                    }
                }
            }
            Ok(m)
        })
        .unwrap();
    assert!(max_diff <= 1e-5, "{arch:?}: max |ORT - float64 reference| = {max_diff:e}");
}

#[test]
fn onnx_graph_matches_float64_reference() {
    check_against_reference(Architecture { in_channels: 1, classes: 2, base_width: 2, depth: 2 }, 1, 1);
    check_against_reference(Architecture { in_channels: 2, classes: 3, base_width: 3, depth: 3 }, 2, 0);
    check_against_reference(Architecture { in_channels: 1, classes: 2, base_width: 2, depth: 4 }, 3, 0);
}

#[test]
fn embedded_default_is_the_committed_model_and_runs() {
    let committed = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/onnx/default.onnx")).unwrap();
    assert_eq!(unet::model::EMBEDDED_DEFAULT, Some(committed.as_slice()), "rebuild after changing onnx/default.onnx");
    let model = unet::Model::embedded_default(&common::options()).unwrap();
    assert_eq!(model.source(), "<embedded default model>");
    assert!(!model.metadata().provenance.is_empty(), "the default model says where it comes from");
    let img: Vec<u16> = (0..64 * 48).map(|i| (i * 37 % 4096) as u16).collect();
    let view = unet::ImageView::new(unet::Pixels::U16(&img), 64, 48, 1, 64).unwrap();
    let mut p = vec![0f32; 64 * 48];
    model
        .segment(&view, Default::default(), unet::SegmentOutputs { probabilities: Some(&mut p), ..Default::default() })
        .unwrap();
    assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn baseline_export_is_reproducible() {
    assert_eq!(unet::baseline::onnx_bytes(), unet::baseline::onnx_bytes());
    let model = common::baseline_model();
    assert!(model.metadata().provenance.starts_with("intensity baseline"));
}

#[test]
fn paper_network_exports_and_loads() {
    // The full 31 M-parameter network: written, loaded, and its metadata and shapes read back.
    let bytes = random_model_bytes(Architecture::PAPER, 5);
    assert!(bytes.len() > 124_000_000, "{} bytes", bytes.len());
    let model = load(&bytes);
    assert_eq!(model.metadata().arch, Architecture::PAPER);
    assert_eq!(model.metadata().geometry().halo, 92);
    let mut rng = Rng(9);
    let input = Array4::from_shape_fn((1, 1, 188, 188), |_| rng.unit() as f32);
    model
        .run(input.view(), |p| {
            assert_eq!(p.dim(), (1, 2, 4, 4));
            assert!(p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
            Ok(())
        })
        .unwrap();
}

/// `unet convert --fp16`: the float16 model computes the same network within float16 rounding (against the float64
/// reference), is half the size, reads back as the rounded weights, and segments the default model's way.
#[test]
fn float16_model_matches_float32_within_rounding() {
    use unet::onnx::{Precision, encode_unet, encode_unet_with, read_unet_with_precision};
    let arch = Architecture { in_channels: 1, classes: 2, base_width: 4, depth: 3 };
    let weights = UNetWeights::he_normal(arch, 7);
    let meta = unet::ModelMetadata::new(arch, "fp16 test");
    let (f32_bytes, f16_bytes) =
        (encode_unet(&weights, &meta).unwrap(), encode_unet_with(&weights, &meta, Precision::F16).unwrap());
    let ratio = f16_bytes.len() as f64 / f32_bytes.len() as f64;
    assert!((0.45..0.6).contains(&ratio), "float16 model is {ratio:.2} of the float32 size");
    let (read, read_meta, precision) = read_unet_with_precision(&f16_bytes).unwrap();
    assert_eq!((precision, &read_meta), (Precision::F16, &meta));
    for (a, b) in weights.tensors.iter().zip(&read.tensors) {
        for (&x, &y) in a.data.iter().zip(&b.data) {
            assert_eq!(half::f16::from_f32(x).to_f32(), y, "{}: weights read back are the float16 rounding", a.name);
        }
    }
    // Against the float64 reference: float16 arithmetic, so a looser bound than float32's 1e-5, but a real one.
    let g = arch.geometry();
    let (h, w) = (g.min_input + g.size_step, g.min_input);
    let mut rng = Rng(9);
    let mut input = Map::new(1, h, w);
    input.v.iter_mut().for_each(|v| *v = rng.unit() * 2.0 - 0.5);
    let want = reference_forward(&weights, &input);
    let tensor = Array4::from_shape_vec((1, 1, h, w), input.v.iter().map(|&v| v as f32).collect()).unwrap();
    let diffs = |bytes: &[u8]| {
        load(bytes)
            .run(tensor.view(), |p| {
                let mut m = 0f64;
                for y in 0..want.h {
                    for x in 0..want.w {
                        m = m.max((p[[0, 1, y, x]] as f64 - want.at(1, y, x)).abs());
                    }
                }
                Ok(m)
            })
            .unwrap()
    };
    let (d32, d16) = (diffs(&f32_bytes), diffs(&f16_bytes));
    assert!(d32 <= 1e-5 && d16 <= 1e-2, "max |P - reference|: float32 {d32:e}, float16 {d16:e}");
    assert!(d16 > d32, "the float16 model must actually compute in float16 ({d16:e} vs {d32:e})");

    // The shipped default, converted: the same instances on a synthetic nuclei image.
    let (dw, dm) = unet::onnx::read_unet(unet::model::EMBEDDED_DEFAULT.unwrap()).unwrap();
    let half_default = load(&encode_unet_with(&dw, &dm, Precision::F16).unwrap());
    let full_default = load(unet::model::EMBEDDED_DEFAULT.unwrap());
    let img = unet::synthetic::nuclei(256, 256, 4);
    let view = unet::ImageView::new(unet::Pixels::U16(&img.pixels), 256, 256, 1, 256).unwrap();
    let run = |m: &unet::Model| {
        let (mut p, mut l) = (vec![0f32; 256 * 256], vec![0u32; 256 * 256]);
        m.segment(
            &view,
            Default::default(),
            unet::SegmentOutputs { probabilities: Some(&mut p), labels: Some(&mut l), ..Default::default() },
        )
        .unwrap();
        (p, l)
    };
    let ((p32, l32), (p16, l16)) = (run(&full_default), run(&half_default));
    let max_diff = p32.iter().zip(&p16).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let seg = unet::metrics::seg(&l32, &l16).unwrap();
    assert!(max_diff < 0.02 && seg > 0.97, "float16 default: max probability difference {max_diff}, SEG {seg}");
}
