//! Evaluating a model on annotated samples through the same inference path users get (ONNX Runtime, tiling):
//! SEG and foreground IoU pooled over all images.

use crate::{
    dataset::Sample,
    error::Result,
    metrics::{foreground_counts, seg_sum},
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
}

/// Segments every sample with `model` and scores the instance labels against its ground truth.
pub fn evaluate(model: &Model, samples: &[Sample], min_size: usize) -> Result<Scores> {
    let (mut seg_total, mut objects, mut inter, mut union) = (0.0, 0, 0, 0);
    for s in samples {
        let view = s.image.view()?;
        let mut labels = vec![0u32; view.area()];
        model.segment(
            &view,
            SegmentOptions { min_size, ..Default::default() },
            SegmentOutputs { labels: Some(&mut labels), ..Default::default() },
        )?;
        let (sum, n) = seg_sum(&s.labels, &labels);
        seg_total += sum;
        objects += n;
        let (i, u) = foreground_counts(&s.labels, &labels);
        inter += i;
        union += u;
    }
    Ok(Scores {
        seg: if objects > 0 { seg_total / objects as f64 } else { f64::NAN },
        iou: if union > 0 { inter as f64 / union as f64 } else { 1.0 },
        images: samples.len(),
        objects,
    })
}
