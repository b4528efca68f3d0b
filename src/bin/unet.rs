//! `unet`: the command-line face of the library (it calls the same Rust API the C ABI wraps).

use std::{path::PathBuf, process::ExitCode, time::Instant};

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use unet::{
    Connectivity, Model, ModelOptions, Normalization, Provider, SegmentOptions, SegmentOutputs,
    imageio::{Plane, read_image, write_plane},
};

#[derive(Parser)]
#[command(name = "unet", version, about = "U-Net segmentation for microscopy (ONNX Runtime, overlap-tile)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProviderArg {
    Auto,
    Cpu,
    Cuda,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// ONNX model written by unet (default: the embedded model).
    #[arg(long, short)]
    model: Option<PathBuf>,
    /// Execution provider.
    #[arg(long, value_enum, default_value = "auto")]
    provider: ProviderArg,
    /// ONNX Runtime threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// ONNX Runtime library (file or folder); default: UNET_ORT_LIB, beside the binary, Python package, system.
    #[arg(long)]
    ort_lib: Option<PathBuf>,
}

impl ModelArgs {
    fn load(&self) -> unet::Result<Model> {
        let options = ModelOptions {
            provider: match self.provider {
                ProviderArg::Auto => Provider::Auto,
                ProviderArg::Cpu => Provider::Cpu,
                ProviderArg::Cuda => Provider::Cuda,
            },
            threads: self.threads,
            ort_library: self.ort_lib.clone(),
            cuda_device: 0,
        };
        match &self.model {
            Some(path) => Model::load(path, &options),
            None => Model::embedded_default(&options),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Segment an image (8/16-bit or float TIFF, PNG) into a mask, probabilities and instance labels.
    Segment {
        image: PathBuf,
        /// Mask output (.png or .tif): 0/255 for two-class models, else the class index.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Foreground probability output (.tif: float32; .png: 16-bit, 0..65535).
        #[arg(long)]
        probabilities: Option<PathBuf>,
        /// Instance label output (.tif: 32-bit; .png: 16-bit when the count allows).
        #[arg(long)]
        labels: Option<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
        /// Foreground when P(foreground) >= THRESHOLD (default: most probable class).
        #[arg(long)]
        threshold: Option<f32>,
        /// Remove instances smaller than this many pixels.
        #[arg(long, default_value_t = 0)]
        min_size: usize,
        /// Pixel connectivity of instances.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(4..=8))]
        connectivity: u8,
        /// Memory budget for the network's activations, in MiB (decides the tile size).
        #[arg(long, default_value_t = 1024)]
        memory_mb: usize,
        /// Largest output tile edge (overrides the memory budget).
        #[arg(long)]
        tile: Option<usize>,
        /// Tiles per ONNX Runtime call (0 = automatic).
        #[arg(long, default_value_t = 0)]
        tiles_per_run: usize,
        /// Normalisation percentiles LOW,HIGH, or "none" (default: what the model says).
        #[arg(long)]
        normalize: Option<String>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// The paper's loss weight map (and training target) from an instance label image.
    WeightMap {
        /// Instance labels (8/16/32-bit TIFF or PNG; 0 = background).
        labels: PathBuf,
        /// Weight map output (.tif: float32).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Training target output (.png/.tif: 0/255, touching cells split by a background line).
        #[arg(long)]
        target: Option<PathBuf>,
        /// Colour-mapped picture of the weights (PNG), like the paper's Fig. 3d.
        #[arg(long)]
        preview: Option<PathBuf>,
        #[arg(long, default_value_t = 10.0)]
        w0: f32,
        #[arg(long, default_value_t = 5.0)]
        sigma: f32,
        /// Class balance: none, inverse (class frequency), or BACKGROUND,FOREGROUND weights.
        #[arg(long, default_value = "inverse")]
        balance: String,
        /// Width of the background line separating touching cells in the target.
        #[arg(long, default_value_t = 2)]
        border_width: usize,
    },
    /// Score a model on annotated data (Cell Tracking Challenge, ISBI 2012 or images/labels folders): SEG and IoU.
    Eval {
        /// ONNX model ("default" for the embedded one).
        model_path: String,
        /// Dataset folder.
        data: PathBuf,
        /// Layout (default: detected).
        #[arg(long, value_parser = ["ctc", "isbi", "folders"])]
        layout: Option<String>,
        /// Remove predicted instances smaller than this.
        #[arg(long, default_value_t = 0)]
        min_size: usize,
        #[arg(long, value_enum, default_value = "auto")]
        provider: ProviderArg,
        /// Score only the last FRACTION of each sequence (the frames `unet train --val-fraction` holds out).
        #[arg(long)]
        held_out: Option<f64>,
    },
    /// Train a U-Net on annotated data with the paper's recipe and export it as ONNX (needs the `train` feature).
    #[cfg(feature = "train")]
    Train(TrainArgs),
    /// Describe a model: architecture, normalisation, provenance, and the execution provider that runs it.
    Info {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Write the intensity-baseline model (the embedded default until a trained one ships).
    ExportBaseline { output: PathBuf },
    /// Write an untrained U-Net with He-normal weights (for benchmarks, or as a training start).
    InitModel {
        output: PathBuf,
        #[arg(long, default_value_t = 64)]
        base_width: usize,
        #[arg(long, default_value_t = 4)]
        depth: usize,
        #[arg(long, default_value_t = 1)]
        in_channels: usize,
        #[arg(long, default_value_t = 2)]
        classes: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Write a synthetic fluorescence-like sample image (and its ground-truth labels).
    SampleImage {
        output: PathBuf,
        #[arg(long, default_value_t = 512)]
        width: usize,
        #[arg(long, default_value_t = 512)]
        height: usize,
        #[arg(long, default_value_t = 60)]
        cells: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Ground-truth label image to write too.
        #[arg(long)]
        labels: Option<PathBuf>,
    },
}

#[cfg(feature = "train")]
#[derive(clap::Args)]
struct TrainArgs {
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
    #[arg(long, default_value_t = 64)]
    base_width: usize,
    #[arg(long, default_value_t = 4)]
    depth: usize,
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
    /// No elastic deformation, rotation, flips or gray-value changes.
    #[arg(long)]
    no_augment: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 0)]
    min_size: usize,
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    #[arg(long, short)]
    quiet: bool,
}

#[cfg(feature = "train")]
fn run_train(a: TrainArgs) -> unet::Result<()> {
    use unet::{
        augment::Augmentation,
        dataset::{Layout, Split, Truth, load},
        train::{
            TrainBackend,
            trainer::{OptimizerKind, RunDir, Schedule, TrainConfig, export_checkpoint, train},
        },
        weight_map::{ClassBalance, WeightMapOptions},
    };
    let arch = unet::Architecture { in_channels: 1, classes: 2, base_width: a.base_width, depth: a.depth };
    let run = RunDir(a.out.clone());
    let device = Default::default();
    if a.export_only {
        let out = a.export.unwrap_or_else(|| run.model_onnx());
        export_checkpoint::<unet::train::burn::backend::Flex>(&run, arch, &out, &device)?;
        println!("wrote {}", out.display());
        return Ok(());
    }
    let truth = match a.truth.as_str() {
        "gold" => Truth::Gold,
        "gold-ignore" => Truth::GoldIgnoreUnannotated,
        _ => Truth::Silver,
    };
    let mut split = Split::default();
    for dir in &a.data {
        let layout = Layout::detect(dir).ok_or_else(|| {
            unet::Error::new(unet::UnetStatus::InvalidArgument, format!("cannot tell the layout of {}", dir.display()))
        })?;
        let s = load(dir, layout, truth, a.val_fraction)?;
        eprintln!("{}: {:?}, {} training and {} validation images", dir.display(), layout, s.train.len(), s.val.len());
        split.train.extend(s.train);
        split.val.extend(s.val);
    }
    let config = TrainConfig {
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
        augmentation: if a.no_augment { Augmentation::NONE } else { Augmentation::default() },
        min_size: a.min_size,
        data_description: a.data.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            + &format!(" ({} truth)", a.truth),
        ort_library: a.ort_lib,
        progress: !a.quiet,
    };
    let summary = train::<TrainBackend>(&config, &split, &run, a.resume, &device)?;
    println!("wrote {} and {}", summary.onnx.display(), run.metrics_csv().display());
    if let Some(path) = a.export {
        std::fs::copy(&summary.onnx, &path)
            .map_err(|e| unet::Error::new(unet::UnetStatus::Io, format!("{}: {e}", path.display())))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unet: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_normalization(s: &str) -> unet::Result<Normalization> {
    if s == "none" {
        return Ok(Normalization::None);
    }
    let parts: Vec<&str> = s.split(',').collect();
    let parsed: Option<(f32, f32)> = match parts.as_slice() {
        [a, b] => a.trim().parse().ok().zip(b.trim().parse().ok()),
        _ => None,
    };
    let (low, high) = parsed.ok_or_else(|| {
        unet::Error::new(unet::UnetStatus::InvalidArgument, format!("--normalize '{s}': expected LOW,HIGH or none"))
    })?;
    let n = Normalization::Percentile { low, high };
    n.validate()?;
    Ok(n)
}

fn describe(model: &Model) -> String {
    let m = model.metadata();
    let g = m.geometry();
    let p = model.provider();
    let mut s = format!(
        "model: {}\n  architecture: U-Net depth {}, base width {}, {} input channel(s), {} classes ({}), {} parameters\n  \
         sizes: halo {} px, valid inputs {}k+{} (>= {})\n  normalisation: {}\n  provenance: {}\n  \
         ONNX Runtime {} from {}\n  execution provider: {}",
        model.source(),
        m.arch.depth,
        m.arch.base_width,
        m.arch.in_channels,
        m.arch.classes,
        m.class_names.join(", "),
        m.arch.parameter_count(),
        g.halo,
        g.size_step,
        g.size_offset,
        g.min_input,
        m.normalization.to_meta(),
        m.provenance,
        model.runtime().version,
        model.runtime().library_path.display(),
        p.used,
    );
    if let Some(reason) = &p.fallback_reason {
        s += &format!(" (fallback: {reason})");
    }
    s
}

fn run(cli: Cli) -> unet::Result<()> {
    match cli.command {
        #[cfg(feature = "train")]
        Command::Train(args) => run_train(args),
        Command::Info { model } => {
            println!("{}", describe(&model.load()?));
            Ok(())
        }
        Command::WeightMap { labels, output, target, preview, w0, sigma, balance, border_width } => {
            use unet::weight_map::{ClassBalance, LabelView, WeightMapOptions, weight_map};
            if output.is_none() && target.is_none() && preview.is_none() {
                return Err(unet::Error::new(
                    unet::UnetStatus::InvalidArgument,
                    "nothing to write: give --output, --target and/or --preview",
                ));
            }
            let balance = match balance.as_str() {
                "none" => ClassBalance::None,
                "inverse" => ClassBalance::InverseFrequency,
                other => {
                    let v: Vec<f32> = other.split(',').filter_map(|s| s.trim().parse().ok()).collect();
                    match v.as_slice() {
                        [background, foreground] => {
                            ClassBalance::Explicit { background: *background, foreground: *foreground }
                        }
                        _ => {
                            return Err(unet::Error::new(
                                unet::UnetStatus::InvalidArgument,
                                format!("--balance '{other}': expected none, inverse or BACKGROUND,FOREGROUND"),
                            ));
                        }
                    }
                }
            };
            let started = Instant::now();
            let (l, w, h) = unet::imageio::read_labels(&labels)?;
            let mut weights = vec![0f32; w * h];
            let mut tgt = vec![0u8; w * h];
            let report = weight_map(
                &LabelView::packed_u32(&l, w, h)?,
                &WeightMapOptions { w0, sigma, balance, border_width },
                Some(&mut weights),
                Some(&mut tgt),
            )?;
            if let Some(path) = output {
                write_plane(&path, Plane::F32(&weights), w, h)?;
            }
            if let Some(path) = target {
                tgt.iter_mut().for_each(|v| *v = if *v != 0 { 255 } else { 0 });
                write_plane(&path, Plane::U8(&tgt), w, h)?;
            }
            if let Some(path) = preview {
                unet::imageio::write_preview(&path, &weights, w, h)?;
            }
            let max = weights.iter().cloned().fold(0.0f32, f32::max);
            eprintln!(
                "weight map of {} ({w}x{h}): {} cells, {} separation pixels, class weights {:.3}/{:.3}, max weight {max:.2}, {:.2} s",
                labels.display(),
                report.cells,
                report.separation_pixels,
                report.class_weights.0,
                report.class_weights.1,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Eval { model_path, data, layout, min_size, provider, held_out } => {
            use unet::dataset::{Layout, Truth, load};
            let layout = match layout.as_deref() {
                Some("ctc") => Layout::Ctc,
                Some("isbi") => Layout::Isbi,
                Some("folders") => Layout::Folders,
                _ => Layout::detect(&data).ok_or_else(|| {
                    unet::Error::new(
                        unet::UnetStatus::InvalidArgument,
                        format!("cannot tell the layout of {}: give --layout", data.display()),
                    )
                })?,
            };
            let args = ModelArgs {
                model: (model_path != "default").then(|| PathBuf::from(&model_path)),
                provider,
                threads: 0,
                ort_lib: None,
            };
            let model = args.load()?;
            // Every gold-annotated image counts, or only the held-out tail of each sequence.
            let split = load(&data, layout, Truth::Gold, held_out.unwrap_or(0.0))?;
            let samples = if held_out.is_some() { &split.val } else { &split.train };
            let started = Instant::now();
            let s = unet::evaluate::evaluate(&model, samples, min_size)?;
            println!(
                "{}: SEG {:.4}, foreground IoU {:.4} over {} image(s), {} object(s), {:.1} s",
                data.display(),
                s.seg,
                s.iou,
                s.images,
                s.objects,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::ExportBaseline { output } => {
            unet::onnx::write_unet(&output, &unet::baseline::weights(), &unet::baseline::metadata())?;
            println!("wrote {}", output.display());
            Ok(())
        }
        Command::InitModel { output, base_width, depth, in_channels, classes, seed } => {
            if !(1..=8).contains(&depth) || base_width == 0 || in_channels == 0 || classes < 2 {
                return Err(unet::Error::new(
                    unet::UnetStatus::InvalidArgument,
                    "need depth 1..=8, base width >= 1, classes >= 2",
                ));
            }
            let arch = unet::Architecture { in_channels, classes, base_width, depth };
            let meta = unet::ModelMetadata::new(arch, format!("untrained: He-normal initialisation, seed {seed}"));
            unet::onnx::write_unet(&output, &unet::UNetWeights::he_normal(arch, seed), &meta)?;
            println!("wrote {} ({} parameters)", output.display(), arch.parameter_count());
            Ok(())
        }
        Command::SampleImage { output, width, height, cells, seed, labels } => {
            let img = unet::synthetic::cells(width, height, cells, (10.0, 22.0), seed);
            write_plane(&output, Plane::U16(&img.pixels), width, height)?;
            if let Some(l) = labels {
                write_plane(&l, Plane::U32(&img.labels), width, height)?;
            }
            println!("wrote {} ({width}x{height}, {} cells)", output.display(), img.cells);
            Ok(())
        }
        Command::Segment {
            image,
            output,
            probabilities,
            labels,
            model,
            threshold,
            min_size,
            connectivity,
            memory_mb,
            tile,
            tiles_per_run,
            normalize,
            quiet,
        } => {
            if output.is_none() && probabilities.is_none() && labels.is_none() {
                return Err(unet::Error::new(
                    unet::UnetStatus::InvalidArgument,
                    "nothing to write: give --output, --probabilities and/or --labels",
                ));
            }
            let normalization = normalize.as_deref().map(parse_normalization).transpose()?;
            let started = Instant::now();
            let model = model.load()?;
            if !quiet {
                eprintln!("{}", describe(&model));
            }
            let img = read_image(&image)?;
            let view = img.view()?;
            let area = view.area();
            let mut mask_buf = output.as_ref().map(|_| vec![0u8; area]);
            let mut prob_buf = probabilities.as_ref().map(|_| vec![0f32; area]);
            let mut label_buf = labels.as_ref().map(|_| vec![0u32; area]);
            let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} segmenting [{bar:40}] {pos}/{len} steps, {elapsed} (eta {eta})",
                )
                .unwrap()
                .progress_chars("=> "),
            );
            let mut on_progress = |p: unet::Progress| {
                bar.set_length(p.total as u64);
                bar.set_position(p.done as u64);
                true
            };
            let report = model.segment(
                &view,
                SegmentOptions {
                    threshold,
                    min_size,
                    connectivity: if connectivity == 8 { Connectivity::Eight } else { Connectivity::Four },
                    memory_budget: memory_mb.saturating_mul(1 << 20),
                    max_tile: tile,
                    tiles_per_run,
                    normalization,
                    progress: Some(&mut on_progress),
                },
                SegmentOutputs {
                    probabilities: prob_buf.as_deref_mut(),
                    mask: mask_buf.as_deref_mut(),
                    labels: label_buf.as_deref_mut(),
                },
            )?;
            bar.finish_and_clear();
            let (w, h) = (img.width, img.height);
            if let (Some(path), Some(mut m)) = (output, mask_buf) {
                if model.metadata().arch.classes == 2 {
                    m.iter_mut().for_each(|v| *v = if *v != 0 { 255 } else { 0 });
                }
                write_plane(&path, Plane::U8(&m), w, h)?;
            }
            if let (Some(path), Some(p)) = (probabilities, prob_buf) {
                write_plane(&path, Plane::F32(&p), w, h)?;
            }
            if let (Some(path), Some(l)) = (labels, label_buf) {
                write_plane(&path, Plane::U32(&l), w, h)?;
            }
            eprintln!(
                "segmented {} ({w}x{h}) in {:.2} s: {} tile(s) of {}x{}, {} instance(s)",
                image.display(),
                started.elapsed().as_secs_f64(),
                report.tiles,
                report.tile_shape.0,
                report.tile_shape.1,
                report.label_count
            );
            Ok(())
        }
    }
}
