"""napari dock widgets (magicgui, no Qt binding imported here). Long work runs in a napari thread_worker; a
progress bar follows the library's progress callback."""
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui import magic_factory

from ._api import load_model, weight_map

if TYPE_CHECKING:
    import napari


def _run_with_progress(work, description):
    """Runs `work(progress)` in a worker thread; yields (done, total) for the progress bar while it runs.

    `worker.quit()` (napari's cancel) makes the library's progress callback return False, so the library stops at
    its next tile instead of computing the whole image for nobody. `worker.unet_state` shows the last progress and
    whether it was cancelled (the tests read it)."""
    from napari.qt.threading import thread_worker

    state = {"done": 0, "total": 1, "cancelled": False, "running": True}

    @thread_worker
    def worker():
        box = {}

        def progress(done, total):
            state["done"], state["total"] = done, total
            return not state["cancelled"]

        def target():
            try:
                box["result"] = work(progress)
            except Exception as e:  # re-raised in the worker: napari shows it
                box["error"] = e
            finally:
                state["running"] = False

        t = threading.Thread(target=target, daemon=True)
        t.start()
        while t.is_alive():
            t.join(0.05)
            yield state["done"], state["total"]
        if "error" in box:
            raise box["error"]
        return box["result"]

    w = worker()
    w.unet_state = state
    # napari's quit() stops the generator between yields; this stops the library too (at once through quit, and
    # through `aborted` for whoever calls the original).
    quit_worker = w.quit

    def cancel():
        state["cancelled"] = True
        quit_worker()

    w.quit = cancel
    w.aborted.connect(lambda: state.update(cancelled=True))
    from napari.utils import progress as napari_progress

    bar = napari_progress(total=1, desc=description)

    def on_yield(value):
        done, total = value
        bar.total = total
        bar.n = done
        bar.refresh()

    w.yielded.connect(on_yield)
    w.finished.connect(bar.close)
    return w


@magic_factory(
    call_button="Run",
    model={
        # A short label (a long one is cut off in the dock); the details in the tooltip.
        "label": "model (empty = default)",
        "tooltip": "an .onnx file, a bioimage.io package (.zip or rdf.yaml), or an embedded model by name: "
                   "default (nuclei), cells (DIC and phase-contrast cells), em (electron-microscopy membranes)",
        "mode": "r",
        "filter": "*.onnx *.zip *.yaml",
    },
    provider={"choices": ["auto", "cpu", "cuda"]},
    instances={"choices": ["model", "components", "watershed"], "label": "instances"},
    memory_mb={"min": 64, "max": 1 << 20, "label": "memory budget (MiB)"},
    tta={"label": "test-time augmentation (4x slower, fewer merged cells)"},
    channel={"min": -1, "max": 63, "label": "channel (-1 = gray / RGB luminance)",
             "tooltip": "the channel of an RGB layer (or of a channels-last image) to segment, from 0"},
    object_size={"min": -1.0, "max": 10000.0, "step": 1.0, "label": "object size px (0 = as is, -1 = auto)",
                 "tooltip": "the objects' typical diameter in pixels: the image is resampled so that they match the "
                            "model's object size; -1 measures it from a first pass"},
    scale_is_pixel_size={"label": "layer scale = µm per pixel",
                         "tooltip": "pass the layer's scale (when not 1) as the pixel size: a model that records the "
                                    "pixel size it was trained at resamples the image to it"},
)
def segment_widget(
    viewer: "napari.viewer.Viewer",
    image: "napari.layers.Image",
    model: Path = Path(""),
    provider: str = "auto",
    instances: str = "model",
    min_size: int = 0,
    memory_mb: int = 1024,
    probabilities: bool = False,
    tta: bool = False,
    channel: int = -1,
    object_size: float = 0.0,
    scale_is_pixel_size: bool = True,
):
    """Segments the image layer (frame by frame for stacks) into a Labels layer."""
    import numpy as np

    if image is None:
        raise ValueError("choose an image layer")
    data = np.asarray(image.data)
    path = str(model) if str(model) not in ("", ".") else None
    m = load_model(path, provider)
    rgb = bool(getattr(image, "rgb", False))
    frames = data[None] if data.ndim == (3 if rgb else 2) else data
    outputs = ("labels", "probabilities") if probabilities else ("labels",)
    # napari's default scale (1) means "not calibrated"; anything else is taken as µm per pixel when asked.
    pixel_size = float(image.scale[-1]) if scale_is_pixel_size and float(image.scale[-1]) != 1.0 else None

    def work(progress):
        labels, probs, ran = [], [], {}
        for i, frame in enumerate(frames):
            r = m.segment(frame, outputs=outputs, min_size=min_size, memory_mb=memory_mb, instances=instances,
                          tta=tta, channel=None if channel < 0 else channel,
                          object_size=None if object_size == 0 else "auto" if object_size < 0 else object_size,
                          pixel_size=pixel_size,
                          progress=lambda d, t, i=i: progress(i * t + d, len(frames) * t))
            labels.append(r["labels"])
            if probabilities:
                probs.append(r["probabilities"])
            # What ran on the first frame (scale, measured object size): kept with the layers, and said.
            ran = ran or {"scale": r["scale"], "measured_object_size": r["measured_object_size"],
                          "pixel_size": pixel_size}
        squeeze = (lambda a: a[0]) if len(frames) == 1 and frames is not data else (lambda a: a)
        return squeeze(np.stack(labels)), squeeze(np.stack(probs)) if probabilities else None, ran

    def add(result):
        labels, probs, ran = result
        # The new layers lie exactly over the image: its scale and translate (an RGB layer's last axis is colour,
        # not space, and napari keeps no scale for it).
        def placed(ndim):
            return {"scale": image.scale[-ndim:], "translate": image.translate[-ndim:]}

        viewer.add_labels(labels, name=f"{image.name} labels", metadata={"unet": ran}, **placed(labels.ndim))
        if probs is not None:
            viewer.add_image(probs, name=f"{image.name} probabilities", colormap="magma",
                             contrast_limits=(0, 1), metadata={"unet": ran}, **placed(probs.ndim))
        if ran.get("scale", 1) != 1:
            from napari.utils.notifications import show_info

            measured = ran["measured_object_size"]
            show_info(f"U-Net: segmented at scale {ran['scale']:.2f}"
                      + (f" (objects measured {measured:.0f} px across)" if measured else ""))

    worker = _run_with_progress(work, "U-Net segment")
    worker.returned.connect(add)
    worker.start()
    return worker


@magic_factory(
    call_button="Compute",
    balance={"choices": ["inverse", "none"]},
    sigma={"min": 0.1, "max": 100.0},
    w0={"min": 0.0, "max": 1000.0},
)
def weight_map_widget(
    viewer: "napari.viewer.Viewer",
    labels_layer: "napari.layers.Labels",
    w0: float = 10.0,
    sigma: float = 5.0,
    balance: str = "inverse",
    border_width: int = 2,
    show_target: bool = True,
):
    """Turns a Labels layer into the paper's loss weight map (and training target)."""
    import numpy as np

    if labels_layer is None:
        raise ValueError("choose a labels layer")
    weights, target = weight_map(np.asarray(labels_layer.data), w0=w0, sigma=sigma, balance=balance,
                                 border_width=border_width)
    viewer.add_image(weights, name=f"{labels_layer.name} weights", colormap="turbo", scale=labels_layer.scale)
    if show_target:
        viewer.add_labels(target.astype(np.uint8), name=f"{labels_layer.name} target", scale=labels_layer.scale)
