//! Free memory of a GPU, read through NVML (`libnvidia-ml.so.1`, part of every NVIDIA driver), loaded at run time:
//! a build without CUDA, or a machine without the driver, simply gets `None`. NVML needs no CUDA context, so asking
//! costs nothing on the device that ONNX Runtime uses.

use std::ffi::c_void;

#[repr(C)]
#[derive(Default)]
struct NvmlMemory {
    total: u64,
    free: u64,
    used: u64,
}

/// NVML's entry points, loaded and initialised once per process (initialising NVML costs milliseconds: not on
/// every segment call). The library stays loaded for the life of the process.
struct Nvml {
    handle_of: unsafe extern "C" fn(u32, *mut *mut c_void) -> i32,
    memory_of: unsafe extern "C" fn(*mut c_void, *mut NvmlMemory) -> i32,
}

static NVML: once_cell::sync::Lazy<Option<Nvml>> = once_cell::sync::Lazy::new(|| {
    // SAFETY: dlopen/dlsym with NUL-terminated names; the symbols have NVML's documented C signatures.
    unsafe {
        let lib = libc::dlopen(c"libnvidia-ml.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if lib.is_null() {
            return None;
        }
        let sym = |name: &std::ffi::CStr| {
            let p = libc::dlsym(lib, name.as_ptr());
            (!p.is_null()).then_some(p)
        };
        let init: unsafe extern "C" fn() -> i32 = std::mem::transmute(sym(c"nvmlInit_v2")?);
        let handle_of: unsafe extern "C" fn(u32, *mut *mut c_void) -> i32 =
            std::mem::transmute(sym(c"nvmlDeviceGetHandleByIndex_v2")?);
        let memory_of: unsafe extern "C" fn(*mut c_void, *mut NvmlMemory) -> i32 =
            std::mem::transmute(sym(c"nvmlDeviceGetMemoryInfo")?);
        let nvml = Nvml { handle_of, memory_of };
        (init() == 0).then_some(nvml)
    }
});

/// Bytes free on the GPU with NVML index `index`, or `None` when NVML or the device is not there. NVML numbers
/// devices by PCI order, which is CUDA's unless `CUDA_DEVICE_ORDER`/`CUDA_VISIBLE_DEVICES` reorder them; with
/// `CUDA_VISIBLE_DEVICES` set, the first visible device is taken.
pub fn free_bytes(index: u32) -> Option<u64> {
    let index = match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(v) if !v.trim().is_empty() => {
            let ids: Vec<&str> = v.split(',').map(str::trim).collect();
            ids.get(index as usize)?.parse::<u32>().ok()?
        }
        _ => index,
    };
    let nvml = NVML.as_ref()?;
    let mut handle = std::ptr::null_mut();
    let mut memory = NvmlMemory::default();
    // SAFETY: NVML was initialised; both calls get valid out-pointers.
    let ok = unsafe { (nvml.handle_of)(index, &mut handle) == 0 && (nvml.memory_of)(handle, &mut memory) == 0 };
    ok.then_some(memory.free)
}

/// The activation budget for one run on a GPU with `free` bytes free: a quarter of it (ONNX Runtime's arena,
/// cuDNN workspaces and other processes need the rest), between 1 GiB and 16 GiB; larger tiles stop paying off
/// well before that.
pub fn budget_for(free: u64) -> usize {
    let quarter = free / 4;
    quarter.clamp(1 << 30, 16 << 30) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_a_clamped_quarter() {
        assert_eq!(budget_for(0), 1 << 30);
        assert_eq!(budget_for(16 << 30), 4 << 30);
        assert_eq!(budget_for(1 << 40), 16 << 30);
    }

    #[test]
    fn no_driver_or_no_device_is_none_not_a_crash() {
        // On a machine without NVIDIA's driver this is None; with one, device 4095 does not exist.
        assert_eq!(free_bytes(4095), None);
        if let Some(free) = free_bytes(0) {
            assert!(free > 0);
        }
    }
}
