//! unet_segment across the C ABI: a strided image view in, optional caller-owned outputs.

use std::{ffi::c_void, mem::size_of};

use super::{Versioned, check_aligned, ffi_entry, frozen_v1_size, model::UnetModel, null, read_versioned, try_ref};
use crate::{
    error::{Error, Result, UnetStatus},
    image::{ImageView, Pixels, checked_area},
    instances::{InstanceRequest, PostProcessing, WatershedOverrides, resolve_instances},
    labels::Connectivity,
    metadata::Normalization,
    object_size::ObjectSize,
    segment::{Progress, SegmentOptions, SegmentOutputs, instances_from_probabilities},
    tiling::DEFAULT_MEMORY_BUDGET,
};

/// Pixel types (values of `UnetImage.dtype`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnetDtype {
    U8 = 1,
    U16 = 2,
    F32 = 3,
    /// Label images for unet_weight_map; unet_segment accepts it too (values are used as f32, exact below 2^24).
    U32 = 4,
}
super::u32_enum!(UnetDtype { U8, U16, F32, U32 });

/// A borrowed image: `height` rows of `width` pixels of `channels` interleaved values, rows `row_stride_bytes`
/// apart. f32 images must not contain NaN or infinity (rejected with UNET_STATUS_NON_FINITE_PIXEL).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UnetImage {
    /// sizeof(UnetImage).
    pub struct_size: u32,
    /// A UnetDtype value.
    pub dtype: u32,
    pub data: *const c_void,
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    /// Bytes from one row to the next; 0 means packed (width * channels * element size).
    pub row_stride_bytes: usize,
}

impl Versioned for UnetImage {
    const V1_SIZE: usize = frozen_v1_size!(48, UnetImage, row_stride_bytes: usize);
    fn defaults() -> Self {
        UnetImage {
            struct_size: size_of::<UnetImage>() as u32,
            dtype: 0,
            data: std::ptr::null(),
            width: 0,
            height: 0,
            channels: 1,
            row_stride_bytes: 0,
        }
    }
}

/// Input normalisation (values of `UnetSegmentOptions.normalization`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnetNormalization {
    /// What the model's metadata says (percentile 1-99.8 unless stated otherwise).
    Model = 0,
    /// Pixels as they are.
    None = 1,
    /// Per channel (x - P_low) / (P_high - P_low) with the percentiles below.
    Percentile = 2,
}
super::u32_enum!(UnetNormalization { Model, None, Percentile });

/// How the foreground becomes instances (values of `UnetSegmentOptions.instances`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnetInstances {
    /// What the model's metadata recommends (chosen on validation data), else connected components.
    Model = 0,
    /// Connected components of the foreground: touching cells stay one instance.
    Components = 1,
    /// Seeded watershed on the distance transform of the foreground: splits touching cells at their neck.
    Watershed = 2,
}
super::u32_enum!(UnetInstances { Model, Components, Watershed });

/// Called after each step with (user_data, done, total); return 0 to continue, non-zero to cancel
/// (unet_segment then returns UNET_STATUS_CANCELLED). Called on the thread that called unet_segment.
pub type UnetProgressCallback = Option<unsafe extern "C" fn(user_data: *mut c_void, done: usize, total: usize) -> i32>;

/// Segmentation options. Initialise with unet_segment_options_init().
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UnetSegmentOptions {
    /// sizeof(UnetSegmentOptions).
    pub struct_size: u32,
    /// A UnetNormalization value.
    pub normalization: u32,
    /// Percentiles for UNET_NORMALIZATION_PERCENTILE (0 <= low < high <= 100).
    pub percentile_low: f32,
    pub percentile_high: f32,
    /// Foreground when P(foreground) >= threshold; 0 = the model's recommended threshold, else the most probable
    /// class (argmax).
    pub threshold: f32,
    /// 4 or 8: pixel connectivity of instances.
    pub connectivity: u32,
    /// Instances with fewer pixels are removed from the labels; 0 = the model's recommended minimum, else none.
    pub min_size: u64,
    /// Bytes the network's activations may use; decides the tile size. 0 = default: 1 GiB on the CPU, on a GPU a
    /// quarter of its free memory (1-16 GiB). A GPU out of memory is retried with fewer, then smaller tiles.
    pub memory_budget_bytes: u64,
    /// Largest output tile edge in pixels; 0 = from the memory budget.
    pub max_tile: u32,
    /// Tiles per ONNX Runtime call; 0 = automatic.
    pub tiles_per_run: u32,
    pub progress: UnetProgressCallback,
    pub progress_user_data: *mut c_void,
    /// Since 0.2. A UnetInstances value: how the foreground becomes instance labels. With UNET_INSTANCES_MODEL,
    /// watershed fields that are given (not negative) adjust the model's watershed; if the model recommends none,
    /// that is UNET_STATUS_INVALID_ARGUMENT (the same rule as the CLI and Python). With UNET_INSTANCES_COMPONENTS
    /// they are UNET_STATUS_INVALID_ARGUMENT too (components have no such parameters).
    pub instances: u32,
    /// Since 0.2. Watershed: minimum height (pixels of distance) of a maximum above its saddle to seed its own
    /// instance; larger merges more. Negative = the model's recommendation, else 2.
    pub watershed_h: f32,
    /// Since 0.2. Watershed: Gaussian smoothing (pixels) of the distance map; 0 = none. Negative = the model's
    /// recommendation, else 1.
    pub watershed_smoothing: f32,
    /// Since 0.3. Non-zero: test-time augmentation, the average of the network on the image and its three mirror
    /// images (4x the network time; smoother borders, fewer merged cells).
    pub test_time_augmentation: u32,
    /// Since 0.3. Watershed markers: in (0, 1], the regions where P(foreground) >= this value (watershed_h is then
    /// unused); 0 = the maxima of the distance map (watershed_h). Negative = the model's recommendation (0 when
    /// watershed_h is given).
    pub watershed_seed: f32,
    /// Since 0.4. The channel (from 0) of a multi-channel image that a one-channel model segments, as it is;
    /// negative = the colour rule (an RGB/RGBA image's luminance; otherwise the channels must match the model's).
    pub channel: i32,
    /// Since 0.4. The typical diameter of the image's objects in pixels: the image is resampled so that they match
    /// the size the model was trained at (unet_model_info's object_size), segmented, and the outputs mapped back
    /// (probabilities interpolated, labels from the nearest model pixel inside the foreground). 0 = the image as
    /// it is; negative = measure it: a first pass, and a second at the matching scale when the median instance
    /// diameter is more than 1.5x off. Post-processing runs at the model's scale (watershed parameters in its
    /// pixels; min_size is in the image's pixels).
    pub object_size: f32,
    /// Since 0.4. The image's pixel size in micrometres (its calibration); 0 = unknown. When the model records
    /// the pixel size it was trained at (unet_model_info's pixel_size) and object_size is 0, the image is
    /// resampled by the ratio of the two.
    pub pixel_size: f32,
}

impl Versioned for UnetSegmentOptions {
    const V1_SIZE: usize = frozen_v1_size!(64, UnetSegmentOptions, progress_user_data: *mut c_void);
    fn defaults() -> Self {
        UnetSegmentOptions {
            struct_size: size_of::<UnetSegmentOptions>() as u32,
            normalization: UnetNormalization::Model as u32,
            percentile_low: 1.0,
            percentile_high: 99.8,
            threshold: 0.0,
            connectivity: 4,
            min_size: 0,
            memory_budget_bytes: 0,
            max_tile: 0,
            tiles_per_run: 0,
            progress: None,
            progress_user_data: std::ptr::null_mut(),
            instances: UnetInstances::Model as u32,
            watershed_h: -1.0,
            watershed_smoothing: -1.0,
            test_time_augmentation: 0,
            watershed_seed: -1.0,
            channel: -1,
            object_size: 0.0,
            pixel_size: 0.0,
        }
    }
}

/// Caller-owned outputs, each `width * height` elements row-major, or NULL when not wanted.
/// Buffers must not overlap the image or each other.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UnetOutputs {
    /// sizeof(UnetOutputs).
    pub struct_size: u32,
    /// Foreground probability, 1 - P(background).
    pub probabilities: *mut f32,
    pub probabilities_len: usize,
    /// Class per pixel: 0 = background, 1 = foreground (two-class models).
    pub mask: *mut u8,
    pub mask_len: usize,
    /// Instance labels 1..label_count, 0 = background (connected components of the foreground).
    pub labels: *mut u32,
    pub labels_len: usize,
    /// Set by unet_segment: number of instances in `labels` (0 when labels is NULL).
    pub label_count: u32,
    /// Since 0.4. Set by unet_segment: model pixels per image pixel the network ran at (1 = the image as it is;
    /// see options->object_size).
    pub scale: f32,
    /// Since 0.4. Set by unet_segment: the median instance diameter (pixels) an automatic object size measured
    /// in its first pass; 0 when none was measured.
    pub measured_object_size: f32,
}

impl Versioned for UnetOutputs {
    const V1_SIZE: usize = frozen_v1_size!(64, UnetOutputs, label_count: u32);
    fn defaults() -> Self {
        UnetOutputs {
            struct_size: size_of::<UnetOutputs>() as u32,
            probabilities: std::ptr::null_mut(),
            probabilities_len: 0,
            mask: std::ptr::null_mut(),
            mask_len: 0,
            labels: std::ptr::null_mut(),
            labels_len: 0,
            label_count: 0,
            scale: 1.0,
            measured_object_size: 0.0,
        }
    }
}

/// Fills the first v0.1 fields (64 bytes) of `options` with defaults and sets `struct_size` to that: the symbol
/// programs built against the 0.1 header call, whose struct is that small. Code compiled against this header
/// calls unet_segment_options_init_sized() through the macro of the same name below, which fills the whole struct.
///
/// # Safety
/// Every pointer must be NULL or valid for what its type and the documentation above describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unet_segment_options_init(options: *mut UnetSegmentOptions) -> UnetStatus {
    // SAFETY: forwarded contract; a v0.1 caller's struct has V1_SIZE bytes.
    ffi_entry!("unet_segment_options_init", { unsafe { init_sized(options, UnetSegmentOptions::V1_SIZE) } })
}

/// Fills `options`, a struct of `struct_size` bytes (sizeof as the caller's header has it, at least the v0.1
/// size), with defaults: only the fields the caller's version has are written, and `struct_size` becomes the size
/// this library understands of it.
///
/// # Safety
/// `options` must be NULL or point to `struct_size` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unet_segment_options_init_sized(
    options: *mut UnetSegmentOptions,
    struct_size: usize,
) -> UnetStatus {
    // SAFETY: forwarded contract.
    ffi_entry!("unet_segment_options_init_sized", { unsafe { init_sized(options, struct_size) } })
}

/// # Safety
/// `options` must be NULL or point to `struct_size` writable bytes.
unsafe fn init_sized(options: *mut UnetSegmentOptions, struct_size: usize) -> Result<()> {
    {
        if options.is_null() {
            return Err(null("options"));
        }
        check_aligned(options, "options")?;
        if struct_size < UnetSegmentOptions::V1_SIZE {
            return Err(Error::new(
                UnetStatus::StructVersion,
                format!(
                    "struct size {struct_size} is smaller than the first version's {}",
                    UnetSegmentOptions::V1_SIZE
                ),
            ));
        }
        let n = struct_size.min(size_of::<UnetSegmentOptions>());
        let value = UnetSegmentOptions { struct_size: n as u32, ..UnetSegmentOptions::defaults() };
        // SAFETY: non-NULL, aligned, and the caller vouches for `struct_size` >= n bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(&value as *const UnetSegmentOptions as *const u8, options as *mut u8, n)
        };
        Ok(())
    }
}

/// Describes a packed image (row stride = width * channels * element size).
///
/// # Safety
/// Every pointer must be NULL or valid for what its type and the documentation above describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unet_image_init(
    image: *mut UnetImage,
    dtype: u32,
    data: *const c_void,
    width: usize,
    height: usize,
    channels: usize,
) -> UnetStatus {
    ffi_entry!("unet_image_init", {
        let value = UnetImage { dtype, data, width, height, channels, ..UnetImage::defaults() };
        // SAFETY: the caller passes NULL or a writable struct.
        unsafe { super::try_write(image, value, "image") }?;
        Ok(())
    })
}

/// Validates the image struct and turns it into a view over exactly the bytes it covers.
///
/// # Safety
/// `image.data` must point to the rows the struct describes.
pub(crate) unsafe fn image_view<'a>(image: &UnetImage) -> Result<ImageView<'a>> {
    let dtype = UnetDtype::from_u32(image.dtype).ok_or_else(|| {
        Error::new(
            UnetStatus::UnsupportedDtype,
            format!("image dtype {} is not u8 (1), u16 (2), f32 (3) or u32 (4)", image.dtype),
        )
    })?;
    let elem = match dtype {
        UnetDtype::U8 => 1usize,
        UnetDtype::U16 => 2,
        UnetDtype::F32 | UnetDtype::U32 => 4,
    };
    checked_area(image.width, image.height)?;
    if image.channels == 0 || image.channels > crate::image::MAX_CHANNELS {
        return Err(Error::new(UnetStatus::InvalidSize, format!("channel count {} is not in 1..=64", image.channels)));
    }
    if image.data.is_null() {
        return Err(null("image->data"));
    }
    let row_bytes = image.width * image.channels * elem; // bounded by checked_area and MAX_CHANNELS
    let stride = if image.row_stride_bytes == 0 { row_bytes } else { image.row_stride_bytes };
    if stride < row_bytes {
        return Err(Error::new(
            UnetStatus::InvalidStride,
            format!("row stride {stride} bytes is smaller than a row ({row_bytes} bytes)"),
        ));
    }
    if !stride.is_multiple_of(elem) {
        return Err(Error::new(
            UnetStatus::InvalidStride,
            format!("row stride {stride} bytes is not a multiple of {elem}"),
        ));
    }
    let total = (image.height - 1)
        .checked_mul(stride)
        .and_then(|n| n.checked_add(row_bytes))
        .filter(|&n| n <= isize::MAX as usize && (image.data as usize).checked_add(n).is_some())
        .ok_or_else(|| {
            Error::new(UnetStatus::SizeOverflow, format!("{} rows of {stride} bytes overflow", image.height))
        })?;
    let n = total / elem;
    let stride = stride / elem;
    // SAFETY: the caller vouches that the described rows are readable; alignment is checked per type.
    let pixels = unsafe {
        match dtype {
            UnetDtype::U8 => Pixels::U8(std::slice::from_raw_parts(image.data as *const u8, n)),
            UnetDtype::U16 => {
                check_aligned(image.data as *const u16, "image->data")?;
                Pixels::U16(std::slice::from_raw_parts(image.data as *const u16, n))
            }
            UnetDtype::F32 => {
                check_aligned(image.data as *const f32, "image->data")?;
                Pixels::F32(std::slice::from_raw_parts(image.data as *const f32, n))
            }
            UnetDtype::U32 => {
                check_aligned(image.data as *const u32, "image->data")?;
                Pixels::U32(std::slice::from_raw_parts(image.data as *const u32, n))
            }
        }
    };
    ImageView::new(pixels, image.width, image.height, image.channels, stride)
}

/// An optional output buffer of at least `area` elements.
///
/// # Safety
/// A non-NULL `ptr` must point to `len` writable elements.
pub(crate) unsafe fn output<'a, T>(ptr: *mut T, len: usize, area: usize, name: &str) -> Result<Option<&'a mut [T]>> {
    if ptr.is_null() {
        return Ok(None);
    }
    check_aligned(ptr, name)?;
    if len < area {
        return Err(Error::new(
            UnetStatus::BufferTooSmall,
            format!("outputs->{name}_len is {len}, the image has {area} pixels"),
        ));
    }
    // SAFETY: see the contract; only the first `area` elements are used.
    Ok(Some(unsafe { std::slice::from_raw_parts_mut(ptr, area) }))
}

fn segment_options<'p>(o: &UnetSegmentOptions, recommended: Option<PostProcessing>) -> Result<SegmentOptions<'p>> {
    let normalization = match UnetNormalization::from_field(o.normalization, "options->normalization")? {
        UnetNormalization::Model => None,
        UnetNormalization::None => Some(Normalization::None),
        UnetNormalization::Percentile => {
            let n = Normalization::Percentile { low: o.percentile_low, high: o.percentile_high };
            n.validate()?;
            Some(n)
        }
    };
    let connectivity = match o.connectivity {
        4 => Connectivity::Four,
        8 => Connectivity::Eight,
        c => return Err(Error::invalid_argument(format!("options->connectivity is {c}, expected 4 or 8"))),
    };
    let threshold = match o.threshold {
        0.0 => None,
        t if t.is_finite() && t > 0.0 && t <= 1.0 => Some(t),
        t => return Err(Error::invalid_argument(format!("options->threshold {t} is not 0 (argmax) or in (0, 1]"))),
    };
    let memory_budget = match o.memory_budget_bytes {
        0 => DEFAULT_MEMORY_BUDGET,
        b => usize::try_from(b).map_err(|_| Error::invalid_argument("memory budget exceeds the address space"))?,
    };
    // Negative watershed parameters leave the choice to the model (NaN is "given", and refused as invalid).
    let given = |v: f32| if v < 0.0 { None } else { Some(v) };
    let overrides = WatershedOverrides {
        h: given(o.watershed_h),
        smoothing: given(o.watershed_smoothing),
        seed: given(o.watershed_seed),
    };
    let request = match UnetInstances::from_field(o.instances, "options->instances")? {
        UnetInstances::Model => InstanceRequest::Model,
        UnetInstances::Components => InstanceRequest::Components,
        UnetInstances::Watershed => InstanceRequest::Watershed,
    };
    let instances = resolve_instances(request, overrides, recommended)?;
    Ok(SegmentOptions {
        threshold,
        min_size: usize::try_from(o.min_size).unwrap_or(usize::MAX),
        instances,
        connectivity,
        memory_budget,
        max_tile: (o.max_tile > 0).then_some(o.max_tile as usize),
        tiles_per_run: o.tiles_per_run as usize,
        normalization,
        test_time_augmentation: o.test_time_augmentation != 0,
        channel: usize::try_from(o.channel).ok(),
        object_size: match o.object_size {
            0.0 => ObjectSize::AsIs,
            d if d < 0.0 => ObjectSize::Auto,
            d => ObjectSize::Pixels(d), // NaN and other non-diameters are refused by the library
        },
        pixel_size: (o.pixel_size != 0.0).then_some(o.pixel_size), // negative and NaN: refused by the library
        progress: None,
    })
}

/// Segments `image` (u8, u16, u32 or f32) with `model` (overlap-tile, seamless) into the non-NULL buffers of
/// `outputs`: at least one is required, and none may overlap the image or another (UNET_STATUS_INVALID_ARGUMENT).
/// `options` may be NULL (defaults). Many threads may call this with the same model at once.
/// The image's channels must be the model's input channels, except that a one-channel model takes one chosen
/// channel of any image (options->channel), or else an RGB or RGBA image (3 or 4 channels) as its luminance
/// 0.299 R + 0.587 G + 0.114 B (BT.601; alpha ignored; rounded in the image's integer type), the rule every host
/// shares; any other mismatch is UNET_STATUS_CHANNEL_MISMATCH.
///
/// # Safety
/// Every pointer must be NULL or valid for what its type and the documentation above describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unet_segment(
    model: *const UnetModel,
    image: *const UnetImage,
    options: *const UnetSegmentOptions,
    outputs: *mut UnetOutputs,
) -> UnetStatus {
    ffi_entry!("unet_segment", {
        let model = unsafe { try_ref(model, "model") }?;
        let image = unsafe { read_versioned(image, "image") }?.ok_or_else(|| null("image"))?;
        let opts = unsafe { read_versioned(options, "options") }?.unwrap_or_else(UnetSegmentOptions::defaults);
        if outputs.is_null() {
            return Err(null("outputs"));
        }
        let outs = unsafe { read_outputs(outputs) }?;
        let view = unsafe { image_view(&image) }?;
        let area = view.area();
        let probabilities = unsafe { output(outs.probabilities, outs.probabilities_len, area, "probabilities") }?;
        let mask = unsafe { output(outs.mask, outs.mask_len, area, "mask") }?;
        let labels = unsafe { output(outs.labels, outs.labels_len, area, "labels") }?;
        if probabilities.is_none() && mask.is_none() && labels.is_none() {
            return Err(Error::invalid_argument(
                "no output requested: set at least one of outputs->probabilities, mask, labels",
            ));
        }
        check_no_overlap(&[
            ("image->data", pixels_range(&view.pixels)),
            ("outputs->probabilities", probabilities.as_deref().map(byte_range)),
            ("outputs->mask", mask.as_deref().map(byte_range)),
            ("outputs->labels", labels.as_deref().map(byte_range)),
        ])?;
        let mut segment_opts = segment_options(&opts, model.model.metadata().postprocessing)?;
        let mut callback = |p: Progress| match opts.progress {
            // SAFETY: the caller supplied this function and its user data together.
            Some(f) => unsafe { f(opts.progress_user_data, p.done, p.total) == 0 },
            None => true,
        };
        segment_opts.progress = Some(&mut callback);
        let report = model.model.segment(&view, segment_opts, SegmentOutputs { probabilities, mask, labels })?;
        // SAFETY: `outputs` was validated by read_outputs; fields after the caller's struct_size are not written.
        unsafe {
            (*outputs).label_count = report.label_count;
            if outs.struct_size as usize >= std::mem::offset_of!(UnetOutputs, measured_object_size) + 4 {
                (*outputs).scale = report.scale as f32;
                (*outputs).measured_object_size = report.measured_object_size.unwrap_or(0.0);
            }
        }
        Ok(())
    })
}

/// The mask and/or instance labels of a foreground-probability map, with unet_segment's post-processing and
/// without running a network: to label again with another threshold or instance method, or to label a probability
/// map computed piece by piece (an image larger than memory, with each piece's context). `probabilities`: one
/// UNET_DTYPE_F32 channel, values in [0, 1]. `options` may be NULL; only threshold (0 = the model's, else
/// P > 1 - P), connectivity, min_size, instances and the watershed fields are used. `model` may be NULL: nothing is
/// recommended then (threshold 0 means P > 1 - P, instances "model" means connected components). `outputs`:
/// probabilities must be NULL, at least one of mask and labels given, none overlapping the input or another;
/// label_count is set.
///
/// # Safety
/// Every pointer must be NULL or valid for what its type and the documentation above describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unet_instances(
    model: *const UnetModel,
    probabilities: *const UnetImage,
    options: *const UnetSegmentOptions,
    outputs: *mut UnetOutputs,
) -> UnetStatus {
    ffi_entry!("unet_instances", {
        let recommended =
            if model.is_null() { None } else { unsafe { try_ref(model, "model") }?.model.metadata().postprocessing };
        let image = unsafe { read_versioned(probabilities, "probabilities") }?.ok_or_else(|| null("probabilities"))?;
        let opts = unsafe { read_versioned(options, "options") }?.unwrap_or_else(UnetSegmentOptions::defaults);
        if outputs.is_null() {
            return Err(null("outputs"));
        }
        let outs = unsafe { read_outputs(outputs) }?;
        if !outs.probabilities.is_null() {
            return Err(Error::invalid_argument(
                "outputs->probabilities must be NULL: unet_instances reads probabilities, it does not write them",
            ));
        }
        let view = unsafe { image_view(&image) }?;
        let area = view.area();
        let mask = unsafe { output(outs.mask, outs.mask_len, area, "mask") }?;
        let labels = unsafe { output(outs.labels, outs.labels_len, area, "labels") }?;
        if mask.is_none() && labels.is_none() {
            return Err(Error::invalid_argument("no output requested: set outputs->mask and/or outputs->labels"));
        }
        check_no_overlap(&[
            ("probabilities->data", pixels_range(&view.pixels)),
            ("outputs->mask", mask.as_deref().map(byte_range)),
            ("outputs->labels", labels.as_deref().map(byte_range)),
        ])?;
        let segment_opts = segment_options(&opts, recommended)?;
        let count = instances_from_probabilities(&view, recommended, &segment_opts, mask, labels)?;
        // SAFETY: `outputs` was validated by read_outputs.
        unsafe { (*outputs).label_count = count };
        Ok(())
    })
}

/// The bytes a slice covers, as addresses [start, end).
pub(super) fn byte_range<T>(s: &[T]) -> (usize, usize) {
    let start = s.as_ptr() as usize;
    (start, start + std::mem::size_of_val(s))
}

pub(super) fn pixels_range(p: &Pixels) -> Option<(usize, usize)> {
    Some(match p {
        Pixels::U8(s) => byte_range(s),
        Pixels::U16(s) => byte_range(s),
        Pixels::U32(s) => byte_range(s),
        Pixels::F32(s) => byte_range(s),
    })
}

/// Outputs must not overlap the image or each other: writes would corrupt the input while it is being read, or one
/// result would overwrite another.
pub(super) fn check_no_overlap(buffers: &[(&str, Option<(usize, usize)>)]) -> Result<()> {
    for (i, (a, ra)) in buffers.iter().enumerate() {
        for (b, rb) in &buffers[i + 1..] {
            if let (Some((s1, e1)), Some((s2, e2))) = (ra, rb)
                && s1 < e2
                && s2 < e1
            {
                return Err(Error::invalid_argument(format!("{a} and {b} overlap in memory: give separate buffers")));
            }
        }
    }
    Ok(())
}

unsafe fn read_outputs(outputs: *mut UnetOutputs) -> Result<UnetOutputs> {
    // SAFETY: non-NULL (checked by the caller); read_versioned checks alignment and the version.
    Ok(unsafe { read_versioned(outputs, "outputs") }?.expect("checked for NULL"))
}
