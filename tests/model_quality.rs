//! The shipped default model's quality is a test: the committed CC0 evaluation subset (`tests/data/dsb2018-eval`,
//! 16 DSB 2018 images of the project's validation part, never trained on), the demo image (fetched by `make test`)
//! and four synthetic nuclei images are segmented with the embedded default and its recommended post-processing,
//! and every figure in `onnx/default-quality.csv` (AP@0.5, AP@0.75 and SEG, per image kind, pooled, demo,
//! synthetic) must come out within a tight margin. A worse model fails it,
//! and so does a better one whose figures were not written down: the file, the card and the model move together.
//!
//! `UNET_WRITE_QUALITY=1` writes the file from the model instead (`scripts/model-card-figures.sh` does, when a new
//! model ships); `UNET_QUALITY_MODEL=PATH` scores another model against the file (to check that the previous
//! default fails it).

mod common;

use std::path::{Path, PathBuf};

use unet::{
    Model,
    dataset::{Layout, Sample, Truth, load},
    evaluate::{Scores, evaluate},
    imageio::{OwnedImage, PixelBuffer},
};

/// AP and SEG may move this much between machines (ONNX Runtime's kernels differ by CPU; a pixel or two of a
/// boundary): tight enough that a model that is worse by one point fails.
const MARGIN: f64 = 0.006;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> Model {
    match std::env::var_os("UNET_QUALITY_MODEL") {
        Some(path) => Model::load(Path::new(&path), &common::options()).unwrap(),
        None => Model::embedded_default(&common::options()).expect("this build embeds onnx/default.onnx"),
    }
}

/// (kind, scores) for each image kind of the subset, in manifest order, then "all" (every image pooled).
fn score_subset(model: &Model) -> Vec<(String, Scores)> {
    let dir = root().join("tests/data/dsb2018-eval");
    let samples = load(&dir, Layout::Folders, Truth::Gold, 0.0).unwrap().train;
    let mut kinds: Vec<String> = Vec::new();
    for s in &samples {
        let kind = s.kind.clone().expect("the subset's manifest names every image's kind");
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let of_kind =
        |k: &str| -> Vec<Sample> { samples.iter().filter(|s| s.kind.as_deref() == Some(k)).cloned().collect() };
    let mut out: Vec<(String, Scores)> =
        kinds.iter().map(|k| (k.clone(), evaluate(model, &of_kind(k), 0).unwrap())).collect();
    out.push(("all".into(), evaluate(model, &samples, 0).unwrap()));
    out.push(("demo".into(), evaluate(model, &[demo_image()], 0).unwrap()));
    let synthetic: Vec<Sample> = (9001..9005)
        .map(|seed| {
            let img = unet::synthetic::nuclei(384, 384, seed);
            Sample {
                name: format!("synthetic nuclei {seed}"),
                image: OwnedImage { pixels: PixelBuffer::U16(img.pixels), width: 384, height: 384, channels: 1 },
                labels: img.labels,
                ignore: None,
                kind: None,
            }
        })
        .collect();
    out.push(("synthetic-nuclei".into(), evaluate(model, &synthetic, 0).unwrap()));
    out
}

/// The demo image (DSB 2018, fetched by `make test` and `make demo`; never trained on, used for no choice).
fn demo_image() -> Sample {
    let dir = std::env::var_os("UNET_DEMO_IMAGE").map_or_else(|| root().join(".demo-image"), Into::into);
    let path = dir.join("images/dsb2018-nuclei.tif");
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-demo-image.sh (make test does) or set UNET_DEMO_IMAGE",
        path.display()
    );
    let image = unet::imageio::read_image(&path).unwrap();
    let (labels, _, _) = unet::imageio::read_labels(&dir.join("labels/dsb2018-nuclei.tif")).unwrap();
    Sample { name: "demo".into(), image, labels, ignore: None, kind: None }
}

const HEADER: &str = "kind,images,nuclei,instances,ap50,ap75,seg,tp50,fp50,fn50";

fn row(kind: &str, s: &Scores) -> String {
    format!(
        "{kind},{},{},{},{:.4},{:.4},{:.4},{},{},{}",
        s.images,
        s.objects,
        s.instances,
        s.ap50(),
        s.ap75(),
        s.seg,
        s.at50.true_positives,
        s.at50.false_positives,
        s.at50.false_negatives
    )
}

#[test]
fn the_shipped_default_scores_its_recorded_figures_on_the_evaluation_subset() {
    let path = root().join("onnx/default-quality.csv");
    let scores = score_subset(&model());
    for (kind, s) in &scores {
        eprintln!("{}", row(kind, s));
    }
    if std::env::var_os("UNET_WRITE_QUALITY").is_some() {
        let text: String = std::iter::once(HEADER.to_string())
            .chain(scores.iter().map(|(k, s)| row(k, s)))
            .map(|l| l + "\n")
            .collect();
        unet::fsutil::write_atomic(&path, text.as_bytes()).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(HEADER), "{}: unexpected header", path.display());
    let expected: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(expected.len(), scores.len(), "one row per image kind and one for all");
    let mut failures = Vec::new();
    for ((kind, s), e) in scores.iter().zip(&expected) {
        assert_eq!(kind, e[0], "kinds in the same order");
        assert_eq!(
            (s.images.to_string(), s.objects.to_string()),
            (e[1].to_string(), e[2].to_string()),
            "{kind}: the subset changed"
        );
        for (name, got, want) in [("AP@0.5", s.ap50(), e[4]), ("AP@0.75", s.ap75(), e[5]), ("SEG", s.seg, e[6])] {
            let want: f64 = want.parse().unwrap();
            if (got - want).abs() > MARGIN {
                failures.push(format!("{kind} {name}: {got:.4}, recorded {want:.4} (margin {MARGIN})"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "the model does not score what onnx/default-quality.csv records:\n{}",
        failures.join("\n")
    );
}
