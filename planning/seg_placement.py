"""Putting a DICOM-SEG's segments on a loaded volume's grid, one segment at a time.

A SEG made on the loaded images (by Delineo or another program) derives each frame from one of
the volume's images, on its plane, with the same pixels: its frames are copied straight onto
those planes (`frame_planes`), whatever the spacing between the planes. This takes the same irregular
stacks the loader accepts (slice gaps varying by a few per cent), which highdicom's volume
reconstruction refuses beyond 1 %. A SEG made on other images (another reconstruction of the
scan) or on another grid is reconstructed by highdicom and resampled by nearest voxel
(`resampled_segment`). Fractional segments are inside from 50 %.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from planning.dicom.stack import image_plane_origins
from planning.errors import DicomReadError
from planning.geometry import Grid
from planning.structure_io import labels_on_grid
from planning.structures import Mask, bounding_box
from planning.volume import Volume

#: A frame lies on a volume plane when its position is this close to the plane's origin (mm).
POSITION_TOLERANCE_MM = 0.01


def segment_masks(seg, numbers: list[int], volume: Volume) -> Iterator[tuple[int, Mask]]:
    """(number, mask on `volume`'s grid) of each segment of `seg` (a highdicom Segmentation)
    in `numbers`, one at a time: a SEG of 117 segments on 600 planes of 512² would take 18 GB
    as one array."""
    planes = frame_planes(seg, volume)
    for number in numbers:
        if planes is None:
            yield number, Mask.from_full(volume.grid, resampled_segment(seg, number, volume))
        else:
            yield number, _placed_mask(seg, planes.get(number, []), volume.grid)


def frame_planes(seg, volume: Volume) -> dict[int, list[tuple[int, int]]] | None:
    """For each segment number, its frames as (frame index, volume plane k), when every frame was
    made on one of the volume's own images and lies on its plane pixel for pixel (same pixel grid,
    same position); None otherwise (a SEG made on other images, a thicker reconstruction of the
    same scan for instance, or on another grid)."""
    grid = volume.grid
    if (int(seg.Rows), int(seg.Columns)) != grid.shape[1:]:
        return None
    plane_of = {
        (ref.sop_instance_uid, ref.frame): k for k, ref in enumerate(volume.slices) if ref is not None
    }
    origins = image_plane_origins(grid, volume.slices)
    planes: dict[int, list[tuple[int, int]]] = {}
    for index, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        k = plane_of.get(_source_image(item))
        if k is None or not _same_pixel_grid(seg, item, grid):
            return None
        position = np.asarray(_group(seg, item, "PlanePositionSequence").ImagePositionPatient, float)
        if np.linalg.norm(position - origins[k]) > POSITION_TOLERANCE_MM:
            return None
        number = int(_group(seg, item, "SegmentIdentificationSequence").ReferencedSegmentNumber)
        planes.setdefault(number, []).append((index, k))
    return planes


def _placed_mask(seg, frames: list[tuple[int, int]], grid: Grid) -> Mask:
    """A segment's frames (frame index, plane k) copied onto their planes."""
    if not frames:
        return Mask(grid)
    first, last = min(k for _, k in frames), max(k for _, k in frames)
    slab = np.zeros((last - first + 1, *grid.shape[1:]), bool)
    threshold = _inside_from(seg)
    for index, k in frames:
        slab[k - first] |= seg.get_stored_frame(index, as_index=True) >= threshold
    box = bounding_box(slab)
    if box is None:
        return Mask(grid)
    return Mask(grid, slab[box].copy(), (first + box[0].start, box[1].start, box[2].start))


def _source_image(item) -> tuple[str, int | None] | None:
    """(SOP instance UID, frame number or None) of the image a frame was derived from."""
    try:
        source = item.DerivationImageSequence[0].SourceImageSequence[0]
    except (AttributeError, IndexError):
        return None
    frame = source.get("ReferencedFrameNumber")
    return str(source.ReferencedSOPInstanceUID), None if frame is None else int(frame)


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
