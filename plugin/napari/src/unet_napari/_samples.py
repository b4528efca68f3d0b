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
