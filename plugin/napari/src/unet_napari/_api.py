"""The Python API: numpy arrays in, numpy arrays out; errors as UnetError."""
import ctypes as C
import math
import threading

import numpy as np

from . import _native as N


class UnetError(RuntimeError):
    """A failed libunet call: `status` is the UnetStatus code, the message is the library's."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _check(status):
    if status != 0:
        raise UnetError(status, N.lib().unet_last_error().decode(errors="replace"))


def _image_struct(array):
    """A UnetImage over a 2-D (H, W) or channels-last 3-D (H, W, C) array, converting only when needed."""
    a = np.asarray(array)
    if a.ndim not in (2, 3):
        raise ValueError(f"expected a 2-D image or (height, width, channels), got shape {a.shape}")
    if a.dtype.name not in N.DTYPE:
        a = a.astype(np.float32)
    channels = 1 if a.ndim == 2 else a.shape[2]
    item = a.dtype.itemsize
    # Pixels within a row must be packed (channels interleaved); rows may be strided.
    if a.strides[1] != channels * item or (a.ndim == 3 and a.strides[2] != item) or a.strides[0] <= 0:
        a = np.ascontiguousarray(a)
    img = N.Image(C.sizeof(N.Image), N.DTYPE[a.dtype.name], a.ctypes.data, a.shape[1], a.shape[0], channels,
                  a.strides[0])
    return img, a


class Model:
    """A loaded model (path None = the embedded default). Safe to share between threads."""

    def __init__(self, path=None, provider="auto", threads=0, ort_library=None):
        # What it takes to load this model again: a pickled Model (a dask task sent to a process worker) is
        # reloaded there, once per process (see __reduce__).
        self._source = (str(path) if path else None, provider, threads, ort_library)
        lib = N.lib()
        opts = N.ModelOptions()
        _check(lib.unet_model_options_init(C.byref(opts)))
        opts.provider = N.PROVIDER[provider]
        opts.threads = threads
        ort = ort_library or N.onnxruntime_library()
        self._ort = ort.encode() if ort else None
        opts.ort_library_path = self._ort
        handle = C.c_void_p()
        try:
            _check(lib.unet_model_load(str(path).encode() if path else None, C.byref(opts), C.byref(handle)))
        except UnetError as e:
            if e.status == N.STATUS_RUNTIME_NOT_FOUND and ort is None:
                raise UnetError(e.status, f"{e} -- in Python, install `unet-napari[cpu]` (the onnxruntime package) "
                                "or `unet-napari[gpu]` (onnxruntime-gpu)") from None
            raise
        self._handle = handle
        info = N.ModelInfo()
        info.struct_size = C.sizeof(N.ModelInfo)
        _check(lib.unet_model_info(self._handle, C.byref(info)))
        text = lambda b: b.decode() if b else None  # noqa: E731
        self.info = {
            "provider": {0: "auto", 1: "cpu", 2: "cuda"}[info.provider],
            "fallback_reason": text(info.fallback_reason),
            "in_channels": info.in_channels, "classes": info.classes, "halo": info.halo,
            "size_step": info.size_step, "min_input": info.min_input, "normalization": text(info.normalization),
            "class_names": text(info.class_names).split(","), "provenance": text(info.provenance),
            "ort_version": text(info.ort_version), "ort_library": text(info.ort_library),
            "postprocessing": text(info.postprocessing), "object_size": info.object_size,
            "pixel_size": info.pixel_size or None,
        }

    def close(self):
        if getattr(self, "_handle", None):
            N.lib().unet_model_free(self._handle)
            self._handle = None

    __del__ = close

    def __reduce__(self):
        # The handle is a pointer into this process: another process loads the model itself, once (cached).
        return (_load_in_worker, self._source)

    def segment(self, image, *, outputs=("labels", "mask", "probabilities"), threshold=None, min_size=0,
                connectivity=4, memory_mb=None, max_tile=None, normalization="model", progress=None,
                instances="model", watershed_h=None, watershed_smoothing=None, watershed_seed=None, tta=False,
                channel=None, object_size=None, pixel_size=None):
        """Segments `image`; returns a dict with the requested outputs. `normalization`: "model", "none" or
        (low, high) percentiles. `instances`: "model" (what the model recommends), "components" or "watershed"
        (splits touching cells; `watershed_h`, `watershed_smoothing` in pixels, `watershed_seed` a probability
        whose regions seed the basins or 0 for distance maxima, None = the model's). `threshold` None and `min_size`
        0 take the model's recommendation. `tta`: average over the image and its three mirror images (4x slower,
        fewer merged cells). `progress(done, total)` may return False to cancel (raises UnetError).
        `channel`: the channel (from 0) of a (height, width, channels) image that a one-channel model segments
        (None: an RGB/RGBA image's luminance). `object_size`: the objects' typical diameter in pixels, so the image
        is resampled to the model's (`info["object_size"]`) and the outputs mapped back, or "auto" to measure it
        from a first pass (None: the image as it is); the result's "scale" says what ran and
        "measured_object_size" what auto measured. `pixel_size`: the image's micrometres per pixel; when the model
        records the pixel size it was trained at (`info["pixel_size"]`) and no object size is given, the image is
        resampled by their ratio."""
        img, keep = _image_struct(image)
        out, result = _outputs(outputs, *keep.shape[:2])
        opts = _segment_options()
        if normalization == "none":
            opts.normalization = N.NORMALIZATION_NONE
        elif normalization != "model":
            opts.normalization = N.NORMALIZATION_PERCENTILE
            opts.percentile_low, opts.percentile_high = normalization
        _post_options(opts, threshold, min_size, connectivity, instances, watershed_h, watershed_smoothing,
                      watershed_seed)
        opts.memory_budget_bytes = int(memory_mb * 2**20) if memory_mb else 0
        opts.max_tile = max_tile or 0
        opts.test_time_augmentation = 1 if tta else 0
        opts.channel = -1 if channel is None else int(channel)
        opts.object_size = _object_size_field(object_size)
        if pixel_size is not None:
            if not float(pixel_size) > 0:
                raise ValueError(f"pixel_size {pixel_size!r} is not a length in micrometres")
            opts.pixel_size = float(pixel_size)
        callback = None
        if progress is not None:
            callback = N.PROGRESS(lambda _user, done, total: 0 if progress(done, total) is not False else 1)
            opts.progress = callback
        _check(N.lib().unet_segment(self._handle, C.byref(img), C.byref(opts), C.byref(out)))
        result["label_count"] = out.label_count
        result["scale"] = out.scale
        result["measured_object_size"] = out.measured_object_size or None
        return result

    def instances(self, probabilities, *, outputs=("labels",), threshold=None, min_size=0, connectivity=4,
                  instances="model", watershed_h=None, watershed_smoothing=None, watershed_seed=None):
        """Mask and instance labels of a foreground-probability map (2-D, values in [0, 1]) with the post-processing
        `segment` applies (the same arguments and this model's recommendation), without running the network: to
        label again with other settings, or a probability map computed piece by piece. Returns a dict with the
        requested outputs ("labels", "mask") and "label_count"."""
        return _instances(self._handle, probabilities, outputs=outputs, threshold=threshold, min_size=min_size,
                          connectivity=connectivity, instances=instances, watershed_h=watershed_h,
                          watershed_smoothing=watershed_smoothing, watershed_seed=watershed_seed)


def _outputs(wanted, h, w):
    """An Outputs struct over new arrays for the wanted outputs ("probabilities", "mask", "labels"), and the dict
    of those arrays."""
    result = {}
    out = N.Outputs()
    out.struct_size = C.sizeof(N.Outputs)
    for name, dtype in (("probabilities", np.float32), ("mask", np.uint8), ("labels", np.uint32)):
        if name in wanted:
            result[name] = np.empty((h, w), dtype)
            setattr(out, name, result[name].ctypes.data)
            setattr(out, name + "_len", h * w)
    return out, result


def _object_size_field(object_size):
    """UnetSegmentOptions.object_size: 0 = as is, negative = auto, else the diameter in pixels."""
    if object_size is None:
        return 0.0
    if object_size == "auto":
        return -1.0
    size = float(object_size)
    if not size > 0:  # NaN too
        raise ValueError(f"object_size {object_size!r} is not a diameter in pixels, None or 'auto'")
    return size


def _segment_options():
    opts = N.SegmentOptions()
    # The sized initialiser fills every field this package's struct has (the plain symbol fills only 0.1's).
    _check(N.lib().unet_segment_options_init_sized(C.byref(opts), C.c_size_t(C.sizeof(opts))))
    return opts


def _post_options(opts, threshold, min_size, connectivity, instances, watershed_h, watershed_smoothing,
                  watershed_seed):
    """The post-processing fields of a SegmentOptions (shared by segment and instances)."""
    opts.threshold = threshold or 0.0
    opts.min_size = min_size
    opts.connectivity = connectivity
    if instances not in N.INSTANCES:
        raise ValueError(f"instances must be one of {sorted(N.INSTANCES)}, not {instances!r}")
    opts.instances = N.INSTANCES[instances]
    opts.watershed_h = -1.0 if watershed_h is None else watershed_h
    opts.watershed_smoothing = -1.0 if watershed_smoothing is None else watershed_smoothing
    opts.watershed_seed = -1.0 if watershed_seed is None else watershed_seed


def _instances(handle, probabilities, *, outputs=("labels",), threshold=None, min_size=0, connectivity=4,
               instances="model", watershed_h=None, watershed_smoothing=None, watershed_seed=None):
    p = np.asarray(probabilities)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be 2-D, got shape {p.shape}")
    img, keep = _image_struct(p.astype(np.float32, copy=False))
    if "probabilities" in outputs:
        raise ValueError("instances() reads probabilities; ask for 'labels' and/or 'mask'")
    out, result = _outputs(outputs, *keep.shape)
    opts = _segment_options()
    _post_options(opts, threshold, min_size, connectivity, instances, watershed_h, watershed_smoothing, watershed_seed)
    _check(N.lib().unet_instances(handle, C.byref(img), C.byref(opts), C.byref(out)))
    result["label_count"] = out.label_count
    return result


def instances(probabilities, model=None, **kwargs):
    """Mask and instance labels of a foreground-probability map with `model`'s recommended post-processing (a Model,
    a path, None for the default model, or False for no recommendation: threshold P > 1 - P, connected components).
    Keyword arguments as `Model.instances`."""
    if model is False:
        return _instances(None, probabilities, **kwargs)
    if not isinstance(model, Model):
        model = load_model(model)
    return model.instances(probabilities, **kwargs)


_models = {}
_models_lock = threading.Lock()


def load_model(path=None, provider="auto", threads=0, ort_library=None):
    """A cached Model per (path, provider, threads, ONNX Runtime library)."""
    key = (str(path) if path else None, provider, threads, ort_library)
    with _models_lock:
        if key not in _models:
            _models[key] = Model(path, provider, threads, ort_library)
        return _models[key]


def _load_in_worker(path, provider, threads, ort_library):
    return load_model(path, provider, threads, ort_library)


def segment(image, model=None, **kwargs):
    """Segments a 2-D (or channels-last) array with `model` (a Model, a path, or None for the default)."""
    if not isinstance(model, Model):
        model = load_model(model)
    return model.segment(image, **kwargs)


def weight_map(labels, *, w0=10.0, sigma=5.0, balance="inverse", class_weights=(1.0, 1.0), border_width=2):
    """The paper's loss weight map and training target of an instance label image (uint8/16/32, 0 = background).
    Returns (weights float32, target uint8)."""
    a = np.asarray(labels)
    if a.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {a.shape}")
    if a.dtype.name not in ("uint8", "uint16", "uint32"):
        if a.size and (a.min() < 0 or a.max() > np.iinfo(np.uint32).max):
            raise ValueError("labels must be non-negative integers below 2**32")
        a = a.astype(np.uint32)
    img, keep = _image_struct(a)
    h, w = keep.shape
    weights, target = np.empty((h, w), np.float32), np.empty((h, w), np.uint8)
    opts = N.WeightMapOptions()
    _check(N.lib().unet_weight_map_options_init(C.byref(opts)))
    opts.w0, opts.sigma, opts.balance, opts.border_width = w0, sigma, N.BALANCE[balance], border_width
    opts.background_weight, opts.foreground_weight = class_weights
    out = N.WeightMapOutputs(C.sizeof(N.WeightMapOutputs), weights.ctypes.data, h * w, target.ctypes.data, h * w, 0, 0)
    _check(N.lib().unet_weight_map(C.byref(img), C.byref(opts), C.byref(out)))
    return weights, target


def _order_keys(block):
    """Order-preserving uint32 keys of the pixel values (as the library's exact percentile selection uses)."""
    if block.dtype.kind == "u" and block.dtype.itemsize <= 4:
        return block.astype(np.uint32)
    bits = np.ascontiguousarray(block, dtype=np.float32).view(np.uint32)
    return np.where(bits >> 31 == 1, ~bits, bits | np.uint32(0x80000000)).astype(np.uint32)


def _key_value(key, dtype):
    if dtype.kind == "u" and dtype.itemsize <= 4:
        return float(key)
    bits = np.uint32(key & 0x7FFFFFFF) if key >> 31 == 1 else np.uint32(~np.uint32(key))
    return float(np.array([bits], np.uint32).view(np.float32)[0])


def _block_histogram(keys, select=None):
    """Counts of the high 16 bits of the keys (select None), or of the low 16 bits of the keys whose high bits are
    `select`, as a (1, 1, 65536) block: per chunk, so no step needs more than one chunk."""
    if select is None:
        counts = np.bincount((keys >> 16).ravel(), minlength=65536)
    else:
        counts = np.bincount((keys[(keys >> 16) == select] & 0xFFFF).ravel(), minlength=65536)
    return counts.reshape(1, 1, 65536)


def _dask_percentiles(image, qs):
    """Exact percentiles (numpy's linear interpolation) of a dask array: two histogram passes, like the library.
    Histograms are taken chunk by chunk and summed (a raveled array would be rechunked into whole rows)."""
    import dask.array as da

    n = image.size
    keys = image.map_blocks(_order_keys, dtype=np.uint32)

    def histogram(select=None):
        blocks = da.map_blocks(_block_histogram, keys, select, new_axis=2, chunks=(1, 1, 65536), dtype=np.int64)
        return blocks.sum(axis=(0, 1)).compute()

    high = histogram()
    ranks = []
    for q in qs:
        pos = q / 100 * (n - 1)
        ranks += [math.floor(pos), min(math.ceil(pos), n - 1)]
    cum = np.cumsum(high)
    buckets = [int(np.searchsorted(cum, r, side="right")) for r in ranks]
    lows = {b: histogram(b) for b in sorted(set(buckets))}
    values = []
    for r, b in zip(ranks, buckets):
        before = int(cum[b - 1]) if b > 0 else 0
        k = int(np.searchsorted(np.cumsum(lows[b]), r - before, side="right"))
        values.append(_key_value((b << 16) | k, image.dtype))
    out = []
    for i, q in enumerate(qs):
        pos = q / 100 * (n - 1)
        a, b = values[2 * i], values[2 * i + 1]
        out.append(a + (b - a) * (pos - math.floor(pos)))
    return out


def _axis_chunks(n, chunk, depth):
    """Chunk sizes along an axis of n pixels: `chunk` each, the last at least `depth` (dask's overlap needs it)."""
    sizes = [chunk] * (n // chunk) + ([n % chunk] if n % chunk else [])
    if len(sizes) > 1 and sizes[-1] < depth:
        # The short last chunk joins the one before it (`sizes[-2] += sizes.pop()` would add it to the one before
        # that, the index being taken before the pop, and shift every later chunk off the grid).
        last = sizes.pop()
        sizes[-1] += last
    return tuple(sizes)


def segment_dask(image, model=None, *, chunk=1024, threshold=None, max_tile=None):
    """Foreground probabilities of a 2-D dask (or numpy) array too large for memory, chunk by chunk, equal to one
    pass over the whole image: the image is normalised with its exact global percentiles, chunks start on the
    network's pooling grid, and each carries the model's halo of context (mirrored at the image border).
    Instance labels need a global pass over the result (e.g. dask_image.ndmeasure.label)."""
    import dask.array as da

    if not isinstance(model, Model):
        model = load_model(model)
    info = model.info
    if info["in_channels"] != 1:
        raise ValueError("segment_dask handles single-channel images")
    step = info["size_step"]
    # Context: the halo plus the pooling grid's slack (an output pixel can see up to step - 1 pixels beyond the halo
    # on one side), rounded up to the grid. With the halo alone, pixels near the image's far edges differed (their
    # context ran past dask's mirrored border into a second mirroring).
    depth = -(-(info["halo"] + step - 1) // step) * step
    image = da.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    norm = info["normalization"]
    if norm.startswith("percentile:"):
        _, low, high = norm.split(":")
        lo, hi = _dask_percentiles(image, [float(low), float(high)])
        offset, scale = np.float32(lo), np.float32(1.0 / (hi - lo + 1e-20))
    else:
        offset, scale = np.float32(0.0), np.float32(1.0)
    chunk = max(-(-chunk // step) * step, depth)

    if min(image.shape) <= depth:
        normalized = (np.asarray(image).astype(np.float32) - offset) * scale
        return da.from_array(model.segment(normalized, outputs=("probabilities",), normalization="none",
                                           threshold=threshold, max_tile=max_tile)["probabilities"])
    image = image.rechunk((_axis_chunks(image.shape[0], chunk, depth), _axis_chunks(image.shape[1], chunk, depth)))
    normalized = (image.astype(np.float32) - offset) * scale

    def block_probabilities(block):
        return model.segment(block, outputs=("probabilities",), normalization="none", threshold=threshold,
                             max_tile=max_tile)["probabilities"]

    return normalized.map_overlap(block_probabilities, depth=depth, boundary="reflect", dtype=np.float32)


def _ome_axes(attrs):
    """Axis names of an OME-Zarr image group (NGFF 0.4 `multiscales` or 0.5 under `ome`) and its level-0 path."""
    ms = (attrs.get("ome") or attrs).get("multiscales")
    if not ms:
        raise ValueError("not an OME-Zarr image: the group has no 'multiscales' metadata")
    axes = [a["name"] if isinstance(a, dict) else a for a in ms[0].get("axes", ["y", "x"])]
    return axes, ms[0]["datasets"][0]["path"]


_LEFTOVER = np.uint64(1 << 63)  # a pixel of a cell cluster larger than the context (see _block_instances)


def _watershed_smoothing(info, instances, watershed_smoothing):
    """The smoothing (pixels) the library will use: the caller's, else the model's recommendation, else 1."""
    if watershed_smoothing is not None:
        return watershed_smoothing
    if _resolves_to_components(info, {"instances": instances}):
        return 0.0
    return _recommended(info, "smoothing", 1.0)


def _recommended(info, key, default):
    """A value of the model's recommended post-processing ("watershed h=2 smoothing=1 ... min_size=20")."""
    words = dict(w.split("=", 1) for w in (info.get("postprocessing") or "").split()[1:] if "=" in w)
    return float(words[key]) if key in words else default


def _resolves_to_components(info, kwargs):
    """Whether these settings label connected components (the model's recommendation included)."""
    recommended = (info.get("postprocessing") or "components").split()[0]
    return kwargs["instances"] == "components" or (kwargs["instances"] == "model" and recommended == "components")


def _block_instances(p, block_info=None, *, model, starts, width, context, margin, kwargs):
    """Instance ids of one chunk of a probability map seen with `context` pixels around it (dask's map_overlap
    without padding at the image border). The library labels the whole view; an instance is kept when its
    connected foreground component, grown by `margin` (what the watershed reads around a component: its smoothing
    and distances), lies inside the view (or reaches only the image border) and is at most `context` wide and high.
    Such a component is seen whole, with the same surroundings, by every chunk it touches, and the watershed works
    per component, so every chunk labels it as one pass over the whole image does. Its instances get the id
    1 + (raster index of their first pixel in the whole image): the same in every chunk, and sorting the ids gives
    the whole pass's numbering. Pixels of larger components get _LEFTOVER (labelled globally afterwards)."""
    from scipy import ndimage

    (iy, ix), (ny, nx) = block_info[0]["chunk-location"], block_info[0]["num-chunks"]
    oy = starts[0][iy] - (context if iy > 0 else 0)  # the view's origin in the whole image
    ox = starts[1][ix] - (context if ix > 0 else 0)
    h, w = p.shape
    labels = model.instances(p, **kwargs)["labels"]
    if _resolves_to_components(model.info, kwargs) and (kwargs["min_size"] or _recommended(model.info, "min_size",
                                                                                            0)) <= 1:
        components = labels  # the same call
    else:
        components = model.instances(p, threshold=kwargs["threshold"], connectivity=kwargs["connectivity"],
                                     instances="components", min_size=1)["labels"]
    ids = np.zeros((h, w), np.uint64)
    if not labels.any():
        return ids
    whole = np.zeros(int(components.max()) + 1, bool)
    for k, (sy, sx) in enumerate(ndimage.find_objects(components), start=1):
        inside = ((sy.start - margin >= 0 or iy == 0) and (sy.stop + margin <= h or iy == ny - 1)
                  and (sx.start - margin >= 0 or ix == 0) and (sx.stop + margin <= w or ix == nx - 1))
        small = sy.stop - sy.start + 2 * margin <= context and sx.stop - sx.start + 2 * margin <= context
        whole[k] = inside and small
    # The library numbers instances 1, 2, ... in raster order of their first pixel: first pixels are where the
    # running maximum of the labels grows (one pass instead of a sort).
    flat = labels.ravel()
    first = np.flatnonzero(np.diff(np.maximum.accumulate(flat), prepend=np.uint32(0)))
    anchor = np.zeros(len(first) + 1, np.uint64)
    gy, gx = first // w + oy, first % w + ox
    anchor[1:] = gy.astype(np.uint64) * np.uint64(width) + gx.astype(np.uint64) + np.uint64(1)
    keep = whole[components]
    ids[keep & (labels > 0)] = anchor[labels[keep & (labels > 0)]]
    ids[~keep & (components > 0)] = _LEFTOVER
    return ids


def _relabel(ids, leftover=None, *, anchors, offset):
    """Final labels: kept ids numbered by their rank (raster order of first pixels), leftover clusters after them."""
    out = np.zeros(ids.shape, np.uint32)
    kept = (ids > 0) & (ids != _LEFTOVER)
    out[kept] = np.searchsorted(anchors, ids[kept]).astype(np.uint32) + 1
    if leftover is not None:
        out[leftover > 0] = leftover[leftover > 0].astype(np.uint32) + np.uint32(offset)
    return out


def _instances_through_disk(probabilities, model, work, context, margin, kwargs):
    """Instance labels of a probability map (a dask array), numbered as one pass over the whole image numbers them
    (see _block_instances), as a lazy dask array of regular chunks, and their count. Each stage is one pass over
    overlapping chunks read from disk and written to disk (under `work`): chained in one graph, the scheduler held
    most of the probabilities in memory before the labelling consumed them (the worker's memory grew with the
    image)."""
    import warnings

    import dask.array as da
    from dask_image.ndmeasure import label as dask_label

    shape, chunk = probabilities.shape, probabilities.chunks[1][0]  # segment_dask's chunks, on the pooling grid
    chunks = (_axis_chunks(shape[0], chunk, context), _axis_chunks(shape[1], chunk, context))
    da.to_zarr(probabilities.rechunk(chunk), f"{work}/probabilities", overwrite=True)  # zarr: regular chunks
    probabilities = da.from_zarr(f"{work}/probabilities").rechunk(chunks)
    starts = tuple(np.concatenate([[0], np.cumsum(c)[:-1]]).tolist() for c in chunks)
    ids = probabilities.map_overlap(_block_instances, depth=context, boundary="none", dtype=np.uint64, model=model,
                                    starts=starts, width=shape[1], context=context, margin=margin, kwargs=kwargs)
    da.to_zarr(ids.rechunk(chunk), f"{work}/ids", overwrite=True)
    ids = da.from_zarr(f"{work}/ids")
    anchors = np.unique(da.unique(ids).compute())
    anchors = anchors[(anchors > 0) & (anchors != _LEFTOVER)]
    if not bool((ids == _LEFTOVER).any().compute()):
        return ids.map_blocks(_relabel, anchors=anchors, offset=0, dtype=np.uint32), len(anchors)
    structure = np.ones((3, 3), bool) if kwargs["connectivity"] == 8 else None
    leftover, clusters = dask_label(ids == _LEFTOVER, structure=structure)
    clusters = int(clusters.compute()) if hasattr(clusters, "compute") else int(clusters)
    warnings.warn(f"{clusters} cell cluster(s) larger than the context ({context} px less a margin of {margin}) "
                  "became one instance each; raise `context` to separate their cells", stacklevel=3)
    labels = da.map_blocks(_relabel, ids, leftover, anchors=anchors, offset=len(anchors), dtype=np.uint32)
    return labels, len(anchors) + clusters


def segment_zarr(image_url, model=None, *, chunk=1024, threshold=None, connectivity=4, min_size=0,
                 instances="model", watershed_h=None, watershed_smoothing=None, watershed_seed=None, context=128,
                 name="unet", max_tile=None):
    """Segments the 2-D image of an OME-Zarr group (level 0; axes t/c/z of size 1 are dropped) chunk by chunk on the
    current dask scheduler (a dask.distributed Client if one is active: each worker process loads the model once)
    and writes its instance labels into the group as OME-Zarr labels (`labels/<name>`, NGFF image-label metadata).
    No step holds the whole image: memory is a few chunks per worker.

    Probabilities equal one pass over the whole image (see `segment_dask`). Instances use the post-processing of
    `segment` (the same arguments; "model" = the model's recommendation, its watershed included): each chunk is
    labelled with `context` pixels of its neighbours around it, and a cell cluster (a connected foreground
    component) up to `context` pixels wide and high, less the watershed's margin, is labelled exactly as one pass
    over the whole image labels it, with the same numbers. Larger clusters cannot be seen whole by one chunk: they
    become one instance each (their connected component, numbered after the others) and a warning says how many;
    raise `context` to split them too. Labels already written under `name` are replaced. Returns (labels path,
    count)."""
    import shutil

    import dask.array as da
    import zarr
    from ome_zarr.writer import write_labels

    if not isinstance(model, Model):
        model = load_model(model)
    group = zarr.open_group(str(image_url), mode="r+")
    axes, level0 = _ome_axes(dict(group.attrs))
    data = da.from_zarr(group[level0])
    spatial = [i for i, a in enumerate(axes) if a in ("y", "x")]
    others = [i for i, a in enumerate(axes) if a not in ("y", "x")]
    if len(spatial) != 2 or any(data.shape[i] != 1 for i in others):
        raise ValueError(f"segment_zarr needs a 2-D image (axes {axes}, shape {data.shape}): y and x, the rest of size 1")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, not {connectivity}")
    image = data[tuple(0 if i in others else slice(None) for i in range(data.ndim))]
    chunk = max(chunk, context)  # a chunk's context comes from its neighbours alone
    probabilities = segment_dask(image, model, chunk=chunk, max_tile=max_tile)
    # What the watershed reads around a component: Gaussian taps (3 sigma, along rows then columns) over distances
    # of neighbouring foreground, themselves up to that far from their background.
    taps = math.ceil(3 * _watershed_smoothing(model.info, instances, watershed_smoothing))
    margin = 3 * taps + 3
    if context < 2 * margin + 1:
        raise ValueError(f"context {context} leaves no room for cells: at least {2 * margin + 1} for this smoothing")
    kwargs = {"threshold": threshold, "min_size": min_size, "connectivity": connectivity, "instances": instances,
              "watershed_h": watershed_h, "watershed_smoothing": watershed_smoothing, "watershed_seed": watershed_seed}
    model.instances(np.zeros((1, 1), np.float32), **kwargs)  # invalid settings fail here, not in a worker
    work = f"{image_url}/labels/{name}.work"
    try:
        labels, count = _instances_through_disk(probabilities, model, work, context, margin, kwargs)
        if "labels" in group and name in group["labels"]:
            del group["labels"][name]  # a new run replaces the labels of that name
        label_axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
        write_labels(labels, group, name=name, axes=label_axes, scaler=None,
                     label_metadata={"source": {"image": "../../"}}, storage_options={"chunks": labels.chunksize})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return f"{image_url}/labels/{name}", count
