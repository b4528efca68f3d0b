//! Benchmark (not a timed test): `cargo bench --bench postprocessing` (part of `make bench`).
//!
//! The post-processing after the network (the default model's recommendation: threshold 0.7, watershed h=4 without
//! smoothing, minimum size 50) on masks of 512² to 4096² against the implementation of 2026-12-04 (kept below as
//! the reference: the 1-D transform down every column, one thread, a sequential counting sort), in the same run,
//! medians; the labels must be identical. The network's time on the 512² image is printed beside it. Under
//! `cargo test` it runs once on the small size as a smoke test.

use std::time::Instant;

use unet::{
    Connectivity, InstanceMethod, Model, ModelOptions, Provider, SegmentOptions, SegmentOutputs,
    image::{ImageView, Pixels},
    instances::label_instances,
    labels::FOREGROUND,
};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let ort = std::env::var_os("UNET_ORT_LIB").map(std::path::PathBuf::from);
    let model =
        Model::embedded_default(&ModelOptions { provider: Provider::Cpu, ort_library: ort, ..Default::default() })
            .expect("load the embedded default model (set UNET_ORT_LIB)");
    let pp = model.metadata().postprocessing.expect("the default recommends its post-processing");
    let InstanceMethod::Watershed(params) = pp.method else { panic!("the default recommends a watershed") };
    // The network's probabilities on a 512² synthetic nuclei image, thresholded as the model recommends.
    let side = 512;
    let img = unet::synthetic::nuclei(side, side, 21);
    let view = ImageView::new(Pixels::U16(&img.pixels), side, side, 1, side).unwrap();
    let mut p = vec![0f32; side * side];
    let mut network = Vec::new();
    for _ in 0..if full { 5 } else { 1 } {
        let r = model
            .segment(
                &view,
                SegmentOptions::default(),
                SegmentOutputs { probabilities: Some(&mut p), ..Default::default() },
            )
            .unwrap();
        network.push(r.timings.network.as_secs_f64());
    }
    let threshold = pp.threshold.unwrap_or(0.5);
    let tile: Vec<u32> = p.iter().map(|&v| if v >= threshold { FOREGROUND } else { 0 }).collect();
    println!(
        "post-processing ({}), medians; the network on {side}² takes {:.1} ms here:",
        pp.to_meta(),
        1e3 * median(network)
    );
    println!("  size        reference    now      ratio   now per megapixel");
    let sizes: &[usize] = if full { &[512, 1024, 2048, 4096] } else { &[512] };
    for &size in sizes {
        // The 512² mask repeated (mirrored, so objects continue across the seams).
        let mut mask = vec![0u32; size * size];
        for y in 0..size {
            for x in 0..size {
                let (ty, tx) = (y / side, x / side);
                let sy = if ty % 2 == 0 { y % side } else { side - 1 - y % side };
                let sx = if tx % 2 == 0 { x % side } else { side - 1 - x % side };
                mask[y * size + x] = tile[sy * side + sx];
            }
        }
        let repeats = if !full {
            1
        } else if size <= 1024 {
            31
        } else {
            7
        };
        let (mut now, mut before) = (Vec::new(), Vec::new());
        let (mut labels_now, mut labels_before) = (Vec::new(), Vec::new());
        for _ in 0..repeats {
            let mut buf = mask.clone();
            let t = Instant::now();
            label_instances(&mut buf, size, size, InstanceMethod::Watershed(params), Connectivity::Four, pp.min_size)
                .unwrap();
            now.push(t.elapsed().as_secs_f64());
            labels_now = buf;
            let mut buf = mask.clone();
            let t = Instant::now();
            reference::watershed(&mut buf, size, size, params, pp.min_size);
            before.push(t.elapsed().as_secs_f64());
            labels_before = buf;
        }
        assert_eq!(labels_now, labels_before, "{size}²: the labels changed");
        let (now, before) = (median(now), median(before));
        println!(
            "  {size:>4}²   {:>8.2} ms {:>8.2} ms   {:>5.2}x   {:.2} ms",
            1e3 * before,
            1e3 * now,
            before / now,
            1e3 * now / ((size * size) as f64 / 1e6)
        );
    }
}

/// The watershed of 2026-12-04 (before the column scans, the run-restricted rows and the parallel passes), for
/// distance maps below 4096 px (squared distances exact in f32), 4-connected, without smoothing.
mod reference {
    use unet::{Watershed, labels::FOREGROUND};

    pub fn watershed(buf: &mut [u32], width: usize, height: usize, params: Watershed, min_size: usize) {
        assert_eq!(params.smoothing, 0.0, "the reference has no smoothing");
        let n = width * height;
        let mut edt = unet::distance::EdtScratch::default();
        let squared = edt.squared_edt(width, height, |x, y| buf[y * width + x] == 0).unwrap();
        let far = ((width * width + height * height) as f64).max(1.0);
        let mut heights: Vec<u32> = squared
            .iter()
            .zip(buf.iter())
            .map(|(&d, &b)| {
                let d = d.min(far).sqrt() as f32;
                if b == 0 { 0 } else { (d * 16.0).round().clamp(0.0, 1e9) as u32 }
            })
            .collect();
        let top = heights.iter().copied().max().unwrap_or(0);
        let mut start = vec![0u32; top as usize + 2];
        for (&h, &b) in heights.iter().zip(buf.iter()) {
            if b != 0 {
                start[(top - h) as usize + 1] += 1;
            }
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        let mut order = vec![0u32; start[start.len() - 1] as usize];
        for (i, (&h, &b)) in heights.iter().zip(buf.iter()).enumerate() {
            if b != 0 {
                let slot = &mut start[(top - h) as usize];
                order[*slot as usize] = i as u32;
                *slot += 1;
            }
        }
        let h_quanta = (params.h * 16.0).round() as u32;
        let offsets: [(isize, isize); 4] = [(-1, 0), (1, 0), (0, -1), (0, 1)];
        let mut roots: Vec<u32> = Vec::with_capacity(8);
        for &p in &order {
            let p = p as usize;
            let (x, y) = (p % width, p / width);
            roots.clear();
            for &(dx, dy) in &offsets {
                let (nx, ny) = (x as isize + dx, y as isize + dy);
                if nx < 0 || ny < 0 || nx >= width as isize || ny >= height as isize {
                    continue;
                }
                let q = ny as usize * width + nx as usize;
                if buf[q] != 0 && buf[q] != FOREGROUND {
                    let r = find(buf, q as u32);
                    if !roots.contains(&r) {
                        roots.push(r);
                    }
                }
            }
            let Some(&first) = roots.first() else {
                buf[p] = p as u32 + 1;
                continue;
            };
            let highest = roots.iter().copied().fold(first, |best, r| {
                let (hr, hb) = (heights[r as usize], heights[best as usize]);
                if hr > hb || (hr == hb && r < best) { r } else { best }
            });
            buf[p] = highest + 1;
            let level = heights[p];
            for &r in &roots {
                if r != highest && heights[r as usize] - level <= h_quanta {
                    buf[r as usize] = highest + 1;
                }
            }
        }
        for i in 0..n {
            if buf[i] != 0 {
                buf[i] = find(buf, i as u32) + 1;
            }
        }
        let mut sizes = vec![0u32; n];
        for &b in buf.iter() {
            if b != 0 {
                sizes[b as usize - 1] += 1;
            }
        }
        let mut numbers = vec![0u32; n];
        let mut count = 0u32;
        for b in buf.iter_mut() {
            if *b != 0 {
                let basin = *b as usize - 1;
                if (sizes[basin] as usize) < min_size {
                    *b = 0;
                    continue;
                }
                if numbers[basin] == 0 {
                    count += 1;
                    numbers[basin] = count;
                }
                *b = numbers[basin];
            }
        }
        heights.clear();
    }

    fn find(buf: &mut [u32], mut x: u32) -> u32 {
        loop {
            let parent = buf[x as usize] - 1;
            if parent == x {
                return x;
            }
            let grand = buf[parent as usize] - 1;
            buf[x as usize] = grand + 1;
            x = grand;
        }
    }
}
