"""External/BODY from a CT by rules: the patient, without couch and immobilisation devices, with
internal air (lungs, airways, bowel gas) filled.

1. The CT is block-averaged to about 2 mm voxels (the slow steps run there).
2. Tissue is HU > `core_hu` (−200: fat and denser). The couch's foam core and shells, blankets
   and thermoplastic masks are thin or less dense; an in-plane opening of `opening_mm` cuts the
   thin bridges where they touch the skin. Components under `min_fraction` of the largest (couch
   rails, markers, devices) are dropped; arms and legs, large enough, stay.
3. Air is filled slice by slice: background not reaching the image edge is inside. Background
   that reaches the edge is outside air, unless less than `outside_air_fraction` of it is pure
   air (< −950 HU): that is lung cut off by a small field of view, which stays inside.
4. At full resolution the skin surface is placed at HU > `skin_hu` (−500, halfway between fat and
   air) within one reduced voxel of the reduced body.
5. Where the patient lies directly on the couch, the couch top is found in each slice as the
   first row (the couch is at the bottom of the image, high row index: `RuleModel` turns the
   image so, see `segmentation.rules.model.working_orientation`) near the body's lowest row where
   dense material (> −700 HU) outside the body runs horizontally over at least
   `couch_run_fraction` of the body's width; nothing at or below the couch top is body.
"""

from __future__ import annotations

import numpy as np

from segmentation.rules import morphology as morph

#: Working voxel size of the reduced volume (mm).
WORK_SPACING_MM = 2.0
#: The couch top is looked for this far (mm) above the body's lowest row, and below.
COUCH_SEARCH_MM = 10.0


def reduction_factors(spacing_zyx) -> tuple[int, int, int]:
    """Block sizes (z, y, x) bringing voxels near `WORK_SPACING_MM`."""
    return tuple(max(1, int(round(WORK_SPACING_MM / s))) for s in spacing_zyx)


def body_mask(
    hu: np.ndarray,
    spacing_zyx,
    *,
    core_hu: float = -200.0,
    skin_hu: float = -500.0,
    opening_mm: float = 2.0,
    min_fraction: float = 0.05,
    outside_air_fraction: float = 0.3,
    couch_run_fraction: float = 0.3,
) -> np.ndarray:
    """Boolean (z, y, x) mask of the patient's body in CT `hu` with voxel size `spacing_zyx` mm."""
    factors = reduction_factors(spacing_zyx)
    low_spacing = [s * f for s, f in zip(spacing_zyx, factors, strict=True)]
    low = morph.block_mean(hu, factors)
    tissue = low > core_hu
    radius = morph.radius_voxels(opening_mm, low_spacing)
    tissue = morph.opening(tissue, (0, max(radius[1], 1), max(radius[2], 1)))
    body = morph.keep_large_components(tissue, min_fraction)
    body = _fill_inside_air(body, low, outside_air_fraction)
    body = _refine_surface(body, hu, factors, skin_hu)
    couch_top = find_couch_top(hu, body, spacing_zyx, couch_run_fraction)
    body &= np.arange(hu.shape[1])[None, :, None] < couch_top[:, None, None]
    return body


def find_couch_top(hu: np.ndarray, body: np.ndarray, spacing_zyx, run_fraction: float = 0.3) -> np.ndarray:
    """Per slice, the row of the couch's top surface under the body (a large value where none)."""
    nz, ny, nx = hu.shape
    none = np.full(nz, ny, dtype=np.int64)
    rows_any = body.any(axis=2)  # (z, rows)
    if not rows_any.any():
        return none
    bottom = np.where(rows_any.any(axis=1), ny - 1 - np.argmax(rows_any[:, ::-1], axis=1), -1)
    first = int(max(bottom[bottom >= 0].min() - round(COUCH_SEARCH_MM / spacing_zyx[1]), 0))
    dense = (hu[:, first:] > -700) & ~body[:, first:]
    dense = morph.closing(dense, (0, 0, 2))  # bridge noise gaps of a few pixels along the couch
    columns = body.any(axis=1)  # (z, x)
    width = np.where(
        columns.any(axis=1), nx - np.argmax(columns[:, ::-1], axis=1) - np.argmax(columns, axis=1), 0
    )
    runs = _longest_runs(dense)  # (z, rows)
    search = np.arange(first, ny)[None, :] >= (bottom[:, None] - round(COUCH_SEARCH_MM / spacing_zyx[1]))
    found = (runs >= np.maximum(run_fraction * width, 1)[:, None]) & search
    top = np.where(found.any(axis=1), first + np.argmax(found, axis=1), ny)
    return np.where((top <= bottom) & (bottom >= 0), top, none)


def _longest_runs(mask: np.ndarray) -> np.ndarray:
    """Longest run of True along the last axis, for every row of a 3D array."""
    flat = mask.reshape(-1, mask.shape[-1]).astype(np.int8)
    padded = np.pad(flat, ((0, 0), (1, 1)))
    row, position = np.nonzero(np.diff(padded, axis=1))
    starts, ends = position[::2], position[1::2]
    longest = np.zeros(flat.shape[0], np.int64)
    np.maximum.at(longest, row[::2], ends - starts)
    return longest.reshape(mask.shape[:-1])


def _fill_inside_air(body: np.ndarray, low_hu: np.ndarray, outside_air_fraction: float) -> np.ndarray:
    """Fill air inside the body slice by slice (see the module's step 3)."""
    labels, sizes = morph.components(~body, morph.IN_PLANE)
    pure_air = np.bincount(labels.ravel(), weights=(low_hu < -950).ravel(), minlength=sizes.size)
    outside = np.zeros(sizes.shape, bool)
    edge = morph.border_labels(labels, in_plane=True)
    outside[edge] = pure_air[edge] >= outside_air_fraction * np.maximum(sizes[edge], 1)
    outside[0] = False
    inside = ~outside
    inside[0] = False
    return body | inside[labels]


def _refine_surface(body_low: np.ndarray, hu: np.ndarray, factors, skin_hu: float) -> np.ndarray:
    """Full-resolution body: the reduced body's core plus skin voxels near its surface."""
    shape = hu.shape
    core = morph.block_expand(morph.erode(body_low, (1, 1, 1)), factors, shape)
    near = morph.block_expand(morph.dilate(body_low, (1, 1, 1)), factors, shape)
    return core | (near & (hu > skin_hu))


def body_box(
    hu: np.ndarray, spacing_zyx, margin_mm: float = 10.0, min_area_mm2: float = 100.0
) -> tuple[slice, slice, slice] | None:
    """Bounding box (z, y, x slices) of the patient plus `margin_mm`, from a quick look at about
    4 mm voxels (tissue > −300 HU, thin bridges opened, large components); None if no patient.

    In-plane the box is that of the large components (which leaves out thin immobilisation
    shells and small devices beside the patient). Along z it reaches every slice holding at
    least `min_area_mm2` of tissue inside that in-plane box, even where the patient is too thin
    there to survive the opening: a scan cropped to a strip around the spine below the neck
    keeps its spinal cord and larynx."""
    step = tuple(max(1, int(round(4.0 / s))) for s in spacing_zyx)
    low = hu[:: step[0], :: step[1], :: step[2]] > -300
    body = morph.keep_large_components(morph.opening(low, (0, 1, 1)), 0.05)
    if not body.any():
        return None
    rows = np.flatnonzero(body.any(axis=(0, 2)))
    columns = np.flatnonzero(body.any(axis=(0, 1)))
    pixel_mm2 = step[1] * spacing_zyx[1] * step[2] * spacing_zyx[2]
    tissue = low[:, rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1].sum(axis=(1, 2)) * pixel_mm2
    slices = np.flatnonzero(body.any(axis=(1, 2)) | (tissue >= min_area_mm2))
    box = []
    for axis, hits in enumerate((slices, rows, columns)):
        margin = int(np.ceil(margin_mm / spacing_zyx[axis]))
        start = max(int(hits[0]) * step[axis] - margin, 0)
        stop = min((int(hits[-1]) + 1) * step[axis] + margin, hu.shape[axis])
        box.append(slice(start, stop))
    return tuple(box)
