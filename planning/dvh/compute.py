"""`compute_dvh`: the DVH of a structure on a dose, from its planar contours or its mask."""

from __future__ import annotations

import logging
import threading

import numpy as np

from planning.contour_slabs import ImageSlices
from planning.dose import Dose
from planning.dvh.contour_sampling import contour_planes, sample_contours
from planning.dvh.histogram import DVH
from planning.dvh.mask_sampling import sample_mask
from planning.errors import GeometryError
from planning.structures import Mask, PlanarContour, Structure

log = logging.getLogger(__name__)


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
            planes = contour_planes(dose.grid, [c for c in geometry if c.encloses_area], name)
        except GeometryError:  # contours on oblique images: their mask on those images, if any
            if not isinstance(structure, Structure) or structure.mask.is_empty:
                raise
            geometry = structure.mask
    if planes is not None:
        if slices is None:
            slices = ImageSlices.estimate([geometry], dose.grid.slice_normal, dose.grid.spacing_xyz[2])
        doses, volumes, sampling, warnings = sample_contours(
            dose, planes, factor, slices, end_cap_mm, name, cancel
        )
    else:
        doses, volumes, sampling, warnings = sample_mask(dose, geometry, factor, name, cancel)
    doses = doses.astype(np.float32)  # what the DVH keeps: the dose grid's own precision
    order = np.argsort(-doses)  # equal doses in any order: the metrics read doses, not positions
    for text in warnings:
        log.info(text)
    return DVH(name, doses[order], volumes.take(order), bin_width, dose.unit_label, sampling, warnings)
