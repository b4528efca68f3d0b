"""ctypes declarations of include/unet.h and the search for libunet.so and ONNX Runtime."""
import ctypes as C
import os
from pathlib import Path

DTYPE = {"uint8": 1, "uint16": 2, "float32": 3, "uint32": 4}
PROVIDER = {"auto": 0, "cpu": 1, "cuda": 2}
BALANCE = {"none": 0, "inverse": 1, "explicit": 2}
NORMALIZATION_MODEL, NORMALIZATION_NONE, NORMALIZATION_PERCENTILE = 0, 1, 2
STATUS_CANCELLED = 16
STATUS_RUNTIME_NOT_FOUND = 13


class Image(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("dtype", C.c_uint32), ("data", C.c_void_p), ("width", C.c_size_t),
                ("height", C.c_size_t), ("channels", C.c_size_t), ("row_stride_bytes", C.c_size_t)]


class ModelOptions(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("provider", C.c_uint32), ("threads", C.c_uint32),
                ("cuda_device", C.c_int32), ("ort_library_path", C.c_char_p)]


class ModelInfo(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("provider", C.c_uint32), ("fallback_reason", C.c_char_p),
                ("in_channels", C.c_uint32), ("classes", C.c_uint32), ("base_width", C.c_uint32),
                ("depth", C.c_uint32), ("halo", C.c_uint32), ("size_step", C.c_uint32),
                ("size_offset", C.c_uint32), ("min_input", C.c_uint32), ("normalization", C.c_char_p),
                ("class_names", C.c_char_p), ("provenance", C.c_char_p), ("source", C.c_char_p),
                ("ort_version", C.c_char_p), ("ort_library", C.c_char_p),
                # since 0.4
                ("postprocessing", C.c_char_p), ("object_size", C.c_float), ("pixel_size", C.c_float)]


PROGRESS = C.CFUNCTYPE(C.c_int32, C.c_void_p, C.c_size_t, C.c_size_t)


class SegmentOptions(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("normalization", C.c_uint32), ("percentile_low", C.c_float),
                ("percentile_high", C.c_float), ("threshold", C.c_float), ("connectivity", C.c_uint32),
                ("min_size", C.c_uint64), ("memory_budget_bytes", C.c_uint64), ("max_tile", C.c_uint32),
                ("tiles_per_run", C.c_uint32), ("progress", PROGRESS), ("progress_user_data", C.c_void_p),
                # since 0.2
                ("instances", C.c_uint32), ("watershed_h", C.c_float), ("watershed_smoothing", C.c_float),
                # since 0.3
                ("test_time_augmentation", C.c_uint32), ("watershed_seed", C.c_float),
                # since 0.4
                ("channel", C.c_int32), ("object_size", C.c_float), ("pixel_size", C.c_float)]


INSTANCES = {"model": 0, "components": 1, "watershed": 2}


class Outputs(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("probabilities", C.c_void_p), ("probabilities_len", C.c_size_t),
                ("mask", C.c_void_p), ("mask_len", C.c_size_t), ("labels", C.c_void_p),
                ("labels_len", C.c_size_t), ("label_count", C.c_uint32),
                # since 0.4
                ("scale", C.c_float), ("measured_object_size", C.c_float)]


class WeightMapOptions(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("w0", C.c_float), ("sigma", C.c_float), ("balance", C.c_uint32),
                ("background_weight", C.c_float), ("foreground_weight", C.c_float), ("border_width", C.c_uint32)]


class WeightMapOutputs(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("weights", C.c_void_p), ("weights_len", C.c_size_t),
                ("target", C.c_void_p), ("target_len", C.c_size_t), ("cells", C.c_uint64),
                ("separation_pixels", C.c_uint64)]


def library_candidates():
    """UNET_LIBRARY, the copy shipped in this package, then a build in the source tree (editable installs)."""
    env = os.environ.get("UNET_LIBRARY")
    if env:
        yield Path(env)
    here = Path(__file__).resolve().parent
    yield here / "lib" / "libunet.so"
    for parent in here.parents:
        for profile in ("release", "debug"):
            candidate = parent / "target" / profile / "libunet.so"
            if candidate.exists():
                yield candidate


_lib = None


def lib():
    """The loaded libunet (loaded once)."""
    global _lib
    if _lib is None:
        tried = []
        for path in library_candidates():
            if path.exists():
                _lib = C.CDLL(str(path))
                break
            tried.append(str(path))
        if _lib is None:
            raise OSError("libunet.so not found; tried: " + ", ".join(tried) + " (set UNET_LIBRARY)")
        _lib.unet_last_error.restype = C.c_char_p
        _lib.unet_version.restype = C.c_char_p
        _lib.unet_status_string.restype = C.c_char_p
        _lib.unet_model_free.restype = None
    return _lib


def onnxruntime_library():
    """The ONNX Runtime library of the installed onnxruntime package (what napari users have), or None."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("onnxruntime")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    capi = Path(spec.origin).parent / "capi"
    libs = sorted(capi.glob("libonnxruntime.so*"))
    return str(libs[-1]) if libs else None
