//! The physical pixel size that microscopes and Fiji write into TIFF files, in micrometres per pixel.
//!
//! Read from two sources only, both written for microscopy: the OME-XML of an OME-TIFF (`PhysicalSizeX`,
//! `PhysicalSizeXUnit`, default µm) and an ImageJ TIFF (`ImageJ=` description with `unit=`, and `XResolution` =
//! pixels per unit). A plain TIFF's resolution tag is ignored: it is usually a scanner's or screen's 72 dpi.

use std::{io::Cursor, path::Path};

use tiff::{decoder::Decoder, tags::Tag};

/// Micrometres per pixel across (x) and down (y), and where the figure came from.
#[derive(Clone, Debug, PartialEq)]
pub struct PixelSize {
    pub x: f64,
    pub y: f64,
    /// "OME-TIFF" or "ImageJ TIFF".
    pub source: &'static str,
}

/// The pixel size a TIFF file records, if it records one this module trusts (see the module comment); `None`
/// for other files, PNGs, uncalibrated ImageJ images and anything unreadable.
pub fn read_pixel_size(path: &Path) -> Option<PixelSize> {
    let bytes = std::fs::read(path).ok()?;
    pixel_size_of(&bytes)
}

/// [`read_pixel_size`] on a file's bytes.
pub fn pixel_size_of(bytes: &[u8]) -> Option<PixelSize> {
    if !(bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*")) {
        return None;
    }
    let mut dec = Decoder::new(Cursor::new(bytes)).ok()?;
    let description = dec.get_tag_ascii_string(Tag::ImageDescription).ok()?;
    if description.contains("<OME") {
        return ome(&description);
    }
    if description.starts_with("ImageJ=") {
        let mut per_unit = |tag| dec.get_tag_f64(tag).ok().or_else(|| rational(&mut dec, tag));
        let (x_res, y_res) = (per_unit(Tag::XResolution)?, per_unit(Tag::YResolution));
        return imagej(&description, x_res, y_res);
    }
    None
}

fn rational(dec: &mut Decoder<Cursor<&[u8]>>, tag: Tag) -> Option<f64> {
    let v = dec.get_tag_u32_vec(tag).ok()?;
    (v.len() == 2 && v[1] != 0).then(|| f64::from(v[0]) / f64::from(v[1]))
}

/// Micrometres in one `unit` (the spellings OME and ImageJ use); `None` for pixels, inches and unknown units.
fn micrometres_per(unit: &str) -> Option<f64> {
    match unit.trim() {
        "\u{b5}m" | "\u{3bc}m" | "um" | "micron" | "microns" | "\\u00B5m" | "micrometer" | "micrometre" => Some(1.0),
        "nm" | "nanometer" => Some(1e-3),
        "mm" | "millimeter" => Some(1e3),
        "cm" => Some(1e4),
        "m" => Some(1e6),
        _ => None,
    }
}

fn plausible(v: f64) -> Option<f64> {
    (v.is_finite() && v > 0.0 && v <= 1e6).then_some(v)
}

/// `PhysicalSizeX="0.65" PhysicalSizeXUnit="µm"` of the first `<Pixels>` element.
fn ome(xml: &str) -> Option<PixelSize> {
    let pixels = &xml[xml.find("<Pixels")?..];
    let pixels = &pixels[..pixels.find('>').unwrap_or(pixels.len())];
    let attribute = |name: &str| -> Option<&str> {
        let start = pixels.find(&format!(" {name}=\""))? + name.len() + 3;
        let len = pixels[start..].find('"')?;
        Some(&pixels[start..start + len])
    };
    let size = |axis: &str| -> Option<f64> {
        let value: f64 = attribute(&format!("PhysicalSize{axis}"))?.parse().ok()?;
        let unit = attribute(&format!("PhysicalSize{axis}Unit")).unwrap_or("µm");
        plausible(value * micrometres_per(unit)?)
    };
    let x = size("X")?;
    Some(PixelSize { x, y: size("Y").unwrap_or(x), source: "OME-TIFF" })
}

/// An ImageJ description's `unit=` with the resolution tags (pixels per unit).
fn imagej(description: &str, x_res: f64, y_res: Option<f64>) -> Option<PixelSize> {
    let unit = description.lines().find_map(|l| l.strip_prefix("unit="))?;
    let um = micrometres_per(unit.trim_matches(|c| c == '\\' || c == '"'))?;
    let x = plausible(um / x_res)?;
    Some(PixelSize { x, y: y_res.and_then(|r| plausible(um / r)).unwrap_or(x), source: "ImageJ TIFF" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ome_and_imagej_descriptions() {
        let xml = r#"<?xml version="1.0"?><OME><Image><Pixels DimensionOrder="XYCZT" PhysicalSizeX="325" PhysicalSizeXUnit="nm" PhysicalSizeY="0.4" SizeX="4"/></Image></OME>"#;
        let p = ome(xml).unwrap();
        assert!((p.x - 0.325).abs() < 1e-12 && (p.y - 0.4).abs() < 1e-12, "{p:?}");
        assert_eq!(ome(r#"<OME><Pixels SizeX="4"/></OME>"#), None, "no physical size");
        assert_eq!(ome(r#"<OME><Pixels PhysicalSizeX="2" PhysicalSizeXUnit="pixel"/></OME>"#), None);
        let ij = "ImageJ=1.54f\nunit=micron\nmin=0.0\n";
        let p = imagej(ij, 1.0 / 0.65, None).unwrap();
        assert!((p.x - 0.65).abs() < 1e-12 && p.y == p.x);
        assert_eq!(imagej("ImageJ=1.54f\nunit=pixel\n", 1.0, None), None, "uncalibrated");
        assert_eq!(imagej("ImageJ=1.54f\n", 1.0, None), None);
        assert_eq!(imagej("ImageJ=1.54f\nunit=inch\n", 72.0, None), None);
    }
}
