"""CPU benchmark: unet_segment through the C ABI (ctypes) against raw ONNX Runtime on the same tiles.

Both run in this one process on the same ONNX Runtime library (libunet is pointed at the Python package's own
libonnxruntime), with the same thread count, alternating repetitions; medians are reported, since the machine is
shared and noisy. The ratio unet / raw is what tiling, mirroring, normalisation, copying, stitching and
labelling cost on top of ONNX Runtime itself (goal: < 1.10).
"""
import argparse
import ctypes as C
import os
import statistics
import sys
import time

import numpy as np


# The C structs as the Python package declares them (one declaration of the ABI in Python, not two).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugin", "napari", "src"))
from unet_napari._native import Image, ModelOptions, Outputs, SegmentOptions  # noqa: E402


def axis_plan(n, max_tile, halo=92, step=16, residue=4, min_output=4):
    """The library's AxisPlan (src/infer/tiling.rs): (tile output size, count)."""
    def at_most(v):
        return min_output if v <= min_output else min_output + (v - min_output) // step * step

    def at_least(v):
        return min_output if v <= min_output else min_output + -(-(v - min_output) // step) * step

    max_tile = at_most(max_tile)
    if at_least(n) <= max_tile:
        return at_least(n), 1
    max_stride = max((max_tile - residue) // step * step, step)
    count = -(-n // max_stride)
    stride = -(-(-(-n // count)) // step) * step
    return at_least(stride), count


def main():
    # Imported here, not at the top: bench_gpu.py imports axis_plan from this file and must not load a second
    # ONNX Runtime library into its process (two in one process corrupt each other's heap).
    import onnxruntime as ort

    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="also base width 64 at 2048x2048 (slow)")
    ap.add_argument("--quick", action="store_true", help="one small case, one repetition (checks the script)")
    args = ap.parse_args()

    ort_lib = os.path.join(os.path.dirname(ort.__file__), "capi", "libonnxruntime.so.1.31.1")
    lib = C.CDLL(os.path.abspath(args.lib))
    lib.unet_last_error.restype = C.c_char_p
    lib.unet_version.restype = C.c_char_p

    def check(status, what):
        if status != 0:
            sys.exit(f"{what}: status {status}: {lib.unet_last_error().decode()}")

    cases = [(16, 1024, 388), (16, 1024, 820), (16, 2048, 388), (16, 2048, 820), (64, 1024, 388), (64, 1024, 820)]
    if args.full:
        cases += [(64, 2048, 388), (64, 2048, 820)]
    if args.quick:
        cases, args.reps = [(16, 1024, 820)], 1
    print(f"unet {lib.unet_version().decode()}, ONNX Runtime {ort.__version__} ({ort_lib}), {args.threads} threads, "
          f"median of {args.reps}, CPU: {os.cpu_count()} cores")
    print(f"{'base':>4} {'image':>9} {'max tile':>8} {'tiles':>9} {'unet s':>8} {'raw ORT s':>9} {'ratio':>6} "
          f"{'unet ms/MP':>10} {'raw ms/MP':>9} {'cpu/wall':>8}")
    models, sessions = {}, {}
    rng = np.random.default_rng(0)
    ratios = []
    for base, n, max_tile in cases:
        path = os.path.join(args.models, f"unet-base{base}.onnx").encode()
        if base not in models:
            opts = ModelOptions(C.sizeof(ModelOptions), 1, args.threads, 0, ort_lib.encode())
            handle = C.c_void_p()
            check(lib.unet_model_load(C.c_char_p(path), C.byref(opts), C.byref(handle)), "unet_model_load")
            models[base] = handle
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sessions[base] = ort.InferenceSession(path.decode(), so, providers=["CPUExecutionProvider"])
        tile, count = axis_plan(n, max_tile)
        tiles = count * count
        image = rng.integers(0, 4096, size=(n, n), dtype=np.uint16)
        img = Image(C.sizeof(Image), 2, image.ctypes.data, n, n, 1, 0)
        prob = np.empty((n, n), np.float32)
        mask = np.empty((n, n), np.uint8)
        labels = np.empty((n, n), np.uint32)
        out = Outputs(C.sizeof(Outputs), prob.ctypes.data, prob.size, mask.ctypes.data, mask.size,
                      labels.ctypes.data, labels.size, 0)
        sopts = SegmentOptions()
        check(lib.unet_segment_options_init(C.byref(sopts)), "options_init")
        sopts.max_tile = max_tile
        sopts.tiles_per_run = 1
        tile_input = rng.random((1, 1, tile + 184, tile + 184), dtype=np.float32)
        sess = sessions[base]
        sess.run(None, {"image": tile_input})  # warm-up: first runs allocate
        check(lib.unet_segment(models[base], C.byref(img), C.byref(sopts), C.byref(out)), "unet_segment")
        unet_t, raw_t, cpu_ratio = [], [], []
        for _ in range(args.reps):
            w0, c0 = time.perf_counter(), time.process_time()
            check(lib.unet_segment(models[base], C.byref(img), C.byref(sopts), C.byref(out)), "unet_segment")
            w1, c1 = time.perf_counter(), time.process_time()
            unet_t.append(w1 - w0)
            cpu_ratio.append((c1 - c0) / (w1 - w0))
            w0 = time.perf_counter()
            for _ in range(tiles):
                sess.run(None, {"image": tile_input})
            raw_t.append(time.perf_counter() - w0)
        u, r = statistics.median(unet_t), statistics.median(raw_t)
        ratios.append(u / r)
        mp = n * n / 1e6
        print(f"{base:>4} {n:>4}x{n:<4} {max_tile:>8} {count}x{count} {tile:>3} {u:>8.2f} {r:>9.2f} {u / r:>6.3f} "
              f"{1000 * u / mp:>10.0f} {1000 * r / mp:>9.0f} {statistics.median(cpu_ratio):>8.2f}")
    print(f"median ratio unet/raw ORT: {statistics.median(ratios):.3f} (goal < 1.10)")
    for h in models.values():
        lib.unet_model_free(h)


if __name__ == "__main__":
    main()
