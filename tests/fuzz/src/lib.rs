//! Helpers shared by the fuzz targets: a byte reader that turns the fuzzer's input into parameters, and the
//! C ABI's status check (a panic caught at the boundary is still a finding).

use std::ffi::CStr;

use unet::{UnetStatus, ffi::error::unet_last_error};

/// Reads parameters from the front of the input; past its end every read is 0.
pub struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, at: 0 }
    }
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub fn f32(&mut self) -> f32 {
        f32::from_bits(self.u32())
    }
    /// What is left of the input.
    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.at.min(self.data.len())..]
    }
}

/// `n` bytes made from `seed` (repeated, or zeros when it is empty).
pub fn fill(seed: &[u8], n: usize) -> Vec<u8> {
    if seed.is_empty() { vec![0; n] } else { seed.iter().copied().cycle().take(n).collect() }
}

/// A status is a finding when it reports a panic or when a failure leaves no readable message.
pub fn check_status(status: UnetStatus, call: &str) {
    assert!(status != UnetStatus::Panic, "{call} panicked: {}", last_error());
    if status != UnetStatus::Ok {
        let message = last_error();
        assert!(!message.is_empty(), "{call} returned {status:?} without a message");
    }
}

pub fn last_error() -> String {
    // SAFETY: unet_last_error returns NULL or a NUL-terminated string valid until the next call on this thread.
    let p = unet_last_error();
    if p.is_null() { String::new() } else { unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned() }
}
