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
}

pub fn run(args: SegmentArgs) -> unet::Result<()> {
    let SegmentArgs {
        image,
        out_dir,
        save,
        output,
        probabilities,
        labels,
        overlay,
        truth,
        model,
        instances,
        memory_mb,
        tile,
        tiles_per_run,
        normalize,
        quiet,
    } = args;
    let (threshold, min_size) = (instances.threshold, instances.min_size);
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
        if output.is_some() || probabilities.is_some() || labels.is_some() || overlay.is_some() || truth.is_some() {
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
        print_score(&path, l, w, h)?;
    }
    print_report(&image, (w, h), started, &report);
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
    let seg = unet::metrics::seg(&gt, labels).unwrap_or(f64::NAN);
    let objects = gt.iter().copied().collect::<std::collections::HashSet<u32>>().len().saturating_sub(1);
    println!(
        "against {} ({objects} objects): SEG {seg:.4}, foreground IoU {:.4}",
        path.display(),
        unet::metrics::foreground_iou(&gt, labels)
    );
    Ok(())
}

/// What ran: tiles, instances, GPU retries, and where the time went.
fn print_report(image: &Path, (w, h): (usize, usize), started: Instant, report: &unet::SegmentReport) {
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
}
