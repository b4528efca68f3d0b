"""bioimage.io packages unet did not write, run by `unet segment --model PACKAGE.zip` (issue: models in and out).

Builds small padded-convolution networks with the `onnx` package (channels-last input and no batch axis, a
sigmoid single-channel output, a fixed 96x96 input with a softmax over two classes) and describes them with
`bioimageio.spec` (format 0.5: its own validation runs when the package is saved; `bioimageio test` runs
afterwards in scripts/test-bioimageio.sh). Each package's test output is computed here with numpy + ONNX Runtime,
so the official runner also checks this script's reading of the description.

unet's probabilities are then compared with the same network run once over the whole image, mirror-padded
(numpy's `symmetric`, as unet's tiling mirrors) by the halo: with a receptive field smaller than the halo, the tiles
must reproduce it exactly (float32 tolerance).

Last, a package unet exported itself (`unet export-bioimageio`) must give, run as a package, the probabilities of
the model it was made from.

Usage: python bioimageio_foreign.py UNET_BINARY IMAGE.tif OUT_DIR [EXPORTED.zip ITS_MODEL]
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import tifffile
from onnx import TensorProto, helper, numpy_helper

from bioimageio.spec import save_bioimageio_package
from bioimageio.spec.model import v0_5 as m

unet, image_path, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(7)
HALO = 8


def conv_net(path, *, channels_last, batch, outputs, softmax, fixed=None):
    """Two padded 3x3 convolutions (receptive field radius 2 < HALO). Input [b?, y, x, c] when channels_last, else
    [b?, c, y, x]; output [b?, outputs, y, x]. Saves the network (sizes `fixed` when given) and returns the same
    network with free sizes, for the whole-image reference."""
    weights = [
        numpy_helper.from_array((rng.normal(size=(4, 1, 3, 3)) * 0.5).astype(np.float32), "w1"),
        numpy_helper.from_array((rng.normal(size=4) * 0.1).astype(np.float32), "b1"),
        numpy_helper.from_array((rng.normal(size=(outputs, 4, 3, 3)) * 0.5).astype(np.float32), "w2"),
        numpy_helper.from_array((rng.normal(size=outputs) * 0.1).astype(np.float32), "b2"),
        numpy_helper.from_array(np.array([0], np.int64), "axis0"),
    ]

    def build(size):
        h, w = (size, size) if size else ("h", "w")
        in_shape = ([1] if batch else []) + ([h, w, 1] if channels_last else [1, h, w])
        out_shape = ([1] if batch else []) + [outputs, h, w]
        nodes, x = [], "raw"
        if not batch:
            nodes.append(helper.make_node("Unsqueeze", ["raw", "axis0"], ["raw4"]))
            x = "raw4"
        if channels_last:
            nodes.append(helper.make_node("Transpose", [x], ["nchw"], perm=[0, 3, 1, 2]))
            x = "nchw"
        nodes += [
            helper.make_node("Conv", [x, "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        ]
        y = "c2"
        if softmax:
            nodes.append(helper.make_node("Softmax", [y], ["sm"], axis=1))
            y = "sm"
        nodes.append(helper.make_node("Identity" if batch else "Squeeze", [y] if batch else [y, "axis0"], ["pred"]))
        graph = helper.make_graph(
            nodes,
            "foreign",
            [helper.make_tensor_value_info("raw", TensorProto.FLOAT, in_shape)],
            [helper.make_tensor_value_info("pred", TensorProto.FLOAT, out_shape)],
            weights,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="not-unet")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model

    onnx.save(build(fixed), path)
    return build(None)


def run(model_proto, x):
    session = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"raw": x.astype(np.float32)})[0]


def zero_mean_unit_variance(img):
    return (img - img.mean()) / (img.std() + 1e-6)


def scale_range(img, low=1.0, high=99.8):
    lo, hi = np.percentile(img, [low, high])
    return (img - lo) / (hi - lo + 1e-6)


def to_layout(img2d, channels_last, batch):
    a = img2d[..., None] if channels_last else img2d[None]
    return a[None] if batch else a


def package(name, onnx_path, *, channels_last, batch, outputs, sizes, preprocessing, postprocessing, names, test_out):
    folder = onnx_path.parent
    ids = {"y": m.AxisId("y"), "x": m.AxisId("x")}
    space_in = [m.SpaceInputAxis(id=ids[a], size=sizes) for a in ("y", "x")]
    # A network exported with a fixed batch of 1 says so (the runner tries batch 2 otherwise).
    batch_axis = [m.BatchAxis(size=1) if isinstance(sizes, int) else m.BatchAxis()] if batch else []
    axes_in = batch_axis + (
        space_in + [m.ChannelAxis(channel_names=[m.Identifier("raw")])]
        if channels_last
        else [m.ChannelAxis(channel_names=[m.Identifier("raw")])] + space_in
    )
    ref = lambda a: m.SizeReference(tensor_id=m.TensorId("raw"), axis_id=ids[a])  # noqa: E731
    space_out = [m.SpaceOutputAxisWithHalo(id=ids[a], size=ref(a), halo=HALO) for a in ("y", "x")]
    axes_out = batch_axis + [m.ChannelAxis(channel_names=[m.Identifier(n) for n in names])] + space_out
    test_in_path, test_out_path = folder / f"{name}-in.npy", folder / f"{name}-out.npy"
    np.save(test_in_path, test_out[0])
    np.save(test_out_path, test_out[1])
    (folder / "README.md").write_text(f"# {name}\nA test network made by unet's tests (not by unet).\n")
    descr = m.ModelDescr(
        name=name,
        description="a padded-convolution test network made with the onnx package",
        authors=[m.Author(name="Someone Else")],
        cite=[m.CiteEntry(text="A test", doi=m.Doi("10.1007/978-3-319-24574-4_28"))],
        license=m.LicenseId("MIT"),
        documentation=m.FileDescr(source=folder / "README.md"),
        inputs=[
            m.InputTensorDescr(
                id=m.TensorId("raw"),
                axes=axes_in,
                test_tensor=m.FileDescr(source=test_in_path),
                preprocessing=preprocessing,
            )
        ],
        outputs=[
            m.OutputTensorDescr(
                id=m.TensorId("pred"),
                axes=axes_out,
                test_tensor=m.FileDescr(source=test_out_path),
                postprocessing=postprocessing,
            )
        ],
        weights=m.WeightsDescr(onnx=m.OnnxWeightsDescr(source=onnx_path, opset_version=17)),
    )
    zip_path = out / f"{name}.zip"
    save_bioimageio_package(descr, output_path=zip_path)
    return zip_path


def unet_probabilities(model, tag):
    p = out / f"{tag}-probabilities.tif"
    with open(out / f"{tag}.log", "w") as log:
        subprocess.run([unet, "segment", str(image_path), "--model", str(model), "--probabilities", str(p)],
                       check=True, stdout=log, stderr=log)
    return tifffile.imread(p)


def whole_image(free_model, pre, channels_last, batch, post, pick):
    """The network once over the image mirrored by HALO (and to a multiple of 16 below/right), then cropped."""
    img = pre(tifffile.imread(image_path).astype(np.float64))
    h, w = img.shape
    ph, pw = (-(h + 2 * HALO)) % 16, (-(w + 2 * HALO)) % 16
    padded = np.pad(img, ((HALO, HALO + ph), (HALO, HALO + pw)), mode="symmetric")
    y = run(free_model, to_layout(padded, channels_last, batch))
    y = y if batch else y[None]
    return pick(post(y[0]))[HALO:HALO + h, HALO:HALO + w]


sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
failures = []

# 1. Channels last, no batch axis, one sigmoid channel, sizes 64 + 16k, zero-mean-unit-variance.
onnx_a = out / "nhwc-sigmoid.onnx"
free_a = conv_net(onnx_a, channels_last=True, batch=False, outputs=1, softmax=False)
test_img = rng.normal(1000, 200, size=(64, 80)).astype(np.float32)
raw = to_layout(test_img, True, False)
test_pred = sigmoid(run(free_a, to_layout(zero_mean_unit_variance(test_img.astype(np.float64)), True, False)))
zip_a = package(
    "nhwc-sigmoid", onnx_a, channels_last=True, batch=False, outputs=1,
    sizes=m.ParameterizedSize(min=64, step=16),
    preprocessing=[m.EnsureDtypeDescr(kwargs=m.EnsureDtypeKwargs(dtype="float32")),
                   m.ZeroMeanUnitVarianceDescr(kwargs=m.ZeroMeanUnitVarianceKwargs(axes=[m.AxisId("y"), m.AxisId("x")]))],
    postprocessing=[m.SigmoidDescr()], names=["cells"], test_out=(raw, test_pred.astype(np.float32)),
)
got = unet_probabilities(zip_a, "nhwc-sigmoid")
want = whole_image(free_a, zero_mean_unit_variance, True, False, sigmoid, lambda y: y[0])
d = np.abs(got - want).max()
print(f"nhwc-sigmoid: {zip_a.name} max |unet - whole image| = {d:.2e}")
if not d < 1e-4:
    failures.append(f"nhwc-sigmoid differs by {d}")

# 2. A fixed 96x96 input with a batch axis, two classes by a softmax inside the network, percentile scaling.
onnx_b = out / "fixed-softmax.onnx"
free_b = conv_net(onnx_b, channels_last=False, batch=True, outputs=2, softmax=True, fixed=96)
test_img = rng.normal(500, 100, size=(96, 96)).astype(np.float32)
raw = to_layout(test_img, False, True)
test_pred = run(free_b, to_layout(scale_range(test_img.astype(np.float64)), False, True))
zip_b = package(
    "fixed-softmax", onnx_b, channels_last=False, batch=True, outputs=2, sizes=96,
    preprocessing=[m.ScaleRangeDescr(kwargs=m.ScaleRangeKwargs(axes=[m.AxisId("y"), m.AxisId("x")],
                                                               min_percentile=1.0, max_percentile=99.8))],
    postprocessing=[], names=["background", "cells"], test_out=(raw, test_pred.astype(np.float32)),
)
got = unet_probabilities(zip_b, "fixed-softmax")
want = whole_image(free_b, scale_range, False, True, lambda y: y, lambda y: 1 - y[0])
d = np.abs(got - want).max()
print(f"fixed-softmax: {zip_b.name} max |unet - whole image| = {d:.2e}")
if not d < 1e-4:
    failures.append(f"fixed-softmax differs by {d}")

# 3. unet's own export, run as a package, equals the model it came from.
if len(sys.argv) > 5:
    exported, source = sys.argv[4], sys.argv[5]
    d = np.abs(unet_probabilities(exported, "round-trip") - unet_probabilities(source, "round-trip-source")).max()
    print(f"round trip: {Path(exported).name} as a package vs {source}: max difference {d:.2e}")
    if not d < 1e-5:
        failures.append(f"the exported package differs from its model by {d}")

if failures:
    sys.exit("; ".join(failures))
print("foreign packages: unet's tiles reproduce the whole-image run")
