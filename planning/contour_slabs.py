"""How thick each contour plane of a structure is: the image slices its structure set was drawn on.

A contour drawn on an image stands for that image's slice: a slab reaching halfway to the
neighbouring images (one slice spacing thick on an evenly spaced CT, its own thickness where the
spacing changes). A structure drawn on slices that are not neighbours (two lesions, a lone
slice, every other slice) is separate slabs, never one reaching across the gap. `ImageSlices`
holds the slices along their normal (positions and reaches in mm):

- `from_images`: the images a volume was built from (a plane interpolated on loading for a
  missing slice is no image: its neighbours reach over it, unless a contour was drawn there), or
  every plane of a grid;
- `estimate`: without the images (an RTSTRUCT alone), from the contour planes of the whole
  structure set. The slice spacing is then the smallest gap between two planes of one structure
  (up to 10 mm: a wider gap is between separate parts; without one, a thickness the caller
  gives, a guess). Two neighbouring planes of the set are neighbouring slices when their gap is
  at most 1.5 times that spacing, or, where the spacing changes (2.5 then 5 mm), up to twice it
  when a gap beside it is the same; other gaps hold slices without any contour. What rests on
  little evidence is said (`doubt`).

A slice without a neighbouring slice on a side reaches half its other gap there, half the slice
spacing when it has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from planning.dicom.stack import image_plane_origins
from planning.geometry import Grid
from planning.structures import PlanarContour
from planning.volume import SliceRef

#: Contour planes closer than this (mm) are one plane; gaps that differ by less are the same gap.
PLANE_TOLERANCE_MM = 0.05
#: A contour plane within this share of a slice's thickness from it lies on it (one drawn on an
#: image missing from the series lies at least 2/3 of its neighbour's thickness from it).
ON_SLICE = 0.4
#: Gaps up to this many slice spacings join neighbouring slices ...
NEIGHBOUR_GAPS = 1.5
#: ... and, beside a gap of the same size (a stretch of thicker slices), up to this many.
THICKER_SLICES = 2.0
#: Gaps wider than this (mm) are between separate parts of a structure, never one slice spacing.
MAX_SPACING_MM = 10.0
#: An estimated spacing seen fewer times than this between planes of one structure is doubtful.
MIN_EVIDENCE = 3


@dataclass(frozen=True)
class Slabs:
    """The slabs of a structure's contour planes (ascending along the slices' normal), in mm.

    Attributes:
        below_mm, above_mm: how far each plane's slab reaches below and above it.
        ends_below, ends_above: whether the structure ends there (its next plane on that side is
            not on the neighbouring slice).
    """

    below_mm: np.ndarray
    above_mm: np.ndarray
    ends_below: np.ndarray
    ends_above: np.ndarray


@dataclass(frozen=True)
class ImageSlices:
    """Image slices along a normal.

    Attributes:
        normal: unit LPS vector the positions are measured along.
        positions_mm: each slice's position along `normal`, ascending.
        below_mm, above_mm: how far each slice reaches below and above its position.
        joined: per gap between consecutive slices, whether they are neighbours (their slabs meet).
        spacing_mm: the slice spacing of a slice without neighbours.
        source: where the slices come from, in words ("the images' 3 mm slices").
        estimated: True when estimated from contour planes, not read from images.
        doubt: why the estimate may be wrong, in words ("" when it is not in doubt).
    """

    normal: np.ndarray
    positions_mm: np.ndarray
    below_mm: np.ndarray
    above_mm: np.ndarray
    joined: np.ndarray
    spacing_mm: float
    source: str
    estimated: bool = False
    doubt: str = ""

    @classmethod
    def from_images(cls, grid: Grid, slices: Sequence[SliceRef | None] = ()) -> ImageSlices:
        """The slices of the images `grid` was built from (`Volume.slices`: None for a plane
        interpolated on loading); every plane of the grid when `slices` is empty."""
        normal = np.asarray(grid.slice_normal, float)
        if slices and any(ref is not None for ref in slices):
            origins = image_plane_origins(grid, slices)
            positions = np.array([origins[k] @ normal for k, ref in enumerate(slices) if ref is not None])
        else:
            positions = grid.slice_position(np.arange(grid.shape[0])) @ normal
        return cls._neighbours(normal, np.sort(positions), grid.spacing_xyz[2])

    @classmethod
    def _neighbours(cls, normal: np.ndarray, positions: np.ndarray, spacing: float) -> ImageSlices:
        """Images at `positions` (ascending, mm), each the neighbour of the next."""
        joined = np.ones(max(len(positions) - 1, 0), bool)
        below, above = _reaches(np.diff(positions), joined, spacing)
        source = f"the images' {_mm(below + above)} slices"
        return cls(normal, positions, below, above, joined, float(spacing), source)

    @classmethod
    def estimate(
        cls, structures: Iterable[Sequence[PlanarContour]], normal, fallback_mm: float
    ) -> ImageSlices:
        """Slices estimated from the closed contours of every structure of a set, each structure's
        contours a sequence; planes along `normal` (contours not perpendicular to it are left
        out). Without two planes of one structure within `MAX_SPACING_MM` the spacing is
        `fallback_mm` (mm), said in `doubt`."""
        normal = np.asarray(normal, float) / np.linalg.norm(normal)
        planes = [_distinct(_plane_positions(contours, normal)) for contours in structures]
        own_gaps = np.concatenate([np.diff(p) for p in planes] + [np.zeros(0)])
        own_gaps = own_gaps[own_gaps <= MAX_SPACING_MM + PLANE_TOLERANCE_MM]
        positions = _distinct(np.concatenate(planes + [np.zeros(0)]))
        if own_gaps.size:
            spacing = float(own_gaps.min())
            seen = int(np.sum(own_gaps <= spacing + PLANE_TOLERANCE_MM))
            source = (
                f"slices estimated from the contour planes of the structure set: {spacing:.3g} mm, the "
                "smallest gap between planes of one structure"
            )
            doubt = (
                ""
                if seen >= MIN_EVIDENCE
                else f"no images: the slice thickness, {spacing:.3g} mm, is a guess: the smallest gap "
                f"between contour planes of one structure in the structure set, seen {_times(seen)}; on "
                "images with thinner slices the structure is smaller (read it with its images to know)"
            )
        else:
            spacing = float(fallback_mm)
            source = f"no images: slices taken as one dose frame, {spacing:.3g} mm"
            doubt = (
                f"no images, and no structure of the set has two contour planes within {MAX_SPACING_MM:g} "
                f"mm of each other: each contour plane is taken as {spacing:.3g} mm thick (one dose "
                "frame), a guess: its volume and DVH depend on it (read the structures with their "
                "images to know)"
            )
        gaps = np.diff(positions)
        joined = gaps <= NEIGHBOUR_GAPS * spacing + PLANE_TOLERANCE_MM
        same_beside = np.zeros(len(gaps), bool)
        if len(gaps) > 1:
            same = np.abs(np.diff(gaps)) <= PLANE_TOLERANCE_MM
            same_beside[:-1] |= same
            same_beside[1:] |= same
        joined |= same_beside & (gaps <= THICKER_SLICES * spacing + PLANE_TOLERANCE_MM)
        below, above = _reaches(gaps, joined, spacing)
        return cls(normal, positions, below, above, joined, spacing, source, estimated=True, doubt=doubt)

    def slabs(self, planes_mm: np.ndarray) -> Slabs:
        """The slabs of contour planes at `planes_mm` (ascending): each takes the reaches of the
        slice nearest to it, centred on itself. A plane on none of the images (drawn on an image
        missing from the series) is an image between its neighbours."""
        planes_mm = np.asarray(planes_mm, float)
        distance = np.abs(planes_mm[:, None] - self.positions_mm[None, :])
        nearest = distance.argmin(axis=1)
        thickness = self.below_mm[nearest] + self.above_mm[nearest]
        off = distance[np.arange(len(planes_mm)), nearest] > ON_SLICE * thickness
        if off.any() and not self.estimated:
            positions = _distinct(np.r_[self.positions_mm, planes_mm[off]])
            return ImageSlices._neighbours(self.normal, positions, self.spacing_mm).slabs(planes_mm)
        # the structure continues on the next slice when its next plane is on it and they are neighbours
        continues = (np.diff(nearest) == 1) & np.r_[self.joined, False][nearest[:-1]]
        ends_above = np.r_[~continues, True]
        ends_below = np.r_[True, ~continues]
        return Slabs(self.below_mm[nearest], self.above_mm[nearest], ends_below, ends_above)


def contour_plane_positions(
    along: Sequence[np.ndarray], tolerance_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each contour's plane, from its points' positions along the slice normal (mm, one array per
    contour): their mean (mm), and whether they lie within `tolerance_mm` of one another (planar)."""
    positions = np.array([float(a.mean()) for a in along])
    planar = np.array([np.ptp(a) <= tolerance_mm for a in along], bool)
    return positions, planar


def _plane_positions(contours: Sequence[PlanarContour], normal: np.ndarray) -> np.ndarray:
    """The planes (mm along `normal`) of the closed contours that are planar; others left out."""
    along = [np.asarray(c.points, float) @ normal for c in contours if c.encloses_area]
    positions, planar = contour_plane_positions(along, 2 * PLANE_TOLERANCE_MM)
    return positions[planar]


def _distinct(positions: np.ndarray) -> np.ndarray:
    """Sorted positions with those within the tolerance of the previous kept one dropped."""
    positions = np.sort(np.asarray(positions, float))
    kept: list[float] = []
    for value in positions:
        if not kept or value - kept[-1] > PLANE_TOLERANCE_MM:
            kept.append(float(value))
    return np.array(kept)


def _reaches(gaps: np.ndarray, joined: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Each slice's reach below and above (mm): halfway to a neighbouring slice; on a side without
    one, half its gap to the neighbour on its other side (half `spacing` when it has none)."""
    usable = np.where(joined, gaps, np.nan)
    below_gap = np.r_[np.nan, usable]
    above_gap = np.r_[usable, np.nan]
    own = np.fmin(below_gap, above_gap)  # its own slice spacing: the smaller of its joined gaps
    own = np.where(np.isnan(own), spacing, own)
    below = np.where(np.isnan(below_gap), own, below_gap) / 2
    above = np.where(np.isnan(above_gap), own, above_gap) / 2
    return below, above


def _mm(values: np.ndarray) -> str:
    low, high = float(np.min(values)), float(np.max(values))
    return f"{low:.3g} mm" if high - low < 1e-3 else f"{low:.3g}–{high:.3g} mm"


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"
