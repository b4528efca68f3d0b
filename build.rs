//! Build script: generates the C header with cbindgen and sets the cdylib's SONAME.
//!
//! The header is always generated into `OUT_DIR/unet.h`; the committed `include/unet.h` is only rewritten when
//! `UNET_WRITE_HEADER=1` (see `make header`), and a test fails when the two differ, so a stale header never ships.

use std::{env, path::PathBuf};

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

    // Without a SONAME, CMake bakes the absolute build path of libunet.so into every program that links it.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libunet.so");

    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=src/error.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=onnx/default.onnx");
    println!("cargo:rerun-if-changed=onnx/em.onnx");
    println!("cargo:rerun-if-env-changed=UNET_WRITE_HEADER");

    // The default model is embedded when the repository ships one.
    println!("cargo::rustc-check-cfg=cfg(unet_default_model)");
    if crate_dir.join("onnx/default.onnx").is_file() {
        println!("cargo:rustc-cfg=unet_default_model");
    }
    println!("cargo::rustc-check-cfg=cfg(unet_em_model)");
    if crate_dir.join("onnx/em.onnx").is_file() {
        println!("cargo:rustc-cfg=unet_em_model");
    }
    println!("cargo::rustc-check-cfg=cfg(unet_cells_model)");
    if crate_dir.join("onnx/cells.onnx").is_file() {
        println!("cargo:rustc-cfg=unet_cells_model");
    }

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    let generated = out_dir.join("unet.h");
    // Only the C-facing sources: other public constants of the Rust API do not belong in the header.
    // cbindgen follows `mod` declarations from src/ffi/mod.rs into the other ffi files.
    let builder = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/error.rs"))
        .with_src(crate_dir.join("src/ffi/mod.rs"));
    match builder.generate() {
        Ok(bindings) => {
            bindings.write_to_file(&generated);
        }
        Err(err) => panic!("cbindgen could not generate the C header: {err}"),
    }
    println!("cargo:rustc-env=UNET_GENERATED_HEADER={}", generated.display());
    if env::var("UNET_WRITE_HEADER").as_deref() == Ok("1") {
        std::fs::copy(&generated, crate_dir.join("include/unet.h")).expect("write include/unet.h");
    }
}
