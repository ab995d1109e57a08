"""Conformance report for an RT Structure Set: what a planning system will object to, in words.

`check_rtstruct` reads any RTSTRUCT (not only Delineo's) and reports, by severity:

- errors: a planning system is likely to refuse the file or to place structures wrongly
  (coordinates longer than 16 characters, contours spanning two frames of reference, open or
  non-planar closed contours, point counts that do not match, unresolved ROI numbers…);
- warnings: some systems will complain or behave badly (no image reference per contour, empty
  RT ROI Interpreted Type, missing Type 2 attributes, one- or two-point islands…);
- notes: worth knowing (non-TG-263 names with suggestions, tiny islands, empty ROIs).

Given the images (`volume`), it also checks that every contour lies on a loaded image of the
right frame of reference. When `dciodvfy` (dicom3tools) is installed, its errors and warnings
are included.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement

from planning.dicom.headers import read_dataset
from planning.errors import DicomReadError
from planning.rtstruct.placement import ImagePlanes
from planning.rtstruct.roi_contour_sequence import raw_roi_contour_items, sequence_items
from planning.rtstruct.rois import parse_rois
from planning.rtstruct.writer import RT_STRUCTURE_SET_STORAGE
from planning.structures import CLOSED_TYPES, RoiType
from planning.tg263 import check_name, implied_type
from planning.volume import Volume

ERROR, WARNING, NOTE = "error", "warning", "note"
_GEOMETRIC_TYPES = {"POINT", "OPEN_PLANAR", "OPEN_NONPLANAR", "CLOSED_PLANAR", "CLOSEDPLANAR_XOR"}
#: Contour points farther than this from their contour's plane make it non-planar (mm).
PLANARITY_TOLERANCE_MM = 0.01
_ROI_CONTOUR_SEQUENCE, _REFERENCED_ROI_NUMBER = 0x30060039, 0x30060084
#: Islands enclosing less than this are noted (mm²).
TINY_ISLAND_MM2 = 1.0
#: dciodvfy warnings that concern archives (DICOMDIR), old name forms or private codes, not planning.
_HARMLESS_DCIODVFY = ("needed to build DICOMDIR", "Retired Person Name form", "Unrecognized defined term")
_TYPE2 = {
    "patient": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"),
    "study": ("StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber"),
    "series and equipment": ("SeriesNumber", "OperatorsName", "Manufacturer"),
    "structure set": ("StructureSetDate", "StructureSetTime"),
}


@dataclass(frozen=True)
class Finding:
    """One problem: how serious, what it is in words, and the ROI it concerns ('' for the file)."""

    severity: str
    message: str
    roi: str = ""


@dataclass
class ConformanceReport:
    """The findings on one RTSTRUCT file, and what it holds."""

    path: Path
    findings: list[Finding] = field(default_factory=list)
    description: str = ""

    @property
    def errors(self) -> list[Finding]:
        """The findings of severity error."""
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        """The findings of severity warning."""
        return [f for f in self.findings if f.severity == WARNING]

    @property
    def notes(self) -> list[Finding]:
        """The findings of severity note."""
        return [f for f in self.findings if f.severity == NOTE]

    def add(self, severity: str, message: str, roi: str = "") -> None:
        """Record a finding (`severity`: "error", "warning" or "note"), about ROI `roi` when given."""
        self.findings.append(Finding(severity, message, roi))

    def text(self) -> str:
        """The report as a physicist reads it."""
        lines = [f"{self.path.name}: {self.description}"]
        if self.errors:
            verdict = "a planning system is likely to refuse this file or misplace structures"
        elif self.warnings:
            verdict = "acceptable, but some planning systems may complain"
        else:
            verdict = "no conformance problems found"
        counts = f"{len(self.errors)} error(s), {len(self.warnings)} warning(s), {len(self.notes)} note(s)"
        lines.append(f"Result: {counts} — {verdict}.")
        sections = (
            ("Errors (a planning system is likely to refuse the file or misplace structures)", self.errors),
            ("Warnings (some planning systems may complain or behave badly)", self.warnings),
            ("Notes", self.notes),
        )
        for title, findings in sections:
            if findings:
                lines += ["", f"{title}:"]
                lines += [f"  - {f.roi + ': ' if f.roi else ''}{f.message}" for f in findings]
        return "\n".join(lines)


def check_rtstruct(
    path: str | os.PathLike, volume: Volume | None = None, *, run_dciodvfy: bool = True
) -> ConformanceReport:
    """Check an RTSTRUCT against the rules planning systems enforce (see the module docstring)."""
    path = Path(path)
    report = ConformanceReport(path)
    try:
        dataset = read_dataset(path)
    except DicomReadError as error:
        report.add(ERROR, str(error))
        return report
    if str(dataset.get("SOPClassUID", "")) != RT_STRUCTURE_SET_STORAGE:
        report.add(ERROR, f"not an RT Structure Set (SOP class {dataset.get('SOPClassUID', 'missing')})")
        return report
    records, problems = parse_rois(dataset)
    contours = sum(len(r.contours) for r in records)
    report.description = (
        f"RT Structure Set '{dataset.get('StructureSetLabel', '')}' written by "
        f"{dataset.get('Manufacturer', '') or 'an unnamed system'}"
        f"{' ' + str(dataset.get('SoftwareVersions', '')) if dataset.get('SoftwareVersions') else ''}, "
        f"{len(records)} ROI(s), {contours} contour(s)"
    )
    for problem in problems:
        report.add(ERROR, problem)
    _check_identity(dataset, report)
    frames = _check_frames(dataset, report)
    chain = _check_chain(dataset, report)
    _check_rois(dataset, records, report)
    _check_contours(records, chain, report)
    _check_ds_lengths(dataset, report)
    if volume is not None:
        _check_against_images(records, frames, volume, report)
    if run_dciodvfy:
        _run_dciodvfy(path, report, _copied_uids(dataset))
    return report


# -- file-level checks ----------------------------------------------------------------------


def _check_identity(dataset, report: ConformanceReport) -> None:
    if dataset.get("Modality") != "RTSTRUCT":
        report.add(ERROR, f"Modality is {dataset.get('Modality', 'missing')!r}, not RTSTRUCT")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "StructureSetLabel"):
        if not dataset.get(keyword):
            report.add(ERROR, f"{keyword} is missing or empty (required, Type 1)")
    missing = [k for keywords in _TYPE2.values() for k in keywords if k not in dataset]
    if missing:
        report.add(
            WARNING,
            f"Type 2 attributes absent ({', '.join(missing)}): they must be present even when empty; "
            "Eclipse refuses such files (SlicerRT #186)",
        )


def _check_frames(dataset, report: ConformanceReport) -> set[str]:
    frames = [
        str(item.get("FrameOfReferenceUID", ""))
        for item in dataset.get("ReferencedFrameOfReferenceSequence", [])
    ]
    roi_frames = {
        str(item.get("ReferencedFrameOfReferenceUID", ""))
        for item in dataset.get("StructureSetROISequence", [])
    }
    all_frames = (set(frames) | roi_frames) - {""}
    if len(all_frames) > 1:
        report.add(
            ERROR,
            f"the structures span {len(all_frames)} frames of reference; Eclipse refuses a structure set "
            "that is not in one frame of reference (the images')",
        )
    if not frames:
        report.add(
            WARNING, "no ReferencedFrameOfReferenceSequence: the file does not say which images it belongs to"
        )
    elif roi_frames - set(frames) - {""}:
        report.add(ERROR, "ROIs refer to a frame of reference the structure set does not list")
    return all_frames


def _check_chain(dataset, report: ConformanceReport) -> set[str]:
    """Images listed by the frame of reference → study → series → image chain."""
    images: set[str] = set()
    for frame in dataset.get("ReferencedFrameOfReferenceSequence", []):
        studies = frame.get("RTReferencedStudySequence", [])
        if not studies:
            report.add(
                WARNING,
                "no RTReferencedStudySequence: the file does not name the study, series and images its "
                "contours are drawn on; some systems (rt-utils among them) refuse it",
            )
        for study in studies:
            for series in study.get("RTReferencedSeriesSequence", []):
                if not series.get("SeriesInstanceUID"):
                    report.add(ERROR, "a referenced series has no SeriesInstanceUID")
                listed = series.get("ContourImageSequence", [])
                if not listed:
                    report.add(WARNING, "the referenced series lists no images (ContourImageSequence empty)")
                images |= {str(item.get("ReferencedSOPInstanceUID", "")) for item in listed}
    return images - {""}


def _check_rois(dataset, records, report: ConformanceReport) -> None:
    numbers = Counter(r.number for r in records)
    names = Counter(r.name for r in records)
    upper = Counter(r.name.upper() for r in records)
    for name, count in names.items():
        if count > 1:
            report.add(ERROR, f"the ROI name {name!r} is used {count} times (some viewers reject duplicates)")
    for key, count in upper.items():
        spellings = sorted({r.name for r in records if r.name.upper() == key})
        if count > 1 and len(spellings) > 1:
            report.add(
                WARNING, f"ROI names differ only in case ({', '.join(spellings)}); some systems ignore case"
            )
    observed = Counter(
        _int(item.get("ReferencedROINumber")) for item in dataset.get("RTROIObservationsSequence", [])
    )
    contoured = _contoured_roi_numbers(dataset)
    for number in (set(observed) | set(contoured)) - set(numbers):
        report.add(ERROR, f"ROI number {number} is referenced but no ROI has it")
    for record in records:
        name = record.name
        if not record.color_stated:  # an invalid one is parse_rois's error
            report.add(WARNING, "no ROIDisplayColor (three integers 0–255)", name)
        if observed[record.number] == 0:
            report.add(WARNING, "no RT ROI Observations item: its interpreted type is unknown", name)
        elif observed[record.number] > 1:
            report.add(WARNING, f"{observed[record.number]} RT ROI Observations items (one expected)", name)
        if observed[record.number] and not record.interpreted_type:
            report.add(
                WARNING,
                "RT ROI Interpreted Type is empty (ORGAN, PTV, EXTERNAL…): RayStation then creates duplicate "
                "'name (1)' ROIs on import",
                name,
            )
        elif record.interpreted_type and record.interpreted_type not in RoiType.__members__:
            report.add(
                NOTE, f"RT ROI Interpreted Type {record.interpreted_type!r} is not a defined term", name
            )
        if record.algorithm not in ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"):
            what = repr(record.algorithm) if record.algorithm else "empty"
            report.add(
                WARNING, f"ROI Generation Algorithm is {what} (AUTOMATIC, SEMIAUTOMATIC or MANUAL)", name
            )
        if contoured[record.number] == 0:
            report.add(WARNING, "no ROI Contour item", name)
        elif not record.contours:
            report.add(NOTE, "empty: no contours", name)
        _check_type_against_name(record, report)
        naming = check_name(name)
        if not naming.standard:
            report.add(NOTE, naming.message, name)


#: The interpreted types a planning system treats as targets (planned to a dose).
_TARGETS = {RoiType.PTV, RoiType.CTV, RoiType.GTV}


def _check_type_against_name(record, report: ConformanceReport) -> None:
    """A warning when the name says target and the type does not, or the other way round (a
    ring typed PTV is planned to as a target; a PTV typed ORGAN is not)."""
    implied = implied_type(record.name)
    stated = record.interpreted_type
    if implied is None or stated not in RoiType.__members__:
        return
    if (implied in _TARGETS) != (RoiType(stated) in _TARGETS):
        what = "a target" if implied in _TARGETS else "no target"
        report.add(
            WARNING,
            f"its name says {what} ({implied.value}), its RT ROI Interpreted Type is {stated}: a "
            f"planning system goes by the type",
            record.name,
        )


def _check_contours(records, chain: set[str], report: ConformanceReport) -> None:
    for record in records:
        counts: Counter[str] = Counter()
        worst_off_plane = 0.0
        for contour, declared in zip(record.contours, record.declared_points, strict=True):
            points = contour.points
            kind = contour.geometric_type
            if kind not in _GEOMETRIC_TYPES:
                counts[f"unknown geometric type {kind!r}"] += 1
            if declared is None or declared != len(points):
                counts["NumberOfContourPoints missing or not equal to the points in ContourData"] += 1
            if not contour.image_uid:
                counts["no-reference"] += 1
                if kind in CLOSED_TYPES:
                    counts["closed-no-reference"] += 1
            elif chain and contour.image_uid not in chain:
                counts["image not listed in the referenced series"] += 1
            if kind not in CLOSED_TYPES:
                continue
            if len(points) < 3:
                counts["closed contours with fewer than 3 points (they crash rasterisers, rt-utils #87)"] += 1
                continue
            if np.allclose(points[0], points[-1]):
                counts["first point repeated at the end (CLOSED_PLANAR closes itself)"] += 1
            worst_off_plane = max(worst_off_plane, _off_plane_mm(points))
            if abs(_area_mm2(points)) < TINY_ISLAND_MM2:
                counts["tiny"] += 1
        name = record.name
        kinds = Counter(contour.geometric_type for contour in record.contours)
        open_planar = kinds["OPEN_PLANAR"] + kinds["OPEN_NONPLANAR"]
        if open_planar and sum(kinds[kind] for kind in CLOSED_TYPES):
            report.add(
                WARNING,
                f"{open_planar} open contour(s) among closed ones: they are lines, not filled, so the "
                "structure's volume and DVH leave them out (a closed outline written as OPEN_PLANAR?)",
                name,
            )
        if worst_off_plane > PLANARITY_TOLERANCE_MM:
            report.add(
                ERROR, f"closed contours are not planar (points up to {worst_off_plane:.3f} mm off)", name
            )
        closed_unreferenced = counts.pop("closed-no-reference", 0)
        if counts.pop("no-reference", 0) == len(record.contours) and record.contours:
            report.add(
                WARNING,
                "contours name no image (ContourImageSequence): Eclipse needs it, other systems must match "
                "slices by position",
                name,
            )
        elif closed_unreferenced:
            report.add(
                WARNING,
                f"{closed_unreferenced} of {len(record.contours)} contours name no image "
                "(ContourImageSequence): Eclipse needs it on every contour",
                name,
            )
        tiny = counts.pop("tiny", 0)
        if tiny:
            report.add(
                NOTE,
                f"{tiny} contour(s) enclose less than {TINY_ISLAND_MM2:g} mm², about one voxel: usual at a "
                "structure's first and last slices or across a thin part, a stray speck elsewhere",
                name,
            )
        for problem, count in counts.items():
            # a repeated first point only adds an edge of length zero: nothing for the user to fix
            severity = NOTE if "repeated" in problem else WARNING if "not listed" in problem else ERROR
            report.add(severity, f"{count} contour(s) with {problem}", name)


def _contoured_roi_numbers(dataset) -> Counter:
    """How many ROI Contour items name each ROI number, read from the bytes where the walker can
    (pydicom would parse the sequence, and `_raw_values` then every contour through it)."""
    walked = raw_roi_contour_items(dataset)
    if walked is None:
        items = dataset.get("ROIContourSequence", [])
        return Counter(_int(item.get("ReferencedROINumber")) for item in items)
    return Counter(_int(item.get(_REFERENCED_ROI_NUMBER, b"").strip(b" \0")) for item in walked)


def _check_ds_lengths(dataset, report: ConformanceReport) -> None:
    """Every DS value at most 16 characters (Eclipse: "Size (18) of '…' is invalid for VR DS")."""
    too_long: Counter[str] = Counter()
    example = {}
    for keyword, value in _raw_values(dataset, "DS"):
        for part in value.split(b"\\"):
            if len(part.strip()) > 16:
                too_long[keyword] += 1
                example.setdefault(keyword, part.strip().decode("ascii", "replace"))
    for keyword, count in too_long.items():
        report.add(
            ERROR,
            f"{count} {keyword} value(s) longer than 16 characters (e.g. '{example[keyword]}'); "
            "Eclipse rejects DS values over 16 characters",
        )


def _raw_values(dataset, wanted: str):
    """(keyword, raw bytes) of every element of VR `wanted` ("DS", "UI"), sequences included,
    leaving the others unparsed: parsing every ContourData of a 100-structure file into numbers
    takes ~6 GB and half a minute, its garbage collections holding every thread for seconds."""
    for tag in list(dataset.keys()):
        element = dataset.get_item(tag)
        vr = element.VR
        if not vr:
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
        if vr == "SQ":
            found = _walked_roi_contours(dataset, wanted) if tag == _ROI_CONTOUR_SEQUENCE else None
            if found is not None:
                yield from found
                continue
            for item in dataset[tag].value:
                yield from _raw_values(item, wanted)
        elif vr == wanted:
            keyword = keyword_for_tag(tag) or str(tag)
            if isinstance(element, RawDataElement):
                yield keyword, bytes(element.value or b"")
            else:
                yield keyword, "\\".join(str(v) for v in np.atleast_1d(element.value)).encode()


def _walked_roi_contours(dataset, wanted: str) -> list[tuple[str, bytes]] | None:
    """`_raw_values` of the ROIContourSequence walked from its bytes: tens of thousands of
    contours made as many pydicom datasets, whose garbage collections froze the window (117
    structures: up to 0.7 s). None when the walker cannot read it (pydicom does then)."""
    items = raw_roi_contour_items(dataset)
    if items is None:
        return None
    try:
        return list(_walked_values(items, wanted))
    except (ValueError, struct.error):
        return None


def _walked_values(items: list[dict], wanted: str):
    """(keyword, raw bytes) of every element of VR `wanted` in sequence items walked from the
    bytes (`raw_roi_contour_items`), nested sequences included; elements not in the DICOM
    dictionary (private) are left out."""
    for item in items:
        for tag, value in item.items():
            if isinstance(value, list):
                yield from _walked_values(value, wanted)
                continue
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
            if vr == "SQ":
                yield from _walked_values(sequence_items(value), wanted)
            elif vr == wanted:
                yield keyword_for_tag(tag) or str(tag), value


# -- with the images ------------------------------------------------------------------------


def _check_against_images(records, frames: set[str], volume: Volume, report: ConformanceReport) -> None:
    own = volume.frame_of_reference_uid
    if own and frames and own not in frames:
        report.add(
            ERROR,
            f"the images are in frame of reference {own}, the structure set in {', '.join(sorted(frames))}",
        )
    planes = {ref.sop_instance_uid: ref for ref in volume.slices if ref is not None}
    by_position = ImagePlanes(volume)
    normal = volume.grid.slice_normal
    for record in records:
        missing, beyond, between, off = 0, 0, 0, 0.0
        edges: Counter[str] = Counter()
        for contour in record.contours:
            ref = planes.get(contour.image_uid)
            if contour.image_uid and ref is None:
                missing += 1
            elif ref is not None:
                off = max(off, float(np.abs((contour.points - ref.position_xyz) @ normal).max()))
                k = by_position.uids[contour.image_uid][0]
                edges[by_position.beyond_edges(by_position.in_plane(contour, k))] += 1
            else:
                k, uv, distance = by_position.place(contour)
                where = by_position.where(k, distance)
                if where == "beyond":
                    beyond += 1
                elif where == "between":
                    between += 1
                else:
                    off = max(off, distance)
                    edges[by_position.beyond_edges(uv)] += 1
        if missing:
            report.add(
                ERROR, f"{missing} contour(s) lie on images that are not in the loaded series", record.name
            )
        if beyond:
            report.add(ERROR, f"{beyond} contour(s) lie beyond the loaded images", record.name)
        if between:
            report.add(ERROR, f"{between} contour(s) lie on no loaded image plane", record.name)
        if edges["wholly"]:
            report.add(
                ERROR,
                f"{edges['wholly']} contour(s) lie wholly beyond the images' in-plane edges",
                record.name,
            )
        if edges["partly"]:
            report.add(
                WARNING,
                f"{edges['partly']} contour(s) reach beyond the images' in-plane edges: only what lies on "
                "the images is filled",
                record.name,
            )
        if off > PLANARITY_TOLERANCE_MM:
            report.add(
                ERROR if off > by_position.on_plane_mm else WARNING,
                f"contours lie up to {off:.3f} mm off the plane of their image",
                record.name,
            )


def _copied_uids(dataset) -> set[str]:
    """The UIDs the file copies from elsewhere (its images' study, series, frame of reference and
    instances): every UID value but its own instance's and series' and the SOP classes."""
    values: set[str] = set()
    for keyword, raw in _raw_values(dataset, "UI"):
        if not keyword.endswith("ClassUID"):
            values.update(v for v in raw.decode("ascii", "replace").strip("\0 ").split("\\") if v)
    return values - {str(dataset.get("SOPInstanceUID", "")), str(dataset.get("SeriesInstanceUID", ""))}


#: A UID value dciodvfy quotes in a line ("..." or <...>).
_QUOTED = re.compile(r'"([0-9.]+)"|<([0-9.]+)>')


def _run_dciodvfy(path: Path, report: ConformanceReport, copied: set[str] = frozenset()) -> None:
    """dciodvfy's errors and warnings. Its errors about UIDs the file copies from its images (an
    anonymiser's "0.0.0.0..." root) are one warning: the file must reference the images' UIDs as
    they are, so they are the images' fault, not the file's."""
    executable = shutil.which("dciodvfy")
    if executable is None:
        report.add(NOTE, "dciodvfy (dicom3tools) is not installed: the IOD check was skipped")
        return
    try:
        result = subprocess.run([executable, str(path)], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        report.add(NOTE, f"dciodvfy could not run ({error})")
        return
    lines = Counter(line.strip() for line in _decode(result.stdout + result.stderr).splitlines())
    inherited: dict[str, str] = {}  # copied UID → dciodvfy's complaint
    for line, count in lines.items():
        times = f" (×{count})" if count > 1 else ""
        quoted = {a or b for a, b in _QUOTED.findall(line)}
        if line.startswith("Error - ") and quoted and quoted <= copied:
            inherited.update(dict.fromkeys(quoted, line[8:].split(" - ")[0]))
        elif line.startswith("Error - "):
            report.add(ERROR, f"dciodvfy: {line[8:]}{times}")
        elif line.startswith("Warning - "):
            text = line[10:]
            harmless = any(marker in text for marker in _HARMLESS_DCIODVFY)
            report.add(NOTE if harmless else WARNING, f"dciodvfy: {text}{times}")
    if inherited:
        uid, complaint = next(iter(inherited.items()))
        report.add(
            WARNING,
            f"dciodvfy: {len(inherited)} UID(s) copied from the images are not valid DICOM UIDs "
            f'({complaint}: "{uid}"…); the file must reference the images as they are, so a system '
            "that refuses these refuses the images too",
        )


def _decode(output: bytes) -> str:
    """dciodvfy's output, which quotes values in the file's own character set: UTF-8 when it
    is, else Latin-1 (any byte decodes, so a report never fails on an accent)."""
    try:
        return output.decode("utf-8")
    except UnicodeDecodeError:
        return output.decode("latin-1")


# -- geometry helpers -----------------------------------------------------------------------


def _off_plane_mm(points: np.ndarray) -> float:
    centred = points - points.mean(axis=0)
    if len(points) < 4:
        return 0.0
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return float(np.abs(centred @ vt[2]).max())


def _area_mm2(points: np.ndarray) -> float:
    centred = points - points.mean(axis=0)
    cross = np.cross(centred, np.roll(centred, -1, axis=0)).sum(axis=0)
    return 0.5 * float(np.linalg.norm(cross))


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
