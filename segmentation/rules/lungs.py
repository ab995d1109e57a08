"""Lung_L and Lung_R from a CT by rules, with the trachea and main bronchi left out.

1. Air inside the body (< `air_hu`, −400 HU) forms 3D components; lungs are those holding at least
   `min_lung_cc` of which under half is pure air (< −950 HU) — bowel gas is almost all pure air,
   parenchyma around −850 HU.
2. The airway is grown from the trachea: a small (≤ 8 cm²), central piece of pure air in the
   uppermost slices of the lung air. Growing in 3D through voxels below a threshold, the highest
   threshold (−980 … −880 HU) that does not leak into parenchyma (volume ≤ `max_airway_cc` and no
   sudden jump) is kept. Airway voxels, one voxel wider, are removed from the lungs.
3. The lungs are split where they still touch (anterior and posterior junction lines): an in-plane
   erosion of growing radius until two large parts appear, then every lung voxel goes to the
   nearer part. Parts are named by their side of the midline (LPS x, patient left is +x): the
   trachea's x, else the spine's (the densest column of bone), else the body's centre. Two parts
   on the same side (one lung cut in two by a tumour or the field of view) are one lung.
4. Holes up to `max_vessel_cm2` in each slice (vessels, intrapulmonary bronchi) are filled;
   larger ones (a tumour surrounded by lung) are not.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from planning.geometry import Grid
from planning.structures import bounding_box
from segmentation.rules import morphology as morph

log = logging.getLogger(__name__)

_THRESHOLDS_HU = (-980, -960, -940, -920, -900, -880)


def lung_masks(
    hu: np.ndarray,
    grid: Grid,
    body: np.ndarray,
    bones: np.ndarray | None = None,
    *,
    air_hu: float = -400.0,
    min_lung_cc: float = 30.0,
    max_airway_cc: float = 250.0,
    max_vessel_cm2: float = 3.0,
) -> dict[str, np.ndarray]:
    """{"Lung_L": mask, "Lung_R": mask} (boolean (z, y, x) masks; empty when no lung)."""
    spacing = grid.spacing_zyx
    voxel_cc = grid.voxel_volume_cc
    empty = {"Lung_L": np.zeros(hu.shape, bool), "Lung_R": np.zeros(hu.shape, bool)}
    air = body & (hu < air_hu)
    labels, sizes = morph.components(air)
    pure = np.bincount(labels.ravel(), weights=(hu < -950).ravel(), minlength=sizes.size)
    is_lung = (sizes * voxel_cc >= min_lung_cc) & (pure < 0.5 * sizes)
    is_lung[0] = False
    if not is_lung.any():
        return empty
    lungs = is_lung[labels]
    box = _box(lungs, margin=2)
    lungs, sub_hu = lungs[box], hu[box]

    superior_high = grid.direction[2, 2] >= 0  # z index grows toward the head
    airway = _airway(sub_hu, lungs, spacing, voxel_cc, max_airway_cc, superior_high)
    not_airway = ~morph.dilate(airway, (1, 1, 1)) if airway is not None else np.ones_like(lungs)
    lungs &= not_airway
    parts = _split(lungs, spacing)
    offset = np.array([s.start for s in box], dtype=float)
    midline = _midline_x(grid, airway, offset, bones, body)
    result = {name: np.zeros(hu.shape, bool) for name in empty}
    max_hole = int(max_vessel_cm2 * 100 / (spacing[1] * spacing[2]))
    for part in parts:
        centre_zyx = np.array(ndi.center_of_mass(part)) + offset
        name = "Lung_L" if grid.index_to_patient(centre_zyx[::-1])[0] > midline else "Lung_R"
        result[name][box] |= morph.fill_holes_in_plane(part, max_area_px=max_hole) & not_airway
    return result


def _box(mask: np.ndarray, margin: int) -> tuple[slice, slice, slice]:
    """The mask's bounding box grown by `margin` voxels (within the array)."""
    return tuple(
        slice(max(s.start - margin, 0), min(s.stop + margin, n))
        for s, n in zip(bounding_box(mask), mask.shape, strict=True)
    )


def _trachea_seed(hu, lungs, spacing, superior_high: bool) -> tuple[int, int, int] | None:
    """A voxel inside the trachea: a small piece of pure air, central between the lungs' sides,
    in the uppermost 6 cm of the lung air."""
    pixel_cm2 = spacing[1] * spacing[2] / 100
    slices = np.flatnonzero(lungs.any(axis=(1, 2)))
    columns = np.flatnonzero(lungs.any(axis=(0, 1)))
    centre_x, half_width = (columns[0] + columns[-1]) / 2, (columns[-1] - columns[0]) / 2
    top_first = slices[::-1] if superior_high else slices
    for z in top_first[: max(3, int(60 / spacing[0]))]:
        pieces, count = ndi.label(lungs[z] & (hu[z] < -900))
        if count == 0:
            continue
        areas = np.bincount(pieces.ravel())[1:] * pixel_cm2
        centres = ndi.center_of_mass(pieces > 0, pieces, range(1, count + 1))
        for (_, cx), area, label in zip(centres, areas, range(1, count + 1), strict=True):
            if 0.5 <= area <= 8.0 and abs(cx - centre_x) < half_width / 3:
                ys, xs = np.nonzero(pieces == label)
                return int(z), int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    return None


def _airway(hu, lungs, spacing, voxel_cc, max_airway_cc, superior_high) -> np.ndarray | None:
    seed = _trachea_seed(hu, lungs, spacing, superior_high)
    if seed is None:
        return None
    best, best_volume = None, 0.0
    for threshold in _THRESHOLDS_HU:
        labels, _ = ndi.label(lungs & (hu < threshold))
        value = labels[seed]
        if value == 0:
            continue
        grown = labels == value
        volume = grown.sum() * voxel_cc
        if volume > max_airway_cc or (best is not None and volume > 2.5 * best_volume + 20):
            break
        best, best_volume = grown, volume
    if best is not None:
        log.debug("airway: %.0f cc grown from the trachea at %s", best_volume, seed)
    return best


def _split(lungs: np.ndarray, spacing) -> list[np.ndarray]:
    """The lungs as one or two parts (see the module's step 3)."""
    labels, sizes = morph.components(lungs)
    order = np.argsort(sizes)[::-1]
    if sizes[order[0]] == 0:
        return []
    big = [v for v in order[:2] if sizes[v] >= max(0.1 * sizes[order[0]], 1)]
    if len(big) == 2:
        return [labels == big[0], labels == big[1]]
    for radius_mm in (2, 4, 6, 8, 10, 12):
        radius = morph.radius_voxels(radius_mm, spacing)
        eroded = morph.erode(lungs, (0, max(radius[1], 1), max(radius[2], 1)))
        labels, sizes = morph.components(eroded)
        order = np.argsort(sizes)[::-1]
        if len(order) > 2 and sizes[order[1]] >= 0.1 * sizes[order[0]]:
            seeds = np.zeros(lungs.shape, np.int8)
            seeds[labels == order[0]] = 1
            seeds[labels == order[1]] = 2
            _, nearest = ndi.distance_transform_edt(seeds == 0, sampling=spacing, return_indices=True)
            owner = seeds[tuple(nearest)]
            return [lungs & (owner == 1), lungs & (owner == 2)]
    return [lungs]


def _midline_x(grid: Grid, airway, offset, bones, body) -> float:
    """LPS x (mm) of the patient's midline (see the module's step 3)."""
    if airway is not None and airway.any():
        centre = np.array(ndi.center_of_mass(airway)) + offset
    elif bones is not None and bones.any():
        profile = ndi.uniform_filter1d(
            bones.sum(axis=(0, 1)).astype(float), int(30 / grid.spacing_xyz[0]) | 1
        )
        rows = np.flatnonzero(bones.any(axis=(0, 2)))
        centre = np.array([bones.shape[0] / 2, (rows[0] + rows[-1]) / 2, float(np.argmax(profile))])
    else:
        centre = np.array(ndi.center_of_mass(body))
    return float(grid.index_to_patient(centre[::-1])[0])
