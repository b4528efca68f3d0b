//! The C ABI: a thin skin over the Rust API. Every entry point goes through [`ffi_entry!`], which catches panics
//! and turns errors into a [`UnetStatus`] plus a thread-local message; pointers are turned into references only
//! by the helpers below, which reject NULL, misalignment and short structs with their own status codes.

pub mod error;
pub mod model;
pub mod segment;
pub mod weight_map;

use std::{
    cell::RefCell,
    ffi::{CStr, CString, c_char},
    mem::{align_of, size_of},
};

use crate::error::{Error, Result, UnetStatus};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Runs an entry point's body: `Ok` clears the thread's last error, `Err` records its message, a panic becomes
/// `UNET_STATUS_PANIC` with the panic's message. Nothing unwinds into C.
macro_rules! ffi_entry {
    ($name:literal, $body:block) => {{
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> $crate::error::Result<()> { $body }));
        $crate::ffi::finish($name, result)
    }};
}
pub(crate) use ffi_entry;

pub(crate) fn finish(name: &str, result: std::thread::Result<Result<()>>) -> UnetStatus {
    match result {
        Ok(Ok(())) => {
            set_last_error("");
            UnetStatus::Ok
        }
        Ok(Err(e)) => {
            set_last_error(&format!("{name}: {}", e.message()));
            e.status()
        }
        Err(panic) => {
            record_panic(name, panic);
            UnetStatus::Panic
        }
    }
}

fn record_panic(name: &str, panic: Box<dyn std::any::Any + Send>) {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    set_last_error(&format!("{name}: internal error (please report): {what}"));
}

/// The panic boundary of entry points that return nothing (the free functions): a panic never unwinds into C and
/// its message goes to unet_last_error(); otherwise the last error is left as it was.
pub(crate) fn ffi_void(name: &str, body: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        record_panic(name, panic);
    }
}

/// The conversion from a C enum's `uint32_t` field to its Rust enum (rustls-ffi's `u32_enum_builder` idea): the
/// values are the enum's own discriminants, never numbers repeated at the match sites. An unknown value is an
/// INVALID_ARGUMENT naming the field.
macro_rules! u32_enum {
    ($ty:ident { $($variant:ident),+ $(,)? }) => {
        impl $ty {
            pub(crate) fn from_u32(v: u32) -> Option<Self> {
                $(if v == $ty::$variant as u32 {
                    return Some($ty::$variant);
                })+
                None
            }

            /// The value of `field`, or an error naming it.
            #[allow(dead_code)]
            pub(crate) fn from_field(v: u32, field: &str) -> $crate::error::Result<Self> {
                Self::from_u32(v).ok_or_else(|| {
                    $crate::error::Error::invalid_argument(format!(
                        "{field} is {v}, not a {} value ({})",
                        stringify!($ty),
                        [$(format!("{} = {}", stringify!($variant), $ty::$variant as u32)),+].join(", ")
                    ))
                })
            }
        }
    };
}
pub(crate) use u32_enum;

pub(crate) fn null(name: &str) -> Error {
    Error::new(UnetStatus::NullArgument, format!("argument `{name}` is NULL"))
}

/// Checks that a non-NULL pointer is aligned for `T`.
pub(crate) fn check_aligned<T>(p: *const T, name: &str) -> Result<()> {
    if !(p as usize).is_multiple_of(align_of::<T>()) {
        return Err(Error::new(
            UnetStatus::Misaligned,
            format!("`{name}` ({p:p}) is not aligned to {} bytes for its element type", align_of::<T>()),
        ));
    }
    Ok(())
}

/// A reference from a pointer that must not be NULL.
///
/// # Safety
/// `p` must be NULL or point to a valid `T` for `'a`.
pub(crate) unsafe fn try_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T> {
    if p.is_null() {
        return Err(null(name));
    }
    check_aligned(p, name)?;
    // SAFETY: non-NULL and aligned; validity is the caller's contract.
    Ok(unsafe { &*p })
}

/// Writes `value` through a pointer that must not be NULL and must be aligned (an out-parameter or an init
/// function's struct): the one place these three checks and the write live.
///
/// # Safety
/// `p` must be NULL or point to a writable `T`.
pub(crate) unsafe fn try_write<T>(p: *mut T, value: T, name: &str) -> Result<()> {
    if p.is_null() {
        return Err(null(name));
    }
    check_aligned(p, name)?;
    // SAFETY: non-NULL and aligned; writability is the caller's contract. `write` drops nothing old.
    unsafe { p.write(value) };
    Ok(())
}

/// Structs that begin with `uint32_t struct_size` and may grow in later versions by appending fields.
pub(crate) trait Versioned: Copy {
    /// Size of the first published version (v0.1): callers must pass at least this. Frozen with [`frozen_v1_size!`]
    /// so that appending a field never turns away a caller compiled against an older header.
    const V1_SIZE: usize;
    fn defaults() -> Self;
}

/// The first-version size of a struct as a literal, checked at compile time against the end of its last v0.1
/// field (rounded up to the struct's alignment) on 64-bit targets, where the literal was measured.
macro_rules! frozen_v1_size {
    ($literal:literal, $ty:ty, $last_field:ident : $field_ty:ty) => {{
        const END: usize = std::mem::offset_of!($ty, $last_field) + std::mem::size_of::<$field_ty>();
        const ALIGN: usize = std::mem::align_of::<$ty>();
        const PREFIX: usize = END.div_ceil(ALIGN) * ALIGN;
        #[cfg(target_pointer_width = "64")]
        const _: () = assert!(PREFIX == $literal, "the v0.1 prefix of this struct changed: that breaks old callers");
        PREFIX
    }};
}
pub(crate) use frozen_v1_size;

/// Writes an output struct: only the bytes the caller's version has (its `struct_size`, at least V1_SIZE, checked by
/// [`read_versioned`] before), and never the caller's `struct_size` itself.
///
/// # Safety
/// `p` must point to at least its `struct_size` writable bytes, and that size must be >= `T::V1_SIZE`.
pub(crate) unsafe fn write_versioned<T: Versioned>(p: *mut T, value: &T) {
    // SAFETY: see the contract; every versioned struct starts with a u32 `struct_size`.
    let size = unsafe { *(p as *const u32) } as usize;
    let n = size.min(size_of::<T>());
    let skip = size_of::<u32>();
    // SAFETY: n <= both sizes, and the source is a whole T.
    unsafe {
        std::ptr::copy_nonoverlapping((value as *const T as *const u8).add(skip), (p as *mut u8).add(skip), n - skip)
    };
}

/// Reads a versioned struct: fields the caller's version has are copied, newer ones keep their defaults.
///
/// # Safety
/// `p` must be NULL or point to at least `struct_size` readable bytes.
pub(crate) unsafe fn read_versioned<T: Versioned>(p: *const T, name: &str) -> Result<Option<T>> {
    if p.is_null() {
        return Ok(None);
    }
    check_aligned(p, name)?;
    // SAFETY: every versioned struct starts with a u32 `struct_size`.
    let size = unsafe { *(p as *const u32) } as usize;
    if size < T::V1_SIZE {
        return Err(Error::new(
            UnetStatus::StructVersion,
            format!("`{name}->struct_size` is {size}, at least {} expected (use the *_init function)", T::V1_SIZE),
        ));
    }
    let mut value = T::defaults();
    let n = size.min(size_of::<T>());
    // SAFETY: the caller vouches for `size` bytes; every field of these structs is valid for any bit pattern
    // (integers, floats, raw pointers, nullable function pointers).
    unsafe { std::ptr::copy_nonoverlapping(p as *const u8, &mut value as *mut T as *mut u8, n) };
    Ok(Some(value))
}

/// A path or name argument: NULL means "not given".
///
/// # Safety
/// `p` must be NULL or a NUL-terminated string.
pub(crate) unsafe fn opt_cstr<'a>(p: *const c_char) -> Option<&'a CStr> {
    // SAFETY: see the function contract.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) })
}

pub(crate) fn cstr_to_path(s: &CStr) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    std::path::PathBuf::from(std::ffi::OsStr::from_bytes(s.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fail: bool) -> UnetStatus {
        ffi_entry!("test_entry", {
            if fail {
                panic!("boom {}", 42);
            }
            Ok(())
        })
    }

    #[test]
    fn void_entry_points_catch_panics_too() {
        set_last_error("earlier");
        ffi_void("unet_void", || {});
        assert_eq!(unsafe { CStr::from_ptr(last_error_ptr()) }.to_bytes(), b"earlier", "success leaves it");
        ffi_void("unet_void", || panic!("in a destructor"));
        let msg = unsafe { CStr::from_ptr(last_error_ptr()) }.to_str().unwrap().to_string();
        assert!(msg.contains("unet_void") && msg.contains("in a destructor"), "{msg}");
    }

    #[test]
    fn c_enum_values_come_from_the_enums() {
        use super::{model::UnetProvider, segment::UnetInstances};
        assert_eq!(UnetInstances::from_u32(UnetInstances::Watershed as u32), Some(UnetInstances::Watershed));
        assert_eq!(UnetProvider::from_u32(3), None);
        let e = UnetInstances::from_field(7, "options->instances").unwrap_err();
        assert_eq!(e.status(), UnetStatus::InvalidArgument);
        assert!(e.message().contains("options->instances is 7") && e.message().contains("Watershed = 2"), "{e}");
    }

    #[test]
    fn panics_become_a_status_and_a_message() {
        assert_eq!(entry(true), UnetStatus::Panic);
        let msg = unsafe { CStr::from_ptr(last_error_ptr()) }.to_str().unwrap().to_string();
        assert!(msg.contains("test_entry") && msg.contains("boom 42"), "{msg}");
        assert_eq!(entry(false), UnetStatus::Ok);
        assert_eq!(unsafe { CStr::from_ptr(last_error_ptr()) }.to_bytes(), b"");
    }
}
