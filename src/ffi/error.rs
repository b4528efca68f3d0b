//! Errors and version across the C ABI.

use std::ffi::c_char;

use crate::error::UnetStatus;

/// Major version of this library; the C ABI is stable within a major version.
pub const UNET_VERSION_MAJOR: u32 = 0;
/// Minor version of this library.
pub const UNET_VERSION_MINOR: u32 = 4;
/// Patch version of this library.
pub const UNET_VERSION_PATCH: u32 = 0;

/// The message of the last failed call on this thread ("" after a successful call). The string stays valid
/// until the next unet call on the same thread. Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn unet_last_error() -> *const c_char {
    super::last_error_ptr()
}

/// A fixed description of a status code, or "unknown status" for a value not in UnetStatus. Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn unet_status_string(status: i32) -> *const c_char {
    static STRINGS: once_cell::sync::Lazy<Vec<std::ffi::CString>> = once_cell::sync::Lazy::new(|| {
        UnetStatus::ALL.iter().map(|s| std::ffi::CString::new(s.description()).unwrap()).collect()
    });
    usize::try_from(status).ok().and_then(|i| STRINGS.get(i)).map_or(c"unknown status".as_ptr(), |s| s.as_ptr())
}

/// The library's version, "MAJOR.MINOR.PATCH". Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn unet_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_constants_match_the_crate() {
        assert_eq!(UNET_VERSION_MAJOR.to_string(), env!("CARGO_PKG_VERSION_MAJOR"));
        assert_eq!(UNET_VERSION_MINOR.to_string(), env!("CARGO_PKG_VERSION_MINOR"));
        assert_eq!(UNET_VERSION_PATCH.to_string(), env!("CARGO_PKG_VERSION_PATCH"));
        let v = unsafe { std::ffi::CStr::from_ptr(unet_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
