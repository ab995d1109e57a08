"""Writing a `StructureSet` as a DICOM RT Structure Set that treatment planning systems accept.

What the file carries (see ``shared/guides/rtstruct.md`` for why each rule matters):

- patient, study and frame of reference copied from the images (`Volume.identity`); the images
  are referenced, never rewritten; the full ReferencedFrameOfReference → Study → Series →
  ContourImage chain lists every image of the series;
- one CLOSED_PLANAR contour per boundary per image, each with its image reference, traced at
  sub-voxel accuracy (`planning.rtstruct.contours`) and placed in the plane of its own image
  (oblique series included); holes as separate contours for even-odd filling, or keyholes;
- islands under 1 mm² dropped only when nothing of their structure touches them on the
  neighbouring planes (specks, a warning each), holes that small filled (one note naming all
  such structures: they change no extent); a one-voxel end cap is kept, so the structure keeps
  its first and last slices;
- markers (POINT, OPEN_PLANAR) referencing the image they lie on, none when they lie on no
  loaded image (more than half a slice from it: a wrong reference would move them);
- unique ROI numbers and names (case-insensitively: some planning systems ignore case), colours,
  one RT ROI Observations item per ROI with its interpreted type, the generation algorithm;
- DS values of at most 16 characters (coordinates to 1 µm), every Type 2 attribute present,
  provenance (Manufacturer "Delineo", software version, date and time, label).

Planes of the volume that were interpolated on loading (`Volume.slices[k] is None`: a missing
slice or irregular spacing) have no image to reference, so nothing is written on them; the
planning system rebuilds the structure between the neighbouring images, as it does between
any two contoured slices. A warning says which structures had voxels only there. The planes of a
gantry-tilted (sheared) stack are not interpolated: each image lies in its grid plane, only
shifted within it, so contours are written on every image where the mask is.

Structures imported from an RTSTRUCT and never edited are written from their kept contours, so
an import → export round trip changes no coordinate by more than the 1 µm rounding. Those read
from another reconstruction's planes (`Structure.drawn_elsewhere`) keep their outlines as drawn,
moved onto these images' planes; one warning names them with their volumes as drawn and as written.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import ImplicitVRLittleEndian, generate_uid

from planning import software_version
from planning.derived import recipe_from_description
from planning.dicom.charset import declare_character_set
from planning.dicom.file_meta import add_file_meta
from planning.dicom.references import check_references
from planning.dicom.stack import image_plane_origins
from planning.errors import Cancelled, DelineoError, FormatError, GeometryError
from planning.files import write_atomically
from planning.geometry import Grid
from planning.rtstruct import contours as planar
from planning.structures import DrawnElsewhere, Mask, RoiType, Structure, StructureSet
from planning.volume import SliceRef, Volume

log = logging.getLogger(__name__)

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
#: The SOP class named by RTReferencedStudySequence (Detached Study Management, as PS3.3 notes).
STUDY_REFERENCE_CLASS = "1.2.840.10008.3.1.2.3.1"
#: Islands enclosing less than this, in mm², are dropped by default when nothing of their structure
#: touches them on the neighbouring planes (specks); holes that small are filled.
DEFAULT_MIN_ISLAND_MM2 = 1.0
#: Coordinates are written with this many decimals (mm): 1 µm, at most 16 characters.
DECIMALS = 3
#: Coordinates at or above this (mm) do not fit in 16 characters with 3 decimals.
MAX_COORDINATE_MM = 1e11
#: Simplifying a structure's contours is warned of when it changes its volume by more than this.
SIMPLIFY_VOLUME_CHANGE = 0.02

_CONTOUR_SEQUENCE = Tag(0x3006, 0x0040)
_Contour = tuple[bytes, int, str, SliceRef | None]  # ContourData (DS), number of points, type, image
_ProgressCallback = Callable[[str, int, int], None]


def write_rtstruct(
    structure_set: StructureSet,
    volume: Volume,
    path: str | os.PathLike,
    *,
    simplify_mm: float = 0.0,
    keyhole: bool = False,
    min_island_mm2: float = DEFAULT_MIN_ISLAND_MM2,
    label: str | None = None,
    series_description: str = "Delineo structures",
    notes: list[str] | None = None,
    on_progress: _ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> list[str]:
    """Write `structure_set`, drawn on `volume`, as an RTSTRUCT file referencing its images.

    Args:
        structure_set: the structures; their grid must be the volume's.
        volume: the image series as loaded from DICOM (its identity and slice references).
        path: the file to write.
        simplify_mm: Douglas–Peucker tolerance in mm (0: keep every boundary vertex); a
            structure whose volume it changes by more than 2 % gets a warning.
        keyhole: join holes to their outer boundary (for systems that do not fill even-odd).
        min_island_mm2: islands enclosing less than this (mm²) that touch nothing of the structure
            on the neighbouring planes are dropped, with a warning each; a small island touching
            the structure there (an end cap) is kept. Holes that small are filled, said in one
            note for all structures.
        label: StructureSetLabel (16 characters at most); default: the structure set's label.
        series_description: SeriesDescription of the new RTSTRUCT series.
        notes: when given, what the writer changed that alters no structure's extent is appended
            here, in words (also logged at info level).
        on_progress: called as (stage, structures done, structures total).
        cancel: when set, writing stops between structures with `Cancelled`.

    Returns:
        What the writer had to change or leave out, in words (also logged).

    Raises:
        DelineoError: there is no structure to write.
        GeometryError: the volume was not loaded from DICOM, two of its images share one
            SOPInstanceUID, or the structures belong to another grid or frame of reference.
        FormatError: the file cannot be written.
    """
    _check_inputs(structure_set, volume)
    warnings: list[str] = []
    rois = _roi_identities(list(structure_set), warnings)
    planes = _Planes(volume)
    roi_contours = []
    holes_filled: list[str] = []  # the structures that had small holes filled
    moved: list[tuple[str, DrawnElsewhere]] = []  # those drawn on another reconstruction's planes
    for done, (structure, (number, name)) in enumerate(zip(structure_set, rois, strict=True)):
        if cancel is not None and cancel.is_set():
            raise Cancelled("RTSTRUCT export cancelled")
        if on_progress is not None:
            on_progress("Writing RTSTRUCT", done, len(rois))
        try:
            if structure.contours is not None:
                items = _kept_contours(structure, name, planes, keyhole, warnings)
                if structure.drawn_elsewhere is not None:
                    moved.append((name, structure.drawn_elsewhere))
            else:
                items = _traced_contours(
                    structure, name, planes, simplify_mm, keyhole, min_island_mm2, warnings, holes_filled
                )
            items += _markers(structure, name, planes, warnings)
        except FormatError as error:
            raise FormatError(f"{name}: {error}") from error
        roi_contours.append(_roi_contour(structure, number, items))
        if not items:
            warnings.append(f"{name}: empty, written without contours")
        if structure.recipe is not None and recipe_from_description(structure.description) is None:
            warnings.append(
                f"{name}: its recipe is too long for the ROI Description (1024 characters); it is "
                "written as a plain structure and cannot be rebuilt from its sources when read back"
            )
    if on_progress is not None:
        on_progress("Writing RTSTRUCT", len(rois), len(rois))
    if moved:
        warnings.append(_drawn_elsewhere_summary(moved, volume.grid.spacing_xyz[2]))
    if holes_filled:
        note = _holes_filled_note(holes_filled, min_island_mm2)
        log.info("%s: %s", Path(path).name, note)
        if notes is not None:
            notes.append(note)
    externals = [
        name for s, (_, name) in zip(structure_set, rois, strict=True) if s.roi_type == RoiType.EXTERNAL
    ]
    if len(externals) > 1:
        warnings.append(
            f"{len(externals)} structures are of type EXTERNAL ({', '.join(externals)}); most planning "
            "systems accept only one body outline"
        )
    dataset = _dataset(structure_set, volume, label, series_description)
    dataset.StructureSetROISequence = Sequence(
        [_structure_set_roi(s, n, name, volume) for s, (n, name) in zip(structure_set, rois, strict=True)]
    )
    dataset.ROIContourSequence = Sequence(roi_contours)
    dataset.RTROIObservationsSequence = Sequence(
        [_observation(i + 1, s, n) for i, (s, (n, _)) in enumerate(zip(structure_set, rois, strict=True))]
    )
    declare_character_set(dataset)
    _save(dataset, Path(path))
    for warning in warnings:
        log.warning("%s: %s", Path(path).name, warning)
    return warnings


# -- inputs ---------------------------------------------------------------------------------


def _check_inputs(structure_set: StructureSet, volume: Volume) -> None:
    check_references(volume)
    if not structure_set.grid.same_as(volume.grid):
        raise GeometryError(
            f"the structures are on a {structure_set.grid.shape} grid that is not the image grid "
            f"{volume.grid.shape}; resample them onto the images first"
        )
    own = structure_set.frame_of_reference_uid
    if own and own != volume.frame_of_reference_uid:
        raise GeometryError(
            f"the structures belong to frame of reference {own}, the images to "
            f"{volume.frame_of_reference_uid}: an RTSTRUCT may refer to one frame of reference only"
        )
    if not len(structure_set):
        raise DelineoError("no structure to write: an RTSTRUCT holds at least one ROI (DICOM Type 1)")


def _roi_identities(structures: list[Structure], warnings: list[str]) -> list[tuple[int, str]]:
    """Unique ROI numbers and names (LO: at most 64 characters, unique ignoring case)."""
    used_numbers: set[int] = set()
    used_names: set[str] = set()
    result = []
    for structure in structures:
        number = structure.number
        if number <= 0 or number in used_numbers:
            number = max(used_numbers | {0}) + 1
        used_numbers.add(number)
        name = " ".join(structure.name.replace("\\", "/").split())[:64]
        candidate, suffix = name, 2
        while candidate.upper() in used_names:
            tail = f"_{suffix}"
            candidate, suffix = name[: 64 - len(tail)] + tail, suffix + 1
        if candidate != structure.name:
            warnings.append(
                f"ROI name {structure.name!r} written as {candidate!r} (unique, at most 64 characters)"
            )
        used_names.add(candidate.upper())
        result.append((number, candidate))
    return result


class _Planes:
    """The volume's image planes: where contour points go and which image they reference."""

    def __init__(self, volume: Volume):
        grid = volume.grid
        self.grid = grid
        self.slices = volume.slices
        self.row_step = grid.direction[:, 0] * grid.spacing_xyz[0]  # one column along a row
        self.column_step = grid.direction[:, 1] * grid.spacing_xyz[1]  # one row down a column
        self.normal = grid.direction[:, 2]
        self.origins = image_plane_origins(grid, self.slices)  # points lie exactly in their image's plane

    def to_patient(self, k: np.ndarray, uv: np.ndarray) -> np.ndarray:
        """(N, 2) in-plane indices (u, v) on planes k (N,) → (N, 3) LPS mm."""
        return self.origins[k] + uv[:, :1] * self.row_step + uv[:, 1:2] * self.column_step

    def plane_of(self, points: np.ndarray) -> tuple[int, float]:
        """Nearest plane to LPS points, and their largest distance from it in mm."""
        k = int(np.clip(np.rint(self.grid.patient_to_index(points)[:, 2].mean()), 0, len(self.origins) - 1))
        distance = np.abs((points - self.origins[k]) @ self.normal)
        return k, float(distance.max())


def _kept_contours(
    structure: Structure, name: str, planes: _Planes, keyhole: bool, warnings: list[str]
) -> list[_Contour]:
    """An unedited imported structure: its own contours, each matched to its image; with
    `keyhole`, the holes of a plane are joined to their outer contour (`_keyholed`)."""
    by_plane: dict[int, list[np.ndarray]] = {}
    unplaced = 0
    for contour in structure.contours or []:
        k, distance = planes.plane_of(contour.points)
        if planes.slices[k] is None or distance > 0.5 * planes.grid.spacing_xyz[2]:
            unplaced += 1
            continue
        by_plane.setdefault(k, []).append(contour.points)
    if unplaced:
        warnings.append(f"{name}: {unplaced} imported contour(s) lie on no loaded image and were left out")
    unjoined = 0
    items = []
    for k, polygons in by_plane.items():
        if keyhole:
            polygons, left = _keyholed(planes, k, polygons)
            unjoined += left
        items += [(format_ds(points), len(points), "CLOSED_PLANAR", planes.slices[k]) for points in polygons]
    if unjoined:
        warnings.append(
            f"{name}: {unjoined} hole(s) could not be keyholed and were written as separate contours"
        )
    return items


def _keyholed(planes: _Planes, k: int, polygons: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Imported contours (LPS mm) of plane k with each hole joined to the contour around it
    (`planar.keyhole`), and how many holes could not be. A plane without holes is returned as it
    is; one with holes comes back projected onto its image plane."""
    uv = [
        np.column_stack(
            [
                (points - planes.origins[k]) @ step / float(step @ step)
                for step in (planes.row_step, planes.column_step)
            ]
        )
        for points in polygons
    ]
    loops = planar.Loops.from_list(uv, [k] * len(uv))
    depths = planar.nesting_depths(loops)
    if not any(depth % 2 for depth in depths):
        return polygons, 0
    # planar.keyhole tells holes by their winding: outer boundaries positive, holes negative
    oriented = [
        loop if (area > 0) == (depth % 2 == 0) else loop[::-1]
        for loop, area, depth in zip(uv, loops.areas(), depths, strict=True)
    ]
    joined, unjoined = planar.keyhole(planar.Loops.from_list(oriented, [k] * len(oriented)))
    return [
        planes.to_patient(np.full(len(joined.loop(i)), k), joined.loop(i)) for i in range(len(joined))
    ], unjoined


def _markers(structure: Structure, name: str, planes: _Planes, warnings: list[str]) -> list[_Contour]:
    """POINT and OPEN_PLANAR markers, each referencing the image it lies on (within half a slice);
    one on no loaded image is written without an image reference."""
    items, unplaced = [], 0
    for marker in structure.markers:
        k, distance = planes.plane_of(marker.points)
        ref = planes.slices[k] if distance <= 0.5 * planes.grid.spacing_xyz[2] else None
        unplaced += ref is None
        items.append((format_ds(marker.points), len(marker.points), marker.geometric_type, ref))
    if unplaced:
        warnings.append(
            f"{name}: {unplaced} marker(s) lie on no loaded image (more than half a slice from every image, "
            "or on an interpolated plane); written without an image reference"
        )
    return items


def _traced_contours(
    structure: Structure,
    name: str,
    planes: _Planes,
    simplify_mm: float,
    keyhole: bool,
    min_island_mm2: float,
    warnings: list[str],
    holes_filled: list[str],
) -> list[_Contour]:
    """The structure's mask traced on its image planes; `name` is added to `holes_filled` when
    small holes were filled (a note for all structures, not a warning each: no extent changes)."""
    mask = structure.mask
    if mask.is_empty:
        return []
    spacing_xy = planes.grid.spacing_xyz[:2]
    loops = planar.trace(mask.array, mask.offset)
    dropped, specks = _specks_and_small_holes(loops, mask, min_island_mm2, spacing_xy)
    if specks.any():
        where = _describe_planes(planes, sorted(set(loops.planes[specks].tolist())))
        warnings.append(
            f"{name}: {np.count_nonzero(specks)} island(s) dropped (nothing of it touches them on the "
            f"neighbouring slices), each under {min_island_mm2:g} mm² ({where})"
        )
    if (dropped & (loops.areas() < 0)).any():
        holes_filled.append(name)
    if dropped.any():
        loops = loops.select(~dropped)
    if simplify_mm > 0:
        simplified = planar.simplify(loops, simplify_mm, spacing_xy)
        warnings += _volume_change(name, loops, simplified, planes.grid, simplify_mm)
        loops = simplified
    if keyhole:
        loops, unjoined = planar.keyhole(loops)
        if unjoined:
            warnings.append(
                f"{name}: {unjoined} hole(s) could not be keyholed and were written as separate contours"
            )
    without_image = [k for k in sorted(set(loops.planes.tolist())) if planes.slices[k] is None]
    if without_image:
        on_images = [k for k in set(loops.planes.tolist()) if planes.slices[k] is not None]
        what = "all its voxels are" if not on_images else f"{len(without_image)} plane(s) are"
        where = _describe_planes(planes, without_image)
        warnings.append(
            f"{name}: {what} on interpolated planes with no source image ({where}); "
            "contours are written on the original images only"
        )
    on_image = np.array([planes.slices[k] is not None for k in loops.planes.tolist()], bool)
    loops = loops.select(on_image)
    if not len(loops):
        return []
    plane_of_point = np.repeat(loops.planes, loops.sizes())
    points = planes.to_patient(plane_of_point, loops.points)
    data = format_ds_many(points, loops.starts)
    sizes = loops.sizes().tolist()
    return [
        (values, size, "CLOSED_PLANAR", planes.slices[k])
        for values, size, k in zip(data, sizes, loops.planes.tolist(), strict=True)
    ]


def _specks_and_small_holes(
    loops: planar.Loops, mask: Mask, min_island_mm2: float, spacing_xy: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The loops to leave out, and of them the specks (bool, one per loop each).

    Left out: holes under `min_island_mm2` (filled), and islands that small unless they touch the
    structure on a neighbouring plane; those are part of it in 3D (the one-voxel end cap of a
    round GTV, a thin vessel's cross-section), and dropping them would shorten the structure by a
    slice. Such an island inside a small hole is left out too: filling the hole covers it.
    """
    small = planar.small_loops(loops, min_area_mm2=min_island_mm2, spacing_xy=spacing_xy)
    if not small.any():
        return small, small
    areas = loops.areas()
    islands, holes = small & (areas > 0), small & (areas < 0)
    joined = planar.touch_adjacent_planes(loops, islands, mask.array, mask.offset)
    covered = planar.inside_any(loops, joined, holes)
    specks = islands & ~joined
    return holes | covered | specks, specks


def _holes_filled_note(names: list[str], min_island_mm2: float) -> str:
    return (
        f"holes under {min_island_mm2:g} mm² filled in {len(names)} structure(s) ({', '.join(names)}); "
        "a hole that small changes no structure's extent"
    )


def _drawn_elsewhere_summary(moved: list[tuple[str, DrawnElsewhere]], spacing_mm: float) -> str:
    """The warning for structures drawn on another reconstruction's planes, written on these
    images' planes: each one's volume as drawn and as written, the largest changes first."""
    moved = sorted(moved, key=lambda item: -abs(item[1].change))
    shown = ", ".join(
        f"{name} {m.drawn_cc:.2f} → {m.placed_cc:.2f} cc ({100 * m.change:+.1f} %)" for name, m in moved[:8]
    )
    if len(moved) > 8:
        shown += f" and {len(moved) - 8} more, each within {100 * abs(moved[8][1].change):.1f} %"
    drawn = ", ".join(sorted({f"{m.spacing_mm:.2f}" for _, m in moved}))
    return (
        f"{len(moved)} structure(s) were drawn on another reconstruction's planes ({drawn} mm apart) and "
        f"are written on these images' {spacing_mm:.2f} mm planes, each image plane holding the outline "
        f"of the drawn plane nearest to it as drawn; their volumes as drawn → as written: {shown}"
    )


def _volume_change(
    name: str, traced: planar.Loops, simplified: planar.Loops, grid: Grid, simplify_mm: float
) -> list[str]:
    """A warning when simplifying changed the volume by more than `SIMPLIFY_VOLUME_CHANGE`, the
    volume being that of the voxels whose centres the contours enclose (as they are read back)."""
    before, after = (int(planar.rasterize(loops, grid.shape)[0].sum()) for loops in (traced, simplified))
    if not before or abs(after / before - 1) <= SIMPLIFY_VOLUME_CHANGE:
        return []
    return [
        f"{name}: simplifying its contours ({simplify_mm:g} mm) changes its volume from "
        f"{before * grid.voxel_volume_cc:.3f} to {after * grid.voxel_volume_cc:.3f} cc "
        f"({100 * (after / before - 1):+.1f} %); export it without simplifying to keep its volume"
    ]


def _describe_planes(planes: _Planes, ks: list[int]) -> str:
    shown = ", ".join(f"{k + 1}" for k in ks[:6]) + ("…" if len(ks) > 6 else "")
    return f"slice{'s' if len(ks) > 1 else ''} {shown} of {len(planes.slices)}"


# -- datasets -------------------------------------------------------------------------------


def format_ds(values: np.ndarray) -> bytes:
    """A DS value (backslash-separated decimals, each ≤ 16 characters), padded to even length."""
    return format_ds_many(np.asarray(values, np.float64).reshape(-1, 3), np.array([0, len(values)]))[0]


def format_ds_many(points: np.ndarray, starts: np.ndarray) -> list[bytes]:
    """ContourData values of many contours at once: points (N, 3) LPS mm, contour i being
    points[starts[i]:starts[i + 1]]. Coordinates to 1 µm: at most 16 characters for |x| < 10¹¹ mm."""
    values = np.asarray(points, np.float64)
    if values.size and (not np.all(np.isfinite(values)) or np.abs(values).max() >= MAX_COORDINATE_MM):
        raise FormatError("coordinates must be finite and below 10¹¹ mm to be written as DICOM DS")
    values = np.round(values, DECIMALS) + 0.0  # no "-0.000"
    number = f"%.{DECIMALS}f"
    one_point = f"{number}\\{number}\\{number}"
    # One formatting pass for all contours; "|" separates contours, "\\" the numbers of one.
    pattern = "|".join("\\".join([one_point] * int(n)) for n in np.diff(starts))
    text = pattern % tuple(values.ravel().tolist())
    result = []
    for piece in text.split("|"):
        data = piece.encode("ascii")
        result.append(data + b" " if len(data) % 2 else data)
    return result


def _roi_contour(structure: Structure, number: int, contours: list[_Contour]) -> Dataset:
    roi = Dataset()
    roi.ROIDisplayColor = list(structure.color)
    if contours:
        value = b"".join(_contour_item(index, *contour) for index, contour in enumerate(contours, start=1))
        roi[_CONTOUR_SEQUENCE] = RawDataElement(_CONTOUR_SEQUENCE, "SQ", len(value), value, 0, True, True)
    roi.ReferencedROINumber = number
    return roi


# The contour items, thousands per file, are encoded here directly (implicit VR little endian):
# building them as pydicom datasets would take most of the export time.


def _contour_item(number: int, data: bytes, count: int, geometric_type: str, ref: SliceRef | None) -> bytes:
    """One ContourSequence item: its image reference (none for a marker on no image), type, point
    count, number and points."""
    body = b"" if ref is None else _element(0x30060016, _item(_image_reference(ref)))
    body += (
        _element(0x30060042, _text(geometric_type))
        + _element(0x30060046, _text(str(count)))
        + _element(0x30060048, _text(str(number)))
        + _element(0x30060050, data)
    )
    return _item(body)


def _image_reference(ref: SliceRef) -> bytes:
    image = _element(0x00081150, _uid(ref.sop_class_uid)) + _element(0x00081155, _uid(ref.sop_instance_uid))
    if ref.frame is not None:
        image += _element(0x00081160, _text(str(ref.frame)))
    return image


def _element(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def _item(value: bytes) -> bytes:
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(value)) + value


def _uid(uid: str) -> bytes:
    data = uid.encode("ascii")
    return data + b"\0" if len(data) % 2 else data


def _text(text: str) -> bytes:
    data = text.encode("ascii")
    return data + b" " if len(data) % 2 else data


def _structure_set_roi(structure: Structure, number: int, name: str, volume: Volume) -> Dataset:
    item = Dataset()
    item.ROINumber = number
    item.ReferencedFrameOfReferenceUID = volume.frame_of_reference_uid
    item.ROIName = name
    if structure.description:
        item.ROIDescription = structure.description[:1024]
    item.ROIGenerationAlgorithm = structure.algorithm.value
    return item


def _observation(index: int, structure: Structure, number: int) -> Dataset:
    item = Dataset()
    item.ObservationNumber = index
    item.ReferencedROINumber = number
    item.RTROIInterpretedType = structure.roi_type.value
    item.ROIInterpreter = ""
    return item


def _dataset(
    structure_set: StructureSet, volume: Volume, label: str | None, series_description: str
) -> Dataset:
    identity = volume.identity
    now = datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds = Dataset()
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    # Patient and study: copied from the images.
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = identity.patient_birth_date
    ds.PatientSex = identity.patient_sex
    ds.StudyInstanceUID = identity.study_instance_uid
    ds.StudyDate = identity.study_date
    ds.StudyTime = identity.study_time
    ds.ReferringPhysicianName = identity.referring_physician_name
    ds.StudyID = identity.study_id
    ds.AccessionNumber = identity.accession_number
    if identity.study_description:
        ds.StudyDescription = identity.study_description
    # RT series and equipment: the new object's own.
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.SeriesDescription = series_description[:64]
    ds.OperatorsName = ""
    ds.Manufacturer = "Delineo"
    ds.ManufacturerModelName = "Delineo"
    ds.SoftwareVersions = software_version()
    ds.InstanceNumber = 1
    # Frame of reference: the images' (PositionReferenceIndicator is Type 2, not known here).
    ds.FrameOfReferenceUID = volume.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    # Structure set.
    full_label = label or structure_set.label or "Delineo"
    ds.StructureSetLabel = full_label[:16]
    ds.StructureSetName = full_label[:64]
    ds.StructureSetDate, ds.StructureSetTime = date, time
    ds.ReferencedFrameOfReferenceSequence = Sequence([_referenced_frame(volume)])
    ds.ApprovalStatus = "UNAPPROVED"
    return ds


def _referenced_frame(volume: Volume) -> Dataset:
    images = []
    seen = set()
    for ref in volume.slices:
        if ref is None or (ref.sop_instance_uid, ref.frame) in seen:
            continue
        seen.add((ref.sop_instance_uid, ref.frame))
        image = Dataset()
        image.ReferencedSOPClassUID = ref.sop_class_uid
        image.ReferencedSOPInstanceUID = ref.sop_instance_uid
        if ref.frame is not None:
            image.ReferencedFrameNumber = ref.frame
        images.append(image)
    series = Dataset()
    series.SeriesInstanceUID = volume.identity.series_instance_uid
    series.ContourImageSequence = Sequence(images)
    study = Dataset()
    study.ReferencedSOPClassUID = STUDY_REFERENCE_CLASS
    study.ReferencedSOPInstanceUID = volume.identity.study_instance_uid
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = volume.frame_of_reference_uid
    frame.RTReferencedStudySequence = Sequence([study])
    return frame


def _save(dataset: Dataset, path: Path) -> None:
    add_file_meta(dataset, ImplicitVRLittleEndian)  # 4-byte lengths: no 64 kB limit on ContourData
    _declare_encoding(dataset)
    write_atomically(path, lambda target: dataset.save_as(target, enforce_file_format=True))


def _declare_encoding(dataset: Dataset) -> None:
    """Declare every dataset as already implicit VR little endian in its character set, so pydicom
    writes the raw contour items as they are instead of parsing them back."""
    dataset.set_original_encoding(True, True, dataset._character_set)
    for tag in dataset.keys():
        element = dataset.get_item(tag)  # never parses a raw element
        if not isinstance(element, RawDataElement) and element.VR == "SQ":
            for item in element.value:
                _declare_encoding(item)
