//! One error type for the whole library. Its [`UnetStatus`] is the stable code the C ABI returns; the message is
//! what `unet_last_error()` hands to C callers and what the CLI prints.

use std::{fmt, sync::Arc};

/// Status codes returned by every C entry point. The numbering is stable: new codes are only appended.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnetStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument has a value outside its documented range (an unknown enum value, a bad option).
    InvalidArgument = 2,
    /// A width, height or channel count is zero or absurdly large.
    InvalidSize = 3,
    /// width * height * channels * bytes per pixel does not fit in memory addresses.
    SizeOverflow = 4,
    /// A row stride is smaller than a row, or not a multiple of the pixel size.
    InvalidStride = 5,
    /// The pixel type is not one this call takes (u8, u16, u32 or f32 images; u8, u16 or u32 labels).
    UnsupportedDtype = 6,
    /// The image contains NaN or infinite pixels (they are rejected, never silently replaced).
    NonFinitePixel = 7,
    /// An output buffer is smaller than width * height elements.
    BufferTooSmall = 8,
    /// The model file does not exist or cannot be read.
    ModelNotFound = 9,
    /// The model file is not a valid ONNX model (empty, truncated, or another format).
    ModelInvalid = 10,
    /// The model is valid ONNX but not a U-Net this library can run (shapes, types or metadata).
    ModelIncompatible = 11,
    /// No default model is embedded in this build.
    NoDefaultModel = 12,
    /// The ONNX Runtime shared library was not found or could not be loaded.
    RuntimeNotFound = 13,
    /// ONNX Runtime reported an error while running.
    RuntimeError = 14,
    /// The requested execution provider is not available.
    ProviderUnavailable = 15,
    /// The progress callback asked to stop.
    Cancelled = 16,
    /// Memory could not be allocated.
    OutOfMemory = 17,
    /// The image's channel count differs from the model's input channels.
    ChannelMismatch = 18,
    /// A struct's `struct_size` is smaller than the first version of that struct.
    StructVersion = 19,
    /// An internal error (a Rust panic) was caught at the C boundary.
    Panic = 20,
    /// A pixel or output pointer is not aligned for its element type.
    Misaligned = 21,
    /// An input or output file could not be read or written (CLI and file helpers).
    Io = 22,
}

impl UnetStatus {
    /// A short, fixed description of the code.
    pub fn description(self) -> &'static str {
        use UnetStatus::*;
        match self {
            Ok => "success",
            NullArgument => "a required pointer argument is NULL",
            InvalidArgument => "an argument is out of range",
            InvalidSize => "a size is zero or too large",
            SizeOverflow => "the image size overflows",
            InvalidStride => "invalid row stride",
            UnsupportedDtype => "unsupported pixel type",
            NonFinitePixel => "the image contains NaN or infinite pixels",
            BufferTooSmall => "an output buffer is too small",
            ModelNotFound => "model file not found or unreadable",
            ModelInvalid => "not a valid ONNX model",
            ModelIncompatible => "the model is not a compatible U-Net",
            NoDefaultModel => "no default model is embedded in this build",
            RuntimeNotFound => "ONNX Runtime library not found",
            RuntimeError => "ONNX Runtime error",
            ProviderUnavailable => "execution provider unavailable",
            Cancelled => "cancelled by the progress callback",
            OutOfMemory => "out of memory",
            ChannelMismatch => "image channels differ from the model's input channels",
            StructVersion => "struct_size is too small for this struct",
            Panic => "internal error (caught panic)",
            Misaligned => "pointer not aligned for its element type",
            Io => "file input/output error",
        }
    }

    /// Every code, in numeric order (used by tests and by `unet_status_string`).
    pub const ALL: [UnetStatus; 23] = {
        use UnetStatus::*;
        [
            Ok,
            NullArgument,
            InvalidArgument,
            InvalidSize,
            SizeOverflow,
            InvalidStride,
            UnsupportedDtype,
            NonFinitePixel,
            BufferTooSmall,
            ModelNotFound,
            ModelInvalid,
            ModelIncompatible,
            NoDefaultModel,
            RuntimeNotFound,
            RuntimeError,
            ProviderUnavailable,
            Cancelled,
            OutOfMemory,
            ChannelMismatch,
            StructVersion,
            Panic,
            Misaligned,
            Io,
        ]
    };
}

/// The library's error: a stable status code, a message that names the problem, and the underlying error (an
/// ONNX Runtime or I/O error) when there is one, for `source()` chains.
#[derive(Clone, Debug)]
pub struct Error {
    status: UnetStatus,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Two errors are equal when their status and message are (the cause is for humans and logs).
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.status == other.status && self.message == other.message
    }
}
impl Eq for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(status: UnetStatus, message: impl Into<String>) -> Self {
        debug_assert!(status != UnetStatus::Ok);
        Error { status, message: message.into(), source: None }
    }

    /// Keeps `cause` as this error's `source()`.
    pub fn caused_by(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(cause));
        self
    }

    pub fn status(&self) -> UnetStatus {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with context, keeping the status and the cause.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Error::new(UnetStatus::InvalidArgument, message)
    }

    /// An ONNX Runtime failure while `what`, classified by ONNX Runtime's error code (not its message text).
    pub(crate) fn runtime(err: ort::Error, what: &str) -> Self {
        let status = status_of_runtime_code(err.code(), UnetStatus::RuntimeError);
        Error::new(status, format!("{what}: {err}")).caused_by(err)
    }
}

/// The status for an ONNX Runtime error code; `otherwise` for the codes that say nothing more specific (a generic
/// failure, a runtime exception: out of memory among them, which only the message tells).
pub(crate) fn status_of_runtime_code(code: ort::ErrorCode, otherwise: UnetStatus) -> UnetStatus {
    use ort::ErrorCode as C;
    match code {
        C::InvalidProtobuf | C::NoModel => UnetStatus::ModelInvalid,
        C::InvalidGraph | C::NotImplemented => UnetStatus::ModelIncompatible,
        C::ExecutionProviderFailure | C::DeviceReset => UnetStatus::ProviderUnavailable,
        C::ModelLoadCanceled => UnetStatus::Cancelled,
        _ => otherwise,
    }
}

/// I/O failures: status Io, the `io::Error` kept as the cause. Add the path with [`Error::context`].
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let status = if e.kind() == std::io::ErrorKind::OutOfMemory { UnetStatus::OutOfMemory } else { UnetStatus::Io };
        Error::new(status, e.to_string()).caused_by(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_dense() {
        for (i, status) in UnetStatus::ALL.iter().enumerate() {
            assert_eq!(*status as i32, i as i32, "{status:?} moved");
            assert!(!status.description().is_empty());
        }
    }

    #[test]
    fn causes_are_kept_and_io_errors_convert() {
        use std::error::Error as _;
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = Error::from(io).context("writing /x");
        assert_eq!(e.status(), UnetStatus::Io);
        assert_eq!(e.message(), "writing /x: denied");
        assert_eq!(e.source().unwrap().to_string(), "denied");
        assert!(Error::new(UnetStatus::Io, "plain").source().is_none());
        // Equality ignores the cause.
        assert_eq!(Error::new(UnetStatus::Io, "denied"), Error::from(std::io::Error::other("denied")));
    }
}
