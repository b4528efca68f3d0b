//! Synthetic fluorescence-like images with known ground truth: bright, possibly touching discs and ellipses on a
//! dark, noisy background. Tests, the demo command and benchmarks make their data here, so nothing third-party
//! is needed to run them.

use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal};

/// A generated image and its instance labels (0 = background).
pub struct SyntheticImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u16>,
    pub labels: Vec<u32>,
    pub cells: u32,
}

/// `cells` ellipses of radius `radius.0..radius.1` placed at random (overlaps are resolved to the nearest
/// centre, so touching cells share a border, drawn as a darker rim), soft edges, Gaussian noise, 12 bits.
pub fn cells(width: usize, height: usize, cells: u32, radius: (f32, f32), seed: u64) -> SyntheticImage {
    let mut rng = StdRng::seed_from_u64(seed);
    let list: Vec<Ellipse> = (0..cells)
        .map(|_| {
            let r = rng.random_range(radius.0..=radius.1);
            Ellipse {
                cx: rng.random_range(0.0..width as f32),
                cy: rng.random_range(0.0..height as f32),
                rx: r * rng.random_range(0.8..1.2),
                ry: r * rng.random_range(0.8..1.2),
                angle: rng.random_range(0.0..std::f32::consts::PI),
                brightness: rng.random_range(0.6..1.0),
            }
        })
        .collect();
    let noise = Normal::new(0.0f32, 60.0).unwrap();
    let mut pixels = vec![0u16; width * height];
    let mut labels = vec![0u32; width * height];
    // Cells are only looked up near their centre: a grid of buckets keeps generation linear in the area.
    let bucket = (radius.1 * 1.3).ceil().max(1.0) as usize * 2;
    let (bw, bh) = (width.div_ceil(bucket), height.div_ceil(bucket));
    let mut grid: Vec<Vec<usize>> = vec![Vec::new(); bw * bh];
    for (i, c) in list.iter().enumerate() {
        let (gx, gy) = ((c.cx as usize / bucket).min(bw - 1), (c.cy as usize / bucket).min(bh - 1));
        grid[gy * bw + gx].push(i);
    }
    for y in 0..height {
        for x in 0..width {
            let (best, second) = nearest_two(x, y, bucket, (bw, bh), &grid, |i| list[i].geometry());
            let mut value = 300.0;
            if let Some((d, i)) = best {
                // Soft edge over ~10 % of the radius.
                let edge = ((1.0 - d) * 10.0).clamp(0.0, 1.0);
                // Where two cells meet, a darker rim (as membranes or phase halos show) marks the border.
                let rim = if second < 1.0 { 0.35 + 0.65 * ((second - d) * 12.0).clamp(0.0, 1.0) } else { 1.0 };
                value += 3000.0 * list[i].brightness * edge * rim;
                if d < 1.0 {
                    labels[y * width + x] = i as u32 + 1;
                }
            }
            pixels[y * width + x] = (value + noise.sample(&mut rng)).clamp(0.0, 4095.0) as u16;
        }
    }
    let count = renumber(&mut labels, cells as usize);
    SyntheticImage { width, height, pixels, labels, cells: count }
}

/// Fluorescence nuclei closer to real images than [`cells`], for training: every image draws its own nucleus size
/// (radius 4-16 px), density and clustering (touching groups), per-nucleus brightness over a decade (dim nuclei
/// are the hard ones), a few small saturated (mitotic-like) nuclei, inner texture, touching borders with or without
/// a darker seam, an optical blur of 0.5-2 px, a background offset with a gradient, and shot plus read noise in a
/// random 16-bit range. Labels are the nuclei before blur, touching nuclei split at the nearest centre.
pub fn nuclei(width: usize, height: usize, seed: u64) -> SyntheticImage {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_0F4E_C1E1);
    let radius = rng.random_range(4.0f32..16.0);
    let spread = rng.random_range(0.1f32..0.35);
    let coverage = rng.random_range(0.08f32..0.4);
    let count = ((coverage * (width * height) as f32) / (std::f32::consts::PI * radius * radius)).max(1.0) as usize;
    let clustered = rng.random_range(0.0f32..0.8);
    let seam = rng.random_range(0.0f32..0.5);
    let mut list: Vec<Nucleus> = Vec::with_capacity(count);
    for _ in 0..count {
        let r = radius * (1.0 + spread * rng.random_range(-1.0f32..1.0));
        let mitotic = rng.random_bool(0.03);
        let r = if mitotic { r * 0.6 } else { r };
        // A clustered nucleus sits against an earlier one.
        let (cx, cy) = match list.last() {
            Some(_) if rng.random_bool(clustered as f64) => {
                let other = &list[rng.random_range(0..list.len())];
                let a = rng.random_range(0.0..std::f32::consts::TAU);
                let d = (other.shape.rx.max(other.shape.ry) + r) * rng.random_range(0.75f32..1.0);
                (other.shape.cx + a.cos() * d, other.shape.cy + a.sin() * d)
            }
            _ => (rng.random_range(0.0..width as f32), rng.random_range(0.0..height as f32)),
        };
        let aspect = rng.random_range(0.7f32..1.0);
        list.push(Nucleus {
            shape: Ellipse {
                cx,
                cy,
                rx: r,
                ry: r * aspect,
                angle: rng.random_range(0.0..std::f32::consts::PI),
                brightness: if mitotic { rng.random_range(2.0..4.0) } else { 10f32.powf(rng.random_range(-1.0..0.0)) },
            },
            texture_phase: (rng.random_range(0.0..100.0), rng.random_range(0.0..100.0)),
        });
    }
    let texture = rng.random_range(0.0f32..0.35);
    let bucket = (radius * (1.0 + spread) * 2.6).ceil().max(1.0) as usize;
    let (mut clean, mut labels) = render_nuclei(&list, width, height, bucket, texture, seam);
    blur(&mut clean, width, height, rng.random_range(0.5f32..2.0));
    let (scale, background) = (rng.random_range(400.0f32..20000.0), rng.random_range(0.0f32..0.15));
    let (gx, gy) = (rng.random_range(-0.1f32..0.1), rng.random_range(-0.1f32..0.1));
    let read = Normal::new(0.0f32, 1.0).unwrap();
    let read_std = rng.random_range(0.005f32..0.04);
    let mut pixels = vec![0u16; width * height];
    for y in 0..height {
        for x in 0..width {
            let bg = background * (1.0 + gx * (x as f32 / width as f32 - 0.5) + gy * (y as f32 / height as f32 - 0.5));
            let signal = (clean[y * width + x] + bg) * scale;
            // Shot noise ~ sqrt(signal) (in units where one count is one photon), plus read noise.
            let noisy = signal + read.sample(&mut rng) * (signal.max(0.0).sqrt() + read_std * scale);
            pixels[y * width + x] = noisy.clamp(0.0, 65535.0) as u16;
        }
    }
    let cells = renumber(&mut labels, count);
    SyntheticImage { width, height, pixels, labels, cells }
}

/// The nearest ellipse to pixel (x, y) (its ellipse-normalised distance, 1 on its outline, and its index) and the
/// distance to the second nearest, among the ellipses in the 3 x 3 `bucket`-pixel grid cells around the pixel
/// (`grid`: `cells.0` x `cells.1` lists of indices); `ellipse(i)` is [centre x, centre y, radius x, radius y, angle].
fn nearest_two(
    x: usize,
    y: usize,
    bucket: usize,
    (bw, bh): (usize, usize),
    grid: &[Vec<usize>],
    ellipse: impl Fn(usize) -> [f32; 5],
) -> (Option<(f32, usize)>, f32) {
    let (gx, gy) = (x / bucket, y / bucket);
    let (mut best, mut second) = (None::<(f32, usize)>, f32::INFINITY);
    for ny in gy.saturating_sub(1)..=(gy + 1).min(bh - 1) {
        for nx in gx.saturating_sub(1)..=(gx + 1).min(bw - 1) {
            for &i in &grid[ny * bw + nx] {
                let [cx, cy, rx, ry, angle] = ellipse(i);
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                let (s, co) = angle.sin_cos();
                let (u, v) = ((dx * co + dy * s) / rx, (-dx * s + dy * co) / ry);
                let d = (u * u + v * v).sqrt();
                match best {
                    Some((bd, _)) if d >= bd => second = second.min(d),
                    _ => {
                        if let Some((bd, _)) = best {
                            second = second.min(bd);
                        }
                        best = Some((d, i));
                    }
                }
            }
        }
    }
    (best, second)
}

/// One synthetic cell: an ellipse and its brightness.
struct Ellipse {
    cx: f32,
    cy: f32,
    rx: f32,
    ry: f32,
    angle: f32,
    brightness: f32,
}

impl Ellipse {
    /// Centre, radii and angle, as [`nearest_two`] takes them.
    fn geometry(&self) -> [f32; 5] {
        [self.cx, self.cy, self.rx, self.ry, self.angle]
    }
}

/// One synthetic nucleus: an ellipse with its texture.
struct Nucleus {
    shape: Ellipse,
    texture_phase: (f32, f32),
}

/// The noise-free image and the labels of `list`: each pixel belongs to its nearest nucleus (in ellipse-normalised
/// distance) within the nucleus, with a soft edge, a darker seam where two touch, and texture. Nuclei are looked up
/// in a grid of `bucket`-pixel cells (more than two radii wide, so the 3 x 3 neighbourhood holds every candidate).
fn render_nuclei(
    list: &[Nucleus],
    width: usize,
    height: usize,
    bucket: usize,
    texture: f32,
    seam: f32,
) -> (Vec<f32>, Vec<u32>) {
    let mut clean = vec![0f32; width * height];
    let mut labels = vec![0u32; width * height];
    let (bw, bh) = (width.div_ceil(bucket), height.div_ceil(bucket));
    let mut grid: Vec<Vec<usize>> = vec![Vec::new(); bw * bh];
    for (i, c) in list.iter().enumerate() {
        // Clustered nuclei may sit partly off the image: clamp to the nearest bucket (a bucket is > 2 radii wide).
        let at = |v: f32, n: usize| ((v / bucket as f32).floor().max(0.0) as usize).min(n - 1);
        grid[at(c.shape.cy, bh) * bw + at(c.shape.cx, bw)].push(i);
    }
    for y in 0..height {
        for x in 0..width {
            let (best, second) = nearest_two(x, y, bucket, (bw, bh), &grid, |i| list[i].shape.geometry());
            if let Some((d, i)) = best
                && d < 1.15
            {
                let c = &list[i];
                let edge = ((1.0 - d) * c.shape.rx.min(c.shape.ry) * 0.7 + 0.5).clamp(0.0, 1.0);
                let rim = if second < 1.0 { 1.0 - seam * (1.0 - ((second - d) * 8.0).clamp(0.0, 1.0)) } else { 1.0 };
                let (px, py) = c.texture_phase;
                let tex = 1.0
                    + texture
                        * ((x as f32 * 0.45 + px).sin() * (y as f32 * 0.37 + py).cos()
                            + 0.5 * (x as f32 * 0.21 - y as f32 * 0.29 + px).sin());
                clean[y * width + x] = c.shape.brightness * edge * rim * tex.max(0.0);
                if d < 1.0 {
                    labels[y * width + x] = i as u32 + 1;
                }
            }
        }
    }
    (clean, labels)
}

/// Renumbers labels 1..=n in raster order; a cell hidden behind its neighbours or off the image has no pixels.
fn renumber(labels: &mut [u32], count: usize) -> u32 {
    let mut map = vec![0u32; count + 1];
    let mut n = 0;
    for l in labels.iter_mut().filter(|l| **l != 0) {
        if map[*l as usize] == 0 {
            n += 1;
            map[*l as usize] = n;
        }
        *l = map[*l as usize];
    }
    n
}

/// Separable Gaussian blur, edges clamped; a sigma of 0 leaves the image as it is.
pub(crate) fn blur(image: &mut [f32], width: usize, height: usize, sigma: f32) {
    if sigma <= 0.0 {
        return;
    }
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = k.iter().sum();
    let mut line = vec![0f32; width.max(height)];
    for y in 0..height {
        line[..width].copy_from_slice(&image[y * width..(y + 1) * width]);
        for x in 0..width {
            image[y * width + x] = k
                .iter()
                .enumerate()
                .map(|(j, w)| w * line[(x as isize + j as isize - r).clamp(0, width as isize - 1) as usize])
                .sum::<f32>()
                / total;
        }
    }
    for x in 0..width {
        for y in 0..height {
            line[y] = image[y * width + x];
        }
        for y in 0..height {
            image[y * width + x] = k
                .iter()
                .enumerate()
                .map(|(j, w)| w * line[(y as isize + j as isize - r).clamp(0, height as isize - 1) as usize])
                .sum::<f32>()
                / total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nuclei_are_varied_labelled_and_reproducible() {
        let a = nuclei(200, 150, 3);
        assert_eq!(a.pixels, nuclei(200, 150, 3).pixels);
        assert!(a.cells > 3, "{} nuclei", a.cells);
        let max = *a.labels.iter().max().unwrap();
        assert_eq!(max, a.cells);
        // Nuclei are brighter than background on average.
        let (mut fg, mut nf, mut bg, mut nb) = (0.0, 0, 0.0, 0);
        for (&p, &l) in a.pixels.iter().zip(&a.labels) {
            if l != 0 {
                fg += p as f64;
                nf += 1;
            } else {
                bg += p as f64;
                nb += 1;
            }
        }
        assert!(fg / nf as f64 > bg / nb as f64);
        let b = nuclei(200, 150, 4);
        assert_ne!(a.labels, b.labels);
    }
}
