//! Instance separation through the whole pipeline: the watershed splits touching cells that connected components
//! merge, a tiled run gives exactly the labels of a single pass, and a model's recommended post-processing (its
//! metadata) is what callers get by default, field by field overridable.

mod common;

use unet::{
    Connectivity, ImageView, InstanceMethod, Model, Pixels, PostProcessing, SegmentOptions, SegmentOutputs, Watershed,
    metrics::seg,
};

fn labels(model: &Model, view: &ImageView, options: SegmentOptions) -> (Vec<u32>, u32, usize) {
    let mut l = vec![0u32; view.area()];
    let r = model.segment(view, options, SegmentOutputs { labels: Some(&mut l), ..Default::default() }).unwrap();
    (l, r.label_count, r.tiles)
}

fn baseline_with(pp: Option<PostProcessing>) -> Model {
    let mut meta = unet::baseline::metadata();
    meta.postprocessing = pp;
    common::load(&unet::onnx::encode_unet(&unet::baseline::weights(), &meta).unwrap())
}

#[test]
fn watershed_splits_touching_cells_and_scores_higher() {
    // Synthetic cells with many touching pairs; the intensity baseline finds their union.
    let img = unet::synthetic::cells(300, 220, 70, (9.0, 16.0), 5);
    let view = ImageView::new(Pixels::U16(&img.pixels), 300, 220, 1, 300).unwrap();
    let model = common::baseline_model();
    let components = SegmentOptions { instances: Some(InstanceMethod::Components), ..Default::default() };
    let (cc, n_cc, _) = labels(&model, &view, components);
    let ws_opts =
        || SegmentOptions { instances: Some(InstanceMethod::Watershed(Watershed::DEFAULT)), ..Default::default() };
    let (ws, n_ws, _) = labels(&model, &view, ws_opts());
    assert!(n_ws > n_cc + 5, "watershed {n_ws} instances, components {n_cc}");
    assert_eq!(cc.iter().map(|&l| l != 0).collect::<Vec<_>>(), ws.iter().map(|&l| l != 0).collect::<Vec<_>>());
    let (seg_cc, seg_ws) = (seg(&img.labels, &cc).unwrap(), seg(&img.labels, &ws).unwrap());
    assert!(seg_ws > seg_cc + 0.1, "SEG watershed {seg_ws:.3} vs components {seg_cc:.3}");
    // Numbered 1..=n in raster order of first pixels.
    let mut next = 1;
    for &l in &ws {
        if l == next {
            next += 1;
        }
        assert!(l < next, "label {l} appears before {next}");
    }
    assert_eq!(next - 1, n_ws);
}

#[test]
fn tiled_watershed_labels_equal_a_single_pass() {
    let img = unet::synthetic::cells(230, 170, 45, (8.0, 14.0), 9);
    let view = ImageView::new(Pixels::U16(&img.pixels), 230, 170, 1, 230).unwrap();
    let model = common::baseline_model();
    for method in [
        InstanceMethod::Watershed(Watershed::DEFAULT),
        InstanceMethod::Watershed(Watershed { h: 0.5, smoothing: 0.0, seed: None }),
        InstanceMethod::Watershed(Watershed { seed: Some(0.8), ..Watershed::DEFAULT }),
    ] {
        for connectivity in [Connectivity::Four, Connectivity::Eight] {
            let opts = |max_tile| SegmentOptions {
                instances: Some(method),
                connectivity,
                max_tile,
                min_size: 20,
                ..Default::default()
            };
            let (single, n, tiles) = labels(&model, &view, opts(Some(4096)));
            assert_eq!(tiles, 1);
            for tile in [16, 40, 100] {
                let (tiled, m, tiles) = labels(&model, &view, opts(Some(tile)));
                assert!(tiles > 1, "tile {tile} gave one tile");
                assert_eq!((m, &tiled), (n, &single), "{method:?} {connectivity:?} tile {tile}");
            }
        }
    }
}

#[test]
fn the_models_recommendation_is_the_default_and_each_field_can_be_overridden() {
    let img = unet::synthetic::cells(200, 160, 40, (8.0, 14.0), 2);
    let view = ImageView::new(Pixels::U16(&img.pixels), 200, 160, 1, 200).unwrap();
    let plain = baseline_with(None);
    let ws = Watershed { h: 1.5, smoothing: 0.5, seed: None };
    let recommending = baseline_with(Some(PostProcessing {
        method: InstanceMethod::Watershed(ws),
        threshold: Some(0.3),
        min_size: 30,
    }));
    // A model without a recommendation keeps the old behaviour: components of the argmax.
    let (old, _, _) = labels(&plain, &view, SegmentOptions::default());
    let (explicit_old, _, _) = labels(
        &plain,
        &view,
        SegmentOptions { instances: Some(InstanceMethod::Components), threshold: None, ..Default::default() },
    );
    assert_eq!(old, explicit_old);
    // The recommending model applies its whole recipe by default ...
    let (default, n_default, _) = labels(&recommending, &view, SegmentOptions::default());
    let (spelled_out, n_spelled, _) = labels(
        &plain,
        &view,
        SegmentOptions {
            instances: Some(InstanceMethod::Watershed(ws)),
            threshold: Some(0.3),
            min_size: 30,
            ..Default::default()
        },
    );
    assert_eq!((n_default, &default), (n_spelled, &spelled_out));
    assert_ne!(default, old);
    // ... and any field the caller sets wins.
    let (overridden, _, _) = labels(
        &recommending,
        &view,
        SegmentOptions {
            instances: Some(InstanceMethod::Components),
            threshold: Some(0.5),
            min_size: 1,
            ..Default::default()
        },
    );
    assert_eq!(overridden, explicit_old);
    // Invalid watershed parameters are an error, not a silent fallback.
    let mut l = vec![0u32; view.area()];
    let err = plain
        .segment(
            &view,
            SegmentOptions {
                instances: Some(InstanceMethod::Watershed(Watershed { h: -1.0, smoothing: 0.0, seed: None })),
                ..Default::default()
            },
            SegmentOutputs { labels: Some(&mut l), ..Default::default() },
        )
        .unwrap_err();
    assert_eq!(err.status(), unet::UnetStatus::InvalidArgument);
}

#[test]
fn tuning_finds_that_the_watershed_separates_touching_cells() {
    use unet::{
        dataset::Sample,
        evaluate::{TuneGrid, ValidationSet, tune},
        imageio::{OwnedImage, PixelBuffer},
    };
    let sample = |seed| {
        let img = unet::synthetic::cells(160, 120, 30, (8.0, 13.0), seed);
        Sample {
            name: format!("synthetic {seed}"),
            image: OwnedImage { width: 160, height: 120, channels: 1, pixels: PixelBuffer::U16(img.pixels) },
            labels: img.labels,
            ignore: None,
            kind: None,
        }
    };
    let sets = vec![
        ValidationSet { name: "a".into(), samples: vec![sample(1), sample(2)] },
        ValidationSet { name: "b".into(), samples: vec![sample(3)] },
    ];
    let grid = TuneGrid {
        thresholds: vec![0.5],
        methods: vec![InstanceMethod::Components, InstanceMethod::Watershed(Watershed::DEFAULT)],
        min_sizes: vec![0, 10],
        test_time_augmentation: false,
        objective: unet::evaluate::TuneObjective::Seg,
    };
    let model = common::baseline_model();
    let mut calls = 0;
    let tuning = tune(&model, &sets, &grid, Connectivity::Four, |_, _| calls += 1).unwrap();
    assert_eq!(calls, 3);
    assert_eq!(tuning.candidates.len(), 4);
    let best = tuning.best();
    assert!(matches!(best.postprocessing.method, InstanceMethod::Watershed(_)), "{:?}", best.postprocessing);
    let cc = tuning.best_of_kind(false).unwrap();
    assert!(best.mean_seg > cc.mean_seg + 0.05, "{} vs {}", best.mean_seg, cc.mean_seg);
    // Each set's score is what evaluating that set alone with the chosen recipe gives.
    let pp = best.postprocessing;
    for (set, scores) in sets.iter().zip(&best.scores) {
        let direct = unet::evaluate::evaluate_with(&model, &set.samples, &|| SegmentOptions {
            instances: Some(pp.method),
            threshold: pp.threshold,
            min_size: pp.min_size.max(1),
            ..Default::default()
        })
        .unwrap();
        assert!(
            (direct.seg - scores.seg).abs() < 1e-9 && (direct.iou - scores.iou).abs() < 1e-9,
            "{direct:?} vs {scores:?}"
        );
    }
    // Tuned for the Rand F-score instead: the ranking follows 1 - the mean Rand error over the sets.
    let by_rand = TuneGrid { objective: unet::evaluate::TuneObjective::RandFScore, ..grid };
    let tuning = tune(&model, &sets, &by_rand, Connectivity::Four, |_, _| {}).unwrap();
    let rand_score = |c: &unet::evaluate::Candidate| {
        1.0 - c.scores.iter().map(|s| s.rand_error).sum::<f64>() / c.scores.len() as f64
    };
    for c in &tuning.candidates {
        assert!((c.objective - rand_score(c)).abs() < 1e-12);
        assert!(tuning.best().objective >= c.objective - unet::evaluate::NEAR_TIE_SEG, "{c:?}");
    }
    let spread = tuning.candidates.iter().map(rand_score).fold(f64::NEG_INFINITY, f64::max)
        - tuning.candidates.iter().map(rand_score).fold(f64::INFINITY, f64::min);
    assert!(spread > 1e-3, "the candidates' Rand scores must differ for the ranking to mean anything");
}

/// `instances_from_probabilities` on the probabilities of a segmentation gives that segmentation's mask and labels,
/// for each post-processing: the same rule (thresholds, methods, connectivity, minimum size, the model's
/// recommendation) without the network; strided input too. Bad input is refused with a clear error.
#[test]
fn labelling_probabilities_again_equals_the_segmentation() {
    use unet::{UnetStatus, instances_from_probabilities};
    let img = unet::synthetic::cells(190, 150, 40, (8.0, 14.0), 21);
    let view = ImageView::new(Pixels::U16(&img.pixels), 190, 150, 1, 190).unwrap();
    let recommended = PostProcessing {
        method: InstanceMethod::Watershed(Watershed { h: 1.0, smoothing: 1.0, seed: Some(0.9) }),
        threshold: Some(0.4),
        min_size: 12,
    };
    let model = baseline_with(Some(recommended));
    let cases = [
        SegmentOptions::default(), // the model's recommendation
        SegmentOptions { instances: Some(InstanceMethod::Components), min_size: 30, ..Default::default() },
        SegmentOptions {
            instances: Some(InstanceMethod::Watershed(Watershed::DEFAULT)),
            threshold: Some(0.7),
            connectivity: Connectivity::Eight,
            ..Default::default()
        },
    ];
    let area = view.area();
    for (case, options) in cases.into_iter().enumerate() {
        let again = SegmentOptions {
            threshold: options.threshold,
            min_size: options.min_size,
            instances: options.instances,
            connectivity: options.connectivity,
            ..Default::default()
        };
        let (mut p, mut m, mut l) = (vec![0f32; area], vec![0u8; area], vec![0u32; area]);
        let r = model
            .segment(
                &view,
                options,
                SegmentOutputs { probabilities: Some(&mut p), mask: Some(&mut m), labels: Some(&mut l) },
            )
            .unwrap();
        assert!(r.label_count > 10, "case {case}: {} instances", r.label_count);
        // Strided: each row followed by 7 values that are not probabilities.
        let mut strided = vec![9.0f32; 150 * 197];
        for y in 0..150 {
            strided[y * 197..y * 197 + 190].copy_from_slice(&p[y * 190..(y + 1) * 190]);
        }
        let pv = ImageView::new(Pixels::F32(&strided), 190, 150, 1, 197).unwrap();
        let (mut m2, mut l2) = (vec![7u8; area], vec![7u32; area]);
        let n =
            instances_from_probabilities(&pv, model.metadata().postprocessing, &again, Some(&mut m2), Some(&mut l2))
                .unwrap();
        assert_eq!(n, r.label_count, "case {case}");
        assert!(m2 == m, "case {case}: mask");
        assert!(l2 == l, "case {case}: labels");
    }
    // Without a threshold: P > 1 - P, the two-class argmax.
    let p = [0.2f32, 0.5, 0.51, 0.9];
    let mut m = [0u8; 4];
    let pv = ImageView::new(Pixels::F32(&p), 4, 1, 1, 4).unwrap();
    instances_from_probabilities(&pv, None, &SegmentOptions::default(), Some(&mut m), None).unwrap();
    assert_eq!(m, [0, 0, 1, 1]);
    let err = |p: &[f32], w: usize, c: usize| {
        let mut l = vec![0u32; p.len()];
        let v = ImageView::new(Pixels::F32(p), w, p.len() / w / c, c, w * c).unwrap();
        instances_from_probabilities(&v, None, &SegmentOptions::default(), None, Some(&mut l)).unwrap_err()
    };
    assert!(err(&[0.5, 1.5], 2, 1).message().contains("not in [0, 1]"));
    assert_eq!(err(&[0.5, f32::NAN], 2, 1).status(), UnetStatus::NonFinitePixel);
    assert_eq!(err(&[0.5, 0.5], 1, 2).status(), UnetStatus::ChannelMismatch);
    let u8s = [1u8, 2];
    let v = ImageView::new(Pixels::U8(&u8s), 2, 1, 1, 2).unwrap();
    let e = instances_from_probabilities(&v, None, &SegmentOptions::default(), Some(&mut [0u8; 2]), None).unwrap_err();
    assert_eq!(e.status(), UnetStatus::UnsupportedDtype);
    let mut short = [0u32; 1];
    let v = ImageView::new(Pixels::F32(&p), 4, 1, 1, 4).unwrap();
    let e = instances_from_probabilities(&v, None, &SegmentOptions::default(), None, Some(&mut short)).unwrap_err();
    assert_eq!(e.status(), UnetStatus::BufferTooSmall);
}
