//! Benchmark (not a timed test): `cargo bench --bench weight_map`.
//!
//! unet's weight map against the naive method most public U-Net code uses (one full Euclidean distance transform
//! per cell, then a per-pixel sort of all cells' distances), in the same run, on synthetic cells; then how unet's
//! time grows with the image area. Medians; the machine is shared and noisy. Under `cargo test` (no `--bench`) it
//! runs once on a small image as a smoke test (the comparison with the naive method still asserted).

use std::time::Instant;

use unet::distance::EdtScratch;
use unet::weight_map::{ClassBalance, LabelView, WeightMapOptions, weight_map};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The naive method: d_c = EDT to cell c for every cell, sort per pixel, take the two smallest.
fn naive(labels: &[u32], target: &[u8], w: usize, h: usize, o: &WeightMapOptions, class_w: (f32, f32)) -> Vec<f32> {
    let mut cells: Vec<u32> = (0..w * h).filter(|&i| target[i] != 0).map(|i| labels[i]).collect();
    cells.sort_unstable();
    cells.dedup();
    let mut scratch = EdtScratch::default();
    let mut all = vec![0f32; cells.len() * w * h];
    for (k, &c) in cells.iter().enumerate() {
        let d = scratch.squared_edt(w, h, |x, y| target[y * w + x] != 0 && labels[y * w + x] == c).unwrap();
        for i in 0..w * h {
            all[i * cells.len() + k] = d[i].sqrt() as f32;
        }
    }
    let mut out = vec![0f32; w * h];
    let mut column = Vec::with_capacity(cells.len());
    for i in 0..w * h {
        if target[i] != 0 {
            out[i] = class_w.1;
            continue;
        }
        column.clear();
        column.extend_from_slice(&all[i * cells.len()..(i + 1) * cells.len()]);
        column.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mut v = class_w.0;
        if column.len() >= 2 {
            let s = column[0] as f64 + column[1] as f64;
            v += (o.w0 as f64 * (-(s * s) / (2.0 * (o.sigma as f64).powi(2))).exp()) as f32;
        }
        out[i] = v;
    }
    out
}

fn run_unet(labels: &[u32], w: usize, h: usize, o: &WeightMapOptions) -> (f64, Vec<f32>, Vec<u8>, (f32, f32), usize) {
    let (mut weights, mut target) = (vec![0f32; w * h], vec![0u8; w * h]);
    let t = Instant::now();
    let r =
        weight_map(&LabelView::packed_u32(labels, w, h).unwrap(), o, Some(&mut weights), Some(&mut target)).unwrap();
    (t.elapsed().as_secs_f64(), weights, target, r.class_weights, r.cells)
}

/// unet against the naive method on one square label image (`reps` runs, the naive one at most 3): prints both
/// medians and asserts the maps agree (the fast path is the same map, not an approximation). Returns unet's median.
fn against_naive(labels: &[u32], side: usize, reps: usize, o: &WeightMapOptions, what: &str) -> f64 {
    let (mut ours, mut naive_t, mut max_diff, mut cells) = (Vec::new(), Vec::new(), 0f64, 0);
    for rep in 0..reps {
        let (t, weights, target, cw, n) = run_unet(labels, side, side, o);
        ours.push(t);
        cells = n;
        if rep < 3 {
            let t0 = Instant::now();
            let reference = naive(labels, &target, side, side, o, cw);
            naive_t.push(t0.elapsed().as_secs_f64());
            max_diff = weights.iter().zip(&reference).map(|(a, b)| (a - b).abs() as f64).fold(max_diff, f64::max);
        }
    }
    assert!(max_diff <= 1e-4, "unet's weight map of {what} differs from the naive one by {max_diff}");
    let (ours, naive) = (median(ours), median(naive_t));
    println!(
        "{side}x{side}, {cells} {what}: unet {:.2} ms, naive {:.1} ms, speed-up {:.1}x, max |difference| {max_diff:.2e}",
        ours * 1e3,
        naive * 1e3,
        naive / ours
    );
    ours
}

fn main() {
    let o = WeightMapOptions { balance: ClassBalance::InverseFrequency, ..Default::default() };
    println!("weight map benchmark: w0 {}, sigma {}, border width {}, single thread", o.w0, o.sigma, o.border_width);

    let full = std::env::args().any(|a| a == "--bench");
    // 1. Against the naive method at 512 x 512 with about 100 cells (128 x 128, 8 cells, once as a smoke test).
    let (side, count, reps) = if full { (512, 110, 5) } else { (128, 8, 1) };
    let img = unet::synthetic::cells(side, side, count, (10.0, 22.0), 1);
    let ours_512 = against_naive(&img.labels, side, reps, &o, "cells");

    // 2. Dense tiny cells (3 x 3 on a 6-pixel grid): the per-row method runs, per-cell work would grow with cells x area.
    let side = if full { 192 } else { 48 };
    let labels: Vec<u32> = (0..side * side)
        .map(|i| {
            let (x, y) = (i % side, i / side);
            if x % 6 < 3 && y % 6 < 3 { (1 + (y / 6) * side / 6 + x / 6) as u32 } else { 0 }
        })
        .collect();
    against_naive(&labels, side, reps, &o, "tiny cells");

    if !full {
        return;
    }
    // 3. Growth with area at the same cell density.
    println!("{:>11} {:>6} {:>10} {:>14}", "image", "cells", "unet ms", "x 512x512 time");
    for (side, n) in [(512usize, 110u32), (1024, 440), (2048, 1760)] {
        let img = unet::synthetic::cells(side, side, n, (10.0, 22.0), 2);
        let t = median((0..3).map(|_| run_unet(&img.labels, side, side, &o).0).collect());
        println!("{:>5}x{:<5} {:>6} {:>10.1} {:>14.1}", side, side, img.cells, t * 1e3, t / ours_512);
    }
}
