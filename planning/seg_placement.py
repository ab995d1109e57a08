"""Putting a DICOM-SEG's segments on a loaded volume's grid, one segment at a time.

A SEG made on the loaded images (by Delineo or another program) has each frame on one of the
volume's planes, with the same pixels: its frames are copied straight onto those planes
(`frames_on_planes`), whatever the spacing between the planes. This takes the same irregular
stacks the loader accepts (slice gaps varying by a few per cent), which highdicom's volume
reconstruction refuses beyond 1 %. A SEG on another grid is reconstructed by highdicom and
resampled by nearest voxel (`resampled_segment`). Fractional segments are inside from 50 %.
"""

from __future__ import annotations

import numpy as np

from planning.dicom.stack import image_plane_origins
from planning.errors import DicomReadError
from planning.geometry import Grid
from planning.structure_io import labels_on_grid
from planning.volume import Volume

#: A frame lies on a volume plane when its position is this close to the plane's origin (mm).
POSITION_TOLERANCE_MM = 0.01


def segment_on_grid(seg, number: int, volume: Volume) -> np.ndarray:
    """Segment `number` of `seg` (a highdicom Segmentation) as a bool array on `volume`'s grid."""
    on_planes = frames_on_planes(seg, number, volume)
    return on_planes if on_planes is not None else resampled_segment(seg, number, volume)


def frames_on_planes(seg, number: int, volume: Volume) -> np.ndarray | None:
    """The segment's frames copied onto the volume planes they lie on, or None when some frame
    is not on one of them pixel for pixel (another orientation, pixel spacing or size)."""
    grid = volume.grid
    if (int(seg.Rows), int(seg.Columns)) != grid.shape[1:]:
        return None
    origins = image_plane_origins(grid, volume.slices)
    normal = grid.direction[:, 2]
    along = origins @ normal
    threshold = _inside_from(seg)
    array = np.zeros(grid.shape, bool)
    for index, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        if int(_group(seg, item, "SegmentIdentificationSequence").ReferencedSegmentNumber) != number:
            continue
        if not _same_pixel_grid(seg, item, grid):
            return None
        position = np.asarray(_group(seg, item, "PlanePositionSequence").ImagePositionPatient, float)
        k = int(np.argmin(np.abs(along - position @ normal)))
        if np.linalg.norm(position - origins[k]) > POSITION_TOLERANCE_MM:
            return None
        array[k] |= seg.get_stored_frame(index, as_index=True) >= threshold
    return array


def resampled_segment(seg, number: int, volume: Volume) -> np.ndarray:
    """The segment reconstructed as highdicom's regular volume, then put on `volume`'s grid by
    nearest voxel through patient space."""
    fractional = str(seg.get("SegmentationType", "")) == "FRACTIONAL"
    try:
        seg_volume = seg.get_volume(
            segment_numbers=[number], combine_segments=False, dtype=np.float32 if fractional else np.uint8
        )
    except Exception as error:  # frames that do not form a regular stack
        raise DicomReadError(f"the segments do not form a regular stack of planes ({error})") from error
    array = np.asarray(seg_volume.array)
    if array.ndim == 4:
        array = array[..., 0]
    if fractional:
        array = array >= 0.5  # highdicom scales fractions to 0–1
    affine = np.asarray(seg_volume.affine, float)
    columns = affine[:3, :3]  # index (slice, row, column) → LPS mm
    spacing = np.linalg.norm(columns, axis=0)
    source = Grid(array.shape, tuple(spacing[::-1]), tuple(affine[:3, 3]), (columns / spacing)[:, ::-1])
    return labels_on_grid(array.astype(np.uint8), source, volume.grid) > 0


def _inside_from(seg) -> float:
    """The stored value from which a pixel is inside: 1 (binary), half the largest (fractional)."""
    if str(seg.get("SegmentationType", "")) == "FRACTIONAL":
        return 0.5 * float(seg.get("MaximumFractionalValue", 255))
    return 1.0


def _group(seg, item, keyword: str):
    """A functional group's first item: the frame's own, else the shared one."""
    if keyword in item:
        return item[keyword].value[0]
    return seg.SharedFunctionalGroupsSequence[0][keyword].value[0]


def _same_pixel_grid(seg, item, grid: Grid) -> bool:
    """Whether the frame's orientation and pixel spacing are the grid's (to 1e-4)."""
    orientation = np.asarray(_group(seg, item, "PlaneOrientationSequence").ImageOrientationPatient, float)
    spacing = np.asarray(_group(seg, item, "PixelMeasuresSequence").PixelSpacing, float)  # row, column
    return bool(
        np.allclose(orientation, [*grid.direction[:, 0], *grid.direction[:, 1]], atol=1e-4)
        and np.allclose(spacing, [grid.spacing_xyz[1], grid.spacing_xyz[0]], rtol=1e-4)
    )
