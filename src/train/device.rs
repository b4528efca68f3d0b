//! Where the trainer runs: `cpu` (burn's flex backend) or `cuda[:N]` (burn's CUDA backend, in builds with the
//! `cuda` feature). The CUDA driver and NVRTC are loaded at run time, so a missing GPU is found when the device is
//! first used: [`cuda_device`] tries that once and turns burn's panic into an error naming the cause.

use std::fmt;

use crate::error::{Error, Result, UnetStatus};

/// The device `unet train --device` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainDevice {
    Cpu,
    /// A CUDA device by its index (`cuda` = `cuda:0`).
    Cuda(usize),
}

impl TrainDevice {
    /// `cpu`, `cuda`, `cuda:N` (also `gpu`, `gpu:N`); anything else is an error that lists the accepted forms.
    pub fn parse(s: &str) -> Result<TrainDevice> {
        let lower = s.trim().to_ascii_lowercase();
        let bad = || {
            Error::new(
                UnetStatus::InvalidArgument,
                format!("unknown training device '{s}': use cpu, cuda or cuda:N (N = the GPU's index, from 0)"),
            )
        };
        match lower.as_str() {
            "cpu" => Ok(TrainDevice::Cpu),
            "cuda" | "gpu" => Ok(TrainDevice::Cuda(0)),
            _ => {
                let index = lower.strip_prefix("cuda:").or_else(|| lower.strip_prefix("gpu:")).ok_or_else(bad)?;
                index.parse::<usize>().map(TrainDevice::Cuda).map_err(|_| bad())
            }
        }
    }

    /// Whether this build can train on the device at all (CUDA needs the `cuda` feature).
    pub fn check_built(self) -> Result<()> {
        match self {
            TrainDevice::Cpu => Ok(()),
            TrainDevice::Cuda(_) if cfg!(feature = "cuda") => Ok(()),
            TrainDevice::Cuda(_) => Err(Error::new(
                UnetStatus::ProviderUnavailable,
                "this unet was built without CUDA training: rebuild with `cargo build --release --features cuda` \
                 (no CUDA toolkit is needed to build; the driver is loaded at run time)",
            )),
        }
    }
}

impl fmt::Display for TrainDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainDevice::Cpu => f.write_str("cpu"),
            TrainDevice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// burn's CUDA backend with automatic differentiation.
#[cfg(feature = "cuda")]
pub type CudaTrainBackend = burn::backend::Autodiff<burn::backend::Cuda>;

/// The CUDA device `index`, checked by running one tiny computation on it: burn panics when there is no driver,
/// no such device or no NVRTC, and that panic becomes an error here.
#[cfg(feature = "cuda")]
pub fn cuda_device(index: usize) -> Result<burn::backend::cuda::CudaDevice> {
    use burn::tensor::Tensor;
    let device = burn::backend::cuda::CudaDevice::new(index);
    let probe = device.clone();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(move || {
        let t = Tensor::<burn::backend::Cuda, 1>::from_floats([1.0, 2.0], &probe);
        t.sum().into_scalar()
    });
    std::panic::set_hook(hook);
    match result {
        Ok(3.0) => Ok(device),
        Ok(v) => Err(Error::new(UnetStatus::RuntimeError, format!("cuda:{index} computed 1 + 2 = {v}"))),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown error".into());
            Err(Error::new(
                UnetStatus::ProviderUnavailable,
                format!(
                    "cannot train on cuda:{index}: {why} (needs an NVIDIA driver, a GPU with that index, and \
                     libnvrtc on LD_LIBRARY_PATH)"
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse() {
        assert_eq!(TrainDevice::parse("cpu").unwrap(), TrainDevice::Cpu);
        assert_eq!(TrainDevice::parse("CUDA").unwrap(), TrainDevice::Cuda(0));
        assert_eq!(TrainDevice::parse("cuda:3").unwrap(), TrainDevice::Cuda(3));
        assert_eq!(TrainDevice::parse("gpu:1").unwrap(), TrainDevice::Cuda(1));
        for bad in ["", "cuda:", "cuda:-1", "cuda:x", "tpu", "cuda0", "cpu:0"] {
            let err = TrainDevice::parse(bad).unwrap_err();
            assert_eq!(err.status(), UnetStatus::InvalidArgument, "{bad}");
            assert!(err.message().contains("cpu, cuda or cuda:N"), "{err}");
        }
        assert_eq!(TrainDevice::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn cuda_needs_the_cuda_build() {
        assert!(TrainDevice::Cpu.check_built().is_ok());
        let built = TrainDevice::Cuda(0).check_built();
        if cfg!(feature = "cuda") {
            assert!(built.is_ok());
        } else {
            let err = built.unwrap_err();
            assert_eq!(err.status(), UnetStatus::ProviderUnavailable);
            assert!(err.message().contains("--features cuda"), "{err}");
        }
    }
}
