//! The paper's border-aware loss weights and training targets (Ronneberger et al. 2015, eq. 2, Fig. 3):
//!
//!   w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))
//!
//! from an instance-labelled ground truth (0 = background, any other value = one cell; labels need not be
//! consecutive). Conventions, also stated in the C header:
//! - **Target**: 1 for cell pixels, 0 for background. Where two different cells touch, the pixels of the cell with
//!   the larger label that lie within `border_width` (Chebyshev distance) of the other cell become background, so a
//!   separation line `border_width` pixels wide splits them (Fig. 3c).
//! - **Border term**: only background pixels of the target (separation lines included) receive it, as in the
//!   paper's Fig. 3d. d1 and d2 are exact Euclidean distances from the pixel centre to the nearest pixel of the
//!   nearest and of the second-nearest distinct cell of the target. With fewer than two cells there is no term.
//! - **Class weights** w_c: none (1), inverse class frequency over the target (N / (2 N_class), so balanced
//!   classes get 1), or explicit per-class values.
//!
//! Speed: distances count only within R = sigma * sqrt(2 ln(w0 / eps)); beyond R the border term is below
//! eps = 1e-9 * min(w_c), far below float32 resolution. Two exact methods, the cheaper one chosen per image: per
//! cell, a separable squared Euclidean distance transform inside the cell's bounding box grown by R (few cells, far
//! apart); per row, the two nearest distinct cells along each row, then per pixel the rows up to its second-nearest
//! cell (many or tiny cells, where per-cell work would grow with cells x area). Memory is 9 bytes per pixel plus one
//! cell's window or 16 bytes per pixel of the 2R + 1 rows around the current one.

use crate::{
    distance::EdtScratch,
    error::{Error, Result, UnetStatus},
    image::{ImageView, Pixels},
};

/// How w_c balances the classes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClassBalance {
    None,
    InverseFrequency,
    /// Weights for background and foreground.
    Explicit {
        background: f32,
        foreground: f32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightMapOptions {
    pub w0: f32,
    pub sigma: f32,
    pub balance: ClassBalance,
    /// Width in pixels of the background line that separates touching cells in the target (0 = none).
    pub border_width: usize,
}

impl Default for WeightMapOptions {
    fn default() -> Self {
        WeightMapOptions { w0: 10.0, sigma: 5.0, balance: ClassBalance::InverseFrequency, border_width: 2 }
    }
}

impl WeightMapOptions {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid_argument(m));
        // Documented ranges: beyond them f32 arithmetic loses the border term (sigma ~1e20 made it vanish).
        if !(self.w0.is_finite() && (0.0..=1e6).contains(&self.w0)) {
            return bad(format!("w0 {} must be in [0, 1e6]", self.w0));
        }
        if !(self.sigma.is_finite() && self.sigma > 0.0 && self.sigma <= 1e4) {
            return bad(format!("sigma {} must be in (0, 1e4] pixels", self.sigma));
        }
        if let ClassBalance::Explicit { background, foreground } = self.balance
            && !(background.is_finite() && foreground.is_finite() && background > 0.0 && foreground > 0.0)
        {
            return bad(format!("class weights {background}, {foreground} must be finite and > 0"));
        }
        if self.border_width > 1024 {
            return bad(format!("border width {} is absurd (at most 1024)", self.border_width));
        }
        Ok(())
    }
}

/// A label image: a one-channel [`ImageView`] of integer labels (u8, u16 or u32), the same strided view and the
/// same checks as every image (one definition of a borrowed image).
#[derive(Clone, Copy, Debug)]
pub struct LabelView<'a> {
    view: ImageView<'a>,
    pub width: usize,
    pub height: usize,
}

impl<'a> LabelView<'a> {
    pub fn new(view: ImageView<'a>) -> Result<Self> {
        if view.channels != 1 {
            return Err(Error::new(
                UnetStatus::InvalidSize,
                format!("a label image has one channel, not {}", view.channels),
            ));
        }
        if matches!(view.pixels, Pixels::F32(_)) {
            return Err(Error::new(UnetStatus::UnsupportedDtype, "labels must be u8, u16 or u32 integers, not f32"));
        }
        Ok(LabelView { view, width: view.width, height: view.height })
    }

    /// A packed u32 label image.
    pub fn packed_u32(data: &'a [u32], width: usize, height: usize) -> Result<Self> {
        LabelView::new(ImageView::new(Pixels::U32(data), width, height, 1, width)?)
    }

    #[inline]
    pub fn get(&self, x: usize, y: usize) -> u32 {
        let i = y * self.view.row_stride + x;
        match self.view.pixels {
            Pixels::U8(d) => d[i] as u32,
            Pixels::U16(d) => d[i] as u32,
            Pixels::U32(d) => d[i],
            Pixels::F32(d) => d[i] as u32, // refused by `new`
        }
    }
}

/// What a weight-map computation found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightMapReport {
    /// Distinct cells (non-zero label values) in the input.
    pub cells: usize,
    /// Pixels turned into background to separate touching cells.
    pub separation_pixels: usize,
    /// The class weights used (background, foreground).
    pub class_weights: (f32, f32),
}

/// Computes the weight map and/or the training target (each `width * height`, row-major).
pub fn weight_map(
    labels: &LabelView,
    options: &WeightMapOptions,
    weights: Option<&mut [f32]>,
    target: Option<&mut [u8]>,
) -> Result<WeightMapReport> {
    options.validate()?;
    let (w, h) = (labels.width, labels.height);
    let area = w * h;
    for (name, len) in [("weights", weights.as_ref().map(|b| b.len())), ("target", target.as_ref().map(|b| b.len()))] {
        if let Some(len) = len.filter(|&l| l < area) {
            return Err(Error::new(
                UnetStatus::BufferTooSmall,
                format!("{name} buffer holds {len} elements, the image has {area} pixels"),
            ));
        }
    }
    let mut own_target;
    let target: &mut [u8] = match target {
        Some(t) => &mut t[..area],
        None => {
            own_target = alloc("the target", area, 0u8)?;
            &mut own_target
        }
    };
    let separation_pixels = make_target(labels, options.border_width, target)?;

    let foreground = target.iter().filter(|&&t| t != 0).count();
    let class_weights = match options.balance {
        ClassBalance::None => (1.0, 1.0),
        ClassBalance::Explicit { background, foreground } => (background, foreground),
        ClassBalance::InverseFrequency => {
            let background = area - foreground;
            let inv = |n: usize| if n == 0 { 1.0 } else { (area as f64 / (2.0 * n as f64)) as f32 };
            (inv(background), inv(foreground))
        }
    };
    let cells = cell_boxes(labels, target)?;
    let report = WeightMapReport { cells: cells.len(), separation_pixels, class_weights };
    let Some(weights) = weights else { return Ok(report) };
    let weights = &mut weights[..area];

    // Nearest and second-nearest cell distances of background pixels, within R.
    let eps = 1e-9 * class_weights.0.min(class_weights.1) as f64;
    let sigma = options.sigma as f64;
    let radius = if options.w0 > 0.0 && cells.len() >= 2 {
        sigma * (2.0 * (options.w0 as f64 / eps).ln().max(0.0)).sqrt()
    } else {
        0.0
    };
    let (d1, d2) = nearest_two_cells(labels, target, &cells, radius)?;
    let two_sigma2 = 2.0 * sigma * sigma;
    for i in 0..area {
        let mut v = if target[i] != 0 { class_weights.1 } else { class_weights.0 };
        if target[i] == 0 && d2[i].is_finite() {
            let s = d1[i] as f64 + d2[i] as f64;
            v += (options.w0 as f64 * (-(s * s) / two_sigma2).exp()) as f32;
        }
        weights[i] = v;
    }
    Ok(report)
}

/// For each background pixel of the target, the exact distances to the nearest pixel of the nearest and of the
/// second-nearest cell, where they are within `radius` (infinity beyond). Two exact methods give identical
/// results; the cheaper one for this image runs: per cell when cells are few and far apart, per row when they are
/// many or the radius is large against their spacing (dense nuclei, or hostile inputs with thousands of tiny cells).
fn nearest_two_cells(
    labels: &LabelView,
    target: &[u8],
    cells: &[CellBox],
    radius: f64,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let (w, h) = (labels.width, labels.height);
    let mut d1 = alloc("the nearest-cell distances", w * h, f32::INFINITY)?;
    let mut d2 = alloc("the second-nearest-cell distances", w * h, f32::INFINITY)?;
    if radius <= 0.0 {
        return Ok((d1, d2));
    }
    match cheaper_method(labels, target, cells, radius) {
        Method::PerCell => nearest_two_by_cells(labels, target, cells, radius, &mut d1, &mut d2)?,
        Method::PerRow => nearest_two_by_rows(labels, target, radius, &mut d1, &mut d2)?,
    }
    Ok((d1, d2))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Method {
    PerCell,
    PerRow,
}

/// Per cell costs an exact distance transform over each cell's window; per row costs, at most, the rows within
/// the radius for each background pixel (usually far fewer: it stops at the second-nearest cell). The factor is
/// measured: a window pixel costs ~30 ns, a row visit 1.5-5 ns (less where cells are dense and the scan stops early).
fn cheaper_method(labels: &LabelView, target: &[u8], cells: &[CellBox], radius: f64) -> Method {
    let h = labels.height;
    let windows: u64 = cells.iter().map(|c| c.window(radius, labels).area() as u64).sum();
    let background = target.iter().filter(|&&t| t == 0).count() as u64;
    let rows = (2 * (radius.floor() as usize).min(h - 1) + 1).min(h) as u64;
    const WINDOW_PIXEL_PER_ROW_VISIT: u64 = 8;
    if windows * WINDOW_PIXEL_PER_ROW_VISIT <= background * rows { Method::PerCell } else { Method::PerRow }
}

/// Each cell's squared Euclidean distance transform over its bounding box grown by the radius.
fn nearest_two_by_cells(
    labels: &LabelView,
    target: &[u8],
    cells: &[CellBox],
    radius: f64,
    d1: &mut [f32],
    d2: &mut [f32],
) -> Result<()> {
    let w = labels.width;
    let r2 = radius * radius;
    let mut scratch = EdtScratch::default();
    for cell in cells {
        let window = cell.window(radius, labels);
        let (x0, y0, ww, wh) = (window.x0, window.y0, window.x1 - window.x0 + 1, window.y1 - window.y0 + 1);
        let dist = scratch
            .squared_edt(ww, wh, |x, y| {
                let (gx, gy) = (x0 + x, y0 + y);
                target[gy * w + gx] != 0 && labels.get(gx, gy) == cell.label
            })
            .map_err(|_| oom("a cell's distance transform", window.area()))?;
        for y in 0..wh {
            for x in 0..ww {
                let dd = dist[y * ww + x];
                let i = (y0 + y) * w + x0 + x;
                if dd > r2 || target[i] != 0 {
                    continue;
                }
                let d = dd.sqrt() as f32;
                if d < d1[i] {
                    d2[i] = d1[i];
                    d1[i] = d;
                } else if d < d2[i] {
                    d2[i] = d;
                }
            }
        }
    }
    Ok(())
}

/// The nearest and the second-nearest distinct cell seen so far: squared distances and labels (label 0 = none).
#[derive(Clone, Copy)]
struct NearestTwo {
    value: [u64; 2],
    label: [u32; 2],
}

impl NearestTwo {
    const NONE: NearestTwo = NearestTwo { value: [u64::MAX; 2], label: [0; 2] };

    /// Takes a pixel of cell `label` at `value`, keeping the two labels distinct.
    #[inline]
    fn offer(&mut self, value: u64, label: u32) {
        if label == self.label[0] {
            self.value[0] = self.value[0].min(value);
        } else if value < self.value[0] {
            self.value[1] = self.value[0];
            self.label[1] = self.label[0];
            self.value[0] = value;
            self.label[0] = label;
        } else if value < self.value[1] {
            self.value[1] = value;
            self.label[1] = label;
        }
    }
}

/// The rows within reach of the output row, [`RowNearest`] per pixel, row y in slot y % ring.
struct RowRing {
    data: Vec<RowNearest>,
    ring: usize,
}

/// Along one row: for each pixel, the horizontal offsets to the nearest pixel of the nearest cell in that row and
/// to the nearest pixel of another cell in that row (offset u32::MAX: none).
#[derive(Clone, Copy, Default)]
struct RowNearest {
    dx: [u32; 2],
    label: [u32; 2],
}

impl RowNearest {
    fn from(two: NearestTwo) -> Self {
        let dx = two.value.map(|v| u32::try_from(v).unwrap_or(u32::MAX));
        RowNearest { dx, label: two.label }
    }
}

/// [`RowNearest`] for every pixel of row `y`: one sweep from each side, each carrying the last two distinct cells
/// passed (a cell's last pixel and the last pixel of another cell before it), then the better two of the four.
/// Written to `rows[x * ring + slot]`: the ring is stored column by column, so the scan down a column at one x
/// reads contiguous memory.
fn row_nearest(labels: &LabelView, target: &[u8], y: usize, rows: &mut RowRing, left: &mut [NearestTwo]) {
    let slot = y % rows.ring;
    let w = labels.width;
    let cell = |x: usize| if target[y * w + x] != 0 { labels.get(x, y) } else { 0 };
    // Positions (not offsets) of the last two distinct cells passed, as NearestTwo's values.
    let mut seen = NearestTwo::NONE;
    let pass = |seen: &mut NearestTwo, x: usize| {
        let l = cell(x);
        if l != 0 {
            if l != seen.label[0] {
                seen.value[1] = seen.value[0];
                seen.label[1] = seen.label[0];
                seen.label[0] = l;
            }
            seen.value[0] = x as u64;
        }
    };
    for (x, left) in left.iter_mut().enumerate() {
        pass(&mut seen, x);
        *left = seen;
    }
    seen = NearestTwo::NONE;
    for x in (0..w).rev() {
        pass(&mut seen, x);
        let mut two = NearestTwo::NONE;
        for j in 0..2 {
            if left[x].label[j] != 0 {
                two.offer(x as u64 - left[x].value[j], left[x].label[j]);
            }
            if seen.label[j] != 0 {
                two.offer(seen.value[j] - x as u64, seen.label[j]);
            }
        }
        rows.data[x * rows.ring + slot] = RowNearest::from(two);
    }
}

/// The same distances as [`nearest_two_by_cells`], found per pixel: the two nearest distinct cells along every row
/// within the radius (a ring of rows), then, from the pixel, rows at growing vertical offset k until k² reaches
/// the second distance found or the radius. Exact because the nearest cell is the nearest of some row and the
/// second-nearest is among the two nearest distinct cells of some row. Cost per background pixel: the rows up to
/// its second-nearest cell, independent of how many cells there are.
fn nearest_two_by_rows(labels: &LabelView, target: &[u8], radius: f64, d1: &mut [f32], d2: &mut [f32]) -> Result<()> {
    let (w, h) = (labels.width, labels.height);
    let reach = (radius.floor() as usize).min(h - 1); // farthest row offset k with k² <= radius²
    let r2 = (radius * radius).floor() as u64;
    let ring = (2 * reach + 1).min(h);
    // A radius as tall as the image keeps every row: 16 bytes per pixel, refused rather than aborting when absent.
    let mut rows = RowRing { data: alloc("the ring of rows", ring * w, RowNearest::default())?, ring };
    let mut left = alloc("a row's nearest cells", w, NearestTwo::NONE)?;
    for y in 0..=reach {
        row_nearest(labels, target, y, &mut rows, &mut left);
    }
    for y in 0..h {
        // Row y + reach replaces row y - reach - 1, which no output row needs any more.
        if y > 0 && y + reach < h {
            row_nearest(labels, target, y + reach, &mut rows, &mut left);
        }
        let slot = y % ring;
        for x in 0..w {
            let i = y * w + x;
            if target[i] != 0 {
                continue;
            }
            let column = &rows.data[x * ring..(x + 1) * ring];
            let mut best = NearestTwo::NONE;
            let offer_row = |best: &mut NearestTwo, row: &RowNearest, k2: u64| {
                for j in 0..2 {
                    if row.dx[j] != u32::MAX {
                        let v = k2 + (row.dx[j] as u64).pow(2);
                        if v <= r2 {
                            best.offer(v, row.label[j]);
                        }
                    }
                }
            };
            offer_row(&mut best, &column[slot], 0);
            for k in 1..=reach {
                let k2 = (k * k) as u64;
                if k2 >= best.value[1] {
                    break;
                }
                if k <= y {
                    offer_row(&mut best, &column[if slot >= k { slot - k } else { slot + ring - k }], k2);
                }
                if y + k < h {
                    offer_row(&mut best, &column[if slot + k < ring { slot + k } else { slot + k - ring }], k2);
                }
            }
            if best.value[0] != u64::MAX {
                d1[i] = (best.value[0] as f64).sqrt() as f32;
            }
            if best.value[1] != u64::MAX {
                d2[i] = (best.value[1] as f64).sqrt() as f32;
            }
        }
    }
    Ok(())
}

fn oom(what: &str, n: usize) -> Error {
    Error::new(UnetStatus::OutOfMemory, format!("weight map: cannot allocate {what} ({n} elements)"))
}

/// `n` copies of `v`, refused with OUT_OF_MEMORY rather than aborting the host process when they do not fit:
/// every buffer that grows with the image (or a cell's window in it) comes from here.
fn alloc<T: Clone>(what: &str, n: usize, v: T) -> Result<Vec<T>> {
    let mut out = Vec::new();
    out.try_reserve_exact(n).map_err(|_| oom(what, n))?;
    out.resize(n, v);
    Ok(out)
}

/// Writes the target (1 = cell, 0 = background or separation line); returns the number of separation pixels.
///
/// A cell pixel gives way when a smaller non-zero label lies within Chebyshev distance `border`: the minimum of
/// the labels (background counted as "no label", u32::MAX) over the (2 border + 1)² square around it is below its
/// own. That square minimum is separable (rows, then columns), each pass O(1) per pixel (van Herk / Gil-Werman),
/// so wide borders cost no more than narrow ones; the plain square search was O(border²) per pixel.
fn make_target(labels: &LabelView, border: usize, target: &mut [u8]) -> Result<usize> {
    let (w, h) = (labels.width, labels.height);
    let key = |x, y| match labels.get(x, y) {
        0 => u32::MAX,
        l => l,
    };
    if border == 0 {
        for y in 0..h {
            for x in 0..w {
                target[y * w + x] = u8::from(labels.get(x, y) != 0);
            }
        }
        return Ok(0);
    }
    let mut minimum = alloc("the separation lines' minimum", w * h, u32::MAX)?;
    // Lines as long as the image is wide or tall: reserved fallibly too (a 1 x 10^9 image is one long line).
    let mut window = WindowMin::for_lines(w.max(h), border)?;
    let mut line = alloc("a line of the separation lines", w.max(h), 0u32)?;
    for y in 0..h {
        line.clear();
        line.extend((0..w).map(|x| key(x, y)));
        window.apply(&line, border, &mut minimum[y * w..(y + 1) * w]);
    }
    let mut column = alloc("a column of the separation lines", h, 0u32)?;
    for x in 0..w {
        line.clear();
        line.extend((0..h).map(|y| minimum[y * w + x]));
        window.apply(&line, border, &mut column);
        for (y, &m) in column.iter().enumerate() {
            minimum[y * w + x] = m;
        }
    }
    let mut separated = 0;
    for y in 0..h {
        for x in 0..w {
            let l = labels.get(x, y);
            let gives_way = l != 0 && minimum[y * w + x] < l;
            separated += usize::from(gives_way);
            target[y * w + x] = u8::from(l != 0 && !gives_way);
        }
    }
    Ok(separated)
}

/// Sliding-window minimum over `[i - r, i + r]` (clamped to the line) in O(1) per element: the line, padded
/// with r maxima on each side, is cut into blocks of k = 2r + 1; a window spans at most two blocks, so its
/// minimum is the suffix minimum of the first block and the prefix minimum of the second (van Herk / Gil-Werman).
struct WindowMin {
    prefix: Vec<u32>,
    suffix: Vec<u32>,
}

impl WindowMin {
    /// Buffers for lines of up to `n` values and windows of radius `r`: `apply` then never allocates.
    fn for_lines(n: usize, r: usize) -> Result<Self> {
        let padded = n + 2 * r.min(n);
        Ok(WindowMin {
            prefix: alloc("a window minimum", padded, u32::MAX)?,
            suffix: alloc("a window minimum", padded, u32::MAX)?,
        })
    }

    fn apply(&mut self, line: &[u32], r: usize, out: &mut [u32]) {
        let n = line.len();
        let r = r.min(n); // a wider window sees the whole line either way
        let k = 2 * r + 1;
        let padded = n + 2 * r;
        let value = |j: usize| if j < r || j >= r + n { u32::MAX } else { line[j - r] };
        self.prefix.clear();
        self.prefix.resize(padded, u32::MAX);
        self.suffix.clear();
        self.suffix.resize(padded, u32::MAX);
        for j in 0..padded {
            let v = value(j);
            self.prefix[j] = if j % k == 0 { v } else { v.min(self.prefix[j - 1]) };
        }
        for j in (0..padded).rev() {
            let v = value(j);
            self.suffix[j] = if j % k == k - 1 || j == padded - 1 { v } else { v.min(self.suffix[j + 1]) };
        }
        for (i, o) in out.iter_mut().enumerate().take(n) {
            *o = self.suffix[i].min(self.prefix[i + k - 1]);
        }
    }
}

/// A cell (one label value) of the target and its bounding box (inclusive).
struct CellBox {
    label: u32,
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

impl CellBox {
    /// The box grown by `radius` on every side, clipped to the image: where this cell's distances matter.
    fn window(&self, radius: f64, labels: &LabelView) -> CellBox {
        let r = radius.ceil() as usize;
        CellBox {
            label: self.label,
            x0: self.x0.saturating_sub(r),
            y0: self.y0.saturating_sub(r),
            x1: self.x1.saturating_add(r).min(labels.width - 1),
            y1: self.y1.saturating_add(r).min(labels.height - 1),
        }
    }

    fn area(&self) -> usize {
        (self.x1 - self.x0 + 1) * (self.y1 - self.y0 + 1)
    }
}

/// Every cell of the target with its box, in label order. Up to one cell per pixel on hostile labels: the map
/// grows fallibly.
fn cell_boxes(labels: &LabelView, target: &[u8]) -> Result<Vec<CellBox>> {
    let mut boxes: std::collections::HashMap<u32, CellBox> = std::collections::HashMap::new();
    for y in 0..labels.height {
        for x in 0..labels.width {
            if target[y * labels.width + x] == 0 {
                continue;
            }
            let l = labels.get(x, y);
            if boxes.len() == boxes.capacity() && !boxes.contains_key(&l) {
                boxes.try_reserve(boxes.len().max(16)).map_err(|_| oom("the cells' boxes", boxes.len().max(16)))?;
            }
            let b = boxes.entry(l).or_insert(CellBox { label: l, x0: x, y0: y, x1: x, y1: y });
            b.x0 = b.x0.min(x);
            b.x1 = b.x1.max(x);
            b.y0 = b.y0.min(y);
            b.y1 = b.y1.max(y);
        }
    }
    let mut cells = Vec::new();
    cells.try_reserve_exact(boxes.len()).map_err(|_| oom("the cells' list", boxes.len()))?;
    cells.extend(boxes.into_values());
    cells.sort_by_key(|b| b.label); // deterministic order
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both distance methods give the same bits, on dense random labels (hundreds of one-pixel cells), sparse
    /// blocks and radii from below one pixel to beyond the image; and the choice between them follows the cost.
    #[test]
    fn per_row_distances_equal_per_cell_distances() {
        let mut s = 7u64;
        let mut next = |n: u64| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) % n
        };
        for trial in 0..200 {
            let (w, h) = (1 + next(40) as usize, 1 + next(40) as usize);
            let labels: Vec<u32> = match trial % 3 {
                0 => (0..w * h).map(|_| next(300) as u32).collect(),
                1 => (0..w * h).map(|_| if next(4) == 0 { 1 + next(3) as u32 } else { 0 }).collect(),
                _ => (0..w * h)
                    .map(|i| if (i % w / 7 + i / w / 5) % 3 == 0 { (i % w / 7) as u32 + 1 } else { 0 })
                    .collect(),
            };
            let view = LabelView::packed_u32(&labels, w, h).unwrap();
            let mut target = vec![0u8; w * h];
            make_target(&view, trial % 4, &mut target).unwrap();
            let cells = cell_boxes(&view, &target).unwrap();
            let radius = [0.5, 1.0, 2.9, 7.3, 34.0, 1e3][trial % 6];
            let mut by_cells = (vec![f32::INFINITY; w * h], vec![f32::INFINITY; w * h]);
            let mut by_rows = by_cells.clone();
            nearest_two_by_cells(&view, &target, &cells, radius, &mut by_cells.0, &mut by_cells.1).unwrap();
            nearest_two_by_rows(&view, &target, radius, &mut by_rows.0, &mut by_rows.1).unwrap();
            for i in 0..w * h {
                // The nearest cell counts only where a second one exists: compare what the weights use.
                if by_cells.1[i].is_finite() || by_rows.1[i].is_finite() {
                    assert_eq!((by_rows.0[i], by_rows.1[i]), (by_cells.0[i], by_cells.1[i]), "trial {trial} pixel {i}");
                }
            }
        }
        // Thousands of one-pixel cells: per row. Two small cells far apart with a radius covering the image: per cell.
        let dense: Vec<u32> = (0..64 * 64).map(|i| (i as u32).wrapping_mul(2654435761) % 5000 + 1).collect();
        let view = LabelView::packed_u32(&dense, 64, 64).unwrap();
        let mut target = vec![0u8; 64 * 64];
        make_target(&view, 0, &mut target).unwrap();
        target.iter_mut().step_by(2).for_each(|t| *t = 0);
        assert_eq!(cheaper_method(&view, &target, &cell_boxes(&view, &target).unwrap(), 34.0), Method::PerRow);
        let mut sparse = vec![0u32; 64 * 64];
        sparse[0] = 1;
        sparse[64 * 64 - 1] = 2;
        let view = LabelView::packed_u32(&sparse, 64, 64).unwrap();
        make_target(&view, 0, &mut target).unwrap();
        assert_eq!(cheaper_method(&view, &target, &cell_boxes(&view, &target).unwrap(), 100.0), Method::PerCell);
    }
}
