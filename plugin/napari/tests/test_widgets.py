"""The plugin inside a real napari viewer (run under xvfb-run): manifest validation, the Segment and Weight Map
dock widgets, and a screenshot of the viewer saved as a test artifact."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ARTIFACTS, BASELINE
from test_api import squares


def test_manifest_validates():
    npe2 = Path(sys.executable).with_name("npe2")
    r = subprocess.run([str(npe2), "validate", "unet-napari"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "valid" in (r.stdout + r.stderr).lower()


def test_segment_widget_adds_labels(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    layer = viewer.add_image(squares(), name="cells")
    _, widget = viewer.window.add_plugin_dock_widget("unet-napari", "Segment")
    widget.image.value = layer
    widget.model.value = Path(BASELINE)
    widget.probabilities.value = True
    widget()
    qtbot.waitUntil(lambda: "cells labels" in viewer.layers and "cells probabilities" in viewer.layers, timeout=60000)
    labels = viewer.layers["cells labels"].data
    assert labels.shape == (180, 240) and labels.max() == 4
    assert labels[30, 30] != 0 and labels[0, 0] == 0
    probs = viewer.layers["cells probabilities"].data
    assert ((probs > 0.5) == (labels > 0)).all()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "napari-segment.png"
    viewer.reset_view()
    viewer.screenshot(str(shot), canvas_only=False, flash=False)
    assert shot.stat().st_size > 10_000


def test_segment_widget_places_layers_and_takes_channel_and_object_size(make_napari_viewer, qtbot):
    """Layers added lie over the image (its scale and translate); an RGB layer's chosen channel and an object
    size reach the library (the labels equal the API's with the same options)."""
    import unet_napari as un

    viewer = make_napari_viewer()
    gray = (squares() // 16).astype(np.uint8)
    rgb = np.stack([np.zeros_like(gray), gray, np.full_like(gray, 255)], axis=2)  # the squares only in green
    layer = viewer.add_image(rgb, name="rgb", rgb=True, scale=(0.5, 0.25), translate=(10.0, -3.0))
    _, widget = viewer.window.add_plugin_dock_widget("unet-napari", "Segment")
    widget.image.value = layer
    widget.model.value = Path(BASELINE)
    widget.channel.value = 1
    widget.object_size.value = 20.0
    widget()
    qtbot.waitUntil(lambda: "rgb labels" in viewer.layers, timeout=60000)
    added = viewer.layers["rgb labels"]
    assert tuple(added.scale) == (0.5, 0.25) and tuple(added.translate) == (10.0, -3.0)
    expected = un.segment(gray, BASELINE, outputs=("labels",), object_size=20.0)["labels"]
    assert (added.data == expected).all() and added.data.max() == 4
    # What ran stays with the layer: 30 px (the baseline's assumed size) / 20 px.
    assert added.metadata["unet"]["scale"] == pytest.approx(1.5)
    assert added.metadata["unet"]["measured_object_size"] is None
    assert widget.model.label == "model (empty = default)"  # short enough not to be cut off


def test_segment_widget_handles_stacks(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    stack = np.stack([squares(), squares()[:, ::-1]])
    layer = viewer.add_image(stack, name="movie")
    _, widget = viewer.window.add_plugin_dock_widget("unet-napari", "Segment")
    widget.image.value = layer
    widget.model.value = Path(BASELINE)
    widget()
    qtbot.waitUntil(lambda: "movie labels" in viewer.layers, timeout=60000)
    labels = viewer.layers["movie labels"].data
    assert labels.shape == (2, 180, 240)
    assert labels[0].max() == 4 and labels[1].max() == 4


def test_weight_map_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    gt = np.zeros((40, 60), np.uint16)
    gt[5:30, 5:30] = 1
    gt[5:30, 30:55] = 2
    layer = viewer.add_labels(gt, name="truth")
    _, widget = viewer.window.add_plugin_dock_widget("unet-napari", "Weight Map")
    widget.labels_layer.value = layer
    widget()
    weights = viewer.layers["truth weights"].data
    target = viewer.layers["truth target"].data
    assert weights.shape == gt.shape and weights[15, 30] == weights.max()
    assert target[15, 29] == 1 and target[15, 30] == 0


def test_sample_data_opens_and_segments(make_napari_viewer):
    """File > Open Sample > U-Net: the synthetic nuclei open as an image layer, and the default model finds them."""
    viewer = make_napari_viewer()
    viewer.open_sample("unet-napari", "synthetic-nuclei")
    layer = viewer.layers["synthetic nuclei"]
    assert layer.data.shape == (512, 512) and layer.data.dtype == np.uint16
    from unet_napari import load_model

    labels = load_model(None, "cpu").segment(layer.data, outputs=("labels",))["labels"]
    assert labels.max() >= 40, f"the default model found {labels.max()} nuclei in the sample (about 90 drawn)"


def test_demo_image_sample_opens_with_its_truth(make_napari_viewer):
    """File > Open Sample > U-Net > Real fluorescence nuclei: the DSB 2018 image and its 125 labelled nuclei (from
    UNET_DEMO_IMAGE here, the folder `make demo` uses)."""
    viewer = make_napari_viewer()
    viewer.open_sample("unet-napari", "dsb2018-nuclei")
    image, truth = viewer.layers["DSB 2018 nuclei"], viewer.layers["DSB 2018 ground truth"]
    assert image.data.shape == (512, 512) and len(np.unique(truth.data)) == 126


@pytest.mark.skipif(not os.environ.get("UNET_TEST_ONLINE"), reason="downloads from PyPI (UNET_TEST_ONLINE=1)")
def test_demo_image_downloads_once_and_checks_its_pins(tmp_path, monkeypatch):
    from unet_napari import _samples

    monkeypatch.delenv("UNET_DEMO_IMAGE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    layers = _samples.dsb2018_nuclei()
    assert layers[0][0].shape == (512, 512) and (tmp_path / "unet-napari/dsb2018/.complete").exists()
    # The pins guard the download: a wheel that does not match them is refused, nothing is cached.
    monkeypatch.setattr(_samples, "_WHEEL_SHA256", "0" * 64)
    (tmp_path / "unet-napari/dsb2018/.complete").unlink()
    with pytest.raises(RuntimeError, match="sha256"):
        _samples.dsb2018_nuclei()


def test_segment_widget_reports_progress_and_cancels(make_napari_viewer, qtbot):
    """The progress bar follows the library's tiles to the end; napari's cancel (worker.quit) stops the library at
    its next tile and adds no layer."""
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.tile(squares(), (6, 6)), name="big")  # 1080x1440, many tiles at 64 MiB
    _, widget = viewer.window.add_plugin_dock_widget("unet-napari", "Segment")
    widget.image.value = layer
    widget.model.value = Path(BASELINE)
    widget.memory_mb.value = 64
    seen = []
    worker = widget()
    worker.yielded.connect(seen.append)
    qtbot.waitUntil(lambda: "big labels" in viewer.layers, timeout=120000)
    state = worker.unet_state
    dones = [d for d, _ in seen]
    assert len(set(dones)) >= 3, seen
    assert dones == sorted(dones), seen
    assert state["done"] == state["total"] > 1 and not state["cancelled"]

    worker = widget()
    qtbot.waitUntil(lambda: worker.unet_state["done"] > 0, timeout=60000)
    worker.quit()
    qtbot.waitUntil(lambda: not worker.unet_state["running"], timeout=30000)
    state = worker.unet_state
    assert state["cancelled"] and state["done"] < state["total"], state
    qtbot.wait(500)
    assert [l.name for l in viewer.layers if l.name.startswith("big labels")] == ["big labels"]
