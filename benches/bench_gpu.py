"""GPU benchmark: unet_segment through the C ABI on ONNX Runtime's CUDA provider against PyTorch running the same
network with the same weights and tiles on the same GPU, in one process and one run; and a PyTorch training step
of the same network (the burn step is timed by the train_step bench). Run by scripts/gpu-check.sh.

What is timed (medians; wall clock; the GPU is synchronised before each clock read):
- latency: a 512x512 uint16 image end to end: unet_segment (normalise, mirror, one 700x700 tile, probabilities,
  mask, instance labels) against PyTorch (upload, normalise, mirror, network, softmax, threshold, download of
  probabilities and mask; PyTorch has no instance labelling, so unet is also timed without labels);
- throughput: a 4096x4096 image in 1028x1028 output tiles, 4 per run, probabilities only, in megapixels per second;
- precision: float32 (TF32 convolutions allowed in both, their default) and float16 (`unet convert --fp16`;
  PyTorch `.half()`).
Correctness in the same run: ONNX Runtime CUDA against ONNX Runtime CPU and against PyTorch on the same tile.

--dry-run runs every unet path on the CPU with small sizes (PyTorch parts only where torch is installed).
"""
import argparse
import ctypes as C
import json
import os
import statistics
import sys
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugin", "napari", "src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_segment import axis_plan  # noqa: E402
from unet_napari._native import Image, ModelOptions, Outputs, SegmentOptions  # noqa: E402

HALO = 92


def median_time(fn, reps, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


class Unet:
    """The C ABI, through ctypes."""

    def __init__(self, lib_path, ort_lib):
        self.lib = C.CDLL(os.path.abspath(lib_path))
        self.lib.unet_last_error.restype = C.c_char_p
        self.lib.unet_version.restype = C.c_char_p
        self.ort_lib = ort_lib.encode() if ort_lib else None

    def check(self, status, what):
        if status != 0:
            raise RuntimeError(f"{what}: status {status}: {self.lib.unet_last_error().decode()}")

    def load(self, path, provider):
        opts = ModelOptions(C.sizeof(ModelOptions), provider, 0, 0, self.ort_lib)
        handle = C.c_void_p()
        self.check(self.lib.unet_model_load(C.c_char_p(path.encode()), C.byref(opts), C.byref(handle)), path)
        return handle

    def segment_fn(self, handle, image, max_tile, tiles_per_run, labels=True, mask=True):
        h, w = image.shape
        img = Image(C.sizeof(Image), 2, image.ctypes.data, w, h, 1, 0)
        prob = np.empty((h, w), np.float32)
        m = np.empty((h, w), np.uint8)
        lab = np.empty((h, w), np.uint32)
        out = Outputs(C.sizeof(Outputs), prob.ctypes.data, prob.size, m.ctypes.data if mask else None,
                      m.size if mask else 0, lab.ctypes.data if labels else None, lab.size if labels else 0, 0)
        sopts = SegmentOptions()
        self.check(self.lib.unet_segment_options_init_sized(C.byref(sopts), C.sizeof(sopts)), "options_init")
        sopts.max_tile = max_tile
        sopts.tiles_per_run = tiles_per_run

        buffers = (image, prob, m, lab)  # the C library writes into these: keep them alive with the closure

        def run():
            assert buffers
            self.check(self.lib.unet_segment(handle, C.byref(img), C.byref(sopts), C.byref(out)), "unet_segment")
        return run, prob


def onnx_weights(path):
    import onnx
    from onnx import numpy_helper
    model = onnx.load(path)
    meta = {p.key: p.value for p in model.metadata_props}
    weights = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in model.graph.initializer
               if t.data_type in (1, 10)}
    return weights, int(meta["unet.base_width"]), int(meta["unet.depth"]), meta


def torch_unet(weights, base, depth, dropout=0.0):
    """The paper's network as unet's ONNX writer lays it out (same parameter names), in PyTorch."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc, self.up, self.dec = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
            ch = 1
            for level in range(depth + 1):
                w = base << level
                self.enc.append(nn.ModuleList([nn.Conv2d(ch, w, 3), nn.Conv2d(w, w, 3)]))
                ch = w
            for level in range(depth):
                w = base << level
                self.up.append(nn.ConvTranspose2d(2 * w, w, 2, stride=2))
                self.dec.append(nn.ModuleList([nn.Conv2d(2 * w, w, 3), nn.Conv2d(w, w, 3)]))
            self.head = nn.Conv2d(base, 2, 1)
            self.drop = nn.Dropout(dropout)

        def forward(self, x):
            skips = []
            for level, (c1, c2) in enumerate(self.enc):
                if level > 0:
                    x = F.max_pool2d(x, 2)
                x = F.relu(c2(F.relu(c1(x))))
                if level < depth:
                    skips.append(x)
            x = self.drop(x)
            for level in reversed(range(depth)):
                up = self.up[level](x)
                skip = skips[level]
                c = (skip.shape[-1] - up.shape[-1]) // 2
                x = torch.cat([skip[:, :, c:c + up.shape[-2], c:c + up.shape[-1]], up], 1)
                c1, c2 = self.dec[level]
                x = F.relu(c2(F.relu(c1(x))))
            return self.head(x)

    net = UNet()
    with torch.no_grad():
        def put(module, prefix):
            module.weight.copy_(torch.from_numpy(weights[prefix + ".weight"]))
            module.bias.copy_(torch.from_numpy(weights[prefix + ".bias"]))
        for level in range(depth + 1):
            put(net.enc[level][0], f"enc{level}.conv1")
            put(net.enc[level][1], f"enc{level}.conv2")
        for level in range(depth):
            put(net.up[level], f"dec{level}.up")
            put(net.dec[level][0], f"dec{level}.conv1")
            put(net.dec[level][1], f"dec{level}.conv2")
        put(net.head, "head")
    return net


def torch_segment_fn(net, image, max_tile, tiles_per_run, device, dtype, low=0.01, high=0.998):
    """PyTorch's end to end on the same tiles: upload, percentile normalisation, mirror padding, network in
    batches, softmax, threshold, download of probabilities and mask."""
    import torch
    import torch.nn.functional as F
    h, w = image.shape
    tile, count = axis_plan(max(h, w), max_tile)
    pad_h, pad_w = tile * count - h + HALO, tile * count - w + HALO
    host = torch.from_numpy(image.astype(np.int32)).pin_memory() if device == "cuda" else \
        torch.from_numpy(image.astype(np.int32))
    origins = [(r * tile, c * tile) for r in range(count) for c in range(count)]

    def run():
        x = host.to(device, non_blocking=True).float()
        flat = x.flatten()
        n = flat.numel()
        lo = torch.kthvalue(flat, max(1, int(low * (n - 1)) + 1)).values
        hi = torch.kthvalue(flat, max(1, int(high * (n - 1)) + 1)).values
        x = ((x - lo) / (hi - lo).clamp_min(1e-6))[None, None]
        x = F.pad(x, (HALO, pad_w, HALO, pad_h), mode="reflect").to(dtype)
        prob = torch.empty((tile * count, tile * count), device=device, dtype=torch.float32)
        with torch.inference_mode():
            for i in range(0, len(origins), tiles_per_run):
                chunk = origins[i:i + tiles_per_run]
                batch = torch.cat([x[:, :, y:y + tile + 2 * HALO, xx:xx + tile + 2 * HALO] for y, xx in chunk])
                p = torch.softmax(net(batch).float(), 1)[:, 1]
                for k, (y, xx) in enumerate(chunk):
                    prob[y:y + tile, xx:xx + tile] = p[k]
        prob = prob[:h, :w]
        mask = (prob >= 0.5).to(torch.uint8)
        return prob.cpu(), mask.cpu()
    return run


def bench(args):
    results = {"cases": [], "checks": [], "training": []}
    dry = args.dry_run
    unet = Unet(args.lib, args.ort_lib)
    provider = 1 if dry else 2  # cpu | cuda
    print(f"unet {unet.lib.unet_version().decode()}, ONNX Runtime {args.ort_lib}, "
          f"{'DRY RUN on the CPU' if dry else 'CUDA'}")
    if args.train_only:
        args.models, args.train = "", True
    try:
        import torch
        device = "cpu" if dry else "cuda"
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = True
        print(f"PyTorch {torch.__version__}" + (f" on {torch.cuda.get_device_name()}" if not dry else ""))
    except ImportError:
        torch = None
        print("PyTorch not installed: its reference is skipped" + (" (dry run)" if dry else ""))
        if not dry:
            sys.exit("PyTorch is the reference on the GPU: install it")

    def sync():
        if torch is not None and not dry:
            torch.cuda.synchronize()

    rng = np.random.default_rng(0)
    reps, warmup = (1, 1) if dry else (args.reps, 3)
    sizes = [(128 if dry else 512, 116 if dry else 516), (256 if dry else 4096, 116 if dry else 1028)]
    print(f"{'model':>12} {'prec':>5} {'image':>9} {'tiles':>9} {'unet ms':>8} {'no-label':>8} {'torch ms':>8} "
          f"{'unet/torch':>10} {'unet MP/s':>9} {'torch MP/s':>10}")
    for name in filter(None, args.models.split(",")):
        for precision in ["fp32", "fp16"]:
            path = os.path.join(args.model_dir, f"{name}-{precision}.onnx")
            if not os.path.exists(path):
                print(f"{path}: missing, skipped")
                continue
            handle = unet.load(path, provider)
            net = None
            if torch is not None:
                try:
                    weights, base, depth, _ = onnx_weights(path)
                    net = torch_unet(weights, base, depth).to(device).eval()
                    if precision == "fp16":
                        net = net.half()
                except Exception:
                    traceback.print_exc()
            for n, max_tile in sizes:
                image = rng.integers(200, 3000, size=(n, n), dtype=np.uint16)
                tile, count = axis_plan(n, max_tile)
                tpr = 4
                run, prob = unet.segment_fn(handle, image, max_tile, tpr, labels=n <= 512)
                unet_s = median_time(run, reps, warmup)
                run_nl, _ = unet.segment_fn(handle, image, max_tile, tpr, labels=False, mask=n <= 512)
                unet_nl = median_time(run_nl, reps, warmup)
                torch_s = float("nan")
                if net is not None:
                    try:
                        dtype = torch.float16 if precision == "fp16" else torch.float32
                        trun = torch_segment_fn(net, image, max_tile, tpr, device, dtype)

                        def timed():
                            trun()
                            sync()
                        torch_s = median_time(timed, reps, warmup)
                    except Exception:
                        traceback.print_exc()
                mp = n * n / 1e6
                row = dict(model=name, precision=precision, image=n, tile=tile, tiles=count * count,
                           unet_ms=1e3 * unet_s, unet_no_labels_ms=1e3 * unet_nl, torch_ms=1e3 * torch_s,
                           unet_mp_s=mp / unet_nl, torch_mp_s=mp / torch_s)
                results["cases"].append(row)
                print(f"{name:>12} {precision:>5} {n:>4}x{n:<4} {count}x{count} {tile:>4} {1e3 * unet_s:>8.2f} "
                      f"{1e3 * unet_nl:>8.2f} {1e3 * torch_s:>8.2f} {unet_nl / torch_s:>10.2f} {mp / unet_nl:>9.1f} "
                      f"{mp / torch_s:>10.1f}", flush=True)
            # Same network? ONNX Runtime (this provider) against PyTorch on one tile, and against the CPU.
            try:
                n = 116 if dry else 516
                x = rng.random((n, n), dtype=np.float32)
                tp = None
                if net is not None:
                    # unet mirrors the image (numpy's 'symmetric') by the halo and runs one n x n tile: the same.
                    padded = np.pad(x, HALO, mode="symmetric")[None, None]
                    with torch.inference_mode():
                        t = torch.from_numpy(padded).to(device).to(next(net.parameters()).dtype)
                        tp = torch.softmax(net(t).float(), 1)[0, 1].cpu().numpy()
                results["checks"].append(check_tile(unet, handle, path, x, tp, provider, precision))
            except Exception:
                traceback.print_exc()
            unet.lib.unet_model_free(handle)
    if torch is not None and args.train:
        for base in [16, 64]:
            try:
                results["training"].append(torch_train_step(torch, base, 188 if dry else 572, device, reps, warmup))
            except Exception:
                traceback.print_exc()
    return results


def check_tile(unet, handle, path, x, torch_prob, provider, precision):
    """ONNX Runtime's probabilities on one n x n float image without normalisation (so the network input is known
    exactly): against PyTorch's on the same mirrored input, and against ONNX Runtime's CPU provider."""
    n = x.shape[0]
    img = Image(C.sizeof(Image), 3, x.ctypes.data, n, n, 1, 0)
    sopts = SegmentOptions()
    unet.check(unet.lib.unet_segment_options_init_sized(C.byref(sopts), C.sizeof(sopts)), "init")
    sopts.normalization = 1  # none
    sopts.max_tile = n

    def probabilities(model):
        prob = np.empty((n, n), np.float32)
        out = Outputs(C.sizeof(Outputs), prob.ctypes.data, prob.size, None, 0, None, 0, 0)
        unet.check(unet.lib.unet_segment(model, C.byref(img), C.byref(sopts), C.byref(out)), "segment")
        return prob
    prob = probabilities(handle)
    torch_diff = float(np.abs(prob - torch_prob).max()) if torch_prob is not None else float("nan")
    cpu = unet.load(path, 1)
    cpu_diff = float(np.abs(prob - probabilities(cpu)).max())
    unet.lib.unet_model_free(cpu)
    spread = float(prob.max() - prob.min())
    result = dict(model=os.path.basename(path), precision=precision, max_diff_vs_torch=torch_diff,
                  max_diff_vs_ort_cpu=cpu_diff, probability_spread=spread)
    print(f"check {os.path.basename(path)}: max |P(ORT {'cpu' if provider == 1 else 'cuda'}) - P(PyTorch)| = "
          f"{torch_diff:.2e}, max |P(ORT this) - P(ORT cpu)| = {cpu_diff:.2e} (P spread {spread:.3f})", flush=True)
    return result


def torch_train_step(torch, base, tile, device, reps, warmup):
    """One SGD step (momentum 0.99) of the paper's network with dropout 0.5 and the weighted cross-entropy, batch 1:
    the same step as benches/train_step.rs."""
    import torch.nn.functional as F
    depth = 4
    weights = {}
    rng = np.random.default_rng(1)
    ch = 1
    shapes = []
    for level in range(depth + 1):
        w = base << level
        shapes += [(f"enc{level}.conv1", (w, ch, 3, 3)), (f"enc{level}.conv2", (w, w, 3, 3))]
        ch = w
    for level in range(depth):
        w = base << level
        shapes += [(f"dec{level}.up", (2 * w, w, 2, 2)), (f"dec{level}.conv1", (w, 2 * w, 3, 3)),
                   (f"dec{level}.conv2", (w, w, 3, 3))]
    shapes.append(("head", (2, base, 1, 1)))
    for name, shape in shapes:
        fan_in = shape[1] * shape[2] * shape[3]
        weights[name + ".weight"] = (rng.standard_normal(shape) * np.sqrt(2 / fan_in)).astype(np.float32)
        weights[name + ".bias"] = np.zeros(shape[1] if name.endswith(".up") else shape[0], np.float32)
    net = torch_unet(weights, base, depth, dropout=0.5).to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.99)
    out = tile - 2 * HALO
    x = torch.rand((1, 1, tile, tile), device=device)
    target = (torch.arange(out * out, device=device).reshape(1, out, out) % 3 == 0).long()
    wmap = torch.ones((1, out, out), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        logp = F.log_softmax(net(x), 1)
        loss = -(wmap * logp.gather(1, target[:, None])[:, 0]).mean()
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
    s = median_time(step, reps, warmup)
    print(f"PyTorch training step, base width {base}, {tile}x{tile}, batch 1: {1e3 * s:.2f} ms (median of {reps})",
          flush=True)
    return dict(framework="pytorch", base_width=base, tile=tile, step_ms=1e3 * s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--ort-lib", required=True, help="libonnxruntime.so with the CUDA provider beside it")
    ap.add_argument("--model-dir", required=True, help="folder with NAME-fp32.onnx and NAME-fp16.onnx")
    ap.add_argument("--models", default="default,paper64")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--train", action="store_true", help="also time PyTorch training steps")
    ap.add_argument("--train-only", action="store_true", help="only time PyTorch training steps")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    results = bench(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
