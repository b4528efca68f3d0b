//! Object size: a network learns objects at the sizes it was trained on, so an image whose objects are another size
//! is resampled until they match the model's ([`ModelMetadata::object_size`]), segmented there, and the results
//! are mapped back to the image's grid. `Auto` measures the objects from a first pass of the network itself.
//!
//! Post-processing runs at the model's scale, where its recommendation was tuned: watershed parameters are in the
//! model's pixels; a minimum size the caller gives is in the image's pixels and converted.
//!
//! [`ModelMetadata::object_size`]: crate::metadata::ModelMetadata::object_size

use crate::{
    error::{Error, Result, UnetStatus},
    image::{ImageView, Pixel, Pixels, checked_area},
    metadata::valid_object_size,
    resample::{nearest_indices, resample},
};

/// How big the objects in an image are (the `object_size` option of every host).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum ObjectSize {
    /// Segment the image as it is.
    #[default]
    AsIs,
    /// The objects' typical diameter in pixels: the image is resampled by model size / this.
    Pixels(f32),
    /// Measure it: a first pass at the image's own scale; when the median instance diameter differs from the
    /// model's by more than [`AUTO_TOLERANCE`], a second pass at the matching scale.
    Auto,
}

/// `Auto` resamples only when the measured diameter and the model's differ by more than this factor: within it,
/// resampling costs a second network pass for little change.
pub const AUTO_TOLERANCE: f64 = 1.5;

/// Scales `Auto` may choose: a first pass that finds only fragments (or one merged blob) must not send the image
/// to an extreme size.
pub const AUTO_SCALES: (f64, f64) = (0.25, 4.0);

/// Scales an explicit object size may ask for (model size / object size).
pub const SCALES: (f64, f64) = (0.125, 8.0);

/// Model pixels per image pixel for objects of `object_size` pixels and a model trained on `model_size`.
pub fn scale_for(model_size: f32, object_size: f32) -> Result<f64> {
    if !valid_object_size(object_size) {
        return Err(Error::invalid_argument(format!(
            "object size {object_size} is not a diameter in pixels (1 to 10000)"
        )));
    }
    let scale = f64::from(model_size) / f64::from(object_size);
    if !(SCALES.0..=SCALES.1).contains(&scale) {
        return Err(Error::invalid_argument(format!(
            "object size {object_size} px is more than {}x away from the model's {model_size} px: resample the image \
             yourself, or choose a model trained at that size",
            SCALES.1
        )));
    }
    Ok(scale)
}

/// The scale that brings an image of `image` micrometres per pixel to the `model`'s pixel size; `None` when
/// either is unknown.
pub fn scale_for_pixel_sizes(image: Option<f32>, model: Option<f32>) -> Result<Option<f64>> {
    let Some(image) = image else { return Ok(None) };
    if !crate::metadata::valid_pixel_size(image) {
        return Err(Error::invalid_argument(format!("pixel size {image} µm is not a positive length")));
    }
    let Some(model) = model else { return Ok(None) };
    let scale = f64::from(image) / f64::from(model);
    if !(SCALES.0..=SCALES.1).contains(&scale) {
        return Err(Error::invalid_argument(format!(
            "the image's pixels ({image} µm) are more than {}x away from the model's ({model} µm)",
            SCALES.1
        )));
    }
    Ok(Some(scale))
}

/// The scale `Auto` chooses for a first pass whose instances have median diameter `measured`: `None` = keep
/// the first pass (no instances, or within [`AUTO_TOLERANCE`]).
pub fn auto_scale(model_size: f32, measured: Option<f32>) -> Option<f64> {
    let scale = f64::from(model_size) / f64::from(measured?);
    let off = if scale >= 1.0 { scale } else { 1.0 / scale };
    (off > AUTO_TOLERANCE).then(|| scale.clamp(AUTO_SCALES.0, AUTO_SCALES.1))
}

/// The grid of an image of `width` x `height` at `scale` (at least 1 x 1).
pub fn scaled_size(width: usize, height: usize, scale: f64) -> Result<(usize, usize)> {
    let edge = |n: usize| ((n as f64 * scale).round() as usize).max(1);
    let (w, h) = (edge(width), edge(height));
    checked_area(w, h).map_err(|e| e.context(format!("the image at scale {scale:.3}")))?;
    Ok((w, h))
}

/// A minimum instance size given in image pixels, in pixels at `scale` (0 stays 0: "the model's").
pub fn scaled_min_size(min_size: usize, scale: f64) -> usize {
    if min_size == 0 { 0 } else { ((min_size as f64 * scale * scale).round() as usize).max(1) }
}

/// The equivalent diameter 2 sqrt(area / pi) of each instance of `labels` (in no particular order).
pub fn diameters(labels: &[u32]) -> Vec<f64> {
    let mut areas: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    for &l in labels.iter().filter(|&&l| l != 0) {
        *areas.entry(l).or_default() += 1;
    }
    areas.values().map(|&a| 2.0 * (a as f64 / std::f64::consts::PI).sqrt()).collect()
}

/// The median over instances of the equivalent diameter 2 sqrt(area / pi); `None` without instances.
pub fn median_diameter(labels: &[u32]) -> Option<f32> {
    median(diameters(labels))
}

/// The median of `values`; `None` when empty.
pub fn median(mut diameters: Vec<f64>) -> Option<f32> {
    if diameters.is_empty() {
        return None;
    }
    diameters.sort_by(f64::total_cmp);
    let n = diameters.len();
    let median = if n % 2 == 1 { diameters[n / 2] } else { 0.5 * (diameters[n / 2 - 1] + diameters[n / 2]) };
    Some(median as f32)
}

/// A zeroed buffer of `n` elements, or an out-of-memory error naming `what`.
pub(crate) fn zeroed<T: Clone + Default>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::new(UnetStatus::OutOfMemory, format!("cannot allocate {n} elements for {what}")))?;
    v.resize(n, T::default());
    Ok(v)
}

/// The image's values as packed f32 (channels interleaved): the resampler's input.
pub(crate) fn packed_f32(image: &ImageView) -> Result<Vec<f32>> {
    fn copy<T: Pixel>(data: &[T], image: &ImageView, out: &mut Vec<f32>) {
        let row_len = image.width * image.channels;
        for y in 0..image.height {
            out.extend(data[y * image.row_stride..][..row_len].iter().map(|v| v.to_f32()));
        }
    }
    let mut out = Vec::new();
    let n = image.area() * image.channels;
    out.try_reserve_exact(n).map_err(|_| {
        Error::new(UnetStatus::OutOfMemory, format!("cannot allocate {n} values to resample the image"))
    })?;
    match image.pixels {
        Pixels::U8(p) => copy(p, image, &mut out),
        Pixels::U16(p) => copy(p, image, &mut out),
        Pixels::U32(p) => copy(p, image, &mut out),
        Pixels::F32(p) => copy(p, image, &mut out),
    }
    Ok(out)
}

/// What a pass at the model's scale produced, on its `width` x `height` grid.
pub(crate) struct ScaledResults<'a> {
    pub width: usize,
    pub height: usize,
    pub probabilities: &'a [f32],
    /// Classes, for models with more than two (two-class masks come from the resampled probabilities).
    pub mask: Option<&'a [u8]>,
    pub labels: Option<&'a [u32]>,
}

/// The image-grid outputs of a pass at another scale: probabilities resampled (triangle filter), the class of
/// each pixel from them (`classify`, the threshold rule of the pass) or, for multi-class models, from the nearest
/// model pixel; labels from the nearest model pixel, inside the foreground only: where the nearest one is
/// background, the first labelled one of the 2 x 2 around the pixel's position. Labels are renumbered 1..=n in
/// raster order (an instance smaller than a pixel of the image can vanish). Returns n.
pub(crate) fn map_back(
    scaled: &ScaledResults,
    (width, height): (usize, usize),
    classify: &(dyn Fn(f32) -> u8 + Sync),
    probabilities: Option<&mut [f32]>,
    mask: Option<&mut [u8]>,
    labels: Option<&mut [u32]>,
) -> Result<u32> {
    use rayon::prelude::*;
    let (sw, sh) = (scaled.width, scaled.height);
    let foreground = resample(scaled.probabilities, (sw, sh, 1), (width, height));
    let xs = nearest_indices(sw, width);
    let ys = nearest_indices(sh, height);
    let mut classes = zeroed::<u8>(width * height, "the resampled mask")?;
    classes.par_chunks_mut(width).enumerate().for_each(|(y, row)| match scaled.mask {
        Some(m) => row.iter_mut().zip(&xs).for_each(|(c, &x)| *c = m[ys[y] * sw + x]),
        None => row.iter_mut().zip(&foreground[y * width..]).for_each(|(c, &p)| *c = classify(p)),
    });
    if let Some(p) = probabilities {
        p[..width * height].copy_from_slice(&foreground);
    }
    drop(foreground);
    if let Some(m) = mask {
        m[..width * height].copy_from_slice(&classes);
    }
    let Some(labels) = labels else { return Ok(0) };
    let Some(source) = scaled.labels else {
        return Err(Error::new(UnetStatus::RuntimeError, "labels at the model's scale were not computed"));
    };
    // The model-grid position of an image pixel's centre, and the two model pixels around it on each axis.
    let around = |t: usize, source_len: usize, target_len: usize| -> [usize; 2] {
        let c = ((t as f64 + 0.5) * source_len as f64 / target_len as f64 - 0.5).max(0.0);
        let lo = (c.floor() as usize).min(source_len - 1);
        [lo, (lo + 1).min(source_len - 1)]
    };
    let near_x: Vec<[usize; 2]> = (0..width).map(|x| around(x, sw, width)).collect();
    labels[..width * height].par_chunks_mut(width).enumerate().for_each(|(y, row)| {
        let near_y = around(y, sh, height);
        for (x, l) in row.iter_mut().enumerate() {
            *l = 0;
            if classes[y * width + x] == 0 {
                continue;
            }
            let nearest = source[ys[y] * sw + xs[x]];
            *l = if nearest != 0 {
                nearest
            } else {
                near_y
                    .iter()
                    .flat_map(|&sy| near_x[x].iter().map(move |&sx| source[sy * sw + sx]))
                    .find(|&v| v != 0)
                    .unwrap_or(0)
            };
        }
    });
    Ok(renumber(&mut labels[..width * height]))
}

/// Renumbers the labels 1..=n in order of first appearance (raster order); returns n.
pub(crate) fn renumber(labels: &mut [u32]) -> u32 {
    let mut new_of: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    for l in labels.iter_mut().filter(|l| **l != 0) {
        let next = new_of.len() as u32 + 1;
        *l = *new_of.entry(*l).or_insert(next);
    }
    new_of.len() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_and_their_limits() {
        assert_eq!(scale_for(20.0, 40.0).unwrap(), 0.5);
        assert_eq!(scale_for(20.0, 10.0).unwrap(), 2.0);
        for bad in [0.0, -5.0, f32::NAN, f32::INFINITY, 1.0] {
            assert_eq!(scale_for(20.0, bad).unwrap_err().status(), UnetStatus::InvalidArgument, "{bad}");
        }
        assert_eq!(auto_scale(20.0, None), None);
        assert_eq!(auto_scale(20.0, Some(25.0)), None, "within the tolerance");
        assert_eq!(auto_scale(20.0, Some(40.0)), Some(0.5));
        assert_eq!(auto_scale(20.0, Some(1.0)), Some(AUTO_SCALES.1), "clamped");
        assert_eq!(scaled_size(100, 7, 0.5).unwrap(), (50, 4));
        assert_eq!(scale_for_pixel_sizes(Some(0.325), Some(0.65)).unwrap(), Some(0.5));
        assert_eq!(scale_for_pixel_sizes(Some(0.325), None).unwrap(), None);
        assert_eq!(scale_for_pixel_sizes(None, Some(0.65)).unwrap(), None);
        assert!(scale_for_pixel_sizes(Some(f32::NAN), None).is_err());
        assert!(scale_for_pixel_sizes(Some(100.0), Some(0.65)).is_err());
        assert_eq!(scaled_size(1, 1, 0.125).unwrap(), (1, 1));
        assert_eq!(scaled_min_size(0, 2.0), 0);
        assert_eq!(scaled_min_size(10, 0.5), 3);
        assert_eq!(scaled_min_size(1, 0.1), 1);
    }

    #[test]
    fn median_diameter_of_squares() {
        // Instances of 4, 16 and 36 pixels: median area 16, diameter 2 sqrt(16 / pi).
        let mut labels = vec![0u32; 100];
        labels[..4].fill(1);
        labels[10..26].fill(2);
        labels[40..76].fill(3);
        let d = median_diameter(&labels).unwrap();
        assert!((d - 2.0 * (16.0f32 / std::f32::consts::PI).sqrt()).abs() < 1e-4, "{d}");
        assert_eq!(median_diameter(&[0, 0]), None);
    }

    #[test]
    fn labels_map_back_inside_the_foreground_and_are_renumbered() {
        // Model grid 4x2: two instances (7 and 9); the image grid is twice as large.
        let probabilities = [0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.1, 0.9];
        let source = [7, 7, 0, 9, 7, 7, 0, 9];
        let scaled =
            ScaledResults { width: 4, height: 2, probabilities: &probabilities, mask: None, labels: Some(&source) };
        let mut labels = vec![0u32; 8 * 4];
        let mut mask = vec![0u8; 8 * 4];
        let n = map_back(&scaled, (8, 4), &|p| u8::from(p >= 0.5), None, Some(&mut mask), Some(&mut labels)).unwrap();
        assert_eq!(n, 2);
        for (i, (&m, &l)) in mask.iter().zip(&labels).enumerate() {
            assert_eq!(m != 0, l != 0, "pixel {i}: labels lie exactly on the foreground here");
        }
        assert_eq!(&labels[..8], &[1, 1, 1, 1, 0, 0, 2, 2]);
    }
}
