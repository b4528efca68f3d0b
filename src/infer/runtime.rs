//! Finding and loading the ONNX Runtime shared library, once per process.
//!
//! Search order: an explicit path (model options), `UNET_ORT_LIB`, the folder of the binary that contains this
//! code (libunet.so, or the CLI), an installed Python `onnxruntime`/`onnxruntime-gpu` package, for the CLI built
//! by cargo in `ROOT/target/PROFILE/` the checkout's `ROOT/.onnxruntime` (what `make demo` fetched), the system
//! loader.
//! A path may name the library file or a folder holding it. If nothing loads, the error lists every place tried
//! and why it failed. ONNX Runtime can be loaded only once per process: a later request for another library is
//! refused with an error rather than silently ignored.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    sync::Mutex,
};

use ort::environment::Environment;

use crate::error::{Error, Result, UnetStatus};

/// Environment variable naming the ONNX Runtime library (a file or a folder).
pub const ORT_LIB_ENV: &str = "UNET_ORT_LIB";

/// The ONNX Runtime library this process uses.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub library_path: PathBuf,
    pub version: String,
    /// Execution providers compiled into this ONNX Runtime build.
    pub available_providers: Vec<String>,
    pub environment: Environment,
}

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

/// Loads ONNX Runtime (first call) or returns the one already loaded.
pub fn ensure_loaded(explicit: Option<&Path>) -> Result<Runtime> {
    let mut guard = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = guard.as_ref() {
        if let Some(path) = explicit {
            let wanted = resolve_library(path).unwrap_or_else(|| path.to_path_buf());
            if !same_file(&wanted, &rt.library_path) {
                return Err(Error::new(
                    UnetStatus::RuntimeNotFound,
                    format!(
                        "ONNX Runtime is already loaded in this process from {} (version {}); a process can use only \
                         one ONNX Runtime library, so {} cannot be used",
                        rt.library_path.display(),
                        rt.version,
                        path.display()
                    ),
                ));
            }
        }
        return Ok(rt.clone());
    }
    let mut tried = Vec::new();
    for candidate in candidates(explicit) {
        match try_load(&candidate.path) {
            Ok(rt) => {
                log::info!(
                    "loaded ONNX Runtime {} from {} ({})",
                    rt.version,
                    rt.library_path.display(),
                    candidate.source
                );
                *guard = Some(rt.clone());
                return Ok(rt);
            }
            Err(why) => tried.push(format!("  - {} ({}): {why}", candidate.path.display(), candidate.source)),
        }
        // An explicit path is a firm request: never fall back past it to another library.
        if candidate.source == "explicit path" {
            break;
        }
    }
    Err(Error::new(
        UnetStatus::RuntimeNotFound,
        format!(
            "ONNX Runtime (libonnxruntime.so, version >= 1.{}) was not found; tried:\n{}\nFetch it with \
             scripts/fetch-onnxruntime.sh, `pip install onnxruntime`, or set {ORT_LIB_ENV} to its path",
            ort::MINOR_VERSION,
            if tried.is_empty() { "  (no candidate)".to_string() } else { tried.join("\n") }
        ),
    ))
}

struct Candidate {
    path: PathBuf,
    source: &'static str,
}

/// The places to try, in the documented order, produced lazily: a later place (e.g. the Python package folders) is
/// not even looked at once an earlier one has loaded.
fn candidates(explicit: Option<&Path>) -> Box<dyn Iterator<Item = Candidate>> {
    if let Some(p) = explicit {
        let path = resolve_library(p).unwrap_or_else(|| p.to_path_buf());
        return Box::new(std::iter::once(Candidate { path, source: "explicit path" }));
    }
    let from_env = std::iter::once_with(|| {
        std::env::var_os(ORT_LIB_ENV).filter(|v| !v.is_empty()).map(|p| {
            let p = PathBuf::from(p);
            Candidate { path: resolve_library(&p).unwrap_or(p), source: ORT_LIB_ENV }
        })
    })
    .flatten();
    let beside_us = std::iter::once_with(|| {
        own_binary_dir().map(|dir| Candidate {
            path: resolve_library(&dir).unwrap_or_else(|| dir.join("libonnxruntime.so")),
            source: "folder of the unet library",
        })
    })
    .flatten();
    // A cargo build (`ROOT/target/PROFILE/unet`) finds the copy `make demo` fetched into `ROOT/.onnxruntime`, so the
    // binary runs by hand after `make demo` without UNET_ORT_LIB.
    let fetched_for_checkout = std::iter::once_with(|| {
        // The command-line program only: libunet.so in target/ (a host's library under test) keeps its own search.
        if !running_in_executable() {
            return None;
        }
        let dir = own_binary_dir()?;
        let target = dir.parent().filter(|t| t.file_name().is_some_and(|n| n == "target"))?;
        let fetched = target.parent()?.join(".onnxruntime");
        resolve_library(&fetched).map(|path| Candidate { path, source: "the checkout's .onnxruntime (make demo)" })
    })
    .flatten();
    let python = std::iter::once_with(python_package_dirs).flat_map(|dirs| {
        dirs.into_iter()
            .filter_map(|dir| resolve_library(&dir))
            .map(|path| Candidate { path, source: "Python onnxruntime package" })
    });
    // A bare name lets the system loader search LD_LIBRARY_PATH, the ld.so cache and the default folders.
    let system =
        std::iter::once_with(|| Candidate { path: PathBuf::from("libonnxruntime.so"), source: "system loader" });
    Box::new(from_env.chain(beside_us).chain(python).chain(fetched_for_checkout).chain(system))
}

fn try_load(path: &Path) -> std::result::Result<Runtime, String> {
    if path.is_absolute() && !path.exists() {
        return Err("no such file".into());
    }
    let builder = ort::init_from(path).map_err(|e| e.to_string())?;
    let environment = builder.with_name("unet").build().map_err(|e| e.to_string())?;
    let library_path =
        if path.is_absolute() { path.to_path_buf() } else { loaded_library_path().unwrap_or(path.to_path_buf()) };
    let version = ort_version(&library_path).unwrap_or_else(|| "unknown".into());
    let available_providers = available_providers().unwrap_or_default();
    Ok(Runtime { library_path, version, available_providers, environment })
}

/// `path` itself if it is a file, else the newest `libonnxruntime.so*` in the folder `path`.
fn resolve_library(path: &Path) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    let entries = std::fs::read_dir(path).ok()?;
    let mut libs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|n| n == "libonnxruntime.so" || n.starts_with("libonnxruntime.so."))
        })
        .collect();
    // Prefer the plain name (a symlink to the versioned file), else the highest version.
    libs.sort_by_key(|p| version_key(p));
    libs.pop()
}

fn version_key(p: &Path) -> Vec<u64> {
    let name = p.file_name().and_then(OsStr::to_str).unwrap_or("");
    let rest = name.strip_prefix("libonnxruntime.so").unwrap_or("");
    if rest.is_empty() {
        return vec![u64::MAX];
    }
    rest.trim_start_matches('.').split('.').map(|s| s.parse().unwrap_or(0)).collect()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Whether this code runs inside an executable (the CLI) rather than a shared library (libunet.so).
fn running_in_executable() -> bool {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let addr = running_in_executable as *const () as *const libc::c_void;
    // SAFETY: dladdr only reads the loader's tables; `info` is a valid out-pointer.
    if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
        return false;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }.to_string_lossy();
    !(name.ends_with(".so") || name.contains(".so."))
}

/// Folder of the shared object or executable that contains this function.
fn own_binary_dir() -> Option<PathBuf> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let addr = own_binary_dir as *const () as *const libc::c_void;
    // SAFETY: dladdr only reads the loader's tables; `info` is a valid out-pointer.
    if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = PathBuf::from(OsStr::new(std::str::from_utf8(name.to_bytes()).ok()?));
    let path = if path.is_absolute() { path } else { std::env::current_exe().ok()? };
    path.parent().map(Path::to_path_buf)
}

/// Where an installed Python package `onnxruntime` (or `onnxruntime-gpu`) keeps its library.
fn python_package_dirs() -> Vec<PathBuf> {
    let mut prefixes: Vec<PathBuf> = Vec::new();
    for var in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
        if let Some(v) = std::env::var_os(var) {
            prefixes.push(PathBuf::from(v));
        }
    }
    // The interpreter this library runs in, when it is a Python (`.venv/bin/python script.py` with no activated
    // environment): its prefix is the folder above its bin/.
    if let Some(argv0) = std::env::args_os().next().map(PathBuf::from)
        && argv0.file_name().and_then(OsStr::to_str).is_some_and(|n| n.starts_with("python"))
        && let Some(prefix) = std::fs::canonicalize(argv0.parent().unwrap_or(Path::new(".")))
            .ok()
            .and_then(|bin| bin.parent().map(Path::to_path_buf))
    {
        prefixes.push(prefix);
    }
    if let Some(home) = std::env::var_os("HOME") {
        prefixes.push(PathBuf::from(home).join(".local"));
    }
    // Every `python3` on PATH, by where it lives, never by running it: inside Fiji or a microscope program,
    // executing whatever comes first on PATH would be a hazard. A venv's bin/python3 is a symlink, so both the
    // folder above its bin/ and that of the resolved interpreter count.
    if let Some(path) = std::env::var_os("PATH") {
        for bin in std::env::split_paths(&path) {
            let exe = bin.join("python3");
            if exe.is_file() {
                prefixes.extend(bin.parent().map(Path::to_path_buf));
                if let Some(real) =
                    std::fs::canonicalize(&exe).ok().and_then(|r| r.parent()?.parent().map(Path::to_path_buf))
                {
                    prefixes.push(real);
                }
            }
        }
    }
    prefixes.extend(["/usr/local", "/usr"].map(PathBuf::from));
    let mut dirs = Vec::new();
    for prefix in prefixes {
        let Ok(entries) = std::fs::read_dir(prefix.join("lib")) else { continue };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("python3") {
                for site in ["site-packages", "dist-packages"] {
                    dirs.push(entry.path().join(site).join("onnxruntime/capi"));
                }
            }
        }
    }
    dirs.push(PathBuf::from("/usr/lib/python3/dist-packages/onnxruntime/capi"));
    dirs.retain(|d| d.is_dir());
    dirs.dedup();
    dirs
}

/// The version string of the (already loaded) library, from its `OrtGetApiBase`.
fn ort_version(library: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(library.as_os_str().as_bytes()).ok()?;
    // SAFETY: RTLD_NOLOAD only returns a handle to a library that is already loaded (ort loaded it); the symbol
    // is ONNX Runtime's documented C entry point, and GetVersionString returns a static NUL-terminated string.
    unsafe {
        let handle = libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        if handle.is_null() {
            return None;
        }
        let sym = libc::dlsym(handle, c"OrtGetApiBase".as_ptr());
        let version = (!sym.is_null()).then(|| {
            let get_base: unsafe extern "C" fn() -> *const ort::sys::OrtApiBase = std::mem::transmute(sym);
            let base = get_base();
            std::ffi::CStr::from_ptr(((*base).GetVersionString)()).to_string_lossy().into_owned()
        });
        libc::dlclose(handle);
        version
    }
}

fn available_providers() -> Option<Vec<String>> {
    use ort::ep::ExecutionProvider;
    let mut v = vec!["CPUExecutionProvider".to_string()];
    if ort::ep::CUDA::is_available().ok()? {
        v.push("CUDAExecutionProvider".into());
    }
    Some(v)
}

/// The path the loader actually used for a bare library name.
fn loaded_library_path() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("libonnxruntime.so"))
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_resolution_prefers_plain_name_then_highest_version() {
        let dir = std::env::temp_dir().join(format!("unet-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for n in ["libonnxruntime.so.1.9.0", "libonnxruntime.so.1.31.1", "other.so"] {
            std::fs::write(dir.join(n), b"").unwrap();
        }
        assert_eq!(resolve_library(&dir).unwrap().file_name().unwrap(), "libonnxruntime.so.1.31.1");
        std::fs::write(dir.join("libonnxruntime.so"), b"").unwrap();
        assert_eq!(resolve_library(&dir).unwrap().file_name().unwrap(), "libonnxruntime.so");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
