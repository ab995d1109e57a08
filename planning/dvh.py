"""Dose-volume histograms with sub-voxel sampling of the structure on the dose grid.

A structure's planar contours are sampled on a regular lattice aligned with the dose grid, finer
than it: each dose voxel is split into f × f columns in-plane, and each contour plane's slab into
sub-planes. The dose at each sample is trilinear in the dose grid; each sample carries its share
of the volume. f is chosen (`auto`) from the structure's shape, not its size: fine enough that at
most `BOUNDARY_SHARE` (5 %) of its volume lies within one sample of its contours (the band where
a sample is in or out by chance, and where D98 and Dmin are set), up to 1/8 of a dose voxel and
`SAMPLE_BUDGET` samples. A large compact structure (a BODY) is then sampled at the dose voxel
centres (f = 1, what dicompyler-core and most planning systems do), a smaller, thinner or more
convoluted one finer — dicompyler-core #243 shows DVHs of small structures off by Gy without it.
Every DVH's `sampling` gives the share it reached; one left above twice the target by the
budget says so in its warnings.

Two sources of geometry:

- **planar contours** (`Structure.contours` or an RTSTRUCT read without its images): each
  contour plane is a slab one image slice thick (`planning.contour_slabs`): reaching halfway to
  the neighbouring images, on an evenly spaced CT one slice spacing centred on it (the
  convention of treatment planning systems and of dicompyler-core), and its own slice where the
  spacing changes. A structure drawn on slices that are not neighbours (two lesions, a lone
  slice, every other slice) is separate slabs, each with its own ends, never one across the
  gap. The slices are the images' when known (a Structure's image grid, or the `slices` given);
  without images they are estimated from the contour planes of the structure set, and the DVH's
  warnings say when a structure's thickness is a guess. Inside means inside an odd number of the
  plane's contours (holes). No CT is needed. The planes must be parallel to the dose frames.
  Where the structure ends the slab reaches `end_cap_mm` past the plane: half its slice by
  default. dicompyler-core's "interpolation between planes" repeats the nearest plane on a
  finer grid from the first plane to the last, which amounts to an end cap of a sixth of the
  spacing; that, not the interpolation, is what makes its small-structure DVHs differ from the
  slab convention.
- **a mask** on its image grid: its voxels are its geometry, and each is sampled at its centre
  (at round(f × its size in dose voxels) points along an axis where it spans more than a dose
  voxel: a 5 mm CT slice on 2.5 mm dose frames is sampled twice; past `SAMPLE_BUDGET`, voxels
  much smaller than a dose voxel are sampled in blocks). A mask on the dose grid itself (OpenKBP)
  thus reads its voxels' own doses: its Dmax is the highest of them (sampling inside its edge
  voxels would mix in the dose of their neighbours outside it).

Metrics come from the samples themselves, not from histogram bins: D_x% is the lowest dose in
the hottest x % of the volume, D_xcc the same for x cc, V_xGy the volume receiving at least x Gy,
Dmean the volume-weighted mean. The histogram (default 0.01 Gy bins) is for plots and export.
Volume outside the dose grid counts with dose 0 and is reported in `warnings`.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from planning.contour_slabs import ImageSlices
from planning.dose import Dose
from planning.errors import Cancelled, GeometryError
from planning.files import write_atomically
from planning.structures import Mask, PlanarContour, Structure

log = logging.getLogger(__name__)

Progress = Callable[[str, float, float], None]

#: Structures smaller than this many dose voxels get a warning.
SMALL_STRUCTURE_VOXELS = 100
#: `auto` samples contours so that at most this share of the volume is within one sample of them ...
BOUNDARY_SHARE = 0.05
#: ... with at most this many columns per dose voxel along x and y ...
MAX_FACTOR = 8
#: ... and about this many samples at most (under a second on one core).
SAMPLE_BUDGET = 4_000_000
#: Contour points farther than this (mm) from their plane make the contour non-planar.
PLANE_TOLERANCE_MM = 0.05


@dataclass
class DVH:
    """The dose-volume histogram of one structure.

    Attributes:
        name: structure name.
        doses: sample doses, sorted descending (Gy).
        volumes_cc: the volume each sample stands for, same order.
        bin_width: histogram bin width (Gy).
        units: "Gy", "Gy(effective)" (a biologically weighted dose) or "relative".
        sampling: how the structure was sampled, in words.
        warnings: small structure, outside the dose grid, ...
    """

    name: str
    doses: np.ndarray
    volumes_cc: np.ndarray
    bin_width: float = 0.01
    units: str = "Gy"
    sampling: str = ""
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cumulative = np.cumsum(self.volumes_cc)

    # -- summary ------------------------------------------------------------------------------

    @property
    def volume_cc(self) -> float:
        """The structure's volume the samples stand for, in cc."""
        return float(self._cumulative[-1]) if self._cumulative.size else 0.0

    @property
    def is_empty(self) -> bool:
        return self.volume_cc == 0

    @property
    def max(self) -> float:
        """The highest sampled dose (0 when empty)."""
        return float(self.doses[0]) if self.doses.size else 0.0

    @property
    def min(self) -> float:
        """The lowest sampled dose (0 when empty)."""
        return float(self.doses[-1]) if self.doses.size else 0.0

    @property
    def mean(self) -> float:
        """The volume-weighted mean dose (0 when empty)."""
        if self.is_empty:
            return 0.0
        return float(np.sum(self.doses * self.volumes_cc) / self.volume_cc)

    def d_percent(self, percent: float) -> float:
        """D_x%: the minimum dose of the hottest `percent` % of the volume."""
        return self.d_cc(self.volume_cc * percent / 100.0)

    def d_cc(self, cc: float) -> float:
        """D_xcc: the minimum dose of the hottest `cc` cm³ (0 when larger than the structure)."""
        if self.is_empty or cc > self.volume_cc * (1 + 1e-9):
            return 0.0
        index = int(np.searchsorted(self._cumulative, cc * (1 - 1e-12)))
        return float(self.doses[min(index, self.doses.size - 1)])

    def v_gy(self, dose: float) -> float:
        """V_x: volume in cc receiving at least `dose`."""
        count = int(np.searchsorted(-self.doses, -dose, side="right"))
        return float(self._cumulative[count - 1]) if count else 0.0

    def v_percent(self, dose: float) -> float:
        """V_x as a percentage of the structure's volume: the share receiving at least `dose`."""
        return 100.0 * self.v_gy(dose) / self.volume_cc if not self.is_empty else 0.0

    # -- histograms ---------------------------------------------------------------------------

    @property
    def bin_edges(self) -> np.ndarray:
        """Histogram bin edges, `bin_width` apart, from 0 to the first edge at or above the maximum dose."""
        count = max(1, int(math.ceil(self.max / self.bin_width + 1e-9)))
        return np.arange(count + 1) * self.bin_width

    def differential(self) -> np.ndarray:
        """Volume (cc) per bin [edge_i, edge_i+1)."""
        edges = self.bin_edges
        values, _ = np.histogram(
            np.minimum(self.doses, edges[-1] - 1e-12), bins=edges, weights=self.volumes_cc
        )
        return values

    def cumulative(self) -> np.ndarray:
        """Volume (cc) receiving at least each bin edge's dose (one value per edge)."""
        counts = np.searchsorted(-self.doses, -self.bin_edges, side="right")
        padded = np.concatenate([[0.0], self._cumulative])
        return padded[counts]

    def statistics(self, dose_levels: Sequence[float] = (), percents: Sequence[float] = (95, 50, 2)) -> dict:
        """A flat dict of the usual numbers (Gy, cc) for tables."""
        out = {
            "volume_cc": self.volume_cc,
            "Dmean": self.mean,
            "Dmin": self.min,
            "Dmax": self.max,
        }
        for p in percents:
            out[f"D{p:g}%"] = self.d_percent(p)
        for level in dose_levels:
            out[f"V{level:g}Gy_cc"] = self.v_gy(level)
        return out


# -- computing ----------------------------------------------------------------------------------


def compute_dvh(
    dose: Dose,
    structure: Structure | Mask | list[PlanarContour],
    *,
    name: str | None = None,
    factor: int | str = "auto",
    slices: ImageSlices | None = None,
    end_cap_mm: float | None = None,
    bin_width: float = 0.01,
    cancel: threading.Event | None = None,
) -> DVH:
    """The DVH of a structure on a dose.

    Args:
        dose: the dose grid.
        structure: a Structure (its planar contours when it has them and they are parallel to
            the dose planes, else its mask), a Mask, or the planar contours themselves.
        name: the DVH's name (default: the structure's).
        factor: samples per dose voxel along x and y (an integer ≥ 1) or "auto": for contours
            as few as keep `BOUNDARY_SHARE`, for a mask 1 (its voxels' centres).
        slices: the image slices the contours were drawn on, which give each contour plane its
            thickness (default: a Structure's image grid; for contours alone, estimated from
            their own planes: give `ImageSlices.estimate` of the whole structure set instead).
        end_cap_mm: how far the structure reaches past the planes where it ends (> 0, at most
            its slice thickness; default: half its slice). Planar contours only.
        bin_width: histogram bin width.
        cancel: checked between planes.
    """
    if isinstance(structure, Structure):
        name = name or structure.name
        geometry = structure.contours if structure.contours else structure.mask
        if slices is None:
            slices = ImageSlices.from_images(structure.mask.grid)
    else:
        geometry = structure
    name = name or "structure"
    planes = None
    if isinstance(geometry, list):
        try:
            planes = _planes(dose.grid, [c for c in geometry if c.encloses_area], name)
        except GeometryError:  # contours on oblique images: their mask on those images, if any
            if not isinstance(structure, Structure) or structure.mask.is_empty:
                raise
            geometry = structure.mask
    if planes is not None:
        if slices is None:
            slices = ImageSlices.estimate([geometry], dose.grid.slice_normal, dose.grid.spacing_xyz[2])
        doses, volumes, sampling, warnings = _sample_contours(
            dose, planes, factor, slices, end_cap_mm, name, cancel
        )
    else:
        doses, volumes, sampling, warnings = _sample_mask(dose, geometry, factor, name, cancel)
    order = np.argsort(-doses)  # equal doses in any order: the metrics read doses, not positions
    for text in warnings:
        log.info(text)
    return DVH(name, doses[order], volumes[order], bin_width, dose.unit_label, sampling, warnings)


def _given_factor(factor) -> int:
    value = int(factor)
    if value < 1:
        raise ValueError(f"the sampling factor must be ≥ 1, got {factor}")
    return value


def _contour_factor(factor, grid, areas_mm2, perimeters_mm, thickness_mm) -> tuple[int, float]:
    """The in-plane sampling factor f for contour planes of these areas, perimeters and slab
    thicknesses (mm), and the share of the volume within one sample of the contours at f."""
    areas, perimeters, thickness = (np.asarray(v, float) for v in (areas_mm2, perimeters_mm, thickness_mm))
    volume = float(np.sum(areas * thickness))
    if volume <= 0:
        return (1 if factor == "auto" else _given_factor(factor)), 0.0
    voxel_mm = math.sqrt(grid.spacing_xyz[0] * grid.spacing_xyz[1])
    share_at_1 = float(np.sum(perimeters * thickness)) * voxel_mm / volume
    if factor != "auto":
        f = _given_factor(factor)
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


def _small_warning(name: str, volume_cc: float, dose: Dose, how: str) -> list[str]:
    voxels = volume_cc / dose.grid.voxel_volume_cc
    if 0 < voxels < SMALL_STRUCTURE_VOXELS:
        spacing = " × ".join(f"{s:g}" for s in dose.grid.spacing_xyz)
        return [
            f"{name}: {volume_cc:.3g} cc is only {voxels:.0f} dose voxels ({spacing} mm); its DVH "
            f"depends on the dose grid ({how})"
        ]
    return []


def _outside_warning(name: str, inside: np.ndarray, volumes: np.ndarray) -> list[str]:
    if inside.all():
        return []
    outside_cc = float(volumes[~inside].sum())
    return [f"{name}: {outside_cc:.3g} cc lies outside the dose grid and is counted with dose 0"]


def _sample_contours(dose, planes, factor, slices, end_cap, name, cancel):
    grid = dose.grid
    if not planes:
        return np.zeros(0), np.zeros(0), "planar contours: no closed contour", []
    positions = np.array(sorted(planes))
    below, above, ends_below, ends_above = _slab_reaches(grid, positions, slices, end_cap, name)
    slabs = list(zip(below, above, strict=True))
    ends = np.r_[below[ends_below], above[ends_above]]
    pixel_mm2 = grid.spacing_xyz[0] * grid.spacing_xyz[1]
    areas = [abs(_polygon_area_even_odd(planes[z])) * pixel_mm2 for z in positions]
    perimeters = [_perimeter_mm(planes[z], grid) for z in positions]
    thickness = [(b + a) * grid.spacing_xyz[2] for b, a in slabs]
    f, share = _contour_factor(factor, grid, areas, perimeters, thickness)
    doses, inside_flags, volumes, sub_counts = [], [], [], []
    for z, (below, above), mm in zip(positions, slabs, thickness, strict=True):
        if cancel is not None and cancel.is_set():
            raise Cancelled("DVH computation cancelled")
        xs, ys, inside = _inside_samples(planes[z], f)
        if not inside.any():
            continue
        rows, columns = np.nonzero(inside)
        points = np.column_stack([xs[columns], ys[rows]])
        sub_planes = _sub_planes(f, mm, grid)
        sub_counts.append(sub_planes)
        for j in range(sub_planes):
            dz = -below + (below + above) * (j + 0.5) / sub_planes
            index = np.column_stack([points, np.full(len(points), z + dz)])
            values, ok = dose.sample(index)
            doses.append(values)
            inside_flags.append(ok)
            volumes.append(
                np.full(len(values), grid.voxel_volume_cc * (below + above) / (f * f * sub_planes))
            )
    doses = np.concatenate(doses) if doses else np.zeros(0)
    inside = np.concatenate(inside_flags) if inside_flags else np.zeros(0, bool)
    volumes = np.concatenate(volumes) if volumes else np.zeros(0)
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
    warnings = _small_warning(name, float(volumes.sum()), dose, "sampled below the voxel size")
    if not warnings and share > 2 * BOUNDARY_SHARE:
        warnings.append(
            f"{name}: sampled every {min(spacing):.2g} mm (finer costs more than the sampling "
            f"allows), {share:.0%} of its volume lies within one sample of its contours, where D98 "
            "and Dmin are set: those are less certain than Dmean"
        )
    warnings += _outside_warning(name, inside, volumes)
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


def _range_mm(values, grid) -> str:
    values = np.asarray(values, float) * grid.spacing_xyz[2]
    low, high = float(values.min()), float(values.max())
    return f"{low:.3g} mm" if high - low < 1e-3 else f"{low:.3g}–{high:.3g} mm"


def _range(counts) -> str:
    return str(min(counts)) if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}"


def _planes(grid, contours, name) -> dict[float, list[np.ndarray]]:
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


def _perimeter_mm(polygons, grid) -> float:
    """The summed length (mm) of a plane's contours, given in dose index units (x, y)."""
    scale = np.asarray(grid.spacing_xyz[:2])
    return float(sum(np.linalg.norm((np.roll(p, -1, axis=0) - p) * scale, axis=1).sum() for p in polygons))


def _polygon_area_even_odd(polygons) -> float:
    """Area (in index units²) of a plane's contours combined even-odd, for sizing the sampling
    (holes are approximated by the signed-area difference of nested contours)."""
    areas = sorted((abs(_shoelace(p)) for p in polygons), reverse=True)
    return areas[0] - sum(areas[1:]) if len(areas) > 1 else (areas[0] if areas else 0.0)


def _shoelace(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _inside_samples(polygons: list[np.ndarray], f: int):
    """Sample columns (xs) and rows (ys) in index units over the polygons' extent, and a bool
    (rows, columns) array: inside an odd number of polygons (half-open crossing rule)."""
    points = np.concatenate(polygons)
    lo = np.floor(points.min(axis=0)) - 1
    hi = np.ceil(points.max(axis=0)) + 1
    offsets = (np.arange(f) + 0.5) / f - 0.5  # sub-sample centres within a voxel
    xs = (np.arange(lo[0], hi[0] + 1)[:, None] + offsets).ravel()
    ys = (np.arange(lo[1], hi[1] + 1)[:, None] + offsets).ravel()
    x0, y0, x1, y1 = [], [], [], []
    for polygon in polygons:
        nxt = np.roll(polygon, -1, axis=0)
        x0.append(polygon[:, 0])
        y0.append(polygon[:, 1])
        x1.append(nxt[:, 0])
        y1.append(nxt[:, 1])
    x0, y0, x1, y1 = (np.concatenate(v) for v in (x0, y0, x1, y1))
    # rows crossed by each edge: ys in [min(y0, y1), max(y0, y1))
    low, high = np.minimum(y0, y1), np.maximum(y0, y1)
    first = np.searchsorted(ys, low, side="left")
    last = np.searchsorted(ys, high, side="left")
    counts = np.maximum(last - first, 0)
    edge = np.repeat(np.arange(len(x0)), counts)
    row = (
        np.concatenate([np.arange(a, b) for a, b in zip(first, last, strict=True)])
        if counts.sum()
        else np.zeros(0, int)
    )
    toggles = np.zeros((len(ys), len(xs) + 1), np.int32)
    if row.size:
        t = (ys[row] - y0[edge]) / (y1[edge] - y0[edge])
        x_cross = x0[edge] + t * (x1[edge] - x0[edge])
        column = np.searchsorted(xs, x_cross, side="right")  # first sample strictly right of it
        np.add.at(toggles, (row, column), 1)
    inside = (np.cumsum(toggles[:, :-1], axis=1) % 2).astype(bool)
    return xs, ys, inside


def _sample_mask(dose, mask: Mask, factor, name, cancel):
    """Samples at the centres of the mask's voxels, or at n_x × n_y × n_z points in each where a
    voxel spans more than a dose voxel along an axis (n = round(f × its span in dose voxels)).
    Past `SAMPLE_BUDGET` (a fine grid: 1,500 cc of 0.5 mm voxels is 12 million), voxels much
    smaller than a dose voxel are taken in blocks no larger than one, each sampled at the mean
    centre of its voxels in the mask and weighted by their count."""
    grid = dose.grid
    if mask.is_empty:
        return np.zeros(0), np.zeros(0), "empty mask", [f"{name}: empty structure"]
    f = 1 if factor == "auto" else _given_factor(factor)
    to_dose = np.linalg.inv(grid.affine) @ mask.grid.affine  # image index (x, y, z) → dose index
    span = np.abs(to_dose[:3, :3]).max(axis=0)  # dose voxels one image voxel spans, per image axis
    counts = [max(1, round(f * float(s))) for s in span]
    offsets = np.stack(
        np.meshgrid(*[(np.arange(n) + 0.5) / n - 0.5 for n in counts], indexing="ij"), axis=-1
    ).reshape(-1, 3)
    per_voxel = len(offsets)
    block = _mask_block(mask.voxel_count * per_voxel, span, counts) if factor == "auto" else (1, 1, 1)
    doses, inside_flags, weights = [], [], []
    rows = mask.array.shape[1] * mask.array.shape[2]
    chunk = block[0] * max(1, SAMPLE_BUDGET // 10 // max(1, per_voxel * rows * block[0]))
    for start in range(0, mask.array.shape[0], chunk):
        if cancel is not None and cancel.is_set():
            raise Cancelled("DVH computation cancelled")
        zyx, voxels = _block_centres(mask.array[start : start + chunk], block)
        if not len(zyx):
            continue
        centres = (zyx + np.asarray(mask.offset) + (start, 0, 0))[:, ::-1]
        points = (centres[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
        values, ok = dose.sample(points @ to_dose[:3, :3].T + to_dose[:3, 3])
        doses.append(values)
        inside_flags.append(ok)
        weights.append(np.repeat(voxels, per_voxel))
    doses = np.concatenate(doses)
    inside = np.concatenate(inside_flags)
    volumes = np.concatenate(weights) * (mask.grid.voxel_volume_cc / per_voxel)
    size = " × ".join(f"{s:.3g}" for s in mask.grid.spacing_xyz)
    where = "at its centre" if per_voxel == 1 else f"at {' × '.join(str(n) for n in counts)} points"
    sampling = f"mask on its {size} mm image grid, each voxel sampled {where}"
    if block != (1, 1, 1):
        points = "" if per_voxel == 1 else f", at {' × '.join(str(n) for n in counts)} points"
        sampling = (
            f"mask on its {size} mm image grid, in blocks of {' × '.join(str(b) for b in block[::-1])} "
            f"voxels (cost bound), each sampled at the mean centre of its voxels in the mask{points}"
        )
    warnings = _small_warning(name, float(volumes.sum()), dose, "sampled at its own voxels")
    warnings += _outside_warning(name, inside, volumes)
    return doses, volumes, sampling, warnings


def _mask_block(samples: int, span: np.ndarray, counts) -> tuple[int, int, int]:
    """Image voxels per block (z, y, x) that bring `samples` under `SAMPLE_BUDGET`, along the
    image axes (x, y, z) whose voxels are sampled once and span under half a dose voxel, a block
    no larger than a dose voxel; (1, 1, 1) when none is needed."""
    limits = [int(1 / s) if n == 1 and s < 0.5 else 1 for s, n in zip(span, counts, strict=True)]
    size = 1
    block = [1, 1, 1]
    while samples / math.prod(block) > SAMPLE_BUDGET and any(
        b < limit for b, limit in zip(block, limits, strict=True)
    ):
        size += 1
        block = [min(size, limit) for limit in limits]
    return tuple(block[::-1])


def _block_centres(array: np.ndarray, block: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """For blocks of `block` (z, y, x) voxels of a bool (z, y, x) array: the mean index of the
    True voxels of each block holding any, and how many they are."""
    if block == (1, 1, 1):
        zyx = np.argwhere(array)
        return zyx.astype(np.float64), np.ones(len(zyx), np.int64)
    padded = np.pad(array, [(0, -n % b) for n, b in zip(array.shape, block, strict=True)])
    shape = [padded.shape[0] // block[0], block[0], padded.shape[1] // block[1], block[1]]
    shape += [padded.shape[2] // block[2], block[2]]
    cells = padded.reshape(shape)
    voxels = cells.sum(axis=(1, 3, 5), dtype=np.int64)
    found = np.nonzero(voxels)
    counts = voxels[found]
    centres = np.empty((len(counts), 3))
    for k, (axis, size) in enumerate(((1, block[0]), (3, block[1]), (5, block[2]))):
        place = np.arange(size, dtype=np.float64).reshape([size if a == axis else 1 for a in range(6)])
        local = (cells * place).sum(axis=(1, 3, 5))[found] / counts
        centres[:, k] = found[k] * size + local
    return centres, counts


# -- plotting -----------------------------------------------------------------------------------


def write_table(
    dvhs: Sequence[DVH],
    path: str | os.PathLike,
    *,
    percents: Sequence[float] = (98, 95, 50, 2),
    cc: Sequence[float] = (),
    levels: Sequence[float] = (),
    dose_warnings: Sequence[str] = (),
) -> None:
    """A CSV of one row per DVH: volume, Dmean, Dmin, Dmax, D_x%, D_xcc, V_x (cc and %), how the
    structure was sampled, and its warnings, after `dose_warnings` (the dose file's: a per-fraction
    dose, relative doses), which hold for every row. Doses in the DVHs' unit (Gy, Gy(effective)
    or relative). A DVH with no volume has its row, numbers left blank, and its warnings say why
    (by default: a structure of points or open contours)."""
    unit = dvhs[0].units if dvhs else "Gy"
    header = ["structure", "volume_cc", f"Dmean_{unit}", f"Dmin_{unit}", f"Dmax_{unit}"]
    header += [f"D{p:g}%_{unit}" for p in percents] + [f"D{c:g}cc_{unit}" for c in cc]
    header += [f"V{level:g}{unit}_cc" for level in levels] + [f"V{level:g}{unit}_%" for level in levels]
    header += ["sampling", "warnings"]

    def write(target: Path) -> None:
        with open(target, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(header)
            for dvh in dvhs:
                if dvh.is_empty:
                    blank = [""] * (len(header) - 4)
                    why = dvh.warnings or ["no volume: no closed contours"]  # its own reason, if any
                    warnings = [*dose_warnings, *why]
                    writer.writerow([dvh.name, "0", *blank, dvh.sampling, " | ".join(warnings)])
                    continue
                row = [dvh.volume_cc, dvh.mean, dvh.min, dvh.max]
                row += [dvh.d_percent(p) for p in percents]
                # D_xcc of a structure smaller than x cc is undefined: blank, not 0 (it read as 0 Gy)
                larger = [c for c in cc if c > dvh.volume_cc * (1 + 1e-9)]
                row += [None if c in larger else dvh.d_cc(c) for c in cc]
                row += [dvh.v_gy(level) for level in levels] + [dvh.v_percent(level) for level in levels]
                warnings = [*dose_warnings, *dvh.warnings]
                if larger:
                    named = ", ".join(f"D{c:g}cc" for c in larger)
                    warnings.append(
                        f"{dvh.name}: {named} left blank: the structure is only {dvh.volume_cc:.3g} cc"
                    )
                cells = ["" if v is None else f"{v:.4f}" for v in row]
                writer.writerow([dvh.name, *cells, dvh.sampling, " | ".join(warnings)])

    write_atomically(path, write)


def plot_dvhs(
    dvhs: Sequence[DVH],
    *,
    colors: dict[str, tuple[int, int, int]] | None = None,
    relative=True,
    legend_beside: bool = False,
    legend: bool = True,
):
    """A matplotlib Figure of cumulative DVHs (volume in % when `relative`, else cc), its legend
    (unless not `legend`) where it hides least (for a file), or beside the axes with the layout
    redone at every size (`legend_beside`, for a window: this draws in about half the time)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), dpi=100, layout="constrained" if legend_beside else None)
    axes = figure.add_subplot()
    for dvh in dvhs:
        if dvh.is_empty:
            continue
        edges = dvh.bin_edges
        values = dvh.cumulative()
        if relative:
            values = 100 * values / dvh.volume_cc
        color = None
        if colors and dvh.name in colors:
            color = visible_on_white(tuple(c / 255 for c in colors[dvh.name]))
        axes.plot(edges, values, label=dvh.name, color=color, linewidth=1.5)
    axes.set_xlabel(f"Dose ({dvhs[0].units if dvhs else 'Gy'})")
    axes.set_ylabel("Volume (%)" if relative else "Volume (cc)")
    axes.set_ylim(bottom=0)
    axes.set_xlim(left=0)
    axes.grid(True, alpha=0.3)
    if legend and legend_beside:
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    elif legend:
        axes.legend(fontsize="small", loc="best")
    if not legend_beside:
        figure.tight_layout()
    return figure


def visible_on_white(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """A structure colour (0–1) darkened until it stands out on a white plot (a white or pale
    yellow BODY would draw an invisible curve); other colours unchanged."""
    luminance = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    if luminance <= 0.75:
        return rgb
    return tuple(c * 0.75 / luminance for c in rgb)
