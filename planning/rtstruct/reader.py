"""Reading a DICOM RT Structure Set onto the image grid it was drawn on.

Each CLOSED_PLANAR contour is placed on its image: the one its ContourImageSequence names when
that image is loaded, otherwise the image plane its points lie on (CERR and others write no
per-contour reference). Contours are rasterised with the pixel-centre rule — a voxel belongs to
the structure when its centre is inside — and the contours of one plane are combined even-odd, so
a contour inside another is a hole and a contour inside a hole an island. POINT and OPEN_PLANAR
items are kept as markers, never filled. The contours themselves are kept on each structure
(`Structure.contours`) so that an unedited structure is written back unchanged.

Planes of the volume with no source image (interpolated on loading) get the shape interpolated
between the neighbouring images, as a planning system does between contoured slices.

An RTSTRUCT of another frame of reference, or with contours on images that are not loaded, is
refused with an error naming what is missing. One exception: a file whose frame of reference
UID differs from the images' but whose contours reference the loaded images one by one (some
exporters invent a new frame of reference UID) is read onto those images, with a warning.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from planning.dicom.headers import read_dataset
from planning.errors import Cancelled, DelineoError, DicomReadError, GeometryError
from planning.rtstruct import contours as planar
from planning.rtstruct.writer import RT_STRUCTURE_SET_STORAGE
from planning.structures import (
    GenerationAlgorithm,
    Mask,
    PlanarContour,
    RoiType,
    Structure,
    StructureSet,
)
from planning.tg263 import style_for
from planning.volume import Volume

log = logging.getLogger(__name__)

_CONTOUR_DATA = 0x30060050
#: Geometric types that enclose an area (CLOSEDPLANAR_XOR states the even-odd rule applied anyway).
CLOSED_TYPES = ("CLOSED_PLANAR", "CLOSEDPLANAR_XOR")
#: Contours farther than this from their image plane (mm) are reported.
OFF_PLANE_REPORT_MM = 0.05
_ProgressCallback = Callable[[str, int, int], None]


@dataclass
class RoiRecord:
    """One ROI as the file states it, before rasterising.

    Attributes:
        number: ROI Number.
        name, description, algorithm, interpreted_type: from the structure set and observations.
        color: ROIDisplayColor, None when absent or invalid.
        contours: every contour item: LPS points (N, 3), geometric type, referenced image UID.
        declared_points: NumberOfContourPoints of each contour (None where absent).
    """

    number: int
    name: str
    description: str = ""
    algorithm: str = ""
    interpreted_type: str = ""
    color: tuple[int, int, int] | None = None
    contours: list[PlanarContour] = field(default_factory=list)
    declared_points: list[int | None] = field(default_factory=list)


def parse_rois(dataset) -> tuple[list[RoiRecord], list[str]]:
    """The ROIs of an RTSTRUCT dataset in file order, and the problems met reading them."""
    problems: list[str] = []
    records: dict[int, RoiRecord] = {}
    for item in dataset.get("StructureSetROISequence", []):
        number = _int(item.get("ROINumber"))
        if number is None:
            problems.append("a StructureSetROISequence item has no ROINumber and was ignored")
            continue
        if number in records:
            problems.append(f"ROI number {number} is used twice; the second ROI was ignored")
            continue
        records[number] = RoiRecord(
            number=number,
            name=str(item.get("ROIName", "") or "").strip() or f"ROI_{number}",
            description=str(item.get("ROIDescription", "") or ""),
            algorithm=str(item.get("ROIGenerationAlgorithm", "") or "").strip().upper(),
        )
    for item in dataset.get("RTROIObservationsSequence", []):
        number = _int(item.get("ReferencedROINumber"))
        if number in records:
            records[number].interpreted_type = str(item.get("RTROIInterpretedType", "") or "").strip().upper()
    for roi in dataset.get("ROIContourSequence", []):
        number = _int(roi.get("ReferencedROINumber"))
        if number not in records:
            problems.append(f"contours refer to ROI number {number}, which the structure set does not list")
            if number is None:
                continue
            records[number] = RoiRecord(number=number, name=f"ROI_{number}")
        record = records[number]
        record.color = _color(roi.get("ROIDisplayColor"))
        for contour in roi.get("ContourSequence", []):
            points = _contour_points(contour)
            images = contour.get("ContourImageSequence", [])
            uid = str(images[0].get("ReferencedSOPInstanceUID", "")) if images else ""
            kind = (
                str(contour.get("ContourGeometricType", "CLOSED_PLANAR") or "CLOSED_PLANAR").strip().upper()
            )
            record.contours.append(PlanarContour(points, kind, uid))
            record.declared_points.append(_int(contour.get("NumberOfContourPoints")))
    return list(records.values()), problems


def read_rtstruct(
    path: str | os.PathLike,
    volume: Volume,
    *,
    names: Iterable[str] | None = None,
    allow_missing_images: bool = False,
    on_progress: _ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> StructureSet:
    """Read an RTSTRUCT onto `volume`'s grid; warnings end up in `StructureSet.warnings`.

    Args:
        path: the RTSTRUCT file.
        volume: the images it was drawn on.
        names: ROI names to read (default: all).
        allow_missing_images: drop contours on images that are not loaded (with a warning)
            instead of refusing the file.
        on_progress: called as (stage, ROIs done, ROIs total).
        cancel: when set, reading stops between ROIs with `Cancelled`.

    Raises:
        DicomReadError: the file is not an RTSTRUCT, or is damaged.
        GeometryError: it belongs to another frame of reference, or its contours lie on images
            that are not loaded.
        DelineoError: a requested name is not in the file.
    """
    path = Path(path)
    dataset = read_dataset(path)
    if (
        str(dataset.get("SOPClassUID", "")) != RT_STRUCTURE_SET_STORAGE
        and dataset.get("Modality") != "RTSTRUCT"
    ):
        kind = dataset.get("Modality") or dataset.get("SOPClassUID") or "unknown"
        raise DicomReadError(f"{path.name}: not an RT Structure Set (it is a {kind} object)")
    records, warnings = parse_rois(dataset)
    records = _select(records, names, path)
    placer = _Placer(volume)
    _check_frame_of_reference(path, dataset, records, volume, placer, warnings)
    placed = [(record, _place(record, placer)) for record in records]
    _check_outside(path, placed, placer, allow_missing_images, warnings)
    structure_set = StructureSet(
        volume.grid,
        volume.frame_of_reference_uid,
        str(dataset.get("StructureSetLabel", "") or path.stem),
    )
    for done, (record, where) in enumerate(placed):
        if cancel is not None and cancel.is_set():
            raise Cancelled("RTSTRUCT import cancelled")
        if on_progress is not None:
            on_progress("Reading RTSTRUCT", done, len(records))
        structure = _structure(record, where, placer, warnings)
        added = structure_set.add(structure)
        if added.name != record.name:
            warnings.append(f"ROI name {record.name!r} is used twice; the second is named {added.name!r}")
    if on_progress is not None:
        on_progress("Reading RTSTRUCT", len(records), len(records))
    for warning in warnings:
        log.warning("%s: %s", path.name, warning)
    structure_set.warnings = warnings
    return structure_set


def _select(records: list[RoiRecord], names: Iterable[str] | None, path: Path) -> list[RoiRecord]:
    if names is None:
        return records
    by_name = {r.name: r for r in records}
    by_upper = {r.name.upper(): r for r in records}
    chosen = []
    for name in names:
        record = by_name.get(name) or by_upper.get(name.upper())
        if record is None:
            available = ", ".join(r.name for r in records) or "none"
            raise DelineoError(f"{path.name} has no ROI named {name!r}; ROIs: {available}")
        chosen.append(record)
    return chosen


# -- geometry -------------------------------------------------------------------------------


class _Placer:
    """Puts contours on the volume's planes: by image reference, else by position."""

    def __init__(self, volume: Volume):
        grid = volume.grid
        self.grid = grid
        self.slices = volume.slices
        origins = grid.slice_position(np.arange(grid.shape[0]))
        for k, ref in enumerate(volume.slices):
            if ref is not None:
                origins[k] = ref.position_xyz
        self.origins = origins
        self.axes = grid.direction / np.asarray(grid.spacing_xyz)  # patient mm → index steps
        self.normal = grid.direction[:, 2]
        self.uids: dict[str, list[int]] = {}
        for k, ref in enumerate(volume.slices):
            if ref is not None:
                self.uids.setdefault(ref.sop_instance_uid, []).append(k)

    def place(self, contour: PlanarContour) -> tuple[int, np.ndarray, float]:
        """(plane k, in-plane indices (N, 2), farthest point from that plane in mm).

        The plane is the one the points lie on; k is outside 0 … size-1 for a contour beyond the
        first or last image.
        """
        points = contour.points
        along = (points - self.origins[0]) @ self.normal / self.grid.spacing_xyz[2]
        k = int(np.rint(along.mean()))
        if k < 0 or k >= len(self.origins):
            return k, np.zeros((0, 2)), np.inf
        relative = points - self.origins[k]
        return k, relative @ self.axes[:, :2], float(np.abs(relative @ self.normal).max())

    def describe_range(self) -> str:
        first, last = self.origins[0] @ self.normal, self.origins[-1] @ self.normal
        return f"the images span {min(first, last):.1f} to {max(first, last):.1f} mm along the slice normal"


@dataclass
class _Placed:
    """A record's closed contours on their planes, and what did not fit."""

    contours: list[PlanarContour] = field(default_factory=list)
    loops: list[np.ndarray] = field(default_factory=list)
    planes: list[int] = field(default_factory=list)
    markers: list[PlanarContour] = field(default_factory=list)
    outside: list[PlanarContour] = field(default_factory=list)
    too_short: int = 0
    mismatched: int = 0
    unknown_image: int = 0
    other_plane: int = 0
    off_plane_mm: float = 0.0


def _place(record: RoiRecord, placer: _Placer) -> _Placed:
    placed = _Placed()
    for contour, declared in zip(record.contours, record.declared_points, strict=True):
        if declared is not None and declared != len(contour.points):
            placed.mismatched += 1
        if contour.geometric_type not in CLOSED_TYPES:
            placed.markers.append(contour)
            continue
        if len(contour.points) < 3:
            placed.too_short += 1
            continue
        k, uv, distance = placer.place(contour)
        if not 0 <= k < placer.grid.shape[0] or distance > 0.5 * placer.grid.spacing_xyz[2]:
            placed.outside.append(contour)
            continue
        if contour.image_uid:
            planes_of_image = placer.uids.get(contour.image_uid)
            if planes_of_image is None:
                placed.unknown_image += 1
            elif k not in planes_of_image:
                placed.other_plane += 1
        placed.off_plane_mm = max(placed.off_plane_mm, distance)
        placed.contours.append(contour)
        placed.loops.append(uv)
        placed.planes.append(k)
    return placed


def _check_frame_of_reference(
    path: Path, dataset, records: list[RoiRecord], volume: Volume, placer: _Placer, warnings: list[str]
) -> None:
    """Refuse another frame of reference, unless the contours reference the loaded images."""
    frames = {
        str(item.get("FrameOfReferenceUID", ""))
        for item in dataset.get("ReferencedFrameOfReferenceSequence", [])
    }
    frames |= {
        str(item.get("ReferencedFrameOfReferenceUID", ""))
        for item in dataset.get("StructureSetROISequence", [])
    }
    frames.discard("")
    own = volume.frame_of_reference_uid
    referenced = {c.image_uid for r in records for c in r.contours if c.image_uid}
    loaded = referenced & set(placer.uids)
    if own and frames and own not in frames:
        if not loaded:
            raise GeometryError(
                f"{path.name} belongs to frame of reference {', '.join(sorted(frames))}, but the loaded "
                f"images (series {volume.identity.series_instance_uid}) are in {own}: load the images "
                "the structures were drawn on"
            )
        warnings.append(
            f"the file states frame of reference {', '.join(sorted(frames))} while the images are in "
            f"{own}; its contours reference {len(loaded)} of the loaded images one by one, so they "
            "were placed on those images"
        )


def _check_outside(
    path: Path,
    placed: list[tuple[RoiRecord, _Placed]],
    placer: _Placer,
    allow_missing_images: bool,
    warnings: list[str],
) -> None:
    """Refuse contours beyond the loaded images (unless allowed: then they are left out)."""
    outside = [(record.name, contour) for record, p in placed for contour in p.outside]
    if not outside:
        return
    rois = sorted({name for name, _ in outside})
    missing = sorted({c.image_uid for _, c in outside if c.image_uid and c.image_uid not in placer.uids})
    positions = [float(c.points.mean(axis=0) @ placer.normal) for _, c in outside]
    where = (
        f"at {min(positions):.1f} to {max(positions):.1f} mm"
        if len(set(positions)) > 1
        else (f"at {positions[0]:.1f} mm")
    )
    message = (
        f"{path.name}: {len(outside)} contour(s) of {', '.join(rois[:6])}{'…' if len(rois) > 6 else ''} lie "
        f"beyond the loaded images ({where}; {placer.describe_range()})"
    )
    if missing:
        shown = ", ".join(missing[:3]) + ("…" if len(missing) > 3 else "")
        message += f" on {len(missing)} image(s) that are not loaded ({shown})"
    if not allow_missing_images:
        raise GeometryError(message + "; load the complete image series the structures were drawn on")
    warnings.append(message + "; those contours were left out")


def _structure(record: RoiRecord, placed: _Placed, placer: _Placer, warnings: list[str]) -> Structure:
    grid = placer.grid
    name = record.name
    if placed.mismatched:
        warnings.append(
            f"{name}: {placed.mismatched} contour(s) declare another NumberOfContourPoints than they hold"
        )
    if placed.too_short:
        warnings.append(f"{name}: {placed.too_short} closed contour(s) with fewer than 3 points were ignored")
    if placed.unknown_image:
        warnings.append(
            f"{name}: {placed.unknown_image} contour(s) reference images of another series; placed on the "
            "loaded image at the same position"
        )
    if placed.other_plane:
        warnings.append(
            f"{name}: {placed.other_plane} contour(s) reference an image but lie on another one; placed by "
            "position"
        )
    if placed.off_plane_mm > OFF_PLANE_REPORT_MM:
        warnings.append(
            f"{name}: contour points lie up to {placed.off_plane_mm:.2f} mm off their image plane; each "
            "contour was filled on its image"
        )
    filled, offset = planar.rasterize(planar.Loops.from_list(placed.loops, placed.planes), grid.shape)
    mask = Mask(grid, filled, offset)
    if any(ref is None for ref in placer.slices) and not mask.is_empty:
        mask = _fill_interpolated_planes(mask, placer)
    default_color, default_type = style_for(name)
    if record.interpreted_type in RoiType.__members__:
        roi_type = RoiType(record.interpreted_type)
    else:
        roi_type = default_type
        what = (
            f"unknown RT ROI Interpreted Type {record.interpreted_type!r}"
            if record.interpreted_type
            else "no RT ROI Interpreted Type"
        )
        warnings.append(f"{name}: {what}; taken as {roi_type.value}")
    algorithm = (
        GenerationAlgorithm(record.algorithm)
        if record.algorithm in GenerationAlgorithm.__members__
        else GenerationAlgorithm.MANUAL
    )
    return Structure(
        name=name,
        mask=mask,
        color=record.color or default_color,
        roi_type=roi_type,
        algorithm=algorithm,
        number=record.number,
        description=record.description,
        contours=placed.contours,
        markers=placed.markers,
    )


def _fill_interpolated_planes(mask: Mask, placer: _Placer) -> Mask:
    """Shape-based interpolation (signed distances) on planes that have no source image."""
    full_box = mask.box
    z0, z1 = full_box[0].start, full_box[0].stop
    real = [k for k, ref in enumerate(placer.slices) if ref is not None]
    ny, nx = placer.grid.shape[1:]
    box = (slice(max(z0 - 1, 0), min(z1 + 1, placer.grid.shape[0])), slice(0, ny), slice(0, nx))
    region = mask.region(box)
    base = box[0].start
    sampling = placer.grid.spacing_xyz[1::-1]
    changed = False
    for k in range(box[0].start, box[0].stop):
        if placer.slices[k] is not None:
            continue
        below = max((j for j in real if j < k), default=None)
        above = min((j for j in real if j > k), default=None)
        if below is None or above is None or not (below - base >= 0 and above - base < len(region)):
            continue
        lower, upper = region[below - base], region[above - base]
        if not lower.any() or not upper.any():
            continue
        t = (k - below) / (above - below)
        distance = (1 - t) * _signed_distance(lower, sampling) + t * _signed_distance(upper, sampling)
        region[k - base] = distance <= 0
        changed = True
    if not changed:
        return mask
    result = mask.copy()
    result.replace_region(box, region)
    return result


def _signed_distance(plane: np.ndarray, sampling) -> np.ndarray:
    """Distance in mm to the boundary: negative inside, positive outside."""
    return ndimage.distance_transform_edt(~plane, sampling=sampling) - ndimage.distance_transform_edt(
        plane, sampling=sampling
    )


# -- values ---------------------------------------------------------------------------------


def _contour_points(contour) -> np.ndarray:
    """ContourData as (N, 3) floats, parsed straight from the raw bytes when possible."""
    if _CONTOUR_DATA not in contour:
        return np.zeros((0, 3))
    element = contour.get_item(_CONTOUR_DATA)
    value = element.value
    try:
        if isinstance(value, bytes):
            values = np.array(value.split(b"\\")).astype(np.float64) if value.strip() else np.zeros(0)
        else:
            values = np.asarray(contour.ContourData if value is not None else [], np.float64)
    except ValueError as error:
        raise DicomReadError(f"ContourData holds a value that is not a number ({error})") from error
    usable = len(values) // 3 * 3
    return values[:usable].reshape(-1, 3)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _color(value) -> tuple[int, int, int] | None:
    try:
        color = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        return None
    return color if len(color) == 3 and all(0 <= c <= 255 for c in color) else None
