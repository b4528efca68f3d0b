//! Helpers shared by the integration tests: the ONNX Runtime library, models made on the spot, and an
//! independent float64 U-Net forward pass (brute-force convolutions) to check ONNX Runtime against.
#![allow(dead_code)]

use std::path::PathBuf;

use unet::{Architecture, Model, ModelMetadata, ModelOptions, Provider, UNetWeights};

/// The ONNX Runtime library the tests use: `UNET_ORT_LIB`, else the project-local copy that
/// `scripts/fetch-onnxruntime.sh` (run by `make test`) puts in `.onnxruntime/`.
pub fn ort_lib() -> PathBuf {
    if let Some(p) = std::env::var_os("UNET_ORT_LIB").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".onnxruntime");
    assert!(
        local.join("libonnxruntime.so").exists(),
        "ONNX Runtime is missing: run scripts/fetch-onnxruntime.sh (the README's test command does) or set UNET_ORT_LIB"
    );
    local
}

pub fn options() -> ModelOptions {
    ModelOptions { provider: Provider::Cpu, threads: 2, ort_library: Some(ort_lib()), cuda_device: 0 }
}

pub fn random_model_bytes(arch: Architecture, seed: u64) -> Vec<u8> {
    let weights = UNetWeights::he_normal(arch, seed);
    unet::onnx::encode_unet(&weights, &ModelMetadata::new(arch, "random test weights")).unwrap()
}

pub fn load(bytes: &[u8]) -> Model {
    Model::from_bytes(bytes, &options()).unwrap()
}

/// A tiny xorshift generator: tests need reproducible numbers, not statistical quality.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A float64 feature map `[channels, height, width]`.
#[derive(Clone, Debug)]
pub struct Map {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub v: Vec<f64>,
}

impl Map {
    pub fn new(c: usize, h: usize, w: usize) -> Map {
        Map { c, h, w, v: vec![0.0; c * h * w] }
    }
    pub fn at(&self, c: usize, y: usize, x: usize) -> f64 {
        self.v[(c * self.h + y) * self.w + x]
    }
    fn set(&mut self, c: usize, y: usize, x: usize, val: f64) {
        self.v[(c * self.h + y) * self.w + x] = val;
    }
}

fn tensor<'a>(w: &'a UNetWeights, name: &str) -> &'a [f32] {
    &w.get(name).unwrap_or_else(|| panic!("no tensor {name}")).data
}

/// Valid (unpadded) convolution with ONNX's `[out, in, k, k]` weights.
fn conv(x: &Map, w: &[f32], b: &[f32], out_c: usize, k: usize) -> Map {
    let mut y = Map::new(out_c, x.h - k + 1, x.w - k + 1);
    for o in 0..out_c {
        for yy in 0..y.h {
            for xx in 0..y.w {
                let mut s = b[o] as f64;
                for i in 0..x.c {
                    for dy in 0..k {
                        for dx in 0..k {
                            s += w[((o * x.c + i) * k + dy) * k + dx] as f64 * x.at(i, yy + dy, xx + dx);
                        }
                    }
                }
                y.set(o, yy, xx, s);
            }
        }
    }
    y
}

fn relu(mut x: Map) -> Map {
    x.v.iter_mut().for_each(|v| *v = v.max(0.0));
    x
}

fn conv_relu(x: &Map, weights: &UNetWeights, prefix: &str, out_c: usize) -> Map {
    relu(conv(x, tensor(weights, &format!("{prefix}.weight")), tensor(weights, &format!("{prefix}.bias")), out_c, 3))
}

fn maxpool(x: &Map) -> Map {
    let mut y = Map::new(x.c, x.h / 2, x.w / 2);
    for c in 0..x.c {
        for yy in 0..y.h {
            for xx in 0..y.w {
                let m = [(0, 0), (0, 1), (1, 0), (1, 1)]
                    .iter()
                    .map(|&(dy, dx)| x.at(c, 2 * yy + dy, 2 * xx + dx))
                    .fold(f64::NEG_INFINITY, f64::max);
                y.set(c, yy, xx, m);
            }
        }
    }
    y
}

/// 2x2 stride-2 transposed convolution with ONNX's `[in, out, 2, 2]` weights.
fn upconv(x: &Map, w: &[f32], b: &[f32], out_c: usize) -> Map {
    let mut y = Map::new(out_c, 2 * x.h, 2 * x.w);
    for o in 0..out_c {
        for yy in 0..y.h {
            for xx in 0..y.w {
                let (sy, sx, dy, dx) = (yy / 2, xx / 2, yy % 2, xx % 2);
                let mut s = b[o] as f64;
                for i in 0..x.c {
                    s += w[((i * out_c + o) * 2 + dy) * 2 + dx] as f64 * x.at(i, sy, sx);
                }
                y.set(o, yy, xx, s);
            }
        }
    }
    y
}

fn crop_concat(skip: &Map, up: &Map) -> Map {
    let (oy, ox) = ((skip.h - up.h) / 2, (skip.w - up.w) / 2);
    let mut y = Map::new(skip.c + up.c, up.h, up.w);
    for c in 0..skip.c {
        for yy in 0..up.h {
            for xx in 0..up.w {
                y.set(c, yy, xx, skip.at(c, yy + oy, xx + ox));
            }
        }
    }
    for c in 0..up.c {
        for yy in 0..up.h {
            for xx in 0..up.w {
                y.set(skip.c + c, yy, xx, up.at(c, yy, xx));
            }
        }
    }
    y
}

/// The paper's U-Net in float64, written from the paper, not from the ONNX writer: class probabilities.
pub fn reference_forward(weights: &UNetWeights, input: &Map) -> Map {
    let arch = weights.arch;
    let mut x = input.clone();
    let mut skips = Vec::new();
    for level in 0..=arch.depth {
        if level > 0 {
            x = maxpool(&x);
        }
        let w = arch.base_width << level;
        x = conv_relu(&x, weights, &format!("enc{level}.conv1"), w);
        x = conv_relu(&x, weights, &format!("enc{level}.conv2"), w);
        if level < arch.depth {
            skips.push(x.clone());
        }
    }
    for level in (0..arch.depth).rev() {
        let w = arch.base_width << level;
        let up = upconv(
            &x,
            tensor(weights, &format!("dec{level}.up.weight")),
            tensor(weights, &format!("dec{level}.up.bias")),
            w,
        );
        x = crop_concat(&skips[level], &up);
        x = conv_relu(&x, weights, &format!("dec{level}.conv1"), w);
        x = conv_relu(&x, weights, &format!("dec{level}.conv2"), w);
    }
    let logits = conv(&x, tensor(weights, "head.weight"), tensor(weights, "head.bias"), arch.classes, 1);
    let mut p = logits.clone();
    for yy in 0..p.h {
        for xx in 0..p.w {
            let m = (0..p.c).map(|c| logits.at(c, yy, xx)).fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = (0..p.c).map(|c| (logits.at(c, yy, xx) - m).exp()).sum();
            for c in 0..p.c {
                p.set(c, yy, xx, (logits.at(c, yy, xx) - m).exp() / z);
            }
        }
    }
    p
}

/// The intensity baseline (`unet::baseline`): a model whose output is known in closed form. Tests of behaviour use
/// it rather than the embedded default, which changes whenever the default model is retrained.
pub fn baseline_model() -> Model {
    load(&unet::baseline::onnx_bytes())
}
