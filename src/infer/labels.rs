//! Instance labels: connected components of the foreground, numbered 1, 2, ... in raster order of their first
//! pixel, components smaller than `min_size` removed. Works in place on the caller's u32 buffer; the only extra
//! memory is the union-find table of provisional labels.

/// Pixel neighbourhood for connectivity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connectivity {
    Four,
    Eight,
}

/// Marker for a foreground pixel not yet labelled.
pub const FOREGROUND: u32 = u32::MAX;

/// Marker for a foreground pixel not yet labelled where the network is sure enough to seed a watershed basin
/// (see `instances::Watershed::seed`); everything else treats it as [`FOREGROUND`].
pub const SEED: u32 = u32::MAX - 1;

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let p = parent[x as usize];
        parent[x as usize] = parent[p as usize];
        x = p;
    }
    x
}

fn union(parent: &mut [u32], a: u32, b: u32) -> u32 {
    let (ra, rb) = (find(parent, a), find(parent, b));
    let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
    parent[hi as usize] = lo;
    lo
}

/// Labels `buf` (`width * height`, row-major), where 0 is background and any other value is foreground.
/// Returns the number of components kept.
pub fn label_components(
    buf: &mut [u32],
    width: usize,
    height: usize,
    connectivity: Connectivity,
    min_size: usize,
) -> u32 {
    assert_eq!(buf.len(), width * height);
    // Provisional label 0 is unused so that 0 stays background.
    let mut parent: Vec<u32> = vec![0];
    for y in 0..height {
        for x in 0..width {
            let i = y * width + x;
            if buf[i] == 0 {
                continue;
            }
            let mut label = 0u32;
            let neighbour = |j: usize, label: &mut u32, parent: &mut Vec<u32>| {
                let n = buf[j];
                if n != 0 {
                    *label = if *label == 0 { find(parent, n) } else { union(parent, *label, n) };
                }
            };
            if x > 0 {
                neighbour(i - 1, &mut label, &mut parent);
            }
            if y > 0 {
                neighbour(i - width, &mut label, &mut parent);
                if connectivity == Connectivity::Eight {
                    if x > 0 {
                        neighbour(i - width - 1, &mut label, &mut parent);
                    }
                    if x + 1 < width {
                        neighbour(i - width + 1, &mut label, &mut parent);
                    }
                }
            }
            if label == 0 {
                label = parent.len() as u32;
                parent.push(label);
            }
            buf[i] = label;
        }
    }
    // Sizes per root, then final numbers in order of first appearance.
    let mut size = vec![0usize; parent.len()];
    for v in buf.iter_mut() {
        if *v != 0 {
            *v = find(&mut parent, *v);
            size[*v as usize] += 1;
        }
    }
    let mut final_label = vec![0u32; parent.len()];
    let mut count = 0u32;
    for v in buf.iter_mut() {
        if *v != 0 {
            let root = *v as usize;
            if size[root] < min_size {
                *v = 0;
                continue;
            }
            if final_label[root] == 0 {
                count += 1;
                final_label[root] = count;
            }
            *v = final_label[root];
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flood fill, the obviously correct reference.
    fn flood(mask: &[bool], w: usize, h: usize, conn: Connectivity, min_size: usize) -> Vec<u32> {
        let mut out = vec![0u32; w * h];
        let mut seen = vec![false; w * h];
        let mut count = 0;
        for start in 0..w * h {
            if !mask[start] || seen[start] {
                continue;
            }
            let mut comp = vec![start];
            seen[start] = true;
            let mut k = 0;
            while k < comp.len() {
                let (x, y) = ((comp[k] % w) as isize, (comp[k] / w) as isize);
                k += 1;
                for dy in -1..=1isize {
                    for dx in -1..=1isize {
                        if (dx == 0 && dy == 0) || (conn == Connectivity::Four && dx != 0 && dy != 0) {
                            continue;
                        }
                        let (nx, ny) = (x + dx, y + dy);
                        if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                            continue;
                        }
                        let j = ny as usize * w + nx as usize;
                        if mask[j] && !seen[j] {
                            seen[j] = true;
                            comp.push(j);
                        }
                    }
                }
            }
            if comp.len() >= min_size {
                count += 1;
                for &j in &comp {
                    out[j] = count;
                }
            }
        }
        out
    }

    #[test]
    fn matches_flood_fill() {
        let mut s = 99u64;
        for trial in 0..200 {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let (w, h) = (1 + (s >> 33) as usize % 40, 1 + (s >> 45) as usize % 30);
            let density = (trial % 7) as u64 + 2;
            let mask: Vec<bool> = (0..w * h)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (s >> 40) % 10 < density
                })
                .collect();
            for conn in [Connectivity::Four, Connectivity::Eight] {
                for min_size in [0, 1, 3] {
                    let mut buf: Vec<u32> = mask.iter().map(|&m| if m { FOREGROUND } else { 0 }).collect();
                    let n = label_components(&mut buf, w, h, conn, min_size);
                    let want = flood(&mask, w, h, conn, min_size);
                    assert_eq!(buf, want, "trial {trial} {conn:?} min {min_size}");
                    assert_eq!(n, want.iter().copied().max().unwrap_or(0));
                }
            }
        }
    }
}
