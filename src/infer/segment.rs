//! The segmentation pipeline, left to right: image view -> normalise -> plan tiles -> run ONNX -> stitch ->
//! probabilities / mask / instance labels. Memory beyond the caller's buffers is one batch of tiles.

use std::time::{Duration, Instant};

use ndarray::{ArrayView4, ArrayViewMut4};

use crate::{
    error::{Error, Result, UnetStatus},
    image::{ImageView, Pixel, Pixels},
    instances::{InstanceMethod, PostProcessing, foreground_marker, label_instances},
    labels::Connectivity,
    metadata::Normalization,
    model::Model,
    normalize::Normalizer,
    object_size::{self, ObjectSize, ScaledResults},
    provider::Provider,
    tiling::{DEFAULT_MEMORY_BUDGET, Tile, TilePlan, max_tile_for_budget, mirror},
};

/// Progress of one call: `done` of `total` steps (tile batches, then labelling).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

/// Return `false` to cancel.
pub type ProgressFn<'p> = dyn FnMut(Progress) -> bool + 'p;

/// Post-processing fields left at `None`/0 take what the model's metadata recommends (chosen on validation data
/// when it was trained), and today's behaviour (argmax, connected components, no minimum size) for models that
/// recommend nothing.
pub struct SegmentOptions<'p> {
    /// Foreground when its probability is at least this; `None` = the model's threshold, else the most probable class.
    pub threshold: Option<f32>,
    /// Instances smaller than this many pixels are removed from the labels; 0 = the model's minimum (else none).
    pub min_size: usize,
    /// How the foreground becomes instances; `None` = the model's method, else connected components.
    pub instances: Option<InstanceMethod>,
    pub connectivity: Connectivity,
    /// Bytes the network's activations may use; decides the tile size.
    pub memory_budget: usize,
    /// Largest output tile edge; overrides the memory budget.
    pub max_tile: Option<usize>,
    /// Tiles per ONNX Runtime call; 0 = automatic (1 on the CPU, 4 on a GPU, fewer if the GPU runs out of memory);
    /// never more than an imported network allows (its batch axis may be fixed at 1).
    pub tiles_per_run: usize,
    /// Overrides the model's normalisation.
    pub normalization: Option<Normalization>,
    /// Test-time augmentation: each tile also runs mirrored (left-right, up-down, both) and the four probability
    /// maps, mirrored back, are averaged. Four times the network time; smoother borders, fewer merged cells.
    pub test_time_augmentation: bool,
    /// The channel (from 0) of a multi-channel image that a one-channel model segments; `None` = the colour rule
    /// (RGB/RGBA: luminance; see [`crate::color`]).
    pub channel: Option<usize>,
    /// How big the image's objects are: the image is resampled so they match the model's object size, and the
    /// results mapped back (see [`object_size`]).
    pub object_size: ObjectSize,
    /// The image's pixel size in micrometres (a microscope's calibration). When the model records the pixel size
    /// it was trained at and `object_size` is `AsIs`, the image is resampled by their ratio.
    pub pixel_size: Option<f32>,
    pub progress: Option<&'p mut ProgressFn<'p>>,
}

impl Default for SegmentOptions<'_> {
    fn default() -> Self {
        SegmentOptions {
            threshold: None,
            min_size: 0,
            instances: None,
            connectivity: Connectivity::Four,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            max_tile: None,
            tiles_per_run: 0,
            normalization: None,
            test_time_augmentation: false,
            channel: None,
            object_size: ObjectSize::AsIs,
            pixel_size: None,
            progress: None,
        }
    }
}

/// Where results go; each `width * height`, row-major. Leave out what you do not need.
#[derive(Default)]
pub struct SegmentOutputs<'a> {
    /// Foreground probability (1 - P(background)).
    pub probabilities: Option<&'a mut [f32]>,
    /// Class index per pixel (0 = background; 1 = foreground for two-class models).
    pub mask: Option<&'a mut [u8]>,
    /// Instance labels 1..=count, 0 = background.
    pub labels: Option<&'a mut [u32]>,
}

/// What a segmentation did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SegmentReport {
    pub label_count: u32,
    pub tiles: usize,
    /// Output tile size (height, width).
    pub tile_shape: (usize, usize),
    pub tiles_per_run: usize,
    /// How often the GPU ran out of memory and the run was retried with fewer or smaller tiles.
    pub out_of_memory_retries: usize,
    /// Model pixels per image pixel the network ran at (1 = the image as it is; see `object_size`).
    pub scale: f64,
    /// The median instance diameter (image pixels) that `ObjectSize::Auto` measured in its first pass.
    pub measured_object_size: Option<f32>,
    /// Why the network ran at another scale (`None` when `scale` is 1), so hosts need not re-derive it.
    pub resampled_for: Option<Resampled>,
    pub timings: SegmentTimings,
}

/// What made a segmentation resample the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resampled {
    /// The caller's object size.
    ObjectSize,
    /// The object size `ObjectSize::Auto` measured.
    MeasuredObjectSize,
    /// The image's pixel size against the one the model records.
    PixelSize,
}

/// The caller's output buffers (probabilities, mask, labels), each optional.
type OutputBuffers<'a, 'b> =
    (&'a mut Option<&'b mut [f32]>, &'a mut Option<&'b mut [u8]>, &'a mut Option<&'b mut [u32]>);

/// Where the time of one `segment` call went (wall clock, summed over tiles and attempts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentTimings {
    /// Percentiles of the image.
    pub normalize: Duration,
    /// Mirroring and normalising the tiles' input.
    pub fill_tiles: Duration,
    /// ONNX Runtime: copies to and from the device included.
    pub network: Duration,
    /// Probabilities, mask and foreground written from each tile.
    pub write_outputs: Duration,
    /// Instance labels (components or watershed).
    pub labels: Duration,
    /// Resampling the image to the model's scale and the outputs back (`object_size`).
    pub resample: Duration,
}

impl std::ops::AddAssign for SegmentTimings {
    fn add_assign(&mut self, o: SegmentTimings) {
        self.normalize += o.normalize;
        self.fill_tiles += o.fill_tiles;
        self.network += o.network;
        self.write_outputs += o.write_outputs;
        self.labels += o.labels;
        self.resample += o.resample;
    }
}

/// The options of one network pass (everything but the channel, object size and progress).
#[derive(Clone, Copy)]
struct PassOptions {
    threshold: Option<f32>,
    min_size: usize,
    instances: Option<InstanceMethod>,
    connectivity: Connectivity,
    memory_budget: usize,
    max_tile: Option<usize>,
    tiles_per_run: usize,
    test_time_augmentation: bool,
}

/// The progress callback of a pass (`false` = cancel).
type Report<'a> = dyn FnMut(Progress) -> bool + 'a;

impl Model {
    /// Segments `image` into the requested outputs.
    pub fn segment(
        &self,
        image: &ImageView,
        options: SegmentOptions,
        outputs: SegmentOutputs,
    ) -> Result<SegmentReport> {
        let meta = self.metadata();
        let pass = PassOptions {
            threshold: options.threshold,
            min_size: options.min_size,
            instances: options.instances,
            connectivity: options.connectivity,
            memory_budget: options.memory_budget,
            max_tile: options.max_tile,
            tiles_per_run: options.tiles_per_run,
            test_time_augmentation: options.test_time_augmentation,
        };
        Resolved::new(pass.threshold, pass.min_size, pass.instances, meta.postprocessing)?;
        if pass.memory_budget == 0 && pass.max_tile.is_none() {
            return Err(Error::invalid_argument("memory budget is 0 bytes"));
        }
        let mut progress = options.progress;
        let mut report_progress = |p: Progress| progress.as_mut().is_none_or(|f| f(p));
        // The channel rule: a chosen channel, or RGB/RGBA's luminance for a one-channel model (crate::color, the
        // one rule of every host).
        let gray = crate::color::for_model(image, meta.arch.in_channels, options.channel)?;
        let gray_view;
        let image = match &gray {
            Some(g) => {
                gray_view = g.view()?;
                &gray_view
            }
            None => image,
        };
        check_buffer_lengths(
            &[
                ("probabilities", outputs.probabilities.as_ref().map(|b| b.len())),
                ("mask", outputs.mask.as_ref().map(|b| b.len())),
                ("labels", outputs.labels.as_ref().map(|b| b.len())),
            ],
            image.area(),
        )?;
        // Normalised by the image's own statistics at any scale (resampling must not move the percentiles).
        let clock = Instant::now();
        let normalizer = Normalizer::for_image(image, options.normalization.unwrap_or(meta.normalization))?;
        let normalize = clock.elapsed();
        let model_size = meta.object_size_or_default();
        let by_pixel_size = object_size::scale_for_pixel_sizes(options.pixel_size, meta.pixel_size)?;
        let mut report = match options.object_size {
            ObjectSize::AsIs => {
                let scale = by_pixel_size.unwrap_or(1.0);
                self.segment_scaled(image, &normalizer, &pass, scale, outputs, &mut report_progress)?
            }
            ObjectSize::Pixels(d) => {
                let scale = object_size::scale_for(model_size, d)?;
                self.segment_scaled(image, &normalizer, &pass, scale, outputs, &mut report_progress)?
            }
            ObjectSize::Auto => self.segment_auto(image, &normalizer, &pass, outputs, &mut report_progress)?,
        };
        report.timings.normalize += normalize;
        report.resampled_for = (report.scale != 1.0).then_some(match options.object_size {
            ObjectSize::AsIs => Resampled::PixelSize,
            ObjectSize::Pixels(_) => Resampled::ObjectSize,
            ObjectSize::Auto => Resampled::MeasuredObjectSize,
        });
        Ok(report)
    }

    /// `ObjectSize::Auto`: a pass at the image's scale measures the instances; when their median diameter is
    /// far from the model's, a second pass at the matching scale replaces every output. The progress total
    /// counts a second pass until the first shows whether it is needed.
    fn segment_auto(
        &self,
        image: &ImageView,
        normalizer: &Normalizer,
        pass: &PassOptions,
        outputs: SegmentOutputs,
        progress: &mut Report,
    ) -> Result<SegmentReport> {
        let SegmentOutputs { mut probabilities, mut mask, labels } = outputs;
        let wants_labels = labels.is_some();
        let mut own_labels;
        let labels: &mut [u32] = match labels {
            Some(l) => l,
            None => {
                own_labels = object_size::zeroed(image.area(), "the first pass's labels")?;
                &mut own_labels
            }
        };
        let mut first_total = 0;
        let mut first_progress = |p: Progress| {
            first_total = p.total;
            progress(Progress { done: p.done, total: 2 * p.total })
        };
        let first_outputs = SegmentOutputs {
            probabilities: probabilities.as_deref_mut(),
            mask: mask.as_deref_mut(),
            labels: Some(&mut *labels),
        };
        let mut first = self.segment_scaled(image, normalizer, pass, 1.0, first_outputs, &mut first_progress)?;
        let measured = object_size::median_diameter(&labels[..image.area()]);
        first.measured_object_size = measured;
        let Some(scale) = object_size::auto_scale(self.metadata().object_size_or_default(), measured) else {
            if !wants_labels {
                first.label_count = 0;
            }
            progress(Progress { done: first_total, total: first_total });
            return Ok(first);
        };
        let mut second_progress =
            |p: Progress| progress(Progress { done: first_total + p.done, total: first_total + p.total });
        let second_outputs = SegmentOutputs { probabilities, mask, labels: wants_labels.then_some(labels) };
        let mut second = self.segment_scaled(image, normalizer, pass, scale, second_outputs, &mut second_progress)?;
        second.measured_object_size = measured;
        second.timings += first.timings;
        Ok(second)
    }

    /// One pass at `scale` model pixels per image pixel: the image resampled, segmented, and the outputs mapped
    /// back (1 = the image as it is).
    fn segment_scaled(
        &self,
        image: &ImageView,
        normalizer: &Normalizer,
        pass: &PassOptions,
        scale: f64,
        outputs: SegmentOutputs,
        progress: &mut Report,
    ) -> Result<SegmentReport> {
        if scale == 1.0 {
            return self.segment_once(image, normalizer, pass, outputs, progress);
        }
        let clock = Instant::now();
        let (width, height) = (image.width, image.height);
        let (sw, sh) = object_size::scaled_size(width, height, scale)?;
        let scaled_pixels = {
            let packed = object_size::packed_f32(image)?;
            crate::resample::resample(&packed, (width, height, image.channels), (sw, sh))
        };
        let scaled = ImageView::new(Pixels::F32(&scaled_pixels), sw, sh, image.channels, sw * image.channels)?;
        let SegmentOutputs { probabilities, mask, labels } = outputs;
        let multi_class = self.metadata().arch.classes > 2;
        let mut scaled_probabilities = object_size::zeroed::<f32>(sw * sh, "probabilities at the model's scale")?;
        let mut scaled_mask = match multi_class && (mask.is_some() || labels.is_some()) {
            true => Some(object_size::zeroed::<u8>(sw * sh, "the mask at the model's scale")?),
            false => None,
        };
        let mut scaled_labels = match labels.is_some() {
            true => Some(object_size::zeroed::<u32>(sw * sh, "labels at the model's scale")?),
            false => None,
        };
        let scaled_pass = PassOptions { min_size: object_size::scaled_min_size(pass.min_size, scale), ..*pass };
        let resample_in = clock.elapsed();
        let mut report = self.segment_once(
            &scaled,
            normalizer,
            &scaled_pass,
            SegmentOutputs {
                probabilities: Some(&mut scaled_probabilities),
                mask: scaled_mask.as_deref_mut(),
                labels: scaled_labels.as_deref_mut(),
            },
            progress,
        )?;
        let clock = Instant::now();
        let threshold =
            Resolved::new(pass.threshold, pass.min_size, pass.instances, self.metadata().postprocessing)?.threshold;
        let writer = OutputWriter { width, classes: 2, threshold, method: InstanceMethod::Components };
        let classify = |p: f32| writer.classify(|k| if k == 1 { p } else { 1.0 - p }).1 as u8;
        let results = ScaledResults {
            width: sw,
            height: sh,
            probabilities: &scaled_probabilities,
            mask: scaled_mask.as_deref(),
            labels: scaled_labels.as_deref(),
        };
        let count = object_size::map_back(&results, (width, height), &classify, probabilities, mask, labels)?;
        report.label_count = count;
        report.scale = scale;
        report.timings.resample += resample_in + clock.elapsed();
        Ok(report)
    }

    /// One pass of the network over `image` as it is (tiled), writing the requested outputs.
    fn segment_once(
        &self,
        image: &ImageView,
        normalizer: &Normalizer,
        pass: &PassOptions,
        outputs: SegmentOutputs,
        progress: &mut Report,
    ) -> Result<SegmentReport> {
        let meta = self.metadata();
        let (arch, geometry) = (meta.arch, meta.geometry());
        let Resolved { threshold, min_size, method } =
            Resolved::new(pass.threshold, pass.min_size, pass.instances, meta.postprocessing)?;
        let area = image.area();
        let SegmentOutputs { mut probabilities, mut mask, mut labels } = outputs;
        let mut timings = SegmentTimings::default();
        let on_cuda = self.provider().used == Provider::Cuda;
        let (mut batch, mut max_tile) =
            self.first_batch_and_tile(pass.tiles_per_run, pass.memory_budget, pass.max_tile);
        let writer = OutputWriter { width: image.width, classes: arch.classes, threshold, method };
        let tile_pass =
            TilePass { image, normalizer, test_time_augmentation: pass.test_time_augmentation, writer: &writer };
        let mut out_of_memory_retries = 0;
        // A GPU out of memory is retried with fewer tiles per run, then smaller tiles; every attempt rewrites
        // every output pixel, so nothing of a failed attempt survives.
        let (plan, batch) = loop {
            let plan = TilePlan::new(&geometry, image.height, image.width, max_tile);
            batch = batch.min(plan.len());
            let outputs = (&mut probabilities, &mut mask, &mut labels);
            let attempt = self.run_tiles(&tile_pass, &plan, batch, outputs, progress, &mut timings);
            match attempt {
                Ok(()) => break (plan, batch),
                Err(e) if e.status() == UnetStatus::OutOfMemory && on_cuda => {
                    (batch, max_tile) = self.fewer_or_smaller_tiles(e, &plan, batch, max_tile)?;
                    out_of_memory_retries += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let mut label_count = 0;
        if let Some(labels) = labels {
            let clock = Instant::now();
            label_count =
                label_instances(&mut labels[..area], image.width, image.height, method, pass.connectivity, min_size)?;
            timings.labels = clock.elapsed();
            let total = plan.len().div_ceil(batch) + 1;
            if !progress(Progress { done: total, total }) {
                return Err(Error::new(UnetStatus::Cancelled, format!("cancelled after {total} of {total} steps")));
            }
        }
        Ok(SegmentReport {
            label_count,
            tiles: plan.len(),
            tile_shape: plan.output_shape(),
            tiles_per_run: batch,
            out_of_memory_retries,
            scale: 1.0,
            measured_object_size: None,
            resampled_for: None,
            timings,
        })
    }

    /// Tiles per ONNX Runtime call and the largest tile edge to try first: 1 tile on the CPU, 4 on a GPU (never more
    /// than an imported network's batch axis allows), tiles sized by the memory budget, which on a GPU, when left
    /// at the default, becomes a share of the GPU's free memory (bigger tiles, less halo work).
    fn first_batch_and_tile(
        &self,
        tiles_per_run: usize,
        memory_budget: usize,
        max_tile: Option<usize>,
    ) -> (usize, usize) {
        let meta = self.metadata();
        let mut batch = match tiles_per_run {
            0 if self.provider().used == Provider::Cuda => 4,
            0 => 1,
            n => n,
        };
        if let Some(most) = meta.imported.and_then(|i| i.max_batch) {
            batch = batch.min(most);
        }
        let free_gpu_memory = || self.cuda_device().and_then(|d| crate::gpu_memory::free_bytes(d.max(0) as u32));
        let memory_budget = if memory_budget == DEFAULT_MEMORY_BUDGET && max_tile.is_none() {
            free_gpu_memory().map_or(memory_budget, crate::gpu_memory::budget_for)
        } else {
            memory_budget
        };
        let max_tile = max_tile.unwrap_or_else(|| {
            max_tile_for_budget(&meta.geometry(), meta.base_width_for_memory(), batch, memory_budget)
        });
        (batch, max_tile)
    }

    /// After the GPU ran out of memory with `plan` and `batch`: a fresh session and half the tiles per run, or at one
    /// tile per run, tiles of half the edge; the error itself when the smallest tile failed.
    fn fewer_or_smaller_tiles(
        &self,
        e: Error,
        plan: &TilePlan,
        batch: usize,
        max_tile: usize,
    ) -> Result<(usize, usize)> {
        let tile = plan.output_shape().0.max(plan.output_shape().1);
        let smaller = self.metadata().geometry().output_at_most(tile / 2);
        if batch == 1 && smaller >= tile {
            return Err(e.context("the GPU is out of memory even for the smallest tile"));
        }
        self.renew_session()?;
        let (batch, max_tile) = if batch > 1 { (batch / 2, max_tile) } else { (1, smaller) };
        log::warn!(
            "GPU out of memory with {tile}x{tile} tiles: retrying with {batch} tile(s) of at most {max_tile} per run"
        );
        Ok((batch, max_tile))
    }

    /// Runs the network over every tile of `plan`, `batch` tiles per call, writing each tile's outputs.
    fn run_tiles(
        &self,
        pass: &TilePass,
        plan: &TilePlan,
        batch: usize,
        outputs: OutputBuffers<'_, '_>,
        progress: &mut Report,
        timings: &mut SegmentTimings,
    ) -> Result<()> {
        let TilePass { image, normalizer, test_time_augmentation, writer } = *pass;
        let (probabilities, mask, labels) = outputs;
        let arch = self.metadata().arch;
        let (in_h, in_w) = plan.input_shape();
        let tile_len = arch.in_channels * in_h * in_w;
        let mut input: Vec<f32> = Vec::new();
        input.try_reserve_exact(batch * tile_len).map_err(|_| {
            Error::new(UnetStatus::OutOfMemory, format!("cannot allocate {batch} input tile(s) of {in_h}x{in_w}"))
        })?;
        input.resize(batch * tile_len, 0.0);

        let batches = plan.len().div_ceil(batch);
        let total = batches + usize::from(labels.is_some());
        let mut report = |done: usize| -> Result<()> {
            if progress(Progress { done, total }) {
                Ok(())
            } else {
                Err(Error::new(UnetStatus::Cancelled, format!("cancelled after {done} of {total} steps")))
            }
        };
        report(0)?;
        let tiles: Vec<Tile> = (0..plan.len()).map(|i| plan.tile(i)).collect();
        for (b, chunk) in tiles.chunks(batch).enumerate() {
            let n = chunk.len();
            let mut view = ArrayViewMut4::from_shape((n, arch.in_channels, in_h, in_w), &mut input[..n * tile_len])
                .expect("buffer sized for the batch");
            let clock = Instant::now();
            for (i, tile) in chunk.iter().enumerate() {
                fill_tile(image, normalizer, plan, tile, view.index_axis_mut(ndarray::Axis(0), i));
            }
            timings.fill_tiles += clock.elapsed();
            let input_view = ArrayView4::from_shape((n, arch.in_channels, in_h, in_w), &input[..n * tile_len]).unwrap();
            let check = |probs: &ArrayView4<f32>| check_network_output(probs, arch.classes, plan, b);
            let mut write = |probs: ArrayView4<f32>, timings: &mut SegmentTimings| {
                let clock = Instant::now();
                for (i, tile) in chunk.iter().enumerate() {
                    writer.write(probs.index_axis(ndarray::Axis(0), i), tile, probabilities, mask, labels);
                }
                timings.write_outputs += clock.elapsed();
            };
            let clock = Instant::now();
            if !test_time_augmentation {
                self.run(input_view, |probs| {
                    check(&probs)?;
                    timings.network += clock.elapsed();
                    write(probs, timings);
                    Ok(())
                })?;
            } else {
                let sum = self.run_mirrored(input_view, plan.output_shape(), check)?;
                timings.network += clock.elapsed();
                write(sum.view(), timings);
            }
            report(b + 1)?;
        }
        Ok(())
    }

    /// Test-time augmentation of one batch: the mean of the network's probabilities on the input and its three
    /// mirror images, each mirrored back. The tile is centred in its input (valid convolutions crop evenly and every
    /// pooled size is even), so mirroring the input mirrors the output exactly.
    fn run_mirrored(
        &self,
        input: ArrayView4<f32>,
        (out_h, out_w): (usize, usize),
        check: impl Fn(&ArrayView4<f32>) -> Result<()>,
    ) -> Result<ndarray::Array4<f32>> {
        let (n, classes) = (input.dim().0, self.metadata().arch.classes);
        let mut sum = ndarray::Array4::<f32>::zeros((n, classes, out_h, out_w));
        for (up_down, left_right) in [(false, false), (false, true), (true, false), (true, true)] {
            // A copy only for the mirrored passes (the plain one is already in standard layout).
            let view = mirrored(input, up_down, left_right);
            let flipped = view.as_standard_layout();
            self.run(flipped.view(), |probs| {
                check(&probs)?;
                sum += &mirrored(probs, up_down, left_right);
                Ok(())
            })?;
        }
        sum /= 4.0;
        Ok(sum)
    }
}

/// `v` mirrored up-down and/or left-right (a view: nothing is copied).
/// The network's output for a batch must have the classes and tile shape its metadata promised, and be finite:
/// NaN never leaves with status OK (pixels far outside the trained range, e.g. raw values near f32::MAX with
/// normalisation none, can overflow inside the network).
fn check_network_output(probs: &ArrayView4<f32>, classes: usize, plan: &TilePlan, batch: usize) -> Result<()> {
    let (_, k, out_h, out_w) = probs.dim();
    if k != classes || (out_h, out_w) != plan.output_shape() {
        let (in_h, in_w) = plan.input_shape();
        return Err(Error::new(
            UnetStatus::ModelIncompatible,
            format!(
                "model returned {k} classes of {out_h}x{out_w} for a {in_h}x{in_w} input; its metadata promised \
                 {classes} classes of {:?}",
                plan.output_shape()
            ),
        ));
    }
    if let Some(bad) = probs.iter().position(|p| !p.is_finite()) {
        return Err(Error::new(
            UnetStatus::RuntimeError,
            format!(
                "the network produced a non-finite probability (element {bad} of batch {batch}): the input values \
                 are too large for it; normalise the image (percentile normalisation) first"
            ),
        ));
    }
    Ok(())
}

fn mirrored(mut v: ArrayView4<f32>, up_down: bool, left_right: bool) -> ArrayView4<f32> {
    if up_down {
        v.invert_axis(ndarray::Axis(2));
    }
    if left_right {
        v.invert_axis(ndarray::Axis(3));
    }
    v
}

/// Copies the mirrored, normalised context of `tile` into `dst` `[channels, in_h, in_w]`.
fn fill_tile(image: &ImageView, norm: &Normalizer, plan: &TilePlan, tile: &Tile, dst: ArrayViewMut4Slice) {
    match image.pixels {
        Pixels::U8(p) => fill_tile_typed(p, image, norm, plan, tile, dst),
        Pixels::U16(p) => fill_tile_typed(p, image, norm, plan, tile, dst),
        Pixels::U32(p) => fill_tile_typed(p, image, norm, plan, tile, dst),
        Pixels::F32(p) => fill_tile_typed(p, image, norm, plan, tile, dst),
    }
}

type ArrayViewMut4Slice<'a> = ndarray::ArrayViewMut3<'a, f32>;

fn fill_tile_typed<T: Pixel>(
    data: &[T],
    image: &ImageView,
    norm: &Normalizer,
    plan: &TilePlan,
    tile: &Tile,
    mut dst: ArrayViewMut4Slice,
) {
    use rayon::prelude::*;
    let (_, in_w) = plan.input_shape();
    let halo = plan.halo as isize;
    let xs: Vec<usize> = (0..in_w).map(|ix| mirror(tile.x0 as isize - halo + ix as isize, image.width)).collect();
    for c in 0..image.channels {
        let mut plane = dst.index_axis_mut(ndarray::Axis(0), c);
        let rows = plane.as_slice_mut().expect("standard layout");
        // Bands of at least 128 rows: below that, handing rows to threads costs more than filling them.
        rows.par_chunks_mut(in_w).with_min_len(128).enumerate().for_each(|(iy, out)| {
            let y = mirror(tile.y0 as isize - halo + iy as isize, image.height);
            let row = &data[y * image.row_stride..];
            for (o, &x) in out.iter_mut().zip(&xs) {
                *o = norm.apply(c, row[x * image.channels + c].to_f32());
            }
        });
    }
}

/// Each given output buffer must hold `area` elements.
fn check_buffer_lengths(buffers: &[(&str, Option<usize>)], area: usize) -> Result<()> {
    for &(name, len) in buffers {
        if let Some(len) = len.filter(|&l| l < area) {
            return Err(Error::new(
                UnetStatus::BufferTooSmall,
                format!("{name} buffer holds {len} elements, the image has {area} pixels"),
            ));
        }
    }
    Ok(())
}

/// Post-processing settings after the model's recommendation filled what the caller left open: the one rule
/// [`Model::segment`] and [`instances_from_probabilities`] share.
struct Resolved {
    threshold: Option<f32>,
    min_size: usize,
    method: InstanceMethod,
}

impl Resolved {
    fn new(
        threshold: Option<f32>,
        min_size: usize,
        instances: Option<InstanceMethod>,
        recommended: Option<PostProcessing>,
    ) -> Result<Resolved> {
        let recommended = recommended.unwrap_or(PostProcessing::PLAIN);
        let threshold = threshold.or(recommended.threshold);
        if let Some(t) = threshold
            && !(t.is_finite() && t > 0.0 && t <= 1.0)
        {
            return Err(Error::invalid_argument(format!("threshold {t} is not in (0, 1]")));
        }
        let method = instances.unwrap_or(recommended.method);
        if let InstanceMethod::Watershed(w) = method {
            w.validate()?;
        }
        Ok(Resolved { threshold, min_size: if min_size == 0 { recommended.min_size } else { min_size }, method })
    }
}

/// The mask and instance labels of a foreground-probability map (one f32 channel, values in [0, 1]) with the
/// post-processing of [`Model::segment`]: the same threshold, instance method, connectivity and minimum size
/// (`recommended` fills what `options` leaves open; the network, tiling and normalisation fields are not used).
/// Without a threshold, foreground is P > 1 - P, the two-class argmax. For labelling again with other settings
/// without running the network, or labelling a probability map computed piecewise (images larger than memory).
/// Returns the instance count (0 without a labels buffer).
pub fn instances_from_probabilities(
    probabilities: &ImageView,
    recommended: Option<PostProcessing>,
    options: &SegmentOptions,
    mask: Option<&mut [u8]>,
    labels: Option<&mut [u32]>,
) -> Result<u32> {
    let Resolved { threshold, min_size, method } =
        Resolved::new(options.threshold, options.min_size, options.instances, recommended)?;
    let Pixels::F32(data) = probabilities.pixels else {
        return Err(Error::new(UnetStatus::UnsupportedDtype, "probabilities must be f32"));
    };
    if probabilities.channels != 1 {
        return Err(Error::new(
            UnetStatus::ChannelMismatch,
            format!("probabilities have one channel (P(foreground)), not {}", probabilities.channels),
        ));
    }
    let (width, height, area) = (probabilities.width, probabilities.height, probabilities.area());
    check_buffer_lengths(
        &[("mask", mask.as_ref().map(|b| b.len())), ("labels", labels.as_ref().map(|b| b.len()))],
        area,
    )?;
    let writer = OutputWriter { width, classes: 2, threshold, method };
    let (mut mask, mut labels) = (mask, labels);
    for y in 0..height {
        let row = &data[y * probabilities.row_stride..][..width];
        if let Some(x) = row.iter().position(|p| !(0.0..=1.0).contains(p)) {
            let status = if row[x].is_nan() { UnetStatus::NonFinitePixel } else { UnetStatus::InvalidArgument };
            return Err(Error::new(status, format!("probability at (x={x}, y={y}) is {}, not in [0, 1]", row[x])));
        }
        for (x, &p) in row.iter().enumerate() {
            let (foreground, class) = writer.classify(|k| if k == 1 { p } else { 1.0 - p });
            if let Some(m) = mask.as_deref_mut() {
                m[y * width + x] = class as u8;
            }
            if let Some(l) = labels.as_deref_mut() {
                l[y * width + x] = if class != 0 { foreground_marker(method, foreground) } else { 0 };
            }
        }
    }
    match labels {
        Some(l) => label_instances(&mut l[..area], width, height, method, options.connectivity, min_size),
        None => Ok(0),
    }
}

/// What every tile of one `segment` call shares.
#[derive(Clone, Copy)]
struct TilePass<'a> {
    image: &'a ImageView<'a>,
    normalizer: &'a Normalizer,
    test_time_augmentation: bool,
    writer: &'a OutputWriter,
}

/// Turns one tile's class probabilities into the requested outputs.
struct OutputWriter {
    width: usize,
    classes: usize,
    threshold: Option<f32>,
    /// The instance method, for the markers written into the labels buffer (seeds where the method wants them).
    method: InstanceMethod,
}

impl OutputWriter {
    fn write(
        &self,
        probs: ndarray::ArrayView3<f32>,
        tile: &Tile,
        probabilities: &mut Option<&mut [f32]>,
        mask: &mut Option<&mut [u8]>,
        labels: &mut Option<&mut [u32]>,
    ) {
        use rayon::prelude::*;
        // Each output row of the tile is a disjoint slice of each buffer: rows are written in parallel.
        struct Row<'a> {
            p: Option<&'a mut [f32]>,
            m: Option<&'a mut [u8]>,
            l: Option<&'a mut [u32]>,
        }
        let (y0, x0, w, h) = (tile.y0, tile.x0, tile.own_width, tile.own_height);
        fn rows_of<'a, T>(
            buf: &'a mut Option<&mut [T]>,
            width: usize,
            y0: usize,
            x0: usize,
            w: usize,
            h: usize,
        ) -> Vec<Option<&'a mut [T]>> {
            match buf.as_deref_mut() {
                Some(b) => b.chunks_mut(width).skip(y0).take(h).map(|r| Some(&mut r[x0..x0 + w])).collect(),
                None => (0..h).map(|_| None).collect(),
            }
        }
        let rows: Vec<Row> = rows_of(probabilities, self.width, y0, x0, w, h)
            .into_iter()
            .zip(rows_of(mask, self.width, y0, x0, w, h))
            .zip(rows_of(labels, self.width, y0, x0, w, h))
            .map(|((p, m), l)| Row { p, m, l })
            .collect();
        rows.into_par_iter().with_min_len(128).enumerate().for_each(|(oy, mut row)| {
            // Each class's probabilities of this row as a plain slice (the output is in standard layout).
            let class_rows: Vec<ndarray::ArrayView1<f32>> = (0..self.classes)
                .map(|k| probs.index_axis(ndarray::Axis(0), k).index_axis_move(ndarray::Axis(0), oy))
                .collect();
            for ox in 0..w {
                let (foreground, class) = self.classify(|k| class_rows[k][ox]);
                if let Some(p) = row.p.as_deref_mut() {
                    p[ox] = foreground;
                }
                if let Some(m) = row.m.as_deref_mut() {
                    m[ox] = class as u8;
                }
                if let Some(l) = row.l.as_deref_mut() {
                    l[ox] = if class != 0 { foreground_marker(self.method, foreground) } else { 0 };
                }
            }
        });
    }

    /// Foreground probability and class of one pixel.
    #[inline]
    fn classify(&self, p: impl Fn(usize) -> f32) -> (f32, usize) {
        if self.classes == 2 {
            let fg = p(1);
            let is_fg = match self.threshold {
                Some(t) => fg >= t,
                None => fg > p(0),
            };
            return (fg, usize::from(is_fg));
        }
        let argmax_from =
            |start: usize| (start..self.classes).fold(start, |best, k| if p(k) > p(best) { k } else { best });
        let fg = 1.0 - p(0);
        let class = match self.threshold {
            Some(t) if fg >= t => argmax_from(1),
            Some(_) => 0,
            None => argmax_from(0),
        };
        (fg, class)
    }
}
