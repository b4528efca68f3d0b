//! Overlap-tile planning (paper, Fig. 2). Every output pixel depends only on its receptive field, so tiles whose
//! origins lie on the pooling grid (multiples of 2^depth) reproduce exactly what a single pass over the whole
//! mirrored image would give: no seams. Context outside the image comes from mirroring it (edge pixel repeated,
//! as numpy's `symmetric` and Dask's `reflect`), periodically, so even a 1x1 image has all the context it needs.

use crate::geometry::Geometry;

/// Index into `0..n` of position `i` of the image mirrored without end.
#[inline]
pub fn mirror(i: isize, n: usize) -> usize {
    let period = 2 * n as isize;
    let m = i.rem_euclid(period) as usize;
    if m < n { m } else { period as usize - 1 - m }
}

/// How one axis is cut: `count` tiles of `tile` output pixels whose origins are `stride` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisPlan {
    pub tile: usize,
    pub stride: usize,
    pub count: usize,
}

impl AxisPlan {
    /// Cuts an axis of `n` output pixels into as few tiles of at most `max_tile` output pixels as possible, then
    /// shrinks the tiles to spread them evenly (less wasted computation past the image edge).
    pub fn new(g: &Geometry, n: usize, max_tile: usize) -> AxisPlan {
        let max_tile = g.output_at_most(max_tile);
        let single = g.output_at_least(n);
        if single <= max_tile && single >= n {
            return AxisPlan { tile: single, stride: single, count: 1 };
        }
        if g.fixed {
            // One tile size: origins on the step grid as far apart as the tile allows.
            let stride = if max_tile >= g.size_step { max_tile / g.size_step * g.size_step } else { max_tile };
            return AxisPlan { tile: max_tile, stride, count: n.div_ceil(stride) };
        }
        let step = g.size_step;
        let max_stride = ((max_tile - g.output_residue()) / step * step).max(step);
        let count = n.div_ceil(max_stride);
        let stride = n.div_ceil(count).div_ceil(step) * step;
        let tile = g.output_at_least(stride);
        debug_assert!(tile >= stride && stride * (count - 1) < n && stride * count >= n);
        AxisPlan { tile, stride, count }
    }

    /// Output range `[start, end)` of the image that tile `i` writes (each pixel is written by exactly one tile).
    pub fn owned(&self, i: usize, n: usize) -> (usize, usize) {
        let start = i * self.stride;
        (start, ((i + 1) * self.stride).min(n))
    }
}

/// A tile: its output origin in the image and the part of the image it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub y0: usize,
    pub x0: usize,
    pub own_height: usize,
    pub own_width: usize,
}

/// The plan for a whole image. All tiles have the same shape, so several can share one ONNX Runtime call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TilePlan {
    pub height: usize,
    pub width: usize,
    pub rows: AxisPlan,
    pub cols: AxisPlan,
    pub halo: usize,
}

impl TilePlan {
    pub fn new(g: &Geometry, height: usize, width: usize, max_tile: usize) -> TilePlan {
        TilePlan {
            height,
            width,
            rows: AxisPlan::new(g, height, max_tile),
            cols: AxisPlan::new(g, width, max_tile),
            halo: g.halo,
        }
    }

    pub fn len(&self) -> usize {
        self.rows.count * self.cols.count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Network input size of one tile (height, width).
    pub fn input_shape(&self) -> (usize, usize) {
        (self.rows.tile + 2 * self.halo, self.cols.tile + 2 * self.halo)
    }

    pub fn output_shape(&self) -> (usize, usize) {
        (self.rows.tile, self.cols.tile)
    }

    pub fn tile(&self, index: usize) -> Tile {
        let (r, c) = (index / self.cols.count, index % self.cols.count);
        let (y0, y1) = self.rows.owned(r, self.height);
        let (x0, x1) = self.cols.owned(c, self.width);
        Tile { y0, x0, own_height: y1 - y0, own_width: x1 - x0 }
    }
}

/// Largest square output tile whose estimated peak memory fits `budget` bytes.
pub fn max_tile_for_budget(g: &Geometry, base_width: usize, batch: usize, budget: usize) -> usize {
    let side = ((budget / bytes_per_input_pixel(base_width, batch)) as f64).sqrt() as usize;
    g.output_at_most(side.saturating_sub(2 * g.halo))
}

/// ONNX Runtime's peak memory per network input pixel on the CPU, measured with `examples/memprobe.rs` (depth 4,
/// inputs 572-1516): about 20 bytes per base-width channel (activations kept for the skip connections) plus
/// ~150 bytes (im2col buffers, input copies, arena rounding). Rounded up here.
pub fn bytes_per_input_pixel(base_width: usize, batch: usize) -> usize {
    (24 * base_width + 160) * batch.max(1)
}

/// Default memory budget for one run's activations.
pub const DEFAULT_MEMORY_BUDGET: usize = 1 << 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_repeats_edge_and_is_periodic() {
        let got: Vec<usize> = (-4..8).map(|i| mirror(i, 3)).collect();
        assert_eq!(got, vec![2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1]);
        assert!((-50..50).all(|i| mirror(i, 1) == 0));
    }

    #[test]
    fn plans_cover_every_pixel_once_on_the_grid() {
        let g = Geometry::for_depth(4);
        for n in [1, 2, 3, 15, 16, 17, 100, 388, 389, 1000, 4097] {
            for max_tile in [4, 20, 100, 388, 5000] {
                let p = AxisPlan::new(&g, n, max_tile);
                assert!(g.output_for_input(p.tile + 2 * g.halo).is_some(), "n={n} max={max_tile}: {p:?}");
                // Several tiles need a stride of at least one pooling step, so tiles are never below step + residue.
                let smallest_multi = g.size_step + g.output_residue();
                assert!(
                    p.tile <= g.output_at_most(max_tile).max(smallest_multi)
                        || p.count == 1 && p.tile == g.output_at_least(n)
                );
                let mut covered = vec![0; n];
                for i in 0..p.count {
                    assert_eq!(i * p.stride % g.size_step, 0, "origin off the pooling grid");
                    let (a, b) = p.owned(i, n);
                    assert!(b - a <= p.tile && a < b);
                    covered[a..b].iter_mut().for_each(|c| *c += 1);
                }
                assert!(covered.iter().all(|&c| c == 1), "n={n} max={max_tile}: {p:?}");
            }
        }
    }

    #[test]
    fn declared_and_fixed_sizes_cover_every_pixel_once() {
        // Padded convolutions, 16-step sizes from 64, 8 px cropped; and a network exported for 96x96 inputs only.
        let free = Geometry::declared(64, 16, 8, false).unwrap();
        let fixed = Geometry::declared(96, 8, 16, true).unwrap();
        assert_eq!(free.output_for_input(80), Some(64));
        assert_eq!(free.output_for_input(72), None);
        assert_eq!(fixed.output_for_input(96), Some(64));
        assert_eq!(fixed.output_for_input(112), None);
        assert!(Geometry::declared(16, 16, 8, false).is_none() && Geometry::declared(64, 0, 0, false).is_none());
        for g in [free, fixed] {
            for n in [1, 7, 64, 65, 200, 1000] {
                for max_tile in [1, 48, 64, 500] {
                    let p = AxisPlan::new(&g, n, max_tile);
                    assert!(g.output_for_input(p.tile + 2 * g.halo).is_some(), "n={n} max={max_tile}: {p:?}");
                    let mut covered = vec![0; n];
                    for i in 0..p.count {
                        assert_eq!(i * p.stride % g.size_step, 0, "origin off the grid");
                        let (a, b) = p.owned(i, n);
                        assert!(b - a <= p.tile && a < b);
                        covered[a..b].iter_mut().for_each(|c| *c += 1);
                    }
                    assert!(covered.iter().all(|&c| c == 1), "n={n} max={max_tile}: {p:?}");
                }
            }
        }
    }

    #[test]
    fn budget_gives_bigger_tiles() {
        let g = Geometry::for_depth(4);
        let small = max_tile_for_budget(&g, 64, 1, 256 << 20);
        let big = max_tile_for_budget(&g, 64, 1, 4 << 30);
        assert!(small < big && small >= 4, "{small} {big}");
    }
}
