//! One model shared by several threads: every thread gets exactly the single-threaded result.

mod common;

use std::sync::Arc;

use common::{Rng, random_model_bytes};
use unet::{Architecture, ImageView, Model, Pixels, SegmentOptions, SegmentOutputs};

fn segment(model: &Model, img: &[u16], w: usize, h: usize) -> (Vec<f32>, Vec<u32>) {
    let view = ImageView::new(Pixels::U16(img), w, h, 1, w).unwrap();
    let (mut p, mut l) = (vec![0f32; w * h], vec![0u32; w * h]);
    model
        .segment(
            &view,
            SegmentOptions { max_tile: Some(36), ..Default::default() },
            SegmentOutputs { probabilities: Some(&mut p), labels: Some(&mut l), ..Default::default() },
        )
        .unwrap();
    (p, l)
}

#[test]
fn threads_sharing_one_model_get_identical_results() {
    let arch = Architecture { in_channels: 1, classes: 2, base_width: 4, depth: 3 };
    let model = Arc::new(Model::from_bytes(&random_model_bytes(arch, 11), &common::options()).unwrap());
    let mut rng = Rng(5);
    let images: Vec<(Vec<u16>, usize, usize)> = (0..4)
        .map(|_| {
            let (w, h) = (40 + rng.below(90), 30 + rng.below(90));
            ((0..w * h).map(|_| rng.below(4000) as u16).collect(), w, h)
        })
        .collect();
    let expected: Vec<_> = images.iter().map(|(img, w, h)| segment(&model, img, *w, *h)).collect();
    let images = Arc::new(images);
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let (model, images) = (Arc::clone(&model), Arc::clone(&images));
            std::thread::spawn(move || {
                (0..6)
                    .map(|k| (t + k) % images.len())
                    .map(|i| (i, segment(&model, &images[i].0, images[i].1, images[i].2)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        for (i, got) in h.join().expect("no thread panicked") {
            assert!(got == expected[i], "image {i}: a concurrent result differs from the sequential one");
        }
    }
}
