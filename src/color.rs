//! The colour rule: how an image with more channels than a one-channel model becomes the one channel the model
//! takes. One function, used by segmentation, training and evaluation alike, so every host (CLI, C, Python/napari,
//! ImageJ) and the trainer see the same gray values.
//!
//! Rule: a one-channel model given an RGB or RGBA image segments its **luminance**
//! `Y = 0.299 R + 0.587 G + 0.114 B` (ITU-R BT.601 luma, as PIL's `convert("L")`, OpenCV and ImageJ's weighted
//! conversion compute it); alpha is ignored. Integer images are rounded to the nearest integer of their own type,
//! so an RGB copy of a gray image (R = G = B) gives back exactly the gray image.
//!
//! A chosen channel (`channel`, `--channel N`, counted from 0) replaces that rule: a one-channel model segments
//! that channel of a multi-channel image (fluorescence: one stain of several) as it is. Any other mismatch
//! between the image's channels and the model's is refused, naming the option.

use crate::{
    error::{Error, Result, UnetStatus},
    image::{ImageView, Pixels},
};

/// BT.601 luma weights of R, G and B.
pub const LUMA_WEIGHTS: [f64; 3] = [0.299, 0.587, 0.114];

/// A one-channel image owned by the converter (packed rows).
#[derive(Clone, Debug, PartialEq)]
pub enum GrayPixels {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    F32(Vec<f32>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct GrayImage {
    pub pixels: GrayPixels,
    pub width: usize,
    pub height: usize,
}

impl GrayImage {
    pub fn view(&self) -> Result<ImageView<'_>> {
        let pixels = match &self.pixels {
            GrayPixels::U8(p) => Pixels::U8(p),
            GrayPixels::U16(p) => Pixels::U16(p),
            GrayPixels::U32(p) => Pixels::U32(p),
            GrayPixels::F32(p) => Pixels::F32(p),
        };
        ImageView::new(pixels, self.width, self.height, 1, self.width)
    }
}

/// What a model with `in_channels` inputs is fed for `image`: `None` = the image as it is (channels match),
/// `Some` = one channel of it (`channel` given, one-channel model) or its luminance (RGB/RGBA image, one-channel
/// model, no channel given). Anything else is a `ChannelMismatch` error.
pub fn for_model(image: &ImageView, in_channels: usize, channel: Option<usize>) -> Result<Option<GrayImage>> {
    if let Some(c) = channel {
        if c >= image.channels {
            return Err(Error::new(
                UnetStatus::ChannelMismatch,
                format!("channel {c} was chosen, the image has {} channel(s) (counted from 0)", image.channels),
            ));
        }
        if in_channels != 1 {
            return Err(Error::new(
                UnetStatus::ChannelMismatch,
                format!("a channel was chosen, but the model takes {in_channels} channels (all of them, in order)"),
            ));
        }
        return if image.channels == 1 { Ok(None) } else { one_channel(image, c).map(Some) };
    }
    if image.channels == in_channels {
        return Ok(None);
    }
    if in_channels == 1 && matches!(image.channels, 3 | 4) {
        return luminance(image).map(Some);
    }
    Err(Error::new(
        UnetStatus::ChannelMismatch,
        format!(
            "the model expects {in_channels} channel(s), the image has {}{}",
            image.channels,
            if in_channels == 1 {
                " (RGB/RGBA images are converted to gray by their luminance; choose one channel of any other image \
                 with the channel option, --channel N)"
            } else {
                ""
            }
        ),
    ))
}

/// Channel `c` of `image`, in the image's own pixel type.
pub fn one_channel(image: &ImageView, c: usize) -> Result<GrayImage> {
    fn pick<T: Copy>(data: &[T], image: &ImageView, c: usize) -> Result<Vec<T>> {
        let (w, h) = (image.width, image.height);
        let mut out = Vec::new();
        out.try_reserve_exact(w * h).map_err(|_| {
            Error::new(UnetStatus::OutOfMemory, format!("no memory for one {w} x {h} channel of the image"))
        })?;
        for y in 0..h {
            let row = &data[y * image.row_stride..];
            out.extend((0..w).map(|x| row[x * image.channels + c]));
        }
        Ok(out)
    }
    let pixels = match image.pixels {
        Pixels::U8(p) => GrayPixels::U8(pick(p, image, c)?),
        Pixels::U16(p) => GrayPixels::U16(pick(p, image, c)?),
        Pixels::U32(p) => GrayPixels::U32(pick(p, image, c)?),
        Pixels::F32(p) => GrayPixels::F32(pick(p, image, c)?),
    };
    Ok(GrayImage { pixels, width: image.width, height: image.height })
}

/// The BT.601 luminance of an RGB or RGBA view (alpha ignored), in the view's own pixel type.
pub fn luminance(image: &ImageView) -> Result<GrayImage> {
    if !matches!(image.channels, 3 | 4) {
        return Err(Error::new(
            UnetStatus::ChannelMismatch,
            format!("luminance needs an RGB or RGBA image, not {} channel(s)", image.channels),
        ));
    }
    let (w, h) = (image.width, image.height);
    let luma = |y: usize, x: usize| -> f64 {
        LUMA_WEIGHTS[0] * image.value(y, x, 0)
            + LUMA_WEIGHTS[1] * image.value(y, x, 1)
            + LUMA_WEIGHTS[2] * image.value(y, x, 2)
    };
    // Integer types: round, and clamp at the top (0.299 + 0.587 + 0.114 may sum a hair above 1 in floating point).
    fn gray<T>(w: usize, h: usize, max: f64, luma: &dyn Fn(usize, usize) -> f64, cast: fn(f64) -> T) -> Result<Vec<T>> {
        let mut out = Vec::new();
        out.try_reserve_exact(w * h).map_err(|_| {
            Error::new(UnetStatus::OutOfMemory, format!("no memory for the {w} x {h} luminance of a colour image"))
        })?;
        for y in 0..h {
            out.extend((0..w).map(|x| cast(luma(y, x).round().min(max))));
        }
        Ok(out)
    }
    let pixels = match image.pixels {
        Pixels::U8(_) => GrayPixels::U8(gray(w, h, u8::MAX as f64, &luma, |v| v as u8)?),
        Pixels::U16(_) => GrayPixels::U16(gray(w, h, u16::MAX as f64, &luma, |v| v as u16)?),
        Pixels::U32(_) => GrayPixels::U32(gray(w, h, u32::MAX as f64, &luma, |v| v as u32)?),
        Pixels::F32(_) => {
            let mut out = Vec::new();
            out.try_reserve_exact(w * h).map_err(|_| {
                Error::new(UnetStatus::OutOfMemory, format!("no memory for the {w} x {h} luminance of a colour image"))
            })?;
            for y in 0..h {
                out.extend((0..w).map(|x| luma(y, x) as f32));
            }
            GrayPixels::F32(out)
        }
    };
    Ok(GrayImage { pixels, width: w, height: h })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rgb_copy_of_a_gray_image_is_that_gray_image() {
        let gray: Vec<u16> = (0..7 * 5).map(|i| (i * 1871 % 65536) as u16).collect();
        let rgb: Vec<u16> = gray.iter().flat_map(|&v| [v, v, v]).collect();
        let view = ImageView::new(Pixels::U16(&rgb), 7, 5, 3, 21).unwrap();
        let out = for_model(&view, 1, None).unwrap().expect("converted");
        assert_eq!(out.pixels, GrayPixels::U16(gray));
        let rgba: Vec<u8> = (0..6 * 4).flat_map(|i| [i as u8 * 9, i as u8 * 9, i as u8 * 9, 17]).collect();
        let view = ImageView::new(Pixels::U8(&rgba), 6, 4, 4, 24).unwrap();
        let out = luminance(&view).unwrap();
        assert_eq!(out.pixels, GrayPixels::U8((0..24).map(|i| i as u8 * 9).collect()), "alpha ignored");
        let f: Vec<f32> = (0..12).map(|i| i as f32 * 0.37 - 1.0).collect();
        let rgbf: Vec<f32> = f.iter().flat_map(|&v| [v, v, v]).collect();
        let out = luminance(&ImageView::new(Pixels::F32(&rgbf), 4, 3, 3, 12).unwrap()).unwrap();
        assert_eq!(out.pixels, GrayPixels::F32(f));
    }

    #[test]
    fn luminance_weights_and_strides() {
        // One padded row (stride 8 for 2 RGB pixels): pure red, pure green; second row pure blue, white.
        let p: Vec<u8> = vec![255, 0, 0, 0, 255, 0, 99, 99, 0, 0, 255, 255, 255, 255, 99, 99];
        let out = luminance(&ImageView::new(Pixels::U8(&p), 2, 2, 3, 8).unwrap()).unwrap();
        assert_eq!(out.pixels, GrayPixels::U8(vec![76, 150, 29, 255]));
    }

    #[test]
    fn other_mismatches_are_refused() {
        let p = vec![0u8; 2 * 2 * 2];
        let two = ImageView::new(Pixels::U8(&p), 2, 2, 2, 4).unwrap();
        let e = for_model(&two, 1, None).unwrap_err();
        assert_eq!(e.status(), UnetStatus::ChannelMismatch);
        assert!(e.to_string().contains("RGB/RGBA") && e.to_string().contains("--channel"), "{e}");
        let p = vec![0u8; 4];
        let one = ImageView::new(Pixels::U8(&p), 2, 2, 1, 2).unwrap();
        assert_eq!(for_model(&one, 3, None).unwrap_err().status(), UnetStatus::ChannelMismatch);
        assert!(for_model(&one, 1, None).unwrap().is_none());
    }

    #[test]
    fn a_chosen_channel_is_segmented_as_it_is() {
        // Three channels with distinct values: channel 1 of a padded-row view comes back exactly.
        let p: Vec<u16> = vec![1, 2, 3, 4, 5, 6, 0, 0, 7, 8, 9, 10, 11, 12, 0, 0];
        let view = ImageView::new(Pixels::U16(&p), 2, 2, 3, 8).unwrap();
        assert_eq!(for_model(&view, 1, Some(1)).unwrap().unwrap().pixels, GrayPixels::U16(vec![2, 5, 8, 11]));
        let two = vec![0.5f32, 9.0, 1.5, 8.0];
        let view = ImageView::new(Pixels::F32(&two), 2, 1, 2, 4).unwrap();
        assert_eq!(for_model(&view, 1, Some(0)).unwrap().unwrap().pixels, GrayPixels::F32(vec![0.5, 1.5]));
        let e = for_model(&view, 1, Some(2)).unwrap_err();
        assert!(e.status() == UnetStatus::ChannelMismatch && e.message().contains("channel 2"), "{e}");
        let e = for_model(&view, 2, Some(0)).unwrap_err();
        assert!(e.message().contains("takes 2 channels"), "{e}");
        let gray = [1u8, 2];
        let view = ImageView::new(Pixels::U8(&gray), 2, 1, 1, 2).unwrap();
        assert!(for_model(&view, 1, Some(0)).unwrap().is_none(), "channel 0 of a gray image is the image");
    }
}
