//! Compiles tests/c/test_abi.c with the system C compiler against include/unet.h and the built libunet.so, and
//! runs it: the bad-input table, real segmentation, progress/cancel and threads, all from C. A second run checks
//! that ONNX Runtime is found in the folder of libunet.so when nothing else points to it.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use prost::Message;
use unet::{
    Architecture,
    onnx::proto::{DimensionValue, ModelProto},
};

/// target/<profile>, where cargo put libunet.so (the test binary lives in target/<profile>/deps).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(
        dir.join("libunet.so").exists(),
        "libunet.so not found in {}: `cargo test` does not build the cdylib; run `cargo build` first (make test does)",
        dir.display()
    );
    dir
}

fn prepare_models(dir: &Path) {
    let baseline = unet::baseline::onnx_bytes();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    write("baseline.onnx", &baseline);
    write("garbage.onnx", b"this is not an ONNX model, just some text that happens to be here");
    write("truncated.onnx", &baseline[..baseline.len() / 2]);
    write("empty.onnx", b"");
    let mut nometa = ModelProto::decode(baseline.as_slice()).unwrap();
    nometa.metadata_props.clear();
    write("nometa.onnx", &nometa.encode_to_vec());
    let mut fixed = ModelProto::decode(baseline.as_slice()).unwrap();
    let graph = fixed.graph.as_mut().unwrap();
    for (i, d) in graph.input[0]
        .r#type
        .as_mut()
        .unwrap()
        .tensor_type
        .as_mut()
        .unwrap()
        .shape
        .as_mut()
        .unwrap()
        .dim
        .iter_mut()
        .enumerate()
    {
        if i >= 2 {
            d.value = Some(DimensionValue::DimValue(572));
        }
    }
    write("fixed.onnx", &fixed.encode_to_vec());
    // The baseline as if trained at 0.65 µm per pixel on 20-px objects (the pixel-size rule of unet_segment).
    let mut calibrated = unet::baseline::metadata();
    calibrated.pixel_size = Some(0.65);
    calibrated.object_size = Some(20.0);
    write("calibrated.onnx", &unet::onnx::encode_unet(&unet::baseline::weights(), &calibrated).unwrap());
    write(
        "rgb.onnx",
        &common::random_model_bytes(Architecture { in_channels: 3, classes: 2, base_width: 2, depth: 3 }, 4),
    );
}

fn compile(out: &Path) {
    compile_file("tests/c/test_abi.c", out)
}

fn compile_file(source: &str, out: &Path) {
    compile_with(source, out, &[])
}

fn compile_with(source: &str, out: &Path, extra: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let lib = lib_dir();
    let status = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1", "-D_GNU_SOURCE"])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join(source))
        .arg("-o")
        .arg(out)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lunet", "-lpthread", "-lm"])
        .args(extra)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc}: {e}"));
    assert!(status.success(), "compiling {source} failed");
}

#[test]
fn c_program_against_header_and_library() {
    let tmp = std::env::temp_dir().join(format!("unet-c-abi-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    prepare_models(&tmp);
    let exe = tmp.join("test_abi");
    compile(&exe);

    let output = Command::new(&exe).arg(&tmp).env("UNET_ORT_LIB", common::ort_lib()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the C test program failed");
    let summary = stdout.lines().find(|l| l.starts_with("C ABI:")).expect("summary line");
    let passed: usize = summary.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(passed >= 80, "{summary}");
    assert!(summary.ends_with(" 0 failed"), "{summary}");

    // The same program under AddressSanitizer and UndefinedBehaviorSanitizer (the C side: every buffer the tests
    // hand the library, read and written through the ABI). Leak checking is off: ONNX Runtime and the Rust runtime
    // keep process-lifetime allocations.
    let asan = tmp.join("test_abi_asan");
    compile_with("tests/c/test_abi.c", &asan, &["-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"]);
    let output = Command::new(&asan)
        .arg(&tmp)
        .env("UNET_ORT_LIB", common::ort_lib())
        .env("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "under ASan/UBSan: {stdout}\n{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("C ABI:") && l.ends_with(" 0 failed")), "{stdout}");
    assert!(!stderr.contains("runtime error") && !stderr.contains("AddressSanitizer"), "{stderr}");

    // ONNX Runtime beside libunet.so is found with no variable set (the plugin layout of every host).
    let bundle = tmp.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::copy(lib_dir().join("libunet.so"), bundle.join("libunet.so")).unwrap();
    let ort = std::fs::canonicalize(common::ort_lib().join("libonnxruntime.so")).unwrap();
    std::os::unix::fs::symlink(&ort, bundle.join("libonnxruntime.so.1.31.1")).unwrap();
    let output = Command::new(&exe)
        .arg(&tmp)
        .arg("discovery")
        .env_remove("UNET_ORT_LIB")
        .env("LD_LIBRARY_PATH", &bundle)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let expected = format!("ort_library={}", bundle.join("libonnxruntime.so.1.31.1").display());
    assert!(stdout.contains(&expected), "expected {expected}, got {stdout}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// C and the CLI give identical labels with the shipped default and everything left to it (its recommended
/// watershed, threshold and minimum size), on a synthetic nuclei image.
#[test]
fn c_and_the_cli_agree_on_the_default_model() {
    let tmp = std::env::temp_dir().join(format!("unet-c-cli-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let exe = tmp.join("test_abi");
    compile(&exe);
    let (w, h) = (300, 260);
    let img = unet::synthetic::nuclei(w, h, 31);
    let raw: Vec<u8> = img.pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(tmp.join("in.raw"), raw).unwrap();
    let tif = tmp.join("in.tif");
    unet::imageio::write_plane(&tif, unet::imageio::Plane::U16(&img.pixels), w, h).unwrap();
    let c = Command::new(&exe)
        .arg(&tmp)
        .args(["default-labels", tmp.join("in.raw").to_str().unwrap(), &w.to_string(), &h.to_string()])
        .arg(tmp.join("c.raw"))
        .env("UNET_ORT_LIB", common::ort_lib())
        .output()
        .unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stdout));
    let cli = Command::new(env!("CARGO_BIN_EXE_unet"))
        .arg("segment")
        .arg(&tif)
        .arg("--labels")
        .arg(tmp.join("cli.tif"))
        .env("UNET_ORT_LIB", common::ort_lib())
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let from_c: Vec<u32> = std::fs::read(tmp.join("c.raw"))
        .unwrap()
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let (from_cli, cw, ch) = unet::imageio::read_labels(&tmp.join("cli.tif")).unwrap();
    assert_eq!((cw, ch), (w, h));
    assert!(from_c.iter().max().unwrap() > &5, "the default finds the nuclei");
    assert_eq!(from_c, from_cli, "C and CLI labels differ");
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// A caller compiled against the v0.1 structs, and one with structs larger than today's, both work (and the
/// instance methods behave from C).
#[test]
fn old_and_newer_struct_versions() {
    let tmp = std::env::temp_dir().join(format!("unet-c-versions-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("baseline.onnx"), unet::baseline::onnx_bytes()).unwrap();
    let exe = tmp.join("test_struct_versions");
    compile_file("tests/c/test_struct_versions.c", &exe);
    let output = Command::new(&exe).arg(&tmp).env("UNET_ORT_LIB", common::ort_lib()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the struct-version program failed");
    let summary = stdout.lines().find(|l| l.starts_with("struct versions:")).expect("summary line");
    assert!(summary.ends_with(" 0 failed") && !summary.contains(": 0 passed"), "{summary}");
    std::fs::remove_dir_all(&tmp).unwrap();
}
