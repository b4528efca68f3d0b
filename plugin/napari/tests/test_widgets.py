"""The plugin inside a real napari viewer (run under xvfb-run): manifest validation, the Segment and Weight Map
dock widgets, and a screenshot of the viewer saved as a test artifact."""
import subprocess
import sys
from pathlib import Path

import numpy as np

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
