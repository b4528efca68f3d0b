//! The training loop: tiles sampled with the paper's augmentation, the border-aware weighted loss, SGD with
//! momentum 0.99 (or Adam), a learning-rate schedule, validation (SEG and IoU through the real inference path)
//! each epoch, a CSV of metrics, atomic checkpoints and exact resumption.
//!
//! Reproducibility: every step draws its tiles and its dropout masks from a generator seeded by (seed, step), so a
//! run resumed from a checkpoint continues exactly as an uninterrupted run would.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use burn::{
    config::Config,
    module::{AutodiffModule, Module},
    optim::{AdamConfig, GradientsParams, Optimizer, SgdConfig, momentum::MomentumConfig},
    record::{DefaultRecorder, Recorder},
    tensor::{
        Int, Tensor, TensorData,
        backend::{AutodiffBackend, Backend},
    },
};
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::{
    conv::TrainConv,
    loss::weighted_cross_entropy,
    model::{UNet, UNetConfig},
};
use crate::{
    augment::{Augmentation, random_warp, warp_image, warp_nearest},
    dataset::{Sample, Split},
    error::{Error, Result, UnetStatus},
    evaluate::{Scores, evaluate},
    fsutil::write_atomic,
    geometry::Architecture,
    image::Pixels,
    instances::{InstanceMethod, PostProcessing, Watershed},
    metadata::{ModelMetadata, Normalization},
    model::{Model, ModelOptions},
    normalize::Normalizer,
    provider::Provider,
    weight_map::{ClassBalance, LabelView, WeightMapOptions, weight_map},
    weights::UNetWeights,
};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    /// SGD with momentum (paper: 0.99) and no dampening.
    Sgd {
        momentum: f64,
    },
    Adam,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// Cosine decay from the base rate to zero over the whole run.
    Cosine,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        every: usize,
        gamma: f64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub arch: Architecture,
    /// Network input tile edge (a valid size, e.g. 572).
    pub tile: usize,
    pub batch: usize,
    pub epochs: usize,
    pub steps_per_epoch: usize,
    pub learning_rate: f64,
    pub optimizer: OptimizerKind,
    pub schedule: Schedule,
    pub dropout: f64,
    pub seed: u64,
    pub weight_map: WeightMapOptions,
    pub augmentation: Augmentation,
    /// Instances smaller than this are dropped when validating.
    pub min_size: usize,
    /// What the model's metadata says about its training data.
    pub data_description: String,
    pub ort_library: Option<PathBuf>,
    /// Show a progress bar.
    pub progress: bool,
    /// Start from these weights (fine-tuning, `--init`) instead of He initialisation; optimizer state starts fresh.
    pub init: Option<UNetWeights>,
    /// Where `init` came from, for the saved configuration and the provenance.
    pub init_source: Option<String>,
    /// Stop (and export) after this many epochs of the `epochs`-long schedule; a later `--resume` can go on. Not
    /// part of the saved settings, since it does not change what each step does.
    pub stop_after: Option<usize>,
    /// The datasets inside the validation samples (name, index range), each scored on its own every epoch besides
    /// the pooled score; empty = pooled only.
    pub val_sets: Vec<(String, std::ops::Range<usize>)>,
    /// Groups of training samples (each dataset, or image kind, as an index range) drawn with probability
    /// proportional to the square root of their size, so small groups (a few brightfield images beside hundreds of
    /// fluorescence ones) are seen without being repeated to exhaustion; empty = every image equally likely.
    pub train_groups: Vec<std::ops::Range<usize>>,
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        let g = self.arch.geometry();
        if g.output_for_input(self.tile).is_none() {
            let at_least = g.output_at_least(self.tile.saturating_sub(2 * g.halo)) + 2 * g.halo;
            return Err(Error::invalid_argument(format!(
                "tile {} is not a valid input size ({}k+{}, at least {}); {at_least} is",
                self.tile, g.size_step, g.size_offset, g.min_input
            )));
        }
        if self.train_groups.iter().any(|r| r.is_empty()) {
            return Err(Error::invalid_argument("a training sample group is empty"));
        }
        if self.batch == 0
            || self.steps_per_epoch == 0
            || !(self.learning_rate.is_finite() && self.learning_rate > 0.0)
            || !(0.0..1.0).contains(&self.dropout)
        {
            return Err(Error::invalid_argument(
                "batch, steps per epoch and learning rate must be positive, dropout in [0, 1)",
            ));
        }
        self.weight_map.validate()
    }

    /// The settings that decide the training (saved as `config.txt` in the run; `--resume` must match them), one
    /// `key: value` per line. Progress display and library paths are not part of it.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let mut settings = vec![
            ("architecture", format!("{:?}", self.arch)),
            ("tile", self.tile.to_string()),
            ("batch", self.batch.to_string()),
            ("epochs", self.epochs.to_string()),
            ("steps_per_epoch", self.steps_per_epoch.to_string()),
            ("learning_rate", self.learning_rate.to_string()),
            ("optimizer", format!("{:?}", self.optimizer)),
            ("schedule", format!("{:?}", self.schedule)),
            ("dropout", self.dropout.to_string()),
            ("seed", self.seed.to_string()),
            ("weight_map", format!("{:?}", self.weight_map)),
            ("augmentation", format!("{:?}", self.augmentation)),
            ("min_size", self.min_size.to_string()),
            ("data", self.data_description.clone()),
            ("init", self.init_source.clone().unwrap_or_else(|| "he-normal".into())),
        ];
        if !self.train_groups.is_empty() {
            let sizes: Vec<String> = self.train_groups.iter().map(|r| r.len().to_string()).collect();
            settings.push(("sampling", format!("groups by sqrt(size): {}", sizes.join(" "))));
        }
        settings
    }

    fn settings_text(&self) -> String {
        self.settings().iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
    }

    fn learning_rate_at(&self, epoch: usize, step: usize) -> f64 {
        let total = (self.epochs * self.steps_per_epoch).max(1) as f64;
        let t = (epoch * self.steps_per_epoch + step) as f64;
        match self.schedule {
            Schedule::Constant => self.learning_rate,
            Schedule::Cosine => self.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * t / total).cos()),
            Schedule::Step { every, gamma } => self.learning_rate * gamma.powi((epoch / every.max(1)) as i32),
        }
    }
}

/// One epoch's line of `metrics.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub learning_rate: f64,
    /// Pooled over every validation sample.
    pub val: Option<Scores>,
    /// Per dataset (name, scores), in the order of `TrainConfig::val_sets`.
    pub val_per_set: Vec<(String, Scores)>,
    pub seconds: f64,
}

/// A training image prepared once: normalised planes, labels, ignore mask, its class weights.
struct Prepared {
    planes: Vec<Vec<f32>>,
    labels: Vec<u32>,
    ignore: Option<Vec<u8>>,
    width: usize,
    height: usize,
    class_weights: (f32, f32),
}

fn prepare(sample: &Sample, arch: &Architecture, wm: &WeightMapOptions) -> Result<Prepared> {
    let view = sample.image.view()?;
    // The colour rule segmentation applies (RGB/RGBA -> luminance for a one-channel network).
    let gray = crate::color::for_model(&view, arch.in_channels, None)
        .map_err(|e| Error::new(e.status(), format!("{}: {e}", sample.name)))?;
    let view = match &gray {
        Some(g) => g.view()?,
        None => view,
    };
    let norm = Normalizer::for_image(&view, Normalization::DEFAULT)?;
    let (w, h, c) = (view.width, view.height, view.channels);
    let value = |i: usize| -> f32 {
        match view.pixels {
            Pixels::U8(p) => p[i] as f32,
            Pixels::U16(p) => p[i] as f32,
            Pixels::U32(p) => p[i] as f32,
            Pixels::F32(p) => p[i],
        }
    };
    let planes = (0..c).map(|ch| (0..w * h).map(|i| norm.apply(ch, value(i * c + ch))).collect()).collect();
    // Class weights of the whole ground truth (the paper precomputes them per image), used for every tile.
    let class_weights = match wm.balance {
        ClassBalance::InverseFrequency => {
            let report = weight_map(&LabelView::packed_u32(&sample.labels, w, h)?, wm, None, None)?;
            report.class_weights
        }
        ClassBalance::None => (1.0, 1.0),
        ClassBalance::Explicit { background, foreground } => (background, foreground),
    };
    Ok(Prepared {
        planes,
        labels: sample.labels.clone(),
        ignore: sample.ignore.clone(),
        width: w,
        height: h,
        class_weights,
    })
}

/// The training sample of a draw: a group by sqrt(size), then an image in it; uniform without groups.
fn draw_sample(groups: &[std::ops::Range<usize>], rng: &mut impl Rng, samples: usize) -> usize {
    let weights: Vec<f64> = groups.iter().map(|r| (r.len() as f64).sqrt()).collect();
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return rng.random_range(0..samples);
    }
    let mut u = rng.random_range(0.0..total);
    for (r, w) in groups.iter().zip(&weights) {
        if u < *w && !r.is_empty() {
            return rng.random_range(r.clone());
        }
        u -= w;
    }
    let last = groups.iter().rev().find(|r| !r.is_empty()).expect("a group with samples");
    rng.random_range(last.clone())
}

/// One training tile: network input `[c, tile, tile]`, target and weights `[out, out]`.
fn sample_tile(rng: &mut StdRng, data: &[Prepared], config: &TrainConfig) -> Result<(Vec<f32>, Vec<i64>, Vec<f32>)> {
    let g = config.arch.geometry();
    let (tile, out) = (config.tile, config.tile - 2 * g.halo);
    let p = &data[draw_sample(&config.train_groups, rng, data.len())];
    let (cx, cy) = (rng.random_range(0.0..p.width as f32), rng.random_range(0.0..p.height as f32));
    let warp = random_warp(rng, &config.augmentation, tile, cx, cy);
    let mut input = Vec::with_capacity(p.planes.len() * tile * tile);
    for plane in &p.planes {
        input.extend(warp_image(plane, p.width, p.height, &warp));
    }
    let labels = warp_nearest(&p.labels, p.width, p.height, &warp);
    // The weight map of the whole warped tile, so that cells in the context count for d1 and d2.
    let wm = WeightMapOptions {
        balance: ClassBalance::Explicit { background: p.class_weights.0, foreground: p.class_weights.1 },
        ..config.weight_map
    };
    let (mut weights, mut target) = (vec![0f32; tile * tile], vec![0u8; tile * tile]);
    weight_map(&LabelView::packed_u32(&labels, tile, tile)?, &wm, Some(&mut weights), Some(&mut target))?;
    let ignore = p.ignore.as_ref().map(|m| warp_nearest(m, p.width, p.height, &warp));
    let (mut t, mut w) = (Vec::with_capacity(out * out), Vec::with_capacity(out * out));
    for y in g.halo..g.halo + out {
        for x in g.halo..g.halo + out {
            let i = y * tile + x;
            t.push(target[i] as i64);
            w.push(if ignore.as_ref().is_some_and(|m| m[i] != 0) { 0.0 } else { weights[i] });
        }
    }
    Ok((input, t, w))
}

/// One step's data: the dropout seed, the inputs `[batch, c, tile, tile]`, targets and weights `[batch, out, out]`.
struct StepBatch {
    seed: u64,
    xs: Vec<f32>,
    ts: Vec<i64>,
    ws: Vec<f32>,
}

/// The batch of step `global`: drawn from that step's own random stream, so it is the same whichever thread makes
/// it, and a resumed run sees the same data.
fn step_batch(config: &TrainConfig, data: &[Prepared], global: u64) -> Result<StepBatch> {
    let mut rng = step_rng(config.seed, global);
    let seed = rng.random();
    let (mut xs, mut ts, mut ws) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..config.batch {
        let (x, t, w) = sample_tile(&mut rng, data, config)?;
        xs.extend(x);
        ts.extend(t);
        ws.extend(w);
    }
    Ok(StepBatch { seed, xs, ts, ws })
}

/// The batches of one epoch, made ahead on other threads while the network trains on the current one: warping a
/// tile and computing its weight map take tens of milliseconds on one core, as long as a whole step on a GPU.
/// Returns the receiving end and the producer thread (it stops early when the receiver is dropped).
fn prefetch_batches(
    shared: &Arc<(TrainConfig, Vec<Prepared>)>,
    epoch: usize,
) -> (std::sync::mpsc::IntoIter<Result<StepBatch>>, std::thread::JoinHandle<()>) {
    use rayon::prelude::*;
    let ahead = rayon::current_num_threads().clamp(1, 8);
    let (tx, rx) = std::sync::mpsc::sync_channel(2 * ahead);
    let shared = Arc::clone(shared);
    let producer = std::thread::spawn(move || {
        let (config, data) = (&shared.0, &shared.1);
        let steps = config.steps_per_epoch;
        for first in (0..steps).step_by(ahead) {
            let chunk: Vec<Result<StepBatch>> = (first..(first + ahead).min(steps))
                .into_par_iter()
                .map(|step| step_batch(config, data, (epoch * steps + step) as u64))
                .collect();
            for batch in chunk {
                if tx.send(batch).is_err() {
                    return;
                }
            }
        }
    });
    (rx.into_iter(), producer)
}

fn step_rng(seed: u64, global_step: u64) -> StdRng {
    StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ global_step.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// Files of a training run folder.
pub struct RunDir(pub PathBuf);

impl RunDir {
    /// The architecture the run's `config.txt` records (`architecture: Architecture { in_channels: 1, ... }`).
    pub fn saved_architecture(&self) -> Option<Architecture> {
        let text = std::fs::read_to_string(self.0.join("config.txt")).ok()?;
        let line = text.lines().find_map(|l| l.strip_prefix("architecture: "))?;
        let field = |name: &str| -> Option<usize> {
            let rest = line.split(&format!("{name}: ")).nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        };
        Some(Architecture {
            in_channels: field("in_channels")?,
            classes: field("classes")?,
            base_width: field("base_width")?,
            depth: field("depth")?,
        })
    }

    /// The folder of the checkpoint after `epoch` (complete once `latest` names it).
    pub fn checkpoint(&self, epoch: usize) -> PathBuf {
        self.0.join(format!("checkpoints/epoch-{epoch:05}"))
    }
    fn latest(&self) -> PathBuf {
        self.0.join("checkpoints/latest")
    }
    pub fn metrics_csv(&self) -> PathBuf {
        self.0.join("metrics.csv")
    }
    pub fn model_onnx(&self) -> PathBuf {
        self.0.join("model.onnx")
    }
    /// The epoch count of the newest complete checkpoint.
    pub fn latest_epoch(&self) -> Option<usize> {
        std::fs::read_to_string(self.latest()).ok()?.trim().parse().ok()
    }
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::new(UnetStatus::Io, format!("{}: {e}", path.display()))
}

/// `metrics.csv`: one line per epoch; after the pooled columns, `seg:NAME,iou:NAME` for each dataset.
fn csv_text(records: &[EpochRecord]) -> String {
    let mut s = String::from("epoch,train_loss,learning_rate,val_seg,val_iou,seconds");
    for (name, _) in records.first().map_or(&[][..], |r| &r.val_per_set[..]) {
        let _ = write!(s, ",seg:{name},iou:{name}");
    }
    s.push('\n');
    for r in records {
        let (seg, iou) =
            r.val.map_or((String::new(), String::new()), |v| (format!("{:.6}", v.seg), format!("{:.6}", v.iou)));
        let _ = write!(s, "{},{:.6},{:.6e},{seg},{iou},{:.1}", r.epoch, r.train_loss, r.learning_rate, r.seconds);
        for (_, v) in &r.val_per_set {
            let _ = write!(s, ",{:.6},{:.6}", v.seg, v.iou);
        }
        s.push('\n');
    }
    s
}

fn parse_csv(text: &str) -> Vec<EpochRecord> {
    let mut lines = text.lines();
    let names: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .skip(6)
        .filter_map(|c| c.strip_prefix("seg:").map(str::to_string))
        .collect();
    let scores = |seg: &str, iou: &str| match (seg.parse::<f64>(), iou.parse::<f64>()) {
        (Ok(seg), Ok(iou)) => Some(Scores { seg, iou, ..Default::default() }),
        _ => None,
    };
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let val_per_set = names
                .iter()
                .enumerate()
                .filter_map(|(i, name)| Some((name.clone(), scores(f.get(6 + 2 * i)?, f.get(7 + 2 * i)?)?)))
                .collect();
            Some(EpochRecord {
                epoch: f[0].parse().ok()?,
                train_loss: f[1].parse().ok()?,
                learning_rate: f[2].parse().ok()?,
                val: scores(f.get(3)?, f.get(4)?),
                val_per_set,
                seconds: f[5].parse().ok()?,
            })
        })
        .collect()
}

/// The result of [`train`].
pub struct TrainSummary {
    pub weights: UNetWeights,
    pub records: Vec<EpochRecord>,
    pub onnx: PathBuf,
}

fn metadata(config: &TrainConfig, split: &Split, records: &[EpochRecord]) -> ModelMetadata {
    let last_val = records.iter().rev().find_map(|r| r.val);
    let total: f64 = records.iter().map(|r| r.seconds).sum();
    let opt = match config.optimizer {
        OptimizerKind::Sgd { momentum } => format!("SGD momentum {momentum}"),
        OptimizerKind::Adam => "Adam".into(),
    };
    let mut provenance = format!(
        "trained by unet train{} on {} ({} training, {} validation images); {} epochs x {} steps, batch {} of {}x{} \
         tiles, {opt}, lr {} ({:?}), dropout {}, w0 {}, sigma {}, seed {}; {:.0} s",
        config.init_source.as_ref().map_or(String::new(), |s| format!(" from {s}")),
        config.data_description,
        split.train.len(),
        split.val.len(),
        records.len(),
        config.steps_per_epoch,
        config.batch,
        config.tile,
        config.tile,
        config.learning_rate,
        config.schedule,
        config.dropout,
        config.weight_map.w0,
        config.weight_map.sigma,
        config.seed,
        total
    );
    if let Some(v) = last_val {
        let _ = write!(provenance, "; validation SEG {:.4}, IoU {:.4}", v.seg, v.iou);
    }
    let mut meta = ModelMetadata::new(config.arch, provenance);
    meta.object_size = crate::dataset::median_object_diameter(&split.train);
    meta
}

/// Trains on `split.train`, validating on `split.val` after every epoch, writing `run` (checkpoints, metrics.csv,
/// model.onnx). With `resume`, continues from the newest checkpoint in `run`.
pub fn train<B: AutodiffBackend + TrainConv>(
    config: &TrainConfig,
    split: &Split,
    run: &RunDir,
    resume: bool,
    device: &B::Device,
) -> Result<TrainSummary> {
    config.validate()?;
    match config.optimizer {
        OptimizerKind::Sgd { momentum } => {
            let optim = SgdConfig::new()
                .with_momentum(Some(MomentumConfig::new().with_momentum(momentum).with_dampening(0.0)))
                .init::<B, UNet<B>>();
            train_with(config, split, run, resume, device, optim)
        }
        OptimizerKind::Adam => train_with(config, split, run, resume, device, AdamConfig::new().init::<B, UNet<B>>()),
    }
}

fn train_with<B: AutodiffBackend + TrainConv, O: Optimizer<UNet<B>, B>>(
    config: &TrainConfig,
    split: &Split,
    run: &RunDir,
    resume: bool,
    device: &B::Device,
    mut optim: O,
) -> Result<TrainSummary> {
    if split.train.is_empty() {
        return Err(Error::invalid_argument("no training images"));
    }
    std::fs::create_dir_all(run.0.join("checkpoints")).map_err(|e| io_err(&run.0, e))?;
    check_or_save_settings(config, run, resume)?;
    let recorder = DefaultRecorder::new();
    let data: Vec<Prepared> =
        split.train.iter().map(|s| prepare(s, &config.arch, &config.weight_map)).collect::<Result<_>>()?;
    // Shared with the thread that makes the batches ahead.
    let shared = Arc::new((config.clone(), data));

    let start = initial_weights(config)?;
    let model_config = UNetConfig::from_architecture(config.arch).with_dropout(config.dropout).with_seed(config.seed);
    model_config.save(run.0.join("model-config.json")).map_err(|e| io_err(&run.0.join("model-config.json"), e))?;
    let mut model = model_config.init_with::<B>(&start, device);
    let mut records = Vec::new();
    let mut start_epoch = 0;
    if resume && let Some(epoch) = run.latest_epoch() {
        (model, optim, records) = load_checkpoint(run, epoch, model, optim, &recorder, device)?;
        start_epoch = epoch;
    }

    let g = config.arch.geometry();
    let (tile, out, c) = (config.tile, config.tile - 2 * g.halo, config.arch.in_channels);
    let ort =
        ModelOptions { provider: Provider::Cpu, threads: 0, ort_library: config.ort_library.clone(), cuda_device: 0 };
    let last_epoch = config.stop_after.map_or(config.epochs, |s| s.min(config.epochs));
    for epoch in start_epoch..last_epoch {
        let started = Instant::now();
        let bar = epoch_bar(config, epoch);
        let mut loss_sum = 0.0;
        let mut lr = config.learning_rate;
        let (mut batches, producer) = prefetch_batches(&shared, epoch);
        for (step, batch) in batches.by_ref().enumerate() {
            let StepBatch { seed, xs, ts, ws } = batch?;
            B::seed(device, seed);
            let n = config.batch;
            let x = Tensor::<B, 4>::from_data(TensorData::new(xs, [n, c, tile, tile]), device);
            let t = Tensor::<B, 3, Int>::from_data(TensorData::new(ts, [n, out, out]), device);
            let w = Tensor::<B, 3>::from_data(TensorData::new(ws, [n, out, out]), device);
            let loss = weighted_cross_entropy(model.forward(x), t, w);
            let value = loss.clone().into_data().convert::<f64>().to_vec::<f64>().unwrap()[0];
            if !value.is_finite() {
                return Err(Error::new(
                    UnetStatus::RuntimeError,
                    format!("the loss became {value} at epoch {} step {step}: lower the learning rate", epoch + 1),
                ));
            }
            loss_sum += value;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            lr = config.learning_rate_at(epoch, step);
            model = optim.step(lr, model, grads);
            bar.set_message(format!("loss {:.4}", loss_sum / (step + 1) as f64));
            bar.inc(1);
        }
        drop(batches);
        producer.join().map_err(|_| Error::new(UnetStatus::RuntimeError, "the training data thread panicked"))?;
        bar.finish_and_clear();
        let (val, val_per_set) = validate(config, split, &model.valid().to_weights(), &ort)?;
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: loss_sum / config.steps_per_epoch as f64,
            learning_rate: lr,
            val,
            val_per_set,
            seconds: started.elapsed().as_secs_f64(),
        };
        print_epoch(&record, config.epochs);
        let objective = record_objective(&record);
        records.push(record);
        save_checkpoint(run, epoch + 1, &model, &optim, &records, &recorder)?;
        keep_if_best(config, split, run, epoch + 1, objective, &model.valid().to_weights(), &records)?;
    }
    let weights = model.valid().to_weights();
    let onnx = run.model_onnx();
    crate::onnx::write_unet(&onnx, &weights, &metadata(config, split, &records))?;
    Ok(TrainSummary { weights, records, onnx })
}

/// The model, optimizer state and metrics saved after `epoch`, to resume from.
fn load_checkpoint<B: AutodiffBackend + TrainConv, O: Optimizer<UNet<B>, B>>(
    run: &RunDir,
    epoch: usize,
    model: UNet<B>,
    optim: O,
    recorder: &DefaultRecorder,
    device: &B::Device,
) -> Result<(UNet<B>, O, Vec<EpochRecord>)> {
    let dir = run.checkpoint(epoch);
    let model = model
        .load_file(dir.join("model"), recorder, device)
        .map_err(|e| io_err(&dir, format!("cannot load the model checkpoint: {e}")))?;
    let record = recorder
        .load(dir.join("optimizer"), device)
        .map_err(|e| io_err(&dir, format!("cannot load the optimizer checkpoint: {e}")))?;
    let records = parse_csv(&std::fs::read_to_string(dir.join("metrics.csv")).map_err(|e| io_err(&dir, e))?);
    eprintln!("resuming after epoch {epoch} from {}", dir.display());
    Ok((model, optim.load_record(record), records))
}

/// The weights training starts from: the --init model's (its architecture must be the configured one), else He
/// initialisation.
fn initial_weights(config: &TrainConfig) -> Result<UNetWeights> {
    match &config.init {
        Some(w) if w.arch != config.arch => Err(Error::invalid_argument(format!(
            "the initial model is a {:?} U-Net, the configuration asks for {:?}",
            w.arch, config.arch
        ))),
        Some(w) => Ok(w.clone()),
        None => Ok(UNetWeights::he_normal(config.arch, config.seed)),
    }
}

fn epoch_bar(config: &TrainConfig, epoch: usize) -> indicatif::ProgressBar {
    let bar = if config.progress {
        indicatif::ProgressBar::new(config.steps_per_epoch as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} steps {msg} ({eta})")
            .unwrap()
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{}/{}", epoch + 1, config.epochs));
    bar
}

/// Validation scores per dataset: (name, scores), in the order of `TrainConfig::val_sets`.
type PerSetScores = Vec<(String, Scores)>;

/// Validation scores of `weights` through ONNX Runtime, pooled and per dataset, with the instances users get by
/// default (the watershed with its default parameters); none without validation images.
fn validate(
    config: &TrainConfig,
    split: &Split,
    weights: &UNetWeights,
    ort: &ModelOptions,
) -> Result<(Option<Scores>, PerSetScores)> {
    if split.val.is_empty() {
        return Ok((None, Vec::new()));
    }
    let mut meta = ModelMetadata::new(config.arch, "validation");
    meta.postprocessing = Some(PostProcessing {
        method: InstanceMethod::Watershed(Watershed::DEFAULT),
        threshold: None,
        min_size: config.min_size,
    });
    let model = Model::from_bytes(&crate::onnx::encode_unet(weights, &meta)?, ort)?;
    let mut per_set = Vec::new();
    for (name, range) in &config.val_sets {
        per_set.push((name.clone(), evaluate(&model, &split.val[range.clone()], 0)?));
    }
    Ok((Some(evaluate(&model, &split.val, 0)?), per_set))
}

/// The epoch's validation objective: the mean over the validation sets (each dataset or image kind once) of the
/// mean of AP@0.5 and SEG ([`Scores::ap_seg`], the measure `unet eval --tune` ranks by); the pooled score where
/// there is one set. None without validation.
fn record_objective(record: &EpochRecord) -> Option<f64> {
    let values: Vec<f64> = if record.val_per_set.is_empty() {
        record.val.iter().map(Scores::ap_seg).collect()
    } else {
        record.val_per_set.iter().map(|(_, s)| s.ap_seg()).collect()
    };
    let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Keeps the epoch with the best validation objective as `best.onnx` (and `best.txt`: epoch and objective), so a
/// run that overfits late still yields its best network.
fn keep_if_best(
    config: &TrainConfig,
    split: &Split,
    run: &RunDir,
    epoch: usize,
    objective: Option<f64>,
    weights: &UNetWeights,
    records: &[EpochRecord],
) -> Result<()> {
    let Some(objective) = objective else { return Ok(()) };
    let path = run.0.join("best.txt");
    let best_so_far = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .unwrap_or(f64::NEG_INFINITY);
    if objective <= best_so_far {
        return Ok(());
    }
    let mut meta = metadata(config, split, records);
    let _ = write!(meta.provenance, "; epoch {epoch} kept as the best by validation mean(AP@0.5, SEG) {objective:.4}");
    crate::onnx::write_unet(&run.0.join("best.onnx"), weights, &meta)?;
    write_atomic(&path, format!("{epoch} {objective:.6}\n").as_bytes()).map_err(|e| io_err(&path, e))?;
    eprintln!(
        "    best so far: epoch {epoch}, mean(AP@0.5, SEG) {objective:.4} -> {}",
        run.0.join("best.onnx").display()
    );
    Ok(())
}

fn print_epoch(record: &EpochRecord, epochs: usize) {
    let val = record
        .val
        .map_or(String::new(), |v| format!(", validation AP@0.5 {:.4} SEG {:.4} IoU {:.4}", v.ap50(), v.seg, v.iou));
    eprintln!(
        "epoch {}/{epochs}: loss {:.4}, lr {:.2e}{val}, {:.0} s",
        record.epoch, record.train_loss, record.learning_rate, record.seconds
    );
    for (name, v) in &record.val_per_set {
        eprintln!(
            "    {name}: AP@0.5 {:.4} (TP {} FP {} FN {}) SEG {:.4} IoU {:.4} ({} images)",
            v.ap50(),
            v.at50.true_positives,
            v.at50.false_positives,
            v.at50.false_negatives,
            v.seg,
            v.iou,
            v.images
        );
    }
}

/// A fresh run saves its settings; a resumed run must have the same ones (else an error names each difference).
fn check_or_save_settings(config: &TrainConfig, run: &RunDir, resume: bool) -> Result<()> {
    let path = run.0.join("config.txt");
    let now = config.settings_text();
    match std::fs::read_to_string(&path) {
        Ok(saved) if resume && run.latest_epoch().is_some() => {
            let differences: Vec<String> = saved
                .lines()
                .zip(now.lines())
                .filter(|(a, b)| a != b)
                .map(|(a, b)| format!("run has '{a}', now '{b}'"))
                .collect();
            if !differences.is_empty() || saved.lines().count() != now.lines().count() {
                return Err(Error::invalid_argument(format!(
                    "--resume with settings that differ from the run in {}: {}",
                    run.0.display(),
                    differences.join("; ")
                )));
            }
            Ok(())
        }
        _ => write_atomic(&path, now.as_bytes()).map_err(|e| io_err(&path, e)),
    }
}

/// Writes the checkpoint into a fresh folder, renames it into place, then points `latest` at it: a crash at any
/// moment leaves the previous checkpoint intact and `latest` naming a complete one.
fn save_checkpoint<B: AutodiffBackend, O: Optimizer<UNet<B>, B>>(
    run: &RunDir,
    epoch: usize,
    model: &UNet<B>,
    optim: &O,
    records: &[EpochRecord],
    recorder: &DefaultRecorder,
) -> Result<()> {
    let dir = run.checkpoint(epoch);
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
    model.clone().save_file(tmp.join("model"), recorder).map_err(|e| io_err(&tmp, e))?;
    recorder.record(optim.to_record(), tmp.join("optimizer")).map_err(|e| io_err(&tmp, e))?;
    write_atomic(&tmp.join("metrics.csv"), csv_text(records).as_bytes()).map_err(|e| io_err(&tmp, e))?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|e| io_err(&dir, e))?;
    write_atomic(&run.latest(), format!("{epoch}\n").as_bytes()).map_err(|e| io_err(&run.latest(), e))?;
    write_atomic(&run.metrics_csv(), csv_text(records).as_bytes()).map_err(|e| io_err(&run.metrics_csv(), e))?;
    // Keep the two newest checkpoints.
    if epoch > 2 {
        let _ = std::fs::remove_dir_all(run.checkpoint(epoch - 2));
    }
    Ok(())
}

/// Exports the newest checkpoint of `run` to ONNX without training.
pub fn export_checkpoint<B: Backend>(
    run: &RunDir,
    arch: Architecture,
    output: &Path,
    device: &B::Device,
) -> Result<()> {
    let epoch = run.latest_epoch().ok_or_else(|| io_err(&run.0, "no checkpoint"))?;
    let dir = run.checkpoint(epoch);
    let model = UNet::<B>::from_weights(&UNetWeights::he_normal(arch, 0), 0.0, device)
        .load_file(dir.join("model"), &DefaultRecorder::new(), device)
        .map_err(|e| io_err(&dir, e))?;
    let records = parse_csv(&std::fs::read_to_string(dir.join("metrics.csv")).unwrap_or_default());
    let last = records.iter().rev().find_map(|r| r.val);
    // The run folder's name only: metadata never carries a machine's absolute paths.
    let provenance = format!(
        "exported from checkpoint epoch {epoch} of training run '{}'{}",
        run.0.file_name().map_or_else(|| run.0.display().to_string(), |n| n.to_string_lossy().into_owned()),
        last.map_or(String::new(), |v| format!("; validation SEG {:.4}, IoU {:.4}", v.seg, v.iou))
    );
    // The run's saved settings (data relative to the data root, initial model, recipe) travel with the weights.
    let settings = std::fs::read_to_string(run.0.join("config.txt")).unwrap_or_default();
    let settings: Vec<&str> = settings.lines().filter(|l| !l.starts_with("architecture")).collect();
    let provenance =
        if settings.is_empty() { provenance } else { format!("{provenance}; run settings: {}", settings.join("; ")) };
    crate::onnx::write_unet(output, &model.to_weights(), &ModelMetadata::new(arch, provenance))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_drawn_by_the_square_root_of_their_size() {
        let mut rng = StdRng::seed_from_u64(3);
        let groups = [0..400, 400..404, 404..504];
        let mut counts = [0usize; 3];
        let draws = 60_000;
        for _ in 0..draws {
            let i = draw_sample(&groups, &mut rng, 504);
            counts[groups.iter().position(|g| g.contains(&i)).unwrap()] += 1;
        }
        // sqrt sizes 20 : 2 : 10.
        for (count, want) in counts.iter().zip([20.0 / 32.0, 2.0 / 32.0, 10.0 / 32.0]) {
            let got = *count as f64 / draws as f64;
            assert!((got - want).abs() < 0.01, "{counts:?}");
        }
        // Without groups every image is equally likely.
        let mut seen = [false; 7];
        for _ in 0..500 {
            seen[draw_sample(&[], &mut rng, 7)] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
