//! Training tiles with the paper's augmentation: a random position, rotation, flips, an elastic deformation
//! (random displacements on a coarse 3x3 grid, std 10 px, interpolated bicubically per pixel) and gray-value
//! changes. One coordinate map moves image (bicubic), labels (nearest) and ignore masks (nearest) identically;
//! context outside the image is mirrored exactly as at inference ([`crate::tiling::mirror`]).
//!
//! Beyond the paper, optional realism for data that is softer, sharper, noisier or at another scale than the
//! training frames (e.g. the U373 frames restored from a 512x512 copy): a random zoom, Gaussian blur or unsharp
//! masking, and additive noise. They change the image only; labels follow the zoom through the same warp.

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
    /// Random zoom: the tile shows the image scaled by a factor log-uniform in [1/(1+zoom), 1+zoom]; 0 = none.
    pub zoom: f32,
    /// Per tile, one of: nothing, a Gaussian blur with sigma uniform in [0, blur] pixels, or unsharp masking
    /// (sigma 1) with amount uniform in [0, sharpen]; 0 disables that choice.
    pub blur: f32,
    pub sharpen: f32,
    /// Additive Gaussian noise with a standard deviation uniform in [0, noise] (normalised gray units); 0 = none.
    pub noise: f32,
    /// Probability of inverted contrast (v -> 1 - v in normalised units): bright objects on a dark background become
    /// dark on light, as brightfield and stained tissue show nuclei; 0 = never.
    pub invert: f32,
}

impl Default for Augmentation {
    fn default() -> Self {
        Augmentation::PAPER
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
        zoom: 0.0,
        blur: 0.0,
        sharpen: 0.0,
        noise: 0.0,
        invert: 0.0,
    };

    /// The paper's augmentation (the default), no realism extras.
    pub const PAPER: Augmentation = Augmentation {
        elastic_std: 10.0,
        elastic_grid: 3,
        rotate: true,
        flip: true,
        gray_scale: 0.2,
        gray_offset: 0.1,
        ..Augmentation::NONE
    };

    /// `--augment realistic`: the paper's plus zoom 1/1.25..1.25, blur up to sigma 1.5 px or unsharp amount up to
    /// 1, noise up to 0.05.
    pub const REALISTIC: Augmentation =
        Augmentation { zoom: 0.25, blur: 1.5, sharpen: 1.0, noise: 0.05, ..Augmentation::PAPER };

    /// `--augment versatile`: realistic, wider zoom (1/1.5..1.5: nuclei of many magnifications) and inverted
    /// contrast in 30 % of the tiles (one network for fluorescence, brightfield and stained tissue).
    pub const VERSATILE: Augmentation = Augmentation { zoom: 0.5, invert: 0.3, ..Augmentation::REALISTIC };
}

/// What happens to a tile's sharpness.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Focus {
    Unchanged,
    /// Gaussian blur with this sigma (pixels).
    Blur(f32),
    /// `v + amount * (v - blur_1px(v))`.
    Sharpen(f32),
}

/// For each pixel of a `size x size` tile, the (x, y) position in the source image it shows.
#[derive(Clone, Debug)]
pub struct Warp {
    pub size: usize,
    pub coords: Vec<(f32, f32)>,
    /// Gray-value change to apply to the warped image.
    pub gain: f32,
    pub offset: f32,
    pub focus: Focus,
    /// Standard deviation of the additive noise and the seed of its generator (one noise field per tile).
    pub noise_std: f32,
    pub noise_seed: u64,
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
    // Inverted: a (1 - v) + b = -a v + (a + b). Drawn only when asked, so other settings keep their random stream.
    let (gain, offset) = if aug.invert > 0.0 && rng.random_bool(aug.invert.min(1.0) as f64) {
        (-gain, gain + offset)
    } else {
        (gain, offset)
    };
    let zoom = if aug.zoom > 0.0 {
        let range = (1.0 + aug.zoom).ln();
        rng.random_range(-range..range).exp()
    } else {
        1.0
    };
    let focus = match rng.random_range(0..3) {
        1 if aug.blur > 0.0 => Focus::Blur(rng.random_range(0.0..aug.blur)),
        2 if aug.sharpen > 0.0 => Focus::Sharpen(rng.random_range(0.0..aug.sharpen)),
        _ => Focus::Unchanged,
    };
    let noise_std = if aug.noise > 0.0 { rng.random_range(0.0..aug.noise) } else { 0.0 };
    let noise_seed = rng.random();
    let half = (size as f32 - 1.0) / 2.0;
    let scale = (g - 1) as f32 / (size as f32 - 1.0).max(1.0);
    let mut coords = Vec::with_capacity(size * size);
    for y in 0..size {
        for x in 0..size {
            let (u, v) = ((x as f32 - half) * fx * zoom, (y as f32 - half) * fy * zoom);
            let (mut sx, mut sy) = (cx + cos * u - sin * v, cy + sin * u + cos * v);
            if aug.elastic_std > 0.0 {
                let (gx, gy) = (x as f32 * scale, y as f32 * scale);
                sx += grid_bicubic(&dx, g, gx, gy);
                sy += grid_bicubic(&dy, g, gx, gy);
            }
            coords.push((sx, sy));
        }
    }
    Warp { size, coords, gain, offset, focus, noise_std, noise_seed }
}

/// Bicubic resampling of a one-channel image through `warp` (mirrored outside), then its blur or sharpening, the
/// gray-value change and the noise.
pub fn warp_image(image: &[f32], width: usize, height: usize, warp: &Warp) -> Vec<f32> {
    let mut tile = resample(image, width, height, warp);
    match warp.focus {
        Focus::Unchanged => {}
        Focus::Blur(sigma) => crate::synthetic::blur(&mut tile, warp.size, warp.size, sigma),
        Focus::Sharpen(amount) => {
            let mut soft = tile.clone();
            crate::synthetic::blur(&mut soft, warp.size, warp.size, 1.0);
            tile.iter_mut().zip(&soft).for_each(|(v, s)| *v += amount * (*v - s));
        }
    }
    let noise = (warp.noise_std > 0.0).then(|| {
        use rand::SeedableRng;
        (rand::rngs::StdRng::seed_from_u64(warp.noise_seed), Normal::new(0.0, warp.noise_std).unwrap())
    });
    match noise {
        Some((mut rng, normal)) => {
            tile.iter_mut().for_each(|v| *v = *v * warp.gain + warp.offset + normal.sample(&mut rng));
        }
        None => tile.iter_mut().for_each(|v| *v = *v * warp.gain + warp.offset),
    }
    tile
}

fn resample(image: &[f32], width: usize, height: usize, warp: &Warp) -> Vec<f32> {
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
            v
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
                &Augmentation { gray_scale: 0.0, gray_offset: 0.0, zoom: 0.25, ..Default::default() },
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

    /// Inverted contrast: about the asked share of tiles shows 1 - v (no other gray change), the rest v.
    #[test]
    fn inversion_flips_the_gray_values_of_the_asked_share() {
        let aug = Augmentation { invert: 0.3, ..Augmentation::NONE };
        let img: Vec<f32> = (0..16 * 16).map(|i| (i % 16) as f32 / 15.0).collect();
        let mut rng = StdRng::seed_from_u64(4);
        let mut inverted = 0;
        for _ in 0..1000 {
            let warp = random_warp(&mut rng, &aug, 8, 8.0, 8.0);
            let out = warp_image(&img, 16, 16, &warp);
            let plain = warp_image(&img, 16, 16, &Warp { gain: 1.0, offset: 0.0, ..warp.clone() });
            let flipped = out.iter().zip(&plain).all(|(o, p)| (o - (1.0 - p)).abs() < 1e-5);
            let kept = out.iter().zip(&plain).all(|(o, p)| (o - p).abs() < 1e-5);
            assert!(flipped != kept, "a tile is either inverted or not");
            inverted += usize::from(flipped);
        }
        assert!((250..350).contains(&inverted), "{inverted} of 1000 inverted");
    }

    /// Zoom factors spread over [1/1.25, 1.25]; the tile's pixel spacing in the source is the factor.
    #[test]
    fn zoom_scales_the_sampling_grid() {
        let aug = Augmentation { zoom: 0.25, ..Augmentation::NONE };
        let mut rng = StdRng::seed_from_u64(9);
        let factors: Vec<f32> = (0..200)
            .map(|_| {
                let w = random_warp(&mut rng, &aug, 21, 50.0, 50.0);
                let dx = w.coords[1].0 - w.coords[0].0;
                let dy = w.coords[21].1 - w.coords[0].1;
                assert!((dx - dy).abs() < 1e-4, "isotropic: {dx} vs {dy}");
                dx
            })
            .collect();
        let (lo, hi) = factors.iter().fold((f32::MAX, f32::MIN), |(a, b), &f| (a.min(f), b.max(f)));
        assert!(lo >= 1.0 / 1.25 - 1e-4 && hi <= 1.25 + 1e-4, "{lo}..{hi}");
        assert!(lo < 0.85 && hi > 1.15, "the range is used: {lo}..{hi}");
    }

    fn spread(v: &[f32]) -> f32 {
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / v.len() as f32).sqrt()
    }

    /// Blur lowers and sharpening raises the contrast of a checkerboard; noise adds its standard deviation; the same
    /// warp gives the same tile (all channels of an image and a resumed run see identical tiles).
    #[test]
    fn focus_and_noise_change_the_image_as_drawn() {
        let (w, h) = (64, 64);
        let image: Vec<f32> = (0..w * h).map(|i| (((i % w) / 2 + (i / w) / 2) % 2) as f32).collect();
        let plain = Augmentation::NONE;
        let base = random_warp(&mut StdRng::seed_from_u64(1), &plain, 32, 32.0, 32.0);
        let reference = spread(&warp_image(&image, w, h, &base));
        let with = |focus: Focus, noise_std: f32| warp_image(&image, w, h, &Warp { focus, noise_std, ..base.clone() });
        assert!(spread(&with(Focus::Blur(1.5), 0.0)) < 0.5 * reference);
        assert!(spread(&with(Focus::Sharpen(1.0), 0.0)) > 1.2 * reference);
        let noisy = with(Focus::Unchanged, 0.05);
        let clean = with(Focus::Unchanged, 0.0);
        let diff: Vec<f32> = noisy.iter().zip(&clean).map(|(a, b)| a - b).collect();
        assert!((spread(&diff) - 0.05).abs() < 0.005, "noise std {}", spread(&diff));
        assert_eq!(noisy, with(Focus::Unchanged, 0.05), "the noise is a function of the warp");

        // Realistic warps draw every kind of focus.
        let mut rng = StdRng::seed_from_u64(4);
        let kinds: Vec<Focus> =
            (0..60).map(|_| random_warp(&mut rng, &Augmentation::REALISTIC, 8, 4.0, 4.0).focus).collect();
        assert!(kinds.iter().any(|f| matches!(f, Focus::Unchanged)));
        assert!(kinds.iter().any(|f| matches!(f, Focus::Blur(s) if *s > 0.0 && *s < 1.5)));
        assert!(kinds.iter().any(|f| matches!(f, Focus::Sharpen(a) if *a > 0.0 && *a < 1.0)));
    }
}
