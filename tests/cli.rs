//! The `unet` command line, run as a user runs it.

mod common;

use std::process::Command;

fn unet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_unet"));
    c.env("UNET_ORT_LIB", common::ort_lib());
    c
}

#[test]
fn sample_segment_and_outputs() {
    let dir = std::env::temp_dir().join(format!("unet-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (img, truth) = (dir.join("sample.tif"), dir.join("truth.tif"));
    let out = unet()
        .args(["sample-image", "--width", "300", "--height", "200", "--cells", "12", "--seed", "4"])
        .arg(&img)
        .arg("--labels")
        .arg(&truth)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The baseline model, whose behaviour on bright cells is known (the embedded default changes when retrained).
    let baseline = dir.join("baseline.onnx");
    assert!(unet().arg("export-baseline").arg(&baseline).status().unwrap().success());
    let (mask, labels, probs) = (dir.join("mask.png"), dir.join("labels.tif"), dir.join("probs.tif"));
    let out = unet()
        .arg("segment")
        .arg(&img)
        .arg("--model")
        .arg(&baseline)
        .arg("-o")
        .arg(&mask)
        .arg("--labels")
        .arg(&labels)
        .arg("--probabilities")
        .arg(&probs)
        .args(["--tile", "100", "--provider", "cpu", "--quiet"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // --tile is an upper bound; the planner spreads tiles evenly, so they may be smaller.
    let tile: usize = stderr
        .split("tile(s) of ")
        .nth(1)
        .and_then(|s| s.split('x').next())
        .and_then(|s| s.parse().ok())
        .expect(&stderr);
    assert!((20..=100).contains(&tile), "{stderr}");
    assert!(stderr.contains("pixels it outputs"), "tiles this small are mostly context, and the CLI says so: {stderr}");

    let m = unet::imageio::read_image(&mask).unwrap();
    let unet::imageio::PixelBuffer::U8(m) = m.pixels else { panic!("mask is not 8-bit") };
    assert!(m.iter().all(|&v| v == 0 || v == 255));
    let (l, w, h) = unet::imageio::read_labels(&labels).unwrap();
    assert_eq!((w, h), (300, 200));
    let count = *l.iter().max().unwrap();
    assert!(stderr.contains(&format!("{count} instance(s)")), "{stderr}");
    let (t, _, _) = unet::imageio::read_labels(&truth).unwrap();
    // Foreground agrees with the ground truth on nearly every pixel (touching cells may merge: instances <= cells).
    let agree = l.iter().zip(&t).filter(|(a, b)| (**a != 0) == (**b != 0)).count() as f64 / l.len() as f64;
    assert!(agree > 0.97, "foreground agreement {agree}");
    assert!(count >= 1 && count <= *t.iter().max().unwrap());
    let p = unet::imageio::read_image(&probs).unwrap();
    assert!(matches!(p.pixels, unet::imageio::PixelBuffer::F32(_)));

    // One summary line by default (provider, instances); no labels asked for says so instead of "0 instance(s)";
    // --verbose adds the model's details and the time line.
    let brief = unet().arg("segment").arg(&img).args(["--model"]).arg(&baseline).arg("-o").arg(&mask).output().unwrap();
    let said = String::from_utf8_lossy(&brief.stderr);
    assert!(
        brief.status.success() && said.contains("on cpu") && said.contains("no instance labels computed"),
        "{said}"
    );
    assert!(!said.contains("provenance") && !said.contains("time:"), "{said}");
    let verbose = unet()
        .arg("segment")
        .arg(&img)
        .arg("--model")
        .arg(&baseline)
        .arg("--labels")
        .arg(&labels)
        .arg("--verbose")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verbose.stderr);
    assert!(said.contains("provenance") && said.contains("time:") && said.contains("instance(s)"), "{said}");
    // The format follows the extension: a name asking for another format is refused before anything runs.
    for (flag, name) in [("-o", "mask.jpg"), ("--labels", "labels.bmp"), ("--overlay", "overlay.tif")] {
        let out = unet()
            .arg("segment")
            .arg(&img)
            .arg("--model")
            .arg(&baseline)
            .arg(flag)
            .arg(dir.join(name))
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && said.contains(name) && said.contains(".png"), "{flag} {name}: {said}");
        assert!(!dir.join(name).exists(), "{name} was written");
    }
    // A binary 0/255 truth is scored by its connected components, and the output says so.
    let binary: Vec<u8> = t.iter().map(|&v| if v != 0 { 255 } else { 0 }).collect();
    let binary_truth = dir.join("binary-truth.png");
    unet::imageio::write_plane(&binary_truth, unet::imageio::Plane::U8(&binary), 300, 200).unwrap();
    let out = unet()
        .arg("segment")
        .arg(&img)
        .arg("--model")
        .arg(&baseline)
        .arg("--truth")
        .arg(&binary_truth)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("connected components of a binary mask") && said.contains("AP@0.5"), "{said}");
    assert!(!said.contains("(1 objects"), "{said}");

    // Errors are reported, not crashed on.
    let out = unet().arg("segment").arg(dir.join("nope.tif")).arg("-o").arg(&mask).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.tif"));
    let out = unet().arg("segment").arg(&img).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "nothing to write is an error exit");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to write"));
    for bad in ["5", "6", "7", "0"] {
        let out = unet().arg("segment").arg(&img).arg("-o").arg(&mask).args(["--connectivity", bad]).output().unwrap();
        assert!(!out.status.success(), "--connectivity {bad} was accepted");
    }
    // --overlay and --truth: a picture and a score against the ground truth (the watershed splits what touches).
    let overlay = dir.join("overlay.png");
    let out = unet()
        .arg("segment")
        .arg(&img)
        .arg("--model")
        .arg(&baseline)
        .arg("--overlay")
        .arg(&overlay)
        .arg("--truth")
        .arg(&truth)
        .args(["--instances", "watershed", "--quiet"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seg: f64 =
        stdout.split("SEG ").nth(1).and_then(|s| s.split(',').next()).and_then(|s| s.parse().ok()).expect(&stdout);
    assert!(seg > 0.7, "{stdout}");
    let picture = unet::imageio::read_image(&overlay).unwrap();
    assert_eq!((picture.width, picture.height, picture.channels), (300, 200, 3));
    let unet::imageio::PixelBuffer::U8(rgb) = picture.pixels else { panic!("overlay is not 8-bit") };
    let coloured = rgb.chunks(3).filter(|p| p[0] != p[1] || p[1] != p[2]).count();
    assert!(coloured > 100, "{coloured} outline pixels");
    // --tta and --watershed-seed reach the library: the probabilities change (a random network is not
    // mirror-symmetric), and an impossible seed is refused with the reason.
    let random = dir.join("random.onnx");
    assert!(unet().args(["init-model", "--base-width", "4"]).arg(&random).output().unwrap().status.success());
    let probabilities_with = |extra: &[&str]| {
        let p = dir.join("p.tif");
        let out = unet()
            .arg("segment")
            .arg(&img)
            .arg("--model")
            .arg(&random)
            .arg("--probabilities")
            .arg(&p)
            .args(extra)
            .arg("--quiet")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let unet::imageio::PixelBuffer::F32(v) = unet::imageio::read_image(&p).unwrap().pixels else { panic!() };
        v
    };
    let (plain, tta) = (probabilities_with(&[]), probabilities_with(&["--tta"]));
    let changed = plain.iter().zip(&tta).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(changed > 1e-4, "--tta changed nothing ({changed})");
    let out = unet()
        .arg("segment")
        .arg(&img)
        .arg("-o")
        .arg(&mask)
        .args(["--instances", "watershed", "--watershed-seed", "1.5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("seed"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = unet().arg("info").args(["--provider", "cuda"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CUDA was requested"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Looking for ONNX Runtime never runs a program: a `python3` first on PATH (inside Fiji or a microscope program it
/// could be anything) is not executed, neither when UNET_ORT_LIB points at the library nor when the search has to
/// find the Python package, which it then does by the interpreter's location alone.
#[test]
fn runtime_search_never_executes_python_from_path() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("unet-cli-path-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (bin, capi) = (dir.join("env/bin"), dir.join("env/lib/python3.11/site-packages/onnxruntime/capi"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&capi).unwrap();
    let marker = dir.join("python3-was-run");
    let fake = bin.join("python3");
    std::fs::write(&fake, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let real = std::fs::canonicalize(common::ort_lib().join("libonnxruntime.so")).unwrap();
    std::os::unix::fs::symlink(&real, capi.join("libonnxruntime.so.1.31.1")).unwrap();
    let baseline = dir.join("baseline.onnx");
    std::fs::write(&baseline, unet::baseline::onnx_bytes()).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let info = |ort: Option<&std::path::Path>| {
        let mut c = unet();
        c.arg("info").arg("--model").arg(&baseline).args(["--provider", "cpu"]).env("PATH", &path).env("HOME", &dir);
        for v in ["UNET_ORT_LIB", "VIRTUAL_ENV", "CONDA_PREFIX", "LD_LIBRARY_PATH"] {
            c.env_remove(v);
        }
        if let Some(p) = ort {
            c.env("UNET_ORT_LIB", p);
        }
        c.output().unwrap()
    };
    let out = info(Some(&common::ort_lib()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!marker.exists(), "python3 from PATH was executed although UNET_ORT_LIB was set");
    let out = info(None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&capi.display().to_string()), "expected the library beside the PATH python3: {stdout}");
    assert!(!marker.exists(), "python3 from PATH was executed while searching for ONNX Runtime");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `unet convert`: float16 and back, with the check against the original printed; the float16 file is about half.
#[test]
fn convert_to_float16_and_back() {
    let dir = std::env::temp_dir().join(format!("unet-convert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (img, half, full) = (dir.join("nuclei.tif"), dir.join("half.onnx"), dir.join("full.onnx"));
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(unet()
        .args(["sample-image", "--style", "nuclei", "--width", "256", "--height", "256"])
        .arg(&img)
        .output()
        .unwrap());
    let said = ok(unet()
        .args(["convert", "default"])
        .arg(&half)
        .args(["--fp16", "--provider", "cpu", "--check"])
        .arg(&img)
        .output()
        .unwrap());
    assert!(said.contains("float16 weights") && said.contains("SEG"), "{said}");
    let seg: f64 = said.split("SEG ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(seg > 0.97, "{said}");
    ok(unet().arg("convert").arg(&half).arg(&full).arg("--fp32").output().unwrap());
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len() as f64;
    let ratio = size(&half) / size(&full);
    assert!((0.45..0.55).contains(&ratio), "float16 {} bytes, float32 {} bytes", size(&half), size(&full));
    // Neither or both precisions is refused.
    assert!(!unet().args(["convert", "default"]).arg(&full).output().unwrap().status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--device`: a bad name and, in a build without the `cuda` feature, CUDA are refused with the reason.
#[cfg(feature = "train")]
#[test]
fn training_device_errors_name_the_cause() {
    let out = unet().args(["bench-train", "--device", "tpu"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cpu, cuda or cuda:N"));
    let out = unet().args(["train", ".", "--out", "/nonexistent/run", "--device", "cuda"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    if cfg!(feature = "cuda") {
        assert!(stderr.contains("cuda"), "{stderr}");
    } else {
        assert!(stderr.contains("--features cuda"), "{stderr}");
    }
    // On the CPU the benchmark runs and prints a row per width ("flex", the width, the times).
    let out = unet()
        .args(["bench-train", "--device", "cpu", "--base-width", "2", "--tile", "188", "--warmup", "0", "--reps", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.split_whitespace().take(2).eq(["flex", "2"])),
        "no row for base width 2 in\n{stdout}"
    );
    // A CUDA convolution name that does not exist is refused, naming the ones that do.
    let out = unet().args(["bench-train", "--cuda-conv", "cudnn"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("im2col"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `unet eval --held-out` that leaves no image to score is an error saying so, not a SEG of NaN.
#[test]
fn eval_with_nothing_held_out_says_why() {
    let dir = std::env::temp_dir().join(format!("unet-eval-empty-{}", std::process::id()));
    for sub in ["images", "labels"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let out = unet()
        .args(["sample-image", "--width", "96", "--height", "96", "--cells", "5"])
        .arg(dir.join("images/a.tif"))
        .arg("--labels")
        .arg(dir.join("labels/a.tif"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = unet().arg("eval").arg("default").arg(&dir).args(["--held-out", "0.2"]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("leaves none to score") && !String::from_utf8_lossy(&out.stdout).contains("NaN"), "{said}");
    let out = unet().arg("eval").arg("default").arg(&dir).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("over 1 image(s)"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A folder job: every image segmented as a single call would, a failing image recorded without stopping the job,
/// a summary row per image, and a second run that redoes only what is missing.
#[test]
fn folder_job_summarises_and_resumes() {
    let dir = std::env::temp_dir().join(format!("unet-cli-folder-{}", std::process::id()));
    let (input, out) = (dir.join("in"), dir.join("out"));
    std::fs::create_dir_all(&input).unwrap();
    for seed in 1..=3 {
        let img = input.join(format!("frame{seed}.tif"));
        let status = unet()
            .args(["sample-image", "--width", "240", "--height", "180", "--cells", "10", "--seed", &seed.to_string()])
            .arg(&img)
            .status()
            .unwrap();
        assert!(status.success());
    }
    std::fs::write(input.join("broken.tif"), b"not an image").unwrap();
    let baseline = dir.join("baseline.onnx");
    assert!(unet().arg("export-baseline").arg(&baseline).status().unwrap().success());
    let run = || {
        unet()
            .arg("segment")
            .arg(&input)
            .arg("--out-dir")
            .arg(&out)
            .arg("--model")
            .arg(&baseline)
            .args(["--save", "labels,mask", "--provider", "cpu", "--quiet"])
            .output()
            .unwrap()
    };

    let first = run();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(!first.status.success(), "a failed image must fail the job: {stderr}");
    assert!(stderr.contains("1 of 4 image(s) failed"), "{stderr}");
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let rows: Vec<&str> = summary.lines().collect();
    assert_eq!(rows.len(), 5, "{summary}");
    assert!(rows[0].starts_with("image,width,height,instances"), "{summary}");
    assert!(rows[1].starts_with("broken.tif,") && rows[1].contains("failed: "), "{summary}");
    // The folder's labels equal a single-image run's, and the summary counts them.
    for (seed, row) in (1..=3).zip(&rows[2..]) {
        let single = dir.join(format!("single{seed}.tif"));
        let status = unet()
            .arg("segment")
            .arg(input.join(format!("frame{seed}.tif")))
            .arg("--model")
            .arg(&baseline)
            .arg("--labels")
            .arg(&single)
            .args(["--provider", "cpu", "--quiet"])
            .status()
            .unwrap();
        assert!(status.success());
        let (expected, _, _) = unet::imageio::read_labels(&single).unwrap();
        let (got, w, h) = unet::imageio::read_labels(&out.join(format!("frame{seed}-labels.tif"))).unwrap();
        assert_eq!((w, h), (240, 180));
        assert_eq!(got, expected, "frame{seed}: folder labels differ from a single run's");
        let count = expected.iter().copied().max().unwrap();
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields[0], format!("frame{seed}.tif"), "{summary}");
        assert_eq!(fields[3], count.to_string(), "instance count in {row}");
        assert_eq!(fields[4], expected.iter().filter(|&&l| l != 0).count().to_string(), "foreground in {row}");
        assert!(fields[8] == "done" && count > 0, "{row}");
        assert!(out.join(format!("frame{seed}-mask.png")).is_file());
    }

    // Resume: frame2 lost an output (as if the job had stopped while writing it); the rest is kept untouched.
    std::fs::remove_file(input.join("broken.tif")).unwrap();
    std::fs::remove_file(out.join("frame2-mask.png")).unwrap();
    let kept = std::fs::metadata(out.join("frame1-labels.tif")).unwrap().modified().unwrap();
    let second = run();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(stderr.contains("3 image(s): 1 segmented, 2 already done, 0 failed"), "{stderr}");
    assert!(out.join("frame2-mask.png").is_file());
    assert_eq!(std::fs::metadata(out.join("frame1-labels.tif")).unwrap().modified().unwrap(), kept);
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(summary.lines().filter(|r| r.ends_with(",done")).count(), 3, "{summary}");

    // A folder without --out-dir, and single-image outputs with a folder, are refused with a reason.
    let out = unet().arg("segment").arg(&input).arg("--model").arg(&baseline).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("give --out-dir"));
    std::fs::remove_dir_all(&dir).ok();
}

/// A multi-page TIFF is a time-lapse: each page is segmented as a frame, with the labels a single-image run of that
/// page gives.
#[test]
fn tiff_stack_job_segments_every_page() {
    use tiff::encoder::{TiffEncoder, colortype::Gray16};
    let dir = std::env::temp_dir().join(format!("unet-cli-stack-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let baseline = dir.join("baseline.onnx");
    assert!(unet().arg("export-baseline").arg(&baseline).status().unwrap().success());
    let stack = dir.join("stack.tif");
    let mut encoder = TiffEncoder::new(std::fs::File::create(&stack).unwrap()).unwrap();
    let mut singles = Vec::new();
    for seed in 1..=3 {
        let page = dir.join(format!("page{seed}.tif"));
        let status = unet()
            .args(["sample-image", "--width", "200", "--height", "150", "--cells", "8", "--seed", &seed.to_string()])
            .arg(&page)
            .status()
            .unwrap();
        assert!(status.success());
        let img = unet::imageio::read_image(&page).unwrap();
        let values: Vec<u16> = match img.pixels {
            unet::imageio::PixelBuffer::U16(v) => v,
            unet::imageio::PixelBuffer::U8(v) => v.into_iter().map(u16::from).collect(),
            unet::imageio::PixelBuffer::F32(v) => v.into_iter().map(|x| x.clamp(0.0, 65535.0) as u16).collect(),
            unet::imageio::PixelBuffer::U32(v) => v.into_iter().map(|x| x.min(65535) as u16).collect(),
        };
        encoder.write_image::<Gray16>(200, 150, &values).unwrap();
        // The same page alone, as a 16-bit file, segmented on its own.
        let alone = dir.join(format!("alone{seed}.tif"));
        TiffEncoder::new(std::fs::File::create(&alone).unwrap())
            .unwrap()
            .write_image::<Gray16>(200, 150, &values)
            .unwrap();
        let labels = dir.join(format!("alone{seed}-labels.tif"));
        let status = unet()
            .arg("segment")
            .arg(&alone)
            .arg("--model")
            .arg(&baseline)
            .arg("--labels")
            .arg(&labels)
            .args(["--provider", "cpu", "--quiet"])
            .status()
            .unwrap();
        assert!(status.success());
        singles.push(unet::imageio::read_labels(&labels).unwrap().0);
    }
    drop(encoder);
    let out_dir = dir.join("out");
    let out = unet()
        .arg("segment")
        .arg(&stack)
        .arg("--out-dir")
        .arg(&out_dir)
        .arg("--model")
        .arg(&baseline)
        .args(["--provider", "cpu", "--quiet"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = std::fs::read_to_string(out_dir.join("summary.csv")).unwrap();
    for (i, expected) in singles.iter().enumerate() {
        let (got, _, _) = unet::imageio::read_labels(&out_dir.join(format!("stack-t{i:04}-labels.tif"))).unwrap();
        assert_eq!(&got, expected, "page {i}");
        assert!(summary.contains(&format!("stack.tif[{i}],200,150,")), "{summary}");
    }
    assert_eq!(summary.lines().count(), 4, "{summary}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `export-bioimageio`: the package holds the model unchanged and every file rdf.yaml lists, each with its SHA-256.
/// (`scripts/test-bioimageio.sh` runs the official `bioimageio test` on such packages.)
#[test]
fn bioimageio_package_lists_its_files_with_their_digests() {
    use sha2::Digest;
    use std::io::Read;
    let dir = std::env::temp_dir().join(format!("unet-bioimageio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let package = dir.join("em.zip");
    let out = unet().args(["export-bioimageio", "em", "-o"]).arg(&package).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&package).unwrap()).unwrap();
    let mut files = std::collections::BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        files.insert(f.name().to_string(), bytes);
    }
    let rdf = String::from_utf8(files["rdf.yaml"].clone()).unwrap();
    assert!(rdf.contains("format_version: 0.5") && rdf.contains("name: 'unet em'"), "{rdf}");
    assert_eq!(files["model.onnx"], unet::model::embedded_model("em").unwrap(), "the weights must be the model itself");
    // Every `source:` has its file in the zip and the digest that follows it matches.
    let lines: Vec<&str> = rdf.lines().map(str::trim).collect();
    let mut sources = 0;
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = line.strip_prefix("source: ") {
            let want = lines[i + 1].strip_prefix("sha256: ").expect("a digest after each source");
            let got: String = sha2::Sha256::digest(&files[name]).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, want, "{name}");
            sources += 1;
        }
    }
    assert_eq!(sources, 5, "weights, two test tensors and two sample tensors: {rdf}");
    for listed in ["README.md", "cover.png"] {
        assert!(files.contains_key(listed) && rdf.contains(listed), "{listed}");
    }
    // The test tensors' shapes follow the size rule rdf.yaml states: output = input + offset.
    let shape = |npy: &[u8]| -> Vec<usize> {
        let header = String::from_utf8_lossy(&npy[10..128]).into_owned();
        let dims = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap().to_string();
        dims.split(',').filter_map(|d| d.trim().parse().ok()).collect()
    };
    let (input, output) = (shape(&files["test_input.npy"]), shape(&files["test_output.npy"]));
    let offset: usize = rdf.split("offset: -").nth(1).unwrap().split('}').next().unwrap().parse().unwrap();
    assert_eq!((input[1], output[1]), (1, 2));
    assert_eq!(output[2] + offset, input[2], "{input:?} -> {output:?}, offset {offset}");
    // A model that does not exist is an error that names it, and no package is left behind.
    let missing = dir.join("missing.zip");
    let out = unet().args(["export-bioimageio", "no-such-model.onnx", "-o"]).arg(&missing).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("no-such-model.onnx"), "{said}");
    assert!(said.contains("embedded models load by name: default, em, cells"), "the error lists the names: {said}");
    assert!(!missing.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// After `make demo`, the binary run by hand finds the ONNX Runtime fetched into the checkout's `.onnxruntime/`
/// without UNET_ORT_LIB (the README's first ten minutes).
#[test]
fn a_cargo_built_binary_finds_the_checkouts_onnx_runtime() {
    let fetched = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".onnxruntime");
    if !fetched.join("libonnxruntime.so").exists() {
        eprintln!("skipped: no .onnxruntime in the checkout (UNET_ORT_LIB names another copy)");
        return;
    }
    // No Python environment to find first (an installed onnxruntime package comes before the checkout's copy).
    let empty = std::env::temp_dir().join(format!("unet-cli-nopython-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_unet"))
        .env_remove("UNET_ORT_LIB")
        .env_remove("VIRTUAL_ENV")
        .env_remove("CONDA_PREFIX")
        .env("PATH", &empty)
        .env("HOME", &empty)
        .current_dir(std::env::temp_dir())
        .arg("info")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains(&format!("from {}", fetched.display())), "{said}");
}

#[test]
fn channel_and_object_size_options() {
    let dir = std::env::temp_dir().join(format!("unet-cli-size-{}", std::process::id()));
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("images")).unwrap();
    std::fs::create_dir_all(data.join("labels")).unwrap();
    let (img, truth) = (data.join("images/a.tif"), data.join("labels/a.tif"));
    let made = unet()
        .args(["sample-image", "--width", "256", "--height", "256", "--cells", "20", "--seed", "3"])
        .arg(&img)
        .arg("--labels")
        .arg(&truth)
        .status()
        .unwrap();
    assert!(made.success());
    // `object-size` measures the data and records the size in a model; `info` shows it.
    let baseline = dir.join("baseline.onnx");
    assert!(unet().arg("export-baseline").arg(&baseline).status().unwrap().success());
    let sized = dir.join("sized.onnx");
    let out = unet().arg("object-size").arg(&data).arg("--into").arg(&baseline).arg("-o").arg(&sized).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    let (t, _, _) = unet::imageio::read_labels(&truth).unwrap();
    let expected = unet::object_size::median_diameter(&t).unwrap();
    assert!(said.contains(&format!("median diameter {} px", (expected * 10.0).round() / 10.0)), "{said}");
    let info = unet().arg("info").arg("-m").arg(&sized).output().unwrap();
    assert!(String::from_utf8_lossy(&info.stdout).contains("object size: "), "{info:?}");

    // Half the model's object size: the image runs at scale 2 and the labels keep the image's size.
    let labels = dir.join("labels.tif");
    let size = format!("{}", (expected * 10.0).round() / 20.0);
    let out = unet()
        .arg("segment")
        .arg(&img)
        .arg("-m")
        .arg(&sized)
        .arg("--labels")
        .arg(&labels)
        .args(["--object-size", &size, "--verbose"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("at scale 2.00") && said.contains("resampling"), "{said}");
    let (_, w, h) = unet::imageio::read_labels(&labels).unwrap();
    assert_eq!((w, h), (256, 256));
    // auto says what it measured; nonsense sizes are refused by the parser.
    let out = unet()
        .arg("segment")
        .arg(&img)
        .arg("-m")
        .arg(&sized)
        .arg("--labels")
        .arg(&labels)
        .args(["--object-size", "auto"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("objects measured"), "{said}");
    let out =
        unet().arg("segment").arg(&img).arg("--labels").arg(&labels).args(["--object-size", "0"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("diameter"));

    // --channel: a 2-channel image whose channel 1 is the sample gives the sample's labels; without a choice it
    // is refused with the option named.
    let gray = unet::imageio::read_image(&img).unwrap();
    let unet::imageio::PixelBuffer::U16(g) = &gray.pixels else { panic!("the sample image is 16-bit") };
    // A TIFF with two 16-bit samples per pixel (two fluorescence channels, interleaved).
    struct TwoChannels16;
    impl tiff::encoder::colortype::ColorType for TwoChannels16 {
        type Inner = u16;
        const TIFF_VALUE: tiff::tags::PhotometricInterpretation = tiff::tags::PhotometricInterpretation::BlackIsZero;
        const BITS_PER_SAMPLE: &'static [u16] = &[16, 16];
        const SAMPLE_FORMAT: &'static [tiff::tags::SampleFormat] =
            &[tiff::tags::SampleFormat::Uint, tiff::tags::SampleFormat::Uint];
        fn horizontal_predict(_: &[u16], _: &mut Vec<u16>) {
            unreachable!("written without a predictor")
        }
    }
    let two_path = dir.join("two.tif");
    let two: Vec<u16> = g.iter().enumerate().flat_map(|(i, &v)| [(i % 256) as u16 * 50, v]).collect();
    let file = std::fs::File::create(&two_path).unwrap();
    tiff::encoder::TiffEncoder::new(file).unwrap().write_image::<TwoChannels16>(256, 256, &two).unwrap();
    let (one_labels, two_labels) = (dir.join("one.tif"), dir.join("two-labels.tif"));
    let run = |image: &std::path::Path, out: &std::path::Path, extra: &[&str]| {
        unet().arg("segment").arg(image).arg("-m").arg(&baseline).arg("--labels").arg(out).args(extra).output().unwrap()
    };
    assert!(run(&img, &one_labels, &[]).status.success());
    let out = run(&two_path, &two_labels, &["--channel", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(unet::imageio::read_labels(&one_labels).unwrap(), unet::imageio::read_labels(&two_labels).unwrap());
    let out = run(&two_path, &two_labels, &[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--channel"));
    std::fs::remove_dir_all(&dir).ok();
}

/// `pixels` (16-bit gray) as a TIFF with `description` and, when given, resolution `per_unit` (pixels per unit).
fn write_calibrated_tiff(
    path: &std::path::Path,
    pixels: &[u16],
    (w, h): (u32, u32),
    description: &str,
    per_unit: Option<tiff::encoder::Rational>,
) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = tiff::encoder::TiffEncoder::new(file).unwrap();
    let mut image = enc.new_image::<tiff::encoder::colortype::Gray16>(w, h).unwrap();
    image.encoder().write_tag(tiff::tags::Tag::ImageDescription, description).unwrap();
    if let Some(r) = per_unit {
        image.resolution(tiff::tags::ResolutionUnit::None, r);
    }
    image.write_data(pixels).unwrap();
}

#[test]
fn the_pixel_size_of_ome_and_imagej_tiffs_rescales_to_the_models() {
    let dir = std::env::temp_dir().join(format!("unet-cli-pixels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("sample.tif");
    let made = unet().args(["sample-image", "--width", "200", "--height", "160", "--cells", "8"]).arg(&img).status();
    assert!(made.unwrap().success());
    let gray = unet::imageio::read_image(&img).unwrap();
    let unet::imageio::PixelBuffer::U16(g) = &gray.pixels else { panic!("16-bit sample") };
    let ome = dir.join("ome.tif");
    write_calibrated_tiff(
        &ome,
        g,
        (200, 160),
        r#"<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" SizeX="200" SizeY="160" SizeC="1" SizeZ="1" SizeT="1" PhysicalSizeX="325" PhysicalSizeXUnit="nm" PhysicalSizeY="325" PhysicalSizeYUnit="nm"/></Image></OME>"#,
        None,
    );
    let imagej = dir.join("imagej.tif");
    let per_micron = tiff::encoder::Rational { n: 40, d: 13 }; // 1 / 0.325 pixels per micron
    write_calibrated_tiff(&imagej, g, (200, 160), "ImageJ=1.54f\nunit=micron\n", Some(per_micron));
    for (path, source) in [(&ome, "OME-TIFF"), (&imagej, "ImageJ TIFF")] {
        let p = unet::pixel_size::read_pixel_size(path).expect(source);
        assert!((p.x - 0.325).abs() < 1e-9 && p.source == source, "{p:?}");
    }
    assert_eq!(unet::pixel_size::read_pixel_size(&img), None, "an uncalibrated TIFF");

    // A model trained at 0.65 µm per pixel: the calibrated files run at half size, the plain one as it is.
    let baseline = dir.join("baseline.onnx");
    assert!(unet().arg("export-baseline").arg(&baseline).status().unwrap().success());
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("images")).unwrap();
    std::fs::create_dir_all(data.join("labels")).unwrap();
    let made = unet()
        .args(["sample-image", "--width", "128", "--height", "128", "--cells", "5"])
        .arg(data.join("images/a.tif"))
        .arg("--labels")
        .arg(data.join("labels/a.tif"))
        .status();
    assert!(made.unwrap().success());
    let model = dir.join("at-0.65.onnx");
    let wrote = unet()
        .arg("object-size")
        .arg(&data)
        .arg("--into")
        .arg(&baseline)
        .arg("-o")
        .arg(&model)
        .args(["--pixel-size", "0.65"])
        .status();
    assert!(wrote.unwrap().success());
    let info = unet().arg("info").arg("-m").arg(&model).output().unwrap();
    assert!(String::from_utf8_lossy(&info.stdout).contains("trained at 0.65 µm per pixel"), "{info:?}");
    let labels = dir.join("labels.tif");
    let segment = |image: &std::path::Path, extra: &[&str]| {
        let out =
            unet().arg("segment").arg(image).arg("-m").arg(&model).arg("--labels").arg(&labels).args(extra).output();
        let out = out.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(unet::imageio::read_labels(&labels).unwrap().1, 200, "labels on the image's grid");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for path in [&ome, &imagej] {
        let said = segment(path, &[]);
        assert!(said.contains("at scale 0.50 (pixels of 0.325 µm from the file, the model's 0.65 µm)"), "{said}");
    }
    assert!(!segment(&img, &[]).contains("at scale"), "no calibration, no resampling");
    assert!(segment(&img, &["--pixel-size", "1.3"]).contains("at scale 2.00 (pixels of 1.3 µm from --pixel-size"));
    let said = segment(&ome, &["--object-size", "15"]);
    assert!(said.contains("at scale") && !said.contains("0.50"), "an object size wins over the pixel size: {said}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_model_with_external_data_is_refused_wherever_the_program_runs() {
    use prost::Message;
    // A crafted model whose first weight tensor lies in 'secret.bin' "beside" it: ONNX Runtime would resolve that
    // against the working directory (the host program's), so it is refused, with the file there or not.
    let dir = std::env::temp_dir().join(format!("unet-cli-external-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut model = unet::onnx::proto::ModelProto::decode(unet::baseline::onnx_bytes().as_slice()).unwrap();
    let tensor = &mut model.graph.as_mut().unwrap().initializer[0];
    let data = std::mem::take(&mut tensor.raw_data);
    std::fs::write(dir.join("secret.bin"), &data).unwrap();
    let entry = |k: &str, v: String| unet::onnx::proto::StringStringEntryProto { key: k.into(), value: v };
    tensor.external_data = vec![
        entry("location", "secret.bin".into()),
        entry("offset", "0".into()),
        entry("length", data.len().to_string()),
    ];
    tensor.data_location = 1;
    let name = tensor.name.clone();
    std::fs::write(dir.join("external.onnx"), model.encode_to_vec()).unwrap();
    assert_eq!(
        unet::onnx::external_data::first_external_tensor(&model.encode_to_vec()),
        Some((name.clone(), "secret.bin".into()))
    );
    assert_eq!(unet::onnx::external_data::first_external_tensor(&unet::baseline::onnx_bytes()), None);
    for cwd in [dir.clone(), std::env::temp_dir()] {
        let out = unet().arg("info").arg("-m").arg(dir.join("external.onnx")).current_dir(&cwd).output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "loaded with external data from {}", cwd.display());
        assert!(said.contains(&format!("keeps tensor '{name}' in an external file ('secret.bin')")), "{said}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
