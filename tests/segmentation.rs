//! The whole pipeline (normalise -> mirror -> tile -> ONNX Runtime -> stitch -> mask -> labels) against exact
//! references: the baseline model's closed form, a single whole-image pass (seamless tiling), flood-fill labels.

mod common;

use common::{Rng, load, random_model_bytes};
use unet::{
    Architecture, Connectivity, ImageView, Model, Normalization, Pixels, Progress, SegmentOptions, SegmentOutputs,
    UnetStatus, baseline, tiling::mirror,
};

/// numpy.percentile (linear) of all values.
fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - pos.floor())
}

/// The baseline's output in closed form: sigmoid(GAIN * (box3^4(x) - THRESHOLD)) of the mirrored, normalised
/// image, computed in float64 (box3^4 is the separable kernel [1,4,10,16,19,16,10,4,1] / 81 per axis).
fn baseline_reference(values: &[f64], w: usize, h: usize) -> Vec<f64> {
    let (lo, hi) = (percentile(values, 1.0), percentile(values, 99.8));
    let norm: Vec<f64> = values.iter().map(|v| (v - lo) / (hi - lo + 1e-20)).collect();
    let k = [1.0, 4.0, 10.0, 16.0, 19.0, 16.0, 10.0, 4.0, 1.0].map(|v| v / 81.0);
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0.0;
            for (dy, ky) in k.iter().enumerate() {
                let yy = mirror(y as isize + dy as isize - 4, h);
                for (dx, kx) in k.iter().enumerate() {
                    s += ky * kx * norm[yy * w + mirror(x as isize + dx as isize - 4, w)];
                }
            }
            let z = baseline::GAIN as f64 * (s - baseline::THRESHOLD as f64);
            out[y * w + x] = 1.0 / (1.0 + (-z).exp());
        }
    }
    out
}

fn probabilities(model: &unet::Model, view: &ImageView, max_tile: Option<usize>, tiles_per_run: usize) -> Vec<f32> {
    probabilities_and_tiles(model, view, max_tile, tiles_per_run).0
}

fn probabilities_and_tiles(
    model: &unet::Model,
    view: &ImageView,
    max_tile: Option<usize>,
    tiles_per_run: usize,
) -> (Vec<f32>, usize) {
    let mut p = vec![0f32; view.area()];
    let report = model
        .segment(
            view,
            SegmentOptions { max_tile, tiles_per_run, ..Default::default() },
            SegmentOutputs { probabilities: Some(&mut p), ..Default::default() },
        )
        .unwrap();
    (p, report.tiles)
}

#[test]
fn baseline_pipeline_matches_closed_form_for_every_pixel_type_and_stride() {
    let model = common::baseline_model();
    let mut rng = Rng(42);
    for &(w, h) in &[(1, 1), (5, 3), (64, 1), (1, 40), (77, 53), (200, 130)] {
        let values: Vec<f64> = (0..w * h).map(|_| rng.below(4096) as f64).collect();
        let bytes: Vec<f64> = (0..w * h).map(|_| rng.below(256) as f64).collect(); // the u8 image's own values
        let (want, want_u8) = (baseline_reference(&values, w, h), baseline_reference(&bytes, w, h));
        let pad = 3; // row padding: stride > row
        let stride = w + pad;
        let mut u8s = vec![0u8; stride * h];
        let mut u16s = vec![0u16; stride * h];
        let mut u32s = vec![0u32; stride * h];
        let mut f32s = vec![0f32; stride * h];
        for y in 0..h {
            for x in 0..w {
                u8s[y * stride + x] = bytes[y * w + x] as u8;
                u16s[y * stride + x] = values[y * w + x] as u16;
                u32s[y * stride + x] = values[y * w + x] as u32;
                f32s[y * stride + x] = values[y * w + x] as f32;
            }
        }
        for (name, view, want) in [
            ("u8", ImageView::new(Pixels::U8(&u8s), w, h, 1, stride).unwrap(), &want_u8),
            ("u16", ImageView::new(Pixels::U16(&u16s), w, h, 1, stride).unwrap(), &want),
            ("u32", ImageView::new(Pixels::U32(&u32s), w, h, 1, stride).unwrap(), &want),
            ("f32", ImageView::new(Pixels::F32(&f32s), w, h, 1, stride).unwrap(), &want),
        ] {
            for max_tile in [None, Some(20), Some(52)] {
                let got = probabilities(&model, &view, max_tile, 1);
                let diff = got.iter().zip(want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
                assert!(diff <= 1e-5, "{name} {w}x{h} tile {max_tile:?}: max diff {diff:e}");
            }
        }
    }
}

#[test]
fn tiled_output_equals_single_pass_on_random_images() {
    let mut rng = Rng(7);
    let archs = [
        Architecture { in_channels: 1, classes: 2, base_width: 4, depth: 2 },
        Architecture { in_channels: 2, classes: 3, base_width: 3, depth: 3 },
        Architecture { in_channels: 1, classes: 2, base_width: 2, depth: 4 },
    ];
    let (mut cases, mut spread_checked, mut multi_tile) = (0, 0, 0);
    for (i, arch) in archs.iter().enumerate() {
        let model = load(&random_model_bytes(*arch, 100 + i as u64));
        let mut sizes = vec![(1, 1), (1, 97), (83, 2), (33, 47)];
        sizes.extend((0..4).map(|_| (1 + rng.below(260), 1 + rng.below(260))));
        for (w, h) in sizes {
            let c = arch.in_channels;
            let data: Vec<f32> = (0..w * h * c).map(|_| rng.unit() as f32 * 100.0 - 20.0).collect();
            let view = ImageView::new(Pixels::F32(&data), w, h, c, w * c).unwrap();
            let (single, one) = probabilities_and_tiles(&model, &view, Some(100_000), 1);
            assert_eq!(one, 1);
            // A random net could be dead (constant output), which would make any tiling agree: demand a spread.
            if w * h >= 100 {
                let (lo, hi) = single.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                assert!(hi - lo > 1e-3, "{arch:?} {w}x{h}: output nearly constant ({lo}..{hi})");
                spread_checked += 1;
            }
            for _ in 0..2 {
                let max_tile = 4 + rng.below(120);
                let per_run = 1 + rng.below(3);
                let (tiled, tiles) = probabilities_and_tiles(&model, &view, Some(max_tile), per_run);
                if w.max(h) > max_tile.next_multiple_of(16) {
                    assert!(tiles > 1, "{w}x{h} with tile {max_tile} ran as one tile");
                    multi_tile += 1;
                }
                let diff = single.iter().zip(&tiled).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(diff <= 1e-5, "{arch:?} {w}x{h} tile {max_tile} x{per_run}: max diff {diff:e}");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 48);
    assert!(spread_checked >= 15 && multi_tile >= 20, "{spread_checked} spread checks, {multi_tile} multi-tile runs");
}

/// Well-separated bright squares: the baseline must find each as one instance with the right area.
#[test]
fn labels_mask_and_probabilities_agree() {
    let model = common::baseline_model();
    let (w, h) = (300, 220);
    let mut img = vec![200u16; w * h];
    let squares = [(10, 10, 30), (100, 40, 25), (200, 150, 40), (250, 20, 12), (40, 170, 20)];
    for &(x0, y0, s) in &squares {
        for y in y0..y0 + s {
            for x in x0..x0 + s {
                img[y * w + x] = 3000;
            }
        }
    }
    let view = ImageView::new(Pixels::U16(&img), w, h, 1, w).unwrap();
    let (mut p, mut m, mut l) = (vec![0f32; w * h], vec![0u8; w * h], vec![0u32; w * h]);
    let mut steps = Vec::new();
    let mut progress = |pr: Progress| {
        steps.push(pr);
        true
    };
    let report = model
        .segment(
            &view,
            SegmentOptions { max_tile: Some(100), progress: Some(&mut progress), ..Default::default() },
            SegmentOutputs { probabilities: Some(&mut p), mask: Some(&mut m), labels: Some(&mut l) },
        )
        .unwrap();
    assert_eq!(report.label_count, squares.len() as u32);
    assert!(report.tiles > 1);
    for i in 0..w * h {
        assert_eq!(m[i] == 1, p[i] > 0.5, "mask vs probability at {i}");
        assert_eq!(l[i] != 0, m[i] == 1, "labels vs mask at {i}");
    }
    for (k, &(x0, y0, s)) in squares.iter().enumerate() {
        let label = l[(y0 + s / 2) * w + x0 + s / 2];
        assert_ne!(label, 0, "square {k} not found");
        let area = l.iter().filter(|&&v| v == label).count() as f64;
        assert!((area / (s * s) as f64 - 1.0).abs() < 0.15, "square {k}: area {area} vs {}", s * s);
    }
    // Progress: starts at 0, counts every step up to the total, then stops.
    assert_eq!(steps.first().unwrap().done, 0);
    let total = steps[0].total;
    assert_eq!(total, report.tiles + 1);
    assert!(steps.windows(2).all(|s| s[1].done == s[0].done + 1 && s[1].total == total));
    assert_eq!(steps.last().unwrap().done, total);

    // min_size removes the smallest square (12 x 12 = 144 px); 8-connectivity changes nothing here.
    let mut l2 = vec![0u32; w * h];
    let r = model
        .segment(
            &view,
            SegmentOptions { min_size: 200, connectivity: Connectivity::Eight, ..Default::default() },
            SegmentOutputs { labels: Some(&mut l2), ..Default::default() },
        )
        .unwrap();
    assert_eq!(r.label_count, squares.len() as u32 - 1);
}

#[test]
fn cancel_stops_early_and_threshold_changes_the_mask() {
    let model = common::baseline_model();
    let data: Vec<u8> = (0..200 * 200).map(|i| (i % 251) as u8).collect();
    let view = ImageView::new(Pixels::U8(&data), 200, 200, 1, 200).unwrap();
    let mut calls = 0;
    let mut cancel_after_first = |p: Progress| {
        calls += 1;
        p.done < 1
    };
    let mut mask = vec![0u8; 200 * 200];
    let err = model
        .segment(
            &view,
            SegmentOptions { max_tile: Some(50), progress: Some(&mut cancel_after_first), ..Default::default() },
            SegmentOutputs { mask: Some(&mut mask), ..Default::default() },
        )
        .unwrap_err();
    assert_eq!(err.status(), UnetStatus::Cancelled);
    assert_eq!(calls, 2);

    // With percentile normalisation the baseline's probabilities spread over (0, 1) at the object edges: the mask
    // must be exactly P >= threshold for every pixel, and a low threshold must mark strictly more pixels.
    let run = |threshold| {
        let (mut m, mut p) = (vec![0u8; 200 * 200], vec![0f32; 200 * 200]);
        model
            .segment(
                &view,
                SegmentOptions { threshold, ..Default::default() },
                SegmentOutputs { mask: Some(&mut m), probabilities: Some(&mut p), ..Default::default() },
            )
            .unwrap();
        (m, p)
    };
    let mut counts = Vec::new();
    for t in [0.05f32, 0.5, 0.95] {
        let (m, p) = run(Some(t));
        let middle = p.iter().filter(|&&v| v > 0.05 && v < 0.95).count();
        assert!(middle > 20, "only {middle} pixels with intermediate probability: the test needs a spread");
        for (i, (&mv, &pv)) in m.iter().zip(&p).enumerate() {
            assert_eq!(mv == 1, pv >= t, "pixel {i}: p {pv}, threshold {t}, mask {mv}");
        }
        counts.push(m.iter().filter(|&&v| v == 1).count());
    }
    assert!(counts[0] > counts[1] && counts[1] > counts[2], "{counts:?}");
}

#[test]
fn rejects_bad_input_with_named_causes() {
    let model = common::baseline_model();
    let data = vec![1f32; 30];
    let two = ImageView::new(Pixels::F32(&data), 5, 3, 2, 10).unwrap();
    let err = model.segment(&two, SegmentOptions::default(), SegmentOutputs::default()).unwrap_err();
    assert_eq!(err.status(), UnetStatus::ChannelMismatch);
    assert!(err.message().contains("RGB/RGBA"), "{err}");
    let view = ImageView::new(Pixels::F32(&data), 6, 5, 1, 6).unwrap();
    let mut short = vec![0u32; 29];
    let err = model
        .segment(&view, SegmentOptions::default(), SegmentOutputs { labels: Some(&mut short), ..Default::default() })
        .unwrap_err();
    assert_eq!(err.status(), UnetStatus::BufferTooSmall);
    assert!(err.message().contains("labels"), "{err}");
    assert_eq!(ImageView::new(Pixels::F32(&data), 6, 5, 1, 5).unwrap_err().status(), UnetStatus::InvalidStride);
    assert_eq!(ImageView::new(Pixels::F32(&data), 0, 5, 1, 5).unwrap_err().status(), UnetStatus::InvalidSize);
    assert_eq!(ImageView::new(Pixels::F32(&data), 7, 5, 1, 7).unwrap_err().status(), UnetStatus::BufferTooSmall);
}

/// Finite f32 images near ±f32::MAX: percentile normalisation stays finite (computed in f64) and gives the same
/// result as the image scaled down; with normalisation none the network overflows, which is an error, never NaN
/// with status OK.
#[test]
fn extreme_finite_values_never_give_nan() {
    let model = common::baseline_model();
    let (w, h) = (40, 30);
    let small: Vec<f32> = (0..w * h).map(|i| if (i % w) / 10 % 2 == 0 { -1.0 } else { 1.0 }).collect();
    let huge: Vec<f32> = small.iter().map(|v| v * 3.0e38).collect();
    let run = |data: &[f32], normalization| {
        let view = ImageView::new(Pixels::F32(data), w, h, 1, w).unwrap();
        let mut p = vec![0f32; w * h];
        model
            .segment(
                &view,
                SegmentOptions { normalization, ..Default::default() },
                SegmentOutputs { probabilities: Some(&mut p), ..Default::default() },
            )
            .map(|_| p)
    };
    let scaled = run(&small, None).unwrap();
    let extreme = run(&huge, None).unwrap();
    assert!(extreme.iter().all(|p| p.is_finite()));
    let diff = scaled.iter().zip(&extreme).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "max difference {diff}");
    // Raw values near f32::MAX (normalisation none) push the network past f32: NaN or infinity inside is
    // possible, and whatever comes out is finite or an error (never NaN with status OK).
    if let Ok(p) = run(&huge, Some(Normalization::None)) {
        assert!(p.iter().all(|v| v.is_finite()), "NaN with status OK");
    }
}

/// The guard itself, on inputs for which it must fire: a network with one infinite weight makes every output
/// NaN (infinity minus infinity in the next layer, softmax of NaN), and `segment` refuses with a message, through
/// one tile and through many.
#[test]
fn a_network_that_produces_nan_is_an_error() {
    let arch = Architecture { in_channels: 1, classes: 2, base_width: 2, depth: 2 };
    let mut weights = unet::UNetWeights::he_normal(arch, 5);
    weights.tensors[0].data[0] = f32::INFINITY;
    weights.tensors[0].data[1] = f32::NEG_INFINITY;
    let bytes = unet::onnx::encode_unet(&weights, &unet::ModelMetadata::new(arch, "poisoned")).unwrap();
    let model = load(&bytes);
    let (w, h) = (150, 120);
    let pixels: Vec<f32> = (0..w * h).map(|i| (i % 37) as f32).collect();
    let view = ImageView::new(Pixels::F32(&pixels), w, h, 1, w).unwrap();
    for max_tile in [None, Some(40)] {
        let mut p = vec![0f32; w * h];
        let e = model
            .segment(
                &view,
                SegmentOptions { max_tile, ..Default::default() },
                SegmentOutputs { probabilities: Some(&mut p), ..Default::default() },
            )
            .unwrap_err();
        assert_eq!(e.status(), UnetStatus::RuntimeError, "{e}");
        assert!(e.message().contains("non-finite probability"), "{e}");
    }
}

/// The colour rule (`unet::color`): an RGB or RGBA image given to a one-channel model is segmented as its BT.601
/// luminance, so an RGB copy of a gray image gives exactly the gray image's outputs, and a coloured image the
/// outputs of its luminance computed here by hand.
#[test]
fn colour_images_are_segmented_as_their_luminance() {
    let model = Model::embedded_default(&common::options()).unwrap();
    let (w, h) = (150, 120);
    let nuclei = unet::synthetic::nuclei(w, h, 77);
    let gray: Vec<u8> = nuclei.pixels.iter().map(|&v| (v >> 8) as u8).collect();
    let outputs = |view: &ImageView| {
        let (mut p, mut l) = (vec![0f32; w * h], vec![0u32; w * h]);
        model
            .segment(
                view,
                SegmentOptions::default(),
                SegmentOutputs { probabilities: Some(&mut p), labels: Some(&mut l), ..Default::default() },
            )
            .unwrap();
        (p, l)
    };
    let (p_gray, l_gray) = outputs(&ImageView::new(Pixels::U8(&gray), w, h, 1, w).unwrap());
    assert!(l_gray.iter().max().copied().unwrap_or(0) > 3, "the image has nuclei to label");
    let rgb: Vec<u8> = gray.iter().flat_map(|&v| [v, v, v]).collect();
    assert_eq!(outputs(&ImageView::new(Pixels::U8(&rgb), w, h, 3, 3 * w).unwrap()), (p_gray.clone(), l_gray.clone()));
    let rgba: Vec<u8> = gray.iter().flat_map(|&v| [v, v, v, 255 - v]).collect();
    assert_eq!(outputs(&ImageView::new(Pixels::U8(&rgba), w, h, 4, 4 * w).unwrap()), (p_gray, l_gray));
    // Colour: R, G and B differ; the outputs are those of 0.299 R + 0.587 G + 0.114 B, rounded.
    let colour: Vec<u8> = gray.iter().enumerate().flat_map(|(i, &v)| [v, v / 2, (i % 256) as u8]).collect();
    let luma: Vec<u8> = colour
        .chunks(3)
        .map(|c| (0.299 * c[0] as f64 + 0.587 * c[1] as f64 + 0.114 * c[2] as f64).round() as u8)
        .collect();
    assert_eq!(
        outputs(&ImageView::new(Pixels::U8(&colour), w, h, 3, 3 * w).unwrap()),
        outputs(&ImageView::new(Pixels::U8(&luma), w, h, 1, w).unwrap())
    );
}

/// Out of memory inside `segment` is a status, not an abort: with the address space capped after a warm-up run
/// (ONNX Runtime's arena already holds its tiles), a 4000x4000 image still runs its network, and the watershed's
/// scratch (8 bytes per pixel) is refused with OUT_OF_MEMORY naming the watershed. In a child process, the only
/// place where a cap on the address space cannot hit other tests.
#[test]
fn segment_out_of_memory_is_an_error_naming_the_step() {
    if std::env::var_os("UNET_SEGMENT_OOM_CASE").is_some() {
        return segment_out_of_memory_case();
    }
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "segment_out_of_memory_is_an_error_naming_the_step", "--nocapture", "--test-threads=1"])
        .env("UNET_SEGMENT_OOM_CASE", "1")
        .env("GLIBC_TUNABLES", "glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=131072")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&child.stdout) + String::from_utf8_lossy(&child.stderr);
    assert!(child.status.success(), "the child ended with {:?}:\n{said}", child.status);
    assert!(said.contains("segment: OUT_OF_MEMORY"), "the case did not run:\n{said}");
}

fn segment_out_of_memory_case() {
    let model = common::baseline_model();
    let (w, h) = (4000, 4000);
    let mut pixels = vec![10u8; w * h];
    for y in (0..h).step_by(40) {
        for x in (0..w).step_by(40) {
            for dy in 5..30 {
                pixels[(y + dy) * w + x + 5..(y + dy) * w + x + 30].fill(200);
            }
        }
    }
    let view = ImageView::new(Pixels::U8(&pixels), w, h, 1, w).unwrap();
    let mut labels = vec![0u32; w * h];
    let options = |instances| SegmentOptions { instances: Some(instances), max_tile: Some(500), ..Default::default() };
    // Warm-up without a cap: the network's arena and threads exist afterwards; connected components need no scratch.
    let n = model
        .segment(
            &view,
            options(unet::InstanceMethod::Components),
            SegmentOutputs { labels: Some(&mut labels), ..Default::default() },
        )
        .unwrap()
        .label_count;
    assert_eq!(n, 100 * 100);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let mapped_kib: u64 =
        status.lines().find(|l| l.starts_with("VmSize:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    // Room for a run's tiles (a few MB) and the labelling's small buffers, not for 2 x 64 MB of watershed scratch.
    let cap = mapped_kib * 1024 + (48 << 20);
    let limit = libc::rlimit { rlim_cur: cap, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain system call on a valid struct; this process runs only this case.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
    let watershed = unet::InstanceMethod::Watershed(unet::Watershed::DEFAULT);
    let err = model
        .segment(&view, options(watershed), SegmentOutputs { labels: Some(&mut labels), ..Default::default() })
        .unwrap_err();
    assert_eq!(err.status(), UnetStatus::OutOfMemory, "{err}");
    assert!(err.message().contains("watershed"), "refused by another step: {err}");
    println!("segment: OUT_OF_MEMORY ({err})");
}
