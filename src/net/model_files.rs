//! Model files: the models compiled into the library (by name) and reading a model file safely (regular files
//! only, at most 2 GiB).

use std::path::Path;

use crate::error::{Error, Result, UnetStatus};

/// The model compiled into the library, if this build has one (`onnx/default.onnx`).
#[cfg(unet_default_model)]
pub const EMBEDDED_DEFAULT: Option<&[u8]> =
    Some(include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/onnx/default.onnx")));
#[cfg(not(unet_default_model))]
pub const EMBEDDED_DEFAULT: Option<&[u8]> = None;

/// The electron-microscopy membrane model (`onnx/em.onnx`, the paper's first experiment), if this build has one.
#[cfg(unet_em_model)]
pub const EMBEDDED_EM: Option<&[u8]> = Some(include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/onnx/em.onnx")));
#[cfg(not(unet_em_model))]
pub const EMBEDDED_EM: Option<&[u8]> = None;

/// The cell model (`onnx/cells.onnx`): the previous default (ft6), for DIC and phase-contrast cells (HeLa-, U373-like),
/// stored in float16, if this build has one.
#[cfg(unet_cells_model)]
pub const EMBEDDED_CELLS: Option<&[u8]> = Some(include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/onnx/cells.onnx")));
#[cfg(not(unet_cells_model))]
pub const EMBEDDED_CELLS: Option<&[u8]> = None;

/// Names of the models compiled into the library; each loads with `Model::named` or in place of a path.
pub const MODEL_NAMES: [&str; 3] = ["default", "em", "cells"];

/// The embedded model a path stands for: its name when it is one of [`MODEL_NAMES`] and no file of that name
/// exists (a file always wins).
pub fn model_name_of(path: &Path) -> Option<&str> {
    path.to_str().filter(|name| MODEL_NAMES.contains(name) && !path.exists())
}

/// The bytes of the embedded model called `name` ("default", "em" or "cells"); `None` for an unknown name or a build
/// without that model.
pub fn embedded_model(name: &str) -> Option<&'static [u8]> {
    match name {
        "default" => EMBEDDED_DEFAULT,
        "em" => EMBEDDED_EM,
        "cells" => EMBEDDED_CELLS,
        _ => None,
    }
}

/// The largest model file read: protobuf (hence ONNX with weights inside) cannot exceed 2 GiB.
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

/// Reads a model file: only a regular file (not a device such as /dev/zero or a FIFO), at most MAX_MODEL_BYTES.
pub(crate) fn read_model_file(path: &Path) -> Result<Vec<u8>> {
    let not_found = |e: std::io::Error| {
        Error::new(
            UnetStatus::ModelNotFound,
            format!(
                "cannot read model file {}: {e} (the embedded models load by name: {})",
                path.display(),
                MODEL_NAMES.join(", ")
            ),
        )
    };
    let meta = std::fs::metadata(path).map_err(not_found)?;
    if !meta.is_file() {
        return Err(Error::new(
            UnetStatus::ModelInvalid,
            format!("{} is not a regular file (a device, folder or pipe cannot hold a model)", path.display()),
        ));
    }
    if meta.len() > MAX_MODEL_BYTES {
        return Err(Error::new(
            UnetStatus::ModelInvalid,
            format!("{} has {} bytes; an ONNX model holds at most 2 GiB", path.display(), meta.len()),
        ));
    }
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(meta.len() as usize).map_err(|_| {
        Error::new(UnetStatus::OutOfMemory, format!("cannot allocate {} bytes for {}", meta.len(), path.display()))
    })?;
    use std::io::Read;
    std::fs::File::open(path).and_then(|f| f.take(MAX_MODEL_BYTES + 1).read_to_end(&mut bytes)).map_err(not_found)?;
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(Error::new(UnetStatus::ModelInvalid, format!("{} grew past 2 GiB while read", path.display())));
    }
    Ok(bytes)
}

/// The bytes of a model file, or of an embedded model by name ("default", "em", "cells") when no such file exists.
pub fn model_file_bytes(path_or_name: &str) -> Result<std::borrow::Cow<'static, [u8]>> {
    let path = Path::new(path_or_name);
    match model_name_of(path) {
        Some(name) => embedded_model(name).map(std::borrow::Cow::Borrowed).ok_or_else(|| {
            Error::new(UnetStatus::NoDefaultModel, format!("this build has no embedded model '{name}'"))
        }),
        None => read_model_file(path).map(std::borrow::Cow::Owned),
    }
}
