//! 10000 x 10000 images: segmentation with memory bounded by the tile size, not the image (beyond the caller's own
//! buffers), and weight maps with memory a small multiple of the image. One test, run in its own binary, because
//! peak memory is per process and concurrent tests would share it.

mod common;

use unet::{ImageView, Pixels, SegmentOptions, SegmentOutputs};

fn peak_rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
}

#[test]
fn ten_thousand_square_images() {
    segment_in_bounded_memory();
    weight_map_in_bounded_memory();
}

fn segment_in_bounded_memory() {
    let model = common::baseline_model();
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

fn weight_map_in_bounded_memory() {
    use unet::weight_map::{LabelView, WeightMapOptions, weight_map};
    let (w, h) = (10_000, 10_000);
    let synthetic = unet::synthetic::cells(2000, 2000, 1200, (8.0, 16.0), 5);
    // 5 x 5 copies of the 2000 x 2000 label image, renumbered so every copy's cells are distinct.
    let mut labels = vec![0u32; w * h];
    for y in 0..h {
        for x in 0..w {
            let l = synthetic.labels[(y % 2000) * 2000 + x % 2000];
            if l != 0 {
                labels[y * w + x] = l + synthetic.cells * ((y / 2000) * 5 + x / 2000) as u32;
            }
        }
    }
    let mut weights = vec![0f32; w * h];
    weights.iter_mut().step_by(1024).for_each(|v| *v = 1.0); // touch the pages: count them before, not during
    let before = peak_rss_bytes();
    let t = std::time::Instant::now();
    let report = weight_map(
        &LabelView::packed_u32(&labels, w, h).unwrap(),
        &WeightMapOptions::default(),
        Some(&mut weights),
        None,
    )
    .unwrap();
    let grown = peak_rss_bytes().saturating_sub(before);
    eprintln!(
        "10000 x 10000 weight map: {} cells in {:.1} s, peak memory +{} MiB ({:.1} bytes per pixel)",
        report.cells,
        t.elapsed().as_secs_f64(),
        grown >> 20,
        grown as f64 / (w * h) as f64
    );
    // A tiny cell lying wholly within the separation border of a smaller label disappears from the target.
    let all = 25 * synthetic.cells as usize;
    assert!(report.cells <= all && report.cells * 100 >= all * 95, "{} of {all} cells", report.cells);
    assert!(grown < 12 * w * h, "weight map used {} bytes per pixel", grown / (w * h));
    assert!(weights.iter().all(|v| v.is_finite() && *v > 0.0));
}
