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
    struct Cell {
        cx: f32,
        cy: f32,
        rx: f32,
        ry: f32,
        angle: f32,
        brightness: f32,
    }
    let list: Vec<Cell> = (0..cells)
        .map(|_| {
            let r = rng.random_range(radius.0..=radius.1);
            Cell {
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
            let (gx, gy) = (x / bucket, y / bucket);
            let mut best: Option<(f32, usize)> = None;
            let mut second = f32::INFINITY;
            for ny in gy.saturating_sub(1)..=(gy + 1).min(bh - 1) {
                for nx in gx.saturating_sub(1)..=(gx + 1).min(bw - 1) {
                    for &i in &grid[ny * bw + nx] {
                        let c = &list[i];
                        let (dx, dy) = (x as f32 + 0.5 - c.cx, y as f32 + 0.5 - c.cy);
                        let (s, co) = c.angle.sin_cos();
                        let (u, v) = ((dx * co + dy * s) / c.rx, (-dx * s + dy * co) / c.ry);
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
    // Renumber consecutively; a cell hidden entirely behind its neighbours has no pixels.
    let mut map = vec![0u32; cells as usize + 1];
    let mut count = 0;
    for l in labels.iter_mut().filter(|l| **l != 0) {
        if map[*l as usize] == 0 {
            count += 1;
            map[*l as usize] = count;
        }
        *l = map[*l as usize];
    }
    SyntheticImage { width, height, pixels, labels, cells: count }
}
