//! Soak: 10,000 segment calls on one shared model from 8 threads, resident memory sampled as they go: after the
//! warm-up (ONNX Runtime's arena, thread pools), memory must not grow with the number of calls. Its own test binary,
//! because RSS is per process.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
}

#[test]
fn ten_thousand_calls_on_eight_threads_do_not_grow_memory() {
    const CALLS: usize = 10_000;
    const THREADS: usize = 8;
    const WARM_UP: usize = 1_000;
    let model = common::baseline_model();
    let img = unet::synthetic::cells(48, 40, 4, (5.0, 8.0), 9);
    let view = unet::ImageView::new(unet::Pixels::U16(&img.pixels), 48, 40, 1, 48).unwrap();
    let (mut p0, mut l0) = (vec![0f32; 48 * 40], vec![0u32; 48 * 40]);
    let outputs = unet::SegmentOutputs { probabilities: Some(&mut p0), labels: Some(&mut l0), mask: None };
    let expected = model.segment(&view, Default::default(), outputs).unwrap().label_count;
    assert!(expected > 0);
    let done = AtomicUsize::new(0);
    let samples = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                let view = unet::ImageView::new(unet::Pixels::U16(&img.pixels), 48, 40, 1, 48).unwrap();
                let (mut p, mut l) = (vec![0f32; 48 * 40], vec![0u32; 48 * 40]);
                loop {
                    let n = done.fetch_add(1, Ordering::Relaxed);
                    if n >= CALLS {
                        break;
                    }
                    let report = model
                        .segment(
                            &view,
                            Default::default(),
                            unet::SegmentOutputs { probabilities: Some(&mut p), labels: Some(&mut l), mask: None },
                        )
                        .unwrap();
                    assert_eq!(report.label_count, expected, "call {n}");
                    assert!(p == p0 && l == l0, "call {n} differs from the first");
                    if n.is_multiple_of(250) {
                        samples.lock().unwrap().push((n, rss_bytes()));
                    }
                }
            });
        }
    });
    let mut samples = samples.into_inner().unwrap();
    samples.sort();
    let after_warm_up: Vec<usize> = samples.iter().filter(|(n, _)| *n >= WARM_UP).map(|s| s.1).collect();
    let (first, last) = (after_warm_up[0], *after_warm_up.last().unwrap());
    let peak = *after_warm_up.iter().max().unwrap();
    eprintln!(
        "{CALLS} calls on {THREADS} threads: RSS {} MiB after {WARM_UP} calls, {} MiB at the end, peak {} MiB",
        first >> 20,
        last >> 20,
        peak >> 20
    );
    // 9,000 calls after the warm-up: a leak of even 2 KiB per call would show as 17 MiB.
    assert!(last < first + (8 << 20), "RSS grew from {} to {} MiB", first >> 20, last >> 20);
}
