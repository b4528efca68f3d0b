//! Benchmark (not a timed test): `cargo bench --bench instances` (part of `make bench`).
//!
//! What instance separation adds to a segmentation: a 2048x2048 synthetic image through the embedded default
//! model with connected components and with the watershed, in the same run, medians of 3. Goal: the watershed adds
//! at most 20 %. Also the post-processing alone (components vs watershed on the same mask). Under `cargo test` it
//! runs once on a small image as a smoke test.

use std::time::Instant;

use unet::{
    Connectivity, InstanceMethod, Model, ModelOptions, Provider, SegmentOptions, SegmentOutputs, Watershed,
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
    let (size, cells, repeats) = if full { (2048, 2400, 3) } else { (256, 40, 1) };
    let ort = std::env::var_os("UNET_ORT_LIB").map(std::path::PathBuf::from);
    let model = Model::embedded_default(&ModelOptions {
        provider: Provider::Cpu,
        threads: 0,
        ort_library: ort,
        cuda_device: 0,
    })
    .expect("load the embedded default model (set UNET_ORT_LIB)");
    let img = unet::synthetic::cells(size, size, cells, (8.0, 16.0), 11);
    let view = ImageView::new(Pixels::U16(&img.pixels), size, size, 1, size).unwrap();
    let mut labels = vec![0u32; size * size];
    let watershed = InstanceMethod::Watershed(Watershed::DEFAULT);
    let time = |method: InstanceMethod, labels: &mut Vec<u32>| -> (f64, u32) {
        let started = Instant::now();
        let r = model
            .segment(
                &view,
                SegmentOptions { instances: Some(method), ..Default::default() },
                SegmentOutputs { labels: Some(labels), ..Default::default() },
            )
            .unwrap();
        (started.elapsed().as_secs_f64(), r.label_count)
    };
    let (mut with_cc, mut with_ws, mut counts) = (Vec::new(), Vec::new(), (0, 0));
    for _ in 0..repeats {
        let (t, n) = time(InstanceMethod::Components, &mut labels);
        with_cc.push(t);
        counts.0 = n;
        let (t, n) = time(watershed, &mut labels);
        with_ws.push(t);
        counts.1 = n;
    }
    // The post-processing alone, on the foreground of the last run.
    let mask: Vec<u32> = labels.iter().map(|&l| if l != 0 { FOREGROUND } else { 0 }).collect();
    let (mut pp_cc, mut pp_ws) = (Vec::new(), Vec::new());
    for _ in 0..repeats.max(3) {
        for (method, out) in [(InstanceMethod::Components, &mut pp_cc), (watershed, &mut pp_ws)] {
            let mut buf = mask.clone();
            let started = Instant::now();
            label_instances(&mut buf, size, size, method, Connectivity::Four, 0).unwrap();
            out.push(started.elapsed().as_secs_f64());
        }
    }
    let (cc, ws) = (median(with_cc), median(with_ws));
    println!(
        "instances, {size}x{size}, {cells} synthetic cells, default model on the CPU (medians of {repeats}):\n  \
         segment + components {cc:.3} s ({} instances)\n  segment + watershed  {ws:.3} s ({} instances)\n  \
         watershed adds {:+.1} % (goal <= +20 %)\n  post-processing alone: components {:.1} ms, watershed {:.1} ms \
         (extra memory of the watershed: 8 bytes/pixel = {:.0} MiB here)",
        counts.0,
        counts.1,
        100.0 * (ws / cc - 1.0),
        1e3 * median(pp_cc),
        1e3 * median(pp_ws),
        (8 * size * size) as f64 / (1 << 20) as f64,
    );
}
