//! Evaluation measures (see the paper notes): the Cell Tracking Challenge SEG measure and foreground IoU, and the
//! ISBI 2012 EM challenge's Rand error and pixel error.

use std::collections::HashMap;

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
    assert_eq!(truth.len(), predicted.len());
    let mut truth_size: HashMap<u32, u64> = HashMap::new();
    let mut pred_size: HashMap<u32, u64> = HashMap::new();
    let mut overlap: HashMap<(u32, u32), u64> = HashMap::new();
    for (&t, &p) in truth.iter().zip(predicted) {
        if t != 0 {
            *truth_size.entry(t).or_default() += 1;
            if p != 0 {
                *overlap.entry((t, p)).or_default() += 1;
            }
        }
        if p != 0 {
            *pred_size.entry(p).or_default() += 1;
        }
    }
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
