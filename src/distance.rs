//! The exact squared Euclidean distance transform (Felzenszwalb & Huttenlocher 2012): the weight maps measure
//! distances to cell borders with it, the watershed floods its distance map.

use std::collections::TryReserveError;

/// Reusable buffers for the exact squared Euclidean distance transform (Felzenszwalb & Huttenlocher 2012).
#[derive(Default)]
pub struct EdtScratch {
    dist: Vec<f64>,
    f: Vec<f64>,
    d: Vec<f64>,
    v: Vec<usize>,
    z: Vec<f64>,
}

impl EdtScratch {
    /// Squared distance from every pixel of a `w x h` grid to the nearest pixel where `is_feature` holds
    /// (infinity when there is none). The buffers are reserved fallibly: a grid as large as a huge image is
    /// refused with an error the caller can report, where a plain resize would abort the host process.
    pub fn squared_edt(
        &mut self,
        w: usize,
        h: usize,
        is_feature: impl Fn(usize, usize) -> bool,
    ) -> Result<&[f64], TryReserveError> {
        let n = w.max(h);
        refill(&mut self.dist, w * h, 0.0)?;
        refill(&mut self.f, n, 0.0)?;
        refill(&mut self.d, n, 0.0)?;
        refill(&mut self.v, n, 0)?;
        refill(&mut self.z, n + 1, 0.0)?;
        for y in 0..h {
            for x in 0..w {
                self.dist[y * w + x] = if is_feature(x, y) { 0.0 } else { f64::INFINITY };
            }
        }
        for x in 0..w {
            for y in 0..h {
                self.f[y] = self.dist[y * w + x];
            }
            dt_1d(&self.f[..h], &mut self.d[..h], &mut self.v, &mut self.z);
            for y in 0..h {
                self.dist[y * w + x] = self.d[y];
            }
        }
        for y in 0..h {
            self.f[..w].copy_from_slice(&self.dist[y * w..(y + 1) * w]);
            dt_1d(&self.f[..w], &mut self.d[..w], &mut self.v, &mut self.z);
            self.dist[y * w..(y + 1) * w].copy_from_slice(&self.d[..w]);
        }
        Ok(&self.dist)
    }
}

/// `v` holding `n` copies of `value`, its memory reserved fallibly.
fn refill<T: Clone>(v: &mut Vec<T>, n: usize, value: T) -> Result<(), TryReserveError> {
    v.clear();
    v.try_reserve_exact(n)?;
    v.resize(n, value);
    Ok(())
}

/// 1-D squared distance transform of sampled function `f` (lower envelope of parabolas).
pub(crate) fn dt_1d(f: &[f64], d: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    let mut k = 0usize;
    let mut found = false;
    for q in 0..n {
        if f[q].is_finite() {
            if !found {
                v[0] = q;
                z[0] = f64::NEG_INFINITY;
                z[1] = f64::INFINITY;
                k = 0;
                found = true;
                continue;
            }
            let mut s;
            loop {
                let p = v[k];
                s = ((f[q] + (q * q) as f64) - (f[p] + (p * p) as f64)) / (2.0 * (q as f64 - p as f64));
                if s <= z[k] && k > 0 {
                    k -= 1;
                } else {
                    break;
                }
            }
            if s <= z[k] {
                // k == 0 and the new parabola dominates from the start.
                v[0] = q;
                z[0] = f64::NEG_INFINITY;
                z[1] = f64::INFINITY;
                continue;
            }
            k += 1;
            v[k] = q;
            z[k] = s;
            z[k + 1] = f64::INFINITY;
        }
    }
    if !found {
        d.iter_mut().for_each(|x| *x = f64::INFINITY);
        return;
    }
    let mut k = 0;
    for (q, dq) in d.iter_mut().enumerate() {
        while z[k + 1] < q as f64 {
            k += 1;
        }
        let p = v[k];
        let diff = q as f64 - p as f64;
        *dq = diff * diff + f[p];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edt_matches_brute_force() {
        let mut s = 17u64;
        let mut scratch = EdtScratch::default();
        for _ in 0..50 {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            let (w, h) = (1 + (s >> 40) as usize % 23, 1 + (s >> 50) as usize % 19);
            let feats: Vec<bool> = (0..w * h)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (s >> 60) < 2
                })
                .collect();
            let got = scratch.squared_edt(w, h, |x, y| feats[y * w + x]).unwrap().to_vec();
            for y in 0..h {
                for x in 0..w {
                    let mut best = f64::INFINITY;
                    for fy in 0..h {
                        for fx in 0..w {
                            if feats[fy * w + fx] {
                                let (dx, dy) = (x as f64 - fx as f64, y as f64 - fy as f64);
                                best = best.min(dx * dx + dy * dy);
                            }
                        }
                    }
                    assert_eq!(got[y * w + x], best, "{w}x{h} at ({x},{y})");
                }
            }
        }
    }
}
