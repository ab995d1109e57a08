"""Generated structures for the clinical-scale benchmarks: a body outline and ellipsoidal organs
of 1 to 20 cm, as cropped masks on any grid, the same for the same seed."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from planning.geometry import Grid
from planning.structures import Mask


def body_and_organs(grid: Grid, count: int, seed: int = 1) -> Iterator[tuple[str, Mask]]:
    """("External", an elliptic body through every slice), then `count - 1` ("Organ_001", …)
    ellipsoids with radii of 10–100 mm centred in the middle half of the grid, made one at a
    time (a caller that lets each go holds one)."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = grid.shape
    sz, sy, sx = grid.spacing_zyx
    zz = np.arange(nz)[:, None, None] * sz
    yy = np.arange(ny)[None, :, None] * sy
    xx = np.arange(nx)[None, None, :] * sx
    body = ((yy - ny * sy / 2) / (0.42 * ny * sy)) ** 2 + ((xx - nx * sx / 2) / (0.46 * nx * sx)) ** 2 <= 1
    yield "External", Mask.from_full(grid, np.broadcast_to(body, grid.shape).copy())
    for index in range(count - 1):
        radius = rng.uniform(10, 100, 3)
        centre = rng.uniform(0.25, 0.75, 3) * np.array([nz * sz, ny * sy, nx * sx])
        lo = np.maximum(((centre - radius) / (sz, sy, sx)).astype(int), 0)
        hi = np.minimum(((centre + radius) / (sz, sy, sx)).astype(int) + 1, grid.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        inside = (
            ((zz[box[0]] - centre[0]) / radius[0]) ** 2
            + ((yy[:, box[1]] - centre[1]) / radius[1]) ** 2
            + ((xx[:, :, box[2]] - centre[2]) / radius[2]) ** 2
        ) <= 1
        yield f"Organ_{index + 1:03d}", Mask(grid, inside, tuple(lo))
