//! unet_weight_map's Rust API against a brute-force float64 reference (every background pixel against every cell
//! pixel), on random label images with touching, nested, thin, one-pixel and image-border cells, and edge cases.

mod common;

use common::Rng;
use unet::{
    ImageView, Pixels, UnetStatus,
    weight_map::{ClassBalance, LabelView, WeightMapOptions, weight_map},
};

/// The documented conventions, implemented the obvious way.
fn reference(labels: &[u32], w: usize, h: usize, o: &WeightMapOptions) -> (Vec<f64>, Vec<u8>) {
    let b = o.border_width as isize;
    let mut target = vec![0u8; w * h];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let l = labels[y as usize * w + x as usize];
            if l == 0 {
                continue;
            }
            let mut keep = 1;
            for ny in y - b..=y + b {
                for nx in x - b..=x + b {
                    if nx >= 0 && ny >= 0 && nx < w as isize && ny < h as isize {
                        let n = labels[ny as usize * w + nx as usize];
                        if n != 0 && n < l {
                            keep = 0;
                        }
                    }
                }
            }
            target[y as usize * w + x as usize] = keep;
        }
    }
    let fg = target.iter().filter(|&&t| t == 1).count() as f64;
    let n = (w * h) as f64;
    let (wb, wf) = match o.balance {
        ClassBalance::None => (1.0, 1.0),
        ClassBalance::Explicit { background, foreground } => (background as f64, foreground as f64),
        ClassBalance::InverseFrequency => {
            let inv = |k: f64| if k == 0.0 { 1.0 } else { n / (2.0 * k) };
            (inv(n - fg), inv(fg))
        }
    };
    let mut cells: Vec<u32> = (0..w * h).filter(|&i| target[i] == 1).map(|i| labels[i]).collect();
    cells.sort_unstable();
    cells.dedup();
    let mut weights = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if target[i] == 1 {
                weights[i] = wf;
                continue;
            }
            let mut dists: Vec<f64> = cells
                .iter()
                .map(|&c| {
                    let mut best = f64::INFINITY;
                    for j in 0..w * h {
                        if target[j] == 1 && labels[j] == c {
                            let (dx, dy) = (x as f64 - (j % w) as f64, y as f64 - (j / w) as f64);
                            best = best.min((dx * dx + dy * dy).sqrt());
                        }
                    }
                    best
                })
                .collect();
            dists.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let mut v = wb;
            if dists.len() >= 2 {
                let s = dists[0] + dists[1];
                v += o.w0 as f64 * (-(s * s) / (2.0 * (o.sigma as f64).powi(2))).exp();
            }
            weights[i] = v;
        }
    }
    (weights, target)
}

/// Random cells: discs, thin lines, single pixels, rectangles nested in others, cells on the border.
fn random_labels(rng: &mut Rng, w: usize, h: usize) -> Vec<u32> {
    let mut l = vec![0u32; w * h];
    let shapes = 1 + rng.below(9);
    for _ in 0..shapes {
        // Huge, non-consecutive label values.
        let label = 1 + (rng.next() % u32::MAX as u64) as u32;
        let (cx, cy) = (rng.below(w) as isize, rng.below(h) as isize);
        match rng.below(4) {
            0 => {
                let r = 1 + rng.below(6) as isize;
                for y in cy - r..=cy + r {
                    for x in cx - r..=cx + r {
                        if (x - cx).pow(2) + (y - cy).pow(2) <= r * r
                            && x >= 0
                            && y >= 0
                            && x < w as isize
                            && y < h as isize
                        {
                            l[y as usize * w + x as usize] = label;
                        }
                    }
                }
            }
            1 => {
                let len = 1 + rng.below(w.max(h));
                for k in 0..len {
                    let (x, y) = if rng.below(2) == 0 { (cx + k as isize, cy) } else { (cx, cy + k as isize) };
                    if x < w as isize && y < h as isize {
                        l[y as usize * w + x as usize] = label;
                    }
                }
            }
            2 => l[cy as usize * w + cx as usize] = label,
            _ => {
                let (rw, rh) = (1 + rng.below(8), 1 + rng.below(8));
                for y in cy as usize..(cy as usize + rh).min(h) {
                    for x in cx as usize..(cx as usize + rw).min(w) {
                        l[y * w + x] = label;
                    }
                }
            }
        }
    }
    l
}

fn compare(labels: &[u32], w: usize, h: usize, o: &WeightMapOptions, what: &str) {
    let (want_w, want_t) = reference(labels, w, h, o);
    let (mut got_w, mut got_t) = (vec![0f32; w * h], vec![0u8; w * h]);
    let view = LabelView::packed_u32(labels, w, h).unwrap();
    weight_map(&view, o, Some(&mut got_w), Some(&mut got_t)).unwrap();
    assert_eq!(got_t, want_t, "{what}: target");
    let diff = got_w.iter().zip(&want_w).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
    assert!(diff <= 1e-4, "{what}: max |weight - reference| = {diff:e}");
}

#[test]
fn matches_brute_force_on_random_label_images() {
    let mut rng = Rng(2024);
    for trial in 0..60 {
        let (w, h) = (1 + rng.below(48), 1 + rng.below(40));
        let labels = random_labels(&mut rng, w, h);
        let o = WeightMapOptions {
            w0: [10.0, 3.0, 0.0][trial % 3],
            sigma: [5.0, 2.0, 9.0][trial % 3],
            balance: [
                ClassBalance::InverseFrequency,
                ClassBalance::None,
                ClassBalance::Explicit { background: 0.5, foreground: 2.0 },
            ][trial % 3],
            border_width: [0, 1, 2, 3, 5, 11, 60][trial % 7], // 60: wider than the image
        };
        compare(&labels, w, h, &o, &format!("trial {trial} ({w}x{h}, {o:?})"));
    }
}

/// Hundreds of tiny touching cells (the fuzzer's kind of input; the per-row distance method runs there).
#[test]
fn matches_brute_force_on_dense_tiny_cells() {
    let mut rng = Rng(77);
    for trial in 0..6 {
        let (w, h) = (8 + rng.below(30), 8 + rng.below(24));
        let labels: Vec<u32> =
            (0..w * h).map(|_| if rng.below(3) == 0 { 0 } else { 1 + rng.below(200) as u32 }).collect();
        let o = WeightMapOptions {
            sigma: [5.0, 1.5, 40.0][trial % 3],
            border_width: [0, 1][trial % 2],
            ..WeightMapOptions::default()
        };
        compare(&labels, w, h, &o, &format!("dense trial {trial} ({w}x{h}, {o:?})"));
    }
}

#[test]
fn edge_cases() {
    let o = WeightMapOptions::default();
    compare(&[0; 12], 4, 3, &o, "no cells");
    compare(&[7; 12], 4, 3, &o, "all foreground, one cell");
    compare(&[0], 1, 1, &o, "1x1 background");
    compare(&[u32::MAX], 1, 1, &o, "1x1 cell with the largest label");
    // One cell: no second-nearest cell, so no border term anywhere.
    let mut one = vec![0u32; 100];
    one[55] = 3;
    let (mut wts, view) = (vec![0f32; 100], LabelView::packed_u32(&one, 10, 10).unwrap());
    weight_map(&view, &WeightMapOptions { balance: ClassBalance::None, ..o }, Some(&mut wts), None).unwrap();
    assert!(wts.iter().all(|&v| v == 1.0));
    // Two touching cells: a 2-pixel line of background on the larger label's side, with the largest weights.
    let mut two = vec![0u32; 20 * 10];
    for y in 2..8 {
        for x in 2..10 {
            two[y * 20 + x] = 1;
        }
        for x in 10..18 {
            two[y * 20 + x] = 2;
        }
    }
    compare(&two, 20, 10, &o, "two touching rectangles");
    let (mut wts, mut t) = (vec![0f32; 200], vec![0u8; 200]);
    let view = LabelView::packed_u32(&two, 20, 10).unwrap();
    let report = weight_map(&view, &o, Some(&mut wts), Some(&mut t)).unwrap();
    assert_eq!(report.separation_pixels, 12);
    assert_eq!((t[5 * 20 + 9], t[5 * 20 + 10], t[5 * 20 + 11], t[5 * 20 + 12]), (1, 0, 0, 1));
    let max = wts.iter().cloned().fold(0.0, f32::max);
    assert_eq!(wts[5 * 20 + 10], max, "separation line carries the largest weight");
}

#[test]
fn u8_u16_u32_and_strides_agree() {
    let mut rng = Rng(3);
    let (w, h, stride) = (30, 20, 33);
    let small: Vec<u32> = random_labels(&mut rng, w, h).iter().map(|&l| l % 200).collect();
    let mut want = vec![0f32; w * h];
    weight_map(&LabelView::packed_u32(&small, w, h).unwrap(), &WeightMapOptions::default(), Some(&mut want), None)
        .unwrap();
    let mut u8s = vec![0u8; stride * h];
    let mut u16s = vec![0u16; stride * h];
    for y in 0..h {
        for x in 0..w {
            u8s[y * stride + x] = small[y * w + x] as u8;
            u16s[y * stride + x] = small[y * w + x] as u16;
        }
    }
    for data in [Pixels::U8(&u8s), Pixels::U16(&u16s)] {
        let mut got = vec![0f32; w * h];
        let view = LabelView::new(ImageView::new(data, w, h, 1, stride).unwrap()).unwrap();
        weight_map(&view, &WeightMapOptions::default(), Some(&mut got), None).unwrap();
        assert_eq!(got, want);
    }
}

#[test]
fn bad_options_and_buffers_are_rejected() {
    let labels = [0u32; 6];
    let view = LabelView::packed_u32(&labels, 3, 2).unwrap();
    for o in [
        WeightMapOptions { sigma: 0.0, ..Default::default() },
        WeightMapOptions { w0: f32::NAN, ..Default::default() },
        WeightMapOptions {
            balance: ClassBalance::Explicit { background: -1.0, foreground: 1.0 },
            ..Default::default()
        },
    ] {
        assert_eq!(weight_map(&view, &o, None, None).unwrap_err().status(), UnetStatus::InvalidArgument);
    }
    let mut short = [0f32; 5];
    let err = weight_map(&view, &WeightMapOptions::default(), Some(&mut short), None).unwrap_err();
    assert_eq!(err.status(), UnetStatus::BufferTooSmall);
    assert_eq!(LabelView::packed_u32(&labels, 4, 2).unwrap_err().status(), UnetStatus::BufferTooSmall);
}

/// Every buffer that grows with the image is reserved fallibly: with the address space capped a little above what
/// the steps before need, the step that needs more returns OUT_OF_MEMORY instead of aborting the process (inside
/// Fiji or a microscope program an abort takes the host down with it). Each case runs in a child process of this
/// test binary, the only place where a cap on the address space cannot hit other tests and where nothing freed by
/// an earlier case still counts against it.
#[test]
fn running_out_of_memory_is_an_error_not_an_abort() {
    if let Some(case) = std::env::var_os("UNET_OOM_CASE") {
        return out_of_memory_case(case.to_str().unwrap());
    }
    for case in ["separation lines", "second distance buffer", "distances per cell", "ring of rows"] {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "running_out_of_memory_is_an_error_not_an_abort", "--nocapture", "--test-threads=1"])
            .env("UNET_OOM_CASE", case)
            // glibc: one arena (a thread's own arena reserves 64 MiB of address space up front, room the cap would
            // not see) and every block of 128 KiB or more mapped on its own, so the cap counts what is allocated.
            .env("GLIBC_TUNABLES", "glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=131072")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&child.stdout) + String::from_utf8_lossy(&child.stderr);
        assert!(child.status.success(), "{case}: the child ended with {:?}:\n{said}", child.status);
        assert!(said.contains(&format!("{case}: OUT_OF_MEMORY")), "{case}: the case did not run:\n{said}");
    }
}

fn out_of_memory_case(case: &str) {
    let (w, h) = (2000, 2000);
    let mut labels = vec![0u32; w * h];
    // Bytes per pixel the cap allows beyond what is mapped now, and where the step that must fail takes more.
    let (options, allowed) = match case {
        // The square minimum of the separation lines (4 bytes per pixel) beside the target (1).
        "separation lines" => (WeightMapOptions { border_width: 2, ..WeightMapOptions::default() }, 3),
        // Target (1) and the nearest distances (4) fit, the second distances (4) do not.
        "second distance buffer" => (WeightMapOptions { border_width: 0, ..WeightMapOptions::default() }, 7),
        // Two cells in opposite corners and a radius over the whole image: the per-cell method's distance
        // transform spans the image (8 bytes per pixel) beside the target and both distance buffers (9).
        "distances per cell" => (WeightMapOptions { sigma: 400.0, border_width: 0, ..WeightMapOptions::default() }, 13),
        // A one-pixel cell every 6 pixels and the same radius: the per-row method keeps every row (16 bytes per
        // pixel) beside the target, the distance buffers and the cells' boxes (about 10).
        "ring of rows" => (WeightMapOptions { sigma: 400.0, border_width: 0, ..WeightMapOptions::default() }, 18),
        _ => panic!("unknown case {case}"),
    };
    if case == "ring of rows" {
        for y in (0..h).step_by(6) {
            for x in (0..w).step_by(6) {
                labels[y * w + x] = (y * w + x + 1) as u32;
            }
        }
    } else {
        labels[0] = 1;
        labels[w * h - 1] = 2;
    }
    let mut weights = vec![0f32; w * h];
    weights.iter_mut().step_by(1024).for_each(|v| *v = 1.0); // the caller's buffer, mapped before the cap
    let view = LabelView::packed_u32(&labels, w, h).unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let mapped_kib: u64 =
        status.lines().find(|l| l.starts_with("VmSize:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let cap = mapped_kib * 1024 + (allowed * w * h) as u64;
    let limit = libc::rlimit { rlim_cur: cap, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain system call on a valid struct; this process runs only this case.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
    let err = weight_map(&view, &options, Some(&mut weights), None).unwrap_err();
    assert_eq!(err.status(), UnetStatus::OutOfMemory, "{case}: {err}");
    // The step the case is built to exhaust is the one that refused (not an earlier or a later one).
    let step = match case {
        "separation lines" => "the separation lines' minimum",
        "second distance buffer" => "the second-nearest-cell distances",
        "distances per cell" => "a cell's distance transform",
        _ => "the ring of rows",
    };
    assert!(err.message().contains(step), "{case}: refused by another step: {err}");
    println!("{case}: OUT_OF_MEMORY ({err})");
}
