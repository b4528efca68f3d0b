//! The shipped default model (`onnx/default.onnx`, embedded in the library) does its job: on synthetic fluorescence
//! nuclei it never saw and on the real demo image (DSB 2018, fetched by `make test`/`make demo`, never trained on)
//! it reaches the scores its model card states, less a small margin. A broken or untrained model cannot: an
//! all-background model scores SEG 0, an all-foreground one about 0.
//!
//! Also: its metadata recommends a post-processing and names no machine's absolute paths.

mod common;

use unet::{ImageView, Model, Pixels, SegmentOptions, SegmentOutputs, metrics};

/// Stated in onnx/MODEL_CARD.md (measured when the model was made), minus a margin for run-to-run noise.
const SYNTHETIC_NUCLEI_SEG_AT_LEAST: f64 = 0.28;
const DEMO_IMAGE_SEG_AT_LEAST: f64 = 0.65;

fn default_model() -> Model {
    Model::embedded_default(&common::options()).expect("this build embeds onnx/default.onnx")
}

fn seg_and_iou(model: &Model, view: &ImageView, truth: &[u32]) -> (f64, f64) {
    let mut labels = vec![0u32; view.area()];
    model
        .segment(view, SegmentOptions::default(), SegmentOutputs { labels: Some(&mut labels), ..Default::default() })
        .unwrap();
    (metrics::seg(truth, &labels).unwrap(), metrics::foreground_iou(truth, &labels))
}

#[test]
fn metadata_recommends_post_processing_and_names_no_absolute_path() {
    let model = default_model();
    let meta = model.metadata();
    assert!(meta.postprocessing.is_some(), "the default model should carry its tuned post-processing");
    for forbidden in ["/root/", "/work/", "/home/", "/tmp/"] {
        assert!(!meta.provenance.contains(forbidden), "provenance names a machine path: {}", meta.provenance);
    }
}

#[test]
fn segments_synthetic_nuclei_it_never_saw() {
    let model = default_model();
    let (mut seg_sum, mut objects) = (0.0, 0usize);
    for seed in 9001..9005 {
        let img = unet::synthetic::nuclei(384, 384, seed);
        let view = ImageView::new(Pixels::U16(&img.pixels), 384, 384, 1, 384).unwrap();
        let mut labels = vec![0u32; view.area()];
        model
            .segment(
                &view,
                SegmentOptions::default(),
                SegmentOutputs { labels: Some(&mut labels), ..Default::default() },
            )
            .unwrap();
        let (sum, n) = metrics::seg_sum(&img.labels, &labels);
        seg_sum += sum;
        objects += n;
    }
    let seg = seg_sum / objects as f64;
    eprintln!("default model on 4 unseen synthetic nuclei images ({objects} nuclei): SEG {seg:.4}");
    assert!(seg >= SYNTHETIC_NUCLEI_SEG_AT_LEAST, "SEG {seg:.4} < {SYNTHETIC_NUCLEI_SEG_AT_LEAST}");
}

#[test]
fn segments_the_real_demo_image() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("UNET_DEMO_IMAGE").map_or_else(|| root.join(".demo-image"), Into::into);
    let image_path = dir.join("images/dsb2018-nuclei.tif");
    assert!(
        image_path.exists(),
        "{} is missing: run scripts/fetch-demo-image.sh (make test does) or set UNET_DEMO_IMAGE",
        image_path.display()
    );
    let image = unet::imageio::read_image(&image_path).unwrap();
    let (truth, _, _) = unet::imageio::read_labels(&dir.join("labels/dsb2018-nuclei.tif")).unwrap();
    let (seg, iou) = seg_and_iou(&default_model(), &image.view().unwrap(), &truth);
    eprintln!("default model on the DSB 2018 demo image: SEG {seg:.4}, IoU {iou:.4}");
    assert!(seg >= DEMO_IMAGE_SEG_AT_LEAST, "SEG {seg:.4} < {DEMO_IMAGE_SEG_AT_LEAST}");
}
