//! Model handles across the C ABI.

use std::{
    ffi::{CString, c_char},
    mem::size_of,
};

use super::{
    Versioned, cstr_to_path, ffi_entry, frozen_v1_size, null, opt_cstr, read_versioned, try_ref, write_versioned,
};
use crate::{
    error::{Error, UnetStatus},
    model::{Model, ModelOptions},
    postprocessing::PostProcessing,
    provider::Provider,
};

/// Execution providers (values of `UnetModelOptions.provider` and `UnetModelInfo.provider`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnetProvider {
    /// CUDA when ONNX Runtime has it and it starts, else the CPU (the reason is in UnetModelInfo).
    Auto = 0,
    Cpu = 1,
    /// CUDA or an error: never falls back.
    Cuda = 2,
}

super::u32_enum!(UnetProvider { Auto, Cpu, Cuda });

impl UnetProvider {
    pub(crate) fn provider(self) -> Provider {
        match self {
            UnetProvider::Auto => Provider::Auto,
            UnetProvider::Cpu => Provider::Cpu,
            UnetProvider::Cuda => Provider::Cuda,
        }
    }

    pub(crate) fn from_provider(p: Provider) -> u32 {
        match p {
            Provider::Auto => UnetProvider::Auto as u32,
            Provider::Cpu => UnetProvider::Cpu as u32,
            Provider::Cuda => UnetProvider::Cuda as u32,
        }
    }
}

/// How to load a model. Initialise with unet_model_options_init().
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UnetModelOptions {
    /// sizeof(UnetModelOptions).
    pub struct_size: u32,
    /// A UnetProvider value.
    pub provider: u32,
    /// ONNX Runtime intra-op threads; 0 = one per core.
    pub threads: u32,
    /// CUDA device ordinal.
    pub cuda_device: i32,
    /// ONNX Runtime library (file or folder); NULL searches: UNET_ORT_LIB, the folder of libunet.so, an installed
    /// Python onnxruntime package (found by where the interpreters on PATH live; no program is ever run), the
    /// system loader. The search stops at the first library that loads.
    pub ort_library_path: *const c_char,
}

impl Versioned for UnetModelOptions {
    const V1_SIZE: usize = frozen_v1_size!(24, UnetModelOptions, ort_library_path: *const c_char);
    fn defaults() -> Self {
        UnetModelOptions {
            struct_size: size_of::<UnetModelOptions>() as u32,
            provider: UnetProvider::Auto as u32,
            threads: 0,
            cuda_device: 0,
            ort_library_path: std::ptr::null(),
        }
    }
}

/// A loaded model. Create with unet_model_load*, release with unet_model_free. Safe to share between threads.
pub struct UnetModel {
    pub(crate) model: Model,
    strings: InfoStrings,
}

/// Strings handed out by unet_model_info, owned by the model so their pointers stay valid.
struct InfoStrings {
    fallback_reason: Option<CString>,
    normalization: CString,
    class_names: CString,
    provenance: CString,
    source: CString,
    ort_version: CString,
    ort_library: CString,
    postprocessing: CString,
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

impl UnetModel {
    fn new(model: Model) -> Box<UnetModel> {
        let meta = model.metadata();
        let strings = InfoStrings {
            fallback_reason: model.provider().fallback_reason.as_deref().map(cstring),
            normalization: cstring(&meta.normalization.to_meta()),
            class_names: cstring(&meta.class_names.join(",")),
            provenance: cstring(&meta.provenance),
            source: cstring(model.source()),
            ort_version: cstring(&model.runtime().version),
            ort_library: cstring(&model.runtime().library_path.display().to_string()),
            postprocessing: cstring(&meta.postprocessing.unwrap_or(PostProcessing::PLAIN).to_meta()),
        };
        Box::new(UnetModel { model, strings })
    }
}

impl Versioned for UnetModelInfo {
    const V1_SIZE: usize = frozen_v1_size!(96, UnetModelInfo, ort_library: *const c_char);
    fn defaults() -> Self {
        let null = std::ptr::null();
        UnetModelInfo {
            struct_size: size_of::<UnetModelInfo>() as u32,
            provider: 0,
            fallback_reason: null,
            in_channels: 0,
            classes: 0,
            base_width: 0,
            depth: 0,
            halo: 0,
            size_step: 0,
            size_offset: 0,
            min_input: 0,
            normalization: null,
            class_names: null,
            provenance: null,
            source: null,
            ort_version: null,
            ort_library: null,
            postprocessing: null,
            object_size: crate::metadata::DEFAULT_OBJECT_SIZE,
            pixel_size: 0.0,
        }
    }
}

/// What a loaded model is and how it runs. Strings are owned by the model and valid until unet_model_free.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UnetModelInfo {
    /// sizeof(UnetModelInfo), set by the caller (and never changed): fields beyond it are not written.
    pub struct_size: u32,
    /// The UnetProvider that actually runs the model (UNET_PROVIDER_CPU or UNET_PROVIDER_CUDA).
    pub provider: u32,
    /// Why the provider is not CUDA although auto was asked for; NULL when there was no fallback.
    pub fallback_reason: *const c_char,
    pub in_channels: u32,
    pub classes: u32,
    pub base_width: u32,
    pub depth: u32,
    /// Pixels of context each output pixel needs on each side (92 for the paper's network).
    pub halo: u32,
    /// Valid network input sizes are size_step * k + size_offset, at least min_input.
    pub size_step: u32,
    pub size_offset: u32,
    pub min_input: u32,
    /// "percentile:LOW:HIGH" or "none".
    pub normalization: *const c_char,
    /// Comma-separated class names, background first.
    pub class_names: *const c_char,
    /// How the model was made (training data, command, scores).
    pub provenance: *const c_char,
    /// Where the model was loaded from.
    pub source: *const c_char,
    pub ort_version: *const c_char,
    pub ort_library: *const c_char,
    /// Since 0.4. The post-processing this model recommends, which unet_segment and unet_instances apply to the
    /// fields left at 0 / "model", e.g. "watershed h=2 smoothing=1 threshold=0.3 min_size=20" or
    /// "components min_size=0" (no threshold: the most probable class).
    pub postprocessing: *const c_char,
    /// Since 0.4. The typical object diameter (pixels) of the model's training data, the size
    /// UnetSegmentOptions.object_size resamples images to (30 when the model does not record one).
    pub object_size: f32,
    /// Since 0.4. Micrometres per pixel of the model's training images; 0 when not recorded.
    pub pixel_size: f32,
}

/// Fills `options` with defaults (provider auto, threads 0, library search).
///
/// # Safety
/// Every pointer must be NULL or valid for what its type and the documentation above describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unet_model_options_init(options: *mut UnetModelOptions) -> UnetStatus {
    ffi_entry!("unet_model_options_init", {
        // SAFETY: the caller passes NULL or a whole writable struct.
        unsafe { super::try_write(options, UnetModelOptions::defaults(), "options") }
    })
}

unsafe fn model_options(options: *const UnetModelOptions) -> crate::error::Result<ModelOptions> {
    // SAFETY: forwarded contract.
    let o = unsafe { read_versioned(options, "options") }?.unwrap_or_else(UnetModelOptions::defaults);
    let provider = UnetProvider::from_field(o.provider, "options->provider")?.provider();
    // SAFETY: the caller passes NULL or a NUL-terminated string.
    let ort_library = unsafe { opt_cstr(o.ort_library_path) }.map(cstr_to_path);
    Ok(ModelOptions { provider, threads: o.threads as usize, ort_library, cuda_device: o.cuda_device })
}

unsafe fn store(out: *mut *mut UnetModel, model: Model) {
    // SAFETY: `out` was checked non-NULL by the caller.
    unsafe { *out = Box::into_raw(UnetModel::new(model)) };
}

/// Loads a model from an ONNX file; `path` NULL loads the embedded default model, and a path that names no file
/// but an embedded model ("default", "em" for the electron-microscopy membrane model) loads that one. A bioimage.io
/// model package with ONNX weights runs too: its `.zip`, its `rdf.yaml`, or the folder holding it (axes, halo,
/// pre- and post-processing come from the package; what cannot run fails with UNET_MODEL_INCOMPATIBLE naming the
/// field). A model that keeps any tensor in an external data file is refused with UNET_MODEL_INCOMPATIBLE (its
/// location would be resolved against the program's working directory, not the model's folder): models must be
/// one self-contained file. `options` may be NULL (defaults). On success `*out` receives a handle to free with
/// unet_model_free; on failure `*out` is NULL.
///
/// # Safety
/// Every pointer must be NULL or valid for what its type and the documentation above describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unet_model_load(
    path: *const c_char,
    options: *const UnetModelOptions,
    out: *mut *mut UnetModel,
) -> UnetStatus {
    ffi_entry!("unet_model_load", {
        // SAFETY: the caller passes NULL or a writable pointer; NULL first, so a failure leaves no stale handle.
        unsafe { super::try_write(out, std::ptr::null_mut(), "out") }?;
        let opts = unsafe { model_options(options) }?;
        let model = match unsafe { opt_cstr(path) } {
            None => Model::embedded_default(&opts)?,
            Some(p) if p.is_empty() => return Err(Error::new(UnetStatus::ModelNotFound, "model path is empty")),
            Some(p) => Model::load_path_or_name(&cstr_to_path(p), &opts)?,
        };
        unsafe { store(out, model) };
        Ok(())
    })
}

/// Loads a model from `len` bytes of ONNX at `data`, or of a bioimage.io package zip (the bytes are not kept).
///
/// # Safety
/// Every pointer must be NULL or valid for what its type and the documentation above describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unet_model_load_from_memory(
    data: *const u8,
    len: usize,
    options: *const UnetModelOptions,
    out: *mut *mut UnetModel,
) -> UnetStatus {
    ffi_entry!("unet_model_load_from_memory", {
        // SAFETY: as in unet_model_load.
        unsafe { super::try_write(out, std::ptr::null_mut(), "out") }?;
        if data.is_null() {
            return Err(null("data"));
        }
        if len == 0 || len > isize::MAX as usize {
            return Err(Error::new(UnetStatus::InvalidSize, format!("model length {len} is not a valid size")));
        }
        let opts = unsafe { model_options(options) }?;
        // SAFETY: the caller provides `len` readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(data, len) };
        let model = Model::from_bytes(bytes, &opts)?;
        unsafe { store(out, model) };
        Ok(())
    })
}

/// Releases a model. NULL is ignored. The model must not be in use by another thread.
///
/// # Safety
/// Every pointer must be NULL or valid for what its type and the documentation above describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unet_model_free(model: *mut UnetModel) {
    super::ffi_void("unet_model_free", || {
        if !model.is_null() {
            // SAFETY: created by Box::into_raw in unet_model_load*.
            drop(unsafe { Box::from_raw(model) });
        }
    });
}

/// Describes a loaded model: architecture, size rules, and the execution provider that actually runs it.
///
/// # Safety
/// Every pointer must be NULL or valid for what its type and the documentation above describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unet_model_info(model: *const UnetModel, info: *mut UnetModelInfo) -> UnetStatus {
    ffi_entry!("unet_model_info", {
        let m = unsafe { try_ref(model, "model") }?;
        if info.is_null() {
            return Err(null("info"));
        }
        // SAFETY: non-NULL; read_versioned checks alignment and that the caller has at least the v0.1 struct.
        unsafe { read_versioned(info, "info") }?;
        let meta = m.model.metadata();
        let g = meta.geometry();
        let s = &m.strings;
        let value = UnetModelInfo {
            struct_size: size_of::<UnetModelInfo>() as u32,
            provider: UnetProvider::from_provider(m.model.provider().used),
            fallback_reason: s.fallback_reason.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            in_channels: meta.arch.in_channels as u32,
            classes: meta.arch.classes as u32,
            base_width: meta.arch.base_width as u32,
            depth: meta.arch.depth as u32,
            halo: g.halo as u32,
            size_step: g.size_step as u32,
            size_offset: g.size_offset as u32,
            min_input: g.min_input as u32,
            normalization: s.normalization.as_ptr(),
            class_names: s.class_names.as_ptr(),
            provenance: s.provenance.as_ptr(),
            source: s.source.as_ptr(),
            ort_version: s.ort_version.as_ptr(),
            ort_library: s.ort_library.as_ptr(),
            postprocessing: s.postprocessing.as_ptr(),
            object_size: meta.object_size_or_default(),
            pixel_size: meta.pixel_size.unwrap_or(0.0),
        };
        // SAFETY: the caller provides its `struct_size` (>= V1_SIZE, checked above) writable bytes.
        unsafe { write_versioned(info, &value) };
        Ok(())
    })
}

/// The models embedded in this library, by name, comma-separated (e.g. "default,em,cells"): each loads with
/// `unet_model_load(NAME, ...)`, so hosts can offer them in a chooser. Only models this build really carries are
/// listed. Never NULL; the string is static.
#[unsafe(no_mangle)]
pub extern "C" fn unet_model_names() -> *const c_char {
    static NAMES: once_cell::sync::Lazy<CString> = once_cell::sync::Lazy::new(|| {
        let names: Vec<&str> =
            crate::model::MODEL_NAMES.into_iter().filter(|n| crate::model::embedded_model(n).is_some()).collect();
        CString::new(names.join(",")).expect("model names have no NUL")
    });
    NAMES.as_ptr()
}
