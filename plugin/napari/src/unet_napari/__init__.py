"""U-Net segmentation and loss weight maps (libunet) for napari and Python scripts."""
from ._api import Model, UnetError, instances, load_model, segment, segment_dask, segment_zarr, weight_map

__all__ = ["Model", "UnetError", "instances", "load_model", "segment", "segment_dask", "segment_zarr", "weight_map"]
__version__ = "0.4.0"
