"""Sampling a structure's planar contours on the dose grid: each contour plane a slab (its image
slice, `planning.contour_slabs`), sampled at f × f columns per dose voxel in-plane and at sub-planes
through the slab. Contours are handled in dose index units (x, y) with the plane's z index."""

from __future__ import annotations

import math

import numpy as np

from planning.contour_slabs import ImageSlices
from planning.dvh.polygons import inside_samples, perimeter_mm, polygon_area_even_odd
from planning.dvh.sampling import (
    BOUNDARY_SHARE,
    MAX_FACTOR,
    SAMPLE_BUDGET,
    given_factor,
    outside_grid_warning,
    small_structure_warning,
)
from planning.dvh.volumes import SampleVolumes
from planning.errors import Cancelled, GeometryError

#: Contour points farther than this (mm) from their plane make the contour non-planar.
PLANE_TOLERANCE_MM = 0.05


def sample_contours(dose, planes, factor, slices, end_cap, name, cancel):
    """Sample the contour `planes` (`contour_planes`: dose z index → polygons in dose index units)
    as slabs of the image `slices`, `end_cap` (mm) past the ends when given. Returns the samples'
    doses (the dose's unit) and volumes (cc), the sampling in words, and warnings."""
    grid = dose.grid
    if not planes:
        return np.zeros(0), SampleVolumes.of([]), "planar contours: no closed contour", []
    positions = np.array(sorted(planes))
    below, above, ends_below, ends_above = _slab_reaches(grid, positions, slices, end_cap, name)
    slabs = list(zip(below, above, strict=True))
    ends = np.r_[below[ends_below], above[ends_above]]
    pixel_mm2 = grid.spacing_xyz[0] * grid.spacing_xyz[1]
    areas = [abs(polygon_area_even_odd(planes[z])) * pixel_mm2 for z in positions]
    perimeters = [perimeter_mm(planes[z], grid) for z in positions]
    thickness = [(b + a) * grid.spacing_xyz[2] for b, a in slabs]
    f, share = _contour_factor(factor, grid, areas, perimeters, thickness)
    doses, inside_flags, entries, sub_counts = [], [], [], []
    table: dict[float, int] = {}  # each distinct sample volume (cc) → its entry
    for z, (below, above), mm in zip(positions, slabs, thickness, strict=True):
        if cancel is not None and cancel.is_set():
            raise Cancelled("DVH computation cancelled")
        xs, ys, inside = inside_samples(planes[z], f)
        if not inside.any():
            continue
        rows, columns = np.nonzero(inside)
        points = np.column_stack([xs[columns], ys[rows]])
        sub_planes = _sub_planes(f, mm, grid)
        sub_counts.append(sub_planes)
        share_cc = grid.voxel_volume_cc * (below + above) / (f * f * sub_planes)
        entry = table.setdefault(share_cc, len(table))
        for j in range(sub_planes):
            dz = -below + (below + above) * (j + 0.5) / sub_planes
            index = np.column_stack([points, np.full(len(points), z + dz)])
            values, ok = dose.sample(index)
            doses.append(values)
            inside_flags.append(ok)
            entries.append(np.full(len(values), entry, np.min_scalar_type(entry)))
    doses = np.concatenate(doses) if doses else np.zeros(0)
    inside = np.concatenate(inside_flags) if inside_flags else np.zeros(0, bool)
    volumes = SampleVolumes(list(table), np.concatenate(entries) if entries else np.zeros(0, np.uint8))
    spacing = grid.spacing_xyz[0] / f, grid.spacing_xyz[1] / f
    if not sub_counts:
        sampling = "planar contours: no sample falls inside them"
    else:
        parts = int(ends_below.sum())
        extent = f"{len(positions)} plane{'s' if len(positions) > 1 else ''} on {slices.source}" + (
            f", in {parts} separate parts" if parts > 1 else ""
        )
        sampling = (
            f"planar contours, {extent}; ends {_range_mm(ends, grid)} past the end planes; "
            f"samples every {spacing[0]:.3g} × {spacing[1]:.3g} mm, {_range(sub_counts)} per plane; "
            f"{share:.1%} of the volume within one sample of the contours"
        )
    warnings = small_structure_warning(name, volumes.total(), dose, "sampled below the voxel size")
    if not warnings and share > 2 * BOUNDARY_SHARE:
        warnings.append(
            f"{name}: sampled every {min(spacing):.2g} mm (finer costs more than the sampling "
            f"allows), {share:.0%} of its volume lies within one sample of its contours, where D98 "
            "and Dmin are set: those are less certain than Dmean"
        )
    warnings += outside_grid_warning(name, inside, volumes)
    warnings += _thickness_warnings(name, slices, ends_below, ends_above, _range_mm(below + above, grid))
    return doses, volumes, sampling, warnings


def _slab_reaches(grid, positions: np.ndarray, slices: ImageSlices, end_cap, name: str):
    """For contour planes at dose z indices `positions` (ascending): how far each one's slab
    reaches below and above it (dose index units, along z) and whether the structure ends there,
    from the image slices they lie on; `end_cap` (mm) replaces the reach where it ends."""
    along = float(grid.slice_normal @ slices.normal)
    if abs(along) < 1 - 1e-4:
        raise GeometryError(f"{name}: the image slices are not parallel to the dose planes")
    points = grid.index_to_patient(np.column_stack([np.zeros((len(positions), 2)), positions]))
    mm = points @ slices.normal
    order = np.argsort(mm, kind="stable")
    back = np.argsort(order)
    slabs = slices.slabs(mm[order])
    below, above = slabs.below_mm[back], slabs.above_mm[back]
    ends_below, ends_above = slabs.ends_below[back], slabs.ends_above[back]
    if along < 0:  # the dose's z index runs against the slices' normal
        below, above, ends_below, ends_above = above, below, ends_above, ends_below
    if end_cap is not None:
        thickness = float(np.median(below + above))
        if not 0 < end_cap <= thickness * (1 + 1e-9):
            raise ValueError(
                f"the end cap must be > 0 mm and at most the slice thickness ({thickness:g} mm), "
                f"got {end_cap:g} mm"
            )
        below = np.where(ends_below, float(end_cap), below)
        above = np.where(ends_above, float(end_cap), above)
    step = grid.spacing_xyz[2]
    return below / step, above / step, ends_below, ends_above


def _thickness_warnings(name: str, slices: ImageSlices, ends_below, ends_above, thickness: str) -> list[str]:
    """What the DVH must say when the image slices were estimated and its thickness is a guess."""
    if not slices.estimated:
        return []
    if slices.doubt:
        return [f"{name}: {slices.doubt}"]
    if len(ends_below) and np.all(ends_below & ends_above):  # no plane continues onto a neighbouring slice
        count = len(ends_below)
        planes = "its contour plane" if count == 1 else f"each of its {count} separate planes"
        return [
            f"{name}: no images to give its thickness: {planes} taken as one slice of {thickness}, the "
            "structure set's slice spacing there (read it with its images to know)"
        ]
    return []


def _contour_factor(factor, grid, areas_mm2, perimeters_mm, thickness_mm) -> tuple[int, float]:
    """The in-plane sampling factor f for contour planes of these areas, perimeters and slab
    thicknesses (mm), and the share of the volume within one sample of the contours at f."""
    areas, perimeters, thickness = (np.asarray(v, float) for v in (areas_mm2, perimeters_mm, thickness_mm))
    volume = float(np.sum(areas * thickness))
    if volume <= 0:
        return (1 if factor == "auto" else given_factor(factor)), 0.0
    voxel_mm = math.sqrt(grid.spacing_xyz[0] * grid.spacing_xyz[1])
    share_at_1 = float(np.sum(perimeters * thickness)) * voxel_mm / volume
    if factor != "auto":
        f = given_factor(factor)
        return f, share_at_1 / f
    f = int(min(MAX_FACTOR, max(1, math.ceil(share_at_1 / BOUNDARY_SHARE - 1e-9))))
    while f > 1 and _contour_samples(f, grid, areas, thickness) > SAMPLE_BUDGET:
        f -= 1
    return f, share_at_1 / f


def _contour_samples(f: int, grid, areas_mm2: np.ndarray, thickness_mm: np.ndarray) -> float:
    """About how many samples factor f takes (`_sub_planes` per plane)."""
    columns = areas_mm2 / (grid.spacing_xyz[0] * grid.spacing_xyz[1]) * f * f
    return float(sum(n * _sub_planes(f, t, grid) for n, t in zip(columns, thickness_mm, strict=True)))


def _sub_planes(f: int, thickness_mm: float, grid) -> int:
    """Sub-planes of a slab at factor f: the plane itself at f = 1 (dicompyler-core's sampling),
    else about as far apart as the columns."""
    return 1 if f == 1 else max(1, math.ceil(thickness_mm * f / grid.spacing_xyz[0]))


def _range_mm(values, grid) -> str:
    values = np.asarray(values, float) * grid.spacing_xyz[2]
    low, high = float(values.min()), float(values.max())
    return f"{low:.3g} mm" if high - low < 1e-3 else f"{low:.3g}–{high:.3g} mm"


def _range(counts) -> str:
    return str(min(counts)) if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}"


def contour_planes(grid, contours, name) -> dict[float, list[np.ndarray]]:
    """Contours in dose index coordinates (x, y), grouped by their plane (z index)."""
    planes: dict[float, list[np.ndarray]] = {}
    tolerance = PLANE_TOLERANCE_MM / grid.spacing_xyz[2]
    for contour in contours:
        index = grid.patient_to_index(np.asarray(contour.points, dtype=np.float64))
        if np.ptp(index[:, 2]) > 2 * tolerance:
            raise GeometryError(
                f"{name}: a contour is not parallel to the dose planes; read the structure onto its "
                "images (give the image series) to compute this DVH from the mask"
            )
        z = float(np.mean(index[:, 2]))
        key = next((k for k in planes if abs(k - z) <= tolerance), round(z, 6))
        planes.setdefault(key, []).append(index[:, :2])
    return planes
