//! `unet`: the command-line face of the library (it calls the same Rust API the C ABI wraps).

mod bioimageio;
mod folder;
#[cfg(feature = "train")]
mod train;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Instant,
};

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

#[derive(clap::Args, Clone)]
struct ModelArgs {
    /// ONNX model written by unet, a bioimage.io model package with ONNX weights (.zip, rdf.yaml or its folder), or
    /// an embedded model by name: default, em (electron-microscopy membranes).
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

/// Segments `image` with the model `original` ("default" = embedded) and with `converted`, and prints how far the
/// probabilities and instances of the second are from those of the first.
fn compare_models(original: &str, converted: &Path, image: &Path, args: &ModelArgs) -> unet::Result<()> {
    let load = |path: Option<PathBuf>| ModelArgs { model: path, ..args.clone() }.load();
    let first = load((original != "default").then(|| PathBuf::from(original)))?;
    let second = load(Some(converted.to_path_buf()))?;
    let img = read_image(image)?;
    let view = img.view()?;
    let run = |model: &Model| -> unet::Result<(Vec<f32>, Vec<u32>, f64)> {
        let (mut p, mut l) = (vec![0f32; view.area()], vec![0u32; view.area()]);
        let t = Instant::now();
        model.segment(
            &view,
            SegmentOptions::default(),
            SegmentOutputs { probabilities: Some(&mut p), mask: None, labels: Some(&mut l) },
        )?;
        Ok((p, l, t.elapsed().as_secs_f64()))
    };
    let (p1, l1, t1) = run(&first)?;
    let (p2, l2, t2) = run(&second)?;
    let max_diff = p1.iter().zip(&p2).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let mean_diff = p1.iter().zip(&p2).map(|(a, b)| f64::from((a - b).abs())).sum::<f64>() / p1.len().max(1) as f64;
    println!(
        "on {} ({}): probabilities differ by at most {max_diff:.5} (mean {mean_diff:.2e}); instances: SEG {:.4} and \
         foreground IoU {:.4} against the original's; {:.3} s vs {:.3} s",
        image.display(),
        second.provider().used,
        unet::metrics::seg(&l1, &l2).unwrap_or(f64::NAN),
        unet::metrics::foreground_iou(&l1, &l2),
        t1,
        t2
    );
    Ok(())
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
            Some(path) => Model::load_path_or_name(path, &options),
            None => Model::embedded_default(&options),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum TuneFor {
    Seg,
    Rand,
}

#[derive(Clone, Copy, ValueEnum)]
enum InstancesArg {
    /// What the model's metadata recommends (else components).
    Model,
    /// Connected components: touching cells stay one instance.
    Components,
    /// Seeded watershed on the distance transform: splits touching cells at their neck.
    Watershed,
}

/// How the foreground becomes instances.
#[derive(clap::Args)]
struct InstanceArgs {
    #[arg(long, value_enum, default_value = "model")]
    instances: InstancesArg,
    /// Watershed: minimum height (pixels) of a distance maximum above its saddle to seed its own cell (larger merges
    /// more; default: the model's, else 2).
    #[arg(long)]
    watershed_h: Option<f32>,
    /// Watershed: Gaussian smoothing (pixels) of the distance map, 0 = none (default: the model's, else 1).
    #[arg(long)]
    smoothing: Option<f32>,
    /// Watershed markers: the regions where P(foreground) >= this (--watershed-h unused), or 0 for the maxima of the
    /// distance map (default: the model's, else 0).
    #[arg(long)]
    watershed_seed: Option<f32>,
    /// Test-time augmentation: average the network's probabilities on the image and its three mirror images (4x
    /// the network time; smoother borders, fewer merged cells).
    #[arg(long)]
    tta: bool,
    /// Pixel connectivity of instances.
    #[arg(long, default_value_t = 4, value_parser = parse_connectivity)]
    connectivity: u8,
}

fn parse_connectivity(s: &str) -> Result<u8, String> {
    match s {
        "4" => Ok(4),
        "8" => Ok(8),
        _ => Err(format!("'{s}' is not 4 or 8")),
    }
}

impl InstanceArgs {
    /// The method to pass to the library (`None` = the model's recommendation), resolving omitted parameters
    /// against the model's own.
    fn method(&self, model: &Model) -> unet::Result<Option<unet::InstanceMethod>> {
        let request = match self.instances {
            InstancesArg::Model => unet::InstanceRequest::Model,
            InstancesArg::Components => unet::InstanceRequest::Components,
            InstancesArg::Watershed => unet::InstanceRequest::Watershed,
        };
        let overrides =
            unet::WatershedOverrides { h: self.watershed_h, smoothing: self.smoothing, seed: self.watershed_seed };
        unet::instances::resolve_instances(request, overrides, model.metadata().postprocessing)
            .map_err(|e| e.context("--watershed-h/--smoothing/--watershed-seed"))
    }

    fn connectivity(&self) -> Connectivity {
        if self.connectivity == 8 { Connectivity::Eight } else { Connectivity::Four }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Segment an image (8/16-bit or float TIFF, PNG) into a mask, probabilities and instance labels.
    Segment {
        /// An image; with --out-dir, a folder of images (TIFF, PNG) or a multi-page TIFF (each page a frame).
        image: PathBuf,
        /// Segment every frame of IMAGE (a folder or a TIFF stack) into this folder: NAME-labels.tif, ... as --save
        /// says (a stack's pages: STEM-t0000-labels.tif, ...) and summary.csv (instances, foreground, timing per
        /// frame). A stopped job resumes: frames whose outputs and summary row are complete are skipped.
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// With --out-dir: the outputs written for each image.
        #[arg(long, value_delimiter = ',', default_value = "labels")]
        save: Vec<folder::FolderOutput>,
        /// Mask output (.png or .tif): 0/255 for two-class models, else the class index.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Foreground probability output (.tif: float32; .png: 16-bit, 0..65535).
        #[arg(long)]
        probabilities: Option<PathBuf>,
        /// Instance label output (.tif: 32-bit; .png: 16-bit when the count allows).
        #[arg(long)]
        labels: Option<PathBuf>,
        /// A PNG of the image with each instance's outline drawn in colour.
        #[arg(long)]
        overlay: Option<PathBuf>,
        /// Ground-truth instance labels: print SEG and foreground IoU of the result against them.
        #[arg(long)]
        truth: Option<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
        /// Foreground when P(foreground) >= THRESHOLD (default: the model's recommendation, else the most probable class).
        #[arg(long)]
        threshold: Option<f32>,
        /// Remove instances smaller than this many pixels (default: the model's recommendation, else 0).
        #[arg(long, default_value_t = 0)]
        min_size: usize,
        #[command(flatten)]
        instances: InstanceArgs,
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
    /// Score a model on annotated data (Cell Tracking Challenge, ISBI 2012 or images/labels folders): SEG and IoU
    /// per dataset; --tune searches the post-processing on held-out frames and can write it into the model.
    Eval {
        /// ONNX model ("default" for the embedded one).
        model_path: String,
        /// Dataset folders; each is scored on its own.
        #[arg(required = true)]
        data: Vec<PathBuf>,
        /// Layout (default: detected).
        #[arg(long, value_parser = ["ctc", "isbi", "folders"])]
        layout: Option<String>,
        /// Foreground threshold (default: the model's recommendation, else the most probable class).
        #[arg(long)]
        threshold: Option<f32>,
        /// Remove predicted instances smaller than this (default: the model's recommendation, else 0).
        #[arg(long, default_value_t = 0)]
        min_size: usize,
        #[command(flatten)]
        instances: InstanceArgs,
        #[arg(long, value_enum, default_value = "auto")]
        provider: ProviderArg,
        /// Score only the last FRACTION of each sequence (the frames `unet train --val-fraction` holds out).
        #[arg(long)]
        held_out: Option<f64>,
        /// Ground truth of held-out CTC frames: silver (every frame, complete), gold (annotated frames only), both.
        #[arg(long, default_value = "both", value_parser = ["silver", "gold", "both"])]
        truth: String,
        /// Search threshold, instance method (components; watershed h, smoothing) and minimum size on the held-out
        /// frames (silver truth; --held-out 0.2 unless given), ranked by --tune-for averaged over the datasets.
        #[arg(long)]
        tune: bool,
        /// What --tune maximises: seg (light microscopy, the Cell Tracking Challenge's measure) or rand (1 - the
        /// ISBI 2012 Rand error: EM membranes, where merged and split cells matter).
        #[arg(long, value_enum, default_value = "seg", requires = "tune")]
        tune_for: TuneFor,
        /// With --tune: write the model with the best post-processing in its metadata to this file.
        #[arg(long, requires = "tune")]
        write: Option<PathBuf>,
    },
    /// Train a U-Net on annotated data with the paper's recipe and export it as ONNX (needs the `train` feature).
    #[cfg(feature = "train")]
    Train(train::TrainArgs),
    /// Time the training step (forward, loss, backward, update; 572x572 tile, batch 1) on a device: medians.
    #[cfg(feature = "train")]
    BenchTrain {
        /// cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(long, value_delimiter = ',', default_value = "16,64")]
        base_width: Vec<usize>,
        #[arg(long, default_value_t = 572)]
        tile: usize,
        /// Untimed steps first (kernel compilation and autotuning on a GPU).
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        #[arg(long, default_value_t = 10)]
        reps: usize,
        /// How convolutions run on CUDA (one row each): im2col, implicit-gemm, direct.
        #[arg(long, value_delimiter = ',', default_value = "im2col", value_parser = train::parse_cuda_conv)]
        cuda_conv: Vec<unet::train::conv::CudaConv>,
    },
    /// Describe a model: architecture, normalisation, provenance, and the execution provider that runs it.
    Info {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Write the untrained intensity-baseline model (bright objects on dark background; the tests' exact reference).
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
    /// Rewrite a unet model with float16 weights and arithmetic (half the size; on a GPU with tensor cores about
    /// twice the speed), or back to float32. Input and output stay float32, metadata is kept. --check IMAGE compares
    /// the two models' probabilities and instances on an image.
    Convert {
        /// ONNX model ("default" for the embedded one).
        input: String,
        output: PathBuf,
        #[arg(long, conflicts_with = "fp32", required_unless_present = "fp32")]
        fp16: bool,
        #[arg(long)]
        fp32: bool,
        /// Segment this image with both models and print the largest probability difference and the SEG of the
        /// converted model's instances against the original's.
        #[arg(long)]
        check: Option<PathBuf>,
        /// Execution provider for --check.
        #[arg(long, value_enum, default_value = "auto")]
        provider: ProviderArg,
        #[arg(long)]
        ort_lib: Option<PathBuf>,
    },
    /// Write a bioimage.io model package (format 0.5 zip: rdf.yaml, ONNX weights, test tensors, cover,
    /// documentation) that bioimage.io tools (`bioimageio test`, deepImageJ, ilastik, the bioimage.io website) accept.
    ExportBioimageio {
        /// ONNX model written by unet, or an embedded model by name (default, em).
        model: String,
        #[arg(long, short)]
        output: PathBuf,
        /// The package's name (default: "unet MODEL").
        #[arg(long)]
        name: Option<String>,
        /// Author names (repeat or separate by commas).
        #[arg(long, value_delimiter = ',', default_value = "unet contributors")]
        author: Vec<String>,
        #[arg(long)]
        ort_lib: Option<PathBuf>,
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
        /// cells: bright uniform ellipses (the tests' data); nuclei: varied, realistic fluorescence nuclei (training).
        #[arg(long, default_value = "cells", value_parser = ["cells", "nuclei"])]
        style: String,
        /// Ground-truth label image to write too.
        #[arg(long)]
        labels: Option<PathBuf>,
    },
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

/// Searches the post-processing on `sets` (see `unet eval --tune`), prints the ranking, and with `write` writes the
/// model (read from `model_path`, or "default") with the winner in its metadata.
fn tune_post_processing(
    model: &Model,
    model_path: &str,
    sets: &[unet::evaluate::ValidationSet],
    grid: &unet::evaluate::TuneGrid,
    connectivity: Connectivity,
    write: Option<&std::path::Path>,
) -> unet::Result<unet::PostProcessing> {
    use unet::evaluate::{Candidate, tune};
    let started = Instant::now();
    let bar = ProgressBar::new(0);
    let tuning = tune(model, sets, grid, connectivity, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let line = |c: &Candidate| {
        let per: Vec<String> = c.scores.iter().map(|s| format!("{:.4}/{:.4}", s.seg, s.iou)).collect();
        let rand: Vec<String> = c.scores.iter().map(|s| format!("{:.4}", s.rand_error)).collect();
        format!(
            "mean SEG {:.4}  SEG/IoU per dataset {}  Rand error {}  instances per object {:.2}  detection F1 {:.3}  {}",
            c.mean_seg,
            per.join(" "),
            rand.join(" "),
            c.instances_per_object,
            c.object_f1,
            c.postprocessing.to_meta()
        )
    };
    let names: Vec<String> = sets.iter().map(|c| format!("{} ({} frames)", c.name, c.samples.len())).collect();
    println!(
        "tuned {} candidates on {} in {:.0} s; the best by {} (near ties: {}):",
        tuning.candidates.len(),
        names.join(", "),
        started.elapsed().as_secs_f64(),
        grid.objective.name(),
        match grid.objective {
            unet::evaluate::TuneObjective::Seg => "fewest instances per object",
            unet::evaluate::TuneObjective::RandFScore => "best detection F1",
        }
    );
    for c in tuning.candidates.iter().take(5) {
        println!("  {}", line(c));
    }
    for (kind, ws) in [("components", false), ("watershed", true)] {
        if let Some(c) = tuning.best_of_kind(ws) {
            println!("best {kind}: {}", line(c));
        }
    }
    let best = tuning.best();
    println!("chosen: {}", best.postprocessing.to_meta());
    if let Some(out) = write {
        let (weights, mut meta) = unet::onnx::read_unet_file(model_path)?;
        meta.postprocessing = Some(best.postprocessing);
        let per: Vec<String> = sets
            .iter()
            .zip(&best.scores)
            .map(|(c, s)| format!("{} SEG {:.4} Rand error {:.4}", data_name(&c.name), s.seg, s.rand_error))
            .collect();
        meta.provenance += &format!(
            "; post-processing '{}' chosen by unet eval --tune (best {}) on held-out frames ({})",
            best.postprocessing.to_meta(),
            grid.objective.name(),
            per.join(", ")
        );
        unet::onnx::write_unet(out, &weights, &meta)?;
        println!("wrote {}", out.display());
    }
    Ok(best.postprocessing)
}

/// The last two components of a data path (e.g. `ctc/DIC-C2DH-HeLa`), so metadata never embeds a machine's paths.
fn data_name(path: &str) -> String {
    let parts: Vec<&str> = path.trim_end_matches('/').rsplit('/').take(2).collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
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
    let network = if m.imported.is_some() {
        let fixed = if g.fixed { ", one input size only" } else { "" };
        format!(
            "imported network (bioimage.io package{fixed}), {} input channel(s), {} classes ({})",
            m.arch.in_channels,
            m.arch.classes,
            m.class_names.join(", ")
        )
    } else {
        format!(
            "U-Net depth {}, base width {}, {} input channel(s), {} classes ({}), {} parameters",
            m.arch.depth,
            m.arch.base_width,
            m.arch.in_channels,
            m.arch.classes,
            m.class_names.join(", "),
            m.arch.parameter_count()
        )
    };
    let mut s = format!(
        "model: {}\n  architecture: {network}\n  \
         sizes: halo {} px, valid inputs {}\n  normalisation: {}\n  post-processing: {}\n  \
         provenance: {}\n  \
         ONNX Runtime {} from {}\n  execution provider: {}",
        model.source(),
        g.halo,
        if g.fixed {
            format!("{} only", g.min_input)
        } else {
            format!("{}k+{} (>= {})", g.size_step, g.size_offset, g.min_input)
        },
        m.normalization.to_meta(),
        m.postprocessing.map_or("components (no recommendation in the model)".to_string(), |p| p.to_meta()),
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
        Command::Train(args) => {
            unet::train::keep_freed_memory_for_reuse();
            train::run_train(args)
        }
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
        Command::Eval {
            model_path,
            data,
            layout,
            threshold,
            min_size,
            instances,
            provider,
            held_out,
            truth,
            tune,
            tune_for,
            write,
        } => {
            use unet::dataset::{Layout, Truth, load_with};
            let args = ModelArgs {
                model: (model_path != "default").then(|| PathBuf::from(&model_path)),
                provider,
                threads: 0,
                ort_lib: None,
            };
            let model = args.load()?;
            let held_out = if tune { held_out.or(Some(0.2)) } else { held_out };
            // (dataset, truth name, samples): every gold-annotated image, or the held-out tail of each sequence.
            let mut sets = Vec::new();
            for dir in &data {
                let layout = match layout.as_deref() {
                    Some("ctc") => Layout::Ctc,
                    Some("isbi") => Layout::Isbi,
                    Some("folders") => Layout::Folders,
                    _ => Layout::detect(dir).ok_or_else(|| {
                        unet::Error::new(
                            unet::UnetStatus::InvalidArgument,
                            format!("cannot tell the layout of {}: give --layout", dir.display()),
                        )
                    })?,
                };
                let truths: &[(&str, Truth)] = match (layout, truth.as_str()) {
                    (Layout::Ctc, "silver") => &[("silver", Truth::Silver)],
                    (Layout::Ctc, "gold") => &[("gold", Truth::Gold)],
                    (Layout::Ctc, _) => &[("silver", Truth::Silver), ("gold", Truth::Gold)],
                    _ => &[("truth", Truth::Gold)],
                };
                for &(name, t) in truths {
                    let split = load_with(dir, layout, t, t, held_out.unwrap_or(0.0))?;
                    let total = split.train.len() + split.val.len();
                    let samples = if held_out.is_some() { split.val } else { split.train };
                    if samples.is_empty() && name == "gold" && truth.as_str() == "both" {
                        eprintln!("{}: no gold-annotated frames among those scored; silver only", dir.display());
                        continue;
                    }
                    if samples.is_empty() {
                        // An empty set would print SEG NaN; say why instead.
                        return Err(unet::Error::new(
                            unet::UnetStatus::InvalidArgument,
                            match held_out {
                                Some(f) => format!(
                                    "{}: --held-out {f} of its {total} annotated image(s) leaves none to score (the \
                                     count is rounded per sequence); give a larger fraction, or none to score them all",
                                    dir.display()
                                ),
                                None => format!("{}: no annotated images ({name} truth) to score", dir.display()),
                            },
                        ));
                    }
                    sets.push((dir.clone(), name, samples));
                }
            }
            let method = instances.method(&model)?;
            let connectivity = instances.connectivity();
            let test_time_augmentation = instances.tta;
            let options = || SegmentOptions {
                threshold,
                min_size,
                instances: method,
                connectivity,
                test_time_augmentation,
                ..Default::default()
            };
            for (dir, truth_name, samples) in &sets {
                let started = Instant::now();
                let s = unet::evaluate::evaluate_with(&model, samples, &options)?;
                println!(
                    "{} [{truth_name}]: SEG {:.4}, foreground IoU {:.4}, Rand error {:.4} (unassigned as one \
                     segment {:.4}), pixel error {:.4} over {} image(s), {} object(s), {:.1} s",
                    dir.display(),
                    s.seg,
                    s.iou,
                    s.rand_error,
                    s.rand_error_strict,
                    s.pixel_error,
                    s.images,
                    s.objects,
                    started.elapsed().as_secs_f64()
                );
            }
            if tune {
                use unet::evaluate::ValidationSet;
                // Tune on the complete (silver) truth where there is a choice.
                let mut chosen: Vec<ValidationSet> = Vec::new();
                for (dir, truth_name, samples) in sets {
                    let name = dir.display().to_string();
                    if chosen.iter().any(|c| c.name == name) || (truth_name == "gold" && truth.as_str() == "both") {
                        continue;
                    }
                    chosen.push(ValidationSet { name, samples });
                }
                let objective = match tune_for {
                    TuneFor::Seg => unet::evaluate::TuneObjective::Seg,
                    TuneFor::Rand => unet::evaluate::TuneObjective::RandFScore,
                };
                let grid = unet::evaluate::TuneGrid { test_time_augmentation, objective, ..Default::default() };
                tune_post_processing(&model, &model_path, &chosen, &grid, connectivity, write.as_deref())?;
            }
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
        #[cfg(feature = "train")]
        Command::BenchTrain { device, base_width, tile, warmup, reps, cuda_conv } => {
            use unet::train::device::TrainDevice;
            unet::train::keep_freed_memory_for_reuse();
            let train_device = TrainDevice::parse(&device)?;
            train_device.check_built()?;
            println!(
                "training step on {train_device}: {tile}x{tile} tile, batch 1, SGD, median of {reps} after {warmup}"
            );
            println!(
                "{:>14} {:>10} {:>14} {:>14} {:>12}",
                "convolution", "base width", "median ms", "min ms", "total s"
            );
            // The CPU has one way to run convolutions; CUDA gets one row per --cuda-conv.
            let convs =
                if train_device == TrainDevice::Cpu { vec![None] } else { cuda_conv.into_iter().map(Some).collect() };
            for conv in convs {
                let name = conv.map_or("flex", |c: unet::train::conv::CudaConv| c.name());
                if let Some(c) = conv {
                    c.select();
                }
                for &width in &base_width {
                    let arch = unet::Architecture { in_channels: 1, classes: 2, base_width: width, depth: 4 };
                    if arch.geometry().output_for_input(tile).is_none() {
                        return Err(unet::Error::new(
                            unet::UnetStatus::InvalidArgument,
                            format!("{tile} is not a valid input size (16k + 60 for depth 4, e.g. 572)"),
                        ));
                    }
                    let started = Instant::now();
                    // A strategy that fails on this GPU loses its row, not the others.
                    let timed: std::thread::Result<unet::Result<Vec<f64>>> =
                        std::panic::catch_unwind(|| match train_device {
                            TrainDevice::Cpu => Ok(unet::train::benchmark::time_steps::<unet::train::TrainBackend>(
                                arch,
                                tile,
                                warmup,
                                reps,
                                &Default::default(),
                            )
                            .0),
                            #[cfg(feature = "cuda")]
                            TrainDevice::Cuda(index) => unet::train::device::cuda_device(index).map(|cuda| {
                                unet::train::benchmark::time_steps::<unet::train::device::CudaTrainBackend>(
                                    arch, tile, warmup, reps, &cuda,
                                )
                                .0
                            }),
                            #[cfg(not(feature = "cuda"))]
                            TrainDevice::Cuda(_) => unreachable!("check_built refused CUDA in this build"),
                        });
                    match timed {
                        Ok(steps) => {
                            let steps = steps?;
                            let min = steps.iter().copied().fold(f64::INFINITY, f64::min);
                            println!(
                                "{name:>14} {width:>10} {:>14.2} {:>14.2} {:>12.1}",
                                1e3 * unet::train::benchmark::median(steps),
                                1e3 * min,
                                started.elapsed().as_secs_f64()
                            );
                        }
                        Err(_) => println!("{name:>14} {width:>10} {:>14} (failed, see above)", "-"),
                    }
                }
            }
            Ok(())
        }
        Command::Convert { input, output, fp16, fp32: _, check, provider, ort_lib } => {
            let precision = if fp16 { unet::onnx::Precision::F16 } else { unet::onnx::Precision::F32 };
            let (weights, meta) = unet::onnx::read_unet_file(&input)?;
            unet::onnx::write_unet_with(&output, &weights, &meta, precision)?;
            let size = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
            println!("wrote {} ({} weights, {:.1} MB)", output.display(), precision.name(), size as f64 / 1e6);
            if let Some(image) = check {
                let model = ModelArgs { model: None, provider, threads: 0, ort_lib };
                compare_models(&input, &output, &image, &model)?;
            }
            Ok(())
        }
        Command::ExportBioimageio { model, output, name, author, ort_lib } => {
            let bytes = unet::model::model_file_bytes(&model)?;
            let loaded = Model::from_bytes(
                &bytes,
                &ModelOptions { provider: Provider::Cpu, ort_library: ort_lib, ..Default::default() },
            )?;
            let stem = Path::new(&model).file_stem().map_or(model.clone(), |s| s.to_string_lossy().into_owned());
            let name = name.unwrap_or_else(|| format!("unet {stem}"));
            bioimageio::export(&bioimageio::ExportRequest {
                model_bytes: &bytes,
                model: &loaded,
                name: &name,
                authors: &author,
                output: &output,
            })?;
            println!(
                "wrote {} (bioimage.io model package '{name}'; check it with `bioimageio test {}`)",
                output.display(),
                output.display()
            );
            Ok(())
        }
        Command::SampleImage { output, width, height, cells, seed, style, labels } => {
            let img = if style == "nuclei" {
                unet::synthetic::nuclei(width, height, seed)
            } else {
                unet::synthetic::cells(width, height, cells, (10.0, 22.0), seed)
            };
            write_plane(&output, Plane::U16(&img.pixels), width, height)?;
            if let Some(l) = labels {
                write_plane(&l, Plane::U32(&img.labels), width, height)?;
            }
            println!("wrote {} ({width}x{height}, {} cells)", output.display(), img.cells);
            Ok(())
        }
        Command::Segment {
            image,
            out_dir,
            save,
            output,
            probabilities,
            labels,
            overlay,
            truth,
            model,
            threshold,
            min_size,
            instances,
            memory_mb,
            tile,
            tiles_per_run,
            normalize,
            quiet,
        } => {
            // The per-image settings, one definition for the single image and the folder/stack job.
            let settings_for = |model: &Model| -> unet::Result<folder::Settings> {
                Ok(folder::Settings {
                    threshold,
                    min_size,
                    instances: instances.method(model)?,
                    connectivity: instances.connectivity(),
                    memory_budget: memory_mb.saturating_mul(1 << 20),
                    max_tile: tile,
                    tiles_per_run,
                    normalization: normalize.as_deref().map(parse_normalization).transpose()?,
                    test_time_augmentation: instances.tta,
                })
            };
            if image.is_dir() || out_dir.is_some() {
                let Some(out_dir) = out_dir else {
                    return Err(unet::Error::new(
                        unet::UnetStatus::InvalidArgument,
                        format!("{} is a folder: give --out-dir for its outputs", image.display()),
                    ));
                };
                if output.is_some()
                    || probabilities.is_some()
                    || labels.is_some()
                    || overlay.is_some()
                    || truth.is_some()
                {
                    return Err(unet::Error::new(
                        unet::UnetStatus::InvalidArgument,
                        "with a folder, choose the outputs with --save (labels, mask, probabilities, overlay), not \
                         -o/--labels/--probabilities/--overlay/--truth",
                    ));
                }
                let model = model.load()?;
                if !quiet {
                    eprintln!("{}", describe(&model));
                }
                return folder::segment_frames(&model, &image, &out_dir, &save, settings_for(&model)?, quiet);
            }
            if output.is_none() && probabilities.is_none() && labels.is_none() && overlay.is_none() && truth.is_none() {
                return Err(unet::Error::new(
                    unet::UnetStatus::InvalidArgument,
                    "nothing to write: give --output, --probabilities, --labels, --overlay and/or --truth",
                ));
            }
            let started = Instant::now();
            let model = model.load()?;
            if !quiet {
                eprintln!("{}", describe(&model));
            }
            let settings = settings_for(&model)?;
            let img = read_image(&image)?;
            let view = img.view()?;
            let area = view.area();
            let mut mask_buf = output.as_ref().map(|_| vec![0u8; area]);
            let mut prob_buf = probabilities.as_ref().map(|_| vec![0f32; area]);
            let need_labels = labels.is_some() || overlay.is_some() || truth.is_some();
            let mut label_buf = need_labels.then(|| vec![0u32; area]);
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
                settings.with_progress(&mut on_progress),
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
            if let (Some(path), Some(l)) = (labels, &label_buf) {
                write_plane(&path, Plane::U32(l), w, h)?;
            }
            if let (Some(path), Some(l)) = (&overlay, &label_buf) {
                unet::imageio::write_overlay(path, &view, l)?;
                eprintln!("wrote {} (instance outlines over the image)", path.display());
            }
            if let (Some(path), Some(l)) = (truth, &label_buf) {
                let (gt, tw, th) = unet::imageio::read_labels(&path)?;
                if (tw, th) != (w, h) {
                    return Err(unet::Error::new(
                        unet::UnetStatus::InvalidSize,
                        format!("{} is {tw}x{th}, the image {w}x{h}", path.display()),
                    ));
                }
                let seg = unet::metrics::seg(&gt, l).unwrap_or(f64::NAN);
                let objects = gt.iter().copied().collect::<std::collections::HashSet<u32>>().len().saturating_sub(1);
                println!(
                    "against {} ({objects} objects): SEG {seg:.4}, foreground IoU {:.4}",
                    path.display(),
                    unet::metrics::foreground_iou(&gt, l)
                );
            }
            eprintln!(
                "segmented {} ({w}x{h}) in {:.2} s: {} tile(s) of {}x{}, {} instance(s){}",
                image.display(),
                started.elapsed().as_secs_f64(),
                report.tiles,
                report.tile_shape.0,
                report.tile_shape.1,
                report.label_count,
                match report.out_of_memory_retries {
                    0 => String::new(),
                    n => format!(" (the GPU ran out of memory {n} time(s); retried with fewer or smaller tiles)"),
                }
            );
            let t = report.timings;
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
            eprintln!(
                "time: normalise {:.1} ms, tile input {:.1} ms, network {:.1} ms, outputs {:.1} ms, labels {:.1} ms",
                ms(t.normalize),
                ms(t.fill_tiles),
                ms(t.network),
                ms(t.write_outputs),
                ms(t.labels)
            );
            Ok(())
        }
    }
}
