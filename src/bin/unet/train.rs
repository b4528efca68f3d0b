//! `unet train`: its flags, and the run they describe (data, configuration, device, export, tuning).

use std::path::PathBuf;

use unet::{Connectivity, Model, ModelOptions, Provider};

use super::{data_name, tune_post_processing};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Dataset folders (Cell Tracking Challenge, ISBI 2012, or images/ + labels/); several are pooled.
    #[arg(required = true)]
    data: Vec<PathBuf>,
    /// Run folder: checkpoints, metrics.csv, model.onnx.
    #[arg(long, short)]
    out: PathBuf,
    /// Continue from the newest checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// Also write the final model here (e.g. onnx/default.onnx).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Only export the newest checkpoint of --out (no training).
    #[arg(long)]
    export_only: bool,
    /// Ground truth for CTC data: silver (complete, default), gold, or gold-ignore (gold, ignoring cells only silver marks).
    #[arg(long, default_value = "silver", value_parser = ["silver", "gold", "gold-ignore"])]
    truth: String,
    /// Fraction of each sequence (its last frames) held out for validation.
    #[arg(long, default_value_t = 0.2)]
    val_fraction: f64,
    /// Base width (default: the --init model's, else 64).
    #[arg(long)]
    base_width: Option<usize>,
    /// Depth (default: the --init model's, else 4).
    #[arg(long)]
    depth: Option<usize>,
    /// Fine-tune: start from the weights of this unet ONNX model ("default" = the embedded one) instead of random
    /// ones. Its architecture is used; the optimizer state (momentum, Adam moments) starts fresh.
    #[arg(long)]
    init: Option<String>,
    /// Network input tile (valid size, e.g. 572 = paper).
    #[arg(long, default_value_t = 572)]
    tile: usize,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long, default_value_t = 50)]
    epochs: usize,
    #[arg(long, default_value_t = 100)]
    steps_per_epoch: usize,
    #[arg(long, default_value = "sgd", value_parser = ["sgd", "adam"])]
    optimizer: String,
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    #[arg(long, default_value_t = 0.99)]
    momentum: f64,
    #[arg(long, default_value = "cosine", value_parser = ["constant", "cosine"])]
    schedule: String,
    #[arg(long, default_value_t = 0.5)]
    dropout: f64,
    #[arg(long, default_value_t = 10.0)]
    w0: f32,
    #[arg(long, default_value_t = 5.0)]
    sigma: f32,
    #[arg(long, default_value_t = 2)]
    border_width: usize,
    /// Tile augmentation: paper = elastic deformation, rotation, flips, gray values; realistic = the paper's plus
    /// random zoom (1/1.25..1.25), blur (sigma <= 1.5 px) or sharpening, and noise (std <= 0.05); versatile =
    /// realistic with zoom 1/1.5..1.5 and inverted contrast in 30 % of tiles; none = raw tiles
    #[arg(long, default_value = "paper", value_parser = ["paper", "realistic", "versatile", "none"])]
    augment: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 0)]
    min_size: usize,
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    #[arg(long, short)]
    quiet: bool,
    /// Draw each dataset (and each image kind a folder's manifest names) with probability proportional to the
    /// square root of its image count, instead of every image equally often.
    #[arg(long)]
    balance_groups: bool,
    /// Skip choosing the post-processing on the held-out frames at the end (it is written into the model).
    #[arg(long)]
    no_tune: bool,
    /// Stop and export after this many epochs of the --epochs schedule (--resume can continue it later).
    #[arg(long)]
    stop_after: Option<usize>,
    /// Where the network trains: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// How convolutions run on CUDA: im2col (GEMMs on tensor cores in TF32) or direct (burn's own float32 kernels,
    /// slow). `unet bench-train --device cuda` times them (and implicit-gemm, whose gradients were wrong).
    #[arg(long, default_value = "im2col", value_parser = unet::train::conv::CudaConv::parse_for_training)]
    cuda_conv: unet::train::conv::CudaConv,
}

pub fn parse_cuda_conv(s: &str) -> Result<unet::train::conv::CudaConv, String> {
    unet::train::conv::CudaConv::parse(s)
}

/// A dataset's short name in metrics.csv and the epoch log: its folder's name, without commas.
fn dataset_label(dir: &str) -> String {
    let path = std::path::Path::new(dir.trim_end_matches('/'));
    path.file_name().map_or_else(|| dir.to_string(), |n| n.to_string_lossy().into_owned()).replace(',', "_")
}

pub fn run_train(a: TrainArgs) -> unet::Result<()> {
    use unet::train::{
        TrainBackend,
        device::TrainDevice,
        trainer::{RunDir, export_checkpoint, train},
    };
    let train_device = TrainDevice::parse(&a.device)?;
    train_device.check_built()?;
    a.cuda_conv.select();
    // A missing GPU is found now, before minutes of data loading.
    #[cfg(feature = "cuda")]
    let cuda = match train_device {
        TrainDevice::Cuda(index) => Some(unet::train::device::cuda_device(index)?),
        TrainDevice::Cpu => None,
    };
    let init = a.init.as_deref().map(unet::onnx::read_unet_file).transpose()?;
    let arch = architecture(&a, init.as_ref().map(|(w, _)| w.arch))?;
    let run = RunDir(a.out.clone());
    let device = Default::default();
    if a.export_only {
        let out = a.export.unwrap_or_else(|| run.model_onnx());
        export_checkpoint::<unet::train::burn::backend::Flex>(&run, arch, &out, &device)?;
        println!("wrote {}", out.display());
        return Ok(());
    }
    let (split, val_ranges, train_groups) = load_training_data(&a)?;
    let mut config = train_config(&a, arch, &val_ranges, init.map(|(w, _)| w));
    if a.balance_groups {
        config.train_groups = train_groups;
    }
    let summary = match train_device {
        TrainDevice::Cpu => train::<TrainBackend>(&config, &split, &run, a.resume, &device)?,
        #[cfg(feature = "cuda")]
        TrainDevice::Cuda(index) => {
            eprintln!("training on cuda:{index}");
            let cuda = cuda.expect("probed above");
            train::<unet::train::device::CudaTrainBackend>(&config, &split, &run, a.resume, &cuda)?
        }
        #[cfg(not(feature = "cuda"))]
        TrainDevice::Cuda(_) => unreachable!("check_built refused CUDA in this build"),
    };
    println!("wrote {} and {}", summary.onnx.display(), run.metrics_csv().display());
    // Post-processing chosen on the held-out frames of each dataset, written into the model's metadata.
    let sets: Vec<unet::evaluate::ValidationSet> = val_ranges
        .into_iter()
        .filter(|(_, r)| !r.is_empty())
        .map(|(name, r)| unet::evaluate::ValidationSet { name, samples: split.val[r].to_vec() })
        .collect();
    if !a.no_tune && !sets.is_empty() {
        let options = ModelOptions {
            provider: Provider::Cpu,
            threads: 0,
            ort_library: config.ort_library.clone(),
            cuda_device: 0,
        };
        let model = Model::load(&summary.onnx, &options)?;
        let path = summary.onnx.display().to_string();
        tune_post_processing(&model, &path, &sets, &Default::default(), Connectivity::Four, Some(&summary.onnx))?;
    }
    if let Some(path) = a.export {
        std::fs::copy(&summary.onnx, &path)
            .map_err(|e| unet::Error::new(unet::UnetStatus::Io, format!("{}: {e}", path.display())))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The network to train: the --init model's (flags may only repeat it), a run's own when only exporting it, else
/// the flags' (the paper's 64 x depth 4 by default).
fn architecture(a: &TrainArgs, init: Option<unet::Architecture>) -> unet::Result<unet::Architecture> {
    use unet::train::trainer::RunDir;
    Ok(match init {
        Some(from) => {
            for (flag, given, has) in
                [("--base-width", a.base_width, from.base_width), ("--depth", a.depth, from.depth)]
            {
                if let Some(g) = given.filter(|&g| g != has) {
                    return Err(unet::Error::new(
                        unet::UnetStatus::InvalidArgument,
                        format!("{flag} {g} contradicts the --init model, whose value is {has}"),
                    ));
                }
            }
            from
        }
        // Exporting a run: its own architecture unless the command line says otherwise.
        None if a.export_only && a.base_width.is_none() && a.depth.is_none() => {
            RunDir(a.out.clone()).saved_architecture().ok_or_else(|| {
                unet::Error::new(
                    unet::UnetStatus::InvalidArgument,
                    format!("{} has no readable config.txt: give --base-width and --depth", a.out.display()),
                )
            })?
        }
        None => unet::Architecture {
            in_channels: 1,
            classes: 2,
            base_width: a.base_width.unwrap_or(64),
            depth: a.depth.unwrap_or(4),
        },
    })
}

/// Each dataset's name and its range among the pooled validation images.
type ValidationRanges = Vec<(String, std::ops::Range<usize>)>;
/// Each dataset's (or image kind's) range among the pooled training images.
type TrainGroups = Vec<std::ops::Range<usize>>;

/// Every dataset's training and validation images, pooled, with each dataset's range among the validation images.
fn load_training_data(a: &TrainArgs) -> unet::Result<(unet::dataset::Split, ValidationRanges, TrainGroups)> {
    use unet::dataset::{Layout, Split, Truth, load_with};
    let truth = match a.truth.as_str() {
        "gold" => Truth::Gold,
        "gold-ignore" => Truth::GoldIgnoreUnannotated,
        _ => Truth::Silver,
    };
    let mut split = Split::default();
    let mut val_ranges = Vec::new();
    let mut train_groups = Vec::new();
    for dir in &a.data {
        let layout = Layout::detect(dir).ok_or_else(|| {
            unet::Error::new(unet::UnetStatus::InvalidArgument, format!("cannot tell the layout of {}", dir.display()))
        })?;
        let s = load_with(dir, layout, truth, Truth::Silver, a.val_fraction)?;
        eprintln!("{}: {:?}, {} training and {} validation images", dir.display(), layout, s.train.len(), s.val.len());
        // One validation set per image kind where the folder's manifest names kinds (they come grouped).
        let mut start = 0;
        while start < s.val.len() {
            let kind = &s.val[start].kind;
            let end = start + s.val[start..].iter().take_while(|v| &v.kind == kind).count();
            let name = match kind {
                Some(k) => format!("{}/{k}", dir.display()),
                None => dir.display().to_string(),
            };
            val_ranges.push((name, split.val.len() + start..split.val.len() + end));
            start = end;
        }
        // Sampling groups: each dataset, or each image kind where the manifest names kinds (they come grouped).
        let mut start = 0;
        while start < s.train.len() {
            let kind = &s.train[start].kind;
            let end = start + s.train[start..].iter().take_while(|v| &v.kind == kind).count();
            train_groups.push(split.train.len() + start..split.train.len() + end);
            start = end;
        }
        split.train.extend(s.train);
        split.val.extend(s.val);
    }
    Ok((split, val_ranges, train_groups))
}

/// The run's configuration from the flags.
fn train_config(
    a: &TrainArgs,
    arch: unet::Architecture,
    val_ranges: &ValidationRanges,
    init: Option<unet::UNetWeights>,
) -> unet::train::trainer::TrainConfig {
    use unet::{
        augment::Augmentation,
        train::trainer::{OptimizerKind, Schedule, TrainConfig},
        weight_map::{ClassBalance, WeightMapOptions},
    };
    TrainConfig {
        arch,
        tile: a.tile,
        batch: a.batch,
        epochs: a.epochs,
        steps_per_epoch: a.steps_per_epoch,
        learning_rate: a.lr,
        optimizer: if a.optimizer == "adam" {
            OptimizerKind::Adam
        } else {
            OptimizerKind::Sgd { momentum: a.momentum }
        },
        schedule: if a.schedule == "constant" { Schedule::Constant } else { Schedule::Cosine },
        dropout: a.dropout,
        seed: a.seed,
        weight_map: WeightMapOptions {
            w0: a.w0,
            sigma: a.sigma,
            balance: ClassBalance::InverseFrequency,
            border_width: a.border_width,
        },
        augmentation: match a.augment.as_str() {
            "none" => Augmentation::NONE,
            "realistic" => Augmentation::REALISTIC,
            "versatile" => Augmentation::VERSATILE,
            _ => Augmentation::default(),
        },
        min_size: a.min_size,
        data_description: a.data.iter().map(|d| data_name(&d.display().to_string())).collect::<Vec<_>>().join(", ")
            + &format!(" ({} truth)", a.truth),
        ort_library: a.ort_lib.clone(),
        progress: !a.quiet,
        init_source: a.init.as_deref().map(data_name),
        stop_after: a.stop_after,
        // Every dataset's own validation score each epoch (when there is more than one to tell apart).
        val_sets: if val_ranges.len() > 1 {
            val_ranges.iter().filter(|(_, r)| !r.is_empty()).map(|(dir, r)| (dataset_label(dir), r.clone())).collect()
        } else {
            Vec::new()
        },
        init,
        train_groups: Vec::new(),
    }
}
