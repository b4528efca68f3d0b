//! `unet segment`: one image, or a folder / stack of frames (see folder.rs), into mask, probabilities and instance labels.

use super::*;

#[derive(clap::Args)]
pub struct SegmentArgs {
    /// An image; with --out-dir, a folder of images (TIFF, PNG) or a multi-page TIFF (each page a frame).
    pub image: PathBuf,
    /// Segment every frame of IMAGE (a folder or a TIFF stack) into this folder: NAME-labels.tif, ... as --save
    /// says (a stack's pages: STEM-t0000-labels.tif, ...) and summary.csv (instances, foreground, timing per
    /// frame). A stopped job resumes: frames whose outputs and summary row are complete are skipped.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// With --out-dir: the outputs written for each image.
    #[arg(long, value_delimiter = ',', default_value = "labels")]
    pub save: Vec<folder::FolderOutput>,
    /// Mask output (.png or .tif): 0/255 for two-class models, else the class index.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Foreground probability output (.tif: float32; .png: 16-bit, 0..65535).
    #[arg(long)]
    pub probabilities: Option<PathBuf>,
    /// Instance label output (.tif: 32-bit; .png: 16-bit when the count allows).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// A PNG of the image with each instance's outline drawn in colour.
    #[arg(long)]
    pub overlay: Option<PathBuf>,
    /// Ground-truth instance labels: print SEG and foreground IoU of the result against them.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub instances: InstanceArgs,
    #[command(flatten)]
    pub input: InputArgs,
    /// Memory budget for the network's activations, in MiB (decides the tile size).
    #[arg(long, default_value_t = 1024)]
    pub memory_mb: usize,
    /// Largest output tile edge (overrides the memory budget).
    #[arg(long)]
    pub tile: Option<usize>,
    /// Tiles per ONNX Runtime call (0 = automatic).
    #[arg(long, default_value_t = 0)]
    pub tiles_per_run: usize,
    /// Normalisation percentiles LOW,HIGH, or "none" (default: what the model says).
    #[arg(long)]
    pub normalize: Option<String>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Also print the model's details (architecture, normalisation, post-processing, provenance, ONNX Runtime) and
    /// where the time went; `unet info` prints the model's part alone.
    #[arg(long, short)]
    pub verbose: bool,
}

pub fn run(args: SegmentArgs) -> unet::Result<()> {
    if args.image.is_dir() || args.out_dir.is_some() { run_folder(args) } else { run_single(args) }
}

/// The per-image settings, one definition for the single image and the folder/stack job.
fn settings_for(args: &SegmentArgs, model: &Model) -> unet::Result<folder::Settings> {
    Ok(folder::Settings {
        threshold: args.instances.threshold,
        min_size: args.instances.min_size,
        instances: args.instances.method(model)?,
        connectivity: args.instances.connectivity(),
        memory_budget: args.memory_mb.saturating_mul(1 << 20),
        max_tile: args.tile,
        tiles_per_run: args.tiles_per_run,
        normalization: args.normalize.as_deref().map(parse_normalization).transpose()?,
        test_time_augmentation: args.instances.tta,
        channel: args.input.channel,
        object_size: args.input.object_size.unwrap_or_default(),
        pixel_size: args.input.pixel_size,
    })
}

fn run_folder(args: SegmentArgs) -> unet::Result<()> {
    let Some(out_dir) = &args.out_dir else {
        return Err(unet::Error::new(
            unet::UnetStatus::InvalidArgument,
            format!("{} is a folder: give --out-dir for its outputs", args.image.display()),
        ));
    };
    let single_outputs = [&args.output, &args.probabilities, &args.labels, &args.overlay, &args.truth];
    if single_outputs.iter().any(|o| o.is_some()) {
        return Err(unet::Error::new(
            unet::UnetStatus::InvalidArgument,
            "with a folder, choose the outputs with --save (labels, mask, probabilities, overlay), not \
             -o/--labels/--probabilities/--overlay/--truth",
        ));
    }
    let model = args.model.load()?;
    if args.verbose {
        eprintln!("{}", describe(&model));
    } else if !args.quiet {
        eprintln!("{}", describe_briefly(&model));
    }
    folder::segment_frames(&model, &args.image, out_dir, &args.save, settings_for(&args, &model)?, args.quiet)
}

fn run_single(args: SegmentArgs) -> unet::Result<()> {
    let wanted = [&args.output, &args.probabilities, &args.labels, &args.overlay, &args.truth];
    if wanted.iter().all(|o| o.is_none()) {
        return Err(unet::Error::new(
            unet::UnetStatus::InvalidArgument,
            "nothing to write: give --output, --probabilities, --labels, --overlay and/or --truth",
        ));
    }
    // A name whose extension asks for a format that is not written fails now, not after the network ran.
    for path in [&args.output, &args.probabilities, &args.labels].into_iter().flatten() {
        unet::imageio::check_writable_extension(path)?;
    }
    if let Some(path) = &args.overlay {
        unet::imageio::check_png_extension(path)?;
    }
    let started = Instant::now();
    let model = args.model.load()?;
    if args.verbose {
        eprintln!("{}", describe(&model));
    }
    let settings = settings_for(&args, &model)?.for_file(&args.image);
    let img = read_image(&args.image)?;
    let view = img.view()?;
    let area = view.area();
    let mut mask = args.output.as_ref().map(|_| vec![0u8; area]);
    let mut probabilities = args.probabilities.as_ref().map(|_| vec![0f32; area]);
    let need_labels = args.labels.is_some() || args.overlay.is_some() || args.truth.is_some();
    let mut labels = need_labels.then(|| vec![0u32; area]);
    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(
        ProgressStyle::with_template("{spinner} segmenting [{bar:40}] {pos}/{len} steps, {elapsed} (eta {eta})")
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
            probabilities: probabilities.as_deref_mut(),
            mask: mask.as_deref_mut(),
            labels: labels.as_deref_mut(),
        },
    )?;
    bar.finish_and_clear();
    let labelled = labels.is_some();
    write_outputs(&args, &model, &view, mask, probabilities, labels)?;
    print_report(&args, (img.width, img.height), started, &report, &model, labelled, settings.pixel_size);
    Ok(())
}

/// Writes what was asked for: the mask (0/255 for two classes), probabilities, labels, the outline overlay, and the
/// score against a ground truth.
fn write_outputs(
    args: &SegmentArgs,
    model: &Model,
    view: &unet::ImageView,
    mask: Option<Vec<u8>>,
    probabilities: Option<Vec<f32>>,
    labels: Option<Vec<u32>>,
) -> unet::Result<()> {
    let (w, h) = (view.width, view.height);
    if let (Some(path), Some(mut m)) = (&args.output, mask) {
        if model.metadata().arch.classes == 2 {
            m.iter_mut().for_each(|v| *v = if *v != 0 { 255 } else { 0 });
        }
        write_plane(path, Plane::U8(&m), w, h)?;
    }
    if let (Some(path), Some(p)) = (&args.probabilities, probabilities) {
        write_plane(path, Plane::F32(&p), w, h)?;
    }
    if let (Some(path), Some(l)) = (&args.labels, &labels) {
        write_plane(path, Plane::U32(l), w, h)?;
    }
    if let (Some(path), Some(l)) = (&args.overlay, &labels) {
        unet::imageio::write_overlay(path, view, l)?;
        eprintln!("wrote {} (instance outlines over the image)", path.display());
    }
    if let (Some(path), Some(l)) = (&args.truth, &labels) {
        print_score(path, l, w, h)?;
    }
    Ok(())
}

/// SEG and foreground IoU of the labels against the ground truth in `path`.
fn print_score(path: &Path, labels: &[u32], w: usize, h: usize) -> unet::Result<()> {
    let (gt, tw, th) = unet::imageio::read_labels(path)?;
    if (tw, th) != (w, h) {
        return Err(unet::Error::new(
            unet::UnetStatus::InvalidSize,
            format!("{} is {tw}x{th}, the image {w}x{h}", path.display()),
        ));
    }
    // A binary mask (one foreground value, e.g. 0/255) holds no instances: its connected components are the
    // objects, and the output says so.
    let mut values: Vec<u32> = gt.iter().copied().filter(|&v| v != 0).collect();
    values.sort_unstable();
    values.dedup();
    let mut gt = gt;
    let binary = values.len() == 1;
    if binary {
        unet::labels::label_components(&mut gt, w, h, unet::Connectivity::Four, 0);
    }
    let seg = unet::metrics::seg(&gt, labels).unwrap_or(f64::NAN);
    let objects = gt.iter().copied().collect::<std::collections::HashSet<u32>>().len().saturating_sub(1);
    let d = unet::metrics::detections(&gt, labels, &[0.5])[0];
    println!(
        "against {} ({objects} objects{}): AP@0.5 {:.4} (TP {}, FP {}, FN {}), SEG {seg:.4}, foreground IoU {:.4}",
        path.display(),
        if binary { ", the connected components of a binary mask" } else { "" },
        d.ap(),
        d.true_positives,
        d.false_positives,
        d.false_negatives,
        unet::metrics::foreground_iou(&gt, labels)
    );
    Ok(())
}

/// What ran, in one line: size, time, provider, tiles, instances, GPU retries; with `verbose`, where the time went.
fn print_report(
    args: &SegmentArgs,
    (w, h): (usize, usize),
    started: Instant,
    report: &unet::SegmentReport,
    model: &Model,
    labelled: bool,
    pixel_size: Option<f32>,
) {
    let (image, verbose) = (&args.image, args.verbose);
    let from = if args.input.pixel_size.is_some() { "--pixel-size" } else { "the file" };
    let pixel_size = pixel_size.map(|um| (um, from));
    let instances = if labelled {
        format!("{} instance(s)", report.label_count)
    } else {
        "no instance labels computed (--labels, --overlay or --truth asks for them)".to_string()
    };
    let model_size = model.metadata().object_size_or_default();
    let s = report.scale;
    let scale = match (report.resampled_for, report.measured_object_size) {
        (Some(unet::segment::Resampled::MeasuredObjectSize), Some(d)) => {
            format!(" at scale {s:.2} (objects measured {d:.0} px across, the model's {model_size} px)")
        }
        (None, Some(d)) => format!(" as it is (objects measured {d:.0} px across, near the model's {model_size} px)"),
        (Some(unet::segment::Resampled::PixelSize), _) => {
            let (um, from) = pixel_size.expect("resampled for a pixel size that was given");
            let model_um = model.metadata().pixel_size.expect("resampled for the pixel size the model records");
            format!(" at scale {s:.2} (pixels of {um} µm from {from}, the model's {model_um} µm)")
        }
        (Some(_), _) => format!(" at scale {s:.2} (the model's objects are {model_size} px across)"),
        (None, None) => match pixel_size {
            Some((um, from)) if verbose => {
                format!(" (pixels of {um} µm from {from}; the model records no pixel size: not resampled)")
            }
            _ => String::new(),
        },
    };
    eprintln!(
        "segmented {} ({w}x{h}){scale} in {:.2} s on {}: {} tile(s) of {}x{}, {instances}{}",
        image.display(),
        started.elapsed().as_secs_f64(),
        model.provider().used,
        report.tiles,
        report.tile_shape.0,
        report.tile_shape.1,
        match report.out_of_memory_retries {
            0 => String::new(),
            n => format!(" (the GPU ran out of memory {n} time(s); retried with fewer or smaller tiles)"),
        }
    );
    // Tiny tiles spend most of the network's work on their context: say so (e.g. --tile 10 runs 1 024 tiles).
    let halo = model.metadata().geometry().halo;
    let (th, tw) = report.tile_shape;
    let input_area = ((th + 2 * halo) * (tw + 2 * halo)) as f64;
    if report.tiles > 1 && ((th * tw) as f64) < 0.25 * input_area {
        eprintln!(
            "note: each {th}x{tw} tile computes {:.0}x the pixels it outputs (the model's {halo}-px context on each \
             side): a larger --tile or --memory-mb runs faster",
            input_area / (th * tw) as f64
        );
    }
    if !verbose {
        return;
    }
    let t = report.timings;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    eprintln!(
        "time: normalise {:.1} ms, tile input {:.1} ms, network {:.1} ms, outputs {:.1} ms, labels {:.1} ms{}",
        ms(t.normalize),
        ms(t.fill_tiles),
        ms(t.network),
        ms(t.write_outputs),
        ms(t.labels),
        if t.resample.is_zero() { String::new() } else { format!(", resampling {:.1} ms", ms(t.resample)) }
    );
}
