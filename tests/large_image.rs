//! A 10000 x 10000 image segments with memory bounded by the tile size, not the image (beyond the caller's own
//! buffers). In its own test binary: peak memory is per process, and other tests would share it.

mod common;

use unet::{ImageView, Pixels, SegmentOptions, SegmentOutputs};

fn peak_rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
}

#[test]
fn ten_thousand_square_image_in_bounded_memory() {
    let model = unet::Model::embedded_default(&common::options()).unwrap();
    let (w, h) = (10_000, 10_000);
    let synthetic = unet::synthetic::cells(2000, 2000, 400, (8.0, 16.0), 3);
    // Tile the 2000 x 2000 synthetic image 5 x 5 times (u8): the caller's input is 100 MB.
    let mut img = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            img[y * w + x] = (synthetic.pixels[(y % 2000) * 2000 + x % 2000] >> 4) as u8;
        }
    }
    let mut mask = vec![0u8; w * h];
    let before = peak_rss_bytes();
    let view = ImageView::new(Pixels::U8(&img), w, h, 1, w).unwrap();
    let report = model
        .segment(
            &view,
            SegmentOptions { memory_budget: 256 << 20, ..Default::default() },
            SegmentOutputs { mask: Some(&mut mask), ..Default::default() },
        )
        .unwrap();
    let grown = peak_rss_bytes().saturating_sub(before);
    assert!(report.tiles > 1);
    // The budget covers ONNX Runtime; allow as much again for the input tile, arena rounding and the runtime.
    assert!(grown < 512 << 20, "peak memory grew by {} MiB for {} tiles", grown >> 20, report.tiles);
    eprintln!("10000 x 10000: {} tiles of {:?}, peak memory +{} MiB", report.tiles, report.tile_shape, grown >> 20);
    let fg = mask.iter().filter(|&&v| v == 1).count() as f64 / (w * h) as f64;
    let truth = synthetic.labels.iter().filter(|&&v| v != 0).count() as f64 / (2000.0 * 2000.0);
    assert!((fg - truth).abs() < 0.05, "foreground fraction {fg} vs truth {truth}");
}
