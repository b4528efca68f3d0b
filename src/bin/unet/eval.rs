//! `unet eval`: scores a model on annotated datasets; `--tune` searches the post-processing.

use super::*;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// ONNX model ("default" for the embedded one).
    pub model_path: String,
    /// Dataset folders; each is scored on its own.
    #[arg(required = true)]
    pub data: Vec<PathBuf>,
    /// Layout (default: detected).
    #[arg(long, value_parser = ["ctc", "isbi", "folders"])]
    pub layout: Option<String>,
    #[command(flatten)]
    pub instances: InstanceArgs,
    #[command(flatten)]
    pub input: InputArgs,
    #[arg(long, value_enum, default_value = "auto")]
    pub provider: ProviderArg,
    /// Score only the last FRACTION of each sequence (the frames `unet train --val-fraction` holds out).
    #[arg(long)]
    pub held_out: Option<f64>,
    /// Ground truth of held-out CTC frames: silver (every frame, complete), gold (annotated frames only), both.
    #[arg(long, default_value = "both", value_parser = ["silver", "gold", "both"])]
    pub truth: String,
    /// Search threshold, instance method (components; watershed h, smoothing) and minimum size on the held-out
    /// frames (silver truth; --held-out 0.2 unless given), ranked by --tune-for averaged over the datasets.
    #[arg(long)]
    pub tune: bool,
    /// What --tune maximises, averaged over the datasets (and image kinds): ap-seg (the default: the mean of
    /// AP@0.5 and SEG, so false positives, splits and misses count as well as outline fit; near ties, within 0.002,
    /// go to the best AP@0.5), seg (the Cell Tracking Challenge's measure alone, blind to false positives), or rand
    /// (1 - the ISBI 2012 Rand error: EM membranes, where merged and split cells matter).
    #[arg(long, value_enum, default_value = "ap-seg", requires = "tune")]
    pub tune_for: TuneFor,
    /// Also write the scores as CSV (set,truth,images,objects,instances,ap50,ap75,seg,iou,tp50,fp50,fn50; one row per
    /// dataset or image kind), for scripts that put the figures in documents.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// With --tune: search a grid about 10 times smaller (225 candidates: thresholds 0.4-0.8, components, watershed
    /// h 1-4 px with smoothing 0 or 1, minimum sizes 0-200).
    #[arg(long, requires = "tune")]
    pub quick: bool,
    /// With --tune: write the model with the best post-processing in its metadata to this file.
    #[arg(long, requires = "tune")]
    pub write: Option<PathBuf>,
}

pub fn run(args: EvalArgs) -> unet::Result<()> {
    let EvalArgs {
        model_path,
        data,
        layout,
        instances,
        input,
        provider,
        held_out,
        truth,
        tune,
        tune_for,
        csv,
        quick,
        write,
    } = args;
    if tune && (input.object_size.is_some() || input.channel.is_some() || input.pixel_size.is_some()) {
        return Err(unet::Error::new(
            unet::UnetStatus::InvalidArgument,
            "--tune searches the post-processing of the images as they are: --object-size, --pixel-size and --channel \
             are not used by it (score with them without --tune)",
        ));
    }
    let (threshold, min_size) = (instances.threshold, instances.min_size);
    let args = ModelArgs {
        model: (model_path != "default").then(|| PathBuf::from(&model_path)),
        provider,
        threads: 0,
        ort_lib: None,
    };
    let model = args.load()?;
    let held_out = if tune { held_out.or(Some(0.2)) } else { held_out };
    let sets = scoring_sets(&data, layout.as_deref(), &truth, held_out)?;
    let method = instances.method(&model)?;
    let connectivity = instances.connectivity();
    let test_time_augmentation = instances.tta;
    let options = || SegmentOptions {
        threshold,
        min_size,
        instances: method,
        connectivity,
        test_time_augmentation,
        channel: input.channel,
        object_size: input.object_size.unwrap_or_default(),
        pixel_size: input.pixel_size,
        ..Default::default()
    };
    let mut table = String::from("set,truth,images,objects,instances,ap50,ap75,seg,iou,tp50,fp50,fn50\n");
    for (dir, truth_name, samples) in &sets {
        let started = Instant::now();
        let s = unet::evaluate::evaluate_with(&model, samples, &options)?;
        table += &format!(
            "{},{truth_name},{},{},{},{:.4},{:.4},{:.4},{:.4},{},{},{}\n",
            data_name(&dir.display().to_string()).replace(',', "_"),
            s.images,
            s.objects,
            s.instances,
            s.ap50(),
            s.ap75(),
            s.seg,
            s.iou,
            s.at50.true_positives,
            s.at50.false_positives,
            s.at50.false_negatives
        );
        println!(
            "{} [{truth_name}]: AP@0.5 {:.4} (TP {}, FP {}, FN {}), AP@0.75 {:.4}, SEG {:.4}, foreground IoU \
             {:.4}, Rand error {:.4} (unassigned as one segment {:.4}), pixel error {:.4} over {} image(s), {} \
             object(s), {} instance(s), {:.1} s",
            dir.display(),
            s.ap50(),
            s.at50.true_positives,
            s.at50.false_positives,
            s.at50.false_negatives,
            s.ap75(),
            s.seg,
            s.iou,
            s.rand_error,
            s.rand_error_strict,
            s.pixel_error,
            s.images,
            s.objects,
            s.instances,
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(path) = &csv {
        unet::fsutil::write_atomic(path, table.as_bytes())
            .map_err(|e| unet::Error::new(unet::UnetStatus::Io, format!("{}: {e}", path.display())))?;
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
            TuneFor::ApSeg => unet::evaluate::TuneObjective::ApSeg,
            TuneFor::Seg => unet::evaluate::TuneObjective::Seg,
            TuneFor::Rand => unet::evaluate::TuneObjective::RandFScore,
        };
        let base = if quick { unet::evaluate::TuneGrid::quick() } else { unet::evaluate::TuneGrid::default() };
        let grid = unet::evaluate::TuneGrid { test_time_augmentation, objective, ..base };
        tune_post_processing(&model, &model_path, &chosen, &grid, connectivity, write.as_deref())?;
    }
    Ok(())
}

/// (dataset, truth name, samples) to score: every annotated image of each dataset, or the held-out tail of each
/// sequence; CTC datasets by silver truth, gold truth or both.
fn scoring_sets(
    data: &[PathBuf],
    layout: Option<&str>,
    truth: &str,
    held_out: Option<f64>,
) -> unet::Result<Vec<(PathBuf, &'static str, Vec<unet::dataset::Sample>)>> {
    use unet::dataset::{Layout, Truth, load_with};
    let mut sets = Vec::new();
    for dir in data {
        let layout = match layout {
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
        let truths: &[(&'static str, Truth)] = match (layout, truth) {
            (Layout::Ctc, "silver") => &[("silver", Truth::Silver)],
            (Layout::Ctc, "gold") => &[("gold", Truth::Gold)],
            (Layout::Ctc, _) => &[("silver", Truth::Silver), ("gold", Truth::Gold)],
            _ => &[("truth", Truth::Gold)],
        };
        for &(name, t) in truths {
            let split = load_with(dir, layout, t, t, held_out.unwrap_or(0.0))?;
            let total = split.train.len() + split.val.len();
            let samples = if held_out.is_some() { split.val } else { split.train };
            if samples.is_empty() && name == "gold" && truth == "both" {
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
            // A folder whose manifest names image kinds is scored per kind (e.g. DSB 2018's fluorescence,
            // brightfield and stained tissue), each kind a set of its own.
            let mut kinds: Vec<Option<String>> = Vec::new();
            for s in &samples {
                if !kinds.contains(&s.kind) {
                    kinds.push(s.kind.clone());
                }
            }
            if kinds.len() <= 1 && kinds.first().is_none_or(Option::is_none) {
                sets.push((dir.clone(), name, samples));
                continue;
            }
            let mut samples = samples;
            for kind in kinds {
                let (these, rest): (Vec<_>, Vec<_>) = samples.into_iter().partition(|s| s.kind == kind);
                samples = rest;
                sets.push((dir.join(kind.as_deref().unwrap_or("other")), name, these));
            }
        }
    }
    Ok(sets)
}
