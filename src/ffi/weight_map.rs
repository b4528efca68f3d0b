//! unet_weight_map across the C ABI.

use std::mem::size_of;

use super::{
    Versioned, ffi_entry, frozen_v1_size, null, read_versioned,
    segment::{UnetImage, byte_range, check_no_overlap, image_view, output, pixels_range},
};
use crate::{
    error::{Result, UnetStatus},
    weight_map::{ClassBalance, LabelView, WeightMapOptions, weight_map},
};

/// Class balance of the weight map (values of `UnetWeightMapOptions.balance`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnetClassBalance {
    /// w_c = 1.
    None = 0,
    /// w_c = N / (2 N_class) over the target: balanced classes get 1.
    InverseFrequency = 1,
    /// w_c = background_weight or foreground_weight.
    Explicit = 2,
}
super::u32_enum!(UnetClassBalance { None, InverseFrequency, Explicit });

/// Weight-map options. Initialise with unet_weight_map_options_init().
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UnetWeightMapOptions {
    /// sizeof(UnetWeightMapOptions).
    pub struct_size: u32,
    /// Border term amplitude (paper: 10); 0 <= w0 <= 1e6.
    pub w0: f32,
    /// Border term width in pixels (paper: about 5); 0 < sigma <= 1e4.
    pub sigma: f32,
    /// A UnetClassBalance value (default: inverse frequency).
    pub balance: u32,
    /// Class weights for UNET_CLASS_BALANCE_EXPLICIT.
    pub background_weight: f32,
    pub foreground_weight: f32,
    /// Width in pixels of the background line separating touching cells in the target (default 2; 0 = none).
    pub border_width: u32,
}

impl Versioned for UnetWeightMapOptions {
    const V1_SIZE: usize = frozen_v1_size!(28, UnetWeightMapOptions, border_width: u32);
    fn defaults() -> Self {
        let d = WeightMapOptions::default();
        UnetWeightMapOptions {
            struct_size: size_of::<UnetWeightMapOptions>() as u32,
            w0: d.w0,
            sigma: d.sigma,
            balance: UnetClassBalance::InverseFrequency as u32,
            background_weight: 1.0,
            foreground_weight: 1.0,
            border_width: d.border_width as u32,
        }
    }
}

/// Caller-owned outputs of unet_weight_map, each `width * height` elements row-major, or NULL when not wanted.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UnetWeightMapOutputs {
    /// sizeof(UnetWeightMapOutputs).
    pub struct_size: u32,
    /// w(x) = w_c(x) + w0 exp(-(d1 + d2)^2 / (2 sigma^2)); the border term only on background pixels of the target.
    pub weights: *mut f32,
    pub weights_len: usize,
    /// Training target: 1 = cell, 0 = background, touching cells split by a background line.
    pub target: *mut u8,
    pub target_len: usize,
    /// Set by unet_weight_map: distinct cells (label values) in the target.
    pub cells: u64,
    /// Set by unet_weight_map: cell pixels turned into background to separate touching cells.
    pub separation_pixels: u64,
}

impl Versioned for UnetWeightMapOutputs {
    const V1_SIZE: usize = frozen_v1_size!(56, UnetWeightMapOutputs, separation_pixels: u64);
    fn defaults() -> Self {
        UnetWeightMapOutputs {
            struct_size: size_of::<UnetWeightMapOutputs>() as u32,
            weights: std::ptr::null_mut(),
            weights_len: 0,
            target: std::ptr::null_mut(),
            target_len: 0,
            cells: 0,
            separation_pixels: 0,
        }
    }
}

/// Fills `options` with defaults (w0 10, sigma 5, inverse-frequency balance, border width 2).
///
/// # Safety
/// `options` must be NULL or point to a writable UnetWeightMapOptions.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unet_weight_map_options_init(options: *mut UnetWeightMapOptions) -> UnetStatus {
    ffi_entry!("unet_weight_map_options_init", {
        // SAFETY: the caller passes NULL or a writable struct.
        unsafe { super::try_write(options, UnetWeightMapOptions::defaults(), "options") }
    })
}

fn weight_map_options(o: &UnetWeightMapOptions) -> Result<WeightMapOptions> {
    let balance = match UnetClassBalance::from_field(o.balance, "options->balance")? {
        UnetClassBalance::None => ClassBalance::None,
        UnetClassBalance::InverseFrequency => ClassBalance::InverseFrequency,
        UnetClassBalance::Explicit => {
            ClassBalance::Explicit { background: o.background_weight, foreground: o.foreground_weight }
        }
    };
    let options = WeightMapOptions { w0: o.w0, sigma: o.sigma, balance, border_width: o.border_width as usize };
    options.validate()?;
    Ok(options)
}

/// Computes the paper's loss weight map and training target from instance labels: `labels` is a one-channel
/// image of dtype u8, u16 or u32 (0 = background; label values need not be consecutive). `options` may be NULL.
/// d1 and d2 are exact Euclidean distances to the nearest pixel of the nearest and second-nearest cell; only
/// background pixels of the target (separation lines included) receive the border term. The outputs must not
/// overlap the labels or each other (UNET_STATUS_INVALID_ARGUMENT).
///
/// # Safety
/// Every pointer must be NULL or valid for what its type and the documentation above describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unet_weight_map(
    labels: *const UnetImage,
    options: *const UnetWeightMapOptions,
    outputs: *mut UnetWeightMapOutputs,
) -> UnetStatus {
    ffi_entry!("unet_weight_map", {
        let labels = unsafe { read_versioned(labels, "labels") }?.ok_or_else(|| null("labels"))?;
        let opts = unsafe { read_versioned(options, "options") }?.unwrap_or_else(UnetWeightMapOptions::defaults);
        if outputs.is_null() {
            return Err(null("outputs"));
        }
        // SAFETY: non-NULL; read_versioned checks alignment and the version.
        let outs = unsafe { read_versioned(outputs, "outputs") }?.expect("checked for NULL");
        let view = unsafe { image_view(&labels) }?;
        let label_view = LabelView::new(view)?;
        let options = weight_map_options(&opts)?;
        let area = view.area();
        let weights = unsafe { output(outs.weights, outs.weights_len, area, "weights") }?;
        let target = unsafe { output(outs.target, outs.target_len, area, "target") }?;
        // Outputs over the labels or over each other would be read while written: garbage with status OK.
        check_no_overlap(&[
            ("labels->data", pixels_range(&view.pixels)),
            ("outputs->weights", weights.as_deref().map(byte_range)),
            ("outputs->target", target.as_deref().map(byte_range)),
        ])?;
        let report = weight_map(&label_view, &options, weights, target)?;
        // SAFETY: validated above.
        unsafe {
            (*outputs).cells = report.cells as u64;
            (*outputs).separation_pixels = report.separation_pixels as u64;
        }
        Ok(())
    })
}
