"""Bones from a CT by rules: dense voxels inside the body, in pieces that hold cortical bone.

Voxels above `bone_hu` (200 HU: trabecular bone and denser) inside the body are split by a thin
in-plane opening (contrast-filled vessels and bowel touching a vertebra come apart), and a piece
stays when at least `min_cortical_cc` of it is above `cortical_hu` (600 HU; enhanced blood and
excreted contrast rarely reach that in bulk), at least `min_cortical_fraction` of it is (a heart
or kidney full of contrast with a calcification is not bone) and it is at least `min_cc`. Small holes in each
slice (up to `max_hole_cm2`: gaps in trabecular bone) are filled; the spinal canal (≈ 2 cm²) is
larger than the default and stays open.
"""

from __future__ import annotations

import numpy as np

from segmentation.rules import morphology as morph


def bone_mask(
    hu: np.ndarray,
    spacing_zyx,
    body: np.ndarray,
    *,
    bone_hu: float = 200.0,
    cortical_hu: float = 600.0,
    min_cortical_cc: float = 0.2,
    min_cortical_fraction: float = 0.02,
    min_cc: float = 0.5,
    max_hole_cm2: float = 0.5,
) -> np.ndarray:
    """Boolean (z, y, x) mask of the bones."""
    voxel_cc = float(np.prod(spacing_zyx)) / 1000
    dense = body & (hu > bone_hu)
    if not dense.any():
        return dense
    pieces = morph.opening(dense, (0, 1, 1))
    labels, sizes = morph.components(pieces)
    cortical = np.bincount(labels.ravel(), weights=(hu > cortical_hu).ravel(), minlength=sizes.size)
    keep = (cortical * voxel_cc >= min_cortical_cc) & (sizes * voxel_cc >= min_cc)
    keep &= cortical >= min_cortical_fraction * sizes
    keep[0] = False
    # Give back the voxels the opening shaved off the kept pieces (thin cortex, small processes).
    bones = dense & morph.dilate(keep[labels], (0, 1, 1))
    max_hole = int(max_hole_cm2 * 100 / (spacing_zyx[1] * spacing_zyx[2]))
    return morph.fill_holes_in_plane(bones, max_area_px=max_hole) & body
