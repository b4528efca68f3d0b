//! Evaluating a model on annotated samples through the same inference path users get (ONNX Runtime, tiling):
//! SEG and foreground IoU, and the search for the post-processing (instance method, threshold, minimum size)
//! that scores best on validation data, per dataset and averaged over datasets.

use crate::{
    dataset::Sample,
    error::Result,
    instances::{InstanceMethod, PostProcessing, Watershed, foreground_marker, label_instances},
    labels::Connectivity,
    metrics::{Detections, detections, foreground_counts, seg_matches},
    model::Model,
    segment::{SegmentOptions, SegmentOutputs},
};

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Scores {
    /// Cell Tracking Challenge SEG over all ground-truth objects (NaN when there is none).
    pub seg: f64,
    /// Foreground IoU over all pixels.
    pub iou: f64,
    pub images: usize,
    pub objects: usize,
    /// ISBI 2012 Rand error (1 - foreground-restricted Rand F-score, unassigned pixels as singletons as the
    /// challenge scores it), the mean over images.
    pub rand_error: f64,
    /// The same with every unassigned (predicted 0) pixel in one segment (scikit-image's convention; stricter).
    pub rand_error_strict: f64,
    /// Fraction of pixels whose foreground/background differs from the truth, over all pixels.
    pub pixel_error: f64,
    /// Predicted instances over all images (against `objects` true ones: SEG does not see the extra ones).
    pub instances: usize,
    /// True objects matched by a predicted one (more than half covered, as SEG matches).
    pub matched: usize,
    /// Detections at IoU > 0.5 and > 0.75, pooled over the images (AP = TP / (TP + FP + FN)).
    pub at50: Detections,
    pub at75: Detections,
}

/// The IoU thresholds of [`Scores::at50`] and [`Scores::at75`].
pub const AP_THRESHOLDS: [f64; 2] = [0.5, 0.75];

impl Scores {
    /// AP@0.5 pooled over the set (StarDist's and the DSB literature's detection measure).
    pub fn ap50(&self) -> f64 {
        self.at50.ap()
    }

    pub fn ap75(&self) -> f64 {
        self.at75.ap()
    }

    /// What the tuning, the trainer's checkpoint choice and model comparisons rank by by default: the mean of AP@0.5
    /// (sees false positives, splits and misses) and SEG (sees how well outlines fit). NaN SEG (no true object)
    /// leaves AP alone.
    pub fn ap_seg(&self) -> f64 {
        if self.seg.is_finite() { 0.5 * (self.ap50() + self.seg) } else { self.ap50() }
    }

    /// Detection F1: 2 matched / (true objects + predicted instances). Specks and fragments lower it (SEG ignores
    /// them), so do dropped cells (the Rand score barely sees those).
    pub fn object_f1(&self) -> f64 {
        let n = self.objects + self.instances;
        if n == 0 { 1.0 } else { 2.0 * self.matched as f64 / n as f64 }
    }
}

/// Distinct non-zero labels.
fn instance_count(labels: &[u32]) -> usize {
    let max = labels.iter().copied().max().unwrap_or(0) as usize;
    let mut seen = vec![false; max + 1];
    labels.iter().for_each(|&l| seen[l as usize] = true);
    seen[1..].iter().filter(|&&s| s).count()
}

/// Pools per-image SEG sums and foreground counts.
#[derive(Default)]
struct Pool {
    seg_total: f64,
    objects: usize,
    matched: usize,
    inter: u64,
    union: u64,
    images: usize,
    rand_sum: f64,
    rand_strict_sum: f64,
    rand_images: usize,
    wrong_pixels: u64,
    pixels: u64,
    instances: usize,
    at50: Detections,
    at75: Detections,
}

impl Pool {
    fn add(&mut self, truth: &[u32], predicted: &[u32]) {
        let (sum, n, matched) = seg_matches(truth, predicted);
        self.seg_total += sum;
        self.objects += n;
        self.matched += matched;
        let (i, u) = foreground_counts(truth, predicted);
        self.inter += i;
        self.union += u;
        self.images += 1;
        if let Some(e) = crate::metrics::rand_error(truth, predicted) {
            self.rand_sum += e;
            self.rand_strict_sum += crate::metrics::rand_error_unassigned_as_one_segment(truth, predicted).unwrap_or(e);
            self.rand_images += 1;
        }
        self.wrong_pixels += (crate::metrics::pixel_error(truth, predicted) * truth.len() as f64).round() as u64;
        self.pixels += truth.len() as u64;
        self.instances += instance_count(predicted);
        let d = detections(truth, predicted, &AP_THRESHOLDS);
        self.at50.add(d[0]);
        self.at75.add(d[1]);
    }

    fn merge(&mut self, other: &Pool) {
        self.seg_total += other.seg_total;
        self.objects += other.objects;
        self.matched += other.matched;
        self.inter += other.inter;
        self.union += other.union;
        self.images += other.images;
        self.rand_sum += other.rand_sum;
        self.rand_strict_sum += other.rand_strict_sum;
        self.rand_images += other.rand_images;
        self.wrong_pixels += other.wrong_pixels;
        self.pixels += other.pixels;
        self.instances += other.instances;
        self.at50.add(other.at50);
        self.at75.add(other.at75);
    }

    fn scores(&self) -> Scores {
        Scores {
            seg: if self.objects > 0 { self.seg_total / self.objects as f64 } else { f64::NAN },
            iou: if self.union > 0 { self.inter as f64 / self.union as f64 } else { 1.0 },
            images: self.images,
            objects: self.objects,
            rand_error: if self.rand_images > 0 { self.rand_sum / self.rand_images as f64 } else { f64::NAN },
            rand_error_strict: if self.rand_images > 0 {
                self.rand_strict_sum / self.rand_images as f64
            } else {
                f64::NAN
            },
            pixel_error: if self.pixels > 0 { self.wrong_pixels as f64 / self.pixels as f64 } else { f64::NAN },
            instances: self.instances,
            matched: self.matched,
            at50: self.at50,
            at75: self.at75,
        }
    }
}

/// Segments every sample with `model` and scores the instance labels against its ground truth. `min_size` 0 and
/// no post-processing override take the model's recommendation (see [`SegmentOptions`]).
pub fn evaluate(model: &Model, samples: &[Sample], min_size: usize) -> Result<Scores> {
    evaluate_with(model, samples, &|| SegmentOptions { min_size, ..Default::default() })
}

/// [`evaluate`] with any segmentation options (made afresh for each image).
pub fn evaluate_with(
    model: &Model,
    samples: &[Sample],
    options: &dyn Fn() -> SegmentOptions<'static>,
) -> Result<Scores> {
    let mut pool = Pool::default();
    for s in samples {
        let view = s.image.view()?;
        let mut labels = vec![0u32; view.area()];
        model.segment(&view, options(), SegmentOutputs { labels: Some(&mut labels), ..Default::default() })?;
        pool.add(&s.labels, &labels);
    }
    Ok(pool.scores())
}

/// One named validation set (e.g. one dataset's held-out frames).
pub struct ValidationSet {
    pub name: String,
    pub samples: Vec<Sample>,
}

/// The candidates [`tune`] tries.
#[derive(Clone, Debug)]
pub struct TuneGrid {
    pub thresholds: Vec<f32>,
    pub methods: Vec<InstanceMethod>,
    pub min_sizes: Vec<usize>,
    /// The probabilities the candidates re-label come with test-time augmentation (for a caller who segments with
    /// it).
    pub test_time_augmentation: bool,
    /// What "best" means.
    pub objective: TuneObjective,
}

/// The score a tuning maximises, averaged over the validation sets (each set counts once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TuneObjective {
    /// The mean of AP@0.5 and SEG ([`Scores::ap_seg`]): counts false positives, splits and misses as well as how
    /// well outlines fit. The default for light microscopy.
    #[default]
    ApSeg,
    /// The Cell Tracking Challenge's SEG alone (blind to false positives; its near ties go to fewer instances).
    Seg,
    /// 1 - the ISBI 2012 Rand error (EM membranes: merges and splits of whole cells, the paper's EM measure).
    RandFScore,
}

impl TuneObjective {
    pub fn name(self) -> &'static str {
        match self {
            TuneObjective::ApSeg => "mean of AP@0.5 and SEG",
            TuneObjective::Seg => "SEG",
            TuneObjective::RandFScore => "Rand F-score",
        }
    }

    fn of(self, s: &Scores) -> f64 {
        match self {
            TuneObjective::ApSeg => s.ap_seg(),
            TuneObjective::Seg => s.seg,
            TuneObjective::RandFScore => 1.0 - s.rand_error,
        }
    }
}

impl Default for TuneGrid {
    fn default() -> Self {
        let mut methods = vec![InstanceMethod::Components];
        for smoothing in [0.0, 1.0, 2.0, 3.0, 4.0] {
            for h in [0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0] {
                methods.push(InstanceMethod::Watershed(Watershed { h, smoothing, seed: None }));
            }
        }
        for smoothing in [0.0, 1.0, 2.0] {
            for seed in [0.6, 0.7, 0.8, 0.9, 0.95] {
                methods.push(InstanceMethod::Watershed(Watershed {
                    h: Watershed::DEFAULT.h,
                    smoothing,
                    seed: Some(seed),
                }));
            }
        }
        TuneGrid {
            // Up to 0.9: EM membranes tuned for the Rand score want thick borders (cells cut apart, not merged).
            thresholds: vec![0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
            methods,
            min_sizes: vec![0, 20, 50, 100, 200],
            test_time_augmentation: false,
            objective: TuneObjective::ApSeg,
        }
    }
}

impl TuneGrid {
    /// A grid about 10 times smaller than the default (225 candidates: thresholds 0.4-0.8, components and the
    /// watershed with h 1-4 px, smoothing 0 or 1, minimum sizes 0-200), for large validation sets on a small machine.
    pub fn quick() -> TuneGrid {
        let mut methods = vec![InstanceMethod::Components];
        for smoothing in [0.0, 1.0] {
            for h in [1.0, 2.0, 3.0, 4.0] {
                methods.push(InstanceMethod::Watershed(Watershed { h, smoothing, seed: None }));
            }
        }
        TuneGrid {
            thresholds: vec![0.4, 0.5, 0.6, 0.7, 0.8],
            methods,
            min_sizes: vec![0, 20, 50, 100, 200],
            ..TuneGrid::default()
        }
    }
}

/// One candidate's scores.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub postprocessing: PostProcessing,
    /// Per validation set, in the order given.
    pub scores: Vec<Scores>,
    /// Mean SEG over the sets (each set counts once, whatever its size).
    pub mean_seg: f64,
    /// Mean of the grid's objective over the sets (higher is better): what the ranking uses.
    pub objective: f64,
    /// Mean foreground IoU over the sets: breaks ties (SEG ignores false positives, IoU does not).
    pub mean_iou: f64,
    /// Mean over the sets of predicted instances per true object: decides among near ties by SEG ([`NEAR_TIE_SEG`]).
    pub instances_per_object: f64,
    /// Mean over the sets of [`Scores::object_f1`]: decides among near ties by the Rand score.
    pub object_f1: f64,
    /// Mean AP@0.5 over the sets: decides among near ties by [`TuneObjective::ApSeg`].
    pub mean_ap50: f64,
}

/// Candidates whose objective (mean SEG, or Rand F-score) is within this of the best are equally good; among them
/// the one with the fewest instances per true object is chosen. SEG ignores false positives (specks, fragments),
/// which a user sees first.
pub const NEAR_TIE_SEG: f64 = 0.002;

/// Moves the near-tie winner ([`NEAR_TIE_SEG`]) of `candidates` (sorted best objective first) to the front. By SEG:
/// the fewest instances per true object (SEG ignores specks and fragments). By the Rand score: the best detection
/// F1, which counts specks and missed cells alike. The Rand score hardly moves with the minimum size (small objects
/// hold few pixel pairs), so something object-level must decide it; fewest instances alone would reward dropping
/// every small cell, the best SEG alone would keep every fragment (4.6 per cell on the EM model).
fn prefer_fewer_instances_among_near_ties(candidates: &mut Vec<Candidate>, objective: TuneObjective) {
    let Some(best) = candidates.first().map(|c| c.objective) else { return };
    let near = (0..candidates.len()).filter(|&i| candidates[i].objective >= best - NEAR_TIE_SEG);
    let order = |a: f64, b: f64| a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal);
    let pick = match objective {
        TuneObjective::Seg => {
            near.min_by(|&a, &b| order(candidates[a].instances_per_object, candidates[b].instances_per_object))
        }
        // AP already counts false positives: the near tie with the best AP@0.5 (then the earlier one).
        TuneObjective::ApSeg => near.min_by(|&a, &b| order(-candidates[a].mean_ap50, -candidates[b].mean_ap50)),
        // min_by keeps the first of equals: negate to find the first best F1.
        TuneObjective::RandFScore => near.min_by(|&a, &b| order(-candidates[a].object_f1, -candidates[b].object_f1)),
    };
    if let Some(i) = pick {
        let chosen = candidates.remove(i);
        candidates.insert(0, chosen);
    }
}

/// The result of [`tune`]: every candidate, best first.
pub struct Tuning {
    pub candidates: Vec<Candidate>,
}

impl Tuning {
    pub fn best(&self) -> &Candidate {
        &self.candidates[0]
    }

    /// The best candidate that uses `method`'s kind (components or watershed).
    pub fn best_of_kind(&self, watershed: bool) -> Option<&Candidate> {
        self.candidates.iter().find(|c| matches!(c.postprocessing.method, InstanceMethod::Watershed(_)) == watershed)
    }
}

/// Tries every post-processing of `grid` on the validation sets (the network runs once per image; the candidates
/// re-label its probabilities) and ranks them by the grid's objective (mean SEG by default) over the sets. Ties keep
/// the simpler, earlier candidate;
/// first goes the candidate with the fewest instances per true object among those within [`NEAR_TIE_SEG`] of the best.
pub fn tune(
    model: &Model,
    sets: &[ValidationSet],
    grid: &TuneGrid,
    connectivity: Connectivity,
    mut progress: impl FnMut(usize, usize),
) -> Result<Tuning> {
    let probabilities = probabilities_of(model, sets, grid.test_time_augmentation, &mut progress)?;
    // pools[threshold][method][min_size][set]; images are labelled on all cores, each worker with its own pools.
    let (nt, nm, nz) = (grid.thresholds.len(), grid.methods.len(), grid.min_sizes.len());
    let slots = nt * nm * nz * sets.len();
    let index = |t: usize, m: usize, z: usize, s: usize| ((t * nm + m) * nz + z) * sets.len() + s;
    let jobs: Vec<(usize, usize)> =
        sets.iter().enumerate().flat_map(|(si, set)| (0..set.samples.len()).map(move |k| (si, k))).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len().max(1));
    let per_worker: Vec<Result<Vec<Pool>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<Vec<Pool>> {
                    let mut pools: Vec<Pool> = (0..slots).map(|_| Pool::default()).collect();
                    loop {
                        let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(si, k)) = jobs.get(j) else { return Ok(pools) };
                        let (sample, probs) = (&sets[si].samples[k], &probabilities[si][k]);
                        let (w, h) = (sample.width(), sample.height());
                        for (ti, &t) in grid.thresholds.iter().enumerate() {
                            for (mi, &method) in grid.methods.iter().enumerate() {
                                let mut labels: Vec<u32> = probs
                                    .iter()
                                    .map(|&p| if p >= t { foreground_marker(method, p) } else { 0 })
                                    .collect();
                                label_instances(&mut labels, w, h, method, connectivity, 0)?;
                                for (zi, &min_size) in grid.min_sizes.iter().enumerate() {
                                    let kept = remove_small(&labels, min_size);
                                    pools[index(ti, mi, zi, si)].add(&sample.labels, &kept);
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("tuning worker panicked")).collect()
    });
    let mut pools: Vec<Pool> = (0..slots).map(|_| Pool::default()).collect();
    for worker in per_worker {
        for (total, part) in pools.iter_mut().zip(worker?) {
            total.merge(&part);
        }
    }
    let mut candidates = Vec::new();
    for (ti, &t) in grid.thresholds.iter().enumerate() {
        for (mi, &method) in grid.methods.iter().enumerate() {
            for (zi, &min_size) in grid.min_sizes.iter().enumerate() {
                let scores: Vec<Scores> = (0..sets.len()).map(|s| pools[index(ti, mi, zi, s)].scores()).collect();
                let postprocessing = PostProcessing { method, threshold: Some(t), min_size };
                candidates.push(Candidate::new(postprocessing, scores, grid.objective));
            }
        }
    }
    // Best objective first; equal ones (to 1e-9) are decided by IoU; the sort is stable, so the earlier (simpler)
    // candidate wins what remains.
    candidates.sort_by(|a, b| {
        let by_objective = if (a.objective - b.objective).abs() < 1e-9 {
            std::cmp::Ordering::Equal
        } else {
            b.objective.partial_cmp(&a.objective).unwrap_or(std::cmp::Ordering::Equal)
        };
        by_objective.then(b.mean_iou.partial_cmp(&a.mean_iou).unwrap_or(std::cmp::Ordering::Equal))
    });
    prefer_fewer_instances_among_near_ties(&mut candidates, grid.objective);
    Ok(Tuning { candidates })
}

/// Foreground probabilities of every sample of every set (the network runs once per image for the whole grid).
fn probabilities_of(
    model: &Model,
    sets: &[ValidationSet],
    test_time_augmentation: bool,
    progress: &mut impl FnMut(usize, usize),
) -> Result<Vec<Vec<Vec<f32>>>> {
    let total_images: usize = sets.iter().map(|s| s.samples.len()).sum();
    let mut probabilities = Vec::new();
    let mut done = 0;
    for set in sets {
        let mut per_set = Vec::new();
        for s in &set.samples {
            let view = s.image.view()?;
            let mut p = vec![0f32; view.area()];
            model.segment(
                &view,
                SegmentOptions { test_time_augmentation, ..Default::default() },
                SegmentOutputs { probabilities: Some(&mut p), ..Default::default() },
            )?;
            per_set.push(p);
            done += 1;
            progress(done, total_images);
        }
        probabilities.push(per_set);
    }
    Ok(probabilities)
}

impl Candidate {
    /// A candidate's summary over its per-set scores: means over the sets where a value exists.
    fn new(postprocessing: PostProcessing, scores: Vec<Scores>, objective: TuneObjective) -> Candidate {
        let mean_of = |v: Vec<f64>| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
        let mean_seg = mean_of(scores.iter().map(|s| s.seg).filter(|s| s.is_finite()).collect());
        let objective = mean_of(scores.iter().map(|s| objective.of(s)).filter(|v| v.is_finite()).collect());
        let mean_iou = scores.iter().map(|s| s.iou).sum::<f64>() / scores.len().max(1) as f64;
        let ratios: Vec<f64> =
            scores.iter().filter(|s| s.objects > 0).map(|s| s.instances as f64 / s.objects as f64).collect();
        let instances_per_object = ratios.iter().sum::<f64>() / ratios.len().max(1) as f64;
        let object_f1 = scores.iter().map(Scores::object_f1).sum::<f64>() / scores.len().max(1) as f64;
        let mean_ap50 = scores.iter().map(Scores::ap50).sum::<f64>() / scores.len().max(1) as f64;
        Candidate { postprocessing, scores, mean_seg, objective, mean_iou, instances_per_object, object_f1, mean_ap50 }
    }
}

/// Labels with instances under `min_size` pixels set to 0 (numbers unchanged otherwise).
fn remove_small(labels: &[u32], min_size: usize) -> std::borrow::Cow<'_, [u32]> {
    if min_size <= 1 {
        return std::borrow::Cow::Borrowed(labels);
    }
    let max = labels.iter().copied().max().unwrap_or(0) as usize;
    let mut size = vec![0usize; max + 1];
    for &l in labels {
        size[l as usize] += 1;
    }
    std::borrow::Cow::Owned(labels.iter().map(|&l| if l != 0 && size[l as usize] < min_size { 0 } else { l }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(mean_seg: f64, instances_per_object: f64, min_size: usize) -> Candidate {
        Candidate {
            postprocessing: PostProcessing { min_size, ..PostProcessing::PLAIN },
            scores: Vec::new(),
            mean_seg,
            objective: mean_seg,
            mean_iou: 0.5,
            instances_per_object,
            object_f1: 0.5,
            mean_ap50: 0.5,
        }
    }

    #[test]
    fn a_near_tie_goes_to_fewer_instances_and_a_real_gap_does_not() {
        // Sorted by SEG: the best has specks (2 instances per object), a near tie has few, a clear loser fewer still.
        let mut c = vec![
            candidate(0.800, 2.0, 0),
            candidate(0.7985, 1.3, 20),
            candidate(0.7990, 1.5, 10),
            candidate(0.79, 1.0, 50),
        ];
        prefer_fewer_instances_among_near_ties(&mut c, TuneObjective::Seg);
        let order: Vec<usize> = c.iter().map(|c| c.postprocessing.min_size).collect();
        assert_eq!(order, [20, 0, 10, 50]);
        // Equal ratios keep the better SEG (the earlier one).
        let mut c = vec![candidate(0.8, 1.2, 0), candidate(0.7995, 1.2, 20)];
        prefer_fewer_instances_among_near_ties(&mut c, TuneObjective::Seg);
        assert_eq!(c[0].postprocessing.min_size, 0);
        let mut empty: Vec<Candidate> = Vec::new();
        prefer_fewer_instances_among_near_ties(&mut empty, TuneObjective::Seg);
    }

    #[test]
    fn rand_near_ties_go_to_the_best_detection_f1() {
        // Equal Rand scores: fragments (F1 0.50), a clean result (0.85), cells dropped by a large min size (0.70).
        let with = |rand: f64, f1: f64, per_object: f64, min_size: usize| Candidate {
            objective: rand,
            object_f1: f1,
            ..candidate(0.6, per_object, min_size)
        };
        let mut c = vec![with(0.8936, 0.50, 2.94, 0), with(0.8936, 0.85, 1.38, 20), with(0.8935, 0.70, 0.85, 200)];
        prefer_fewer_instances_among_near_ties(&mut c, TuneObjective::RandFScore);
        assert_eq!(c[0].postprocessing.min_size, 20);
        // A real gap in the Rand score is not overruled by F1.
        let mut c = vec![with(0.90, 0.50, 2.94, 0), with(0.89, 0.85, 1.38, 20)];
        prefer_fewer_instances_among_near_ties(&mut c, TuneObjective::RandFScore);
        assert_eq!(c[0].postprocessing.min_size, 0);
    }

    #[test]
    fn detection_f1_counts_specks_and_misses() {
        let s = |objects, instances, matched| Scores { objects, instances, matched, ..Default::default() };
        assert_eq!(s(10, 10, 10).object_f1(), 1.0);
        assert!((s(10, 30, 10).object_f1() - 0.5).abs() < 1e-12); // specks
        assert!((s(10, 5, 5).object_f1() - 2.0 / 3.0).abs() < 1e-12); // dropped cells
    }

    #[test]
    fn instances_are_distinct_nonzero_labels() {
        assert_eq!(instance_count(&[0, 3, 3, 7, 0, 1]), 3);
        assert_eq!(instance_count(&[0, 0]), 0);
        assert_eq!(instance_count(&[]), 0);
    }
}
