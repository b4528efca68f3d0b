//! Instance separation: how a foreground mask becomes instance labels.
//!
//! Two methods: connected components (touching cells stay one instance) and a seeded watershed on the distance
//! transform of the foreground. Its markers are either the maxima of the (smoothed) distance with a dynamic above
//! `h` pixels (two touching round cells have two distance peaks and a neck between them, and the flood splits them
//! at the neck), or, with a seed probability, the regions where the network is sure (P >= seed): the border-aware
//! loss teaches it to lower P between touching cells, so their cores stay apart even where the mask has no neck.
//! Both run on the whole stitched mask, so a tiled run gives the labels of a single pass.
//!
//! Extra memory of the watershed: 8 bytes per pixel (the distance map, reused for the flood order and the
//! quantised heights) plus a few image rows.

// The recipe types live with the metadata that carries them; this module runs them.
pub use crate::postprocessing::{
    InstanceMethod, InstanceRequest, PostProcessing, Watershed, WatershedOverrides, resolve_instances,
};
use crate::{
    error::{Error, Result},
    labels::{Connectivity, FOREGROUND, SEED, label_components},
};

/// Labels `buf` (`width * height`; 0 = background, anything else foreground; a watershed with a seed probability
/// takes its markers from the [`SEED`] pixels) in place with `method`; instances are numbered 1, 2, ... in raster
/// order of their first pixel, those under `min_size` pixels removed. Returns the instance count.
pub fn label_instances(
    buf: &mut [u32],
    width: usize,
    height: usize,
    method: InstanceMethod,
    connectivity: Connectivity,
    min_size: usize,
) -> Result<u32> {
    match method {
        InstanceMethod::Components => Ok(label_components(buf, width, height, connectivity, min_size)),
        InstanceMethod::Watershed(params) if params.seed.is_some() => {
            seeded_watershed(buf, width, height, params, connectivity, min_size)
        }
        InstanceMethod::Watershed(params) => watershed(buf, width, height, params, connectivity, min_size),
    }
}

/// The value [`label_instances`] expects for a foreground pixel of probability `p` under `method` and `threshold`
/// (the caller decided that the pixel is foreground).
#[inline]
pub fn foreground_marker(method: InstanceMethod, p: f32) -> u32 {
    match method {
        InstanceMethod::Watershed(Watershed { seed: Some(s), .. }) if p >= s => SEED,
        _ => FOREGROUND,
    }
}

/// Distance steps per pixel in the quantised heights that order the flood.
const QUANTA_PER_PIXEL: f32 = 16.0;

/// The seeded watershed described in the module comment.
pub fn watershed(
    buf: &mut [u32],
    width: usize,
    height: usize,
    params: Watershed,
    connectivity: Connectivity,
    min_size: usize,
) -> Result<u32> {
    let (mut heights, top) = distance_heights(buf, width, height, params)?;
    let n = width * height;
    let mut order = scratch(n)?;
    flood_order(buf, &heights, top, &mut order);
    // Flood. A processed pixel holds its union-find parent + 1; a root is the first (highest) pixel of its basin, so
    // `heights[root]` is the basin's peak. Where basins meet, the lower one merges unless its dynamic exceeds h.
    let h_quanta = (params.h * QUANTA_PER_PIXEL).round() as u32;
    let eight = connectivity == Connectivity::Eight;
    for &p in &order {
        let p = p as usize;
        let x = p % width;
        let (left, right, up, down) = (x > 0, x + 1 < width, p >= width, p + width < n);
        // The neighbours' basins (at most 8, without repeats); FOREGROUND = not flooded yet.
        let mut roots = [0u32; 8];
        let mut count = 0;
        let mut visit = |q: usize, buf: &mut [u32]| {
            if buf[q] != 0 && buf[q] != FOREGROUND {
                let r = find(buf, q as u32);
                if !roots[..count].contains(&r) {
                    roots[count] = r;
                    count += 1;
                }
            }
        };
        // The order of `neighbour_offsets`: left, right, up, down, then the diagonals.
        if left {
            visit(p - 1, buf);
        }
        if right {
            visit(p + 1, buf);
        }
        if up {
            visit(p - width, buf);
        }
        if down {
            visit(p + width, buf);
        }
        if eight {
            if left && up {
                visit(p - width - 1, buf);
            }
            if right && up {
                visit(p - width + 1, buf);
            }
            if left && down {
                visit(p + width - 1, buf);
            }
            if right && down {
                visit(p + width + 1, buf);
            }
        }
        let roots = &roots[..count];
        let Some(&first) = roots.first() else {
            buf[p] = p as u32 + 1; // a new maximum
            continue;
        };
        let highest = roots.iter().copied().fold(first, |best, r| {
            let (hr, hb) = (heights[r as usize], heights[best as usize]);
            if hr > hb || (hr == hb && r < best) { r } else { best }
        });
        buf[p] = highest + 1;
        let level = heights[p];
        for &r in roots {
            if r != highest && heights[r as usize] - level <= h_quanta {
                buf[r as usize] = highest + 1;
            }
        }
    }

    // Every pixel's basin: its root + 1, counting each basin's size on the way. (Finding from pixel i may shorten
    // the paths of later pixels; earlier ones already hold root + 1, which as a parent pointer names the root.)
    let sizes = &mut order;
    sizes.clear();
    sizes.resize(n, 0);
    for i in 0..n {
        if buf[i] != 0 {
            let root = find(buf, i as u32);
            buf[i] = root + 1;
            sizes[root as usize] += 1;
        }
    }
    Ok(number_basins(buf, sizes, &mut heights, min_size))
}

/// What both watersheds start from: the checked parameters and size, and the quantised (smoothed) distance of each
/// foreground pixel to the background with its largest value.
fn distance_heights(buf: &[u32], width: usize, height: usize, params: Watershed) -> Result<(Vec<u32>, u32)> {
    params.validate()?;
    let n = width * height;
    assert_eq!(buf.len(), n);
    check_pixel_count(n)?;
    let mut heights = scratch(n)?;
    heights.resize(n, 0);
    let top = quantised_distance(buf, width, height, params.smoothing, &mut heights);
    Ok((heights, top))
}

/// The foreground pixels of `buf` from the highest to the lowest (counting sort over the quantised heights, raster
/// order within one height) into `order`. Bands of rows in parallel: each band counts its heights, the counts give
/// every (height, band) its slot range, and each band places its own pixels, so the order is the sequential one.
fn flood_order(buf: &[u32], heights: &[u32], top: u32, order: &mut Vec<u32>) {
    use rayon::prelude::*;
    let levels = top as usize + 1;
    let band = (buf.len() / (4 * rayon::current_num_threads().max(1))).max(1 << 14);
    let counts: Vec<Vec<u32>> = buf
        .par_chunks(band)
        .zip(heights.par_chunks(band))
        .map(|(buf, heights)| {
            let mut count = vec![0u32; levels];
            for (&h, &b) in heights.iter().zip(buf) {
                if b != 0 {
                    count[(top - h) as usize] += 1;
                }
            }
            count
        })
        .collect();
    // Slots: level by level (highest first), and within a level band by band.
    let mut starts: Vec<Vec<u32>> = vec![vec![0; levels]; counts.len()];
    let mut next = 0u32;
    for level in 0..levels {
        for (start, count) in starts.iter_mut().zip(&counts) {
            start[level] = next;
            next += count[level];
        }
    }
    order.clear();
    order.resize(next as usize, 0);
    // Each band writes only its own slots: hand out the order buffer through a shared pointer.
    struct Slots(*mut u32);
    // SAFETY: the slot ranges of different bands are disjoint (built above), so no two threads write one element.
    unsafe impl Sync for Slots {}
    let slots = Slots(order.as_mut_ptr());
    let slots = &slots;
    buf.par_chunks(band).zip(heights.par_chunks(band)).zip(starts.into_par_iter()).enumerate().for_each(
        |(b, ((buf, heights), mut start))| {
            for (i, (&h, &m)) in heights.iter().zip(buf).enumerate() {
                if m != 0 {
                    let slot = &mut start[(top - h) as usize];
                    // SAFETY: `slot` lies in this band's range for this level, inside `order` (sized `next`).
                    unsafe { *slots.0.add(*slot as usize) = (b * band + i) as u32 };
                    *slot += 1;
                }
            }
        },
    );
}

/// An empty vector with room for `n` values: the watersheds' per-pixel scratch, an error (not an abort) when memory
/// is short.
fn scratch(n: usize) -> Result<Vec<u32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        Error::new(crate::error::UnetStatus::OutOfMemory, format!("watershed: cannot allocate 4 bytes x {n}"))
    })?;
    Ok(v)
}

/// Pixel indices + 1 (and basin numbers) live in the label buffer below the [`SEED`] and [`FOREGROUND`] markers.
fn check_pixel_count(n: usize) -> Result<()> {
    if n >= SEED as usize {
        return Err(Error::invalid_argument(format!(
            "the watershed handles images of up to {} pixels; this one has {n}",
            SEED - 1
        )));
    }
    Ok(())
}

/// Distance to the nearest background pixel of every foreground pixel of `mask`, smoothed by `smoothing` pixels,
/// in steps of 1/[`QUANTA_PER_PIXEL`] pixel (0 on background), into `heights`. Returns the largest.
fn quantised_distance(mask: &[u32], width: usize, height: usize, smoothing: f32, heights: &mut [u32]) -> u32 {
    use rayon::prelude::*;
    distance_to_background(mask, width, height, heights);
    if smoothing > 0.0 {
        gaussian_smooth(heights, width, height, smoothing);
    }
    let band = width * 64;
    heights
        .par_chunks_mut(band)
        .zip(mask.par_chunks(band))
        .map(|(heights, mask)| {
            let mut top = 0u32;
            for (h, &b) in heights.iter_mut().zip(mask) {
                *h = if b == 0 { 0 } else { quantise(f32::from_bits(*h)) };
                top = top.max(*h);
            }
            top
        })
        .max()
        .unwrap_or(0)
}

/// `(d * QUANTA_PER_PIXEL).round()` clamped to [0, 1e9], without a call into libm: for d >= 0, d * 16 + 0.5 is
/// exact in f64 and truncating it rounds half away from zero, as `f32::round` does.
#[inline]
fn quantise(d: f32) -> u32 {
    let q = d * QUANTA_PER_PIXEL;
    if q.is_nan() || q <= 0.0 {
        return 0; // round() of a negative or NaN clamps to 0
    }
    if q >= 1e9 {
        return 1e9 as u32;
    }
    (f64::from(q) + 0.5) as u32
}

/// Numbers the basins of `buf` (each pixel holds its basin's id, 1..=n; 0 = background) 1, 2, ... in raster order
/// of their first pixel, removing those under `min_size` pixels; `sizes` and `numbers` are scratch of n elements.
/// Returns the count.
fn renumber(buf: &mut [u32], sizes: &mut Vec<u32>, numbers: &mut Vec<u32>, min_size: usize) -> u32 {
    let n = buf.len();
    sizes.clear();
    sizes.resize(n, 0);
    for &b in buf.iter() {
        if b != 0 {
            sizes[b as usize - 1] += 1;
        }
    }
    number_basins(buf, sizes, numbers, min_size)
}

/// [`renumber`] once `sizes[id - 1]` holds the pixel count of basin `id`.
fn number_basins(buf: &mut [u32], sizes: &[u32], numbers: &mut Vec<u32>, min_size: usize) -> u32 {
    numbers.clear();
    numbers.resize(buf.len(), 0);
    let mut count = 0u32;
    for b in buf.iter_mut() {
        if *b != 0 {
            let basin = *b as usize - 1;
            if (sizes[basin] as usize) < min_size {
                *b = 0;
                continue;
            }
            if numbers[basin] == 0 {
                count += 1;
                numbers[basin] = count;
            }
            *b = numbers[basin];
        }
    }
    count
}

/// The watershed from probability seeds: the connected [`SEED`] regions are the markers, flooded over the
/// foreground from the highest distance to the lowest (a bucket queue; a pixel takes the basin of the neighbour that
/// reaches it first). Foreground no seed reaches (a cell the network is unsure of everywhere) becomes one instance
/// per connected part. Extra memory: 8 bytes per pixel plus the queue (at most 4 bytes per pixel).
pub fn seeded_watershed(
    buf: &mut [u32],
    width: usize,
    height: usize,
    params: Watershed,
    connectivity: Connectivity,
    min_size: usize,
) -> Result<u32> {
    let (mut heights, top) = distance_heights(buf, width, height, params)?;
    let n = width * height;

    // Markers: the seed regions, numbered by connected components (basin ids 1..=k).
    let mut seeds = scratch(n)?;
    seeds.extend(buf.iter().map(|&b| if b == SEED { FOREGROUND } else { 0 }));
    let mut basins = label_components(&mut seeds, width, height, connectivity, 0);
    for (b, &s) in buf.iter_mut().zip(&seeds) {
        if s != 0 {
            *b = s;
        } else if *b != 0 {
            *b = FOREGROUND;
        }
    }
    drop(seeds);

    // The flood: buckets by height, first in first out within one height; the highest non-empty bucket goes next.
    let mut buckets: Vec<std::collections::VecDeque<u32>> = vec![std::collections::VecDeque::new(); top as usize + 1];
    let mut current = 0usize;
    for (i, &b) in buf.iter().enumerate() {
        if b != 0 && b != FOREGROUND {
            buckets[heights[i] as usize].push_back(i as u32);
            current = current.max(heights[i] as usize);
        }
    }
    let offsets = neighbour_offsets(connectivity);
    let flood = |buf: &mut [u32], buckets: &mut [std::collections::VecDeque<u32>], mut current: usize| loop {
        let Some(p) = buckets[current].pop_front() else {
            if current == 0 {
                return;
            }
            current -= 1;
            continue;
        };
        let p = p as usize;
        let (x, y) = (p % width, p / width);
        for &(dx, dy) in offsets {
            let (nx, ny) = (x as isize + dx, y as isize + dy);
            if nx < 0 || ny < 0 || nx >= width as isize || ny >= height as isize {
                continue;
            }
            let q = ny as usize * width + nx as usize;
            if buf[q] == FOREGROUND {
                buf[q] = buf[p];
                let level = heights[q] as usize;
                buckets[level].push_back(q as u32);
                current = current.max(level);
            }
        }
    };
    flood(buf, &mut buckets, current);
    // Foreground without a seed: each connected part floods from its first pixel as one more basin.
    for i in 0..n {
        if buf[i] == FOREGROUND {
            basins += 1;
            buf[i] = basins;
            buckets[heights[i] as usize].push_back(i as u32);
            flood(buf, &mut buckets, heights[i] as usize);
        }
    }
    drop(buckets);
    let mut sizes = scratch(n)?;
    Ok(renumber(buf, &mut sizes, &mut heights, min_size))
}

fn find(buf: &mut [u32], mut x: u32) -> u32 {
    // Parents are stored + 1; path halving keeps the trees flat.
    loop {
        let parent = buf[x as usize] - 1;
        if parent == x {
            return x;
        }
        let grand = buf[parent as usize] - 1;
        buf[x as usize] = grand + 1;
        x = grand;
    }
}

fn neighbour_offsets(connectivity: Connectivity) -> &'static [(isize, isize)] {
    match connectivity {
        Connectivity::Four => &[(-1, 0), (1, 0), (0, -1), (0, 1)],
        Connectivity::Eight => &[(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, -1), (-1, 1), (1, 1)],
    }
}

/// Exact Euclidean distance from every foreground pixel of `mask` to the nearest background pixel, written as f32
/// bits into `out` (0 on background). Outside the image counts as foreground, so cells cut by the border keep their
/// depth. With no background at all, every distance is the image diagonal.
///
/// Columns first: for a binary image the 1-D squared distance along a column is the square of the distance to the
/// nearest background pixel above or below, found by one scan down and one up the rows (row-major, so the scans
/// run over whole rows at a time). Then each row's lower envelope of parabolas (Felzenszwalb & Huttenlocher), rows
/// in parallel. Bit for bit what the 1-D transform along the columns gave (`tests::column_scans_equal_the_transform`).
fn distance_to_background(mask: &[u32], width: usize, height: usize, out: &mut [u32]) {
    use rayon::prelude::*;
    let far = ((width * width + height * height) as f64).max(1.0); // squared diagonal
    const NONE: u32 = u32::MAX; // no background pixel seen yet along the column
    let mut run = vec![NONE; width];
    for (mask_row, out_row) in mask.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        for ((r, &m), o) in run.iter_mut().zip(mask_row).zip(out_row.iter_mut()) {
            *r = if m == 0 { 0 } else { r.saturating_add(1) };
            *o = *r;
        }
    }
    run.fill(NONE);
    for (mask_row, out_row) in mask.chunks_exact(width).zip(out.chunks_exact_mut(width)).rev() {
        for ((r, &m), o) in run.iter_mut().zip(mask_row).zip(out_row.iter_mut()) {
            *r = if m == 0 { 0 } else { r.saturating_add(1) };
            let steps = (*o).min(*r);
            let squared = if steps == NONE { far } else { (f64::from(steps) * f64::from(steps)).min(far) };
            *o = (squared as f32).to_bits();
        }
    }
    // Rows: combine, then take the square root; bands of rows in parallel. Along a row, a foreground pixel's nearest
    // parabola lies within its run of foreground: any pixel beyond the background pixel that ends the run is
    // farther than that background pixel (whose value is 0). So each run is transformed with its two bounding
    // background pixels alone: work in proportion to the foreground, and the same exact minima as the whole row.
    let rows_per_band = (height / (4 * rayon::current_num_threads().max(1))).max(16);
    out.par_chunks_mut(width * rows_per_band).zip(mask.par_chunks(width * rows_per_band)).for_each(|(band, mask)| {
        let (mut f, mut d, mut v, mut z) =
            (vec![0f64; width], vec![0f64; width], vec![0usize; width], vec![0f64; width + 1]);
        for (row, mask_row) in band.chunks_exact_mut(width).zip(mask.chunks_exact(width)) {
            let mut x = 0;
            while x < width {
                if mask_row[x] == 0 {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < width && mask_row[x] != 0 {
                    x += 1;
                }
                // The run start..x and the background pixels on either side (when inside the image).
                let (lo, hi) = (start.saturating_sub(1), x.min(width - 1));
                let len = hi - lo + 1;
                for (fx, &o) in f[..len].iter_mut().zip(&row[lo..=hi]) {
                    *fx = f32::from_bits(o) as f64;
                }
                crate::distance::dt_1d(&f[..len], &mut d[..len], &mut v, &mut z);
                for (o, &dx) in row[start..x].iter_mut().zip(&d[start - lo..]) {
                    *o = (dx.min(far).sqrt() as f32).to_bits();
                }
            }
        }
    });
}

/// Separable Gaussian blur of an f32-bits image, mirrored at the borders.
fn gaussian_smooth(image: &mut [u32], width: usize, height: usize, sigma: f32) {
    let radius = (3.0 * sigma).ceil() as usize;
    let kernel: Vec<f32> =
        (-(radius as isize)..=radius as isize).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let mirror = |i: isize, n: usize| crate::tiling::mirror(i, n);
    // Rows: each row mirrored into a padded line once, then a plain convolution (no index arithmetic per tap).
    let mut padded = vec![0f32; width + 2 * radius];
    for y in 0..height {
        let row = &mut image[y * width..(y + 1) * width];
        for (i, p) in padded.iter_mut().enumerate() {
            *p = f32::from_bits(row[mirror(i as isize - radius as isize, width)]);
        }
        for (x, out) in row.iter_mut().enumerate() {
            let window = &padded[x..x + kernel.len()];
            *out = window.iter().zip(&kernel).map(|(v, w)| v * w).sum::<f32>().to_bits();
        }
    }
    let taps = kernel.len();
    if height <= 2 * taps {
        // Short images: mirroring may fold many times; a column at a time is simple and cheap here.
        let mut column = vec![0f32; height];
        for x in 0..width {
            for (y, c) in column.iter_mut().enumerate() {
                *c = f32::from_bits(image[y * width + x]);
            }
            for y in 0..height {
                let acc: f32 = (0..taps)
                    .map(|k| kernel[k] * column[mirror(y as isize + k as isize - radius as isize, height)])
                    .sum();
                image[y * width + x] = acc.to_bits();
            }
        }
        return;
    }
    // Columns, a whole row at a time (cache-friendly): a ring of the 2r+1 original rows the output row needs.
    let mut ring = vec![0f32; taps * width];
    let source = |ring: &mut [f32], slot: usize, y: isize, image: &[u32]| {
        let from = mirror(y, height) * width;
        for (d, s) in ring[slot * width..(slot + 1) * width].iter_mut().zip(&image[from..from + width]) {
            *d = f32::from_bits(*s);
        }
    };
    for k in 0..taps {
        source(&mut ring, k, k as isize - radius as isize, image);
    }
    let mut acc = vec![0f32; width];
    for y in 0..height {
        acc.iter_mut().for_each(|a| *a = 0.0);
        for (k, &w) in kernel.iter().enumerate() {
            // Ring slot of source row y + k - r.
            let slot = (y + k) % taps;
            for (a, v) in acc.iter_mut().zip(&ring[slot * width..(slot + 1) * width]) {
                *a += w * v;
            }
        }
        // Source row y + r + 1 takes the slot of row y - r, read from `image` before row y is overwritten.
        let next = y as isize + radius as isize + 1;
        if next < height as isize {
            source(&mut ring, y % taps, next, image);
        } else {
            // Past the bottom the mirror points back at rows already overwritten; the ring still holds the
            // original (for height > 2 taps the mirrored row m = 2h - 1 - next lies within y - r + 1 ..= y + r).
            let m = mirror(next, height) as isize;
            let back_slot = ((m + radius as isize) as usize) % taps;
            if back_slot != y % taps {
                let (src, dst) = (back_slot * width, (y % taps) * width);
                ring.copy_within(src..src + width, dst);
            }
        }
        for (out, a) in image[y * width..(y + 1) * width].iter_mut().zip(&acc) {
            *out = a.to_bits();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The distance map as it was computed before the column scans and parallel rows (the 1-D transform down
    /// every column, then along every row): the new one must equal it bit for bit, so labels do not change.
    fn reference_distance(mask: &[u32], width: usize, height: usize) -> Vec<u32> {
        let mut out = vec![0u32; width * height];
        let far = ((width * width + height * height) as f64).max(1.0);
        let longest = width.max(height);
        let (mut f, mut d, mut v, mut z) =
            (vec![0f64; longest], vec![0f64; longest], vec![0usize; longest], vec![0f64; longest + 1]);
        for x in 0..width {
            for y in 0..height {
                f[y] = if mask[y * width + x] == 0 { 0.0 } else { f64::INFINITY };
            }
            crate::distance::dt_1d(&f[..height], &mut d[..height], &mut v, &mut z);
            for y in 0..height {
                out[y * width + x] = (d[y].min(far) as f32).to_bits();
            }
        }
        for y in 0..height {
            for x in 0..width {
                f[x] = f32::from_bits(out[y * width + x]) as f64;
            }
            crate::distance::dt_1d(&f[..width], &mut d[..width], &mut v, &mut z);
            for x in 0..width {
                out[y * width + x] = (d[x].min(far).sqrt() as f32).to_bits();
            }
        }
        out
    }

    #[test]
    fn quantise_rounds_as_f32_round() {
        let mut values = vec![0.0f32, 0.03124, 0.03125, 0.0312501, 0.49999997 / 16.0, 1.5 / 16.0, 2.5 / 16.0, 7e7, 1e9];
        values.extend((0..20000).map(|i| i as f32 * 0.013));
        values.extend([-0.0, -1.0, f32::NAN, f32::INFINITY]);
        for d in values {
            let reference = (d * QUANTA_PER_PIXEL).round().clamp(0.0, 1e9) as u32;
            assert_eq!(quantise(d), reference, "{d}");
        }
    }

    #[test]
    fn column_scans_equal_the_transform() {
        let mut s = 99u64;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) as usize
        };
        for case in 0..60 {
            let (w, h) = (1 + next() % 90, 1 + next() % 70);
            // Sparse, dense, all foreground and blobs: columns and rows without background included.
            let density = [0, 30, 70, 95, 100][case % 5];
            let mut mask: Vec<u32> = (0..w * h).map(|_| u32::from(next() % 100 < density)).collect();
            if case % 7 == 0 {
                mask = disc_mask(w, h, &[(w as f32 / 2.0, h as f32 / 2.0, (w.min(h) as f32) / 2.5)]);
            }
            let mut got = vec![0u32; w * h];
            distance_to_background(&mask, w, h, &mut got);
            assert_eq!(got, reference_distance(&mask, w, h), "{w}x{h}, density {density}");
        }
    }

    fn disc_mask(w: usize, h: usize, discs: &[(f32, f32, f32)]) -> Vec<u32> {
        let mut m = vec![0u32; w * h];
        for y in 0..h {
            for x in 0..w {
                if discs.iter().any(|&(cx, cy, r)| (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) <= r * r) {
                    m[y * w + x] = FOREGROUND;
                }
            }
        }
        m
    }

    #[test]
    fn splits_two_touching_discs_that_components_merge() {
        let (w, h) = (80, 50);
        let mask = disc_mask(w, h, &[(25.0, 25.0, 14.0), (50.0, 25.0, 14.0)]);
        let mut cc = mask.clone();
        assert_eq!(label_components(&mut cc, w, h, Connectivity::Four, 0), 1);
        let mut ws = mask.clone();
        let n = watershed(&mut ws, w, h, Watershed::DEFAULT, Connectivity::Four, 0).unwrap();
        assert_eq!(n, 2);
        // Each disc centre carries its own label, and the split lies at the neck (x = 37.5, ties go either way).
        let (a, b) = (ws[25 * w + 25], ws[25 * w + 50]);
        assert!(a != 0 && b != 0 && a != b);
        for y in 0..h {
            for x in 0..w {
                let l = ws[y * w + x];
                assert_eq!(l == 0, mask[y * w + x] == 0, "foreground is kept");
                if l != 0 {
                    assert_eq!(
                        l,
                        if x <= 35 {
                            a
                        } else if x >= 40 {
                            b
                        } else {
                            l
                        },
                        "({x}, {y})"
                    );
                }
            }
        }
    }

    #[test]
    fn a_large_h_keeps_touching_discs_together_and_single_cells_stay_whole() {
        let (w, h) = (80, 50);
        let mask = disc_mask(w, h, &[(25.0, 25.0, 14.0), (50.0, 25.0, 14.0)]);
        let mut ws = mask.clone();
        assert_eq!(
            watershed(&mut ws, w, h, Watershed { h: 20.0, smoothing: 0.0, seed: None }, Connectivity::Eight, 0)
                .unwrap(),
            1
        );
        // Ellipses, rectangles and noisy blobs are one instance each (no over-segmentation).
        let mut m = vec![0u32; w * h];
        for y in 5..45 {
            for x in 5..30 {
                m[y * w + x] = FOREGROUND;
            }
        }
        for y in 10..40 {
            for x in 40..75 {
                if ((x as f32 - 57.0) / 17.0).powi(2) + ((y as f32 - 25.0) / 14.0).powi(2) <= 1.0 {
                    m[y * w + x] = FOREGROUND;
                }
            }
        }
        assert_eq!(watershed(&mut m, w, h, Watershed::DEFAULT, Connectivity::Four, 0).unwrap(), 2);
    }

    /// Where the watershed finds one basin per component, it equals connected components exactly (same numbering).
    #[test]
    fn equals_components_on_separate_convex_cells() {
        let (w, h) = (120, 90);
        let discs: Vec<(f32, f32, f32)> = (0..12)
            .map(|i| (12.0 + (i % 4) as f32 * 30.0, 14.0 + (i / 4) as f32 * 30.0, 6.0 + (i % 3) as f32 * 2.0))
            .collect();
        let mask = disc_mask(w, h, &discs);
        for conn in [Connectivity::Four, Connectivity::Eight] {
            for min_size in [0, 120, 200] {
                let mut cc = mask.clone();
                let mut ws = mask.clone();
                let a = label_components(&mut cc, w, h, conn, min_size);
                let b = watershed(&mut ws, w, h, Watershed::DEFAULT, conn, min_size).unwrap();
                assert_eq!((a, &cc), (b, &ws), "{conn:?} min {min_size}");
            }
        }
    }

    #[test]
    fn edge_cases() {
        for (w, h) in [(1, 1), (1, 7), (9, 1), (3, 3)] {
            let mut all = vec![FOREGROUND; w * h];
            assert_eq!(watershed(&mut all, w, h, Watershed::DEFAULT, Connectivity::Four, 0).unwrap(), 1);
            assert!(all.iter().all(|&l| l == 1));
            let mut none = vec![0u32; w * h];
            assert_eq!(watershed(&mut none, w, h, Watershed::DEFAULT, Connectivity::Four, 0).unwrap(), 0);
        }
        let mut x = vec![FOREGROUND; 4];
        assert!(
            watershed(&mut x, 2, 2, Watershed { h: f32::NAN, smoothing: 0.0, seed: None }, Connectivity::Four, 0)
                .is_err()
        );
    }

    #[test]
    fn distance_matches_brute_force() {
        let (w, h) = (23, 17);
        let mut s = 7u64;
        let mask: Vec<u32> = (0..w * h)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                if (s >> 40).is_multiple_of(5) { 0 } else { FOREGROUND }
            })
            .collect();
        let mut out = vec![0u32; w * h];
        distance_to_background(&mask, w, h, &mut out);
        for y in 0..h {
            for x in 0..w {
                let mut best = f64::INFINITY;
                for yy in 0..h {
                    for xx in 0..w {
                        if mask[yy * w + xx] == 0 {
                            best = best.min((((x as f64 - xx as f64).powi(2)) + (y as f64 - yy as f64).powi(2)).sqrt());
                        }
                    }
                }
                let got = f32::from_bits(out[y * w + x]) as f64;
                assert!((got - best).abs() < 1e-4, "({x},{y}) {got} vs {best}");
            }
        }
    }

    #[test]
    fn smoothing_matches_a_direct_mirrored_convolution() {
        let mut s = 3u64;
        for (w, h, sigma) in [(1, 1, 1.0), (5, 3, 1.0), (9, 17, 2.0), (31, 40, 1.0), (23, 64, 3.0), (64, 23, 0.7)] {
            let values: Vec<f32> = (0..w * h)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (s >> 40) as f32 / (1u64 << 24) as f32 * 10.0
                })
                .collect();
            let mut got: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
            gaussian_smooth(&mut got, w, h, sigma);
            let r = (3.0 * sigma).ceil() as isize;
            let k: Vec<f64> = (-r..=r).map(|i| (-(i * i) as f64 / (2.0 * (sigma as f64).powi(2))).exp()).collect();
            let total: f64 = k.iter().sum();
            let m = crate::tiling::mirror;
            for y in 0..h {
                for x in 0..w {
                    let mut want = 0.0;
                    for (j, ky) in k.iter().enumerate() {
                        for (i, kx) in k.iter().enumerate() {
                            let (yy, xx) = (m(y as isize + j as isize - r, h), m(x as isize + i as isize - r, w));
                            want += ky * kx * values[yy * w + xx] as f64;
                        }
                    }
                    want /= total * total;
                    let g = f32::from_bits(got[y * w + x]) as f64;
                    assert!((g - want).abs() < 1e-4, "{w}x{h} sigma {sigma} at ({x},{y}): {g} vs {want}");
                }
            }
        }
    }

    const SEEDED: Watershed = Watershed { h: 2.0, smoothing: 0.0, seed: Some(0.8) };

    /// One convex blob (no neck: the distance watershed keeps it whole) with two seed regions: the seeds split it,
    /// each half keeps its seed, and the split lies between them.
    #[test]
    fn seeds_split_a_blob_without_a_neck() {
        let (w, h) = (60, 30);
        let mut mask = vec![0u32; w * h];
        for y in 5..25 {
            for x in 5..55 {
                mask[y * w + x] = FOREGROUND;
                if (10..20).contains(&y) && ((10..20).contains(&x) || (40..50).contains(&x)) {
                    mask[y * w + x] = SEED;
                }
            }
        }
        let mut plain: Vec<u32> = mask.iter().map(|&m| if m != 0 { FOREGROUND } else { 0 }).collect();
        assert_eq!(watershed(&mut plain, w, h, Watershed::DEFAULT, Connectivity::Four, 0).unwrap(), 1);
        for conn in [Connectivity::Four, Connectivity::Eight] {
            let mut seeded = mask.clone();
            assert_eq!(seeded_watershed(&mut seeded, w, h, SEEDED, conn, 0).unwrap(), 2);
            let (a, b) = (seeded[15 * w + 15], seeded[15 * w + 45]);
            assert!(a != 0 && b != 0 && a != b);
            for y in 5..25 {
                for x in 5..55 {
                    let l = seeded[y * w + x];
                    if x < 25 {
                        assert_eq!(l, a, "({x}, {y}) {conn:?}");
                    } else if x >= 35 {
                        assert_eq!(l, b, "({x}, {y}) {conn:?}");
                    }
                }
            }
        }
    }

    /// Random masks and seeds: the foreground is kept, every seed region lies in one instance of its own, every
    /// instance is connected, and the count is the seed regions plus the unseeded parts.
    #[test]
    fn seeded_watershed_properties_on_random_masks() {
        let mut s = 11u64;
        let mut rand = |m: u64| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) % m
        };
        for case in 0..60 {
            let (w, h) = (1 + rand(40) as usize, 1 + rand(40) as usize);
            let conn = if case % 2 == 0 { Connectivity::Four } else { Connectivity::Eight };
            // Blobs of foreground, some with a seeded core.
            let mut mask = vec![0u32; w * h];
            for _ in 0..1 + rand(8) {
                let (cx, cy, r) = (rand(w as u64) as f32, rand(h as u64) as f32, 1.0 + rand(10) as f32);
                let seeded = rand(3) != 0;
                for y in 0..h {
                    for x in 0..w {
                        let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                        if d <= r {
                            let core = seeded && d <= r / 2.0;
                            if core {
                                mask[y * w + x] = SEED;
                            } else if mask[y * w + x] == 0 {
                                mask[y * w + x] = FOREGROUND;
                            }
                        }
                    }
                }
            }
            let mut seeds: Vec<u32> = mask.iter().map(|&m| if m == SEED { FOREGROUND } else { 0 }).collect();
            let n_seeds = label_components(&mut seeds, w, h, conn, 0);
            let mut parts: Vec<u32> = mask.clone();
            label_components(&mut parts, w, h, conn, 0);
            let unseeded_parts = {
                let mut with_seed = std::collections::HashSet::new();
                let mut all = std::collections::HashSet::new();
                for i in 0..w * h {
                    if parts[i] != 0 {
                        all.insert(parts[i]);
                        if seeds[i] != 0 {
                            with_seed.insert(parts[i]);
                        }
                    }
                }
                all.len() - with_seed.len()
            };
            let mut got = mask.clone();
            let n = seeded_watershed(&mut got, w, h, SEEDED, conn, 0).unwrap();
            assert_eq!(n as usize, n_seeds as usize + unseeded_parts, "case {case}");
            let mut seed_to_label = std::collections::HashMap::new();
            let mut label_to_seed = std::collections::HashMap::new();
            for i in 0..w * h {
                assert_eq!(got[i] != 0, mask[i] != 0, "case {case}: foreground kept");
                assert!(got[i] <= n);
                if seeds[i] != 0 {
                    assert_eq!(*seed_to_label.entry(seeds[i]).or_insert(got[i]), got[i], "case {case}: a seed split");
                    assert_eq!(*label_to_seed.entry(got[i]).or_insert(seeds[i]), seeds[i], "case {case}: seeds merged");
                }
            }
            // Each instance is one connected part: relabelling each instance alone gives one component.
            for l in 1..=n {
                let mut one: Vec<u32> = got.iter().map(|&g| if g == l { FOREGROUND } else { 0 }).collect();
                assert_eq!(label_components(&mut one, w, h, conn, 0), 1, "case {case}: instance {l} is split");
            }
            // min_size removes exactly the small instances.
            let mut small = mask.clone();
            let m = seeded_watershed(&mut small, w, h, SEEDED, conn, 10).unwrap();
            let sizes = (1..=n).map(|l| got.iter().filter(|&&g| g == l).count());
            assert_eq!(m as usize, sizes.filter(|&c| c >= 10).count(), "case {case}");
        }
    }
}
