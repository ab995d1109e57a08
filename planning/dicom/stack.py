"""Geometry of a stack of image planes: order, spacing, missing slices and gantry tilt.

Given each plane's ImagePositionPatient and the shared orientation, `plan_stack` sorts the planes
along the slice normal (never by InstanceNumber or file name), checks the spacing between every
pair of neighbours, and says what regular grid the volume is built on and whether the planes
must be resampled onto it (missing slices, irregular spacing, gantry tilt). `resample_stack`
does that resampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from planning.errors import SeriesError
from planning.geometry import Grid
from planning.volume import SliceRef

#: Two planes closer than this along the normal are the same slice position (mm).
DUPLICATE_TOLERANCE_MM = 0.01
#: Relative deviation from the nominal step, of each step and of each position from the regular
#: grid, still considered regular (positions rounded in the header jitter by about 1 %).
SPACING_TOLERANCE = 0.05
#: Fewest steps of one spacing in a row that make a run of regular slices, not a gap (a single
#: longer step is slices missing; a spacing kept over several steps is the series' own).
MIN_RUN_STEPS = 3
#: In-plane drift per unit of through-plane distance above which the stack is sheared (tilt).
TILT_THRESHOLD_DEGREES = 1.0
#: Drift below the tilt threshold but above this many mm is reported and left as is.
DRIFT_REPORT_MM = 0.1


@dataclass
class StackPlan:
    """How a stack of planes becomes a regular volume.

    Attributes:
        order: plane indices sorted along the slice normal, duplicates removed.
        duplicates: pairs (kept plane, dropped plane) that share a position.
        grid: the regular output grid.
        source_along_mm: position along the normal (relative to the first plane) of each
            ordered plane.
        shifts_xy_mm: in-plane offset (along the row and column directions) of each ordered
            plane from the grid; all zero unless the stack is sheared.
        resample_z: True when grid planes do not coincide one-to-one with source planes.
        warnings: what had to be corrected, in words.
    """

    order: list[int]
    duplicates: list[tuple[int, int]]
    grid: Grid
    source_along_mm: np.ndarray
    shifts_xy_mm: np.ndarray
    resample_z: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def resampled(self) -> bool:
        return self.resample_z or bool(np.any(self.shifts_xy_mm))


def plan_stack(
    positions: np.ndarray,
    orientation: np.ndarray,
    pixel_spacing_xy: tuple[float, float],
    shape_yx: tuple[int, int],
    fallback_spacing_z: float | None,
) -> StackPlan:
    """Work out the regular grid for planes at `positions` (N, 3) LPS mm.

    Args:
        orientation: ImageOrientationPatient, six direction cosines (row then column).
        pixel_spacing_xy: column and row spacing in mm.
        shape_yx: rows and columns of every plane.
        fallback_spacing_z: slice spacing to use for a single plane (SpacingBetweenSlices or
            SliceThickness), None when unknown.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    row_dir, col_dir = _unit(orientation[:3]), _unit(orientation[3:6])
    if abs(float(row_dir @ col_dir)) > 1e-3:
        raise SeriesError("ImageOrientationPatient row and column directions are not perpendicular")
    normal = np.cross(row_dir, col_dir)
    direction = np.column_stack([row_dir, col_dir, normal])
    along = (positions - positions[0]) @ normal
    order = [int(i) for i in np.argsort(along, kind="stable")]
    kept, duplicates = [order[0]], []
    for index in order[1:]:
        if along[index] - along[kept[-1]] < DUPLICATE_TOLERANCE_MM:
            duplicates.append((kept[-1], index))
        else:
            kept.append(index)
    origin = positions[kept[0]]
    along = along[kept] - along[kept[0]]
    offsets = positions[kept] - origin - np.outer(along, normal)
    shifts = np.column_stack([offsets @ row_dir, offsets @ col_dir])
    warnings: list[str] = []

    if len(kept) == 1:
        spacing_z = fallback_spacing_z if fallback_spacing_z and fallback_spacing_z > 0 else 1.0
        grid = Grid((1, *shape_yx), (*pixel_spacing_xy, spacing_z), tuple(origin), direction)
        return StackPlan(kept, duplicates, grid, along, np.zeros_like(shifts), False, warnings)

    shifts = _check_tilt(along, shifts, warnings)
    steps = np.diff(along)
    mean_step = float(along[-1] / (len(kept) - 1))
    off_grid = np.abs(along - mean_step * np.arange(len(kept)))
    regular = bool(
        np.all(np.abs(steps - mean_step) <= SPACING_TOLERANCE * mean_step)
        and np.all(off_grid <= SPACING_TOLERANCE * mean_step)
    )
    if regular:
        spacing_z = mean_step
        count = len(kept)
    else:
        changes = _spacing_changes(steps)
        spacing_z = min(min(b, a) for _, b, a in changes) if changes else _nominal_step(steps)
        count = int(round(along[-1] / spacing_z)) + 1
        if changes:
            where = _place_namer(along, positions[kept], normal)
            warnings.append(_describe_changes(changes, where, spacing_z))
        else:
            warnings.append(_describe_irregular(steps, along, spacing_z, count - len(kept)))
    grid = Grid((count, *shape_yx), (*pixel_spacing_xy, spacing_z), tuple(origin), direction)
    return StackPlan(kept, duplicates, grid, along, shifts, not regular, warnings)


def resample_stack(planes: np.ndarray, plan: StackPlan) -> np.ndarray:
    """Resample ordered planes (N, rows, columns) onto `plan.grid` by linear interpolation.

    In-plane shifts (gantry tilt) are undone plane by plane; then grid planes between two source
    planes are interpolated linearly along the normal. Integer inputs are rounded back to their
    dtype; voxels shifted in from outside the field take the image's minimum.
    """
    dtype = planes.dtype
    outside = float(planes.min())
    if np.any(plan.shifts_xy_mm):
        spacing_xy = np.asarray(plan.grid.spacing_xyz[:2])
        shifted = np.empty(planes.shape, np.float32)
        for k, (shift_x, shift_y) in enumerate(plan.shifts_xy_mm / spacing_xy):
            ndimage.shift(
                planes[k].astype(np.float32),
                (shift_y, shift_x),
                output=shifted[k],
                order=1,
                mode="constant",
                cval=outside,
            )
        planes = shifted
    if plan.resample_z:
        targets = np.arange(plan.grid.shape[0]) * plan.grid.spacing_xyz[2]
        upper = np.clip(np.searchsorted(plan.source_along_mm, targets, side="right"), 1, len(planes) - 1)
        lower = upper - 1
        span = plan.source_along_mm[upper] - plan.source_along_mm[lower]
        weight = np.clip((targets - plan.source_along_mm[lower]) / span, 0.0, 1.0)
        out = np.empty((len(targets), *planes.shape[1:]), np.float32)
        for k in range(len(targets)):
            out[k] = (1.0 - weight[k]) * planes[lower[k]] + weight[k] * planes[upper[k]]
        planes = out
    if np.issubdtype(dtype, np.integer) and planes.dtype != dtype:
        info = np.iinfo(dtype)
        planes = np.clip(np.rint(planes), info.min, info.max).astype(dtype)
    return planes


def source_plane_at(plan: StackPlan, k: int) -> int | None:
    """Index into `plan.order` of the source plane lying in grid plane k, or None.

    A sheared (gantry-tilted) plane counts: its image lies in the same plane as grid plane k,
    only shifted within it (see `image_plane_origins`).
    """
    target = k * plan.grid.spacing_xyz[2]
    nearest = int(np.argmin(np.abs(plan.source_along_mm - target)))
    return nearest if abs(plan.source_along_mm[nearest] - target) < DUPLICATE_TOLERANCE_MM else None


def image_plane_origins(grid: Grid, slices: Sequence[SliceRef | None]) -> np.ndarray:
    """Origin (K, 3) LPS mm of each grid plane, moved along the normal into its source image's
    plane; in-plane the grid's own (a sheared image's ImagePositionPatient is shifted within
    the plane, while the voxels were resampled onto the grid)."""
    origins = grid.slice_position(np.arange(grid.shape[0]))
    normal = grid.direction[:, 2]
    for k, ref in enumerate(slices):
        if ref is not None:
            origins[k] += normal * float((np.asarray(ref.position_xyz) - origins[k]) @ normal)
    return origins


# -- helpers --------------------------------------------------------------------------------


def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    norm = np.linalg.norm(vector)
    if not np.isfinite(norm) or norm < 1e-6:
        raise SeriesError(f"ImageOrientationPatient holds a zero direction: {vector.tolist()}")
    return vector / norm


def _check_tilt(along: np.ndarray, shifts: np.ndarray, warnings: list[str]) -> np.ndarray:
    """Return the in-plane shifts to undo: all of them for a tilted stack, none otherwise."""
    drift = float(np.linalg.norm(shifts, axis=1).max())
    if drift == 0.0:
        return shifts
    angle = float(np.degrees(np.arctan2(np.linalg.norm(shifts[-1]), along[-1])))
    if angle > TILT_THRESHOLD_DEGREES:
        warnings.append(
            f"gantry tilt of {angle:.1f}° detected (slices shifted in-plane by up to {drift:.1f} mm); "
            "the sheared stack was resampled onto a regular grid perpendicular to the slices "
            "by linear interpolation"
        )
        return shifts
    if drift > DRIFT_REPORT_MM:
        warnings.append(
            f"slice positions drift in-plane by up to {drift:.2f} mm ({angle:.2f}°) across the "
            f"stack, below the {TILT_THRESHOLD_DEGREES:g}° gantry-tilt threshold; kept as a "
            "regular stack along the slice normal"
        )
    return np.zeros_like(shifts)


def _nominal_step(steps: np.ndarray) -> float:
    """The regular step of an irregular stack: the smallest step most others are multiples of."""
    smallest = float(steps.min())
    multiples = steps / smallest
    if np.all(np.abs(multiples - np.rint(multiples)) <= 0.05):
        return float(np.mean(steps[np.rint(multiples) == 1]))
    return float(np.median(steps))


def _spacing_changes(steps: np.ndarray) -> list[tuple[int, float, float]]:
    """Where the spacing changes between runs of regular slices: (index of the slice the new
    spacing starts from, spacing before, spacing after) in mm. A run is `MIN_RUN_STEPS` steps or
    more within `SPACING_TOLERANCE` of its first; shorter ones (a gap, a step between two
    spacings) are not runs."""
    runs, start = [], 0
    for i in range(1, len(steps) + 1):
        if i == len(steps) or abs(steps[i] - steps[start]) > SPACING_TOLERANCE * steps[start]:
            if i - start >= MIN_RUN_STEPS:
                runs.append((start, float(np.mean(steps[start:i]))))
            start = i
    return [
        (first, before, after)
        for (_, before), (first, after) in zip(runs, runs[1:], strict=False)
        if abs(after - before) > SPACING_TOLERANCE * before
    ]


def _place_namer(along: np.ndarray, positions: np.ndarray, normal: np.ndarray):
    """Words for where slice i lies: its patient z for a stack of axial slices, else its distance
    along the slice normal from the first slice."""
    if abs(normal[2]) > 0.9:
        return lambda i: f"z = {positions[i][2]:.1f} mm"
    return lambda i: f"{along[i]:.1f} mm along the slice normal from the first slice"


def _describe_changes(changes: list[tuple[int, float, float]], where, spacing: float) -> str:
    listed = ", ".join(
        f"from {_mm(before)} mm to {_mm(after)} mm at {where(i)}" for i, before, after in changes[:5]
    )
    more = f" and {len(changes) - 5} more times" if len(changes) > 5 else ""
    return (
        f"slice spacing changes {listed}{more}; resampled to a regular {_mm(spacing)} mm grid by "
        "linear interpolation between neighbouring slices"
    )


def _mm(value: float) -> str:
    """A spacing in mm to the micrometre, trailing zeros dropped but one: 3.0, 2.5, 0.625."""
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _describe_irregular(steps: np.ndarray, along: np.ndarray, spacing: float, added: int) -> str:
    gaps = [
        f"{steps[i]:.2f} mm after {along[i]:.2f} mm"
        for i in np.flatnonzero(np.abs(steps - spacing) > SPACING_TOLERANCE * spacing)[:5]
    ]
    missing = f"about {added} slice(s) missing; " if added > 0 else ""
    return (
        f"irregular slice spacing: expected {spacing:.3g} mm, found gaps of {', '.join(gaps)} "
        f"(positions along the slice normal from the first slice); {missing}resampled to a "
        f"regular {spacing:.3g} mm grid by linear interpolation between neighbouring slices"
    )
