"""Margins in millimetres: isotropic and six-direction expansion and contraction, PRVs and rings.

What an anisotropic margin means here (the convention of Eclipse and of Stroom & Storchi,
Phys Med Biol 42:745, 1997): the structure is grown by the Minkowski sum with a convex element
made of eight ellipsoid octants. The octant towards patient left-posterior-superior, for example,
is an ellipsoid octant whose semi-axes are the L, P and S margins. A box therefore grows by exactly
its six margins on its six faces, with rounded edges and corners, and a uniform margin is a ball.

Directions are patient directions (DICOM LPS: +x left, +y posterior, +z superior) mapped through
the grid's direction matrix, so "2 mm superior" is superior also on a feet-first or flipped grid.

How distances are measured: the structure's surface is not known below the voxel size, only that
it passes between inside and outside voxel centres. The distance from a voxel centre to the
structure is estimated as a weighted mean of two exact distances (in mm, or in the octant-ellipsoid
gauge for six margins): to the nearest inside voxel centre (which lies inside the true surface)
and to the nearest boundary midpoint, halfway between an inside and an outside voxel along a grid
axis (which lies on or outside it). Both are computed exactly on the anisotropic grid by separable
minimum convolutions. Rounding margins to whole voxels (a cubic or cross-shaped structuring
element) is what this avoids; on a 1 mm grid the expanded volume of a sphere matches the analytic
one to ≈0.5 %. What cannot be recovered is where a surface lies between two slices: near the
poles of a sphere on 3 mm slices the result is uncertain by up to half a slice.

Contraction is expansion of the complement (with the margins mirrored); voxels outside the grid
count as outside the structure. Results are clipped to the grid (a warning says so).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from planning.errors import Cancelled, GeometryError
from planning.geometry import Grid
from planning.structures import Mask

log = logging.getLogger(__name__)

Progress = Callable[[str, float, float], None]

#: Weight of the distance to inside voxel centres (an overestimate of the distance to the true
#: surface) against the distance to boundary midpoints (an underestimate, the boundary being
#: jagged). 0.65 leaves expansion and contraction of spheres of 10–30 mm on 1 mm and 1×1×3 mm grids
#: unbiased to ≈0.5 % (measured in tests/planning/test_margins.py).
_CENTRE_WEIGHT = 0.65

#: Index axes whose direction deviates from a patient axis by more than this are "oblique".
_OBLIQUE_TOLERANCE_DEG = 1.0


@dataclass(frozen=True)
class Margins:
    """Six directional margins in mm, named by the patient direction they grow towards."""

    right: float = 0.0
    left: float = 0.0
    anterior: float = 0.0
    posterior: float = 0.0
    superior: float = 0.0
    inferior: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            value = float(value)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"the {name} margin must be a finite number of mm ≥ 0, got {value}")
            object.__setattr__(self, name, value)

    @classmethod
    def uniform(cls, mm: float) -> Margins:
        return cls(mm, mm, mm, mm, mm, mm)

    @classmethod
    def of(cls, margin: float | Margins | dict) -> Margins:
        """Accept a single mm value, a Margins, or a dict of the six names."""
        if isinstance(margin, Margins):
            return margin
        if isinstance(margin, dict):
            return cls(**margin)
        return cls.uniform(float(margin))

    @property
    def is_uniform(self) -> bool:
        return len(set(asdict(self).values())) == 1

    @property
    def largest(self) -> float:
        return max(asdict(self).values())

    def mirrored(self) -> Margins:
        """Each margin moved to the opposite direction (used for contraction)."""
        return Margins(self.left, self.right, self.posterior, self.anterior, self.inferior, self.superior)

    def describe(self) -> str:
        if self.is_uniform:
            return f"{self.right:g} mm"
        return (
            f"R {self.right:g} L {self.left:g} A {self.anterior:g} P {self.posterior:g} "
            f"S {self.superior:g} I {self.inferior:g} mm"
        )

    def along_array_axes(self, grid: Grid) -> list[tuple[float, float]]:
        """(towards lower index, towards higher index) margin in mm for array axes (z, y, x)."""
        # LPS axis j: (margin towards −j, margin towards +j)
        patient = [(self.right, self.left), (self.anterior, self.posterior), (self.inferior, self.superior)]
        per_index_axis = []
        for axis in range(3):  # index axes x, y, z = direction columns 0, 1, 2
            column = grid.direction[:, axis]
            j = int(np.argmax(np.abs(column)))
            angle = math.degrees(math.acos(min(1.0, abs(float(column[j])))))
            if angle > _OBLIQUE_TOLERANCE_DEG and not self.is_uniform:
                log.warning(
                    "grid index axis %d is %.1f° from the nearest patient axis; the directional "
                    "margins are applied along that patient axis",
                    axis,
                    angle,
                )
            negative, positive = patient[j]
            per_index_axis.append((negative, positive) if column[j] > 0 else (positive, negative))
        return per_index_axis[::-1]


def expand(
    mask: Mask,
    margin_mm: float | Margins | dict,
    *,
    within: Mask | None = None,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Mask:
    """Grow `mask` by `margin_mm` (one value, or six directional Margins), optionally kept inside
    `within` (e.g. the body). Returns a new Mask on the same grid."""
    margins = Margins.of(margin_mm)
    _check_same_grid(mask, within)
    if mask.is_empty or margins.largest == 0:
        return _limit(mask.copy(), within)
    grid = mask.grid
    axes = margins.along_array_axes(grid)
    spacing = grid.spacing_zyx
    pad = [int(math.ceil(max(neg, pos) / h)) + 1 for (neg, pos), h in zip(axes, spacing, strict=True)]
    lo = [max(0, o - p) for o, p in zip(mask.offset, pad, strict=True)]
    hi = [
        min(n, o + s + p) for o, s, p, n in zip(mask.offset, mask.array.shape, pad, grid.shape, strict=True)
    ]
    if any(o - p < 0 for o, p in zip(mask.offset, pad, strict=True)) or any(
        o + s + p > n for o, s, p, n in zip(mask.offset, mask.array.shape, pad, grid.shape, strict=True)
    ):
        log.info("expansion by %s reaches the edge of the grid and is clipped there", margins.describe())
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    seed = mask.region(box)
    grown = _grow(seed, spacing, axes, on_progress, cancel)
    result = Mask(grid)
    result.replace_region(box, grown)
    return _limit(result, within)


def shrink(
    mask: Mask,
    margin_mm: float | Margins | dict,
    *,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Mask:
    """Contract `mask` by `margin_mm` (one value or six directional Margins): a voxel stays when
    the margin element placed on it lies inside the structure. Outside the grid counts as outside."""
    margins = Margins.of(margin_mm)
    if mask.is_empty or margins.largest == 0:
        return mask.copy()
    grid = mask.grid
    axes = margins.mirrored().along_array_axes(grid)
    # the complement inside the mask's box plus one voxel of outside all around it
    box = mask.box
    padded = np.pad(mask.array, 1, constant_values=False)
    grown_outside = _grow(~padded, grid.spacing_zyx, axes, on_progress, cancel)
    kept = ~grown_outside[1:-1, 1:-1, 1:-1] & mask.array
    result = Mask(grid)
    result.replace_region(box, kept)
    return result


def expand_or_shrink(
    mask: Mask,
    margin_mm: float,
    *,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Mask:
    """Signed uniform margin: positive grows, negative contracts."""
    if margin_mm >= 0:
        return expand(mask, margin_mm, on_progress=on_progress, cancel=cancel)
    return shrink(mask, -margin_mm, on_progress=on_progress, cancel=cancel)


def ring(
    mask: Mask,
    inner_mm: float,
    outer_mm: float,
    *,
    within: Mask | None = None,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Mask:
    """A hollow shell from `inner_mm` to `outer_mm` from the surface (negative = inside), e.g.
    ring(PTV, 2, 20) for a dose-fall-off ring or ring(Body, -5, 0) for a 5 mm skin shell."""
    if outer_mm <= inner_mm:
        raise ValueError(f"a ring needs outer distance > inner distance, got {inner_mm} and {outer_mm} mm")
    _check_same_grid(mask, within)
    outer = expand_or_shrink(mask, outer_mm, on_progress=on_progress, cancel=cancel)
    inner = expand_or_shrink(mask, inner_mm, on_progress=on_progress, cancel=cancel)
    from planning.booleans import subtract

    return _limit(subtract(outer, inner), within)


def prv(structure, margin_mm: float | Margins | dict, *, within: Mask | None = None):
    """Planning organ at risk volume: the organ expanded by a margin, named the TG-263 way
    (`SpinalCord_PRV05` for 5 mm; the largest margin names a directional one). Returns a new
    Structure of type AVOIDANCE carrying its recipe."""
    from planning.derived import derive

    margins = Margins.of(margin_mm)
    name = f"{structure.name}_PRV{int(round(margins.largest)):02d}"
    return derive(
        {"op": "expand", "source": structure.name, "margins": asdict(margins)},
        {structure.name: structure},
        name=name,
        within=within,
        roi_type="AVOIDANCE",
    )


# -- the distance computation -------------------------------------------------------------------


def _grow(
    seed: np.ndarray,
    spacing_zyx,
    axes: list[tuple[float, float]],
    on_progress: Progress | None,
    cancel: threading.Event | None,
) -> np.ndarray:
    """Voxels of `seed`'s array whose estimated gauge distance to the seed is ≤ 1 (see module doc).

    The gauge of a displacement d (mm per array axis) is sqrt(Σ (d_i / a_i)²) with a_i the margin
    towards the side d_i points to. Sources: inside centres, and boundary midpoints on the three
    half-voxel-shifted lattices (one per axis).
    """
    sources = [(seed, None)]
    for axis in range(3):
        moved = np.moveaxis(seed, axis, 0)
        edges = np.zeros_like(moved)
        edges[:-1] = moved[:-1] != moved[1:]
        sources.append((np.moveaxis(edges, 0, axis), axis))
    total = len(sources) * 3
    gauges = []
    for n, (source, shifted_axis) in enumerate(sources):
        values = np.where(source, np.float32(0), np.float32(np.inf))
        for axis in range(3):
            if cancel is not None and cancel.is_set():
                raise Cancelled("margin computation cancelled")
            shift = -0.5 if axis == shifted_axis else 0.0
            values = _min_convolve(values, axis, spacing_zyx[axis], *axes[axis], shift)
            if on_progress is not None:
                on_progress("Computing margin", n * 3 + axis + 1, total)
        gauges.append(np.sqrt(values))
    to_centres = gauges[0]
    to_midpoints = np.minimum(np.minimum(gauges[1], gauges[2]), gauges[3])
    with np.errstate(invalid="ignore"):
        estimate = _CENTRE_WEIGHT * to_centres + (1 - _CENTRE_WEIGHT) * to_midpoints
    return seed | (estimate <= 1.0 + 1e-6)


def _min_convolve(values, axis, spacing_mm, negative_mm, positive_mm, shift):
    """out[p] = min over s of values[p − s] + (d / a)², d = (s + shift)·spacing the displacement
    from source to target along `axis`, a the margin on that side; only costs ≤ 1 are used."""
    out = np.full_like(values, np.inf)
    n = values.shape[axis]
    lowest = int(math.floor(-negative_mm / spacing_mm - shift)) - 1
    highest = int(math.ceil(positive_mm / spacing_mm - shift)) + 1
    for s in range(max(lowest, -(n - 1)), min(highest, n - 1) + 1):
        d = (s + shift) * spacing_mm
        a = positive_mm if d > 0 else negative_mm
        if d == 0:
            cost = 0.0
        elif a == 0 or abs(d) > a * (1 + 1e-9):
            continue
        else:
            cost = (d / a) ** 2
        target = [slice(None)] * 3
        source = [slice(None)] * 3
        target[axis] = slice(max(0, s), n + min(0, s))
        source[axis] = slice(max(0, -s), n - max(0, s))
        view = out[tuple(target)]
        np.minimum(view, values[tuple(source)] + np.float32(cost), out=view)
    return out


def _limit(mask: Mask, within: Mask | None) -> Mask:
    if within is None:
        return mask
    from planning.booleans import intersect

    return intersect(mask, within)


def _check_same_grid(mask: Mask, other: Mask | None) -> None:
    if other is not None and other.grid is not mask.grid and not other.grid.same_as(mask.grid):
        raise GeometryError("the limiting structure is on another grid than the structure")
