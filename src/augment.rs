//! Training tiles with the paper's augmentation: a random position, rotation, flips, an elastic deformation
//! (random displacements on a coarse 3x3 grid, std 10 px, interpolated bicubically per pixel) and gray-value
//! changes. One coordinate map moves image (bicubic), labels (nearest) and ignore masks (nearest) identically;
//! context outside the image is mirrored exactly as at inference ([`crate::tiling::mirror`]).

use rand::Rng;
use rand_distr::{Distribution, Normal};

use crate::tiling::mirror;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augmentation {
    /// Standard deviation of the coarse-grid displacements in pixels (paper: 10); 0 disables the deformation.
    pub elastic_std: f32,
    /// Points per side of the coarse displacement grid (paper: 3).
    pub elastic_grid: usize,
    /// Random rotation by any angle.
    pub rotate: bool,
    /// Random horizontal/vertical flips.
    pub flip: bool,
    /// Gray values: v -> a * v + b with a in 1 ± scale, b in ± offset (normalised units), and a gamma in 1 ± gamma.
    pub gray_scale: f32,
    pub gray_offset: f32,
}

impl Default for Augmentation {
    fn default() -> Self {
        Augmentation { elastic_std: 10.0, elastic_grid: 3, rotate: true, flip: true, gray_scale: 0.2, gray_offset: 0.1 }
    }
}

impl Augmentation {
    pub const NONE: Augmentation = Augmentation {
        elastic_std: 0.0,
        elastic_grid: 3,
        rotate: false,
        flip: false,
        gray_scale: 0.0,
        gray_offset: 0.0,
    };
}

/// For each pixel of a `size x size` tile, the (x, y) position in the source image it shows.
#[derive(Clone, Debug)]
pub struct Warp {
    pub size: usize,
    pub coords: Vec<(f32, f32)>,
    /// Gray-value change to apply to the warped image.
    pub gain: f32,
    pub offset: f32,
}

/// Cubic convolution kernel (Keys, a = -0.5), the usual "bicubic".
#[inline]
fn cubic(t: f32) -> f32 {
    let t = t.abs();
    if t <= 1.0 {
        (1.5 * t - 2.5) * t * t + 1.0
    } else if t < 2.0 {
        ((-0.5 * t + 2.5) * t - 4.0) * t + 2.0
    } else {
        0.0
    }
}

/// Bicubic interpolation of a small `g x g` grid at fractional grid position (gx, gy), edges clamped.
fn grid_bicubic(grid: &[f32], g: usize, gx: f32, gy: f32) -> f32 {
    let (ix, iy) = (gx.floor() as isize, gy.floor() as isize);
    let mut v = 0.0;
    for j in -1..=2 {
        let wy = cubic(gy - (iy + j) as f32);
        let yy = (iy + j).clamp(0, g as isize - 1) as usize;
        for i in -1..=2 {
            let xx = (ix + i).clamp(0, g as isize - 1) as usize;
            v += wy * cubic(gx - (ix + i) as f32) * grid[yy * g + xx];
        }
    }
    v
}

/// A random warp for a tile of `size` pixels centred on (cx, cy) of the source image.
pub fn random_warp(rng: &mut impl Rng, aug: &Augmentation, size: usize, cx: f32, cy: f32) -> Warp {
    let g = aug.elastic_grid.max(2);
    let (mut dx, mut dy) = (vec![0f32; g * g], vec![0f32; g * g]);
    if aug.elastic_std > 0.0 {
        let normal = Normal::new(0.0, aug.elastic_std).unwrap();
        dx.iter_mut().chain(dy.iter_mut()).for_each(|v| *v = normal.sample(rng));
    }
    let angle = if aug.rotate { rng.random_range(0.0..std::f32::consts::TAU) } else { 0.0 };
    let (sin, cos) = angle.sin_cos();
    let fx = if aug.flip && rng.random_bool(0.5) { -1.0 } else { 1.0 };
    let fy = if aug.flip && rng.random_bool(0.5) { -1.0 } else { 1.0 };
    let gain = 1.0 + if aug.gray_scale > 0.0 { rng.random_range(-aug.gray_scale..aug.gray_scale) } else { 0.0 };
    let offset = if aug.gray_offset > 0.0 { rng.random_range(-aug.gray_offset..aug.gray_offset) } else { 0.0 };
    let half = (size as f32 - 1.0) / 2.0;
    let scale = (g - 1) as f32 / (size as f32 - 1.0).max(1.0);
    let mut coords = Vec::with_capacity(size * size);
    for y in 0..size {
        for x in 0..size {
            let (u, v) = ((x as f32 - half) * fx, (y as f32 - half) * fy);
            let (mut sx, mut sy) = (cx + cos * u - sin * v, cy + sin * u + cos * v);
            if aug.elastic_std > 0.0 {
                let (gx, gy) = (x as f32 * scale, y as f32 * scale);
                sx += grid_bicubic(&dx, g, gx, gy);
                sy += grid_bicubic(&dy, g, gx, gy);
            }
            coords.push((sx, sy));
        }
    }
    Warp { size, coords, gain, offset }
}

/// Bicubic resampling of a one-channel image through `warp` (mirrored outside), then the gray-value change.
pub fn warp_image(image: &[f32], width: usize, height: usize, warp: &Warp) -> Vec<f32> {
    warp.coords
        .iter()
        .map(|&(sx, sy)| {
            let (ix, iy) = (sx.floor() as isize, sy.floor() as isize);
            let mut v = 0.0;
            for j in -1..=2 {
                let wy = cubic(sy - (iy + j) as f32);
                if wy == 0.0 {
                    continue;
                }
                let row = mirror(iy + j, height) * width;
                for i in -1..=2 {
                    v += wy * cubic(sx - (ix + i) as f32) * image[row + mirror(ix + i, width)];
                }
            }
            v * warp.gain + warp.offset
        })
        .collect()
}

/// Nearest-neighbour resampling (labels, masks) through `warp`, mirrored outside.
pub fn warp_nearest<T: Copy>(values: &[T], width: usize, height: usize, warp: &Warp) -> Vec<T> {
    warp.coords
        .iter()
        .map(|&(sx, sy)| values[mirror(sy.round() as isize, height) * width + mirror(sx.round() as isize, width)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn identity_warp_copies_the_tile() {
        let (w, h) = (30, 20);
        let img: Vec<f32> = (0..w * h).map(|i| i as f32).collect();
        let warp = random_warp(&mut StdRng::seed_from_u64(1), &Augmentation::NONE, 11, 15.0, 10.0);
        let out = warp_image(&img, w, h, &warp);
        // Tile centre (5, 5) maps to (15, 10): pixel (x, y) of the tile shows (10 + x, 5 + y).
        for y in 0..11 {
            for x in 0..11 {
                assert!((out[y * 11 + x] - img[(5 + y) * w + 10 + x]).abs() < 1e-3);
            }
        }
    }

    /// Image = label value: wherever the bicubic support holds one label, image and label agree after warping.
    #[test]
    fn image_labels_stay_aligned_under_any_warp() {
        let (w, h) = (64, 48);
        let labels: Vec<u32> = (0..w * h).map(|i| (((i % w) / 9) + 7 * ((i / w) / 8)) as u32).collect();
        let image: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
        let mut rng = StdRng::seed_from_u64(3);
        let mut checked = 0;
        for _ in 0..10 {
            let warp = random_warp(
                &mut rng,
                &Augmentation { gray_scale: 0.0, gray_offset: 0.0, ..Default::default() },
                40,
                30.0,
                25.0,
            );
            let (wi, wl) = (warp_image(&image, w, h, &warp), warp_nearest(&labels, w, h, &warp));
            for (k, &(sx, sy)) in warp.coords.iter().enumerate() {
                let (ix, iy) = (sx.floor() as isize, sy.floor() as isize);
                let support: Vec<u32> = (-1..=2)
                    .flat_map(|j| (-1..=2).map(move |i| (i, j)))
                    .map(|(i, j)| labels[mirror(iy + j, h) * w + mirror(ix + i, w)])
                    .collect();
                if support.iter().all(|&l| l == support[0]) {
                    assert!((wi[k] - wl[k] as f32).abs() < 1e-3, "pixel {k}: image {} label {}", wi[k], wl[k]);
                    checked += 1;
                }
            }
        }
        assert!(checked > 5000, "{checked}");
    }
}
