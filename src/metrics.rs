//! Evaluation measures (see the paper notes): the Cell Tracking Challenge SEG measure and foreground IoU.

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

#[cfg(test)]
mod tests {
    use super::*;

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
