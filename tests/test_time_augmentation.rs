//! Test-time augmentation: the probabilities are exactly the average of the network on the image and its three
//! mirror images (mirrored back), a tiled run equals a single pass, and it changes what a network that is not
//! mirror-symmetric says.

mod common;

use unet::{Architecture, ImageView, Model, Pixels, SegmentOptions, SegmentOutputs};

fn random_model() -> Model {
    let arch = Architecture { in_channels: 1, classes: 2, base_width: 4, depth: 2 };
    common::load(&common::random_model_bytes(arch, 17))
}

fn image(w: usize, h: usize, seed: u64) -> Vec<f32> {
    let mut rng = common::Rng(seed);
    (0..w * h).map(|_| rng.unit() as f32 * 1000.0).collect()
}

fn probabilities(model: &Model, pixels: &[f32], w: usize, h: usize, tta: bool, max_tile: usize) -> (Vec<f32>, usize) {
    let view = ImageView::new(Pixels::F32(pixels), w, h, 1, w).unwrap();
    let mut p = vec![0f32; w * h];
    let report = model
        .segment(
            &view,
            SegmentOptions { test_time_augmentation: tta, max_tile: Some(max_tile), ..Default::default() },
            SegmentOutputs { probabilities: Some(&mut p), ..Default::default() },
        )
        .unwrap();
    (p, report.tiles)
}

fn mirror(pixels: &[f32], w: usize, h: usize, up_down: bool, left_right: bool) -> Vec<f32> {
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let (sy, sx) = (if up_down { h - 1 - y } else { y }, if left_right { w - 1 - x } else { x });
            out[y * w + x] = pixels[sy * w + sx];
        }
    }
    out
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn equals_the_average_over_mirrored_images() {
    let model = random_model();
    // An image exactly one output tile in size: its mirror images then get exactly the mirrored tile input.
    let s = model.metadata().geometry().output_at_most(60);
    let pixels = image(s, s, 5);
    let (tta, tiles) = probabilities(&model, &pixels, s, s, true, s);
    assert_eq!(tiles, 1);
    let mut average = vec![0f32; s * s];
    for (up_down, left_right) in [(false, false), (false, true), (true, false), (true, true)] {
        let (p, _) = probabilities(&model, &mirror(&pixels, s, s, up_down, left_right), s, s, false, s);
        for (a, v) in average.iter_mut().zip(mirror(&p, s, s, up_down, left_right)) {
            *a += v / 4.0;
        }
    }
    let d = max_difference(&tta, &average);
    assert!(d < 1e-5, "TTA vs the average of the mirrored runs: max |dP| {d}");
    let (plain, _) = probabilities(&model, &pixels, s, s, false, s);
    let changed = max_difference(&tta, &plain);
    assert!(changed > 1e-3, "TTA changed nothing (max |dP| {changed}): is it running?");
}

#[test]
fn tiled_equals_a_single_pass() {
    let model = random_model();
    let (w, h) = (150, 97);
    let pixels = image(w, h, 9);
    let (single, tiles) = probabilities(&model, &pixels, w, h, true, 4096);
    assert_eq!(tiles, 1);
    for tile in [20, 48] {
        let (tiled, tiles) = probabilities(&model, &pixels, w, h, true, tile);
        assert!(tiles > 1, "tile {tile} gave one tile");
        let d = max_difference(&tiled, &single);
        assert!(d < 1e-5, "tile {tile}: max |dP| {d}");
    }
}
