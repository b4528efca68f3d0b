//! `unet export-bioimageio`: a unet model as a bioimage.io model package (format 0.5): rdf.yaml, the ONNX weights,
//! a test input and the output this model gives for it, a cover image and documentation, zipped. The official
//! runner (`bioimageio test PACKAGE.zip`) re-runs the test input through ONNX Runtime with the preprocessing the
//! rdf.yaml describes and compares: that checks the description (axes, size rule, normalisation) against the model.

use std::{fmt::Write as _, io::Write as _, path::Path};

use ndarray::Array4;
use unet::{Error, ImageView, Model, Normalization, Pixels, Result, UnetStatus, normalize::Normalizer};

/// The paper every package cites.
const CITATION: &str = "Ronneberger, O., Fischer, P., Brox, T.: U-Net: Convolutional Networks for Biomedical Image \
                        Segmentation. MICCAI 2015, LNCS 9351, pp. 234-241";
const CITATION_DOI: &str = "10.1007/978-3-319-24574-4_28";

/// Test input edge: the smallest valid size whose output is at least 256 pixels (a legible cover).
fn test_input_size(model: &Model) -> usize {
    let g = model.metadata().arch.geometry();
    g.output_at_least(256) + 2 * g.halo
}

pub struct ExportRequest<'a> {
    /// The ONNX model file's bytes, shipped unchanged as the package's weights.
    pub model_bytes: &'a [u8],
    /// The same model, loaded (for its metadata and to compute the test output).
    pub model: &'a Model,
    /// Shown as the package's name ("unet default", ...).
    pub name: &'a str,
    pub authors: &'a [String],
    pub output: &'a Path,
}

/// Writes the package (atomically: a crash leaves no half-written zip under `output`).
pub fn export(req: &ExportRequest) -> Result<()> {
    let meta = req.model.metadata();
    let arch = meta.arch;
    if meta.imported.is_some() {
        return Err(Error::new(
            UnetStatus::InvalidArgument,
            "this model was imported from a bioimage.io package; share that package instead",
        ));
    }
    let preprocessing = meta.normalization;
    let size = test_input_size(req.model);
    let channels = arch.in_channels;
    // A synthetic fluorescence image (made here, so the package holds no third-party data), one copy per channel.
    let sample = unet::synthetic::nuclei(size, size, 2015);
    let mono: Vec<f32> = sample.pixels.iter().map(|&v| f32::from(v)).collect();
    let interleaved: Vec<f32> = mono.iter().flat_map(|&v| std::iter::repeat_n(v, channels)).collect();
    let view = ImageView::new(Pixels::F32(&interleaved), size, size, channels, size * channels)?;
    let normalizer = Normalizer::for_image(&view, meta.normalization)?;
    let normalized =
        Array4::from_shape_fn((1, channels, size, size), |(_, c, y, x)| normalizer.apply(c, mono[y * size + x]));
    let input: Vec<f32> = (0..channels).flat_map(|_| mono.iter().copied()).collect();
    let output = req.model.run(normalized.view(), |out| Ok(out.to_owned()))?;
    let (classes, out_size) = (output.shape()[1], output.shape()[2]);
    let halo = (size - out_size) / 2;

    let weights_sha = sha256_hex(req.model_bytes);
    let input_npy = npy_f32(&[1, channels, size, size], &input);
    let output_npy = npy_f32(&[1, classes, out_size, out_size], output.as_slice().expect("standard layout"));
    let cover = cover_png(&normalized, &output, halo)?;
    // Sample tensors (what bioimage.io shows): the raw input and the output, one TIFF page per channel.
    let raw = Array4::from_shape_vec((1, channels, size, size), input.clone()).expect("channels x size x size");
    let (sample_input, sample_output) = (float_tiff_pages(&raw)?, float_tiff_pages(&output)?);
    let readme = documentation(req, size, out_size);
    let rdf = rdf_yaml(&RdfFields {
        name: req.name,
        authors: req.authors,
        class_names: &meta.class_names,
        channels,
        classes,
        min_input: arch.geometry().min_input,
        step: arch.geometry().size_step,
        halo,
        preprocessing,
        shas: [&weights_sha, &sha256_hex(&input_npy), &sha256_hex(&output_npy)],
        sample_shas: [&sha256_hex(&sample_input), &sha256_hex(&sample_output)],
    });

    let mut zipped = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut zipped);
        let deflated = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        let files: [(&str, &[u8]); 8] = [
            ("rdf.yaml", rdf.as_bytes()),
            ("README.md", readme.as_bytes()),
            ("model.onnx", req.model_bytes),
            ("test_input.npy", &input_npy),
            ("test_output.npy", &output_npy),
            ("cover.png", &cover),
            ("sample_input.tif", &sample_input),
            ("sample_output.tif", &sample_output),
        ];
        for (name, bytes) in files {
            zip.start_file(name, deflated).map_err(zip_error)?;
            zip.write_all(bytes)
                .map_err(|e| Error::new(UnetStatus::Io, format!("writing {name} into the package: {e}")))?;
        }
        zip.finish().map_err(zip_error)?;
    }
    unet::fsutil::write_atomic(req.output, zipped.get_ref())
        .map_err(|e| Error::new(UnetStatus::Io, format!("cannot write {}: {e}", req.output.display())))
}

fn zip_error(e: zip::result::ZipError) -> Error {
    Error::new(UnetStatus::Io, format!("writing the package zip: {e}"))
}

struct RdfFields<'a> {
    name: &'a str,
    authors: &'a [String],
    class_names: &'a [String],
    channels: usize,
    classes: usize,
    min_input: usize,
    step: usize,
    halo: usize,
    preprocessing: Normalization,
    /// sha256 of model.onnx, test_input.npy, test_output.npy.
    shas: [&'a str; 3],
    /// sha256 of sample_input.tif, sample_output.tif.
    sample_shas: [&'a str; 2],
}

/// The package description. Written by hand (a fixed shape, every string quoted) rather than through a YAML
/// library: the runner's own validation is the check.
fn rdf_yaml(f: &RdfFields) -> String {
    let quoted = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let list = |items: &[String]| items.iter().map(|s| quoted(s)).collect::<Vec<_>>().join(", ");
    let mut y = String::new();
    let _ = writeln!(y, "format_version: 0.5.4\ntype: model\nname: {}", quoted(f.name));
    let _ = writeln!(
        y,
        "description: {}",
        quoted(
            "U-Net (Ronneberger et al. 2015) for 2D microscopy: per-pixel class probabilities with valid convolutions, exported by unet"
        )
    );
    y.push_str("authors:\n");
    for a in f.authors {
        let _ = writeln!(y, "  - name: {}", quoted(a));
    }
    let _ = writeln!(y, "cite:\n  - text: {}\n    doi: {}", quoted(CITATION), quoted(CITATION_DOI));
    y.push_str("license: MIT\ndocumentation: README.md\ncovers: [cover.png]\n");
    y.push_str("tags: [unet, segmentation, 2d, microscopy, instance-segmentation, onnx]\n");
    let channel_names: Vec<String> =
        if f.channels == 1 { vec!["gray".into()] } else { (0..f.channels).map(|c| format!("channel{c}")).collect() };
    y.push_str("inputs:\n  - id: image\n    axes:\n      - type: batch\n");
    let _ = writeln!(y, "      - type: channel\n        channel_names: [{}]", list(&channel_names));
    for axis in ["y", "x"] {
        let _ = writeln!(
            y,
            "      - type: space\n        id: {axis}\n        size: {{min: {}, step: {}}}",
            f.min_input, f.step
        );
    }
    let _ = writeln!(y, "    test_tensor:\n      source: test_input.npy\n      sha256: {}", f.shas[1]);
    let _ = writeln!(y, "    sample_tensor:\n      source: sample_input.tif\n      sha256: {}", f.sample_shas[0]);
    y.push_str("    data:\n      type: float32\n");
    match f.preprocessing {
        Normalization::Percentile { low, high } => {
            let _ = writeln!(
                y,
                "    preprocessing:\n      - id: scale_range\n        kwargs: {{axes: [y, x], min_percentile: {low}, \
                 max_percentile: {high}, eps: 1.0e-6}}"
            );
        }
        Normalization::MeanStd => {
            y.push_str("    preprocessing:\n      - id: zero_mean_unit_variance\n        kwargs: {axes: [y, x], eps: 1.0e-6}\n");
        }
        Normalization::None => {}
    }
    let class_names: Vec<String> =
        (0..f.classes).map(|c| f.class_names.get(c).cloned().unwrap_or(format!("class{c}"))).collect();
    y.push_str("outputs:\n  - id: probabilities\n    axes:\n      - type: batch\n");
    let _ = writeln!(y, "      - type: channel\n        channel_names: [{}]", list(&class_names));
    // The valid convolutions already crop the halo: the output is the input less 2 x halo (`size.offset`).
    for axis in ["y", "x"] {
        let _ = writeln!(
            y,
            "      - type: space\n        id: {axis}\n        size: {{tensor_id: image, axis_id: {axis}, offset: -{}}}",
            2 * f.halo
        );
    }
    let _ = writeln!(y, "    test_tensor:\n      source: test_output.npy\n      sha256: {}", f.shas[2]);
    let _ = writeln!(y, "    sample_tensor:\n      source: sample_output.tif\n      sha256: {}", f.sample_shas[1]);
    y.push_str("    data:\n      type: float32\n      range: [0.0, 1.0]\n");
    let _ = writeln!(y, "weights:\n  onnx:\n    source: model.onnx\n    sha256: {}\n    opset_version: 17", f.shas[0]);
    y
}

fn documentation(req: &ExportRequest, size: usize, out_size: usize) -> String {
    let meta = req.model.metadata();
    let g = meta.arch.geometry();
    let post =
        meta.postprocessing.as_ref().map_or("connected components of the foreground".to_string(), |p| p.to_meta());
    format!(
        "# {name}\n\nA U-Net (Ronneberger, Fischer and Brox, MICCAI 2015) exported from unet (a native U-Net \
         segmentation library with a C ABI) as a bioimage.io model package.\n\n\
         ## Network\n- Base width {bw}, depth {depth}, {ic} input channel(s), {classes} classes ({names}); softmax \
         probabilities.\n- Valid (unpadded) convolutions: an input of edge {min} + {step}k gives an output {halo2} \
         pixels smaller (halo {halo} on each side). To segment a whole image, mirror-pad it by the halo and tile it \
         (overlap-tile), as unet does.\n- Input normalisation: {norm}.\n\n\
         ## Instances\nunet turns the foreground probability into instances with: `{post}` (chosen on held-out \
         validation data; see the provenance below). With unet itself: `unet segment IMAGE --model model.onnx`.\n\n\
         ## Test data\n`test_input.npy` is a synthetic fluorescence-like image made by unet ({size}x{size}, no \
         third-party data); `test_output.npy` is this network's output for it ({out}x{out}).\n\n\
         ## Validation\nHow this model was trained and chosen, and its scores on held-out data, are in the provenance \
         below (unet writes it into the model when it trains or tunes it). This package's own check: \
         `bioimageio test` reproduces `test_output.npy` from `test_input.npy` through ONNX Runtime with the \
         preprocessing above.\n\n## Provenance\n{prov}\n\n## Licence\nMIT (the weights and this package).\n",
        name = req.name,
        bw = meta.arch.base_width,
        depth = meta.arch.depth,
        ic = meta.arch.in_channels,
        classes = meta.arch.classes,
        names = meta.class_names.join(", "),
        min = g.min_input,
        step = g.size_step,
        halo2 = 2 * g.halo,
        halo = g.halo,
        norm = meta.normalization.to_meta(),
        out = out_size,
        prov = meta.provenance,
    )
}

/// The normalised test input (cropped to the output's field) beside the foreground probability: 2:1, as
/// bioimage.io recommends for covers.
fn cover_png(normalized: &Array4<f32>, output: &Array4<f32>, halo: usize) -> Result<Vec<u8>> {
    let n = output.shape()[2];
    let foreground = output.shape()[1] - 1;
    let gray = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let img = image::GrayImage::from_fn(2 * n as u32, n as u32, |x, y| {
        let (x, y) = (x as usize, y as usize);
        let v = if x < n { normalized[[0, 0, y + halo, x + halo]] } else { output[[0, foreground, y, x - n]] };
        image::Luma([gray(v)])
    });
    png(image::DynamicImage::ImageLuma8(img))
}

/// One float32 page per channel of a (1, channel, y, x) tensor: a TIFF stack (channel, y, x).
fn float_tiff_pages(output: &Array4<f32>) -> Result<Vec<u8>> {
    use tiff::encoder::{TiffEncoder, colortype::Gray32Float};
    let tiff_error = |e: tiff::TiffError| Error::new(UnetStatus::Io, format!("encoding a sample tensor: {e}"));
    let (classes, h, w) = (output.shape()[1], output.shape()[2], output.shape()[3]);
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut encoder = TiffEncoder::new(&mut buf).map_err(tiff_error)?;
        for c in 0..classes {
            let page: Vec<f32> = output.slice(ndarray::s![0, c, .., ..]).iter().copied().collect();
            encoder.write_image::<Gray32Float>(w as u32, h as u32, &page).map_err(tiff_error)?;
        }
    }
    Ok(buf.into_inner())
}

fn png(img: image::DynamicImage) -> Result<Vec<u8>> {
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| Error::new(UnetStatus::Io, format!("encoding the cover image: {e}")))?;
    Ok(png.into_inner())
}

/// A little-endian float32 .npy file (format 1.0, C order).
fn npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    assert_eq!(shape.iter().product::<usize>(), data.len());
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}", dims.join(", "));
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64, ending in \n.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    out
}

/// SHA-256 as lowercase hex: the package lists each file's digest.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_complete() {
        let bytes = npy_f32(&[1, 2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (1, 2, 3,)") && header.ends_with('\n'), "{header}");
        assert_eq!(bytes.len(), 10 + header_len + 24);
        assert_eq!(&bytes[10 + header_len + 4..10 + header_len + 8], &1f32.to_le_bytes());
    }
}
