"""The planes an RTSTRUCT's contours were drawn on, when they are not the loaded images' planes.

A structure set drawn on one reconstruction of a frame of reference (3 mm slices) may be read onto
another reconstruction of it (1.5 mm or 6 mm slices of the same scan). Its contours then lie on
regular planes first + n·spacing along the slice normal whose spacing is not the images'. Each
image plane then takes the contour plane nearest to it, within half their spacing, instead of the
contours within half an image slice (every other 1.5 mm plane empty; neighbouring 3 mm planes
combined even-odd on a 6 mm image). Positions are in mm along the images' slice normal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planning.contour_slabs import contour_plane_positions
from planning.rtstruct.rois import RoiRecord
from planning.volume import Volume

#: The points of one contour, and the contours of one plane, lie within this of each other and of
#: the regular planes they were drawn on (mm along the slice normal).
PLANE_TOLERANCE_MM = 0.1
#: Contour planes spaced within this fraction of the images' slice spacing count as drawn on them.
SAME_SPACING = 0.01


@dataclass(frozen=True)
class DrawnPlanes:
    """Regular planes at first_mm + n·spacing_mm along the slice normal, n = 0 … count-1."""

    first_mm: float
    spacing_mm: float
    count: int

    def nearest(self, positions_mm: np.ndarray) -> np.ndarray:
        """Index n of the plane nearest each position (mm), -1 where none is within half the
        spacing; a position half-way between two planes takes the upper one (larger n)."""
        steps = np.round((np.asarray(positions_mm, float) - self.first_mm) / self.spacing_mm, 6)
        n = np.floor(steps + 0.5).astype(np.int64)
        return np.where((n >= 0) & (n < self.count), n, -1)


def regular_planes(along: list[np.ndarray]) -> DrawnPlanes | None:
    """The regular planes contours lie on, from each contour's point positions (mm along the
    normal); None when a contour is not planar, there are fewer than two planes, or they are not
    spaced regularly (at least half the gaps between neighbours one spacing, all others a multiple)."""
    positions, planar = contour_plane_positions(along, PLANE_TOLERANCE_MM)
    if not along or not planar.all():
        return None
    positions = np.sort(positions)
    planes = positions[np.concatenate([[True], np.diff(positions) > PLANE_TOLERANCE_MM])]
    if len(planes) < 2:
        return None
    gaps = np.diff(planes)
    n = np.rint((planes - planes[0]) / gaps.min())
    spacing = float(planes[-1] - planes[0]) / n[-1]
    steps = np.rint((positions - planes[0]) / spacing)
    if np.abs(positions - planes[0] - steps * spacing).max() > PLANE_TOLERANCE_MM:
        return None
    if np.mean(np.abs(gaps - spacing) <= PLANE_TOLERANCE_MM) < 0.5:
        return None
    return DrawnPlanes(float(planes[0]), spacing, int(n[-1]) + 1)


def planes_of_another_reconstruction(dataset, records: list[RoiRecord], volume: Volume) -> DrawnPlanes | None:
    """The regular planes the closed contours of `records` were drawn on, when their spacing is
    not the images' (another reconstruction of the frame of reference); else None. Contours of a
    file that references the loaded series or one of its images were drawn on these images: they
    are placed on them as they lie, even when only every other plane has any."""
    contours = [c for r in records for c in r.contours if c.encloses_area]
    if _references_loaded_images(dataset, contours, volume):
        return None
    drawn = regular_planes([c.points @ volume.grid.slice_normal for c in contours])
    spacing = volume.grid.spacing_xyz[2]
    if drawn is None or abs(drawn.spacing_mm - spacing) <= SAME_SPACING * spacing:
        return None
    return drawn


def _references_loaded_images(dataset, contours, volume: Volume) -> bool:
    """Whether the file names the loaded series, or any contour one of its images."""
    series = {
        str(item.get("SeriesInstanceUID", ""))
        for frame in dataset.get("ReferencedFrameOfReferenceSequence", [])
        for study in frame.get("RTReferencedStudySequence", [])
        for item in study.get("RTReferencedSeriesSequence", [])
    }
    if volume.identity.series_instance_uid and volume.identity.series_instance_uid in series:
        return True
    loaded = {ref.sop_instance_uid for ref in volume.slices if ref is not None}
    return any(c.image_uid in loaded for c in contours)
