//! Reading and writing 8/16-bit (and f32/u32) TIFF and PNG for the CLI and tools. Writes are atomic.

use std::{io::Cursor, path::Path};

use tiff::{
    decoder::{Decoder, DecodingResult},
    encoder::{TiffEncoder, colortype},
};

use crate::{
    error::{Error, Result, UnetStatus},
    fsutil::write_atomic,
    image::{ImageView, Pixels},
};

/// Owned pixel buffer of an image read from disk.
#[derive(Clone, Debug, PartialEq)]
pub enum PixelBuffer {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    F32(Vec<f32>),
}

/// An image read from a file: packed rows, channels interleaved.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedImage {
    pub pixels: PixelBuffer,
    pub width: usize,
    pub height: usize,
    pub channels: usize,
}

impl OwnedImage {
    pub fn view(&self) -> Result<ImageView<'_>> {
        let pixels = match &self.pixels {
            PixelBuffer::U8(p) => Pixels::U8(p),
            PixelBuffer::U16(p) => Pixels::U16(p),
            PixelBuffer::U32(p) => Pixels::U32(p),
            PixelBuffer::F32(p) => Pixels::F32(p),
        };
        ImageView::new(pixels, self.width, self.height, self.channels, self.width * self.channels)
    }
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::new(UnetStatus::Io, format!("{}: {e}", path.display()))
}

fn is_tiff(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref(), Some("tif" | "tiff"))
}

/// Reads a TIFF (8/16-bit integer or 32-bit float, gray or RGB; the first page) or a PNG.
pub fn read_image(path: &Path) -> Result<OwnedImage> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    decode_image(&bytes, path)
}

/// [`read_image`] on the file's bytes; `path` only names it in errors.
pub fn decode_image(bytes: &[u8], path: &Path) -> Result<OwnedImage> {
    if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        return read_tiff(path, bytes);
    }
    let img = image::load_from_memory(bytes).map_err(|e| io_err(path, e))?;
    let (width, height) = (img.width() as usize, img.height() as usize);
    use image::DynamicImage as D;
    let (pixels, channels) = match img {
        D::ImageLuma8(b) => (PixelBuffer::U8(b.into_raw()), 1),
        D::ImageLuma16(b) => (PixelBuffer::U16(b.into_raw()), 1),
        D::ImageRgb8(b) => (PixelBuffer::U8(b.into_raw()), 3),
        D::ImageRgb16(b) => (PixelBuffer::U16(b.into_raw()), 3),
        // Alpha is not image content: drop it.
        D::ImageLumaA8(_) => (PixelBuffer::U8(img.to_luma8().into_raw()), 1),
        D::ImageLumaA16(_) => (PixelBuffer::U16(img.to_luma16().into_raw()), 1),
        D::ImageRgba8(_) => (PixelBuffer::U8(img.to_rgb8().into_raw()), 3),
        D::ImageRgba16(_) => (PixelBuffer::U16(img.to_rgb16().into_raw()), 3),
        other => (PixelBuffer::F32(other.to_rgb32f().into_raw()), 3),
    };
    Ok(OwnedImage { pixels, width, height, channels })
}

fn read_tiff(path: &Path, bytes: &[u8]) -> Result<OwnedImage> {
    let mut dec = Decoder::new(Cursor::new(bytes)).map_err(|e| io_err(path, e))?;
    decode_tiff_page(path, &mut dec)
}

/// The number of pages (images) of a TIFF file: the frames of a time-lapse stack.
pub fn tiff_pages(path: &Path) -> Result<usize> {
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut dec = Decoder::new(std::io::BufReader::new(file)).map_err(|e| io_err(path, e))?;
    let mut pages = 1;
    while dec.more_images() {
        dec.next_image().map_err(|e| io_err(path, e))?;
        pages += 1;
    }
    Ok(pages)
}

/// Page `index` (from 0) of a TIFF file, read alone, so that a long stack never sits in memory whole.
pub fn read_tiff_page(path: &Path, index: usize) -> Result<OwnedImage> {
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut dec = Decoder::new(std::io::BufReader::new(file)).map_err(|e| io_err(path, e))?;
    dec.seek_to_image(index).map_err(|e| io_err(path, format!("page {index}: {e}")))?;
    decode_tiff_page(path, &mut dec)
}

fn decode_tiff_page<R: std::io::Read + std::io::Seek>(path: &Path, dec: &mut Decoder<R>) -> Result<OwnedImage> {
    let (w, h) = dec.dimensions().map_err(|e| io_err(path, e))?;
    let channels = match dec.colortype().map_err(|e| io_err(path, e))? {
        tiff::ColorType::Gray(_) => 1,
        tiff::ColorType::RGB(_) => 3,
        tiff::ColorType::RGBA(_) => 4,
        tiff::ColorType::GrayA(_) => 2,
        // Several channels interleaved in one page (e.g. two fluorescence stains): choose one with --channel.
        tiff::ColorType::Multiband { num_samples, .. }
            if (1..=crate::image::MAX_CHANNELS).contains(&(num_samples as usize)) =>
        {
            num_samples as usize
        }
        other => return Err(io_err(path, format!("unsupported TIFF colour type {other:?}"))),
    };
    let pixels = match dec.read_image().map_err(|e| io_err(path, e))? {
        DecodingResult::U8(v) => PixelBuffer::U8(v),
        DecodingResult::U16(v) => PixelBuffer::U16(v),
        DecodingResult::F32(v) => PixelBuffer::F32(v),
        DecodingResult::I16(v) => PixelBuffer::F32(v.into_iter().map(f32::from).collect()),
        DecodingResult::U32(v) => PixelBuffer::U32(v),
        DecodingResult::F64(v) => PixelBuffer::F32(v.into_iter().map(|x| x as f32).collect()),
        _ => return Err(io_err(path, "unsupported TIFF sample type")),
    };
    let values = match &pixels {
        PixelBuffer::U8(v) => v.len(),
        PixelBuffer::U16(v) => v.len(),
        PixelBuffer::U32(v) => v.len(),
        PixelBuffer::F32(v) => v.len(),
    };
    check_tiff_size(path, values, w, h, channels)?;
    Ok(OwnedImage { pixels, width: w as usize, height: h as usize, channels })
}

/// A TIFF whose strips or tiles hold fewer (or more) values than its header's size promises is broken: the
/// decoder hands back what the strips held (found by fuzzing).
fn check_tiff_size(path: &Path, values: usize, width: u32, height: u32, channels: usize) -> Result<()> {
    let expected = (width as usize).checked_mul(height as usize).and_then(|n| n.checked_mul(channels));
    if expected != Some(values) {
        return Err(io_err(
            path,
            format!(
                "the TIFF data holds {values} values, its {width}x{height}x{channels} header needs {}",
                expected.map_or_else(|| "more than this machine can address".to_string(), |n| n.to_string())
            ),
        ));
    }
    Ok(())
}

/// Reads a label image (u8/u16/u32 TIFF or PNG) as u32 labels.
pub fn read_labels(path: &Path) -> Result<(Vec<u32>, usize, usize)> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    decode_labels(&bytes, path)
}

/// [`read_labels`] on the file's bytes; `path` only names it in errors.
pub fn decode_labels(bytes: &[u8], path: &Path) -> Result<(Vec<u32>, usize, usize)> {
    if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        let mut dec = Decoder::new(Cursor::new(bytes)).map_err(|e| io_err(path, e))?;
        let (w, h) = dec.dimensions().map_err(|e| io_err(path, e))?;
        let labels = match dec.read_image().map_err(|e| io_err(path, e))? {
            DecodingResult::U8(v) => v.into_iter().map(u32::from).collect(),
            DecodingResult::U16(v) => v.into_iter().map(u32::from).collect(),
            DecodingResult::U32(v) => v,
            _ => return Err(io_err(path, "labels must be 8, 16 or 32-bit unsigned integers")),
        };
        check_tiff_size(path, labels.len(), w, h, 1)?;
        return Ok((labels, w as usize, h as usize));
    }
    let img = decode_image(bytes, path)?;
    if img.channels != 1 {
        return Err(io_err(path, "a label image must have one channel"));
    }
    let labels = match img.pixels {
        PixelBuffer::U8(v) => v.into_iter().map(u32::from).collect(),
        PixelBuffer::U16(v) => v.into_iter().map(u32::from).collect(),
        PixelBuffer::U32(v) => v,
        PixelBuffer::F32(_) => return Err(io_err(path, "labels must be integers")),
    };
    Ok((labels, img.width, img.height))
}

/// Single-channel data to write.
pub enum Plane<'a> {
    U8(&'a [u8]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    F32(&'a [f32]),
}

/// The formats a file name may ask for: PNG or TIFF. Anything else is refused rather than written as PNG bytes under
/// a name that promises another format (`mask.jpg`).
pub fn check_writable_extension(path: &Path) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png" | "tif" | "tiff") => Ok(()),
        _ => Err(Error::new(
            UnetStatus::InvalidArgument,
            format!(
                "{}: the output format follows the extension, and only .png, .tif and .tiff are written",
                path.display()
            ),
        )),
    }
}

/// Pictures for people (overlay, preview) are PNG only.
pub fn check_png_extension(path: &Path) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => Ok(()),
        _ => Err(Error::new(UnetStatus::InvalidArgument, format!("{}: pictures are written as .png", path.display()))),
    }
}

/// Writes one plane as TIFF (any type) or PNG (u8/u16; u32 labels only when they fit in 16 bits).
pub fn write_plane(path: &Path, plane: Plane, width: usize, height: usize) -> Result<()> {
    check_writable_extension(path)?;
    let (w, h) = (width as u32, height as u32);
    let bytes = if is_tiff(path) {
        let mut buf = Cursor::new(Vec::new());
        let mut enc = TiffEncoder::new(&mut buf).map_err(|e| io_err(path, e))?;
        let r = match plane {
            Plane::U8(d) => enc.write_image::<colortype::Gray8>(w, h, d),
            Plane::U16(d) => enc.write_image::<colortype::Gray16>(w, h, d),
            Plane::U32(d) => enc.write_image::<colortype::Gray32>(w, h, d),
            Plane::F32(d) => enc.write_image::<colortype::Gray32Float>(w, h, d),
        };
        r.map_err(|e| io_err(path, e))?;
        buf.into_inner()
    } else {
        let dynimg = match plane {
            Plane::U8(d) => image::DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, d.to_vec()).unwrap()),
            Plane::U16(d) => image::DynamicImage::ImageLuma16(image::ImageBuffer::from_raw(w, h, d.to_vec()).unwrap()),
            Plane::U32(d) => {
                let max = d.iter().copied().max().unwrap_or(0);
                if max > u16::MAX as u32 {
                    return Err(io_err(path, format!("{max} labels do not fit a 16-bit PNG; write a .tif")));
                }
                let v: Vec<u16> = d.iter().map(|&x| x as u16).collect();
                image::DynamicImage::ImageLuma16(image::ImageBuffer::from_raw(w, h, v).unwrap())
            }
            Plane::F32(d) => {
                let v: Vec<u16> = d.iter().map(|&x| (x.clamp(0.0, 1.0) * 65535.0).round() as u16).collect();
                image::DynamicImage::ImageLuma16(image::ImageBuffer::from_raw(w, h, v).unwrap())
            }
        };
        let mut buf = Cursor::new(Vec::new());
        dynimg.write_to(&mut buf, image::ImageFormat::Png).map_err(|e| io_err(path, e))?;
        buf.into_inner()
    };
    write_atomic(path, &bytes).map_err(|e| io_err(path, e))
}

/// The "jet" colour map (blue -> cyan -> yellow -> red) at t in [0, 1], as in the paper's Fig. 3d.
pub fn jet(t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    let channel = |centre: f32| ((1.5 - (4.0 * t - centre).abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    [channel(3.0), channel(2.0), channel(1.0)]
}

/// Writes `values` as a colour-mapped RGB PNG (min -> blue, max -> red), for people to look at.
pub fn write_preview(path: &Path, values: &[f32], width: usize, height: usize) -> Result<()> {
    check_png_extension(path)?;
    let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let rgb: Vec<u8> = values.iter().flat_map(|&v| jet((v - lo) / span)).collect();
    let img = image::RgbImage::from_raw(width as u32, height as u32, rgb)
        .ok_or_else(|| io_err(path, "preview size does not match the data"))?;
    let mut buf = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut buf, image::ImageFormat::Png).map_err(|e| io_err(path, e))?;
    write_atomic(path, &buf.into_inner()).map_err(|e| io_err(path, e))
}

/// A picture a person can check a segmentation with: the image in gray (first channel, stretched between its 1st
/// and 99.8th percentile) with every instance's outline drawn in its own colour, as a PNG.
pub fn write_overlay(path: &Path, image: &ImageView, labels: &[u32]) -> Result<()> {
    check_png_extension(path)?;
    let (w, h) = (image.width, image.height);
    if labels.len() != w * h {
        return Err(io_err(path, "overlay: labels do not match the image size"));
    }
    let norm = crate::normalize::Normalizer::for_image(image, crate::metadata::Normalization::DEFAULT)?;
    let gray = |x: usize, y: usize| -> u8 {
        let i = y * image.row_stride + x * image.channels;
        let v = match image.pixels {
            Pixels::U8(p) => p[i] as f32,
            Pixels::U16(p) => p[i] as f32,
            Pixels::U32(p) => p[i] as f32,
            Pixels::F32(p) => p[i],
        };
        (norm.apply(0, v).clamp(0.0, 1.0) * 255.0).round() as u8
    };
    let mut rgb = Vec::with_capacity(3 * w * h);
    for y in 0..h {
        for x in 0..w {
            let l = labels[y * w + x];
            // An outline pixel has a 4-neighbour (or the image edge) with another label.
            let edge = l != 0
                && [(x.wrapping_sub(1), y), (x + 1, y), (x, y.wrapping_sub(1)), (x, y + 1)]
                    .iter()
                    .any(|&(nx, ny)| nx >= w || ny >= h || labels[ny * w + nx] != l);
            if edge {
                // Golden-angle hues keep neighbouring labels apart.
                let hue = (l as f32 * 0.618_034).fract();
                rgb.extend(jet(0.15 + 0.85 * hue));
            } else {
                let g = gray(x, y);
                rgb.extend([g, g, g]);
            }
        }
    }
    let img = image::RgbImage::from_raw(w as u32, h as u32, rgb).ok_or_else(|| io_err(path, "overlay size"))?;
    let mut buf = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut buf, image::ImageFormat::Png).map_err(|e| io_err(path, e))?;
    write_atomic(path, &buf.into_inner()).map_err(|e| io_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (tests/fuzz, image_file; the input is kept in tests/fuzz/regressions): a 5x4 float TIFF
    /// whose IFD overlaps its pixel data decoded to 4 values and was returned as a 5x4 image.
    #[test]
    fn a_tiff_with_less_data_than_its_header_promises_is_an_error() {
        let bytes = include_bytes!("../../tests/fuzz/regressions/image_file-short-pixel-buffer.tif");
        let path = Path::new("short.tif");
        let e = decode_image(bytes, path).unwrap_err();
        assert!(e.message().contains("holds 4 values") && e.message().contains("5x4x1"), "{}", e.message());
        let e = decode_labels(bytes, path).unwrap_err();
        assert!(e.message().contains("holds 4 values") || e.message().contains("labels must be"), "{}", e.message());
    }

    #[test]
    fn round_trips() {
        let dir = std::env::temp_dir().join(format!("unet-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (w, h) = (5, 3);
        let u16s: Vec<u16> = (0..15).map(|i| i * 4000).collect();
        let f32s: Vec<f32> = (0..15).map(|i| i as f32 * 0.5 - 2.0).collect();
        for name in ["a.tif", "a.png"] {
            let p = dir.join(name);
            write_plane(&p, Plane::U16(&u16s), w, h).unwrap();
            let img = read_image(&p).unwrap();
            assert_eq!((img.width, img.height, img.channels), (w, h, 1));
            assert_eq!(img.pixels, PixelBuffer::U16(u16s.clone()));
        }
        let p = dir.join("f.tif");
        write_plane(&p, Plane::F32(&f32s), w, h).unwrap();
        assert_eq!(read_image(&p).unwrap().pixels, PixelBuffer::F32(f32s));
        let labels: Vec<u32> = (0..15).map(|i| i * 100_000).collect();
        let p = dir.join("l.tif");
        write_plane(&p, Plane::U32(&labels), w, h).unwrap();
        assert_eq!(read_labels(&p).unwrap(), (labels.clone(), w, h));
        assert!(write_plane(&dir.join("l.png"), Plane::U32(&labels), w, h).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
