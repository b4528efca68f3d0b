"""Script API: segment and weight_map on NumPy arrays, the Dask helper against the direct call."""
import numpy as np
import pytest

import unet_napari as un
from conftest import BASELINE, RANDOM_DEPTH4


def squares(h=180, w=240):
    img = np.full((h, w), 120, np.uint16)
    for x, y, s in [(10, 10, 40), (120, 30, 30), (60, 100, 50), (190, 120, 25)]:
        img[y:y + s, x:x + s] = 3200
    return img


def test_segment_finds_each_square():
    out = un.segment(squares(), BASELINE)
    assert out["label_count"] == 4
    assert out["labels"].dtype == np.uint32 and out["labels"].shape == (180, 240)
    assert ((out["mask"] == 1) == (out["probabilities"] > 0.5)).all()
    assert out["labels"][30, 30] != 0 and out["labels"][0, 0] == 0


def test_strided_and_converted_inputs_agree():
    img = squares()
    direct = un.segment(img, BASELINE, outputs=("labels",))["labels"]
    padded = np.zeros((180, 250), np.uint16)
    padded[:, :240] = img
    assert (un.segment(padded[:, :240], BASELINE, outputs=("labels",))["labels"] == direct).all()
    assert (un.segment(img.astype(np.int32), BASELINE, outputs=("labels",))["labels"] == direct).all()  # converted to f32


def test_colour_images_are_segmented_as_their_luminance():
    """The library's colour rule (BT.601 luminance) for a one-channel model, the same in every host."""
    gray = (squares() // 16).astype(np.uint8)
    direct = un.segment(gray, BASELINE, outputs=("labels",))["labels"]
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    assert (un.segment(rgb, BASELINE, outputs=("labels",))["labels"] == direct).all()
    rgba = np.concatenate([rgb, np.full_like(gray, 7)[:, :, None]], axis=2)
    assert (un.segment(rgba, BASELINE, outputs=("labels",))["labels"] == direct).all()
    # A green square (luminance 150) is found, a blue one (29) is not; an unweighted mean (85 each) finds both.
    colour = np.zeros((150, 200, 3), np.uint8)
    colour[20:60, 20:60, 1] = 255
    colour[60:100, 110:150, 2] = 255
    labels = un.segment(colour, BASELINE, outputs=("labels",))["labels"]
    assert labels[40, 40] != 0 and labels[80, 130] == 0 and labels.max() == 1


def test_a_chosen_channel_is_segmented_as_it_is():
    gray = squares()
    direct = un.segment(gray, BASELINE, outputs=("labels",))["labels"]
    ramp = np.tile(np.arange(240, dtype=np.uint16) * 13, (180, 1))
    three = np.stack([ramp, gray, ramp[::-1]], axis=2)
    assert (un.segment(three, BASELINE, outputs=("labels",), channel=1)["labels"] == direct).all()
    with pytest.raises(un.UnetError, match="channel 3"):
        un.segment(three, BASELINE, channel=3)
    with pytest.raises(un.UnetError, match="--channel"):
        un.segment(three[:, :, :2], BASELINE)


def test_object_size_resamples_and_agrees_with_the_cli():
    """The CLI's labels at --object-size 12 (written by scripts/test-napari.sh) equal Python's; auto reports what
    it measured; the outputs keep the image's shape."""
    import os

    import tifffile

    image = tifffile.imread(os.environ["UNET_TEST_SAMPLE"])
    cli = tifffile.imread(os.environ["UNET_TEST_SAMPLE_SIZED_LABELS"])
    model = un.load_model(BASELINE)
    assert model.info["object_size"] == 30  # the baseline records none: the documented default
    r = model.segment(image, object_size=12)
    assert r["scale"] == pytest.approx(2.5) and r["labels"].shape == image.shape
    assert (r["labels"] == cli).all(), f"{(r['labels'] != cli).sum()} pixels differ from the CLI"
    assert ((r["probabilities"] >= 0) & (r["probabilities"] <= 1)).all()
    auto = model.segment(image, outputs=("labels",), object_size="auto")
    assert auto["measured_object_size"] > 0
    as_is = model.segment(image, outputs=("labels",))
    assert as_is["scale"] == 1 and as_is["measured_object_size"] is None
    for bad in (0, -3, float("nan"), "big"):
        with pytest.raises((ValueError, un.UnetError)):
            model.segment(image, object_size=bad)
    # A pixel size: this model records none, so nothing changes; the C test covers a model that records one.
    assert model.info["pixel_size"] is None
    assert (model.segment(image, outputs=("labels",), pixel_size=0.5)["labels"] == as_is["labels"]).all()
    with pytest.raises(ValueError):
        model.segment(image, pixel_size=-1)
    calibrated = un.load_model(os.environ["UNET_TEST_CALIBRATED_MODEL"])
    assert calibrated.info["pixel_size"] == pytest.approx(0.65)
    half = calibrated.segment(image, outputs=("labels",), pixel_size=0.325)
    assert half["scale"] == pytest.approx(0.5) and half["labels"].shape == image.shape
    assert calibrated.segment(image, outputs=("labels",), pixel_size=0.325, object_size=12)["scale"] != 0.5


def test_errors_carry_status_and_message():
    with pytest.raises(un.UnetError) as e:
        un.segment(np.zeros((10, 10, 2), np.float32))
    assert e.value.status == 18 and "channel" in str(e.value)
    with pytest.raises(un.UnetError) as e:
        un.segment(np.array([[np.nan, 1.0]], np.float32))
    assert e.value.status == 7
    with pytest.raises(un.UnetError) as e:
        un.segment(squares(), BASELINE, progress=lambda done, total: done < 1, max_tile=60)
    assert e.value.status == 16


def test_model_info_names_the_provider_and_runtime():
    info = un.load_model().info  # the embedded default
    assert info["provenance"]
    assert info["provider"] == "cpu" and "CUDA" in info["fallback_reason"]
    assert info["halo"] == 92 and info["ort_version"].startswith("1.")


def test_a_bioimageio_package_runs_like_its_network(tmp_path):
    """A bioimage.io package (rdf.yaml + ONNX weights, zipped) is a model path like any other."""
    import zipfile

    info = un.load_model(BASELINE).info
    low, high = info["normalization"].split(":")[1:]  # percentile:LOW:HIGH
    size = f"{{min: {info['min_input']}, step: {info['size_step']}}}"
    crop = -2 * info["halo"]
    rdf = f"""format_version: 0.5.4
type: model
name: baseline as a package
description: the intensity baseline, packaged by hand
authors: [{{name: a test}}]
license: MIT
inputs:
  - id: image
    axes:
      - type: batch
      - type: channel
        channel_names: [gray]
      - {{type: space, id: y, size: {size}}}
      - {{type: space, id: x, size: {size}}}
    preprocessing:
      - id: scale_range
        kwargs: {{axes: [y, x], min_percentile: {low}, max_percentile: {high}}}
outputs:
  - id: probabilities
    axes:
      - type: batch
      - type: channel
        channel_names: [background, foreground]
      - {{type: space, id: y, size: {{tensor_id: image, axis_id: y, offset: {crop}}}}}
      - {{type: space, id: x, size: {{tensor_id: image, axis_id: x, offset: {crop}}}}}
weights:
  onnx: {{source: net.onnx, opset_version: 17}}
"""
    package = tmp_path / "baseline.zip"
    with zipfile.ZipFile(package, "w") as z:
        z.writestr("rdf.yaml", rdf)
        z.write(BASELINE, "net.onnx")
    packaged = un.segment(squares(), str(package))
    direct = un.segment(squares(), BASELINE)
    assert packaged["label_count"] == direct["label_count"] == 4
    assert np.abs(packaged["probabilities"] - direct["probabilities"]).max() < 1e-6
    assert "baseline as a package" in un.load_model(str(package)).info["provenance"]


def test_weight_map_separates_touching_cells():
    labels = np.zeros((10, 20), np.uint16)
    labels[2:8, 2:10] = 1
    labels[2:8, 10:18] = 2
    weights, target = un.weight_map(labels)
    assert target[5, 9] == 1 and target[5, 10] == 0 and target[5, 11] == 0 and target[5, 12] == 1
    assert weights[5, 10] == weights.max() > 5


@pytest.mark.parametrize("shape,chunk", [((300, 260), 128), ((517, 403), 160), ((40, 70), 96), ((700, 333), 224)])
def test_dask_helper_equals_one_pass(shape, chunk):
    import dask.array as da  # a dependency of the test environment: missing it must fail, not skip

    rng = np.random.default_rng(1)
    img = (rng.random(shape) * 4000).astype(np.uint16)
    img[30:70, 30:80] = 3900
    # The baseline sees only +-4 px; the random depth-4 net has the full 92-px halo and the 16-px pooling grid, so
    # a halo or a chunk grid that is off changes its result (see the next test).
    for model in (BASELINE, RANDOM_DEPTH4):
        direct = un.segment(img, model, outputs=("probabilities",))["probabilities"]
        lazy = un.segment_dask(da.from_array(img, chunks=chunk), model, chunk=chunk)
        if min(shape) > 2 * chunk:
            assert len(lazy.chunks[0]) > 1 and len(lazy.chunks[1]) > 1, lazy.chunks
        result = lazy.compute(scheduler="threads")
        assert result.shape == direct.shape
        assert direct.max() - direct.min() > 1e-3, "a constant output would agree with anything"
        assert np.abs(result - direct).max() <= 1e-5, model


@pytest.mark.parametrize("field,value,chunk", [("halo", 40, 128), ("size_step", 4, 132)])
def test_dask_helper_is_wrong_with_a_wrong_halo_or_grid(field, value, chunk):
    """The equality above can fail: with too little context, or chunks off the pooling grid, results differ."""
    import dask.array as da

    img = (np.random.default_rng(2).random((400, 360)) * 4000).astype(np.uint16)
    direct = un.segment(img, RANDOM_DEPTH4, outputs=("probabilities",))["probabilities"]
    wrong = un.Model(RANDOM_DEPTH4)
    wrong.info[field] = value
    result = un.segment_dask(da.from_array(img, chunks=chunk), wrong, chunk=chunk).compute(scheduler="threads")
    assert np.abs(result - direct).max() > 1e-3, f"a wrong {field} ({value}) went unnoticed"


def test_instances_equal_the_cli_and_split_touching_cells():
    """The CLI's watershed labels of the same image and model (written by scripts/test-napari.sh) equal ours."""
    import os

    import tifffile

    image = tifffile.imread(os.environ["UNET_TEST_SAMPLE"])
    cli = tifffile.imread(os.environ["UNET_TEST_SAMPLE_LABELS"])
    ws = un.segment(image, BASELINE, outputs=("labels",), instances="watershed")
    assert ws["label_count"] > 1
    assert (ws["labels"] == cli).all(), f"{(ws['labels'] != cli).sum()} pixels differ from the CLI"
    cc = un.segment(image, BASELINE, outputs=("labels",), instances="components")
    assert cc["label_count"] < ws["label_count"]  # the sample has touching cells
    assert (ws["labels"] > 0).sum() == (cc["labels"] > 0).sum()  # same foreground, split differently
    merged = un.segment(image, BASELINE, outputs=("labels",), instances="watershed", watershed_h=1000)
    assert merged["label_count"] == cc["label_count"]
    with pytest.raises(ValueError):
        un.segment(image, BASELINE, instances="blobs")


def test_the_default_model_with_its_recommendation_equals_the_cli():
    """The product as shipped: the embedded default, every post-processing choice left to its metadata."""
    import os

    import tifffile

    image = tifffile.imread(os.environ["UNET_TEST_SAMPLE"])
    cli = tifffile.imread(os.environ["UNET_TEST_SAMPLE_DEFAULT_LABELS"])
    mine = un.segment(image, outputs=("labels",))
    assert mine["label_count"] > 1
    assert (mine["labels"] == cli).all(), f"{(mine['labels'] != cli).sum()} pixels differ from the CLI"


def test_test_time_augmentation_and_seeds_reach_the_library():
    """The 0.3 fields: tta changes what a network that is not mirror-symmetric says; a seed probability is checked
    by the library (so it arrives where the library reads it) and seeds the watershed."""
    img = squares()
    plain = un.segment(img, RANDOM_DEPTH4, outputs=("probabilities",))["probabilities"]
    tta = un.segment(img, RANDOM_DEPTH4, outputs=("probabilities",), tta=True)["probabilities"]
    assert np.abs(plain - tta).max() > 1e-4
    with pytest.raises(un.UnetError, match="seed"):
        un.segment(img, BASELINE, instances="watershed", watershed_seed=1.5)
    seeded = un.segment(img, BASELINE, outputs=("labels",), instances="watershed", watershed_seed=0.5)
    assert seeded["label_count"] == 4


def test_instances_label_probabilities_as_segment_does():
    """Labelling the probabilities again (no network) gives segment's mask and labels, with the model's
    recommendation or without a model; bad probability maps are refused."""
    img = squares()
    model = un.load_model(BASELINE)
    assert model.info["postprocessing"] == "components min_size=0"  # the baseline recommends nothing
    for kwargs in (dict(), dict(instances="watershed", watershed_h=1.0), dict(threshold=0.3, min_size=700)):
        out = un.segment(img, BASELINE, **kwargs)
        again = un.instances(out["probabilities"], BASELINE, outputs=("labels", "mask"), **kwargs)
        assert (again["labels"] == out["labels"]).all() and (again["mask"] == out["mask"]).all(), kwargs
        assert again["label_count"] == out["label_count"], kwargs
    assert un.segment(img, BASELINE, threshold=0.3, min_size=700)["label_count"] == 3  # the 25-px square is gone
    assert un.instances(out["probabilities"].astype(np.float64), False)["label_count"] == 4  # converted, no model
    with pytest.raises(un.UnetError) as e:
        un.instances(out["probabilities"] * 2, False)
    assert e.value.status == 2 and "not in [0, 1]" in str(e.value)
    with pytest.raises(ValueError, match="2-D"):
        un.instances(np.zeros((4, 4, 2), np.float32), False)


def _read_labels(labels_path):
    import zarr

    group = zarr.open_group(labels_path)
    axes, level0 = un._api._ome_axes(dict(group.attrs))
    assert axes == ["y", "x"] and "image-label" in (group.attrs.get("ome") or dict(group.attrs))
    return group[level0][:]


def test_segment_zarr_on_a_local_cluster_equals_one_pass(tmp_path):
    """OME-Zarr in, OME-Zarr labels out, on a dask.distributed LocalCluster of two worker processes: each worker
    loads the model once; the labels equal one pass over the whole image exactly (the same numbers), for the
    watershed (which splits touching cells) and connected components, including cells that straddle chunk borders;
    clusters larger than the context fall back to one instance each, with a warning."""
    import os
    import warnings

    import tifffile
    import zarr
    from dask.distributed import Client, LocalCluster
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image

    sample = tifffile.imread(os.environ["UNET_TEST_SAMPLE"])
    image = np.tile(sample, (6, 5))[:1024, :1061].copy()  # not a multiple of the chunk
    path = str(tmp_path / "image.ome.zarr")
    write_image(image, zarr.group(store=parse_url(path, mode="w").store), axes="yx",
                storage_options={"chunks": (512, 512)})
    runs = [dict(instances="watershed"), dict(instances="watershed", watershed_seed=0.8, connectivity=8),
            dict(instances="components")]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        results = []
        for kwargs in runs:  # each run replaces the labels of the one before
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no cluster may exceed this context
                results.append(un.segment_zarr(path, BASELINE, chunk=256, context=288, **kwargs))
            results[-1] += (_read_labels(results[-1][0]),)
        with pytest.warns(UserWarning, match="larger than the context"):
            small_context = un.segment_zarr(path, BASELINE, chunk=256, context=40, instances="watershed",
                                            watershed_smoothing=0)
        small_context += (_read_labels(small_context[0]),)
        # A lambda travels by value (a test-module function would be looked up by name in the worker and fail).
        loaded = client.run(lambda: len(un._api._models))
    assert len(loaded) == 2 and all(n == 1 for n in loaded.values()), f"models per worker: {loaded}"
    components = un.segment(image, BASELINE, outputs=("labels",), instances="components")
    for kwargs, (_, count, labels) in zip(runs, results):
        single = un.segment(image, BASELINE, outputs=("labels",), **kwargs)
        assert labels.shape == image.shape and count == single["label_count"] > 100, kwargs
        assert (labels == single["labels"]).all(), f"{kwargs}: not the labels of one pass"
        # Cells across the chunk borders keep one number on both sides (a per-chunk labelling would give them two).
        across = set()
        for b in (256, 512, 768):
            across |= (set(labels[:, b - 1].tolist()) & set(labels[:, b].tolist())) | \
                (set(labels[b - 1, :].tolist()) & set(labels[b, :].tolist()))
        across.discard(0)
        assert len(across) > 5, f"{kwargs}: too few cells straddle the chunk borders for the test to mean much"
    assert results[0][1] > components["label_count"] + 100, "the watershed split no touching cells"
    # Too small a context: small clusters are still the watershed's instances, large ones their component; so the
    # partition lies between the two whole-image passes and every instance is whole across chunks.
    _, count, labels = small_context
    watershed = un.segment(image, BASELINE, outputs=("labels",), instances="watershed", watershed_smoothing=0)
    assert components["label_count"] <= count < watershed["label_count"]
    for finer, coarser in ((watershed["labels"], labels), (labels, components["labels"])):
        pairs = set(zip(finer.ravel().tolist(), coarser.ravel().tolist()))
        assert len(pairs) == len({a for a, _ in pairs}), "an instance is split across chunks"
    assert len(set(labels.ravel().tolist())) - 1 == count
    with pytest.raises(ValueError, match="OME-Zarr"):
        zarr.group(store=parse_url(str(tmp_path / "plain.zarr"), mode="w").store)
        un.segment_zarr(str(tmp_path / "plain.zarr"), BASELINE)


def test_segment_zarr_image_larger_than_the_workers_memory(tmp_path):
    """A 484 MiB float32 OME-Zarr image (11264 x 11264) through one worker process whose nanny kills it above 95 %
    of 448 MiB (spilling and pausing off, so the limit is hard): no step may hold the image. Bright 40-px squares on
    a 64-px grid are each found once (the exact count), the worker is never restarted, and its peak RSS stays
    below the image's size."""
    import os
    import threading

    import dask
    import dask.array as da
    import psutil
    import zarr
    from dask.distributed import Client, LocalCluster
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image

    side, period, size = 11264, 64, 40

    def squares_block(block_info=None):
        (y0, y1), (x0, x1) = block_info[None]["array-location"]
        y, x = np.ogrid[y0:y1, x0:x1]
        return np.where((y % period < size) & (x % period < size), 3000.0, 100.0).astype(np.float32)

    image = da.map_blocks(squares_block, chunks=((1024,) * (side // 1024),) * 2, dtype=np.float32)
    path = str(tmp_path / "big.ome.zarr")
    with dask.config.set(scheduler="threads"):  # written here, chunk by chunk, before the cluster starts
        write_image(image, zarr.group(store=parse_url(path, mode="w").store), axes="yx", scaler=None,
                    storage_options={"chunks": (1024, 1024)})
    limit = 448 * 2**20
    assert image.nbytes > limit
    hard = {"distributed.worker.memory.target": False, "distributed.worker.memory.spill": False,
            "distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": 0.95}
    with dask.config.set(hard), LocalCluster(n_workers=1, threads_per_worker=1, processes=True, memory_limit=limit,
                                             dashboard_address=None) as cluster, Client(cluster) as client:
        workers = set(client.scheduler_info()["workers"])
        (pid,) = client.run(os.getpid).values()
        sampled, done = [], threading.Event()

        def sample():  # the worker's RSS every 50 ms, as the nanny sees it
            worker = psutil.Process(pid)
            while not done.wait(0.05):
                sampled.append(worker.memory_info().rss)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            labels_path, count = un.segment_zarr(path, BASELINE, chunk=512, max_tile=256)
        finally:
            done.set()
            sampler.join()
        assert set(client.scheduler_info()["workers"]) == workers, "the worker was restarted"
    # Sampled, not getrusage: a spawned worker's ru_maxrss keeps the peak of the forked copy of this (large, napari)
    # process from before its exec. The nanny's limit is the hard bound; the samples show the margin under it.
    peak = max(sampled)
    print(f"image {image.nbytes / 2**20:.0f} MiB, worker limit {limit / 2**20:.0f} MiB, worker peak RSS "
          f"{peak / 2**20:.0f} MiB (sampled every 50 ms)")
    assert len(sampled) > 100 and peak < 0.95 * limit < image.nbytes
    assert count == (side // period) ** 2
    labels = zarr.open_group(labels_path)
    level0 = labels[un._api._ome_axes(dict(labels.attrs))[1]]
    corner = level0[:256, -256:]  # spot check: squares numbered in raster order, background 0
    assert corner[0, -256 + 0] > 0 and corner[50, 0] == 0 and len(np.unique(corner)) == 1 + 4 * 4
