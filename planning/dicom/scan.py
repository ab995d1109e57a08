"""Scanning folders: what patients, studies, series and RT objects a set of files holds.

Only headers are read (see `planning.dicom.headers`). Image files are grouped into loadable
series (`ImageSeries`), one per volume: a DICOM series that mixes orientations, image sizes,
echoes or repeated acquisitions is split. Non-image objects (RTSTRUCT, RTDOSE, RTPLAN, SEG, REG)
are listed with what they reference. Files that are not DICOM, or are unreadable, are reported as
`FileProblem` and never stop the scan.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from planning.dicom.headers import Header, NotDicomError, read_dataset, read_header
from planning.dicom.stack import plan_stack
from planning.errors import Cancelled, DelineoError
from planning.volume import DicomIdentity

log = logging.getLogger(__name__)

#: Non-image storage classes Delineo lists, by SOP Class UID.
RT_OBJECT_KINDS = {
    "1.2.840.10008.5.1.4.1.1.481.3": "RTSTRUCT",
    "1.2.840.10008.5.1.4.1.1.481.2": "RTDOSE",
    "1.2.840.10008.5.1.4.1.1.481.5": "RTPLAN",
    "1.2.840.10008.5.1.4.1.1.481.8": "RTPLAN",
    "1.2.840.10008.5.1.4.1.1.66.4": "SEG",
    "1.2.840.10008.5.1.4.1.1.66.1": "REG",
    "1.2.840.10008.5.1.4.1.1.66.3": "REG",
}
#: Multi-frame storage classes whose geometry is in per-frame functional groups.
ENHANCED_IMAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR
}


#: Modalities whose objects are images (one without Rows and Columns is damaged).
_IMAGE_MODALITIES = {"CT", "MR", "PT", "NM", "US", "XA", "RF", "CR", "DX", "MG", "OT"}
#: CT, MR and PET image storage classes (with the enhanced ones, below).
_IMAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2",
    "1.2.840.10008.5.1.4.1.1.4",
    "1.2.840.10008.5.1.4.1.1.128",
} | ENHANCED_IMAGE_CLASSES
#: Name endings of files that are surely not DICOM images (left out of a series' warnings).
_NOT_IMAGE_SUFFIXES = {".txt", ".xml", ".json", ".html", ".htm", ".pdf", ".csv", ".md", ".ini", ".log"}
#: Names only DICOM files are given: text under one is a slice replaced (an error page saved as it)
_DICOM_SUFFIXES = {".dcm", ".dicom", ".ima"}


def _is_text(path: Path) -> bool:
    """Whether a file's first kilobyte is printable UTF-8 text (a DICOM file never is: binary
    lengths and tags)."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(1024)
    except OSError:
        return False
    try:
        start = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:  # not just a character cut at the end of the kilobyte
            return False
        start = head[: error.start].decode("utf-8")
    return bool(start) and all(c.isprintable() or c in "\r\n\t" for c in start)


@dataclass(frozen=True)
class FileProblem:
    """A file (or folder) the scan could not use, and why (`reason` starts with its name).

    `kind` is "unreadable" (damaged, truncated, or refused by the system), "not DICOM", "text"
    (not DICOM: a README or LICENSE beside the images) or "no image" (a DICOM object Delineo
    does not list).
    """

    path: Path
    reason: str
    kind: str = "unreadable"

    @property
    def may_be_image(self) -> bool:
        """Whether the file could have been an image of a series (so a loaded series may lack it)."""
        if self.kind == "not DICOM":
            return self.path.suffix.lower() not in _NOT_IMAGE_SUFFIXES
        if self.kind == "text":
            return self.path.suffix.lower() in _DICOM_SUFFIXES
        return self.kind == "unreadable"


@dataclass
class ImageSeries:
    """One loadable volume: image files of one series sharing orientation, size and echo.

    Attributes:
        key: unique name of the loadable: the SeriesInstanceUID, plus a suffix when the series
            was split.
        identity: patient / study / series / frame-of-reference identity.
        modality: DICOM modality.
        headers: the files' headers, in no particular order (the loader sorts by position).
        split_note: why this part was split from its series ("" when it was not).
        unread: files and folders the scan could not read that may hold images of this series
            (in its folders, or anywhere when it is the only series found).
    """

    key: str
    identity: DicomIdentity
    modality: str
    headers: list[Header]
    split_note: str = ""
    unread: list[FileProblem] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return int(self.headers[0].get("Rows", 0))

    @property
    def columns(self) -> int:
        return int(self.headers[0].get("Columns", 0))

    @property
    def number_of_images(self) -> int:
        return sum(int(h.get("NumberOfFrames", 1) or 1) for h in self.headers)

    @property
    def pixel_spacing(self) -> tuple[float, float] | None:
        """(row spacing, column spacing) in mm as the first file states it."""
        spacing = self.headers[0].get("PixelSpacing")
        return tuple(spacing) if isinstance(spacing, list) and len(spacing) == 2 else None

    @property
    def description(self) -> str:
        return self.identity.series_description

    @property
    def slice_spacing(self) -> float | None:
        """Distance in mm between neighbouring slices, the z spacing the loaded volume has: from
        the positions along the slice normal (`plan_stack`, as the loader computes it). None for a
        single plane, a multi-frame file (its frames' positions are not in the scanned headers)
        or images that state no position."""
        positions = [h.get("ImagePositionPatient") for h in self.headers]
        if len(positions) < 2 or not all(isinstance(p, list) and len(p) == 3 for p in positions):
            return None
        if any(int(h.get("NumberOfFrames", 1) or 1) > 1 for h in self.headers):
            return None
        orientation = self.headers[0].get("ImageOrientationPatient")
        if not (isinstance(orientation, list) and len(orientation) == 6):
            orientation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]  # the loader assumes axial too
        try:
            plan = plan_stack(
                np.asarray(positions, float), np.asarray(orientation, float), (1.0, 1.0), (1, 1), None
            )
        except (DelineoError, ValueError):
            return None
        return float(plan.grid.spacing_xyz[2]) if plan.grid.shape[0] > 1 else None

    def describe(self) -> str:
        """One line a user reads: modality, size, pixel size, slice spacing, description.

        Slices are described by the distance between them (the volume's z spacing), with their
        SliceThickness when it differs: "7 mm apart (5 mm thick)" for slices with gaps.
        """
        spacing = self.pixel_spacing
        spacing_text = f", {spacing[1]:.3g}×{spacing[0]:.3g} mm pixels" if spacing else ""
        note = f" [{self.split_note}]" if self.split_note else ""
        return (
            f"{self.modality or '?'} {self.columns}×{self.rows}×{self.number_of_images}"
            f"{spacing_text}{self._slices_text()} — {self.description or 'no description'}{note}"
        )

    def _slices_text(self) -> str:
        """ ", 3 mm slices", ", 7 mm apart (5 mm thick)", ", 5 mm thick" (one plane) or ""."""
        thickness = self.headers[0].get("SliceThickness")
        thickness = thickness if isinstance(thickness, float) and thickness > 0 else None
        between = self.slice_spacing
        if between is None:
            return f", {thickness:.3g} mm thick" if thickness else ""
        if thickness is None or f"{thickness:.3g}" == f"{between:.3g}":
            return f", {between:.3g} mm slices"
        return f", {between:.3g} mm apart ({thickness:.3g} mm thick)"


@dataclass
class RTObject:
    """A non-image DICOM object and what it references.

    Attributes:
        kind: "RTSTRUCT", "RTDOSE", "RTPLAN", "SEG" or "REG".
        path: the file.
        identity: patient / study / its own series, and its frame of reference.
        sop_instance_uid: its own SOP Instance UID.
        label: StructureSetLabel, RTPlanLabel, content label or series description.
        referenced_series_uids: image series it refers to.
        referenced_instance_uids: other objects it refers to (plan → structure set, dose → plan).
        frames_of_reference: every frame of reference it refers to.
        items: ROI names (RTSTRUCT), segment labels (SEG) or beam names (RTPLAN).
        dose: what an RTDOSE holds, "DoseSummationType DoseType DoseUnits" ("PLAN PHYSICAL GY",
            "BEAM …"), so that a plan's dose can be told from its beams' ("" for other kinds).
        dose_summation: an RTDOSE's DoseSummationType ("PLAN", "BEAM", …; "" when not stated).
        dose_plan_uid: the SOP Instance UID of the RTPLAN an RTDOSE is the dose of ("" if none).
    """

    kind: str
    path: Path
    identity: DicomIdentity
    sop_instance_uid: str
    label: str = ""
    referenced_series_uids: list[str] = field(default_factory=list)
    referenced_instance_uids: list[str] = field(default_factory=list)
    frames_of_reference: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    dose: str = ""
    dose_summation: str = ""
    dose_plan_uid: str = ""

    def describe(self) -> str:
        refs = ", ".join(self.referenced_series_uids) or "no image series"
        items = f"; {len(self.items)} items: {', '.join(self.items[:8])}" if self.items else ""
        more = "…" if len(self.items) > 8 else ""
        dose = f" ({self.dose})" if self.dose else ""
        return f"{self.kind} '{self.label or self.path.name}'{dose} → series {refs}{items}{more}"


@dataclass
class Study:
    instance_uid: str
    description: str
    date: str
    series: list[ImageSeries] = field(default_factory=list)
    rt_objects: list[RTObject] = field(default_factory=list)


@dataclass
class Patient:
    patient_id: str
    name: str
    studies: list[Study] = field(default_factory=list)


@dataclass
class ScanResult:
    """Everything a scan found."""

    series: list[ImageSeries] = field(default_factory=list)
    rt_objects: list[RTObject] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)

    def patients(self) -> list[Patient]:
        """Series and RT objects arranged as patients → studies."""
        patients: dict[str, Patient] = {}
        studies: dict[tuple[str, str], Study] = {}
        for item in [*self.series, *self.rt_objects]:
            identity = item.identity
            patient = patients.setdefault(
                identity.patient_id, Patient(identity.patient_id, identity.patient_name)
            )
            study_key = (identity.patient_id, identity.study_instance_uid)
            if study_key not in studies:
                studies[study_key] = Study(
                    identity.study_instance_uid, identity.study_description, identity.study_date
                )
                patient.studies.append(studies[study_key])
            target = studies[study_key]
            (target.series if isinstance(item, ImageSeries) else target.rt_objects).append(item)
        return list(patients.values())

    def find_series(self, key: str) -> ImageSeries:
        """The loadable series whose key (or SeriesInstanceUID) is `key`."""
        matches = [s for s in self.series if key in (s.key, s.identity.series_instance_uid)]
        if len(matches) != 1:
            known = ", ".join(s.key for s in self.series) or "none"
            problem = "is split into several volumes" if matches else "is not among the scanned"
            raise DelineoError(f"series {key} {problem}; loadable series: {known}")
        return matches[0]

    def nothing_to_open(self, path) -> str:
        """Why a scan of `path` found no image series: the path and the first unread files."""
        problems = "; ".join(p.reason for p in self.problems[:3])
        more = f"; and {len(self.problems) - 3} more" if len(self.problems) > 3 else ""
        return f"{path}: no CT/MR image series found" + (f" ({problems}{more})" if problems else "")


def scan(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    on_progress: Callable[[str, int, int], None] | None = None,
    cancel=None,
) -> ScanResult:
    """Scan a folder (recursively), a file, or a list of files and folders.

    Args:
        paths: what to scan.
        on_progress: called as (stage, files done, files total) every 64 files.
        cancel: a `threading.Event`; when set, the scan raises `Cancelled`.
    """
    result = ScanResult()
    files = list_files(paths, result.problems)
    image_headers: list[Header] = []
    for done, path in enumerate(files):
        if done % 64 == 0:
            if cancel is not None and cancel.is_set():
                raise Cancelled("scan cancelled")
            if on_progress is not None:
                on_progress("Reading headers", done, len(files))
        try:
            header = read_header(path)
        except NotDicomError as error:
            result.problems.append(FileProblem(path, str(error), "text" if _is_text(path) else "not DICOM"))
            continue
        except DelineoError as error:
            result.problems.append(FileProblem(path, str(error)))
            continue
        sop_class = str(header.get("SOPClassUID", ""))
        if sop_class in RT_OBJECT_KINDS:
            try:
                result.rt_objects.append(_rt_object(header, RT_OBJECT_KINDS[sop_class]))
            except DelineoError as error:
                result.problems.append(FileProblem(path, str(error)))
        elif "Rows" in header.values and "Columns" in header.values:
            if sop_class in ENHANCED_IMAGE_CLASSES:
                _add_functional_group_measures(header)
            image_headers.append(header)
        elif header.get("Modality") in _IMAGE_MODALITIES or sop_class in _IMAGE_CLASSES:
            kind = header.get("Modality") or sop_class
            reason = f"{path.name}: damaged {kind} image: its header has no Rows or Columns"
            result.problems.append(FileProblem(path, reason))
        else:
            kind = header.get("Modality") or sop_class or "unknown"
            reason = f"{path.name}: DICOM object of type {kind} has no image"
            result.problems.append(FileProblem(path, reason, "no image"))
    if on_progress is not None:
        on_progress("Reading headers", len(files), len(files))
    result.series = group_series(image_headers)
    _attach_unread(result)
    return result


def _add_functional_group_measures(header: Header) -> None:
    """Give an enhanced multi-frame image's header the PixelSpacing, SliceThickness and
    SpacingBetweenSlices its functional groups state (per-frame groups of its first frame, else
    the shared ones), where a classic image states them, so that its series is described and
    grouped by them. A file whose groups cannot be read keeps its header as it is: the loader
    names what is wrong."""
    try:
        dataset = read_dataset(header.path)
    except DelineoError:
        return
    groups = [*dataset.get("PerFrameFunctionalGroupsSequence", [])[:1]]
    groups += dataset.get("SharedFunctionalGroupsSequence", [])[:1]
    measures = [group.PixelMeasuresSequence[0] for group in groups if group.get("PixelMeasuresSequence")]
    for keyword in ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices"):
        value = next((item.get(keyword) for item in measures if item.get(keyword) is not None), None)
        if value is not None and keyword not in header.values:
            header.values[keyword] = [float(v) for v in value] if keyword == "PixelSpacing" else float(value)


def _attach_unread(result: ScanResult) -> None:
    """Give each series the unreadable files that may be its images: those in its folders, and
    unreadable folders; every one when it is the only series."""
    unread = [problem for problem in result.problems if problem.may_be_image]
    for series in result.series:
        folders = {header.path.parent for header in series.headers}
        series.unread = [
            problem
            for problem in unread
            if len(result.series) == 1 or problem.path.parent in folders or problem.path.is_dir()
        ]


def list_files(paths, problems: list[FileProblem] | None = None) -> list[Path]:
    """The files of `paths` (files, or folders searched recursively, in name order; hidden files
    left out). A path that does not exist is refused; a folder that cannot be read is added to
    `problems` (when given)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]

    def folder_error(error: OSError) -> None:
        if problems is not None:
            folder = Path(error.filename or "?")
            reason = f"{folder}: folder cannot be read ({error.strerror or error})"
            problems.append(FileProblem(folder, reason))

    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            for root, dirs, names in os.walk(path, onerror=folder_error):
                dirs.sort()
                files.extend(Path(root) / name for name in sorted(names) if not name.startswith("."))
        elif path.exists():
            files.append(path)
        else:
            raise DelineoError(f"{path}: no such file or folder")
    return files


# -- grouping into loadable series ----------------------------------------------------------


def identity_of(header: Header) -> DicomIdentity:
    """The `DicomIdentity` a header states."""

    def text(keyword: str) -> str:
        value = header.get(keyword, "")
        return "\\".join(map(str, value)) if isinstance(value, list) else str(value)

    return DicomIdentity(
        patient_id=text("PatientID"),
        patient_name=text("PatientName"),
        patient_birth_date=dicom_date(text("PatientBirthDate")),
        patient_sex=text("PatientSex"),
        study_instance_uid=text("StudyInstanceUID"),
        study_id=text("StudyID"),
        study_date=dicom_date(text("StudyDate")),
        study_time=dicom_time(text("StudyTime")),
        study_description=text("StudyDescription"),
        accession_number=text("AccessionNumber"),
        referring_physician_name=text("ReferringPhysicianName"),
        series_instance_uid=text("SeriesInstanceUID"),
        series_number=text("SeriesNumber"),
        series_description=text("SeriesDescription"),
        frame_of_reference_uid=text("FrameOfReferenceUID"),
        manufacturer=text("Manufacturer"),
    )


def dicom_date(value: str) -> str:
    """`value` as a DICOM date (DA, YYYYMMDD): ACR-NEMA's "1996.06.11" (and "1996-06-11") are
    rewritten; anything else that is not a date becomes "" (unknown), so that objects made from
    the images copy no value a validator or a planning system would reject."""
    value = value.strip()
    if re.fullmatch(r"\d{8}", value):
        return value
    match = re.fullmatch(r"(\d{4})[.\-/](\d{2})[.\-/](\d{2})", value)
    return "".join(match.groups()) if match else ""


def dicom_time(value: str) -> str:
    """`value` as a DICOM time (TM, HHMMSS.FFFFFF, later parts optional): "14:30:05" is
    rewritten; anything else that is not a time becomes ""."""
    value = value.strip()
    if re.fullmatch(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?", value):
        return value
    match = re.fullmatch(r"(\d{2}):(\d{2})(?::(\d{2}(?:\.\d{1,6})?))?", value)
    return "".join(part or "" for part in match.groups()) if match else ""


def group_series(headers: list[Header]) -> list[ImageSeries]:
    """Group image headers into loadable series, splitting series that mix what a volume can't.

    A series is split by image orientation, image size, pixel spacing, frame of reference, echo
    number (echo time where no echo number is stated), temporal position and patient ID (a slice
    of another patient filed in the series by mistake; not by study, which some anonymisers give
    each file anew); it is split by
    acquisition number only where acquisitions repeat the same slice positions (scanners that
    number every slice's acquisition separately stay one volume).
    """
    by_series: dict[str, list[Header]] = defaultdict(list)
    for header in headers:
        by_series[str(header.get("SeriesInstanceUID", "")) or f"(no series UID) {header.path.parent}"].append(
            header
        )
    loadables: list[ImageSeries] = []
    for series_uid, members in by_series.items():
        parts = _split(members)
        for index, (note, part) in enumerate(parts):
            key = series_uid if len(parts) == 1 else f"{series_uid}#{index + 1}"
            loadables.append(
                ImageSeries(
                    key=key,
                    identity=identity_of(part[0]),
                    modality=str(part[0].get("Modality", "")),
                    headers=part,
                    split_note=note if len(parts) > 1 else "",
                )
            )
    return loadables


def _split(headers: list[Header]) -> list[tuple[str, list[Header]]]:
    groups: list[tuple[_VolumeKey, list[Header]]] = []
    for header in headers:
        key = _volume_key(header)
        members = next((members for known, members in groups if _same_volume(known, key)), None)
        if members is None:
            groups.append((key, [header]))
        else:
            members.append(header)
    keys = [key for key, _ in groups]
    varying = {name for name in _VolumeKey._fields if len({getattr(key, name) for key in keys}) > 1}
    parts: list[tuple[str, list[Header]]] = []
    for key, members in groups:
        note = _describe_key(key, varying) if len(groups) > 1 else ""
        for acquisition, part in _split_repeated_acquisitions(members):
            acquisition_note = f"acquisition {acquisition}" if acquisition is not None else ""
            parts.append((", ".join(n for n in (note, acquisition_note) if n), part))
    return parts


class _VolumeKey(NamedTuple):
    """What every image of one volume shares."""

    orientation: tuple[float, ...] | None
    size: tuple
    pixel_spacing: tuple[float, ...] | None
    frame_of_reference: str
    echo: object
    echo_time: object  # only where EchoNumbers is absent
    temporal: object
    patient: str  # PatientID: a slice of another patient is never part of this one's volume


#: Largest difference of direction cosines within one volume (the loader's own tolerance).
ORIENTATION_TOLERANCE = 1e-3
#: Largest relative difference of pixel spacings within one volume.
SPACING_TOLERANCE = 1e-4


def _volume_key(header: Header) -> _VolumeKey:
    return _VolumeKey(
        _numbers(header.get("ImageOrientationPatient")),
        (header.get("Rows"), header.get("Columns")),
        _numbers(header.get("PixelSpacing")),
        str(header.get("FrameOfReferenceUID", "")),
        header.get("EchoNumbers"),
        header.get("EchoTime") if header.get("EchoNumbers") is None else None,
        header.get("TemporalPositionIdentifier"),
        str(header.get("PatientID", "")),
    )


def _same_volume(a: _VolumeKey, b: _VolumeKey) -> bool:
    """Whether two images can share a volume: orientation and pixel spacing within tolerance,
    everything else equal."""
    return (
        a[1:2] + a[3:] == b[1:2] + b[3:]  # first: cheap, and settles most pairs of a big folder
        and _close(a.orientation, b.orientation, atol=ORIENTATION_TOLERANCE, rtol=0.0)
        and _close(a.pixel_spacing, b.pixel_spacing, atol=0.0, rtol=SPACING_TOLERANCE)
    )


def _close(a: tuple[float, ...] | None, b: tuple[float, ...] | None, **tolerance) -> bool:
    if a is None or b is None or len(a) != len(b):
        return a == b
    return bool(np.allclose(a, b, **tolerance))


def _numbers(values) -> tuple[float, ...] | None:
    """A multi-valued number attribute as a tuple; None when absent (the loader names that)."""
    return tuple(float(v) for v in values) if isinstance(values, list) else None


def _describe_key(key: _VolumeKey, varying: set[str]) -> str:
    """Size and orientation, then what else tells this part from the others (`varying`)."""
    rows, columns = key.size
    words = [f"{columns}×{rows}"]
    if key.orientation is not None:
        words.append("orientation " + " ".join(f"{v:g}" for v in key.orientation))
    if "pixel_spacing" in varying:
        spacing = key.pixel_spacing
        words.append(f"{spacing[1]:g}×{spacing[0]:g} mm pixels" if spacing else "no pixel spacing")
    if "frame_of_reference" in varying:
        words.append(f"frame of reference {key.frame_of_reference or '(none)'}")
    if key.echo is not None:
        words.append(f"echo {key.echo}")
    if "echo_time" in varying:
        words.append(f"echo time {key.echo_time:g} ms" if key.echo_time is not None else "no echo time")
    if key.temporal is not None:
        words.append(f"time point {key.temporal}")
    if "patient" in varying:
        words.append(f"patient ID {key.patient or '(none)'}")
    return ", ".join(words)


def _split_repeated_acquisitions(headers: list[Header]) -> list[tuple[object, list[Header]]]:
    positions = [tuple(h.get("ImagePositionPatient") or ()) for h in headers]
    acquisitions = [h.get("AcquisitionNumber") for h in headers]
    repeated = len(set(positions)) < len(positions)
    if not repeated or len(set(acquisitions)) < 2:
        return [(None, headers)]
    by_acquisition: dict[object, list[Header]] = defaultdict(list)
    for header, acquisition in zip(headers, acquisitions, strict=True):
        by_acquisition[acquisition].append(header)
    return sorted(by_acquisition.items(), key=lambda item: str(item[0]))


# -- RT objects -----------------------------------------------------------------------------


def _rt_object(header: Header, kind: str) -> RTObject:
    dataset = read_dataset(header.path)
    identity = identity_of(header)
    obj = RTObject(
        kind=kind,
        path=header.path,
        identity=identity,
        sop_instance_uid=str(header.get("SOPInstanceUID", "")),
    )
    frames = {identity.frame_of_reference_uid} - {""}
    for item in _walk_items(dataset):
        for keyword, target in (
            ("SeriesInstanceUID", obj.referenced_series_uids),
            ("ReferencedSOPInstanceUID", obj.referenced_instance_uids),
        ):
            value = item.get(keyword)
            if value and item is not dataset and str(value) not in target:
                target.append(str(value))
        if item.get("FrameOfReferenceUID"):
            frames.add(str(item.FrameOfReferenceUID))
    obj.frames_of_reference = sorted(frames)
    if kind == "RTSTRUCT":
        obj.label = str(dataset.get("StructureSetLabel", ""))
        obj.items = [str(roi.get("ROIName", "")) for roi in dataset.get("StructureSetROISequence", [])]
        obj.referenced_instance_uids = []  # its images are named by their series
    elif kind == "RTPLAN":
        obj.label = str(dataset.get("RTPlanLabel", ""))
        obj.items = [str(beam.get("BeamName", "")) for beam in dataset.get("BeamSequence", [])]
    elif kind == "SEG":
        obj.label = str(dataset.get("ContentLabel", ""))
        obj.items = [str(s.get("SegmentLabel", "")) for s in dataset.get("SegmentSequence", [])]
        obj.referenced_instance_uids = []
    else:
        obj.label = str(dataset.get("SeriesDescription", ""))
    if kind == "RTDOSE":
        obj.dose = _dose_kind(dataset)
        obj.dose_summation = str(dataset.get("DoseSummationType", "") or "").strip().upper()
        plans = dataset.get("ReferencedRTPlanSequence") or []
        obj.dose_plan_uid = str(plans[0].get("ReferencedSOPInstanceUID", "")) if plans else ""
    return obj


def plan_dose_of(doses: list[RTObject]) -> RTObject | None:
    """Of several RTDOSEs of one series, the one that is the whole plan's dose without a doubt:
    the only PLAN dose, when every other is a part of that plan's dose (a BEAM, FRACTION… dose
    naming the same RTPLAN). None when another could be meant: two plans' doses, a MULTI_PLAN
    dose, a dose naming no plan or another plan."""
    from planning.dose import PARTIAL_SUMMATIONS

    whole = [d for d in doses if d.dose_summation == "PLAN"]
    if len(whole) != 1 or not whole[0].dose_plan_uid:
        return None
    plan = whole[0]
    parts = [d for d in doses if d is not plan]
    if all(d.dose_summation in PARTIAL_SUMMATIONS and d.dose_plan_uid == plan.dose_plan_uid for d in parts):
        return plan
    return None


def _dose_kind(dataset) -> str:
    """ "PLAN dose, PHYSICAL, GY": an RTDOSE's DoseSummationType, DoseType and DoseUnits, each
    named as not stated when absent."""
    summation, dose_type, units = (
        str(dataset.get(keyword, "") or "").strip().upper()
        for keyword in ("DoseSummationType", "DoseType", "DoseUnits")
    )
    return (
        f"{summation or 'summation not stated'} dose, {dose_type or 'type not stated'}, "
        f"{units or 'units not stated'}"
    )


def _walk_items(dataset):
    """The dataset and every item of every sequence in it, depth first."""
    yield dataset
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                yield from _walk_items(item)
