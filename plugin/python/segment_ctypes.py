"""Plain ctypes use of libunet from a script, no package needed: segment a NumPy image into instance labels.

    python3 segment_ctypes.py path/to/libunet.so [model.onnx]

Declares only the structs it uses, exactly as include/unet.h lays them out.
"""
import ctypes as C
import sys

import numpy as np


class UnetImage(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("dtype", C.c_uint32), ("data", C.c_void_p), ("width", C.c_size_t),
                ("height", C.c_size_t), ("channels", C.c_size_t), ("row_stride_bytes", C.c_size_t)]


class UnetOutputs(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("probabilities", C.c_void_p), ("probabilities_len", C.c_size_t),
                ("mask", C.c_void_p), ("mask_len", C.c_size_t), ("labels", C.c_void_p), ("labels_len", C.c_size_t),
                ("label_count", C.c_uint32)]


UNET_DTYPE_U16 = 2


def main():
    lib = C.CDLL(sys.argv[1])
    lib.unet_last_error.restype = C.c_char_p
    lib.unet_version.restype = C.c_char_p
    model_path = sys.argv[2].encode() if len(sys.argv) > 2 else None  # None: the embedded default model

    model = C.c_void_p()
    if lib.unet_model_load(model_path, None, C.byref(model)) != 0:  # NULL options: defaults
        sys.exit("load failed: " + lib.unet_last_error().decode())

    image = np.full((120, 160), 100, np.uint16)
    for x, y, s in [(10, 10, 30), (70, 40, 35), (120, 80, 25)]:
        image[y:y + s, x:x + s] = 3000
    labels = np.zeros(image.shape, np.uint32)
    img = UnetImage(C.sizeof(UnetImage), UNET_DTYPE_U16, image.ctypes.data, image.shape[1], image.shape[0], 1,
                    image.strides[0])
    out = UnetOutputs(C.sizeof(UnetOutputs), None, 0, None, 0, labels.ctypes.data, labels.size, 0)
    status = lib.unet_segment(model, C.byref(img), None, C.byref(out))
    if status != 0:
        sys.exit(f"segment failed ({status}): " + lib.unet_last_error().decode())
    print(f"unet {lib.unet_version().decode()}: {out.label_count} instance(s), sizes "
          f"{sorted(np.bincount(labels.ravel())[1:].tolist())}")
    lib.unet_model_free(model)


if __name__ == "__main__":
    main()
