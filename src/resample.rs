//! Resampling images to another grid: the object-size option segments at the model's scale and maps the results back.
//!
//! Pixel centres are aligned (pixel `x` of the target covers source position `(x + 0.5) / scale - 0.5`), so a
//! 2x shrink followed by a 2x enlargement lands on the same grid. Intensities use a separable triangle (linear)
//! filter whose support widens with the shrink factor (no aliasing when shrinking, bilinear when enlarging), as
//! PIL's and the `image` crate's "triangle" filter do; labels use the nearest source pixel (labels are not numbers).

/// Per target coordinate, the source indices and normalised weights of the triangle filter.
struct Taps {
    start: Vec<usize>,
    weights: Vec<Vec<f32>>,
}

fn taps(source: usize, target: usize) -> Taps {
    let scale = target as f64 / source as f64;
    // Shrinking widens the filter to cover every source pixel that falls into a target pixel.
    let support = if scale < 1.0 { 1.0 / scale } else { 1.0 };
    let mut start = Vec::with_capacity(target);
    let mut weights = Vec::with_capacity(target);
    for t in 0..target {
        let centre = (t as f64 + 0.5) / scale - 0.5;
        let first = (centre - support).floor().max(0.0) as usize;
        let last = ((centre + support).ceil() as usize).min(source - 1);
        let mut w: Vec<f64> = (first..=last).map(|s| (1.0 - (s as f64 - centre).abs() / support).max(0.0)).collect();
        let sum: f64 = w.iter().sum();
        if sum <= 0.0 {
            // Beyond the last source pixel (enlarging near the edge): the edge pixel itself.
            let nearest = centre.round().clamp(0.0, (source - 1) as f64) as usize;
            start.push(nearest);
            weights.push(vec![1.0]);
            continue;
        }
        w.iter_mut().for_each(|v| *v /= sum);
        start.push(first);
        weights.push(w.into_iter().map(|v| v as f32).collect());
    }
    Taps { start, weights }
}

/// `src` (`height` rows of `width` pixels of `channels` interleaved f32 values, packed) resampled to
/// `new_width` x `new_height`, same layout.
pub fn resample(
    src: &[f32],
    (width, height, channels): (usize, usize, usize),
    (new_width, new_height): (usize, usize),
) -> Vec<f32> {
    use rayon::prelude::*;
    assert_eq!(src.len(), width * height * channels, "source buffer matches its size");
    assert!(width > 0 && height > 0 && new_width > 0 && new_height > 0, "sizes are positive");
    let across = taps(width, new_width);
    let down = taps(height, new_height);
    // Rows first (each source row to the new width), then columns; both passes share rows across threads.
    let mut rows = vec![0f32; new_width * height * channels];
    rows.par_chunks_mut(new_width * channels).enumerate().for_each(|(y, out)| {
        let row = &src[y * width * channels..][..width * channels];
        for (x, px) in out.chunks_mut(channels).enumerate() {
            let first = across.start[x];
            for (k, &w) in across.weights[x].iter().enumerate() {
                let s = &row[(first + k) * channels..][..channels];
                px.iter_mut().zip(s).for_each(|(o, &v)| *o += w * v);
            }
        }
    });
    let stride = new_width * channels;
    let mut out = vec![0f32; stride * new_height];
    out.par_chunks_mut(stride).enumerate().for_each(|(y, out_row)| {
        let first = down.start[y];
        for (k, &w) in down.weights[y].iter().enumerate() {
            let row = &rows[(first + k) * stride..][..stride];
            out_row.iter_mut().zip(row).for_each(|(o, &v)| *o += w * v);
        }
    });
    out
}

/// The source index of each target coordinate when `source` pixels become `target` (nearest pixel centre).
pub fn nearest_indices(source: usize, target: usize) -> Vec<usize> {
    (0..target)
        .map(|t| ((t as f64 + 0.5) * source as f64 / target as f64).floor().min((source - 1) as f64) as usize)
        .collect()
}

/// Labels (`width` x `height`, packed) on a `new_width` x `new_height` grid: each target pixel takes the label of
/// the nearest source pixel.
pub fn resample_nearest<T: Copy + Send + Sync>(
    src: &[T],
    (width, height): (usize, usize),
    (new_width, new_height): (usize, usize),
    dst: &mut [T],
) {
    use rayon::prelude::*;
    assert_eq!(src.len(), width * height, "source buffer matches its size");
    let xs = nearest_indices(width, new_width);
    let ys = nearest_indices(height, new_height);
    dst[..new_width * new_height].par_chunks_mut(new_width).zip(ys).for_each(|(out, y)| {
        let row = &src[y * width..][..width];
        out.iter_mut().zip(&xs).for_each(|(o, &x)| *o = row[x]);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_size_is_the_identity_and_constants_stay_constant() {
        let src: Vec<f32> = (0..35).map(|i| (i * 7 % 11) as f32).collect();
        assert_eq!(resample(&src, (7, 5, 1), (7, 5)), src);
        let flat = vec![3.5f32; 40 * 30 * 2];
        for size in [(13, 9), (80, 61), (1, 1), (40, 30)] {
            let out = resample(&flat, (40, 30, 2), size);
            assert_eq!(out.len(), size.0 * size.1 * 2);
            assert!(out.iter().all(|v| (v - 3.5).abs() < 1e-5), "{size:?}");
        }
    }

    #[test]
    fn a_linear_ramp_stays_linear_and_shrinking_averages() {
        // Enlarging a ramp interpolates it exactly (away from the clamped edge pixels).
        let ramp: Vec<f32> = (0..16).map(|x| x as f32).collect();
        let big = resample(&ramp, (16, 1, 1), (32, 1));
        for (x, v) in big.iter().enumerate().take(31).skip(1) {
            let expected = (x as f32 + 0.5) / 2.0 - 0.5;
            assert!((v - expected).abs() < 1e-5, "x={x}: {v} vs {expected}");
        }
        // A 2x shrink of alternating 0/1 is gray, not one of the two (no aliasing).
        let stripes: Vec<f32> = (0..64).map(|x| (x % 2) as f32).collect();
        let small = resample(&stripes, (64, 1, 1), (32, 1));
        assert!(small[1..31].iter().all(|v| (v - 0.5).abs() < 0.01), "{small:?}");
    }

    #[test]
    fn nearest_labels_round_trip_through_an_enlargement() {
        let labels: Vec<u32> = (0..6 * 4).map(|i| i as u32).collect();
        let mut big = vec![0u32; 18 * 12];
        resample_nearest(&labels, (6, 4), (18, 12), &mut big);
        let mut back = vec![0u32; 6 * 4];
        resample_nearest(&big, (18, 12), (6, 4), &mut back);
        assert_eq!(back, labels);
    }
}
