"""Seeded lesion delineation: a click inside a tumour (optionally clicks outside) → a 3D mask.

Intensity alone rarely separates a tumour from what touches it (chest wall, pleural effusion,
atelectasis and tumour are all 0–80 HU). Shape does: where two soft-tissue regions meet, the
region they form narrows. So the lesion is the catchment basin of the click in a watershed of
the distance to the edge of the soft-tissue region:

1. a box reaching `roi_mm` beyond the inside clicks (outside clicks beyond it are ignored) is
   reduced to about 2 mm voxels and smoothed (σ 1 mm);
2. "lesion-like" voxels are those within max(3 σ, 100 HU) of the median around the click; on an
   image whose values are not HU (an MR, on its scanner's own scale) the 100 HU floor is the
   same share of the image's 1st–99th percentile span as 100 HU is of a CT's (1/14), so the
   result does not depend on the scale of the values;
3. their distance to the region's edge (mm) is flooded from its maxima (ITK's morphological
   watershed, dynamics below `level_mm` merged): the click's basin is the lesion. An outside
   click touching it seeds a competing flood (from the largest ball around each click), so a
   region still joined to the lesion is cut where the region narrows between the clicks; a
   click in a broad continuation of the lesion removes only its own surroundings;
4. holes in each slice (air bronchograms, necrosis) are filled, except holes holding an outside
   click, the surface is placed at full resolution within one reduced voxel, and the connected
   piece holding the inside click(s) is kept.

About a second on a CPU for a 10 cm lesion (the work is bounded by the box, not the image).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
import SimpleITK as sitk

from planning.errors import Cancelled, DelineoError
from planning.structures import Mask
from planning.volume import Volume, typical_range, values_are_hu
from segmentation.rules import morphology as morph

Point = tuple[int, int, int]

#: Least half-width of the window of lesion-like values on a CT (HU): about the contrast between
#: soft tissue and fat.
FLOOR_HU = 100.0
#: A CT's 1st–99th percentile span: air (−1000 HU) to dense tissue and bone (about +400 HU);
#: 1428 HU on the IBSI-1 lung CT. On other images the floor is FLOOR_HU / CT_SPAN_HU of theirs.
CT_SPAN_HU = 1400.0


def delineate(
    volume: Volume,
    inside: Point | Sequence[Point],
    outside: Sequence[Point] = (),
    *,
    roi_mm: float = 90.0,
    level_mm: float = 2.0,
    on_progress: Callable[[str, float, float], None] | None = None,
    cancel: threading.Event | None = None,
) -> Mask:
    """The lesion around voxel(s) `inside` ((z, y, x) indices), not reaching voxels `outside`.

    The lesion is sought in a box reaching `roi_mm` beyond the inside clicks along each axis.
    Outside clicks beyond that box are ignored: the lesion cannot reach them, and the box is not
    grown to hold them (a click across the image would make the work the whole image's).
    """
    inside = _points(inside, volume, "inside")
    outside = _points(outside, volume, "outside")
    if not inside:
        raise DelineoError("seeded delineation needs at least one click inside the lesion")
    on_progress = on_progress or (lambda stage, done, total: None)
    stage = "Delineating lesion"
    on_progress(stage, 0, 3)
    spacing = np.asarray(volume.grid.spacing_zyx, float)
    box = _roi(inside, volume.shape, spacing, roi_mm)
    origin = np.array([s.start for s in box])
    outside = [p for p in outside if all(s.start <= v < s.stop for v, s in zip(p, box, strict=True))]
    factors = tuple(max(1, int(round(2.0 / s))) for s in spacing)
    low_spacing = spacing * factors
    hu = volume.array[box]
    low = _smooth(morph.block_mean(hu, factors), low_spacing)
    to_low = [tuple((np.asarray(p) - origin) // factors) for p in inside + outside]
    seeds_in, seeds_out = to_low[: len(inside)], to_low[len(inside) :]
    window = _window(low, seeds_in, _floor(volume))
    lesion_like = (low > window[0]) & (low < window[1])
    _check(cancel)
    on_progress(stage, 1, 3)

    lesion = _basins(lesion_like, low_spacing, seeds_in, seeds_out, level_mm)
    _check(cancel)
    on_progress(stage, 2, 3)

    lesion = _fill_holes_except(morph.closing(lesion, (0, 1, 1)), seeds_out)
    lesion = _component_of(lesion, seeds_in)
    core = morph.block_expand(morph.erode(lesion, (0, 1, 1)), factors, hu.shape)
    near = morph.block_expand(morph.dilate(lesion, (0, 1, 1)), factors, hu.shape)
    full_smooth = _smooth(hu.astype(np.float32), spacing)
    full = core | (near & (full_smooth > window[0]) & (full_smooth < window[1]))
    full = _fill_holes_except(full, [tuple(np.asarray(p) - origin) for p in outside])
    # The refinement can leave specks of lesion-like voxels beside the lesion: keep its own piece.
    full = _component_of(full, [tuple(np.asarray(p) - origin) for p in inside])
    on_progress(stage, 3, 3)
    return _mask(volume, full, origin)


def _mask(volume: Volume, array: np.ndarray, origin: np.ndarray) -> Mask:
    from planning.structures import bounding_box

    inner = bounding_box(array)
    if inner is None:
        return Mask(volume.grid)
    offset = tuple(int(o + s.start) for o, s in zip(origin, inner, strict=True))
    return Mask(volume.grid, np.ascontiguousarray(array[inner]), offset)


def _points(points, volume: Volume, what: str) -> list[Point]:
    array = np.asarray(points, dtype=float).reshape(-1, 3) if len(points) else np.zeros((0, 3))
    result = []
    for point in np.round(array).astype(int):
        if np.any(point < 0) or np.any(point >= volume.shape):
            raise DelineoError(f"the {what} click {tuple(point)} lies outside the image {volume.shape}")
        result.append(tuple(int(v) for v in point))
    return result


def _roi(points, shape, spacing, roi_mm) -> tuple[slice, slice, slice]:
    points = np.asarray(points)
    reach = np.ceil(roi_mm / spacing).astype(int)
    low = np.maximum(points.min(axis=0) - reach, 0)
    high = np.minimum(points.max(axis=0) + reach + 1, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


def _smooth(array: np.ndarray, spacing, sigma_mm: float = 1.0) -> np.ndarray:
    image = sitk.GetImageFromArray(array.astype(np.float32, copy=False))
    image.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    return sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, sigma_mm))


def _floor(volume: Volume) -> float:
    """Least half-width of the lesion-like window in the image's units: `FLOOR_HU` on a CT; on
    an image whose values are not HU, the same share of its own 1st–99th percentile span (from
    a sample of about 2 M voxels), which scales with its values."""
    if values_are_hu(volume.modality):
        return FLOOR_HU
    low, high = typical_range(volume.array)
    span = (high - low) or float(volume.array.max() - volume.array.min())
    return FLOOR_HU * span / CT_SPAN_HU if span > 0 else 1.0


def _window(low: np.ndarray, seeds, floor: float) -> tuple[float, float]:
    """Lesion-like intensities: the median around the clicks ± max(3 σ, `floor`)."""
    samples = np.concatenate(
        [
            low[max(z - 1, 0) : z + 2, max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3].ravel()
            for z, y, x in seeds
        ]
    )
    centre, spread = float(np.median(samples)), float(samples.std())
    half = max(3.0 * spread, floor)
    return centre - half, centre + half


def _basins(lesion_like, spacing, seeds_in, seeds_out, level_mm) -> np.ndarray:
    """The watershed basins (of the distance to the region's edge) holding the inside clicks.

    Outside clicks in them split them: a marker-based watershed of the same relief, seeded by
    the largest ball inside the region at each click (inside → lesion, outside → not), so a
    click claims its whole neighbourhood and the cut falls where the region narrows between.
    """
    region = sitk.GetImageFromArray(lesion_like.astype(np.uint8))
    region.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    depth = sitk.SignedMaurerDistanceMap(
        region, insideIsPositive=True, squaredDistance=False, useImageSpacing=True
    )
    relief = sitk.InvertIntensity(sitk.Cast(sitk.Clamp(depth, lowerBound=0.0), sitk.sitkFloat32), maximum=0.0)
    labels = sitk.GetArrayFromImage(
        sitk.MorphologicalWatershed(relief, level=level_mm, markWatershedLine=False)
    )
    chosen = {int(labels[p]) for p in seeds_in}
    lesion = np.isin(labels, list(chosen)) & lesion_like
    distance = sitk.GetArrayFromImage(depth)
    balls = [_inscribed_ball(lesion_like.shape, p, float(distance[p]), spacing) for p in seeds_out]
    if not any((ball & lesion).any() for ball in balls):
        return lesion
    markers = np.zeros(lesion_like.shape, np.uint8)
    markers[lesion_like & ~lesion] = 2
    for ball in balls:
        markers[ball] = 2
    for seed in seeds_in:
        markers[_inscribed_ball(lesion_like.shape, seed, float(distance[seed]), spacing)] = 1
    markers[~lesion_like] = 0
    marker_image = sitk.GetImageFromArray(markers)
    marker_image.CopyInformation(relief)
    split = sitk.MorphologicalWatershedFromMarkers(relief, marker_image, markWatershedLine=False)
    return (sitk.GetArrayFromImage(split) == 1) & lesion_like


def _inscribed_ball(shape, centre, radius_mm: float, spacing) -> np.ndarray:
    """Voxels within 0.8 × `radius_mm` of `centre` (at least the centre itself)."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    squared = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing, strict=True))
    return squared <= max(0.8 * radius_mm, 1e-6) ** 2


def _fill_holes_except(mask: np.ndarray, seeds_out) -> np.ndarray:
    """Holes filled slice by slice, except holes holding an outside click (and the clicks)."""
    filled = morph.fill_holes_in_plane(mask)
    for z, y, x in seeds_out:
        if filled[z, y, x] and not mask[z, y, x]:
            from scipy import ndimage as ndi

            holes, _ = ndi.label(filled[z] & ~mask[z])
            filled[z][holes == holes[y, x]] = False
        filled[z, y, x] = False
    return filled


def _component_of(mask: np.ndarray, seeds) -> np.ndarray:
    from scipy import ndimage as ndi

    labels, _ = ndi.label(mask)
    keep = {int(labels[p]) for p in seeds} - {0}
    return np.isin(labels, list(keep)) if keep else mask


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("seeded delineation cancelled")
