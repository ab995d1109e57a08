"""Reading the ROIs of an RTSTRUCT dataset: one `RoiRecord` per ROI, as the file states it.

Names, numbers, descriptions, generation algorithms, interpreted types and display colours come
from the StructureSetROISequence, the RTROIObservationsSequence and the ROIContourSequence; each
contour's ContourData becomes (N, 3) float64 (x, y, z) points in patient mm (DICOM LPS), checked
to be usable, with its geometric type and referenced image. Nothing here knows the images: placing
the contours on them is `planning.rtstruct.placement`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from planning.rtstruct.roi_contour_sequence import int_or_none, read_roi_contours
from planning.rtstruct.writer import MAX_COORDINATE_MM
from planning.structures import PlanarContour


@dataclass
class RoiRecord:
    """One ROI as the file states it, before rasterising.

    Attributes:
        number: ROI Number.
        name, description, algorithm, interpreted_type: from the structure set and observations.
        frame_of_reference: the ROI's ReferencedFrameOfReferenceUID ('' when absent).
        color: ROIDisplayColor, None when absent or invalid.
        color_stated: whether the file states a ROIDisplayColor (an invalid one is a problem
            `parse_rois` reports).
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
    color_stated: bool = False
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
        number = int_or_none(item.get("ROINumber"))
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
        number = int_or_none(item.get("ReferencedROINumber"))
        if number in records and number not in observed:
            observed.add(number)
            records[number].interpreted_type = str(item.get("RTROIInterpretedType", "") or "").strip().upper()
    contoured: set[int] = set()
    for number, color, contours in read_roi_contours(dataset):
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
        record.color_stated = color is not None
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
