"""RT Dose: reading a DICOM RTDOSE into a dose grid in Gy.

The dose at voxel k of frame f is `PixelData × DoseGridScaling`. Frames lie at
`ImagePositionPatient + GridFrameOffsetVector[f] × normal`, normal = row × column direction; the
offsets are relative to the first frame when the first is 0 (the usual form) and absolute
positions along the normal otherwise (the older form, allowed for axial grids). Offsets may
decrease (the grid then runs against the normal). Unevenly spaced frames are resampled linearly
onto the smallest spacing, with a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from planning.dicom.headers import read_dataset
from planning.errors import DicomReadError, GeometryError
from planning.geometry import Grid

log = logging.getLogger(__name__)

RT_DOSE_STORAGE = "1.2.840.10008.5.1.4.1.1.481.2"
#: Frame spacings that differ by less than this (mm) count as uniform.
_UNIFORM_TOLERANCE_MM = 0.01


@dataclass
class Dose:
    """A dose distribution on a grid.

    Attributes:
        array: float32 (z, y, x), in `units` (Gy for "GY", fraction for "RELATIVE").
        grid: where the voxels are (LPS mm).
        units: DoseUnits, "GY" or "RELATIVE".
        dose_type: DoseType: "PHYSICAL", "EFFECTIVE" or "ERROR".
        summation_type: DoseSummationType: "PLAN", "FRACTION", "BEAM", "MULTI_PLAN", ...
        frame_of_reference_uid: the patient space the grid is in.
        sop_instance_uid: the RTDOSE's own UID ("" when not from a file).
        referenced_plan_uid: the RT Plan it was computed for ("" when not given).
        warnings: what reading had to correct.
    """

    array: np.ndarray
    grid: Grid
    units: str = "GY"
    dose_type: str = "PHYSICAL"
    summation_type: str = ""
    frame_of_reference_uid: str = ""
    sop_instance_uid: str = ""
    referenced_plan_uid: str = ""
    warnings: list[str] = field(default_factory=list)

    def check_same_frame(self, frames, what: str, name: str = "the dose") -> None:
        """Refuse images or structures (`what`, e.g. "RS.dcm") stated to be in other frames of
        reference than this dose (called `name` in the message): a DVH or a dose wash would read
        dose at unrelated positions. Unstated (empty) UIDs on either side pass, with a warning
        (added to `warnings`) that nothing could be checked."""
        stated = {str(f) for f in frames if f}
        if self.frame_of_reference_uid and stated and self.frame_of_reference_uid not in stated:
            raise GeometryError(
                f"{name} is in frame of reference {self.frame_of_reference_uid}, {what} in "
                f"{', '.join(sorted(stated))}: different patient coordinate systems; use the dose computed "
                "for these images and structures"
            )
        if not (self.frame_of_reference_uid and stated):
            silent = name if not self.frame_of_reference_uid else what
            warning = (
                f"{silent} states no frame of reference: that {name} and {what} are in one patient "
                "coordinate system could not be checked"
            )
            if warning not in self.warnings:
                self.warnings.append(warning)
                log.warning(warning)

    @property
    def max(self) -> float:
        """The highest dose, in `units` (0 for an empty array)."""
        return float(self.array.max()) if self.array.size else 0.0

    @property
    def unit_label(self) -> str:
        """ "Gy"; "Gy(effective)" for a biologically weighted dose (DoseType EFFECTIVE: RBE- or
        EQD2-weighted, per the planning system); "relative" for DoseUnits RELATIVE."""
        if self.units != "GY":
            return "relative"
        return "Gy(effective)" if self.dose_type == "EFFECTIVE" else "Gy"

    def sample(self, index_xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Trilinear dose at continuous voxel indices (N, 3) in (x, y, z) order.

        Returns (dose, inside): points more than half a voxel beyond the grid are outside and get
        dose 0; within that half voxel the edge value is used.
        """
        index_xyz = np.asarray(index_xyz, dtype=np.float64)
        shape_xyz = np.array(self.grid.shape[::-1])
        inside = np.all((index_xyz >= -0.5) & (index_xyz <= shape_xyz - 0.5), axis=1)
        dose = np.zeros(len(index_xyz), np.float64)
        if inside.any():
            coordinates = index_xyz[inside][:, ::-1].T  # (z, y, x) rows for map_coordinates
            dose[inside] = ndimage.map_coordinates(self.array, coordinates, order=1, mode="nearest")
        return dose, inside


def load_dose(path: str | os.PathLike) -> Dose:
    """Read an RTDOSE file (dose grid scaling, frame offsets, units, type)."""
    path = Path(path)
    dataset = read_dataset(path, pixels=True)
    if str(dataset.get("SOPClassUID", "")) != RT_DOSE_STORAGE and dataset.get("Modality") != "RTDOSE":
        raise DicomReadError(f"{path.name}: not an RT Dose (modality {dataset.get('Modality', 'unknown')})")
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "PixelData"):
        if keyword not in dataset:
            raise DicomReadError(f"{path.name}: RT Dose without {keyword}")
    warnings: list[str] = []
    scaling = _dose_grid_scaling(dataset, path.name)
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    _check_value_count(dataset, frames * rows * columns, _stored_value_count(dataset), path.name)
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # pydicom raises many types on damaged pixel data
        raise DicomReadError(f"{path.name}: dose pixel data cannot be decoded ({error})") from error
    _check_value_count(dataset, frames * rows * columns, np.asarray(pixels).size, path.name)
    pixels = np.asarray(pixels).reshape(frames, rows, columns)
    array = (pixels.astype(np.float64) * scaling).astype(np.float32)

    orientation = _numbers(dataset, "ImageOrientationPatient", 6, path.name)
    row, column = orientation[:3], orientation[3:]
    if not (np.allclose([row @ row, column @ column], 1.0, atol=1e-3) and abs(row @ column) < 1e-3):
        raise DicomReadError(
            f"{path.name}: ImageOrientationPatient {_listed(orientation)} is not two perpendicular unit "
            "vectors: the dose grid's axes are unknown"
        )
    normal = np.cross(row, column)
    position = _numbers(dataset, "ImagePositionPatient", 3, path.name)
    spacing_row, spacing_column = _numbers(dataset, "PixelSpacing", 2, path.name)
    if min(spacing_row, spacing_column) <= 0:
        raise DicomReadError(
            f"{path.name}: PixelSpacing {_listed((spacing_row, spacing_column))} is not two positive sizes"
        )
    offsets = _frame_offsets(dataset, frames, position, normal, path.name, warnings)
    if frames > 1:
        step = float(np.median(np.diff(offsets)))
    else:
        step = _plane_thickness(dataset, path.name, warnings)
    if frames > 1 and np.ptp(np.diff(offsets)) > _UNIFORM_TOLERANCE_MM:
        step = float(np.min(np.abs(np.diff(offsets)))) * np.sign(step)
        array, offsets = _resample_frames(array, offsets, step)
        warnings.append(f"{path.name}: dose frames are unevenly spaced; resampled every {abs(step):g} mm")
    direction = np.column_stack([row, column, normal * (1.0 if step >= 0 else -1.0)])
    origin = position + offsets[0] * normal
    grid = Grid(array.shape, (spacing_column, spacing_row, abs(step)), tuple(origin), direction)
    units, factor = _dose_units(dataset, path.name, warnings)
    if factor != 1.0:
        array = (array * np.float32(factor)).astype(np.float32)
    dose_type = str(dataset.get("DoseType", "") or "").strip().upper()
    summation_type = str(dataset.get("DoseSummationType", "") or "").strip().upper()
    warnings += _partial_dose_warnings(path.name, dose_type, summation_type, units)
    for text in warnings:
        log.warning(text)
    return Dose(
        array=array,
        grid=grid,
        units=units,
        dose_type=dose_type,
        summation_type=summation_type,
        frame_of_reference_uid=str(dataset.get("FrameOfReferenceUID", "") or ""),
        sop_instance_uid=str(dataset.get("SOPInstanceUID", "") or ""),
        referenced_plan_uid=_referenced_plan(dataset),
        warnings=warnings,
    )


#: DoseSummationType values of a dose that is only part of the plan's, and what it is part by.
PARTIAL_SUMMATIONS = {
    "FRACTION": "fraction",
    "FRACTION_SESSION": "fraction",
    "BEAM": "beam",
    "BEAM_SESSION": "beam",
    "BRACHY": "brachytherapy application",
    "BRACHY_SESSION": "brachytherapy application",
    "CONTROL_POINT": "control point",
}


def _partial_dose_warnings(name: str, dose_type: str, summation_type: str, units: str) -> list[str]:
    """Say so when a file holds less than the plan's dose, a dose difference or relative doses:
    its DVH values (D95, V20Gy, …) are not the plan's in Gy."""
    warnings = []
    if summation_type in PARTIAL_SUMMATIONS:
        part = PARTIAL_SUMMATIONS[summation_type]
        warnings.append(
            f"{name}: the dose of one {part} (DoseSummationType {summation_type}), not of the whole "
            f"plan: DVH values are per {part}"
        )
    if dose_type == "ERROR":
        warnings.append(f"{name}: a dose difference (DoseType ERROR), not a dose")
    if units == "RELATIVE":
        warnings.append(
            f"{name}: relative doses (DoseUnits RELATIVE): doses and dose levels are fractions of "
            "the planning system's reference dose, not Gy"
        )
    return warnings


def _dose_units(dataset, name: str, warnings: list[str]) -> tuple[str, float]:
    """DoseUnits ("GY" or "RELATIVE") and the factor taking the stored doses to them: a file
    saying CGY (not a DICOM value, written by some older systems) holds centigray, converted to
    Gy; another value leaves the unit unknown and is refused; none is taken as Gy, with a warning."""
    value = str(dataset.get("DoseUnits", "") or "").strip().upper()
    if value in ("GY", "RELATIVE"):
        return value, 1.0
    if value == "CGY":
        warnings.append(f"{name}: DoseUnits CGY (not a DICOM value): the doses are converted from cGy to Gy")
        return "GY", 0.01
    if not value:
        warnings.append(f"{name}: no DoseUnits; the doses are taken as Gy")
        return "GY", 1.0
    raise DicomReadError(
        f"{name}: DoseUnits {value!r} is neither GY nor RELATIVE: the doses' unit is unknown"
    )


def _dose_grid_scaling(dataset, name: str) -> float:
    """The factor from stored values to dose; refused unless a positive number. A file without
    one is refused too: the standard requires it with pixel data, and taking the stored integers as
    Gy gave a breast plan's 14.7 Gy maximum as 1,048,626 Gy with a warning only."""
    value = dataset.get("DoseGridScaling")
    if value is None or value == "":
        raise DicomReadError(
            f"{name}: no DoseGridScaling, the factor from the stored integers to doses (required "
            "with pixel data): the doses are unknown"
        )
    try:
        scaling = float(value)
    except (TypeError, ValueError):
        raise DicomReadError(f"{name}: DoseGridScaling {value!r} is not a number") from None
    if not (np.isfinite(scaling) and scaling > 0):
        raise DicomReadError(
            f"{name}: DoseGridScaling {scaling:g} is not a positive factor; the doses are unknown"
        )
    return scaling


def _plane_thickness(dataset, name: str, warnings: list[str]) -> float:
    """The thickness (mm) of a one-frame dose: its SliceThickness, else 1 mm, said in `warnings`
    since a structure's DVH then only counts the voxels within half a millimetre of the plane."""
    thickness = float(dataset.get("SliceThickness") or 0.0)
    if thickness > 0:
        return thickness
    warnings.append(
        f"{name}: a single dose plane without SliceThickness, taken as 1 mm thick: a DVH counts only "
        "what lies within 0.5 mm of it; use the plan's 3D dose for DVHs"
    )
    return 1.0


def _stored_value_count(dataset) -> int | None:
    """How many values uncompressed pixel data holds; None when compressed (known once decoded)."""
    syntax = dataset.get("file_meta", {}).get("TransferSyntaxUID")
    if syntax is None or syntax.is_compressed or not dataset.get("BitsAllocated"):
        return None
    return len(dataset.PixelData) * 8 // int(dataset.BitsAllocated)


def _check_value_count(dataset, expected: int, stored: int | None, name: str) -> None:
    if stored is not None and stored != expected:
        raise DicomReadError(
            f"{name}: NumberOfFrames {dataset.get('NumberOfFrames', 1)} × Rows {dataset.Rows} × "
            f"Columns {dataset.Columns} is {expected:,} dose values; the pixel data holds {stored:,}"
        )


def _frame_offsets(dataset, frames, position, normal, name, warnings) -> np.ndarray:
    if frames == 1:
        return np.zeros(1)
    stated = dataset.get("GridFrameOffsetVector")
    count = 0 if stated is None else len(stated) if isinstance(stated, Sequence) else 1
    if count != frames:
        raise DicomReadError(
            f"{name}: GridFrameOffsetVector holds {count} offsets for NumberOfFrames {frames}: "
            "the frames' positions are unknown"
        )
    offsets = _numbers(dataset, "GridFrameOffsetVector", frames, name)  # one per frame
    order = np.argsort(offsets, kind="stable")
    repeats = np.flatnonzero(np.diff(offsets[order]) <= _UNIFORM_TOLERANCE_MM)
    if repeats.size:
        first, second = sorted(int(order[i]) for i in (repeats[0], repeats[0] + 1))
        raise DicomReadError(
            f"{name}: GridFrameOffsetVector repeats {offsets[first]:g} mm (frames {first + 1} and "
            f"{second + 1}{f' and {repeats.size - 1} more' if repeats.size > 1 else ''}): two frames at "
            "one position, which a dose grid cannot hold"
        )
    if offsets[0] != 0.0:
        # absolute positions along the normal (older form): make them relative to the first frame
        along = float(position @ normal)
        if abs(offsets[0] - along) > _UNIFORM_TOLERANCE_MM:
            warnings.append(
                f"{name}: the first grid frame offset ({offsets[0]:g}) is neither 0 nor the position "
                f"of the first frame ({along:g}); offsets are taken relative to it"
            )
        offsets = offsets - offsets[0]
    return offsets


def _numbers(dataset, keyword: str, count: int, name: str) -> np.ndarray:
    """`count` finite numbers of a multi-valued attribute; DicomReadError naming it otherwise."""
    values = dataset.get(keyword)
    listed = isinstance(values, Sequence) and not isinstance(values, str)
    items = [] if values is None else list(values) if listed else [values]
    try:
        numbers = np.array([float(v) for v in items], dtype=np.float64)
    except (TypeError, ValueError):
        numbers = np.array([])
    if numbers.size != count or not np.all(np.isfinite(numbers)):
        shown = "\\".join(map(str, items)) or "(none)"
        raise DicomReadError(f"{name}: {keyword} {shown} is not {count} numbers")
    return numbers


def _listed(values) -> str:
    """Numbers as DICOM lists them: "1\\0\\0"."""
    return "\\".join(f"{float(v):g}" for v in values)


def _resample_frames(array: np.ndarray, offsets: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Frames at `offsets` (mm, along the normal, in any order) → frames every `step` mm (negative:
    against the normal) from the first in that direction, linearly interpolated."""
    sign = np.sign(step)
    order = np.argsort(offsets * sign)
    offsets, array = offsets[order], array[order]
    count = int(np.floor((offsets[-1] - offsets[0]) / step + 1e-6)) + 1
    wanted = offsets[0] + step * np.arange(count)
    # np.interp needs increasing sample points: measure both along the direction of `step`
    position = np.interp(wanted * sign, offsets * sign, np.arange(len(offsets)))
    lower = np.clip(np.floor(position).astype(int), 0, len(offsets) - 2)
    weight = (position - lower)[:, None, None].astype(np.float32)
    resampled = array[lower] * (1 - weight) + array[lower + 1] * weight
    return resampled.astype(np.float32), wanted


def _referenced_plan(dataset) -> str:
    plans = dataset.get("ReferencedRTPlanSequence", [])
    return str(plans[0].get("ReferencedSOPInstanceUID", "")) if plans else ""
