//! Evaluation measures (see the paper notes): the Cell Tracking Challenge SEG measure and foreground IoU, and the
//! ISBI 2012 EM challenge's Rand error and pixel error.

use std::collections::HashMap;

/// Object sizes of both label images and the pixel count of every (truth, predicted) pair that overlaps: what SEG
/// and AP are computed from.
struct Overlaps {
    truth_size: HashMap<u32, u64>,
    pred_size: HashMap<u32, u64>,
    overlap: HashMap<(u32, u32), u64>,
}

fn overlaps(truth: &[u32], predicted: &[u32]) -> Overlaps {
    assert_eq!(truth.len(), predicted.len());
    let mut o = Overlaps { truth_size: HashMap::new(), pred_size: HashMap::new(), overlap: HashMap::new() };
    for (&t, &p) in truth.iter().zip(predicted) {
        if t != 0 {
            *o.truth_size.entry(t).or_default() += 1;
        }
        if p != 0 {
            *o.pred_size.entry(p).or_default() += 1;
            if t != 0 {
                *o.overlap.entry((t, p)).or_default() += 1;
            }
        }
    }
    o
}

/// SEG: for each ground-truth object R, the predicted object S with |R ∩ S| > 0.5 |R| (at most one exists) gives
/// the Jaccard index |R ∩ S| / |R ∪ S|, else 0; SEG is the mean over ground-truth objects. Unannotated cells in
/// sparse ground truth are not counted. Returns the sum of Jaccard indices and the number of objects, so that
/// several images can be pooled (SEG = sum / count); `None` count 0 means no objects.
pub fn seg_sum(truth: &[u32], predicted: &[u32]) -> (f64, usize) {
    let (sum, objects, _) = seg_matches(truth, predicted);
    (sum, objects)
}

/// [`seg_sum`] and the number of ground-truth objects matched (a predicted object covers more than half of it):
/// matched / predicted instances is the detection precision that SEG does not see.
pub fn seg_matches(truth: &[u32], predicted: &[u32]) -> (f64, usize, usize) {
    let Overlaps { truth_size, pred_size, overlap } = overlaps(truth, predicted);
    let (mut sum, mut matched) = (0.0, 0);
    for (&(t, p), &inter) in &overlap {
        let r = truth_size[&t];
        if 2 * inter > r {
            let union = r + pred_size[&p] - inter;
            sum += inter as f64 / union as f64;
            matched += 1;
        }
    }
    (sum, truth_size.len(), matched)
}

/// Detection counts at one IoU threshold: true objects matched one-to-one by a predicted object (TP), predicted
/// objects matched by none (FP), true objects matched by none (FN).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Detections {
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
}

impl Detections {
    /// AP as StarDist and the DSB 2018 literature compute it: TP / (TP + FP + FN) (1 when there is nothing at all).
    pub fn ap(&self) -> f64 {
        let n = self.true_positives + self.false_positives + self.false_negatives;
        if n == 0 { 1.0 } else { self.true_positives as f64 / n as f64 }
    }

    pub fn add(&mut self, other: Detections) {
        self.true_positives += other.true_positives;
        self.false_positives += other.false_positives;
        self.false_negatives += other.false_negatives;
    }
}

/// Detections of `predicted` against `truth` at each IoU threshold of `taus` (each >= 0.5): a pair matches when
/// its IoU exceeds τ. For τ >= 0.5 a true object can match at most one predicted object and vice versa (two
/// objects with IoU > 0.5 share more than half of each), so the matching is unique without an assignment search.
pub fn detections(truth: &[u32], predicted: &[u32], taus: &[f64]) -> Vec<Detections> {
    assert!(taus.iter().all(|&t| t >= 0.5), "one-to-one matching by threshold needs IoU thresholds >= 0.5");
    let Overlaps { truth_size, pred_size, overlap } = overlaps(truth, predicted);
    taus.iter()
        .map(|&tau| {
            let tp = overlap
                .iter()
                .filter(|&(&(t, p), &inter)| {
                    let union = truth_size[&t] + pred_size[&p] - inter;
                    inter as f64 > tau * union as f64
                })
                .count();
            Detections {
                true_positives: tp,
                false_positives: pred_size.len() - tp,
                false_negatives: truth_size.len() - tp,
            }
        })
        .collect()
}

/// SEG of one image; `None` when the ground truth has no object.
pub fn seg(truth: &[u32], predicted: &[u32]) -> Option<f64> {
    let (sum, n) = seg_sum(truth, predicted);
    (n > 0).then(|| sum / n as f64)
}

/// Intersection and union of the foregrounds (non-zero pixels), for pooling over images.
pub fn foreground_counts(truth: &[u32], predicted: &[u32]) -> (u64, u64) {
    let (mut inter, mut union) = (0, 0);
    for (&t, &p) in truth.iter().zip(predicted) {
        inter += u64::from(t != 0 && p != 0);
        union += u64::from(t != 0 || p != 0);
    }
    (inter, union)
}

/// Foreground IoU |P ∩ G| / |P ∪ G| (1 when both are empty).
pub fn foreground_iou(truth: &[u32], predicted: &[u32]) -> f64 {
    let (i, u) = foreground_counts(truth, predicted);
    if u == 0 { 1.0 } else { i as f64 / u as f64 }
}

/// Rand error as the ISBI 2012 challenge scores it: 1 - the foreground-restricted Rand F-score (V_Rand, the
/// "adapted Rand" of the challenge's Fiji script and of SNEMI3D). Pixels whose truth is 0 (membrane) are left out;
/// a predicted 0 (unassigned) pixel is a segment of its own, so a thin predicted membrane costs little and a merge
/// costs much. Over pairs of the remaining pixels: precision = pairs together in both / pairs together in the
/// prediction, recall = pairs together in both / pairs together in the truth, error = 1 - 2PR / (P + R).
/// 0 for identical segmentations up to renaming; `None` when the truth has no foreground.
pub fn rand_error(truth: &[u32], predicted: &[u32]) -> Option<f64> {
    rand_error_with(truth, predicted, UnassignedPixels::Singletons)
}

/// The stricter variant (scikit-image's `adapted_rand_error`): every predicted label, 0 included, is one segment,
/// so all predicted membrane inside true cells counts as one large false merge.
pub fn rand_error_unassigned_as_one_segment(truth: &[u32], predicted: &[u32]) -> Option<f64> {
    rand_error_with(truth, predicted, UnassignedPixels::OneSegment)
}

#[derive(Clone, Copy, PartialEq)]
enum UnassignedPixels {
    Singletons,
    OneSegment,
}

/// Pair counts from the contingency table: with n_ij pixels in predicted segment i and true segment j, pairs
/// together in both = Σn_ij², in the prediction = Σ(row sums)², in the truth = Σ(column sums)² (ordered pairs,
/// a pixel with itself included, as the challenge's N² normalisation).
fn rand_error_with(truth: &[u32], predicted: &[u32], unassigned: UnassignedPixels) -> Option<f64> {
    assert_eq!(truth.len(), predicted.len());
    let mut joint: HashMap<(u32, u32), f64> = HashMap::new();
    let (mut rows, mut cols): (HashMap<u32, f64>, HashMap<u32, f64>) = (HashMap::new(), HashMap::new());
    let (mut n, mut singletons) = (0.0, 0.0);
    for (&t, &p) in truth.iter().zip(predicted) {
        if t == 0 {
            continue;
        }
        n += 1.0;
        *cols.entry(t).or_default() += 1.0;
        if p == 0 && unassigned == UnassignedPixels::Singletons {
            singletons += 1.0;
        } else {
            *joint.entry((p, t)).or_default() += 1.0;
            *rows.entry(p).or_default() += 1.0;
        }
    }
    if n == 0.0 {
        return None;
    }
    let squares = |v: &mut dyn Iterator<Item = &f64>| v.map(|c| (c / n) * (c / n)).sum::<f64>();
    let singleton_pairs = singletons / (n * n);
    let sum_joint = squares(&mut joint.values()) + singleton_pairs;
    let sum_rows = squares(&mut rows.values()) + singleton_pairs;
    let sum_cols = squares(&mut cols.values());
    let (precision, recall) = (sum_joint / sum_rows, sum_joint / sum_cols);
    Some(1.0 - 2.0 * precision * recall / (precision + recall))
}

/// Pixel error: the fraction of pixels whose foreground/background (cell interior/membrane) differs.
pub fn pixel_error(truth: &[u32], predicted: &[u32]) -> f64 {
    assert_eq!(truth.len(), predicted.len());
    let wrong = truth.iter().zip(predicted).filter(|(t, p)| (**t != 0) != (**p != 0)).count();
    wrong as f64 / truth.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    /// Brute force: IoU of every (truth, predicted) pair from explicit pixel sets, then the largest one-to-one
    /// matching among pairs with IoU > tau by trying every assignment.
    fn brute_force_detections(truth: &[u32], predicted: &[u32], tau: f64) -> Detections {
        let ids = |v: &[u32]| {
            let mut ids: Vec<u32> = v.iter().copied().filter(|&l| l != 0).collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        let (t_ids, p_ids) = (ids(truth), ids(predicted));
        let iou = |t: u32, p: u32| {
            let inter = truth.iter().zip(predicted).filter(|&(&a, &b)| a == t && b == p).count();
            let union = truth.iter().zip(predicted).filter(|&(&a, &b)| a == t || b == p).count();
            inter as f64 / union as f64
        };
        let ok: Vec<Vec<bool>> = t_ids.iter().map(|&t| p_ids.iter().map(|&p| iou(t, p) > tau).collect()).collect();
        fn best(ok: &[Vec<bool>], row: usize, used: &mut Vec<bool>) -> usize {
            if row == ok.len() {
                return 0;
            }
            let mut m = best(ok, row + 1, used);
            for j in 0..used.len() {
                if ok[row][j] && !used[j] {
                    used[j] = true;
                    m = m.max(1 + best(ok, row + 1, used));
                    used[j] = false;
                }
            }
            m
        }
        let tp = best(&ok, 0, &mut vec![false; p_ids.len()]);
        Detections { true_positives: tp, false_positives: p_ids.len() - tp, false_negatives: t_ids.len() - tp }
    }

    #[test]
    fn detections_match_a_brute_force_assignment() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(5);
        let (w, h) = (24, 18);
        // Random rectangles (later ones paint over earlier ones), so objects overlap, split and merge at random.
        let paint = |rng: &mut StdRng, n: u32| {
            let mut v = vec![0u32; w * h];
            for id in 1..=n {
                let (x0, y0) = (rng.random_range(0..w - 2), rng.random_range(0..h - 2));
                let (x1, y1) = (rng.random_range(x0 + 1..w), rng.random_range(y0 + 1..h));
                for y in y0..y1 {
                    for x in x0..x1 {
                        v[y * w + x] = id;
                    }
                }
            }
            v
        };
        let mut checked = [0usize; 2];
        for case in 0..300 {
            let n = rng.random_range(0..6);
            let truth = paint(&mut rng, n);
            // Half the cases: a perturbed copy of the truth (many matches); else independent objects.
            let predicted = if case % 2 == 0 {
                let mut p = truth.clone();
                let n = rng.random_range(0..3);
                let extra = paint(&mut rng, n);
                p.iter_mut().zip(&extra).for_each(|(p, &e)| {
                    if e != 0 {
                        *p = e + 10
                    }
                });
                p
            } else {
                let n = rng.random_range(0..6);
                paint(&mut rng, n)
            };
            let fast = detections(&truth, &predicted, &[0.5, 0.75]);
            for (k, tau) in [0.5, 0.75].into_iter().enumerate() {
                let slow = brute_force_detections(&truth, &predicted, tau);
                assert_eq!(fast[k], slow, "case {case}, tau {tau}");
                checked[k] += slow.true_positives;
            }
        }
        assert!(checked[0] > 100 && checked[1] > 50, "the cases exercise matches: {checked:?}");
    }

    #[test]
    fn ap_counts_false_positives_that_seg_ignores() {
        // One true object found exactly, plus three specks: SEG 1, AP 1/4.
        let mut truth = vec![0u32; 100];
        truth[..20].fill(1);
        let mut predicted = truth.clone();
        predicted[50] = 2;
        predicted[60] = 3;
        predicted[70] = 4;
        assert_eq!(seg(&truth, &predicted), Some(1.0));
        let d = detections(&truth, &predicted, &[0.5])[0];
        assert_eq!((d.true_positives, d.false_positives, d.false_negatives), (1, 3, 0));
        assert_eq!(d.ap(), 0.25);
        assert_eq!(Detections::default().ap(), 1.0, "nothing true, nothing found");
    }

    use super::*;

    /// Rand F-score by definition, over ordered pairs (a pixel with itself included) of truth-foreground pixels;
    /// `singletons` makes each predicted-0 pixel a segment of its own.
    fn brute_force_rand_error(truth: &[u32], predicted: &[u32], singletons: bool) -> f64 {
        let (mut both, mut in_pred, mut in_truth) = (0.0, 0.0, 0.0);
        for i in 0..truth.len() {
            for j in 0..truth.len() {
                if truth[i] == 0 || truth[j] == 0 {
                    continue;
                }
                let unassigned = singletons && (predicted[i] == 0 || predicted[j] == 0);
                let (t, p) = (truth[i] == truth[j], predicted[i] == predicted[j] && (!unassigned || i == j));
                both += f64::from(u8::from(t && p));
                in_pred += f64::from(u8::from(p));
                in_truth += f64::from(u8::from(t));
            }
        }
        let (precision, recall) = (both / in_pred, both / in_truth);
        1.0 - 2.0 * precision * recall / (precision + recall)
    }

    #[test]
    fn rand_error_against_brute_force_pair_counting() {
        let truth = [1, 1, 1, 2, 2, 0, 3, 3, 3, 3, 0, 2, 3, 1];
        let predicted = [5, 5, 6, 6, 6, 0, 7, 7, 0, 7, 1, 6, 0, 0];
        let got = rand_error(&truth, &predicted).unwrap();
        let want = brute_force_rand_error(&truth, &predicted, true);
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        let strict = rand_error_unassigned_as_one_segment(&truth, &predicted).unwrap();
        let strict_want = brute_force_rand_error(&truth, &predicted, false);
        assert!((strict - strict_want).abs() < 1e-12, "{strict} vs {strict_want}");
        assert!(got > 0.05 && (strict - got).abs() > 1e-3, "{got} {strict}");
        // Renaming labels changes nothing; a perfect prediction scores 0.
        let renamed: Vec<u32> = truth.iter().map(|&t| if t == 0 { 0 } else { t + 10 }).collect();
        assert!(rand_error(&truth, &renamed).unwrap().abs() < 1e-12);
        assert_eq!(rand_error(&[0, 0], &[1, 2]), None);
    }

    #[test]
    fn a_thin_unassigned_line_inside_a_cell_costs_little_and_a_merge_costs_much() {
        // Two true cells side by side (10x10 each). Prediction A: right, but with a 1-pixel unassigned (membrane)
        // line across both cells. Prediction B: both cells merged into one segment.
        let (w, h) = (20usize, 10usize);
        let truth: Vec<u32> = (0..w * h).map(|i| if i % w < 10 { 1 } else { 2 }).collect();
        let line: Vec<u32> = truth.iter().enumerate().map(|(i, &t)| if i / w == 4 { 0 } else { t }).collect();
        let merged = vec![1u32; w * h];
        let (thin, merge) = (rand_error(&truth, &line).unwrap(), rand_error(&truth, &merged).unwrap());
        assert!(thin < 0.12 && merge > 0.3, "line {thin}, merge {merge}");
    }

    #[test]
    fn pixel_error_counts_foreground_disagreement() {
        assert_eq!(pixel_error(&[0, 1, 2, 0], &[0, 5, 0, 3]), 0.5);
        assert_eq!(pixel_error(&[1, 2], &[7, 7]), 0.0);
    }

    #[test]
    fn seg_by_hand() {
        // Truth: object 1 (4 px), object 2 (2 px). Prediction: 7 covers 3 px of 1 plus 1 px outside; 8 covers 1 px of 2.
        let truth = [1, 1, 1, 1, 2, 2, 0, 0];
        let pred = [7, 7, 7, 0, 8, 0, 7, 0];
        // Object 1: 3 > 2 -> J = 3 / (4 + 4 - 3) = 0.6. Object 2: 1 > 1 fails -> 0.
        assert!((seg(&truth, &pred).unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(seg(&truth, &truth), Some(1.0));
        assert_eq!(seg_matches(&truth, &pred).2, 1);
        assert_eq!(seg(&[0, 0], &[1, 1]), None);
        // IoU: truth fg 6, pred fg 5, both 4 -> 4 / 7.
        assert!((foreground_iou(&truth, &pred) - 4.0 / 7.0).abs() < 1e-12);
    }
}
