"""What both geometries of a DVH share: the sampling limits, the checked sampling factor, and the
warnings for a small structure and for volume outside the dose grid."""

from __future__ import annotations

import numpy as np

from planning.dose import Dose
from planning.dvh.volumes import SampleVolumes

#: Structures smaller than this many dose voxels get a warning.
SMALL_STRUCTURE_VOXELS = 100
#: `auto` samples contours so that at most this share of the volume is within one sample of them ...
BOUNDARY_SHARE = 0.05
#: ... with at most this many columns per dose voxel along x and y ...
MAX_FACTOR = 8
#: ... and about this many samples at most (under a second on one core).
SAMPLE_BUDGET = 4_000_000


def given_factor(factor) -> int:
    """A sampling factor given as a number (samples per dose voxel along an axis), checked ≥ 1."""
    value = int(factor)
    if value < 1:
        raise ValueError(f"the sampling factor must be ≥ 1, got {factor}")
    return value


def small_structure_warning(name: str, volume_cc: float, dose: Dose, how: str) -> list[str]:
    """A warning when a structure of `volume_cc` (cc) is under `SMALL_STRUCTURE_VOXELS` dose voxels;
    `how` says how it was sampled."""
    voxels = volume_cc / dose.grid.voxel_volume_cc
    if 0 < voxels < SMALL_STRUCTURE_VOXELS:
        spacing = " × ".join(f"{s:g}" for s in dose.grid.spacing_xyz)
        return [
            f"{name}: {volume_cc:.3g} cc is only {voxels:.0f} dose voxels ({spacing} mm); its DVH "
            f"depends on the dose grid ({how})"
        ]
    return []


def outside_grid_warning(name: str, inside: np.ndarray, volumes: SampleVolumes) -> list[str]:
    """A warning giving the volume (cc) of the samples not `inside` the dose grid, if any."""
    if inside.all():
        return []
    outside_cc = volumes.total(~inside)
    return [f"{name}: {outside_cc:.3g} cc lies outside the dose grid and is counted with dose 0"]
