"""HD95 + surface Dice on a pair of 512×512×300 masks: Delineo vs DeepMind's surface-distance.

The pair is a liver-sized organ (≈1.5 L, lobed, smooth random surface) and a second contour of
it as an auto-contour or another observer would draw it (smoothly displaced by up to ≈8 mm, with a
small extra island), on a CT grid of 0.977×0.977×2 mm. Both tools get the same masks; times are
the median of `--repeats` runs of "masks → HD95 and surface Dice at 2 mm". Delineo is timed from
its Masks (stored cropped, as structures are) and, separately, from full-grid arrays (including
the cropping). Prints both times, the ratio and the two tools' values.

    python benchmarks/metrics.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy import ndimage

from planning import metrics
from planning.geometry import Grid
from planning.structures import Mask

SHAPE = (300, 512, 512)
SPACING_XYZ = (0.977, 0.977, 2.0)
TOLERANCE_MM = 2.0


def organ_pair(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Two full-grid bool arrays: a lobed organ and a smoothly displaced second contour of it."""
    rng = np.random.default_rng(seed)
    box = (90, 230, 250)  # z, y, x voxels ≈ 180 × 225 × 245 mm
    spacing = np.array(SPACING_XYZ[::-1])
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip(box, spacing, strict=True)], indexing="ij")
    centre = np.array(box) * spacing / 2

    def lobes(shift):
        field = np.full(box, np.inf, np.float32)
        for offset, radii in (
            ([0, 0, 0], [55, 75, 90]),
            ([10, -20, 50], [40, 50, 55]),
            ([-20, 25, -40], [35, 45, 50]),
        ):
            c = centre + np.array(offset)
            value = np.sqrt(
                ((z - c[0]) / radii[0]) ** 2 + ((y - c[1]) / radii[1]) ** 2 + ((x - c[2]) / radii[2]) ** 2
            )
            field = np.minimum(field, (value - 1) * min(radii))
        return field + shift

    def smooth_noise(amplitude_mm, scale_vox):
        coarse = rng.normal(size=tuple(max(2, n // scale_vox) for n in box))
        field = ndimage.zoom(coarse, [n / c for n, c in zip(box, coarse.shape, strict=True)], order=3)
        return (amplitude_mm * field / np.abs(field).max()).astype(np.float32)

    surface = smooth_noise(6.0, 20)
    reference = lobes(surface) <= 0
    test = lobes(surface + smooth_noise(8.0, 12)) <= 0
    test[40:44, 60:66, 30:37] = True  # a stray island
    full_a, full_b = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    place = (slice(100, 100 + box[0]), slice(140, 140 + box[1]), slice(130, 130 + box[2]))
    full_a[place], full_b[place] = reference, test
    return full_a, full_b


def _median_time(function, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import surface_distance

    full_a, full_b = organ_pair()
    grid = Grid(SHAPE, SPACING_XYZ)
    mask_a, mask_b = Mask.from_full(grid, full_a), Mask.from_full(grid, full_b)
    metrics.surface_distances(mask_a, mask_b)  # warm-up: builds the marching-cubes area table once
    print(
        f"grid {SHAPE[2]}×{SHAPE[1]}×{SHAPE[0]}, spacing {SPACING_XYZ} mm; "
        f"reference {mask_a.volume_cc:.0f} cc, test {mask_b.volume_cc:.0f} cc"
    )

    def delineo_from_masks():
        distances = metrics.surface_distances(mask_a, mask_b)
        return metrics.hausdorff(distances, 95), metrics.surface_dice(distances, TOLERANCE_MM)

    def delineo_from_arrays():
        a, b = Mask.from_full(grid, full_a), Mask.from_full(grid, full_b)
        distances = metrics.surface_distances(a, b)
        return metrics.hausdorff(distances, 95), metrics.surface_dice(distances, TOLERANCE_MM)

    def deepmind():
        distances = surface_distance.compute_surface_distances(full_a, full_b, SPACING_XYZ[::-1])
        return (
            surface_distance.compute_robust_hausdorff(distances, 95),
            surface_distance.compute_surface_dice_at_tolerance(distances, TOLERANCE_MM),
        )

    t_masks, ours = _median_time(delineo_from_masks, args.repeats)
    t_arrays, ours_arrays = _median_time(delineo_from_arrays, args.repeats)
    t_peer, theirs = _median_time(deepmind, args.repeats)
    print(f"{'tool':<36}{'time s':>9}{'HD95 mm':>12}{'surface Dice':>15}")
    print(f"{'delineo (Masks)':<36}{t_masks:>9.3f}{ours[0]:>12.4f}{ours[1]:>15.6f}")
    label = "delineo (full arrays, incl. crop)"
    print(f"{label:<36}{t_arrays:>9.3f}{ours_arrays[0]:>12.4f}{ours_arrays[1]:>15.6f}")
    print(f"{'surface-distance 0.1 (DeepMind)':<36}{t_peer:>9.3f}{theirs[0]:>12.4f}{theirs[1]:>15.6f}")
    print(
        f"speed-up: {t_peer / t_masks:.1f}× from Masks, {t_peer / t_arrays:.1f}× from full arrays; "
        f"target ≤ 1 s: {'met' if max(t_masks, t_arrays) <= 1.0 else 'NOT met'}"
    )
    agree = abs(ours[0] - theirs[0]) <= 1e-6 * max(1.0, theirs[0]) and abs(ours[1] - theirs[1]) <= 1e-6
    print(f"values agree to 1e-6: {agree}")


if __name__ == "__main__":
    main()
