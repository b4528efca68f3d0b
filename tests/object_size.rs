//! The object-size and channel options: an image at half the magnification, told so, gives the instances of the
//! full-size image; resampling keeps tiled = untiled; a chosen channel is segmented as it is.
//! Data: the committed CC0 subset of DSB 2018 (tests/data/dsb2018-eval) and the embedded default model.

use std::path::PathBuf;

use unet::{
    ImageView, Model, ModelOptions, ObjectSize, Pixels, Provider, SegmentOptions, SegmentOutputs, SegmentReport,
    UnetStatus,
    imageio::{OwnedImage, read_image},
};

fn model() -> Model {
    Model::embedded_default(&ModelOptions { provider: Provider::Cpu, ..Default::default() }).expect("embedded model")
}

fn eval_image(id: &str) -> OwnedImage {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/dsb2018-eval/images").join(format!("{id}.png"));
    read_image(&path).expect("committed evaluation image")
}

/// The image's first channel (DSB fluorescence PNGs are gray stored as RGB(A)) as f32.
fn gray_f32(img: &OwnedImage) -> Vec<f32> {
    let view = img.view().unwrap();
    (0..img.height).flat_map(|y| (0..img.width).map(move |x| (y, x))).map(|(y, x)| view.value(y, x, 0) as f32).collect()
}

fn labels_of(model: &Model, view: &ImageView, options: SegmentOptions) -> (Vec<u32>, Vec<f32>, SegmentReport) {
    let mut labels = vec![0u32; view.area()];
    let mut probabilities = vec![0f32; view.area()];
    let report = model
        .segment(
            view,
            options,
            SegmentOutputs { probabilities: Some(&mut probabilities), mask: None, labels: Some(&mut labels) },
        )
        .expect("segment");
    (labels, probabilities, report)
}

#[test]
fn half_the_magnification_with_half_the_object_size_gives_the_full_size_instances() {
    let model = model();
    let model_size = model.metadata().object_size_or_default();
    // Fluorescence images of the committed subset with nuclei large enough to survive a 2x shrink.
    for id in [
        "05a8f65ebd0b30d3b210f30b4d640c847c2e710d0d135e0aeeaccbe1988e3b6e",
        "4d2cff9a0c8df3a7ef6100fda6f66e865a7670af6a18564767d8019b9ed2fd7b",
    ] {
        let img = eval_image(id);
        let (w, h) = (img.width, img.height);
        let full_pixels = gray_f32(&img);
        let full = ImageView::new(Pixels::F32(&full_pixels), w, h, 1, w).unwrap();
        let (full_labels, _, full_report) = labels_of(&model, &full, SegmentOptions::default());
        assert_eq!(full_report.scale, 1.0, "the image as it is by default");
        assert_eq!(full_report.resampled_for, None);
        let (sw, sh) = (w / 2, h / 2);
        let small_pixels = unet::resample::resample(&full_pixels, (w, h, 1), (sw, sh));
        let small = ImageView::new(Pixels::F32(&small_pixels), sw, sh, 1, sw).unwrap();
        let score = |small_labels: &[u32]| {
            let mut up = vec![0u32; w * h];
            unet::resample::resample_nearest(small_labels, (sw, sh), (w, h), &mut up);
            unet::metrics::detections(&full_labels, &up, &[0.5])[0].ap()
        };
        let told = SegmentOptions { object_size: ObjectSize::Pixels(model_size / 2.0), ..Default::default() };
        let (told_labels, told_probabilities, report) = labels_of(&model, &small, told);
        assert!((report.scale - 2.0).abs() < 1e-9, "{report:?}");
        assert_eq!(report.resampled_for, Some(unet::segment::Resampled::ObjectSize));
        assert!(told_probabilities.iter().all(|p| (0.0..=1.0).contains(p)));
        let (untold_labels, _, _) = labels_of(&model, &small, SegmentOptions::default());
        let (with, without) = (score(&told_labels), score(&untold_labels));
        eprintln!("{id}: AP@0.5 against the full-size instances {with:.3} with the object size, {without:.3} without");
        assert!(with >= 0.9, "{id}: AP@0.5 {with:.3} < 0.9 (without the option {without:.3})");
        // Labels are 1..=n without gaps after mapping back.
        let n = *told_labels.iter().max().unwrap();
        let distinct: std::collections::HashSet<u32> = told_labels.iter().copied().filter(|&l| l != 0).collect();
        assert_eq!(distinct.len() as u32, n);
        assert_eq!(n, report.label_count);
    }
}

#[test]
fn resampled_segmentation_is_seamless_and_auto_measures_the_objects() {
    let model = model();
    let img = eval_image("0ea221716cf13710214dcd331a61cea48308c3940df1d28cfc7fd817c83714e1");
    let pixels = gray_f32(&img);
    let view = ImageView::new(Pixels::F32(&pixels), img.width, img.height, 1, img.width).unwrap();
    for object_size in [ObjectSize::Pixels(13.0), ObjectSize::Pixels(45.0), ObjectSize::Auto] {
        let whole =
            labels_of(&model, &view, SegmentOptions { object_size, max_tile: Some(2048), ..Default::default() });
        let tiled = labels_of(&model, &view, SegmentOptions { object_size, max_tile: Some(100), ..Default::default() });
        assert!(tiled.2.tiles > whole.2.tiles, "{object_size:?}: {} vs {} tiles", tiled.2.tiles, whole.2.tiles);
        assert_eq!(tiled.0, whole.0, "{object_size:?}: tiled labels equal untiled");
        let diff = tiled.1.iter().zip(&whole.1).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-4, "{object_size:?}: probabilities differ by {diff}");
    }
    // Auto: the measured median diameter is reported; the instances are those of the chosen scale.
    let (labels, _, report) =
        labels_of(&model, &view, SegmentOptions { object_size: ObjectSize::Auto, ..Default::default() });
    let measured = report.measured_object_size.expect("auto measures");
    let as_is = labels_of(&model, &view, SegmentOptions::default());
    let expected = unet::object_size::median_diameter(&as_is.0).unwrap();
    assert!((measured - expected).abs() < 1e-3, "{measured} vs {expected}");
    let expected_scale = unet::object_size::auto_scale(model.metadata().object_size_or_default(), Some(measured));
    assert_eq!(report.scale, expected_scale.unwrap_or(1.0));
    if expected_scale.is_none() {
        assert_eq!(labels, as_is.0, "within the tolerance auto keeps the first pass");
    }
    // Upscaling an image of tiny objects, with a given minimum size in image pixels, still gives labels.
    let (small_labels, _, r) = labels_of(
        &model,
        &view,
        SegmentOptions { object_size: ObjectSize::Pixels(10.0), min_size: 4, ..Default::default() },
    );
    assert!(r.scale > 1.0 && r.label_count > 0 && small_labels.iter().any(|&l| l != 0));
}

#[test]
fn object_sizes_far_from_the_model_are_refused() {
    let model = model();
    let pixels = vec![0u8; 64 * 64];
    let view = ImageView::new(Pixels::U8(&pixels), 64, 64, 1, 64).unwrap();
    let mut labels = vec![0u32; 64 * 64];
    for bad in [0.5f32, 1.0, 1e6, f32::NAN, -3.0] {
        let e = model
            .segment(
                &view,
                SegmentOptions { object_size: ObjectSize::Pixels(bad), ..Default::default() },
                SegmentOutputs { labels: Some(&mut labels), ..Default::default() },
            )
            .unwrap_err();
        assert_eq!(e.status(), UnetStatus::InvalidArgument, "{bad}: {e}");
    }
}

#[test]
fn a_chosen_channel_is_segmented_as_that_gray_image() {
    let model = model();
    let img = eval_image("05a8f65ebd0b30d3b210f30b4d640c847c2e710d0d135e0aeeaccbe1988e3b6e");
    let (w, h) = (img.width, img.height);
    let gray: Vec<u16> = gray_f32(&img).iter().map(|&v| v as u16 * 200).collect();
    // Channel 0: a bright, unrelated gradient; channel 1: the nuclei; channel 2: noise.
    let three: Vec<u16> =
        gray.iter().enumerate().flat_map(|(i, &v)| [(i % w) as u16 * 100, v, (i * 7919 % 4001) as u16]).collect();
    let gray_view = ImageView::new(Pixels::U16(&gray), w, h, 1, w).unwrap();
    let three_view = ImageView::new(Pixels::U16(&three), w, h, 3, 3 * w).unwrap();
    let (alone, _, _) = labels_of(&model, &gray_view, SegmentOptions::default());
    let (chosen, _, _) = labels_of(&model, &three_view, SegmentOptions { channel: Some(1), ..Default::default() });
    assert!(alone.iter().any(|&l| l != 0));
    assert_eq!(chosen, alone, "channel 1 of three is the gray image");
    let mut labels = vec![0u32; w * h];
    let e = model
        .segment(
            &three_view,
            SegmentOptions { channel: Some(3), ..Default::default() },
            SegmentOutputs { labels: Some(&mut labels), ..Default::default() },
        )
        .unwrap_err();
    assert_eq!(e.status(), UnetStatus::ChannelMismatch, "{e}");
    // Two channels and no choice: refused, naming the option.
    let two: Vec<u16> = gray.iter().flat_map(|&v| [v, v]).collect();
    let two_view = ImageView::new(Pixels::U16(&two), w, h, 2, 2 * w).unwrap();
    let e = model
        .segment(
            &two_view,
            SegmentOptions::default(),
            SegmentOutputs { labels: Some(&mut labels), ..Default::default() },
        )
        .unwrap_err();
    assert!(e.status() == UnetStatus::ChannelMismatch && e.message().contains("--channel"), "{e}");
}
