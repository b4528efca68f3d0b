//! Which execution provider runs the model. `Auto` picks CUDA when the ONNX Runtime build has it and it starts,
//! else the CPU, and always says why; `Cuda` never falls back silently.

use std::fmt;

use crate::error::{Error, Result, UnetStatus};

/// What the caller asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Provider {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Auto => "auto",
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
        })
    }
}

/// What happened when CUDA was considered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CudaAttempt {
    /// Not tried (the caller asked for the CPU).
    NotRequested,
    /// This ONNX Runtime build has no CUDA execution provider.
    NotCompiledIn { library: String },
    /// The provider was registered and the session created.
    Started,
    /// Registration or session creation failed with this ONNX Runtime message.
    Failed { message: String },
}

/// The outcome: the provider that runs, and why it is not the one asked for (if it is not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderDecision {
    pub used: Provider,
    pub fallback_reason: Option<String>,
}

/// Decides from the request and what CUDA did. Errors only when CUDA was demanded and did not start.
pub fn decide(requested: Provider, cuda: &CudaAttempt) -> Result<ProviderDecision> {
    let reason = match cuda {
        CudaAttempt::NotRequested => None,
        CudaAttempt::Started => return Ok(ProviderDecision { used: Provider::Cuda, fallback_reason: None }),
        CudaAttempt::NotCompiledIn { library } => Some(format!(
            "the ONNX Runtime library {library} was built without the CUDA execution provider (use the library of the \
             onnxruntime-gpu package)"
        )),
        CudaAttempt::Failed { message } => Some(explain_cuda_failure(message)),
    };
    match (requested, reason) {
        (Provider::Cpu, _) => Ok(ProviderDecision { used: Provider::Cpu, fallback_reason: None }),
        (Provider::Cuda, Some(reason)) => {
            Err(Error::new(UnetStatus::ProviderUnavailable, format!("CUDA was requested but cannot run: {reason}")))
        }
        (_, reason) => Ok(ProviderDecision {
            used: Provider::Cpu,
            fallback_reason: Some(reason.unwrap_or_else(|| "CUDA was not tried".into())),
        }),
    }
}

/// Turns ONNX Runtime's CUDA errors into a sentence naming the cause: a missing library by name, no device,
/// a driver too old, or out of memory.
pub fn explain_cuda_failure(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if let Some(lib) = missing_library(message) {
        return format!(
            "the CUDA provider needs {lib}, which the loader could not find (install the CUDA/cuDNN libraries or add \
             their folder to LD_LIBRARY_PATH); ONNX Runtime said: {message}"
        );
    }
    let cause = if lower.contains("no cuda-capable device")
        || lower.contains("cudaerrornodevice")
        || lower.contains("no device")
    {
        "no CUDA device is present"
    } else if lower.contains("insufficient driver") || lower.contains("driver version") {
        "the NVIDIA driver is older than the CUDA runtime"
    } else if lower.contains("out of memory") || lower.contains("failed to allocate") {
        "the GPU is out of memory"
    } else {
        "the CUDA provider failed to start"
    };
    format!("{cause}; ONNX Runtime said: {message}")
}

/// The library a loader error says is missing: in "Failed to load library A with error: B: cannot open shared
/// object file" it is B, the last `lib*.so*` name that is not ONNX Runtime's own provider library.
fn missing_library(message: &str) -> Option<String> {
    if !message.contains("cannot open shared object") && !message.contains("not found") {
        return None;
    }
    let names: Vec<&str> = message
        .split(|c: char| c.is_whitespace() || matches!(c, ':' | '"' | '\'' | ',' | '(' | ')'))
        .filter(|w| w.starts_with("lib") && w.contains(".so"))
        .collect();
    names.iter().rev().find(|w| !w.contains("onnxruntime")).or(names.last()).map(|s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_request_never_mentions_cuda() {
        let d = decide(Provider::Cpu, &CudaAttempt::NotRequested).unwrap();
        assert_eq!(d, ProviderDecision { used: Provider::Cpu, fallback_reason: None });
    }

    #[test]
    fn auto_falls_back_with_a_reason() {
        let d = decide(Provider::Auto, &CudaAttempt::NotCompiledIn { library: "/x/libonnxruntime.so".into() }).unwrap();
        assert_eq!(d.used, Provider::Cpu);
        assert!(d.fallback_reason.unwrap().contains("built without the CUDA execution provider"));
        let d = decide(Provider::Auto, &CudaAttempt::Started).unwrap();
        assert_eq!(d, ProviderDecision { used: Provider::Cuda, fallback_reason: None });
    }

    #[test]
    fn cuda_request_fails_loudly() {
        let err = decide(
            Provider::Cuda,
            &CudaAttempt::Failed {
                message:
                    "Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot \
                          open shared object file: No such file or directory"
                        .into(),
            },
        )
        .unwrap_err();
        assert_eq!(err.status(), UnetStatus::ProviderUnavailable);
        assert!(err.message().contains("needs libcublasLt.so.13"), "{err}");
    }

    #[test]
    fn causes_are_named() {
        assert!(
            explain_cuda_failure("CUDA failure 100: no CUDA-capable device is detected").starts_with("no CUDA device")
        );
        assert!(
            explain_cuda_failure("CUDA error cudaErrorMemoryAllocation: out of memory")
                .starts_with("the GPU is out of memory")
        );
        assert!(
            explain_cuda_failure("CUDA driver version is insufficient for CUDA runtime version").contains("driver")
        );
    }
}
