//! Annotated images for training and evaluation, in three layouts:
//! - **Cell Tracking Challenge** (`DATASET/01/tNNN.tif`, `01_GT/SEG/man_segNNN.tif` gold truth, `01_ST/SEG/`
//!   silver truth; every numbered sequence found is used);
//! - **ISBI 2012** (`train/image/N.png`, `train/label/N.png`, 255 = cell interior, 0 = membrane; instances are the
//!   connected interiors);
//! - **folders** (`images/NAME` and `labels/NAME` with the same names; binary masks become connected components).
//!
//! Gold truth in the CTC data is sparse: some cells of an annotated frame are left unlabelled. Training on it as
//! it is would teach the network that those cells are background, so [`Truth`] chooses: silver truth (every frame,
//! complete but less exact; the default), gold truth, or gold truth with pixels that silver truth calls cell but
//! gold leaves unlabelled *ignored* (weight 0). Validation always uses gold truth where a frame has it.

use std::path::{Path, PathBuf};

use crate::{
    error::{Error, Result, UnetStatus},
    imageio::{OwnedImage, read_image, read_labels},
    labels::{Connectivity, label_components},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Ctc,
    Isbi,
    Folders,
}

impl Layout {
    /// Guesses the layout of a folder.
    pub fn detect(dir: &Path) -> Option<Layout> {
        if dir.join("train/image").is_dir() {
            Some(Layout::Isbi)
        } else if dir.join("images").is_dir() && dir.join("labels").is_dir() {
            Some(Layout::Folders)
        } else if dir.join("01").is_dir() {
            Some(Layout::Ctc)
        } else {
            None
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truth {
    Silver,
    Gold,
    GoldIgnoreUnannotated,
}

/// One annotated image.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub image: OwnedImage,
    /// Instance labels, 0 = background.
    pub labels: Vec<u32>,
    /// Non-zero where the annotation says nothing (the loss ignores these pixels).
    pub ignore: Option<Vec<u8>>,
    /// The image's kind from the folder's `manifest.csv` (e.g. DSB 2018's fluorescence, brightfield, stained):
    /// evaluation reports each kind on its own.
    pub kind: Option<String>,
}

impl Sample {
    pub fn width(&self) -> usize {
        self.image.width
    }
    pub fn height(&self) -> usize {
        self.image.height
    }
}

/// Training and validation samples.
#[derive(Clone, Debug, Default)]
pub struct Split {
    pub train: Vec<Sample>,
    pub val: Vec<Sample>,
}

/// The median instance diameter (2 sqrt(area / pi), 0.1 px steps) over every image of `samples`: what a model
/// trained on them records as its object size.
pub fn median_object_diameter(samples: &[Sample]) -> Option<f32> {
    let all: Vec<f64> = samples.iter().flat_map(|s| crate::object_size::diameters(&s.labels)).collect();
    crate::object_size::median(all)
        .map(|d| (d * 10.0).round() / 10.0)
        .filter(|&d| crate::metadata::valid_object_size(d))
}

fn io(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::new(UnetStatus::Io, format!("{}: {what}", path.display()))
}

fn sorted_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref(),
                Some("tif" | "tiff" | "png")
            )
        })
        .collect();
    // Natural order: "10.png" after "9.png".
    v.sort_by_key(|p| {
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string();
        let digits: String = stem.chars().filter(|c| c.is_ascii_digit()).collect();
        (digits.parse::<u64>().unwrap_or(u64::MAX), stem)
    });
    Ok(v)
}

fn frame_number(path: &Path) -> Option<usize> {
    let stem = path.file_stem()?.to_str()?;
    stem.chars().filter(|c| c.is_ascii_digit()).collect::<String>().parse().ok()
}

/// Instance labels from a mask that may be binary (one foreground value): connected components then.
fn to_instances(mut labels: Vec<u32>, w: usize, h: usize) -> Vec<u32> {
    let mut values: Vec<u32> = labels.iter().copied().filter(|&v| v != 0).take(1_000_000).collect();
    values.sort_unstable();
    values.dedup();
    if values.len() == 1 {
        label_components(&mut labels, w, h, Connectivity::Four, 0);
    }
    labels
}

fn check_size(name: &Path, image: &OwnedImage, w: usize, h: usize) -> Result<()> {
    if (image.width, image.height) != (w, h) {
        return Err(io(name, format!("labels are {w}x{h} but the image is {}x{}", image.width, image.height)));
    }
    Ok(())
}

/// Loads `dir` and splits it: the last `val_fraction` of each sequence (by frame order) is validation, scored on
/// gold truth (CTC frames without gold truth are left out of validation).
pub fn load(dir: &Path, layout: Layout, truth: Truth, val_fraction: f64) -> Result<Split> {
    load_with(dir, layout, truth, Truth::Gold, val_fraction)
}

/// [`load`] with a choice of validation truth for CTC data: `Truth::Silver` validates on every held-out frame
/// (silver truth, complete), `Truth::Gold` only on the frames with gold truth (sparse, more exact).
pub fn load_with(dir: &Path, layout: Layout, truth: Truth, val_truth: Truth, val_fraction: f64) -> Result<Split> {
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(Error::invalid_argument(format!("validation fraction {val_fraction} is not in [0, 1)")));
    }
    match layout {
        Layout::Ctc => load_ctc(dir, truth, val_truth, val_fraction),
        Layout::Isbi => {
            let images = sorted_files(&dir.join("train/image"))?;
            let samples = images
                .iter()
                .map(|p| {
                    let label_path = dir.join("train/label").join(p.file_name().unwrap());
                    let image = read_image(p)?;
                    let (membrane, w, h) = read_labels(&label_path)?;
                    check_size(&label_path, &image, w, h)?;
                    let mut interior: Vec<u32> = membrane.iter().map(|&v| u32::from(v > 127)).collect();
                    label_components(&mut interior, w, h, Connectivity::Four, 0);
                    Ok(Sample { name: p.display().to_string(), image, labels: interior, ignore: None, kind: None })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(split_tail(samples, val_fraction))
        }
        Layout::Folders => {
            let images = sorted_files(&dir.join("images"))?;
            let kinds = read_manifest_kinds(dir)?;
            let samples = images
                .iter()
                .map(|p| {
                    let label_path = dir.join("labels").join(p.file_name().unwrap());
                    let image = read_image(p)?;
                    let (labels, w, h) = read_labels(&label_path)?;
                    check_size(&label_path, &image, w, h)?;
                    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                    Ok(Sample {
                        name: p.display().to_string(),
                        image,
                        labels: to_instances(labels, w, h),
                        ignore: None,
                        kind: kinds.as_ref().and_then(|k| k.get(stem).cloned()),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(if kinds.is_some() { split_by_kind(samples, val_fraction) } else { split_tail(samples, val_fraction) })
        }
    }
}

/// `id -> kind` from the folder's `manifest.csv` (a header with `id` and `kind` columns), if it has one.
fn read_manifest_kinds(dir: &Path) -> Result<Option<std::collections::HashMap<String, String>>> {
    let path = dir.join("manifest.csv");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').map(str::trim).collect();
    let column = |name: &str| header.iter().position(|&h| h == name);
    let (Some(id), Some(kind)) = (column("id"), column("kind")) else {
        return Err(io(&path, "a manifest needs `id` and `kind` columns"));
    };
    let mut kinds = std::collections::HashMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        match (fields.get(id), fields.get(kind)) {
            (Some(i), Some(k)) => kinds.insert(i.to_string(), k.to_string()),
            _ => return Err(io(&path, format!("short line: {line}"))),
        };
    }
    Ok(Some(kinds))
}

/// A fixed validation part per image kind, by image: within each kind (images in name order) every n-th image,
/// n = round(1 / val_fraction), ending with the last, validates. Each kind is then represented in both parts, which
/// a tail split of names (random hex ids) does not promise.
fn split_by_kind(samples: Vec<Sample>, val_fraction: f64) -> Split {
    let mut split = Split::default();
    if val_fraction <= 0.0 {
        split.train = samples;
        return split;
    }
    let every = (1.0 / val_fraction).round().max(1.0) as usize;
    let mut by_kind: Vec<(Option<String>, Vec<Sample>)> = Vec::new();
    for s in samples {
        match by_kind.iter_mut().find(|(k, _)| *k == s.kind) {
            Some((_, v)) => v.push(s),
            None => by_kind.push((s.kind.clone(), vec![s])),
        }
    }
    for (_, group) in by_kind {
        let n = group.len();
        for (i, s) in group.into_iter().enumerate() {
            if (n - 1 - i) % every == 0 { split.val.push(s) } else { split.train.push(s) }
        }
    }
    split
}

fn split_tail(mut samples: Vec<Sample>, val_fraction: f64) -> Split {
    let n_val = ((samples.len() as f64) * val_fraction).round() as usize;
    let val = samples.split_off(samples.len() - n_val.min(samples.len()));
    Split { train: samples, val }
}

fn load_ctc(dir: &Path, truth: Truth, val_truth: Truth, val_fraction: f64) -> Result<Split> {
    let mut sequences: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.len() == 2 && n.chars().all(|c| c.is_ascii_digit()))
        })
        .collect();
    sequences.sort();
    if sequences.is_empty() {
        return Err(io(dir, "no Cell Tracking Challenge sequence (01, 02, ...) found"));
    }
    let mut split = Split::default();
    for seq in sequences {
        let name = seq.file_name().unwrap().to_str().unwrap().to_string();
        let frames = sorted_files(&seq)?;
        let n = frames.len();
        let first_val = ((n as f64) * (1.0 - val_fraction)).round() as usize;
        let mask = |kind: &str, frame: usize| -> Option<PathBuf> {
            let p = dir.join(format!("{name}_{kind}/SEG/man_seg{frame:03}.tif"));
            p.exists().then_some(p)
        };
        for (i, frame_path) in frames.iter().enumerate() {
            let Some(frame) = frame_number(frame_path) else { continue };
            let is_val = i >= first_val;
            let (gold, silver) = (mask("GT", frame), mask("ST", frame));
            let chosen = match if is_val { val_truth } else { truth } {
                Truth::Silver => silver.clone().or(gold.clone()),
                Truth::Gold | Truth::GoldIgnoreUnannotated => gold.clone(),
            };
            let Some(label_path) = chosen else { continue };
            let image = read_image(frame_path)?;
            let (labels, w, h) = read_labels(&label_path)?;
            check_size(&label_path, &image, w, h)?;
            let ignore = match (is_val, truth, &silver) {
                (false, Truth::GoldIgnoreUnannotated, Some(st)) if gold.as_ref() == Some(&label_path) => {
                    let (s, _, _) = read_labels(st)?;
                    Some(s.iter().zip(&labels).map(|(&s, &g)| u8::from(s != 0 && g == 0)).collect())
                }
                _ => None,
            };
            let sample = Sample { name: label_path.display().to_string(), image, labels, ignore, kind: None };
            if is_val { split.val.push(sample) } else { split.train.push(sample) }
        }
    }
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imageio::{Plane, write_plane};

    #[test]
    fn ctc_layout_split_and_truth() {
        let dir = std::env::temp_dir().join(format!("unet-ctc-{}", std::process::id()));
        for sub in ["01", "01_GT/SEG", "01_ST/SEG"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let img = vec![100u16; 8 * 6];
        let mut lab = vec![0u16; 8 * 6];
        lab[10] = 3;
        for t in 0..10 {
            write_plane(&dir.join(format!("01/t{t:03}.tif")), Plane::U16(&img), 8, 6).unwrap();
            write_plane(&dir.join(format!("01_ST/SEG/man_seg{t:03}.tif")), Plane::U16(&lab), 8, 6).unwrap();
        }
        for t in [2, 8] {
            write_plane(&dir.join(format!("01_GT/SEG/man_seg{t:03}.tif")), Plane::U16(&lab), 8, 6).unwrap();
        }
        assert_eq!(Layout::detect(&dir), Some(Layout::Ctc));
        let s = load(&dir, Layout::Ctc, Truth::Silver, 0.2).unwrap();
        assert_eq!((s.train.len(), s.val.len()), (8, 1), "silver: frames 0-7 train, gold frame 8 validates");
        assert!(s.val[0].name.contains("GT/SEG/man_seg008"));
        let g = load(&dir, Layout::Ctc, Truth::Gold, 0.2).unwrap();
        assert_eq!((g.train.len(), g.val.len()), (1, 1));
        let gi = load(&dir, Layout::Ctc, Truth::GoldIgnoreUnannotated, 0.2).unwrap();
        assert!(gi.train[0].ignore.is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_manifest_splits_each_kind_on_its_own() {
        let dir = std::env::temp_dir().join(format!("unet-kinds-{}", std::process::id()));
        for sub in ["images", "labels"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let mut manifest = String::from("id,kind,width,height,nuclei\n");
        // 12 "a" images and 3 "b" ones, names interleaved.
        for i in 0..15 {
            let kind = if i % 5 == 4 { "b" } else { "a" };
            manifest += &format!("img{i:02},{kind},4,3,1\n");
            let mut lab = vec![0u16; 12];
            lab[i % 12] = 7;
            write_plane(&dir.join(format!("images/img{i:02}.png")), Plane::U8(&[i as u8; 12]), 4, 3).unwrap();
            write_plane(&dir.join(format!("labels/img{i:02}.png")), Plane::U16(&lab), 4, 3).unwrap();
        }
        std::fs::write(dir.join("manifest.csv"), manifest).unwrap();
        let s = load(&dir, Layout::Folders, Truth::Gold, 0.25).unwrap();
        let names = |v: &[Sample]| -> Vec<String> {
            v.iter()
                .map(|s| format!("{}:{}", s.kind.as_deref().unwrap(), &s.name[s.name.len() - 6..s.name.len() - 4]))
                .collect()
        };
        // Every 4th image of each kind in name order, ending with its last: a's 4th, 8th and 12th, b's 3rd.
        assert_eq!(names(&s.val), ["a:03", "a:08", "a:13", "b:14"]);
        assert_eq!(s.train.len(), 11);
        assert!(s.train.iter().all(|t| t.kind.is_some()));
        let all = load(&dir, Layout::Folders, Truth::Gold, 0.0).unwrap();
        assert_eq!((all.train.len(), all.val.len()), (15, 0));
        // A manifest without a kind column is an error, not a silent tail split.
        std::fs::write(dir.join("manifest.csv"), "name,size\nimg00,1\n").unwrap();
        assert!(load(&dir, Layout::Folders, Truth::Gold, 0.25).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn isbi_layout_interiors_become_instances() {
        let dir = std::env::temp_dir().join(format!("unet-isbi-{}", std::process::id()));
        for sub in ["train/image", "train/label"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        // Membrane (0) grid splitting the interior (255) into 4 cells.
        let (w, h) = (9, 7);
        let label: Vec<u8> = (0..w * h).map(|i| if i % w == 4 || i / w == 3 { 0 } else { 255 }).collect();
        for k in 0..5 {
            write_plane(&dir.join(format!("train/image/{k}.png")), Plane::U8(&vec![k as u8; w * h]), w, h).unwrap();
            write_plane(&dir.join(format!("train/label/{k}.png")), Plane::U8(&label), w, h).unwrap();
        }
        assert_eq!(Layout::detect(&dir), Some(Layout::Isbi));
        let s = load(&dir, Layout::Isbi, Truth::Silver, 0.2).unwrap();
        assert_eq!((s.train.len(), s.val.len()), (4, 1));
        assert!(s.val[0].name.ends_with("4.png"), "natural order: the last slice validates");
        assert_eq!(s.train[0].labels.iter().max(), Some(&4), "four interiors, four instances");
        assert_eq!(s.train[0].labels[4], 0, "membrane is background");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
