//! The trainer's network and loss: burn forward against ONNX Runtime on the exported file, and the weighted loss's
//! gradient against finite differences.
#![cfg(feature = "train")]

mod common;

use burn::{
    backend::{Autodiff, Flex},
    tensor::{Int, Tensor, TensorData, activation::softmax},
};
use common::Rng;
use ndarray::Array4;
use unet::{
    Architecture, ModelMetadata, UNetWeights,
    train::{loss::weighted_cross_entropy, model::UNet},
};

type B = Flex;

#[test]
fn burn_forward_equals_onnx_runtime_on_the_export() {
    let device = Default::default();
    for (base_width, seed) in [(4, 1), (8, 2)] {
        let arch = Architecture { in_channels: 1, classes: 2, base_width, depth: 4 };
        let weights = UNetWeights::he_normal(arch, seed);
        let net = UNet::<B>::from_weights(&weights, 0.5, &device);
        assert_eq!(net.to_weights(), weights, "weights survive the round trip through burn");
        let model =
            common::load(&unet::onnx::encode_unet(&net.to_weights(), &ModelMetadata::new(arch, "test")).unwrap());
        let g = arch.geometry();
        for size in [g.min_input, g.min_input + 2 * g.size_step] {
            let mut rng = Rng(seed * 31 + size as u64);
            let input: Vec<f32> = (0..size * size).map(|_| rng.unit() as f32 * 2.0 - 0.5).collect();
            let x = Tensor::<B, 4>::from_data(TensorData::new(input.clone(), [1, 1, size, size]), &device);
            let burn_probs = softmax(net.forward(x), 1).into_data().to_vec::<f32>().unwrap();
            let arr = Array4::from_shape_vec((1, 1, size, size), input).unwrap();
            let diff = model
                .run(arr.view(), |p| {
                    assert_eq!(p.len(), burn_probs.len());
                    Ok(p.iter().zip(&burn_probs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max))
                })
                .unwrap();
            assert!(diff <= 1e-4, "base {base_width}, input {size}: max |burn - ORT| = {diff:e}");
        }
    }
}

#[test]
fn weighted_loss_gradient_matches_finite_differences() {
    type AD = Autodiff<Flex>;
    let device = Default::default();
    let arch = Architecture { in_channels: 1, classes: 2, base_width: 2, depth: 1 };
    let g = arch.geometry();
    let size = g.min_input + g.size_step;
    let out = size - 2 * g.halo;
    let mut rng = Rng(77);
    let input: Vec<f32> = (0..size * size).map(|_| rng.unit() as f32).collect();
    let target: Vec<i32> = (0..out * out).map(|_| (rng.next() % 2) as i32).collect();
    let wmap: Vec<f32> = (0..out * out).map(|_| rng.unit() as f32 * 3.0).collect();
    // Dropout 0: the loss must be a deterministic function of the weights.
    let loss_of = |weights: &UNetWeights, name: &str| -> (f64, Option<Vec<f32>>) {
        let net = UNet::<AD>::from_weights(weights, 0.0, &device);
        let x = Tensor::<AD, 4>::from_data(TensorData::new(input.clone(), [1, 1, size, size]), &device);
        let t = Tensor::<AD, 3, Int>::from_data(TensorData::new(target.clone(), [1, out, out]), &device);
        let w = Tensor::<AD, 3>::from_data(TensorData::new(wmap.clone(), [1, out, out]), &device);
        let loss = weighted_cross_entropy(net.forward(x), t, w);
        let value = loss.clone().into_data().convert::<f64>().to_vec::<f64>().unwrap()[0];
        let grads = loss.backward();
        (value, net.to_weights_grad(name, &grads))
    };
    let weights = UNetWeights::he_normal(arch, 5);
    let loss_at = |name: &str, idx: usize, k: usize, delta: f32| {
        let mut w = weights.clone();
        w.tensors[idx].data[k] += delta;
        loss_of(&w, name).0
    };
    let (mut checked, mut at_kinks) = (0, 0);
    for name in
        ["head.weight", "head.bias", "dec0.up.weight", "dec0.conv1.weight", "enc1.conv1.weight", "enc0.conv1.weight"]
    {
        let grad = loss_of(&weights, name).1.expect("a gradient");
        let idx = weights.tensors.iter().position(|t| t.name == name).unwrap();
        let n = grad.len();
        let mut ks = vec![0, n / 4, n / 2, 3 * n / 4, n - 1];
        ks.dedup();
        for k in ks {
            let centre = loss_at(name, idx, k, 0.0);
            // ReLU and max-pool make the loss piecewise smooth: where forward and backward differences disagree, a
            // kink lies within the step and the derivative is undefined there; try a smaller step, else skip.
            let smooth = [1e-2f32, 3e-3, 1e-3].iter().find_map(|&eps| {
                let forward = (loss_at(name, idx, k, eps) - centre) / eps as f64;
                let backward = (centre - loss_at(name, idx, k, -eps)) / eps as f64;
                // f32 rounding of a loss near 1 is ~6e-8, so difference quotients carry ~6e-8 / eps of noise.
                let noise = 2.0 * 6e-8 / eps as f64;
                ((forward - backward).abs() <= 5e-3 * forward.abs().max(backward.abs()) + noise)
                    .then_some((forward + backward) / 2.0)
            });
            let Some(numeric) = smooth else {
                at_kinks += 1;
                continue;
            };
            let tol = 1e-2 * numeric.abs().max(grad[k].abs() as f64) + 1e-4;
            assert!(
                (numeric - grad[k] as f64).abs() <= tol,
                "{name}[{k}]: autodiff {} vs finite difference {numeric}",
                grad[k]
            );
            checked += 1;
        }
    }
    assert!(checked >= 20 && at_kinks * 4 <= checked, "{checked} parameters checked, {at_kinks} at kinks");
}

mod training {
    use super::common;
    use unet::{
        Architecture, Model,
        augment::Augmentation,
        dataset::{Sample, Split},
        evaluate::evaluate,
        imageio::{OwnedImage, PixelBuffer},
        train::{
            TrainBackend,
            trainer::{OptimizerKind, RunDir, Schedule, TrainConfig, train},
        },
        weight_map::WeightMapOptions,
    };

    fn synthetic_sample(seed: u64, size: usize) -> Sample {
        let s = unet::synthetic::cells(size, size, (size * size / 1300) as u32, (11.0, 17.0), seed);
        Sample {
            name: format!("synthetic-{seed}"),
            image: OwnedImage { pixels: PixelBuffer::U16(s.pixels), width: size, height: size, channels: 1 },
            labels: s.labels,
            ignore: None,
            kind: None,
        }
    }

    /// Pairs of ground-truth cells that touch (4-neighbours), and how many of them the model gives two distinct
    /// instances (each cell's most frequent predicted label, both non-zero and different).
    fn separated_touching_pairs(model: &Model, sample: &Sample) -> (usize, usize) {
        use std::collections::{BTreeSet, HashMap};
        let (w, h) = (sample.width(), sample.height());
        let mut labels = vec![0u32; w * h];
        model
            .segment(
                &sample.image.view().unwrap(),
                unet::SegmentOptions { min_size: 10, ..Default::default() },
                unet::SegmentOutputs { labels: Some(&mut labels), ..Default::default() },
            )
            .unwrap();
        let gt = &sample.labels;
        let mut touching = BTreeSet::new();
        for y in 0..h {
            for x in 0..w {
                let a = gt[y * w + x];
                for (nx, ny) in [(x + 1, y), (x, y + 1)] {
                    if nx < w && ny < h {
                        let b = gt[ny * w + nx];
                        if a != 0 && b != 0 && a != b {
                            touching.insert((a.min(b), a.max(b)));
                        }
                    }
                }
            }
        }
        let mut votes: HashMap<u32, HashMap<u32, usize>> = HashMap::new();
        for (g, p) in gt.iter().zip(&labels) {
            if *g != 0 {
                *votes.entry(*g).or_default().entry(*p).or_default() += 1;
            }
        }
        let majority = |g: u32| votes[&g].iter().max_by_key(|(_, n)| **n).map(|(p, _)| *p).unwrap();
        let separated = touching.iter().filter(|(a, b)| {
            let (pa, pb) = (majority(*a), majority(*b));
            pa != 0 && pb != 0 && pa != pb
        });
        (touching.len(), separated.count())
    }

    fn config(epochs: usize, steps: usize) -> TrainConfig {
        let arch = Architecture { in_channels: 1, classes: 2, base_width: 16, depth: 3 };
        let g = arch.geometry();
        TrainConfig {
            arch,
            tile: g.min_input + 3 * g.size_step,
            batch: 2,
            epochs,
            steps_per_epoch: steps,
            learning_rate: 3e-3,
            optimizer: OptimizerKind::Adam,
            schedule: Schedule::Cosine,
            dropout: 0.0,
            seed: 7,
            // A 1-pixel separation line: the 2-pixel default would cost IoU against full-size ground-truth cells.
            weight_map: WeightMapOptions { border_width: 1, ..WeightMapOptions::default() },
            augmentation: Augmentation { elastic_std: 3.0, ..Augmentation::default() },
            min_size: 10,
            data_description: "synthetic touching cells".into(),
            ort_library: Some(common::ort_lib()),
            init: None,
            init_source: None,
            stop_after: None,
            progress: false,
            val_sets: Vec::new(),
            train_groups: Vec::new(),
        }
    }

    fn run_dir(name: &str) -> RunDir {
        let dir = std::env::temp_dir().join(format!("unet-train-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        RunDir(dir)
    }

    /// A small U-Net learns synthetic touching cells: the loss falls, the foreground IoU reaches 0.9 and touching
    /// cells come out as separate instances (SEG, which a merge of two cells ruins, reaches 0.6).
    #[test]
    fn a_small_unet_learns_touching_cells() {
        let split =
            Split { train: (0..8).map(|s| synthetic_sample(s, 128)).collect(), val: vec![synthetic_sample(99, 128)] };
        let run = run_dir("learn");
        let device = Default::default();
        let summary = train::<TrainBackend>(&config(10, 80), &split, &run, false, &device).unwrap();
        let first = summary.records.first().unwrap().train_loss;
        let last = summary.records.last().unwrap().train_loss;
        assert!(last < 0.6 * first, "loss {first} -> {last}");
        let model = Model::load(&summary.onnx, &common::options()).unwrap();
        assert!(model.metadata().provenance.contains("synthetic touching cells"));
        let test = [synthetic_sample(1000, 192), synthetic_sample(1001, 192)];
        let scores = evaluate(&model, &test, 10).unwrap();
        let (mut pairs, mut separated) = (0, 0);
        for sample in &test {
            let (p, q) = separated_touching_pairs(&model, sample);
            pairs += p;
            separated += q;
        }
        eprintln!(
            "held-out synthetic images: IoU {:.3}, SEG {:.3}, {separated} of {pairs} touching pairs separated",
            scores.iou, scores.seg
        );
        assert!(scores.iou >= 0.9, "IoU {}", scores.iou);
        assert!(pairs >= 10 && separated * 10 >= pairs * 8, "{separated} of {pairs} touching pairs separated");
        assert!(scores.seg >= 0.6, "SEG {}", scores.seg);
        std::fs::remove_dir_all(&run.0).unwrap();
    }

    /// Tiny CLI dataset for the run-level tests: `n` synthetic images in the folders layout.
    fn cli_dataset(name: &str, n: u64) -> std::path::PathBuf {
        let data = std::env::temp_dir().join(format!("unet-train-{name}-data-{}", std::process::id()));
        for sub in ["images", "labels"] {
            std::fs::create_dir_all(data.join(sub)).unwrap();
        }
        for k in 0..n {
            let s = unet::synthetic::cells(96, 96, 13, (7.0, 12.0), 40 + k);
            let file = format!("{k}.tif");
            unet::imageio::write_plane(&data.join("images").join(&file), unet::imageio::Plane::U16(&s.pixels), 96, 96)
                .unwrap();
            unet::imageio::write_plane(&data.join("labels").join(&file), unet::imageio::Plane::U32(&s.labels), 96, 96)
                .unwrap();
        }
        data
    }

    /// With two datasets, every epoch scores each on its own (issue 9: never only pooled): the log names both and
    /// metrics.csv carries `seg:NAME,iou:NAME` columns, which a resumed run reads back and keeps.
    #[test]
    fn each_dataset_is_validated_on_its_own_every_epoch() {
        use std::process::Command;
        let (first, second) = (cli_dataset("perset-a", 3), cli_dataset("perset-b", 4));
        let arch = Architecture { in_channels: 1, classes: 2, base_width: 4, depth: 2 };
        let tile = (arch.geometry().min_input + 4 * arch.geometry().size_step).to_string();
        let run = run_dir("perset");
        let train = |epochs: &str, resume: bool| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_unet"));
            c.arg("train").arg(&first).arg(&second).arg("--out").arg(&run.0);
            c.args([
                "--base-width",
                "4",
                "--depth",
                "2",
                "--tile",
                &tile,
                "--steps-per-epoch",
                "1",
                "--epochs",
                epochs,
            ]);
            c.args(["--val-fraction", "0.34", "--no-tune", "--quiet"]).arg("--ort-lib").arg(common::ort_lib());
            if resume {
                c.arg("--resume");
            } else {
                c.args(["--stop-after", "1"]);
            }
            c.output().unwrap()
        };
        let out = train("2", false);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        let (a, b) = (first.file_name().unwrap().to_string_lossy(), second.file_name().unwrap().to_string_lossy());
        assert!(log.contains(&format!("{a}: AP@0.5")) && log.contains(&format!("{b}: AP@0.5")), "{log}");
        assert!(log.contains("SEG") && log.contains("best so far: epoch 1"), "{log}");
        let out = train("2", true);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let csv = std::fs::read_to_string(run.metrics_csv()).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            format!("epoch,train_loss,learning_rate,val_seg,val_iou,seconds,seg:{a},iou:{a},seg:{b},iou:{b}")
        );
        assert_eq!(lines.len(), 3, "{csv}");
        for line in &lines[1..] {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 10, "{line}");
            assert!(fields[6..].iter().all(|f| f.parse::<f64>().is_ok_and(|v| (0.0..=1.0).contains(&v))), "{line}");
        }
        for d in [&first, &second, &run.0] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    /// `--init` starts from a model's weights: a zero-step run re-exports them bit for bit; flags that contradict
    /// the model's architecture are refused naming both values; `--resume` refuses changed settings.
    #[test]
    fn fine_tuning_starts_from_the_given_model_and_resume_checks_settings() {
        use std::process::Command;
        let data = cli_dataset("init", 2);
        let arch = Architecture { in_channels: 1, classes: 2, base_width: 4, depth: 2 };
        let start = data.join("start.onnx");
        let weights = unet::UNetWeights::he_normal(arch, 17);
        unet::onnx::write_unet(&start, &weights, &unet::ModelMetadata::new(arch, "start")).unwrap();
        let tile = (arch.geometry().min_input + 4 * arch.geometry().size_step).to_string();
        let run = run_dir("init");
        let train = |extra: &[&str]| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_unet"));
            c.arg("train").arg(&data).arg("--out").arg(&run.0).arg("--init").arg(&start);
            c.args(["--tile", &tile, "--steps-per-epoch", "2", "--val-fraction", "0", "--quiet"]);
            c.arg("--ort-lib").arg(common::ort_lib()).args(extra);
            c.output().unwrap()
        };
        let out = train(&["--epochs", "0"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let (exported, meta) = unet::onnx::read_unet_file(run.model_onnx().to_str().unwrap()).unwrap();
        assert_eq!(exported, weights, "a zero-step fine-tune must give back the initial weights");
        assert!(meta.provenance.contains("from ") && meta.provenance.contains("start.onnx"), "{}", meta.provenance);

        let out = train(&["--epochs", "1", "--base-width", "8"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("--base-width 8") && err.contains("4"), "{err}");

        let _ = std::fs::remove_dir_all(&run.0);
        let out = train(&["--epochs", "2", "--lr", "0.001"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(std::fs::read_to_string(run.0.join("config.txt")).unwrap().contains("learning_rate: 0.001"));
        let (trained, _) = unet::onnx::read_unet_file(run.model_onnx().to_str().unwrap()).unwrap();
        assert_ne!(trained, weights, "two steps change the weights");
        let out = train(&["--epochs", "2", "--lr", "0.002", "--resume"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("learning_rate: 0.001") && err.contains("learning_rate: 0.002"),
            "{err}"
        );
        let out = train(&["--epochs", "2", "--lr", "0.001", "--resume"]);
        assert!(out.status.success(), "the same settings resume: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::remove_dir_all(&run.0).unwrap();
        std::fs::remove_dir_all(&data).unwrap();
    }

    /// Two 96x96 synthetic images in images/ + labels/ folders, for the process-level training tests.
    fn small_training_data(name: &str) -> std::path::PathBuf {
        let data = std::env::temp_dir().join(format!("unet-train-data-{name}-{}", std::process::id()));
        for sub in ["images", "labels"] {
            std::fs::create_dir_all(data.join(sub)).unwrap();
        }
        for k in 0..2 {
            let s = unet::synthetic::cells(96, 96, 13, (7.0, 12.0), 20 + k);
            let name = format!("{k}.tif");
            unet::imageio::write_plane(&data.join("images").join(&name), unet::imageio::Plane::U16(&s.pixels), 96, 96)
                .unwrap();
            unet::imageio::write_plane(&data.join("labels").join(&name), unet::imageio::Plane::U32(&s.labels), 96, 96)
                .unwrap();
        }
        data
    }

    /// `unet train` of a tiny U-Net for 4 epochs of 12 steps, fully determined by its seed.
    fn small_train_cmd(data: &std::path::Path, out: &std::path::Path) -> std::process::Command {
        let arch = Architecture { in_channels: 1, classes: 2, base_width: 4, depth: 2 };
        let tile = arch.geometry().min_input + 4 * arch.geometry().size_step;
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_unet"));
        c.arg("train").arg(data).arg("--out").arg(out);
        c.args(["--base-width", "4", "--depth", "2", "--tile", &tile.to_string(), "--epochs", "4"]);
        c.args(["--steps-per-epoch", "12", "--optimizer", "adam", "--lr", "0.003", "--dropout", "0.5", "--seed", "3"]);
        c.args(["--val-fraction", "0", "--quiet"]);
        c.arg("--ort-lib").arg(common::ort_lib());
        c
    }

    fn onnx_weights(p: &std::path::Path) -> Vec<(String, Vec<u8>)> {
        use prost::Message;
        let m = unet::onnx::proto::ModelProto::decode(std::fs::read(p).unwrap().as_slice()).unwrap();
        m.graph.unwrap().initializer.into_iter().map(|t| (t.name, t.raw_data)).collect()
    }

    /// `unet train` killed (SIGKILL) after its first checkpoint and resumed ends with exactly the weights of an
    /// uninterrupted run: tiles and dropout masks are drawn per step from the seed, the optimizer state is saved.
    #[test]
    fn a_killed_run_resumes_exactly() {
        let data = small_training_data("kill");
        let train_cmd = |out: &std::path::Path| small_train_cmd(&data, out);
        let (straight, killed) = (run_dir("straight"), run_dir("killed"));
        assert!(train_cmd(&straight.0).status().unwrap().success());
        let mut child = train_cmd(&killed.0).spawn().unwrap();
        let t = std::time::Instant::now();
        while killed.latest_epoch().is_none() {
            assert!(t.elapsed().as_secs() < 120, "no checkpoint within 2 minutes");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        child.wait().unwrap();
        assert!(!killed.model_onnx().exists(), "killed before the end");
        let resumed_from = killed.latest_epoch().unwrap();
        assert!(resumed_from < 4);
        let resumed = train_cmd(&killed.0).arg("--resume").output().unwrap();
        assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
        // It continues after the checkpoint, not from scratch: it says so, and runs only the epochs after it (a
        // resume that started over would print epoch 1 and, the seed being fixed, still end with equal weights).
        let said = String::from_utf8_lossy(&resumed.stderr);
        assert!(said.contains(&format!("resuming after epoch {resumed_from}")), "{said}");
        for epoch in 1..=4 {
            let ran = said.contains(&format!("epoch {epoch}/4:"));
            assert_eq!(ran, epoch > resumed_from, "epoch {epoch} after a checkpoint at {resumed_from}: {said}");
        }
        assert!(
            onnx_weights(&straight.model_onnx()) == onnx_weights(&killed.model_onnx()),
            "resumed from epoch {resumed_from}: weights differ"
        );
        let csv = std::fs::read_to_string(killed.metrics_csv()).unwrap();
        assert_eq!(csv.lines().count(), 5, "{csv}");
        // `--export-only` with nothing but the run folder takes the run's own architecture (base width 4, depth 2).
        let exported = straight.0.join("exported.onnx");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_unet"))
            .arg("train")
            .arg(&data)
            .arg("--out")
            .arg(&straight.0)
            .arg("--export-only")
            .arg("--export")
            .arg(&exported)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(onnx_weights(&exported) == onnx_weights(&straight.model_onnx()), "export-only differs from the run's");
        for r in [straight, killed] {
            std::fs::remove_dir_all(&r.0).unwrap();
        }
        std::fs::remove_dir_all(&data).unwrap();
    }

    /// SIGKILL at several moments spread over a whole run (so also while checkpoints and the final model are being
    /// written): each time, `--resume` finishes the run and ends with exactly the uninterrupted weights.
    #[test]
    fn kills_anywhere_in_a_run_lose_nothing() {
        let data = small_training_data("kills");
        let straight = run_dir("straight-kills");
        let started = std::time::Instant::now();
        assert!(small_train_cmd(&data, &straight.0).status().unwrap().success());
        let duration = started.elapsed();
        let want = onnx_weights(&straight.model_onnx());
        for (i, fraction) in [0.1, 0.3, 0.5, 0.7, 0.85, 0.95, 1.0].into_iter().enumerate() {
            let run = run_dir(&format!("kills-{i}"));
            let mut child = small_train_cmd(&data, &run.0).spawn().unwrap();
            std::thread::sleep(duration.mul_f64(fraction));
            let _ = child.kill();
            child.wait().unwrap();
            let out = small_train_cmd(&data, &run.0).arg("--resume").output().unwrap();
            assert!(out.status.success(), "kill at {fraction}: {}", String::from_utf8_lossy(&out.stderr));
            assert!(onnx_weights(&run.model_onnx()) == want, "killed at {fraction} of the run: weights differ");
            std::fs::remove_dir_all(&run.0).unwrap();
        }
        std::fs::remove_dir_all(&straight.0).unwrap();
        std::fs::remove_dir_all(&data).unwrap();
    }

    /// A disk that fills up while a checkpoint is written (emulated with a file-size limit, RLIMIT_FSIZE, so no
    /// root is needed): the run fails with an error naming the write, the previous checkpoint stays complete and
    /// `latest` keeps naming it, and resuming on a disk with room ends with the uninterrupted run's weights.
    #[test]
    fn a_full_disk_during_a_checkpoint_loses_nothing() {
        use std::os::unix::process::CommandExt;
        let data = small_training_data("full-disk");
        let (straight, run) = (run_dir("straight-disk"), run_dir("full-disk"));
        assert!(small_train_cmd(&data, &straight.0).status().unwrap().success());
        assert!(small_train_cmd(&data, &run.0).args(["--stop-after", "1"]).status().unwrap().success());
        assert_eq!(run.latest_epoch(), Some(1));
        let snapshot = |dir: &std::path::Path| {
            let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file())
                .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
                .collect();
            files.sort();
            files
        };
        let before = snapshot(&run.checkpoint(1));
        let mut full = small_train_cmd(&data, &run.0);
        full.args(["--stop-after", "2", "--resume"]);
        // SAFETY: only async-signal-safe calls (signal, setrlimit) between fork and exec.
        unsafe {
            full.pre_exec(|| {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN); // a write past the limit fails with EFBIG instead
                let limit = libc::rlimit { rlim_cur: 4096, rlim_max: 4096 };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = full.output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "a checkpoint larger than the disk's room was written? {said}");
        assert!(said.contains("File too large") || said.contains("write"), "the error names the failed write: {said}");
        assert_eq!(run.latest_epoch(), Some(1), "latest still names the complete checkpoint");
        assert_eq!(snapshot(&run.checkpoint(1)), before, "the previous checkpoint is untouched");
        assert!(small_train_cmd(&data, &run.0).arg("--resume").status().unwrap().success());
        assert!(onnx_weights(&straight.model_onnx()) == onnx_weights(&run.model_onnx()), "resumed weights differ");
        for r in [straight, run] {
            std::fs::remove_dir_all(&r.0).unwrap();
        }
        std::fs::remove_dir_all(&data).unwrap();
    }
}
