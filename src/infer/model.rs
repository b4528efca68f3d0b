//! A loaded U-Net: an ONNX Runtime session, the model's metadata and the execution provider that runs it.
//! One `Model` may be shared by many threads; ONNX Runtime runs are serialised per model (some providers are not
//! thread-safe), everything around them (normalising, tiling, stitching, labelling) runs in parallel.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
};

use ndarray::ArrayView4;
use ort::{
    ep::ExecutionProvider,
    session::{Session, builder::GraphOptimizationLevel},
    value::{TensorElementType, TensorRef, ValueType},
};
use prost::Message;

use crate::{
    error::{Error, Result, UnetStatus},
    metadata::ModelMetadata,
    onnx::proto::ModelProto,
    provider::{CudaAttempt, Provider, ProviderDecision, decide},
    runtime::{self, Runtime},
};
// Model files and the models compiled into the library belong to the network layer; their old paths stay.
pub use crate::net::model_files::{
    EMBEDDED_DEFAULT, EMBEDDED_EM, MAX_MODEL_BYTES, MODEL_NAMES, embedded_model, model_file_bytes, model_name_of,
};
use crate::net::{bioimageio, model_files::read_model_file};

/// How to load a model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelOptions {
    pub provider: Provider,
    /// ONNX Runtime intra-op threads; 0 lets ONNX Runtime choose (one per core).
    pub threads: usize,
    /// Explicit ONNX Runtime library (file or folder); `None` searches (see [`runtime`]).
    pub ort_library: Option<PathBuf>,
    pub cuda_device: i32,
}

pub struct Model {
    session: Mutex<Session>,
    metadata: ModelMetadata,
    provider: ProviderDecision,
    runtime: Runtime,
    source: String,
    input_name: String,
    /// The CUDA device the session runs on (when it runs on CUDA).
    cuda_device: i32,
    /// On CUDA: the model's bytes and CUDA-only load options, to start a fresh session after the GPU ran out of
    /// memory. ONNX Runtime's GPU arena keeps what it grabbed for the failed run, so without a fresh arena even
    /// small tiles fail (seen with `gpu_mem_limit`: every later allocation refused, down to a few KB).
    renewal: Option<(Vec<u8>, ModelOptions)>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("source", &self.source).field("metadata", &self.metadata).finish()
    }
}

impl Model {
    /// Loads an ONNX file written by unet's ONNX writer, or a bioimage.io model package (a `.zip`, its
    /// `rdf.yaml`, or the folder holding it; see [`crate::net::bioimageio`]).
    pub fn load(path: &Path, options: &ModelOptions) -> Result<Model> {
        if bioimageio::is_package_path(path) {
            let bytes = bioimageio::import_path(path)?;
            return Model::from_bytes_named(&bytes, options, format!("{} (bioimage.io package)", path.display()));
        }
        let bytes = read_model_file(path)?;
        Model::from_bytes_named(&bytes, options, path.display().to_string())
    }

    /// Loads the embedded model called `name` (see [`MODEL_NAMES`]).
    pub fn named(name: &str, options: &ModelOptions) -> Result<Model> {
        let bytes = embedded_model(name).ok_or_else(|| {
            let status = if name == "default" { UnetStatus::NoDefaultModel } else { UnetStatus::ModelNotFound };
            Error::new(status, format!("this build has no embedded model '{name}' (names: {})", MODEL_NAMES.join(", ")))
        })?;
        Model::from_bytes_named(bytes, options, format!("<embedded {name} model>"))
    }

    /// Loads the file at `path`, or, when there is no such file and `path` is a model name ("default", "em"),
    /// the embedded model of that name.
    pub fn load_path_or_name(path: &Path, options: &ModelOptions) -> Result<Model> {
        match model_name_of(path) {
            Some(name) => Model::named(name, options),
            None => Model::load(path, options),
        }
    }

    /// Loads a model from bytes in memory.
    pub fn from_bytes(bytes: &[u8], options: &ModelOptions) -> Result<Model> {
        Model::from_bytes_named(bytes, options, format!("<memory, {} bytes>", bytes.len()))
    }

    /// Loads the model embedded in this build.
    pub fn embedded_default(options: &ModelOptions) -> Result<Model> {
        let bytes = EMBEDDED_DEFAULT.ok_or_else(|| {
            Error::new(
                UnetStatus::NoDefaultModel,
                "this build of unet has no embedded default model; pass a model path",
            )
        })?;
        Model::from_bytes_named(bytes, options, "<embedded default model>".into())
    }

    fn from_bytes_named(bytes: &[u8], options: &ModelOptions, source: String) -> Result<Model> {
        if bytes.is_empty() {
            return Err(Error::new(UnetStatus::ModelInvalid, format!("{source} is empty, not an ONNX model")));
        }
        if bioimageio::is_zip(bytes) {
            // A bioimage.io package in memory (the C ABI's load-from-memory, or a renamed .zip).
            let wrapped = bioimageio::import_zip(bytes).map_err(|e| e.context(&source))?;
            return Model::from_bytes_named(&wrapped, options, format!("{source} (bioimage.io package)"));
        }
        crate::onnx::external_data::refuse_external_data(bytes).map_err(|e| e.context(&source))?;
        let runtime = runtime::ensure_loaded(options.ort_library.as_deref())?;
        let (session, provider) = create_session(&runtime, bytes, options).map_err(|e| e.context(&source))?;
        let metadata = {
            let meta = session.metadata().map_err(|e| Error::runtime(e, "reading model metadata"))?;
            ModelMetadata::from_lookup(|k| meta.custom(k)).map_err(|e| e.context(&source))?
        };
        let input_name = check_signature(&session, &metadata).map_err(|e| e.context(&source))?;
        let renewal = (provider.used == Provider::Cuda)
            .then(|| (bytes.to_vec(), ModelOptions { provider: Provider::Cuda, ..options.clone() }));
        Ok(Model {
            session: Mutex::new(session),
            metadata,
            provider,
            runtime,
            source,
            input_name,
            cuda_device: options.cuda_device,
            renewal,
        })
    }

    /// Replaces the ONNX Runtime session by a fresh one on the same device (CUDA models only; a no-op otherwise),
    /// releasing the old session's GPU memory arena. Used after an out-of-memory before retrying smaller tiles.
    pub(crate) fn renew_session(&self) -> Result<()> {
        let Some((bytes, options)) = &self.renewal else { return Ok(()) };
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let (fresh, _) = create_session(&self.runtime, bytes, options)
            .map_err(|e| e.context("starting a fresh session after the GPU ran out of memory"))?;
        *session = fresh;
        Ok(())
    }

    /// The CUDA device index the model runs on, when it runs on CUDA.
    pub fn cuda_device(&self) -> Option<i32> {
        (self.provider.used == Provider::Cuda).then_some(self.cuda_device)
    }

    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    pub fn provider(&self) -> &ProviderDecision {
        &self.provider
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Where the model came from (a path, memory, or the embedded default).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Runs the network on a batch `[n, channels, h, w]` and hands the probabilities `[n, classes, h', w']` to
    /// `consume` while the output is still borrowed from ONNX Runtime (no copy).
    pub fn run<R>(&self, input: ArrayView4<f32>, consume: impl FnOnce(ArrayView4<f32>) -> Result<R>) -> Result<R> {
        let tensor = TensorRef::from_array_view(input).map_err(|e| Error::runtime(e, "wrapping the input tile"))?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| classify_run_error(e, input.shape()))?;
        let probs = outputs[0].try_extract_array::<f32>().map_err(|e| Error::runtime(e, "reading the output"))?;
        let probs = probs
            .into_dimensionality::<ndarray::Ix4>()
            .map_err(|e| Error::new(UnetStatus::ModelIncompatible, format!("model output is not 4-D: {e}")))?;
        consume(probs)
    }
}

fn classify_run_error(e: ort::Error, shape: &[usize]) -> Error {
    let msg = e.to_string();
    // Out of memory has no code of its own (a generic failure or runtime exception): only its words tell.
    let status = if is_out_of_memory(&msg) {
        UnetStatus::OutOfMemory
    } else {
        crate::error::status_of_runtime_code(e.code(), UnetStatus::RuntimeError)
    };
    Error::new(status, format!("ONNX Runtime failed on a tile batch of shape {shape:?}: {msg}")).caused_by(e)
}

/// Whether an ONNX Runtime error means memory ran out: its arena's words ("Failed to allocate", "Available memory
/// of N is smaller than requested bytes of M", seen on an H200 with `gpu_mem_limit`), CUDA's and cuDNN's.
fn is_out_of_memory(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "failed to allocate",
        "out of memory",
        "smaller than requested bytes",
        "cudnn_status_alloc_failed",
        "cudaerrormemoryallocation",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

fn session_builder(runtime: &Runtime, options: &ModelOptions) -> ort::Result<ort::session::builder::SessionBuilder> {
    let mut b = Session::builder(&runtime.environment)?.with_optimization_level(GraphOptimizationLevel::All)?;
    if options.threads > 0 {
        b = b.with_intra_threads(options.threads)?;
    }
    Ok(b)
}

fn create_session(runtime: &Runtime, bytes: &[u8], options: &ModelOptions) -> Result<(Session, ProviderDecision)> {
    let invalid = |e: ort::Error| classify_load_error(e, bytes);
    let cuda_attempt = match options.provider {
        Provider::Cpu => CudaAttempt::NotRequested,
        Provider::Auto | Provider::Cuda => {
            if !runtime.available_providers.iter().any(|p| p == ort::ep::CUDA::NAME) {
                CudaAttempt::NotCompiledIn { library: runtime.library_path.display().to_string() }
            } else {
                let cuda = cuda_provider(options.cuda_device).build().error_on_failure();
                let attempt = session_builder(runtime, options)
                    .and_then(|b| b.with_execution_providers([cuda]).map_err(Into::into))
                    .and_then(|mut b| b.commit_from_memory(bytes));
                match attempt {
                    Ok(session) => {
                        let decision = decide(options.provider, &CudaAttempt::Started)?;
                        return Ok((session, decision));
                    }
                    Err(e) => {
                        // A broken model fails the same way on every provider: report it as such.
                        let classified = classify_load_error(e, bytes);
                        if classified.status() == UnetStatus::ModelInvalid {
                            return Err(classified);
                        }
                        CudaAttempt::Failed { message: classified.message().to_string() }
                    }
                }
            }
        }
    };
    let decision = decide(options.provider, &cuda_attempt)?;
    let session = session_builder(runtime, options).and_then(|mut b| b.commit_from_memory(bytes)).map_err(invalid)?;
    Ok((session, decision))
}

/// Environment variable with extra CUDA execution provider options, `key=value,key=value` in ONNX Runtime's names
/// (e.g. `prefer_nhwc=1,cudnn_conv_algo_search=HEURISTIC`): a tuning knob for benchmarks, read at each model load.
pub const CUDA_OPTIONS_ENV: &str = "UNET_CUDA_OPTIONS";

fn cuda_provider(device: i32) -> ort::ep::CUDA {
    use ort::ep::ArbitrarilyConfigurableExecutionProvider;
    let mut cuda = ort::ep::CUDA::default().with_device_id(device);
    for pair in std::env::var(CUDA_OPTIONS_ENV).unwrap_or_default().split(',').filter(|p| !p.trim().is_empty()) {
        match pair.split_once('=') {
            Some((key, value)) => cuda = cuda.with_arbitrary_config(key.trim(), value.trim()),
            None => log::warn!("{CUDA_OPTIONS_ENV}: '{pair}' is not key=value; ignored"),
        }
    }
    cuda
}

/// A session that fails to load is either not ONNX at all (or truncated) or ONNX that ONNX Runtime rejects: by
/// ONNX Runtime's error code, and by whether the bytes parse as a model with a graph at all.
fn classify_load_error(e: ort::Error, bytes: &[u8]) -> Error {
    let msg = e.to_string();
    let parses = ModelProto::decode(bytes).map(|m| m.graph.is_some()).unwrap_or(false);
    let status = crate::error::status_of_runtime_code(e.code(), UnetStatus::ModelIncompatible);
    if !parses || status == UnetStatus::ModelInvalid {
        Error::new(UnetStatus::ModelInvalid, format!("not a valid ONNX model (truncated or another format): {msg}"))
            .caused_by(e)
    } else {
        Error::new(UnetStatus::ModelIncompatible, format!("ONNX Runtime cannot load the model: {msg}")).caused_by(e)
    }
}

/// One f32 input `[batch, channels, height, width]` with free height and width, one f32 output with the
/// model's class count. Returns the input's name.
fn check_signature(session: &Session, meta: &ModelMetadata) -> Result<String> {
    let incompatible = |m: String| Error::new(UnetStatus::ModelIncompatible, m);
    let (inputs, outputs) = (session.inputs(), session.outputs());
    if inputs.len() != 1 || outputs.len() != 1 {
        return Err(incompatible(format!(
            "model has {} inputs and {} outputs; a U-Net has one image input and one probability output",
            inputs.len(),
            outputs.len()
        )));
    }
    let check = |what: &str, dtype: &ValueType, channels: usize| -> Result<()> {
        let ValueType::Tensor { ty, shape, .. } = dtype else {
            return Err(incompatible(format!("model {what} is not a tensor")));
        };
        if *ty != TensorElementType::Float32 {
            return Err(incompatible(format!("model {what} has element type {ty:?}, expected float32")));
        }
        let dims: Vec<i64> = shape.iter().copied().collect();
        if dims.len() != 4 {
            return Err(incompatible(format!(
                "model {what} has shape {dims:?}; expected [batch, channels, height, width]"
            )));
        }
        if dims[1] != channels as i64 && dims[1] != -1 {
            return Err(incompatible(format!(
                "model {what} has {} channels but its metadata says {channels}",
                dims[1]
            )));
        }
        if dims[2] != -1 || dims[3] != -1 {
            return Err(incompatible(format!(
                "model {what} has a fixed size {}x{}; overlap-tiling needs free height and width",
                dims[2], dims[3]
            )));
        }
        Ok(())
    };
    check("input", inputs[0].dtype(), meta.arch.in_channels)?;
    check("output", outputs[0].dtype(), meta.arch.classes)?;
    Ok(inputs[0].name().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn out_of_memory_messages_are_recognised() {
        for m in [
            "Non-zero status code returned while running Relu node. Name:'relu_2' Status Message: \
             /onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:360 void* \
             onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, onnxruntime::Stream*) Available memory of 0 is \
             smaller than requested bytes of 1173473536",
            "Failed to allocate memory for requested buffer of size 123",
            "CUDA failure 2: out of memory ; GPU=0",
            "CUDNN failure 4: CUDNN_STATUS_ALLOC_FAILED",
        ] {
            assert!(super::is_out_of_memory(m), "{m}");
        }
        assert!(!super::is_out_of_memory("Invalid rank for input: image Got: 3 Expected: 4"));
    }
}
