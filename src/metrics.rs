//! Evaluation measures (see the paper notes): the Cell Tracking Challenge SEG measure and foreground IoU, and the
//! ISBI 2012 EM challenge's Rand error and pixel error.

use std::collections::HashMap;

/// SEG: for each ground-truth object R, the predicted object S with |R ∩ S| > 0.5 |R| (at most one exists) gives
/// the Jaccard index |R ∩ S| / |R ∪ S|, else 0; SEG is the mean over ground-truth objects. Unannotated cells in
/// sparse ground truth are not counted. Returns the sum of Jaccard indices and the number of objects, so that
/// several images can be pooled (SEG = sum / count); `None` count 0 means no objects.
pub fn seg_sum(truth: &[u32], predicted: &[u32]) -> (f64, usize) {
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
    let mut sum = 0.0;
    for (&(t, p), &inter) in &overlap {
        let r = truth_size[&t];
        if 2 * inter > r {
            let union = r + pred_size[&p] - inter;
            sum += inter as f64 / union as f64;
        }
    }
    (sum, truth_size.len())
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

/// Rand error as the ISBI 2012 challenge scores it: 1 - the foreground-restricted Rand F-score (V_Rand). Pixels
/// whose truth is 0 (membrane) are left out; every predicted label, 0 included, is a segment. With p_ij the
/// fraction of those pixels in predicted segment i and true segment j, s_i and t_j its row and column sums:
/// precision = Σp_ij² / Σs_i², recall = Σp_ij² / Σt_j², error = 1 - 2PR / (P + R) (as scikit-image's
/// `adapted_rand_error`). 0 for identical segmentations up to renaming; `None` when the truth has no foreground.
pub fn rand_error(truth: &[u32], predicted: &[u32]) -> Option<f64> {
    assert_eq!(truth.len(), predicted.len());
    let mut joint: HashMap<(u32, u32), f64> = HashMap::new();
    let (mut rows, mut cols): (HashMap<u32, f64>, HashMap<u32, f64>) = (HashMap::new(), HashMap::new());
    let mut n = 0.0;
    for (&t, &p) in truth.iter().zip(predicted) {
        if t != 0 {
            *joint.entry((p, t)).or_default() += 1.0;
            *rows.entry(p).or_default() += 1.0;
            *cols.entry(t).or_default() += 1.0;
            n += 1.0;
        }
    }
    if n == 0.0 {
        return None;
    }
    let squares = |v: &mut dyn Iterator<Item = &f64>| v.map(|c| (c / n) * (c / n)).sum::<f64>();
    let (sum_joint, sum_rows, sum_cols) =
        (squares(&mut joint.values()), squares(&mut rows.values()), squares(&mut cols.values()));
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

    #[test]
    fn rand_error_against_brute_force_pair_counting() {
        // Rand F-score by definition: over pairs of truth-foreground pixels, precision = pairs together in both /
        // pairs together in the prediction, recall = pairs together in both / pairs together in the truth.
        let truth = [1, 1, 1, 2, 2, 0, 3, 3, 3, 3, 0, 2];
        let predicted = [5, 5, 6, 6, 6, 0, 7, 7, 0, 7, 1, 6];
        let (mut both, mut in_pred, mut in_truth) = (0.0, 0.0, 0.0);
        for i in 0..truth.len() {
            for j in 0..truth.len() {
                if truth[i] == 0 || truth[j] == 0 {
                    continue;
                }
                let (t, p) = (truth[i] == truth[j], predicted[i] == predicted[j]);
                both += f64::from(u8::from(t && p));
                in_pred += f64::from(u8::from(p));
                in_truth += f64::from(u8::from(t));
            }
        }
        let (precision, recall) = (both / in_pred, both / in_truth);
        let want = 1.0 - 2.0 * precision * recall / (precision + recall);
        let got = rand_error(&truth, &predicted).unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        assert!(got > 0.05);
        // Renaming labels changes nothing; a perfect prediction scores 0.
        let renamed: Vec<u32> = truth.iter().map(|&t| if t == 0 { 0 } else { t + 10 }).collect();
        assert!(rand_error(&truth, &renamed).unwrap().abs() < 1e-12);
        assert_eq!(rand_error(&[0, 0], &[1, 2]), None);
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
        assert_eq!(seg(&[0, 0], &[1, 1]), None);
        // IoU: truth fg 6, pred fg 5, both 4 -> 4 / 7.
        assert!((foreground_iou(&truth, &pred) - 4.0 / 7.0).abs() < 1e-12);
    }
}
