//! `unet`: the command-line face of the library (it calls the same Rust API the C ABI wraps).

#[cfg(feature = "train")]
mod bench_train;
mod bioimageio;
mod eval;
mod folder;
mod segment;
#[cfg(feature = "train")]
mod train;
mod weight_map_cmd;

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
    /// an embedded model by name: default, em (electron-microscopy membranes), cells (DIC and phase-contrast cells).
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
    /// The mean of AP@0.5 and SEG: counts false positives, splits and misses, and outline fit.
    ApSeg,
    /// SEG alone (blind to false positives).
    Seg,
    /// 1 - the ISBI 2012 Rand error.
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

/// How the probabilities become a foreground and the foreground instances (segment and eval alike).
#[derive(clap::Args)]
struct InstanceArgs {
    /// Foreground when P(foreground) >= THRESHOLD (default: the model's recommendation, else the most probable class).
    #[arg(long)]
    threshold: Option<f32>,
    /// Remove instances smaller than this many pixels (default: the model's recommendation, else 0).
    #[arg(long, default_value_t = 0)]
    min_size: usize,
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

/// Which channel to segment and how big the objects are (segment and eval alike).
#[derive(clap::Args, Clone, Copy)]
struct InputArgs {
    /// Segment this channel (from 0) of a multi-channel image with a one-channel model (default: an RGB/RGBA
    /// image's luminance; other images must have the model's channels).
    #[arg(long)]
    channel: Option<usize>,
    /// The objects' typical diameter in pixels: the image is resampled so they match the size the model was
    /// trained at (`unet info` prints it), and the results mapped back; "auto" measures it from a first pass
    /// (a second runs when they differ by more than 1.5x). Default: the image as it is.
    #[arg(long, value_parser = parse_object_size)]
    object_size: Option<unet::ObjectSize>,
    /// The image's pixel size in micrometres (default: what an OME-TIFF or ImageJ TIFF records). When the model
    /// records the pixel size it was trained at, the image is resampled by their ratio unless --object-size is
    /// given.
    #[arg(long)]
    pixel_size: Option<f32>,
}

fn parse_object_size(s: &str) -> Result<unet::ObjectSize, String> {
    if s == "auto" {
        return Ok(unet::ObjectSize::Auto);
    }
    match s.parse::<f32>() {
        Ok(d) if unet::metadata::valid_object_size(d) => Ok(unet::ObjectSize::Pixels(d)),
        _ => Err(format!("'{s}' is not a diameter in pixels (1 to 10000) or auto")),
    }
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
    Segment(segment::SegmentArgs),
    /// The paper's loss weight map (and training target) from an instance label image.
    WeightMap(weight_map_cmd::WeightMapArgs),
    /// Score a model on annotated data (Cell Tracking Challenge, ISBI 2012 or images/labels folders): SEG and IoU
    /// per dataset; --tune searches the post-processing on held-out frames and can write it into the model.
    Eval(eval::EvalArgs),
    /// Train a U-Net on annotated data with the paper's recipe and export it as ONNX (needs the `train` feature).
    #[cfg(feature = "train")]
    Train(train::TrainArgs),
    /// Time the training step (forward, loss, backward, update; 572x572 tile, batch 1) on a device: medians.
    #[cfg(feature = "train")]
    BenchTrain(bench_train::BenchTrainArgs),
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
    /// Measure the typical object size of annotated data (median instance diameter, as the trainer records it in a
    /// model) per dataset and over all; --into writes a model with that size in its metadata (for models trained
    /// before the trainer measured it, on this data).
    ObjectSize {
        /// Dataset folders (Cell Tracking Challenge, ISBI 2012 or images/labels folders).
        #[arg(required = true)]
        data: Vec<PathBuf>,
        /// Measure only the training part, as `unet train --val-fraction` splits it.
        #[arg(long, default_value_t = 0.0)]
        val_fraction: f64,
        /// Record the size in a copy of this model ("default" or another embedded name, or a file)...
        #[arg(long, requires = "output")]
        into: Option<String>,
        /// ...written here.
        #[arg(long, short, requires = "into")]
        output: Option<PathBuf>,
        /// With --into, also record the training images' pixel size (micrometres), when they share one.
        #[arg(long, requires = "into")]
        pixel_size: Option<f32>,
    },
    /// Write a bioimage.io model package (format 0.5 zip: rdf.yaml, ONNX weights, test tensors, cover,
    /// documentation) that bioimage.io tools (`bioimageio test`, deepImageJ, ilastik, the bioimage.io website) accept.
    ExportBioimageio {
        /// ONNX model written by unet, or an embedded model by name (default, em, cells).
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
        let per: Vec<String> = c.scores.iter().map(|s| format!("{:.4}/{:.4}/{:.4}", s.ap50(), s.seg, s.iou)).collect();
        let rand: Vec<String> = c.scores.iter().map(|s| format!("{:.4}", s.rand_error)).collect();
        format!(
            "objective {:.4}  mean AP@0.5 {:.4}  mean SEG {:.4}  AP@0.5/SEG/IoU per dataset {}  Rand error {}  \
             instances per object {:.2}  detection F1 {:.3}  {}",
            c.objective,
            c.mean_ap50,
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
            unet::evaluate::TuneObjective::ApSeg => "best AP@0.5",
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
            .map(|(c, s)| {
                format!("{} AP@0.5 {:.4} SEG {:.4} Rand error {:.4}", data_name(&c.name), s.ap50(), s.seg, s.rand_error)
            })
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
         sizes: halo {} px, valid inputs {}\n  object size: {}\n  normalisation: {}\n  post-processing: {}\n  \
         provenance: {}\n  \
         ONNX Runtime {} from {}\n  execution provider: {}",
        model.source(),
        g.halo,
        if g.fixed {
            format!("{} only", g.min_input)
        } else {
            format!("{}k+{} (>= {})", g.size_step, g.size_offset, g.min_input)
        },
        match m.object_size {
            Some(d) => format!("{d} px (median diameter of its training objects; --object-size resamples to it)"),
            None => format!("not recorded ({} px assumed by --object-size)", unet::metadata::DEFAULT_OBJECT_SIZE),
        } + &m.pixel_size.map_or(String::new(), |um| format!("; trained at {um} µm per pixel")),
        m.normalization.to_meta(),
        m.postprocessing.map_or("components (no recommendation in the model)".to_string(), |p| p.to_meta()),
        m.provenance,
        model.runtime().version,
        model.runtime().library_path.display(),
        p.used,
    );
    if let Some(reason) = &p.fallback_reason {
        s += &format!(" (CUDA not used: {reason})");
    }
    s
}

/// One line: the model and the execution provider (the details: `--verbose`, `unet info`).
/// `unet object-size`: the median instance diameter of each dataset's training part and of all together.
fn measure_object_size(
    data: &[PathBuf],
    val_fraction: f64,
    into: Option<(String, PathBuf)>,
    pixel_size: Option<f32>,
) -> unet::Result<()> {
    use unet::dataset::{Layout, Truth, load_with, median_object_diameter};
    let mut all = Vec::new();
    for dir in data {
        let layout = Layout::detect(dir).ok_or_else(|| {
            unet::Error::new(unet::UnetStatus::InvalidArgument, format!("cannot tell the layout of {}", dir.display()))
        })?;
        let split = load_with(dir, layout, Truth::Silver, Truth::Silver, val_fraction)?;
        let objects: usize = split.train.iter().map(|s| unet::object_size::diameters(&s.labels).len()).sum();
        let size = median_object_diameter(&split.train);
        println!(
            "{}: {} image(s), {objects} object(s), median diameter {}",
            dir.display(),
            split.train.len(),
            size.map_or("- (no objects)".into(), |d| format!("{d} px"))
        );
        all.extend(split.train);
    }
    let size = median_object_diameter(&all)
        .ok_or_else(|| unet::Error::new(unet::UnetStatus::InvalidArgument, "the data holds no annotated objects"))?;
    println!("all: {} image(s), median diameter {size} px", all.len());
    if let Some((model, output)) = into {
        let bytes = unet::model::model_file_bytes(&model)?;
        let (weights, mut meta, precision) = unet::onnx::read_unet_with_precision(&bytes)?;
        meta.object_size = Some(size);
        if let Some(um) = pixel_size {
            if !unet::metadata::valid_pixel_size(um) {
                return Err(unet::Error::new(
                    unet::UnetStatus::InvalidArgument,
                    format!("--pixel-size {um} is not a length in µm"),
                ));
            }
            meta.pixel_size = Some(um);
        }
        unet::onnx::write_unet_with(&output, &weights, &meta, precision)?;
        println!("wrote {} (object size {size} px)", output.display());
    }
    Ok(())
}

fn describe_briefly(model: &Model) -> String {
    format!("model: {}, on {} (details: --verbose or unet info)", model.source(), model.provider().used)
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
        Command::WeightMap(args) => weight_map_cmd::run(args),
        Command::Eval(args) => eval::run(args),
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
        Command::BenchTrain(args) => bench_train::run(args),
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
        Command::ObjectSize { data, val_fraction, into, output, pixel_size } => {
            measure_object_size(&data, val_fraction, into.zip(output), pixel_size)
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
        Command::Segment(args) => segment::run(args),
    }
}
