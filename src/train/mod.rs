//! The trainer: the paper's network in burn, its weighted loss, and the training loop. Built with the `train`
//! feature; the network's parameters travel through [`crate::weights::UNetWeights`], so what it trains is exactly
//! what the ONNX writer exports and the plugin runs.

pub mod benchmark;
pub mod conv;
pub mod device;
pub mod im2col;
pub mod loss;
pub mod model;
pub mod trainer;

pub use burn;

/// CPU backend with automatic differentiation.
pub type TrainBackend = burn::backend::Autodiff<burn::backend::Flex>;

/// A training step allocates and frees tensors of tens of MB; glibc serves each from a fresh `mmap` whose pages the
/// kernel zeroes again on every step (about a quarter of a base-16 step in perf). This keeps freed memory in the
/// heap for reuse instead. It is process-wide, so only the trainer's own entry points (the CLI's `train` and
/// `bench-train`, the benchmark) call it, never the library on a host's behalf.
pub fn keep_freed_memory_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; it is called before the training threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20); // glibc's largest accepted value
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}
