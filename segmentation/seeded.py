"""Seeded lesion delineation: a click inside a tumour (optionally clicks outside) → a 3D mask.

Intensity alone rarely separates a tumour from what touches it (chest wall, pleural effusion,
atelectasis and tumour are all 0–80 HU). Shape does: where two soft-tissue regions meet, the
region they form narrows. So the lesion is the catchment basin of the click in a watershed of
the distance to the edge of the soft-tissue region:

1. a box reaching `roi_mm` beyond the inside clicks (outside clicks beyond it are ignored) is
   reduced to about 2 mm voxels and smoothed (σ 1 mm);
2. a click on a CT in air or lung is moved to the nearest soft tissue within `SNAP_MM` (an air
   bronchogram in a tumour), and the pocket it was on counts as lesion, or it is refused;
   "lesion-like" voxels are those within max(3 σ, 100 HU) of a quantile (`QUANTILES`) of the
   values within `SAMPLE_MM` of the click: a centimetre of the lesion's texture, not the few
   voxels under the click. On an image whose values are not HU (an MR, on its scanner's own
   scale) the 100 HU floor is the same share of the image's 1st–99th percentile span as 100 HU
   is of a CT's (1/14), so the result does not depend on the scale of the values;
3. their distance to the region's edge (mm) is flooded from its maxima (ITK's morphological
   watershed, dynamics below `level_mm` merged): the click's basin is the lesion. Of the
   windows, the smallest lesion that is compact (`BULK_MAX`) is kept: a window reaching a
   neighbouring organ's values (liver, muscle) floods it, one missing part of the lesion's breaks
   it into specks. An outside click touching it seeds a competing flood (from the largest ball
   around each click, short of the lesion's core: the largest ball in the inside click's
   basin), so a region still joined to the lesion is cut where the region narrows between the
   clicks, and an outside click can take away only what lies beyond the core;
4. holes in each slice (air bronchograms, necrosis) are filled, except holes holding an outside
   click; parts far from the lesion's core thinner than a share of its largest ball are cut
   with what lies beyond them (a lesion is compact: a thin bridge to a far region, a vessel
   running away from it, is a leak); the surface is placed at full resolution within one
   reduced voxel (where values cross half-way between the lesion's and those of what surrounds
   it), and the connected piece holding the inside click(s) is kept.

Under a second on a CPU for a 10 cm lesion (0.6–0.8 s on 2 cores for the IBSI-1 GTV; the work is
bounded by the box, not the image).
Doubts (the lesion reaches the box's edge, or is far larger than the ball around the click) are
returned as warnings for the user.
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
#: Below this a CT click is on air or lung, not soft tissue (HU; fat is about −100, lung −850).
LEAST_SOFT_TISSUE_HU = -250.0
#: How far a click on air or lung is moved to the nearest soft tissue (mm): an air bronchogram or
#: a fleck of lung inside a tumour.
SNAP_MM = 5.0
#: Radius of the sample of values around a click that sets the lesion-like window (mm).
SAMPLE_MM = 15.0
#: Quantiles of the values around the clicks on which candidate windows are centred (%).
QUANTILES = (10, 25, 50, 75, 90)
#: Most volume a lesion may have per volume of the largest ball inside it (a ball: 1; the
#: IBSI-1 GTV: about 4): more, and it is in pieces or has flooded what it touches.
BULK_MAX = 8.0
#: Thinnest part of a lesion kept far from its core, as a share of the radius of the largest
#: ball inside it: thinner parts beyond `CORE_REACH` are strands (vessels, bridges to what the
#: lesion touches) and what lies beyond them, not lesion.
STRAND_SHARE = 0.25
#: How far from the centre of its largest ball a lesion is kept whatever its shape, in radii of
#: that ball: a tumour's own lobes and spicules lie within.
CORE_REACH = 1.5
#: Most steps of the climb from a click's value to its tissue's most common value (one step
#: moves up to `FLOOR_HU`-sized windows' width; 10 cross any CT's soft-tissue range).
MODE_STEPS = 10


def delineate(
    volume: Volume,
    inside: Point | Sequence[Point],
    outside: Sequence[Point] = (),
    *,
    roi_mm: float = 90.0,
    level_mm: float = 2.0,
    on_progress: Callable[[str, float, float], None] | None = None,
    cancel: threading.Event | None = None,
    warnings: list[str] | None = None,
) -> Mask:
    """The lesion around voxel(s) `inside` ((z, y, x) indices), not reaching voxels `outside`.

    The lesion is sought in a box reaching `roi_mm` beyond the inside clicks along each axis.
    Outside clicks beyond that box are ignored: the lesion cannot reach them, and the box is not
    grown to hold them (a click across the image would make the work the whole image's).
    Doubts about the result (it reaches the box's edge, or it is far larger than the ball it grew
    from) are appended to `warnings`, in words for the user. A click on a CT in air or lung (no
    soft tissue within `SNAP_MM`) raises DelineoError.
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
    clicked = seeds_in
    if values_are_hu(volume.modality):
        seeds_in = [_snap(low, low_spacing, seed, LEAST_SOFT_TISSUE_HU) for seed in seeds_in]
    least = LEAST_SOFT_TISSUE_HU if values_are_hu(volume.modality) else -np.inf
    moved = [click for click, seed in zip(clicked, seeds_in, strict=True) if click != seed]
    windows = _windows(low, low_spacing, seeds_in, _floor(volume), least, moved=bool(moved))
    _check(cancel)
    on_progress(stage, 1, 3)

    found = []
    for low_end, high_end in windows:
        lesion_like = (low > low_end) & (low < high_end)
        lesion_like |= _pockets(lesion_like, low_spacing, moved)
        lesion = _basins(lesion_like, low_spacing, seeds_in, seeds_out, level_mm)
        found.append((_bulk(lesion, low_spacing), (low_end, high_end), lesion))
    # The smallest compact lesion: a window reaching an organ's values lets the lesion flood it
    # (larger), one missing part of the lesion's values breaks it into specks (not compact).
    compact = [f for f in found if f[0] <= BULK_MAX] or [min(found, key=lambda f: f[0])]
    _, window, lesion = min(compact, key=lambda f: np.count_nonzero(f[2]))
    _check(cancel)
    on_progress(stage, 2, 3)

    lesion = _fill_holes_except(morph.closing(lesion, (0, 1, 1)), seeds_out)
    lesion = _without_strands(_component_of(lesion, seeds_in), low_spacing, seeds_in)
    core = morph.block_expand(morph.erode(lesion, (0, 1, 1)), factors, hu.shape)
    near = morph.block_expand(morph.dilate(lesion, (0, 1, 1)), factors, hu.shape)
    full_smooth = _smooth(hu.astype(np.float32), spacing)
    low_end, high_end = _edge_window(low, lesion, window)
    full = core | (near & (full_smooth > low_end) & (full_smooth < high_end))
    full = _fill_holes_except(full, [tuple(np.asarray(p) - origin) for p in outside])
    # The refinement can leave specks of lesion-like voxels beside the lesion: keep its own piece.
    full = _component_of(full, [tuple(np.asarray(p) - origin) for p in inside])
    if warnings is not None:
        warnings.extend(_doubts(full, lesion, low_spacing))
    on_progress(stage, 3, 3)
    return _mask(volume, full, origin)


def _without_strands(lesion: np.ndarray, spacing, seeds) -> np.ndarray:
    """`lesion` less its strands: the parts farther than `CORE_REACH` radii of its largest ball
    from that ball's centre that a ball of `STRAND_SHARE` of its radius cannot enter (an opening
    limited to parts far from the core), and all they alone joined to it. A lesion is compact;
    a thin bridge to a far region is a leak. Unchanged when a click lies in a strand."""
    depth = _distance_to(~lesion, spacing)
    centre = np.unravel_index(int(np.argmax(depth)), depth.shape)
    radius = float(depth[centre])
    if radius == 0:
        return lesion
    thin = STRAND_SHARE * radius
    opened = _distance_to(depth > thin, spacing) <= thin
    kept = lesion & (opened | (_distance_mm(lesion.shape, centre, spacing) <= CORE_REACH * radius))
    return _component_of(kept, [centre]) if all(kept[seed] for seed in seeds) else lesion


def _edge_window(low: np.ndarray, lesion: np.ndarray, window: tuple[float, float]) -> tuple[float, float]:
    """The window of values within which the lesion's surface is placed at full resolution:
    `window` widened, on each side where the lesion is surrounded by darker (lung, air) or
    brighter values, to half-way between the lesion's median value and theirs: where a blurred
    step between them crosses, the surface. (Placed where values leave `window`, a 15 mm ball in
    lung came out 1 mm too small all round: Dice 0.88.) `low`: the reduced image; `lesion`: the
    lesion in it; what surrounds it: the second ring of reduced voxels around it in each slice
    (about 4 mm out; the first holds the blurred edge's own values)."""
    low_end, high_end = window
    if not lesion.any():
        return low_end, high_end
    beyond = morph.dilate(lesion, (0, 2, 2)) & ~morph.dilate(lesion, (0, 1, 1))
    value = float(np.median(low[lesion]))
    darker, brighter = low[beyond & (low <= low_end)], low[beyond & (low >= high_end)]
    if darker.size:
        low_end = min(low_end, (value + float(np.median(darker))) / 2)
    if brighter.size:
        high_end = max(high_end, (value + float(np.median(brighter))) / 2)
    return low_end, high_end


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


def _windows(
    low: np.ndarray, spacing, seeds, floor: float, least: float, *, moved: bool
) -> list[tuple[float, float]]:
    """Candidate lesion-like intensities, one window q ± max(3 σ, `floor`) per quantile q
    (`QUANTILES`) of the values within `SAMPLE_MM` of the clicks that belong to the clicks'
    tissue (σ from their median absolute deviation): the values above `least` within 2 `floor`
    of the clicks' own, or, for clicks `moved` off air or lung onto the rim of soft tissue
    (whose values are the rim's partial volume), of the mode reached from them (`_tissue`)."""
    values = np.concatenate([low[_ball(low.shape, seed, SAMPLE_MM, spacing)] for seed in seeds])
    values = values[values > least]
    centre = float(np.median([low[s] for s in seeds]))
    if moved:
        centre = _tissue(values, centre, 2.0 * floor)
    values = values[np.abs(values - centre) <= 2.0 * floor]
    centre = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - centre)))
    half = max(3.0 * spread, floor)
    return [(float(q) - half, float(q) + half) for q in np.percentile(values, QUANTILES)]


def _tissue(values: np.ndarray, start: float, reach: float) -> float:
    """The most common value near `start`: the median of the values within `reach` of it, taken
    again from there until it settles (a median shift). A click on a fleck of lung, a vessel or
    the edge of a tumour starts from a value the lesion seldom has; the climb ends at the value
    most of the tissue around the click has, whatever the click's own."""
    centre = start
    for _ in range(MODE_STEPS):
        near = values[np.abs(values - centre) <= reach]
        if not near.size or abs(float(np.median(near)) - centre) < 1e-3 * reach:
            break
        centre = float(np.median(near))
    return centre


def _bulk(lesion: np.ndarray, spacing) -> float:
    """A lesion's volume over that of the largest ball inside it: 1 for a ball, about 2–3 for a
    tumour, 5 and more once it has leaked into an organ."""
    if not lesion.any():
        return np.inf
    radius = float(_depth(lesion, spacing).max())
    return float(lesion.sum() * np.prod(spacing)) / (4.0 / 3.0 * np.pi * max(radius, 1e-6) ** 3)


def _doubts(full: np.ndarray, lesion: np.ndarray, spacing) -> list[str]:
    """What makes a lesion doubtful, in words for the user: `full` in the working box, `lesion`
    the same reduced to `spacing` (mm)."""
    doubts = []
    faces = [np.take(full, i, axis=a) for a in range(3) for i in (0, -1)]
    if any(face.any() for face in faces):
        doubts.append(
            "the lesion reaches the edge of the region searched: it may go on beyond it, or "
            "have run into what it touches — check it, or Ctrl+click outside it"
        )
    radius = float(_depth(lesion, spacing).max())
    ball_cc = 4.0 / 3.0 * np.pi * radius**3 / 1000.0
    volume_cc = float(np.count_nonzero(lesion) * np.prod(spacing)) / 1000.0
    if volume_cc > BULK_MAX * ball_cc:
        doubts.append(
            f"the lesion ({volume_cc:.0f} cc) is over {BULK_MAX:.0f} times the ball around the "
            f"click ({ball_cc:.0f} cc): it may have run into what it touches — check it, or "
            "Ctrl+click outside it"
        )
    return doubts


def _depth(lesion_like: np.ndarray, spacing) -> np.ndarray:
    """Each voxel's distance to the edge of `lesion_like` (mm; 0 outside it)."""
    return _clipped_distance(lesion_like, spacing, inside_is_positive=True)


def _distance_to(mask: np.ndarray, spacing) -> np.ndarray:
    """Each voxel's distance to the nearest voxel of `mask` (mm; 0 in it)."""
    return _clipped_distance(mask, spacing, inside_is_positive=False)


def _clipped_distance(mask: np.ndarray, spacing, inside_is_positive: bool) -> np.ndarray:
    """ITK's signed Maurer distance to the edge of `mask` (mm, `spacing` z, y, x), positive
    inside or outside it as asked, the other side 0."""
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    distance = sitk.SignedMaurerDistanceMap(
        image, insideIsPositive=inside_is_positive, squaredDistance=False, useImageSpacing=True
    )
    return np.clip(sitk.GetArrayFromImage(distance), 0, None)


def _deepest(depth: np.ndarray, basin: np.ndarray) -> Point:
    """The voxel of `basin` deepest in `depth`: the centre of the largest ball inside it."""
    deepest = np.unravel_index(int(np.argmax(np.where(basin, depth, -np.inf))), depth.shape)
    return tuple(int(v) for v in deepest)


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
    # The lesion's own marker is the largest ball in each inside click's basin (the lesion's
    # core, wherever in it the click fell: steepest ascent from a click in a lobe stops at the
    # lobe's own small ball); an outside click's ball stops short of it, so an outside click can
    # take away what lies beyond the core, never the core itself.
    cores = [_deepest(distance, labels == labels[seed]) for seed in seeds_in]
    shape = lesion_like.shape
    core = np.zeros(shape, bool)
    for centre in cores:
        core |= _inscribed_ball(shape, centre, float(distance[centre]), spacing)
    balls = []
    for point in seeds_out:
        gap = min(float(_distance_mm(shape, point, spacing)[c]) - float(distance[c]) for c in cores)
        balls.append(_inscribed_ball(shape, point, min(float(distance[point]), gap), spacing))
    if not any((ball & lesion).any() for ball in balls):
        return lesion
    markers = np.zeros(shape, np.uint8)
    markers[lesion_like & ~lesion] = 2
    for ball in balls:
        markers[ball] = 2
    for seed in seeds_in:
        markers[_inscribed_ball(shape, seed, float(distance[seed]), spacing)] = 1
    markers[core] = 1
    markers[~lesion_like] = 0
    marker_image = sitk.GetImageFromArray(markers)
    marker_image.CopyInformation(relief)
    split = sitk.MorphologicalWatershedFromMarkers(relief, marker_image, markWatershedLine=False)
    return (sitk.GetArrayFromImage(split) == 1) & lesion_like


def _inscribed_ball(shape, centre, radius_mm: float, spacing) -> np.ndarray:
    """Voxels within 0.8 × `radius_mm` of `centre` (at least the centre itself)."""
    return _ball(shape, centre, max(0.8 * radius_mm, 1e-6), spacing)


def _ball(shape, centre, radius_mm: float, spacing) -> np.ndarray:
    """Voxels of an array of `shape` within `radius_mm` of voxel `centre` ((z, y, x), mm)."""
    return _distance_mm(shape, centre, spacing) <= radius_mm


def _distance_mm(shape, centre, spacing) -> np.ndarray:
    """Each voxel's distance to voxel `centre` (mm)."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing, strict=True)))


def _snap(low: np.ndarray, spacing, seed, least: float) -> Point:
    """The voxel nearest `seed` within `SNAP_MM` whose value is above `least` (the seed itself
    if it is): a click on an air bronchogram or a lung fleck inside a tumour means the tumour.
    Refused when there is none: the click is in lung or air, not on a lesion."""
    if low[seed] > least:
        return seed
    distance = _distance_mm(low.shape, seed, spacing)
    distance[(low <= least) | (distance > SNAP_MM)] = np.inf
    nearest = np.unravel_index(int(np.argmin(distance)), low.shape)
    if not np.isfinite(distance[nearest]):
        raise DelineoError(
            f"the click lies in lung or air ({low[seed]:.0f} HU, nothing above {least:.0f} HU "
            f"within {SNAP_MM:.0f} mm): click inside the lesion"
        )
    return tuple(int(v) for v in nearest)


def _pockets(lesion_like: np.ndarray, spacing, clicks) -> np.ndarray:
    """The pockets of other values (air, lung, necrosis) holding `clicks` that were moved onto
    soft tissue (`_snap`): what is not lesion-like within `SNAP_MM` of each, joined to it. The
    click means the pocket lies inside the lesion; left out, it would hollow the lesion's
    distance to its edge, and the hollowed lesion merge with what touches it."""
    from scipy import ndimage as ndi

    pockets = np.zeros(lesion_like.shape, bool)
    for click in clicks:
        labels, _ = ndi.label(~lesion_like & _ball(lesion_like.shape, click, SNAP_MM, spacing))
        if labels[click]:
            pockets |= labels == labels[click]
    return pockets


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
