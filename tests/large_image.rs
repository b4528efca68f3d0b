//! 10000 x 10000 images: segmentation with memory bounded by the tile size, not the image (beyond the caller's own
//! buffers), and weight maps with memory a small multiple of the image. One test, run in its own binary, because
//! peak memory is per process and concurrent tests would share it.

mod common;

use unet::{ImageView, Pixels, SegmentOptions, SegmentOutputs};

fn status_bytes(key: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
}

fn peak_rss_bytes() -> usize {
    status_bytes("VmHWM:")
}

/// Memory in use now, after resetting the peak to it (Linux: "5" to /proc/self/clear_refs), so that the next
/// peak measures what the code in between added, not an earlier peak.
fn reset_peak() -> usize {
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting the peak RSS");
    let now = status_bytes("VmRSS:");
    assert!(peak_rss_bytes() <= now + (8 << 20), "the peak was reset");
    now
}

/// Peak memory that instance labels add for a 10000 x 10000 image, beyond the caller's buffers and the network's
/// arena (README).
const LABELS_BOUND_MIB: usize = 64;

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
    let mut labels = vec![0u32; w * h];
    labels.iter_mut().step_by(1024).for_each(|v| *v = 1); // the caller's buffer: its pages count before, not during
    mask.iter_mut().step_by(1024).for_each(|v| *v = 1);
    let view = ImageView::new(Pixels::U8(&img), w, h, 1, w).unwrap();
    let before = reset_peak();
    let report = model
        .segment(
            &view,
            SegmentOptions { memory_budget: 256 << 20, ..Default::default() },
            SegmentOutputs { mask: Some(&mut mask), ..Default::default() },
        )
        .unwrap();
    let grown = peak_rss_bytes().saturating_sub(before);
    assert!(report.tiles > 1);
    // The README's claim: about 270 MiB beyond the caller's buffers with a 256 MiB budget.
    assert!(grown < 300 << 20, "peak memory grew by {} MiB for {} tiles", grown >> 20, report.tiles);
    eprintln!("10000 x 10000: {} tiles of {:?}, peak memory +{} MiB", report.tiles, report.tile_shape, grown >> 20);
    // With instance labels: the labelling works in the caller's label buffer plus its own bookkeeping.
    let before = reset_peak();
    let report = model
        .segment(
            &view,
            SegmentOptions { memory_budget: 256 << 20, ..Default::default() },
            SegmentOutputs { labels: Some(&mut labels), ..Default::default() },
        )
        .unwrap();
    let grown_labels = peak_rss_bytes().saturating_sub(before);
    eprintln!("10000 x 10000 with labels: {} instances, peak memory +{} MiB", report.label_count, grown_labels >> 20);
    assert!(report.label_count > 8_000, "{} instances (25 copies of 400 cells, some touching)", report.label_count);
    assert!(grown_labels < LABELS_BOUND_MIB << 20, "labels: peak memory grew by {} MiB", grown_labels >> 20);
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
    let before = reset_peak();
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
