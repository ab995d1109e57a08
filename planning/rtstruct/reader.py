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

An ROI declared in another frame of reference than the images (in a file that names the images'
frame too) is left out with a warning. An RTSTRUCT of another frame of reference, or with
contours on images that are not loaded (or on no image plane: between the slices, or not planar),
is refused with an error naming what is wrong. One exception: a file whose frame of reference UID
differs from the images' but whose contours reference the loaded images one by one (some
exporters invent a new frame of reference UID) is read onto those images, with a warning.

Damage is confined to what it touches, each left out with a warning naming its ROI: contours
whose ContourData is empty, absent, not numbers, not whole (x, y, z) points or 10¹¹ mm or more
away; closed contours with fewer than 3 points; the later ROI and ROI Contour items of an ROI
number used twice. Markers (POINT, OPEN_PLANAR) more than half a slice beyond the images are
kept, with a warning. An ROI without contours is read as an empty structure, and a ROIDisplayColor
that is not three numbers 0–255 gives way to the name's default colour, each said in a warning.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataelem import RawDataElement

from planning.derived import restore_recipes
from planning.dicom.headers import read_dataset
from planning.dicom.stack import image_plane_origins
from planning.errors import Cancelled, ContoursOffImagesError, DelineoError, DicomReadError, GeometryError
from planning.interpolation import fill_planes_without_images
from planning.rtstruct import contours as planar
from planning.rtstruct.writer import MAX_COORDINATE_MM, RT_STRUCTURE_SET_STORAGE
from planning.structures import (
    CLOSED_TYPES,
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

_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_ROI_CONTOUR_SEQUENCE = 0x30060039
_CONTOUR_SEQUENCE = 0x30060040
_CONTOUR_IMAGE_SEQUENCE = 0x30060016
_SEQUENCE_TAGS = {_CONTOUR_SEQUENCE, _CONTOUR_IMAGE_SEQUENCE}  # the sequences inside ROI contours
_REFERENCED_SOP_INSTANCE = 0x00081155
_GEOMETRIC_TYPE = 0x30060042
_POINT_COUNT = 0x30060046
_CONTOUR_DATA = 0x30060050
_DISPLAY_COLOR = 0x3006002A
_REFERENCED_ROI_NUMBER = 0x30060084
#: Contours farther than this from their image plane (mm) are reported.
OFF_PLANE_REPORT_MM = 0.05
_ProgressCallback = Callable[[str, int, int], None]


@dataclass
class RoiRecord:
    """One ROI as the file states it, before rasterising.

    Attributes:
        number: ROI Number.
        name, description, algorithm, interpreted_type: from the structure set and observations.
        frame_of_reference: the ROI's ReferencedFrameOfReferenceUID ('' when absent).
        color: ROIDisplayColor, None when absent or invalid.
        contours: every contour item: LPS points (N, 3), geometric type, referenced image UID.
        declared_points: NumberOfContourPoints of each contour (None where absent).
    """

    number: int
    name: str
    description: str = ""
    algorithm: str = ""
    interpreted_type: str = ""
    frame_of_reference: str = ""
    color: tuple[int, int, int] | None = None
    contours: list[PlanarContour] = field(default_factory=list)
    declared_points: list[int | None] = field(default_factory=list)


def parse_rois(dataset) -> tuple[list[RoiRecord], list[str]]:
    """The ROIs of an RTSTRUCT dataset in file order, and the problems met reading them.

    An ROI number used twice keeps its first ROI, observation and ROI Contour item. Contours
    whose ContourData cannot be points in a patient (empty, not numbers, not whole points,
    10¹¹ mm or more) are left out, each kind of problem named with its ROI.
    """
    problems: list[str] = []
    records: dict[int, RoiRecord] = {}
    duplicated: set[int] = set()
    for item in dataset.get("StructureSetROISequence", []):
        number = _int(item.get("ROINumber"))
        name = str(item.get("ROIName", "") or "").strip() or f"ROI_{number}"
        if number is None:
            problems.append(f"the StructureSetROISequence item of {name} has no ROINumber and was ignored")
            continue
        if number in records:
            duplicated.add(number)
            problems.append(
                f"ROI number {number} is used twice ({records[number].name}, {name}); the second ROI "
                "and its contours were ignored"
            )
            continue
        records[number] = RoiRecord(
            number=number,
            name=name,
            description=str(item.get("ROIDescription", "") or ""),
            algorithm=str(item.get("ROIGenerationAlgorithm", "") or "").strip().upper(),
            frame_of_reference=str(item.get("ReferencedFrameOfReferenceUID", "") or "").strip(),
        )
    observed: set[int] = set()
    for item in dataset.get("RTROIObservationsSequence", []):
        number = _int(item.get("ReferencedROINumber"))
        if number in records and number not in observed:
            observed.add(number)
            records[number].interpreted_type = str(item.get("RTROIInterpretedType", "") or "").strip().upper()
    contoured: set[int] = set()
    for number, color, contours in _roi_contours(dataset):
        if number in contoured:
            if number not in duplicated:
                problems.append(
                    f"{records[number].name}: a second ROI Contour item for ROI number {number} was ignored"
                )
            continue
        if number not in records:
            problems.append(f"contours refer to ROI number {number}, which the structure set does not list")
            if number is None:
                continue
            records[number] = RoiRecord(number=number, name=f"ROI_{number}")
        contoured.add(number)
        record = records[number]
        record.color = _color(color)
        if color is not None and record.color is None:
            problems.append(
                f"{record.name}: ROIDisplayColor '{_shown(color)}' is not three whole numbers 0–255; "
                "its default colour is used"
            )
        if not contours:
            problems.append(f"ROI {record.name!r} has no contours; it is read as an empty structure")
        left_out: Counter[str] = Counter()
        for (points, problem), (_, kind, uid, declared) in zip(
            _points(contour[0] for contour in contours), contours, strict=True
        ):
            if problem:
                left_out[problem] += 1
                continue
            record.contours.append(PlanarContour(points, kind, uid))
            record.declared_points.append(declared)
        problems += [
            f"{record.name}: {n} contour(s) with {problem} were left out" for problem, n in left_out.items()
        ]
    problems += [
        f"ROI {record.name!r} has no contours (no ROI Contour item); it is read as an empty structure"
        for number, record in records.items()
        if number not in contoured
    ]
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
    Derived structures (a recipe in their ROI Description) can be rebuilt again.

    Args:
        path: the RTSTRUCT file.
        volume: the images it was drawn on.
        names: ROI names to read (default: all).
        allow_missing_images: drop contours that lie on no loaded image plane (beyond the
            images, between their slices, or not planar) with a warning, instead of refusing
            the file.
        on_progress: called as (stage, ROIs done, ROIs total).
        cancel: when set, reading stops between ROIs with `Cancelled`.

    Raises:
        DicomReadError: the file is not an RTSTRUCT, or is damaged.
        GeometryError: it belongs to another frame of reference.
        ContoursOffImagesError: contours lie on no loaded image plane (a GeometryError).
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
    placer = ImagePlanes(volume)
    _check_frame_of_reference(path, dataset, records, volume, placer, warnings)
    records = _in_images_frame(path, stated_frames(dataset), records, volume, warnings)
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
    warnings += restore_recipes(structure_set)
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


class ImagePlanes:
    """Puts contours on the volume's planes: by image reference, else by position."""

    def __init__(self, volume: Volume):
        grid = volume.grid
        self.grid = grid
        self.slices = volume.slices
        self.origins = image_plane_origins(grid, volume.slices)
        self.axes = grid.direction / np.asarray(grid.spacing_xyz)  # patient mm → index steps
        self.normal = grid.direction[:, 2]
        #: a contour lies on a plane when all its points are within this of it (half a slice, mm)
        self.on_plane_mm = 0.5 * grid.spacing_xyz[2]
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

    def where(self, k: int, distance: float) -> str:
        """What `place`'s answer means: "beyond" the first or last image, "between" the planes
        (no plane holds every point: not planar, or other slice positions), or "on" plane k."""
        if not 0 <= k < len(self.origins):
            return "beyond"
        return "between" if distance > self.on_plane_mm else "on"

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
    between_planes: list[PlanarContour] = field(default_factory=list)
    too_short: int = 0
    markers_beyond: int = 0
    mismatched: int = 0
    unknown_image: int = 0
    other_plane: int = 0
    off_plane_mm: float = 0.0


def _place(record: RoiRecord, placer: ImagePlanes) -> _Placed:
    placed = _Placed()
    for contour, declared in zip(record.contours, record.declared_points, strict=True):
        if declared is not None and declared != len(contour.points):
            placed.mismatched += 1
        k, uv, distance = placer.place(contour)
        if contour.geometric_type not in CLOSED_TYPES:
            placed.markers_beyond += placer.where(k, distance) == "beyond"
            placed.markers.append(contour)
            continue
        if len(contour.points) < 3:
            placed.too_short += 1
            continue
        where = placer.where(k, distance)
        if where != "on":
            (placed.outside if where == "beyond" else placed.between_planes).append(contour)
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


def stated_frames(dataset) -> set[str]:
    """The frames of reference an RTSTRUCT dataset says its structures are in."""
    frames = {
        str(item.get("FrameOfReferenceUID", ""))
        for item in dataset.get("ReferencedFrameOfReferenceSequence", [])
    }
    frames |= {
        str(item.get("ReferencedFrameOfReferenceUID", ""))
        for item in dataset.get("StructureSetROISequence", [])
    }
    frames.discard("")
    return frames


def _check_frame_of_reference(
    path: Path, dataset, records: list[RoiRecord], volume: Volume, placer: ImagePlanes, warnings: list[str]
) -> None:
    """Refuse another frame of reference, unless the contours reference the loaded images."""
    frames = stated_frames(dataset)
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


def _in_images_frame(
    path: Path, frames: set[str], records: list[RoiRecord], volume: Volume, warnings: list[str]
) -> list[RoiRecord]:
    """In a file that names the images' frame of reference (`frames`: those it states), the ROIs
    not declared in another; the others are left out with a warning, an error when none is left."""
    own = volume.frame_of_reference_uid
    if not own or own not in frames:
        return records  # the file is in another frame: `_check_frame_of_reference` decided
    kept = [r for r in records if r.frame_of_reference in ("", own)]
    for record in records:
        if record not in kept:
            warnings.append(
                f"{record.name}: declared in frame of reference {record.frame_of_reference}, not in the "
                f"images' {own}; left out (it was drawn on other images)"
            )
    if not kept:
        raise GeometryError(
            f"{path.name}: no ROI is in the images' frame of reference {own}; "
            f"{_names(records)} are declared in another"
        )
    return kept


def _names(records: list[RoiRecord]) -> str:
    return ", ".join(r.name for r in records[:6]) + ("…" if len(records) > 6 else "")


def _check_outside(
    path: Path,
    placed: list[tuple[RoiRecord, _Placed]],
    placer: ImagePlanes,
    allow_missing_images: bool,
    warnings: list[str],
) -> None:
    """Refuse contours beyond the loaded images or off their planes (unless allowed: then they
    are left out, with a warning)."""
    problems = [_beyond_images(placed, placer), _between_planes(placed, placer)]
    for problem in filter(None, problems):
        message, advice = problem
        if not allow_missing_images:
            raise ContoursOffImagesError(f"{path.name}: {message}; {advice}")
        warnings.append(f"{message}; those contours were left out")


def _rois(contours: list[tuple[str, PlanarContour]]) -> str:
    rois = sorted({name for name, _ in contours})
    return ", ".join(rois[:6]) + ("…" if len(rois) > 6 else "")


def _beyond_images(placed: list[tuple[RoiRecord, _Placed]], placer: ImagePlanes) -> tuple[str, str] | None:
    """(what is wrong, what to do) for contours beyond the first or last loaded image."""
    outside = [(record.name, contour) for record, p in placed for contour in p.outside]
    if not outside:
        return None
    missing = sorted({c.image_uid for _, c in outside if c.image_uid and c.image_uid not in placer.uids})
    positions = [float(c.points.mean(axis=0) @ placer.normal) for _, c in outside]
    where = (
        f"at {min(positions):.1f} to {max(positions):.1f} mm"
        if len(set(positions)) > 1
        else (f"at {positions[0]:.1f} mm")
    )
    message = (
        f"{len(outside)} contour(s) of {_rois(outside)} lie beyond the loaded images "
        f"({where}; {placer.describe_range()})"
    )
    if missing:
        shown = ", ".join(missing[:3]) + ("…" if len(missing) > 3 else "")
        message += f" on {len(missing)} image(s) that are not loaded ({shown})"
    return message, "load the complete image series the structures were drawn on"


def _between_planes(placed: list[tuple[RoiRecord, _Placed]], placer: ImagePlanes) -> tuple[str, str] | None:
    """(what is wrong, what to do) for contours within the images' extent that lie on no image
    plane: not planar (their points spread along the slice normal: a damaged contour), or drawn
    between the loaded slices (images with other slice positions)."""
    off = [(record.name, contour) for record, p in placed for contour in p.between_planes]
    if not off:
        return None
    along = [c.points @ placer.normal for _, c in off]
    spread = max(float(a.max() - a.min()) for a in along)
    thickness = placer.grid.spacing_xyz[2]
    where = ", ".join(f"{float(a.mean()):.1f}" for a in along[:3]) + ("…" if len(along) > 3 else "")
    message = f"{len(off)} contour(s) of {_rois(off)} at {where} mm lie on no image plane"
    if spread > 0.5 * thickness:
        return (
            f"{message}: their points spread over up to {spread:.1f} mm along the slice normal",
            "the file is damaged",
        )
    return (
        f"{message}: they lie between the loaded slices ({thickness:.2f} mm apart)",
        "load the image series the structures were drawn on (these images have other slice positions)",
    )


def _structure(record: RoiRecord, placed: _Placed, placer: ImagePlanes, warnings: list[str]) -> Structure:
    grid = placer.grid
    name = record.name
    if placed.mismatched:
        warnings.append(
            f"{name}: {placed.mismatched} contour(s) declare another NumberOfContourPoints than they hold"
        )
    if placed.too_short:
        warnings.append(f"{name}: {placed.too_short} closed contour(s) with fewer than 3 points were ignored")
    if placed.markers_beyond:
        warnings.append(
            f"{name}: {placed.markers_beyond} marker(s) lie more than half a slice beyond the first or last "
            f"image ({placer.describe_range()}); kept, but on no loaded image"
        )
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
        mask = fill_planes_without_images(mask, placer.slices)
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


# -- values ---------------------------------------------------------------------------------


#: A contour item as read: ContourData (raw DS bytes or numbers), type, image UID, declared count.
_Item = tuple[bytes | list, str, str, int | None]


def _roi_contours(dataset) -> list[tuple[int | None, object, list[_Item]]]:
    """(ROI number, ROIDisplayColor as stated (None when absent or empty), contour items) of each
    ROIContourSequence item, in file order.

    The sequence is walked straight from its bytes when the file is little endian (thousands of
    items: pydicom's datasets would take most of the reading time); otherwise through pydicom.
    """
    if _ROI_CONTOUR_SEQUENCE not in dataset:
        return []
    element = dataset.get_item(_ROI_CONTOUR_SEQUENCE)
    if isinstance(element, RawDataElement) and element.is_little_endian and isinstance(element.value, bytes):
        try:
            items, _ = _parse_sequence(element.value, 0, len(element.value), not element.is_implicit_VR)
            return [_roi_from_raw(item) for item in items]
        except (ValueError, struct.error, UnicodeDecodeError):
            pass  # not the plain encoding the walker knows: pydicom reads it
    result = []
    for roi in dataset.ROIContourSequence:
        contours = []
        for contour in roi.get("ContourSequence", []):
            images = contour.get("ContourImageSequence", [])
            data = contour.get_item(_CONTOUR_DATA) if _CONTOUR_DATA in contour else None
            value = (
                data.value
                if isinstance(data, RawDataElement)
                else (list(contour.ContourData) if data else b"")
            )
            contours.append(
                (
                    value if value is not None else b"",
                    str(contour.get("ContourGeometricType", "") or "CLOSED_PLANAR").strip().upper(),
                    str(images[0].get("ReferencedSOPInstanceUID", "")) if images else "",
                    _int(contour.get("NumberOfContourPoints")),
                )
            )
        color = roi.get("ROIDisplayColor")
        result.append((_int(roi.get("ReferencedROINumber")), None if color == "" else color, contours))
    return result


def _roi_from_raw(item: dict) -> tuple[int | None, object, list[_Item]]:
    contours = []
    for contour in item.get(_CONTOUR_SEQUENCE, []):
        images = contour.get(_CONTOUR_IMAGE_SEQUENCE, [])
        uid = _ascii(images[0].get(_REFERENCED_SOP_INSTANCE, b"")) if images else ""
        kind = _ascii(contour.get(_GEOMETRIC_TYPE, b"")).upper() or "CLOSED_PLANAR"
        contours.append(
            (contour.get(_CONTOUR_DATA, b""), kind, uid, _int(_ascii(contour.get(_POINT_COUNT, b""))))
        )
    color = _ascii(item.get(_DISPLAY_COLOR, b""))
    return (
        _int(_ascii(item.get(_REFERENCED_ROI_NUMBER, b""))),
        color.split("\\") if color else None,
        contours,
    )


def _parse_sequence(data: bytes, position: int, length: int, explicit: bool) -> tuple[list[dict], int]:
    """The items of a sequence value (little endian): each {tag: bytes, or list of items}."""
    end = len(data) if length == _UNDEFINED else position + length
    items = []
    while position + 8 <= end:
        group, element, item_length = struct.unpack_from("<HHI", data, position)
        position += 8
        tag = group << 16 | element
        if tag == _SEQUENCE_END:
            break
        if tag != _ITEM:
            raise ValueError(f"unexpected tag {tag:08X} in a sequence")
        item_end = end if item_length == _UNDEFINED else position + item_length
        item, position = _parse_item(data, position, item_end, explicit)
        items.append(item)
    return items, position


def _parse_item(data: bytes, position: int, end: int, explicit: bool) -> tuple[dict, int]:
    elements: dict = {}
    while position + 8 <= end:
        group, element = struct.unpack_from("<HH", data, position)
        tag = group << 16 | element
        if tag == _ITEM_END:
            return elements, position + 8
        if explicit:
            vr = data[position + 4 : position + 6]
            if vr in _LONG_VRS:
                length = struct.unpack_from("<I", data, position + 8)[0]
                position += 12
            else:
                length = struct.unpack_from("<H", data, position + 6)[0]
                position += 8
            sequence = vr == b"SQ"
        else:
            length = struct.unpack_from("<I", data, position + 4)[0]
            position += 8
            sequence = tag in _SEQUENCE_TAGS
        if sequence:
            elements[tag], position = _parse_sequence(data, position, length, explicit)
        elif length == _UNDEFINED:
            raise ValueError(f"element {tag:08X} of undefined length")
        else:
            elements[tag] = data[position : position + length]
            position += length
    return elements, position


def _points(values) -> list[tuple[np.ndarray, str]]:
    """ContourData of many contours as (N, 3) float arrays, converted in one pass, each with what
    makes it unusable ('' when nothing; then the points are empty)."""
    values = list(values)
    texts = [value.strip(b" \0") for value in values if isinstance(value, bytes)]
    try:
        numbers = _numbers(b"\\".join(text for text in texts if text))
    except ValueError:
        return [_one_contour(value) for value in values]  # which ones are not numbers
    result, start = [], 0
    for value in values:
        if isinstance(value, bytes):
            stripped = value.strip(b" \0")
            count = stripped.count(b"\\") + 1 if stripped else 0
            flat, start = numbers[start : start + count], start + count
            result.append(_checked(flat))
        else:
            result.append(_one_contour(value))
    return result


def _one_contour(value: bytes | list) -> tuple[np.ndarray, str]:
    try:
        flat = _numbers(value.strip(b" \0")) if isinstance(value, bytes) else np.asarray(value, np.float64)
    except (TypeError, ValueError):
        return np.zeros((0, 3)), "ContourData values that are not numbers"
    return _checked(flat.ravel())


def _numbers(text: bytes) -> np.ndarray:
    return np.array(text.split(b"\\"), dtype=np.float64) if text else np.zeros(0)


def _checked(flat: np.ndarray) -> tuple[np.ndarray, str]:
    """(points (N, 3), '') for usable ContourData values, else (no points, the problem)."""
    if not len(flat):
        return np.zeros((0, 3)), "empty or absent ContourData"
    if len(flat) % 3:
        return np.zeros((0, 3)), "a number of ContourData values that is not a multiple of 3 (x, y, z)"
    points = flat.reshape(-1, 3)
    if not np.isfinite(points).all():
        return np.zeros((0, 3)), "coordinates that are not numbers (NaN or infinite)"
    if np.abs(points).max() >= MAX_COORDINATE_MM:
        return np.zeros((0, 3)), "coordinates of 10¹¹ mm or more (far outside any patient)"
    return points, ""


def _ascii(value: bytes) -> str:
    return value.decode("ascii").strip(" \0")


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _color(value) -> tuple[int, int, int] | None:
    """ROIDisplayColor as three integers 0–255, None when absent or not that."""
    try:
        color = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        return None
    return color if len(color) == 3 and all(0 <= c <= 255 for c in color) else None


def _shown(value) -> str:
    """A stated DICOM value as the file holds it (several values joined by backslashes)."""
    return (
        "\\".join(map(str, value))
        if isinstance(value, Iterable) and not isinstance(value, str)
        else str(value)
    )
