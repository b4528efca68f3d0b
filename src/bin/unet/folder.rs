//! `unet segment FOLDER|STACK.tif --out-dir DIR`: every image of a folder (a plate's fields, a time-lapse saved frame
//! by frame) or every page of a multi-page TIFF (a time-lapse stack, read one page at a time), one model load, one
//! progress bar for the whole job, a summary CSV, and resume: each frame's outputs and the summary are written
//! atomically, so after a stop the next run skips what is complete and redoes the rest.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Instant,
};

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use unet::{
    Connectivity, InstanceMethod, Model, Normalization, Result, SegmentOptions, SegmentOutputs, UnetStatus,
    imageio::{OwnedImage, Plane, read_image, read_tiff_page, tiff_pages, write_plane},
};

/// One frame of a job: its name in the summary, the stem of its output files, where its pixels are.
struct Frame {
    name: String,
    stem: String,
    page: Option<usize>,
    path: PathBuf,
}

impl Frame {
    fn read(&self) -> Result<OwnedImage> {
        match self.page {
            Some(index) => read_tiff_page(&self.path, index),
            None => read_image(&self.path),
        }
    }
}

/// The frames of `input`: a folder's TIFF and PNG images by name, or a TIFF's pages (`NAME[3]`, outputs
/// `STEM-t0003-...`).
fn frames_of(input: &Path) -> Result<Vec<Frame>> {
    let stem_of = |p: &Path| p.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let name_of = |p: &Path| p.file_name().map(|n| n.to_string_lossy().replace(',', "_")).unwrap_or_default();
    if input.is_dir() {
        return Ok(images_in(input)?
            .into_iter()
            .map(|path| Frame { name: name_of(&path), stem: stem_of(&path), page: None, path })
            .collect());
    }
    let pages = tiff_pages(input)?;
    Ok((0..pages)
        .map(|i| Frame {
            name: format!("{}[{i}]", name_of(input)),
            stem: format!("{}-t{i:04}", stem_of(input)),
            page: Some(i),
            path: input.to_path_buf(),
        })
        .collect())
}

/// An output written for each image of a folder job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FolderOutput {
    /// NAME-labels.tif: instance labels, 32-bit.
    Labels,
    /// NAME-mask.png: 0/255 (two classes), else the class index.
    Mask,
    /// NAME-probabilities.tif: foreground probability, float32.
    Probabilities,
    /// NAME-overlay.png: instance outlines over the image.
    Overlay,
}

impl FolderOutput {
    fn file(self, out_dir: &Path, stem: &str) -> PathBuf {
        out_dir.join(match self {
            FolderOutput::Labels => format!("{stem}-labels.tif"),
            FolderOutput::Mask => format!("{stem}-mask.png"),
            FolderOutput::Probabilities => format!("{stem}-probabilities.tif"),
            FolderOutput::Overlay => format!("{stem}-overlay.png"),
        })
    }
}

/// The per-image segmentation settings of the CLI, single image or job (everything of [`SegmentOptions`] but the
/// progress callback, so one value serves every call).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub threshold: Option<f32>,
    pub min_size: usize,
    pub instances: Option<InstanceMethod>,
    pub connectivity: Connectivity,
    pub memory_budget: usize,
    pub max_tile: Option<usize>,
    pub tiles_per_run: usize,
    pub normalization: Option<Normalization>,
    pub test_time_augmentation: bool,
    pub channel: Option<usize>,
    pub object_size: unet::ObjectSize,
    /// The pixel size given on the command line (micrometres); else each file's own, when it records one.
    pub pixel_size: Option<f32>,
}

impl Settings {
    /// The options of one `segment` call with these settings and `progress`.
    /// These settings for the image in `path`: its recorded pixel size unless one was given.
    pub fn for_file(self, path: &Path) -> Settings {
        let pixel_size = self.pixel_size.or_else(|| {
            unet::pixel_size::read_pixel_size(path)
                .map(|p| p.x as f32)
                .filter(|&um| unet::metadata::valid_pixel_size(um))
        });
        Settings { pixel_size, ..self }
    }

    pub fn with_progress<'p>(self, progress: &'p mut unet::segment::ProgressFn<'p>) -> SegmentOptions<'p> {
        SegmentOptions {
            threshold: self.threshold,
            min_size: self.min_size,
            instances: self.instances,
            connectivity: self.connectivity,
            memory_budget: self.memory_budget,
            max_tile: self.max_tile,
            tiles_per_run: self.tiles_per_run,
            normalization: self.normalization,
            test_time_augmentation: self.test_time_augmentation,
            channel: self.channel,
            object_size: self.object_size,
            pixel_size: self.pixel_size,
            progress: Some(progress),
        }
    }
}

/// The summary's columns, one row per image.
const HEADER: &str = "image,width,height,instances,foreground_pixels,mean_instance_area,tiles,seconds,status";
const SUMMARY: &str = "summary.csv";

/// Images of `dir` (TIFF, PNG), sorted by name.
fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| unet::Error::new(UnetStatus::Io, format!("cannot read the folder {}: {e}", dir.display())))?;
    let mut images: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "tif" | "tiff" | "png"))
        })
        .collect();
    images.sort();
    Ok(images)
}

/// One CSV field as RFC 4180 writes it: quoted (quotes doubled) when it holds a comma, a quote or a line break, so
/// an error message keeps its punctuation.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// Rows of an earlier run's summary that say "done", by image name.
fn done_rows(out_dir: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(out_dir.join(SUMMARY)).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter(|row| row.ends_with(",done"))
        .filter_map(|row| row.split(',').next().map(|name| (name.to_string(), row.to_string())))
        .collect()
}

/// Segments every frame of `input` (a folder or a multi-page TIFF) into `out_dir`. Frames whose outputs and
/// summary row an earlier run completed are skipped; a frame that fails is recorded (status `failed: why`) and the
/// job goes on. Returns an error naming how many failed, after the summary is written.
pub fn segment_frames(
    model: &Model,
    input: &Path,
    out_dir: &Path,
    save: &[FolderOutput],
    settings: Settings,
    quiet: bool,
) -> Result<()> {
    let frames = frames_of(input)?;
    if frames.is_empty() {
        return Err(unet::Error::new(
            UnetStatus::InvalidArgument,
            format!("{} holds no TIFF or PNG image", input.display()),
        ));
    }
    std::fs::create_dir_all(out_dir)
        .map_err(|e| unet::Error::new(UnetStatus::Io, format!("cannot create {}: {e}", out_dir.display())))?;
    let earlier = done_rows(out_dir);
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(frames.len() as u64) };
    bar.set_style(
        ProgressStyle::with_template("{spinner} frames [{bar:40}] {pos}/{len} {msg}, {elapsed} (eta {eta})")
            .unwrap()
            .progress_chars("=> "),
    );
    let (mut rows, mut failed, mut skipped) = (Vec::new(), 0, 0);
    for frame in &frames {
        let outputs: Vec<PathBuf> = save.iter().map(|o| o.file(out_dir, &frame.stem)).collect();
        let row = match earlier.get(&frame.name) {
            Some(row) if outputs.iter().all(|p| p.is_file()) => {
                skipped += 1;
                row.clone()
            }
            _ => {
                bar.set_message(frame.name.clone());
                match segment_one(model, frame, &outputs, save, settings, &bar) {
                    Ok(row) => format!("{},{row},done", frame.name),
                    Err(e) => {
                        failed += 1;
                        bar.println(format!("{}: {e}", frame.name));
                        // One line per row: line breaks become spaces; commas stay, quoted.
                        let why = e.to_string().replace(['\n', '\r'], " ");
                        format!("{},,,,,,,,{}", frame.name, csv_field(&format!("failed: {why}")))
                    }
                }
            }
        };
        rows.push(row);
        // After every frame, so that a stopped job keeps what it finished.
        let csv = format!("{HEADER}\n{}\n", rows.join("\n"));
        unet::fsutil::write_atomic(&out_dir.join(SUMMARY), csv.as_bytes())
            .map_err(|e| unet::Error::new(UnetStatus::Io, format!("cannot write {SUMMARY}: {e}")))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    eprintln!(
        "{} image(s): {} segmented, {skipped} already done, {failed} failed; summary in {}",
        frames.len(),
        frames.len() - skipped - failed,
        out_dir.join(SUMMARY).display()
    );
    if failed > 0 {
        return Err(unet::Error::new(
            UnetStatus::InvalidArgument,
            format!("{failed} of {} image(s) failed (see {})", frames.len(), out_dir.join(SUMMARY).display()),
        ));
    }
    Ok(())
}

/// One image: segments it, writes its outputs, returns its summary columns from width to seconds.
fn segment_one(
    model: &Model,
    frame: &Frame,
    outputs: &[PathBuf],
    save: &[FolderOutput],
    s: Settings,
    bar: &ProgressBar,
) -> Result<String> {
    let started = Instant::now();
    let img = frame.read()?;
    let view = img.view()?;
    let (w, h, area) = (img.width, img.height, view.area());
    let wants = |o: FolderOutput| save.contains(&o);
    let mut mask = wants(FolderOutput::Mask).then(|| vec![0u8; area]);
    let mut probabilities = wants(FolderOutput::Probabilities).then(|| vec![0f32; area]);
    // Labels always: the summary counts instances.
    let mut labels = vec![0u32; area];
    let mut on_progress = |p: unet::Progress| {
        bar.set_message(format!("{}: tile {}/{}", frame.name, p.done, p.total));
        true
    };
    let report = model.segment(
        &view,
        s.for_file(&frame.path).with_progress(&mut on_progress),
        SegmentOutputs {
            probabilities: probabilities.as_deref_mut(),
            mask: mask.as_deref_mut(),
            labels: Some(&mut labels),
        },
    )?;
    for (kind, file) in save.iter().zip(outputs) {
        match kind {
            FolderOutput::Labels => write_plane(file, Plane::U32(&labels), w, h)?,
            FolderOutput::Mask => {
                let mut m = mask.take().expect("mask buffer");
                if model.metadata().arch.classes == 2 {
                    m.iter_mut().for_each(|v| *v = if *v != 0 { 255 } else { 0 });
                }
                write_plane(file, Plane::U8(&m), w, h)?
            }
            FolderOutput::Probabilities => {
                write_plane(file, Plane::F32(probabilities.as_deref().expect("probability buffer")), w, h)?
            }
            FolderOutput::Overlay => unet::imageio::write_overlay(file, &view, &labels)?,
        }
    }
    let foreground = labels.iter().filter(|&&l| l != 0).count();
    let count = report.label_count as usize;
    let mean_area = if count > 0 { foreground as f64 / count as f64 } else { 0.0 };
    Ok(format!("{w},{h},{count},{foreground},{mean_area:.1},{},{:.3}", report.tiles, started.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_keep_commas_and_quotes() {
        assert_eq!(super::csv_field("done"), "done");
        assert_eq!(
            super::csv_field("failed: expects 1 channel(s), the image has 2"),
            "\"failed: expects 1 channel(s), the image has 2\""
        );
        assert_eq!(super::csv_field("a \"b\"\nc"), "\"a \"\"b\"\"\nc\"");
    }
}
