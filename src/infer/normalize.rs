//! Percentile normalisation (CSBDeep/StarDist style): per channel, x' = (x - P_low) / (P_high - P_low), with the
//! percentiles of the whole image computed exactly (numpy's default linear interpolation) by a two-pass radix
//! selection: memory is a fixed 64 Ki-bin histogram, never a copy of the image.

use crate::{
    error::Result,
    image::{ImageView, Pixels},
    metadata::Normalization,
};

/// Per-channel affine map x -> (x - offset) * scale applied to every pixel before the network, computed in f64:
/// finite f32 images near ±f32::MAX would overflow `x - offset` in f32 (and give NaN probabilities).
#[derive(Clone, Debug, PartialEq)]
pub struct Normalizer {
    pub offset: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Normalizer {
    pub fn identity(channels: usize) -> Self {
        Normalizer { offset: vec![0.0; channels], scale: vec![1.0; channels] }
    }

    pub fn for_image(image: &ImageView, normalization: Normalization) -> Result<Self> {
        normalization.validate()?;
        image.check_finite()?;
        match normalization {
            Normalization::None => Ok(Normalizer::identity(image.channels)),
            Normalization::MeanStd => {
                let mut n = Normalizer::identity(image.channels);
                for c in 0..image.channels {
                    let (mean, std) = mean_and_std(image, c);
                    n.offset[c] = mean;
                    // bioimage.io's eps: out = (x - mean) / (std + eps).
                    n.scale[c] = 1.0 / (std + 1e-6);
                }
                Ok(n)
            }
            Normalization::Percentile { low, high } => {
                let mut n = Normalizer::identity(image.channels);
                for c in 0..image.channels {
                    let p = percentiles(image, c, &[low as f64, high as f64]);
                    let (lo, hi) = (p[0], p[1]);
                    n.offset[c] = lo;
                    // CSBDeep's eps keeps a constant image finite (it maps to 0).
                    n.scale[c] = 1.0 / (hi - lo + 1e-20);
                }
                Ok(n)
            }
        }
    }

    #[inline]
    pub fn apply(&self, channel: usize, v: f32) -> f32 {
        ((v as f64 - self.offset[channel]) * self.scale[channel]) as f32
    }
}

/// Mean and (population) standard deviation of one channel, in f64 (two passes: no cancellation).
pub fn mean_and_std(image: &ImageView, channel: usize) -> (f64, f64) {
    let values = |f: &mut dyn FnMut(f64)| {
        for y in 0..image.height {
            for x in 0..image.width {
                f(image.value(y, x, channel));
            }
        }
    };
    let n = image.area().max(1) as f64;
    let mut sum = 0.0;
    values(&mut |v| sum += v);
    let mean = sum / n;
    let mut squares = 0.0;
    values(&mut |v| squares += (v - mean) * (v - mean));
    (mean, (squares / n).sqrt())
}

/// Order-preserving map of a pixel value to u32, and back.
trait RadixKey: Copy + Sync {
    fn key(self) -> u32;
    fn value(key: u32) -> f64;
}
impl RadixKey for u8 {
    fn key(self) -> u32 {
        self as u32
    }
    fn value(key: u32) -> f64 {
        key as f64
    }
}
impl RadixKey for u16 {
    fn key(self) -> u32 {
        self as u32
    }
    fn value(key: u32) -> f64 {
        key as f64
    }
}
impl RadixKey for u32 {
    fn key(self) -> u32 {
        self
    }
    fn value(key: u32) -> f64 {
        key as f64
    }
}
impl RadixKey for f32 {
    fn key(self) -> u32 {
        let b = self.to_bits();
        if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
    }
    fn value(key: u32) -> f64 {
        let b = if key >> 31 == 1 { key & 0x7fff_ffff } else { !key };
        f32::from_bits(b) as f64
    }
}

/// Percentiles `qs` (0..=100) of one channel, as numpy.percentile computes them (linear interpolation).
pub fn percentiles(image: &ImageView, channel: usize, qs: &[f64]) -> Vec<f64> {
    match image.pixels {
        Pixels::U8(p) => percentiles_of(p, image, channel, qs),
        Pixels::U16(p) => percentiles_of(p, image, channel, qs),
        Pixels::U32(p) => percentiles_of(p, image, channel, qs),
        Pixels::F32(p) => percentiles_of(p, image, channel, qs),
    }
}

fn for_each_key<T: RadixKey>(
    data: &[T],
    image: &ImageView,
    channel: usize,
    rows: std::ops::Range<usize>,
    f: &mut dyn FnMut(u32),
) {
    for y in rows {
        let row = &data[y * image.row_stride..];
        for x in 0..image.width {
            f(row[x * image.channels + channel].key());
        }
    }
}

fn percentiles_of<T: RadixKey>(data: &[T], image: &ImageView, channel: usize, qs: &[f64]) -> Vec<f64> {
    let n = image.area() as u64;
    // The order statistics (0-based ranks) each percentile interpolates between.
    let mut ranks: Vec<u64> = Vec::new();
    let positions: Vec<f64> = qs.iter().map(|q| q / 100.0 * (n - 1) as f64).collect();
    for &pos in &positions {
        ranks.push(pos.floor() as u64);
        ranks.push((pos.ceil() as u64).min(n - 1));
    }
    let keys = select_keys(n, &ranks, image.height, |rows, f| for_each_key(data, image, channel, rows, f));
    positions
        .iter()
        .enumerate()
        .map(|(i, &pos)| {
            let (a, b) = (T::value(keys[2 * i]), T::value(keys[2 * i + 1]));
            a + (b - a) * (pos - pos.floor())
        })
        .collect()
}

/// Keys of the given ranks among `n` keys produced by `scan` (called twice over all `rows`, in parallel bands): a
/// histogram of the high 16 bits finds each rank's bucket, a second of the low 16 bits within those buckets finds
/// the key.
fn select_keys(
    n: u64,
    ranks: &[u64],
    rows: usize,
    scan: impl Fn(std::ops::Range<usize>, &mut dyn FnMut(u32)) + Sync,
) -> Vec<u32> {
    use rayon::prelude::*;
    // Bands of rows, each counted into its own histograms, summed at the end: memory grows with the bands, so
    // few and large ones.
    // Small images in one band: zeroing and summing 512 KiB histograms would cost more than the counting.
    let band = if n < (1 << 21) { rows.max(1) } else { rows.div_ceil(rayon::current_num_threads().max(1)).max(64) };
    let histograms = |buckets: usize, add: &(dyn Fn(&mut [Vec<u64>], u32) + Sync)| -> Vec<Vec<u64>> {
        (0..rows.div_ceil(band))
            .into_par_iter()
            .map(|b| {
                let mut h = vec![vec![0u64; 1 << 16]; buckets];
                scan(b * band..((b + 1) * band).min(rows), &mut |k| add(&mut h, k));
                h
            })
            .reduce(
                || vec![vec![0u64; 1 << 16]; buckets],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(b) {
                        x.iter_mut().zip(y).for_each(|(u, v)| *u += v);
                    }
                    a
                },
            )
    };
    let high = histograms(1, &|h, k| h[0][(k >> 16) as usize] += 1).remove(0);
    debug_assert_eq!(high.iter().sum::<u64>(), n);
    // For each rank: its bucket and its rank inside the bucket.
    let locate = |hist: &[u64], rank: u64| -> (usize, u64) {
        let mut seen = 0;
        for (b, &c) in hist.iter().enumerate() {
            if rank < seen + c {
                return (b, rank - seen);
            }
            seen += c;
        }
        unreachable!("rank {rank} beyond {seen} keys")
    };
    let located: Vec<(usize, u64)> = ranks.iter().map(|&r| locate(&high, r)).collect();
    let mut buckets: Vec<usize> = located.iter().map(|l| l.0).collect();
    buckets.sort_unstable();
    buckets.dedup();
    let low = histograms(buckets.len(), &|h, k| {
        if let Ok(i) = buckets.binary_search(&((k >> 16) as usize)) {
            h[i][(k & 0xffff) as usize] += 1;
        }
    });
    located
        .iter()
        .map(|&(b, r)| {
            let i = buckets.binary_search(&b).unwrap();
            ((b as u32) << 16) | locate(&low[i], r).0 as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numpy_percentile(values: &[f64], q: f64) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pos = q / 100.0 * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (pos - pos.floor())
    }

    #[test]
    fn exact_against_sorting() {
        let mut state = 12345u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for trial in 0..20 {
            let (w, h, ch) = (1 + (next() % 37) as usize, 1 + (next() % 23) as usize, 1 + (trial % 3));
            let stride = w * ch + (next() % 3) as usize;
            let f: Vec<f32> = (0..stride * h).map(|_| ((next() % 20001) as f32 - 10000.0) * 0.37).collect();
            let u: Vec<u16> = (0..stride * h).map(|_| (next() % 65536) as u16).collect();
            for view in [
                ImageView::new(Pixels::F32(&f), w, h, ch, stride).unwrap(),
                ImageView::new(Pixels::U16(&u), w, h, ch, stride).unwrap(),
            ] {
                for c in 0..ch {
                    let vals: Vec<f64> = (0..h)
                        .flat_map(|y| (0..w).map(move |x| (y, x)))
                        .map(|(y, x)| match view.pixels {
                            Pixels::F32(p) => p[y * stride + x * ch + c] as f64,
                            Pixels::U16(p) => p[y * stride + x * ch + c] as f64,
                            Pixels::U32(p) => p[y * stride + x * ch + c] as f64,
                            Pixels::U8(p) => p[y * stride + x * ch + c] as f64,
                        })
                        .collect();
                    let qs = [0.0, 1.0, 37.5, 99.8, 100.0];
                    let got = percentiles(&view, c, &qs);
                    for (q, g) in qs.iter().zip(got) {
                        let want = numpy_percentile(&vals, *q);
                        assert!((g - want).abs() <= 1e-9 * want.abs().max(1.0), "q={q}: {g} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn negative_zero_and_extremes_order_correctly() {
        let data = [-0.0f32, 0.0, -1e30, 1e30, f32::MIN_POSITIVE, -f32::MIN_POSITIVE];
        let view = ImageView::new(Pixels::F32(&data), 6, 1, 1, 6).unwrap();
        let p = percentiles(&view, 0, &[0.0, 100.0]);
        assert_eq!(p, vec![-1e30f32 as f64, 1e30f32 as f64]);
    }

    #[test]
    fn rejects_nan() {
        let data = [1.0f32, f32::NAN];
        let view = ImageView::new(Pixels::F32(&data), 2, 1, 1, 2).unwrap();
        let err = Normalizer::for_image(&view, Normalization::DEFAULT).unwrap_err();
        assert_eq!(err.status(), crate::error::UnetStatus::NonFinitePixel);
        assert!(err.message().contains("x=1"), "{err}");
    }
}
