//! Running bioimage.io model packages made by others (`--model PACKAGE.zip`, `rdf.yaml` or its folder; a zip in
//! memory through the C ABI): the package's rdf.yaml says how to feed its ONNX network, and [`adapter`] wraps the
//! network in unet's convention, so the result loads like any unet model. What cannot run (other weight formats,
//! 3-D, statistics unet does not compute) is refused with the field named.
//!
//! Mapping: the first per-image statistics step (`scale_range` percentiles, `zero_mean_unit_variance`) becomes
//! unet's normalisation; fixed steps (`scale_linear`, `fixed_zero_mean_unit_variance`, `clip`) and the
//! post-processing (`sigmoid`, `softmax`, ...) become graph nodes; the output's `size.offset` and `halo` become
//! the tiling halo. Output channels: one channel is the foreground probability; several are class probabilities
//! (background first) when the first is named "background" or a softmax ends the post-processing, otherwise the
//! first channel is taken as the foreground probability (e.g. foreground + boundary outputs).

mod adapter;
pub mod rdf;
mod wire;

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use self::{
    adapter::{OutputMeaning, Wrapping},
    rdf::{InputSize, Package, Step},
};
use crate::{
    error::{Error, Result, UnetStatus},
    geometry::{Architecture, Geometry},
    metadata::{ImportedNetwork, ModelMetadata, Normalization},
    net::model_files::{MAX_MODEL_BYTES, read_model_file},
};

/// File names a package's description may have (the zip's top level or the folder).
const RDF_NAMES: [&str; 2] = ["rdf.yaml", "bioimageio.yaml"];
/// The most a description may hold (they are a few KB).
const MAX_RDF_BYTES: u64 = 4 << 20;
/// Tile-origin grid for networks of one fixed input size (the package gives no step): a multiple of the pooling
/// steps of most 2-D U-Nets.
const FIXED_SIZE_GRID: usize = 8;

/// Whether the bytes are a zip archive (a bioimage.io package in memory).
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// Whether `path` names a bioimage.io package: a `.zip` file, a `.yaml` description, or a folder holding one.
pub fn is_package_path(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    matches!(ext.as_deref(), Some("zip" | "yaml" | "yml")) || (path.is_dir() && rdf_in_folder(path).is_some())
}

fn rdf_in_folder(dir: &Path) -> Option<PathBuf> {
    RDF_NAMES.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

fn incompatible(m: impl Into<String>) -> Error {
    Error::new(UnetStatus::ModelIncompatible, m.into())
}

/// The package at `path` as a unet ONNX model (bytes).
pub fn import_path(path: &Path) -> Result<Vec<u8>> {
    if path.is_dir() {
        let rdf = rdf_in_folder(path)
            .ok_or_else(|| incompatible(format!("{} holds no rdf.yaml or bioimageio.yaml", path.display())))?;
        return import_description(&rdf);
    }
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if matches!(ext.as_deref(), Some("yaml" | "yml")) {
        return import_description(path);
    }
    import_zip(&read_model_file(path)?).map_err(|e| e.context(path.display().to_string()))
}

fn import_description(rdf_path: &Path) -> Result<Vec<u8>> {
    let folder = rdf_path.parent().unwrap_or(Path::new("."));
    let text = read_text(rdf_path)?;
    import_with(&text, |name| read_model_file(&folder.join(name)))
        .map_err(|e| e.context(rdf_path.display().to_string()))
}

fn read_text(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::new(UnetStatus::ModelNotFound, format!("cannot read {}: {e}", path.display())))?;
    if !meta.is_file() || meta.len() > MAX_RDF_BYTES {
        return Err(incompatible(format!("{} is not a description file (a regular file under 4 MB)", path.display())));
    }
    std::fs::read_to_string(path).map_err(|e| incompatible(format!("cannot read {}: {e}", path.display())))
}

/// A package zip in memory as a unet ONNX model (bytes).
pub fn import_zip(bytes: &[u8]) -> Result<Vec<u8>> {
    let invalid = |e: zip::result::ZipError| Error::new(UnetStatus::ModelInvalid, format!("not a readable zip: {e}"));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(invalid)?;
    let mut read = |name: &str, limit: u64| -> Result<Vec<u8>> {
        let mut entry = archive.by_name(name).map_err(|_| incompatible(format!("the package has no file '{name}'")))?;
        if entry.size() > limit {
            return Err(incompatible(format!("'{name}' unpacks to {} bytes (at most {limit})", entry.size())));
        }
        let mut out = Vec::new();
        out.try_reserve_exact(entry.size() as usize)
            .map_err(|_| Error::new(UnetStatus::OutOfMemory, format!("cannot allocate {} bytes", entry.size())))?;
        // `take` bounds what a lying header can make us unpack.
        (&mut entry).take(limit + 1).read_to_end(&mut out).map_err(|e| invalid(e.into()))?;
        if out.len() as u64 > limit {
            return Err(incompatible(format!("'{name}' unpacks to more than {limit} bytes")));
        }
        Ok(out)
    };
    let rdf_name = RDF_NAMES
        .iter()
        .find(|n| read(n, MAX_RDF_BYTES).is_ok())
        .ok_or_else(|| incompatible("the zip holds no rdf.yaml or bioimageio.yaml: not a bioimage.io package"))?;
    let text = String::from_utf8(read(rdf_name, MAX_RDF_BYTES)?)
        .map_err(|_| incompatible(format!("{rdf_name} is not UTF-8 text")))?;
    import_with(&text, |name| read(name, MAX_MODEL_BYTES))
}

/// Reads the description, fetches its ONNX weights through `read` (a name inside the package) and wraps them.
fn import_with(rdf_text: &str, mut read: impl FnMut(&str) -> Result<Vec<u8>>) -> Result<Vec<u8>> {
    let package = rdf::parse(rdf_text)?;
    let source = &package.weights_source;
    if source.contains("://") {
        return Err(incompatible(format!(
            "weights.onnx.source '{source}' is a URL; unet reads only files inside the package (download it first)"
        )));
    }
    let weights = read(source.trim_start_matches("./"))?;
    if let Some(expected) = &package.weights_sha256 {
        let actual: String = Sha256::digest(&weights).iter().map(|b| format!("{b:02x}")).collect();
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(Error::new(
                UnetStatus::ModelInvalid,
                format!("weights.onnx.sha256: {source} has sha256 {actual}, the package says {expected}"),
            ));
        }
    }
    let (wrapping, _) = plan(&package)?;
    adapter::wrap(&weights, &wrapping)
}

/// How to wrap the package's network, and the metadata the wrapped model carries.
pub fn plan(p: &Package) -> Result<(Wrapping, ModelMetadata)> {
    let (normalization, input_steps) = split_input_steps(&p.input.steps)?;
    if let Some(s) = p.output.steps.iter().find(|s| matches!(s, Step::ScaleRange { .. } | Step::ZeroMeanUnitVariance)) {
        return Err(incompatible(format!(
            "outputs[0].postprocessing: {s:?} needs statistics of the whole output; unet cannot run it"
        )));
    }
    let channels_in = p.input.channels;
    let channels_out = p.output.channels;
    if !(1..=64).contains(&channels_in) || !(1..=255).contains(&channels_out) {
        return Err(incompatible(format!("{channels_in} input and {channels_out} output channels are out of range")));
    }
    for s in &input_steps {
        if let Step::Affine { gain, offset } = s
            && (gain.len().max(offset.len()) != 1 && gain.len().max(offset.len()) != channels_in)
        {
            return Err(incompatible("inputs[0].preprocessing: one value or one per channel expected"));
        }
    }
    let first_named_background =
        p.output.channel_names.first().is_some_and(|n| n.to_lowercase().contains("background"));
    let meaning = if channels_out > 1 && (first_named_background || p.output.steps.contains(&Step::Softmax)) {
        OutputMeaning::Classes
    } else {
        OutputMeaning::Foreground { channel: 0 }
    };
    let max_batch = match (p.input.axes.contains(&rdf::Axis::Batch), p.input.fixed_batch) {
        (false, _) | (true, Some(1)) => Some(1),
        (true, Some(n)) => {
            return Err(incompatible(format!("inputs[0]: a batch of exactly {n}; unet needs 1 or a free batch")));
        }
        (true, None) => None,
    };
    let halo = p.network_crop + p.halo;
    let sizes = match p.input_size {
        InputSize::Fixed(n) => Geometry::declared(n, FIXED_SIZE_GRID, halo, true),
        InputSize::Free { min, step } => Geometry::declared(min, step, halo, false),
    }
    .ok_or_else(|| {
        incompatible(format!("input sizes {:?} leave no output pixel after a halo of {halo}", p.input_size))
    })?;
    let classes = if meaning == OutputMeaning::Classes { channels_out } else { 2 };
    let arch = Architecture { in_channels: channels_in, classes, base_width: 0, depth: 0 };
    let mut metadata = ModelMetadata::new(arch, provenance(p, normalization, meaning));
    metadata.normalization = normalization;
    if meaning == OutputMeaning::Classes && p.output.channel_names.len() == channels_out {
        metadata.class_names = p.output.channel_names.iter().map(|n| n.replace(',', " ")).collect();
    }
    metadata.imported = Some(ImportedNetwork { sizes, max_batch });
    let wrapping = Wrapping {
        input_axes: p.input.axes.clone(),
        output_axes: p.output.axes.clone(),
        input_steps,
        output_steps: p.output.steps.clone(),
        input_channels: channels_in,
        output_channels: channels_out,
        crop: p.halo,
        meaning,
        props: metadata.to_props(),
    };
    Ok((wrapping, metadata))
}

/// unet's normalisation (the first per-image statistics step) and the fixed steps after it.
fn split_input_steps(steps: &[Step]) -> Result<(Normalization, Vec<Step>)> {
    let mut normalization = Normalization::None;
    let mut fixed = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let statistics = match s {
            Step::ScaleRange { low, high } => Some(Normalization::Percentile { low: *low, high: *high }),
            Step::ZeroMeanUnitVariance => Some(Normalization::MeanStd),
            Step::Float32 => continue,
            Step::Sigmoid | Step::Softmax => {
                return Err(incompatible(format!("inputs[0].preprocessing[{i}]: {s:?} is not a pre-processing step")));
            }
            _ => None,
        };
        match statistics {
            Some(n) if fixed.is_empty() && normalization == Normalization::None => {
                n.validate().map_err(|e| incompatible(format!("inputs[0].preprocessing[{i}]: {}", e.message())))?;
                normalization = n;
            }
            Some(_) => {
                return Err(incompatible(format!(
                    "inputs[0].preprocessing[{i}]: unet computes per-image statistics once, as the first step"
                )));
            }
            None => fixed.push(s.clone()),
        }
    }
    Ok((normalization, fixed))
}

fn provenance(p: &Package, normalization: Normalization, meaning: OutputMeaning) -> String {
    let output = match meaning {
        OutputMeaning::Classes => format!("{} class probabilities, the first the background", p.output.channels),
        OutputMeaning::Foreground { channel } if p.output.channels > 1 => {
            format!("channel {channel} of {} taken as the foreground probability", p.output.channels)
        }
        OutputMeaning::Foreground { .. } => "a foreground probability".to_string(),
    };
    let mut s = format!(
        "bioimage.io package '{}' (format {}): {}; authors: {}; license: {}",
        p.name,
        p.format_version,
        p.description.trim(),
        p.authors.join(", "),
        p.license
    );
    if !p.citations.is_empty() {
        s += &format!("; cite: {}", p.citations.join(" / "));
    }
    s += &format!(
        "; weights {}{}; run by unet with normalisation {}, output: {output}, halo {} px cropped, {} px lost to the \
         network",
        p.weights_source,
        p.weights_sha256.as_ref().map_or(String::new(), |h| format!(" (sha256 {h})")),
        normalization.to_meta(),
        p.halo,
        p.network_crop
    );
    s
}
