"""Accuracy of sphere expansions and contractions on a 1×1×3 mm grid, and the accuracy no method
can exceed.

For each sphere radius r and margin m, spheres are voxelised (a voxel is inside when its centre
is) at four grid-aligned centres (on a voxel centre, and half a pixel and/or half a slice off it)
and `--centres` random sub-voxel centres, expanded with `planning.margins.expand` (contracted
with `shrink`), and the volume is compared with the analytic volume 4/3·π·(r ± m)³. Prints the
mean, smallest and largest relative error over the centres, and, for expansions, the error of the
exact voxel answer (the expanded sphere itself voxelised at the same centre: what a perfect
method would return on this grid) and how far ours is from it, then, at the centre where ours is
furthest off, how far the voxelised sphere given to the method is itself from its analytic volume
(a mask that is too small grows too small), then both errors for the sphere centred on a voxel.
Margins that are not a multiple of the 3 mm slice spacing (5, 7, 10 mm) are the telling ones: a
method that misplaces the surface between slices gains or loses whole slices there.

It then prints a lower bound that holds for every margin algorithm: spheres of different radii
(both ≥ 10 mm) whose voxelisations on this grid are identical. An algorithm sees the same mask
for both and gives one answer, while their analytic expanded volumes differ; one of the two is
then off by at least half that difference.

    python benchmarks/margins.py [--centres 8] [--slice-mm 3]

`--slice-mm 1` runs the same on a 1 mm grid.
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np

from planning.geometry import Grid
from planning.margins import expand, shrink
from planning.structures import Mask

RADII_MM = (10, 15, 20, 30)
MARGINS_MM = (3, 5, 7, 10, 15)
CONTRACTIONS_MM = ((20, (3, 5, 10)), (30, (3, 5, 10)))


def benchmark_grid(slice_mm: float) -> Grid:
    """1 × 1 mm pixels and `slice_mm` slices, reaching ±55 mm in-plane and ±66 mm along z (a
    30 mm sphere grown by 15 mm fits)."""
    slices = 2 * int(np.ceil(66 / slice_mm))
    return Grid((slices, 110, 110), (1.0, 1.0, slice_mm), (-55.0, -55.0, -slices / 2 * slice_mm))


def aligned_centres(grid: Grid) -> list[tuple[float, float, float]]:
    """(x, y, z) mm from a voxel centre: on it, half a pixel off, half a slice off, both."""
    half_slice = grid.spacing_xyz[2] / 2
    return [(0.0, 0.0, 0.0), (0.5, 0.5, 0.0), (0.0, 0.0, half_slice), (0.5, 0.5, half_slice)]


def sphere(grid: Grid, radius_mm: float, centre_xyz) -> Mask:
    z, y, x = np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij")
    points = grid.index_to_patient(np.stack([x, y, z], -1).reshape(-1, 3).astype(float))
    inside = ((points - np.asarray(centre_xyz)) ** 2).sum(-1) <= radius_mm**2
    return Mask.from_full(grid, inside.reshape(grid.shape))


def analytic_cc(radius_mm: float) -> float:
    return 4 / 3 * np.pi * radius_mm**3 / 1000


def expansion_errors(grid: Grid, centres: list) -> None:
    print(
        "radius mm  margin mm  error: mean    min      max   (over sub-voxel centres)"
        "   exact voxels: worst   ours − exact: worst   input there   voxel-centred: ours  exact"
    )
    for radius in RADII_MM:
        spheres = [sphere(grid, radius, c) for c in centres]
        inputs = [100 * (s.volume_cc / analytic_cc(radius) - 1) for s in spheres]
        for margin in MARGINS_MM:
            analytic = analytic_cc(radius + margin)
            errors = [100 * (expand(s, margin).volume_cc / analytic - 1) for s in spheres]
            exact = [100 * (sphere(grid, radius + margin, c).volume_cc / analytic - 1) for c in centres]
            _print_row(radius, margin, errors, exact, inputs)


def contraction_errors(grid: Grid, centres: list) -> None:
    print("\ncontraction\nradius mm  margin mm  error: mean    min      max")
    for radius, margins in CONTRACTIONS_MM:
        spheres = [sphere(grid, radius, c) for c in centres]
        for margin in margins:
            errors = [100 * (shrink(s, margin).volume_cc / analytic_cc(radius - margin) - 1) for s in spheres]
            _print_row(radius, margin, errors)


def _print_row(
    radius: float,
    margin: float,
    errors: list[float],
    exact: list[float] | None = None,
    inputs: list[float] | None = None,
) -> None:
    row = f"{radius:9d}  {margin:9d}  {np.mean(errors):+10.2f}% {min(errors):+7.2f}% {max(errors):+7.2f}%"
    if exact is not None and inputs is not None:
        gaps = [e - x for e, x in zip(errors, exact, strict=True)]
        worst = int(np.argmax(np.abs(errors)))
        row += f"   {max(exact, key=abs):+17.2f}%   {max(gaps, key=abs):+17.2f}%   {inputs[worst]:+10.2f}%"
        row += f"   {errors[0]:+17.2f}%  {exact[0]:+.2f}%"  # centres[0] is on a voxel centre
    print(row)


def indistinguishable_radii(grid: Grid, radius_mm: float, step_mm: float = 0.01, span_mm: float = 1.0):
    """(r1, r2): the most different radii in [radius, radius + span] whose centred spheres have the
    same voxels on `grid`'s spacing (a grid-aligned centre)."""
    h = np.asarray(grid.spacing_zyx)
    reach = np.ceil((radius_mm + span_mm) / h).astype(int)
    axes = [np.arange(-n, n + 1) * s for n, s in zip(reach, h, strict=True)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    distance_sq = x**2 + y**2 + z**2
    first_of_mask: dict[str, float] = {}
    best = (radius_mm, radius_mm)
    for r in np.arange(radius_mm, radius_mm + span_mm + step_mm / 2, step_mm):
        key = hashlib.sha1(np.packbits(distance_sq <= r * r).tobytes()).hexdigest()
        r0 = first_of_mask.setdefault(key, float(r))
        if r - r0 > best[1] - best[0]:
            best = (r0, float(r))
    return best


def lower_bounds(grid: Grid) -> None:
    print("\nspheres with identical voxels (grid-aligned centre): no method can tell them apart")
    for radius in RADII_MM:
        r1, r2 = indistinguishable_radii(grid, radius)
        bounds = []
        for margin in MARGINS_MM:
            spread = analytic_cc(r2 + margin) / analytic_cc(r1 + margin) - 1
            bounds.append(f"m={margin}: ≥{100 * spread / (2 + spread):.2f}%")
        print(f"r {r1:.2f} and {r2:.2f} mm → worst-case error of any method " + ", ".join(bounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--centres", type=int, default=8, help="random sub-voxel sphere centres, besides the aligned ones"
    )
    parser.add_argument("--slice-mm", type=float, default=3.0, help="slice spacing (pixels are 1 mm)")
    args = parser.parse_args()
    grid = benchmark_grid(args.slice_mm)
    rng = np.random.default_rng(5)
    aligned = aligned_centres(grid)
    centres = aligned + [tuple(rng.uniform(-1.5, 1.5, 3)) for _ in range(args.centres)]
    print(
        f"grid spacing (x, y, z) = {grid.spacing_xyz} mm; {len(aligned)} grid-aligned centres "
        f"and {args.centres} random ones within ±1.5 mm"
    )
    expansion_errors(grid, centres)
    contraction_errors(grid, centres)
    lower_bounds(grid)


if __name__ == "__main__":
    main()
