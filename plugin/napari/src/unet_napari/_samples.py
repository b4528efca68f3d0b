"""Sample data for *File > Open Sample > U-Net*: a synthetic fluorescence image of nuclei, some touching, made here
(no download), so a new user can try the Segment widget at once."""
import numpy as np


def synthetic_nuclei(seed: int = 7, size: int = 512, count: int = 90):
    """Bright elliptical nuclei with textured interiors on a dark, noisy background (16-bit, like a camera)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    image = np.zeros((size, size), np.float32)
    for _ in range(count):
        cy, cx = rng.uniform(12, size - 12, 2)
        ry, rx = rng.uniform(7, 15, 2)
        angle = rng.uniform(0, np.pi)
        c, s = np.cos(angle), np.sin(angle)
        dy, dx = yy - cy, xx - cx
        d = ((c * dx + s * dy) / rx) ** 2 + ((-s * dx + c * dy) / ry) ** 2
        brightness = rng.uniform(0.5, 1.0)
        image = np.maximum(image, brightness * np.clip(1.3 - d, 0, 1) ** 0.5 * (d <= 1))
    # Optical blur (three box passes ~ a Gaussian of sigma 1.5), chromatin texture, background and shot noise.
    for axis in (0, 1):
        for _ in range(3):
            image = (np.roll(image, -1, axis) + image + np.roll(image, 1, axis)) / 3
    image *= 1 + 0.15 * rng.standard_normal(image.shape).astype(np.float32)
    counts = rng.poisson(np.clip(200 + 3000 * image, 0, None)).astype(np.float32)
    return [(counts.astype(np.uint16), {"name": "synthetic nuclei"}, "image")]


# The demo image of `make demo`: one real fluorescence image (Kaggle Data Science Bowl 2018, Caicedo et al. 2019)
# with its 125 labelled nuclei, as shipped inside the BSD-3-licensed stardist 0.9.1 wheel on PyPI, pinned by sha256
# (the same pins as scripts/fetch-demo-image.sh). Downloaded once into the user's cache; nothing is bundled.
_STARDIST = "0.9.1"
_WHEEL = f"stardist-{_STARDIST}-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
_WHEEL_SHA256 = "1f2caf3a071c1ead1b0cbbf9614ff2c82967be1bd22764f097871fb9bbd2718f"
_FILES = {  # name inside the wheel -> (file in the cache, sha256)
    "stardist/data/images/img2d.tif": (
        "images/dsb2018-nuclei.tif", "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750"),
    "stardist/data/images/mask2d.tif": (
        "labels/dsb2018-nuclei.tif", "59ad5e820b7982ca9d13e946fa6e7f64e2714899e00a2ae6c69aa79aad53d46f"),
    f"stardist-{_STARDIST}.dist-info/LICENSE.txt": ("LICENSE-stardist.txt", None),
}


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _demo_folder():
    """A folder with images/ and labels/ dsb2018-nuclei.tif: UNET_DEMO_IMAGE (e.g. the repository's .demo-image),
    else the user cache, filled from PyPI (through pip, with the user's pip settings) on first use."""
    import io
    import os
    import subprocess
    import sys
    import tempfile
    import zipfile
    from pathlib import Path

    if os.environ.get("UNET_DEMO_IMAGE"):
        return Path(os.environ["UNET_DEMO_IMAGE"])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "unet-napari" / "dsb2018"
    if (cache / ".complete").exists():
        return cache
    # pip fetches the wheel (only the file: no install, no dependencies), so the user's index, mirror and proxy
    # settings apply as for any package.
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--python-version", "3.11", "--platform", "manylinux2014_x86_64", f"stardist=={_STARDIST}", "-d", tmp],
            check=True,
        )
        wheel = (Path(tmp) / _WHEEL).read_bytes()
    if _sha256(wheel) != _WHEEL_SHA256:
        raise RuntimeError(f"{_WHEEL} from PyPI does not have the pinned sha256; not using it")
    with zipfile.ZipFile(io.BytesIO(wheel)) as z:
        for inner, (target, digest) in _FILES.items():
            data = z.read(inner)
            if digest and _sha256(data) != digest:
                raise RuntimeError(f"{inner} in {_WHEEL} does not have the pinned sha256")
            path = cache / target
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(path)  # atomic: an interrupted download leaves no half file under the real name
    (cache / ".complete").touch()
    return cache


def dsb2018_nuclei():
    """The demo image (512x512, 16-bit, real fluorescence nuclei) and its ground-truth labels (125 nuclei)."""
    import tifffile

    folder = _demo_folder()
    image = tifffile.imread(folder / "images" / "dsb2018-nuclei.tif")
    truth = tifffile.imread(folder / "labels" / "dsb2018-nuclei.tif").astype(np.uint32)
    credit = "Kaggle Data Science Bowl 2018 (Caicedo et al. 2019), via stardist (BSD-3-Clause)"
    return [
        (image, {"name": "DSB 2018 nuclei", "metadata": {"source": credit}}, "image"),
        (truth, {"name": "DSB 2018 ground truth", "opacity": 0.4}, "labels"),
    ]
