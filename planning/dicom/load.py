"""Loading a CT or MR series into a `Volume` with exact patient geometry.

Planes are ordered by position along the slice normal, the rescale (slope/intercept) is applied
(HU for CT), the spacing is computed from the positions and checked between every pair of
neighbours. Missing slices, irregular spacing and gantry tilt are resampled onto a regular grid
with a warning saying so; duplicated slices are dropped when identical and refused otherwise.
Two images at different positions sharing a SOPInstanceUID load with a warning (the RTSTRUCT
writer refuses to reference them: which one a contour lies on would be ambiguous).
Enhanced multi-frame CT/MR take their geometry from the functional groups.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from planning.dicom.headers import Header, read_dataset, read_header
from planning.dicom.pixels import (
    check_grayscale,
    check_native_length,
    decode_frames,
    read_native_frames,
    rescaled_dtype,
    stored_dtype,
    stored_range,
)
from planning.dicom.scan import ENHANCED_IMAGE_CLASSES, FileProblem, ImageSeries, group_series
from planning.dicom.stack import StackPlan, plan_stack, resample_stack, source_plane_at
from planning.errors import Cancelled, DicomReadError, SeriesError
from planning.volume import SliceRef, Volume

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]


@dataclass
class _Plane:
    """One 2D image of the stack: a whole file, or one frame of a multi-frame file."""

    header: Header
    frame: int | None  # 0-based frame index in a multi-frame file; None for single-frame
    position: np.ndarray  # ImagePositionPatient, LPS mm
    slope: float
    intercept: float
    sop_class_uid: str
    sop_instance_uid: str


def load_series(
    series: ImageSeries,
    *,
    on_progress: ProgressCallback | None = None,
    cancel=None,
) -> Volume:
    """Load one scanned series (see `planning.dicom.scan.scan`) into a `Volume`.

    Raises:
        SeriesError: the images cannot form one volume (different sizes, conflicting duplicates).
        DicomReadError: a file is damaged (truncated or undecodable pixel data), named in the error.
        Cancelled: `cancel` (a threading.Event) was set.
    """
    headers = series.headers
    for header in headers:
        check_grayscale(header)
        check_native_length(header)
    sizes = {(h.get("Rows"), h.get("Columns")) for h in headers}
    if len(sizes) > 1:
        raise SeriesError(f"series {series.key} mixes image sizes {sorted(sizes)}; scan splits such series")
    warnings: list[str] = []
    planes, orientation, pixel_spacing, fallback_z = _planes(headers, warnings)
    if pixel_spacing is None:
        pixel_spacing = (1.0, 1.0)
        warnings.append(
            f"{headers[0].path.name} and the rest of the series state no PixelSpacing: 1 mm pixels are "
            "assumed, so distances, volumes and margins are not in true millimetres"
        )
    rows, columns = int(headers[0]["Rows"]), int(headers[0]["Columns"])
    plan = plan_stack(
        np.array([p.position for p in planes]), orientation, pixel_spacing, (rows, columns), fallback_z
    )
    dtype = rescaled_dtype([(p.slope, p.intercept, stored_range(p.header)) for p in planes])
    ordered = [planes[i] for i in plan.order]
    beyond: dict[str, int] = {}
    try:
        array = _read_planes(ordered, dtype, (rows, columns), on_progress, cancel, beyond)
        _check_duplicates(planes, plan, array)
        if plan.resampled:
            array = resample_stack(array, plan)
    except MemoryError:
        needed = len(ordered) * rows * columns * dtype.itemsize
        raise SeriesError(
            f"not enough memory to load series {series.key} ({series.describe()}): its "
            f"{columns}×{rows}×{len(ordered)} {dtype} voxels need {needed / 2**30:.2f} GiB"
            + (" and more to resample them" if plan.resampled else "")
        ) from None
    warnings += plan.warnings
    warnings += _shared_uid_warnings(ordered)
    warnings += _storage_warnings(headers, beyond)
    if series.unread:
        warnings.append(unread_warning(series.unread))
    if plan.duplicates:
        warnings.append(
            f"{len(plan.duplicates)} duplicated slice(s) with identical pixels dropped: "
            + ", ".join(_plane_name(planes[dropped]) for _, dropped in plan.duplicates[:5])
        )
    slices = []
    for k in range(plan.grid.shape[0]):
        source = source_plane_at(plan, k) if plan.resampled else k
        slices.append(None if source is None else _slice_ref(ordered[source]))
    for warning in warnings:
        log.warning("%s: %s", series.key, warning)
    return Volume(
        array=array,
        grid=plan.grid,
        modality=series.modality,
        identity=series.identity,
        slices=slices,
        warnings=warnings,
    )


def unread_warning(problems: list[FileProblem], shown: int = 5) -> str:
    """Words naming the files and folders beside a series that could not be read."""
    reasons = "; ".join(problem.reason for problem in problems[:shown])
    more = f"; and {len(problems) - shown} more" if len(problems) > shown else ""
    return (
        f"{len(problems)} file(s) or folder(s) beside this series could not be read and are not "
        f"in the volume (slices of it may be missing): {reasons}{more}"
    )


def load_files(paths, **kwargs) -> Volume:
    """Load the single image series made of `paths` (files) into a `Volume`."""
    series = group_series([read_header(p) for p in paths])
    if len(series) != 1:
        raise SeriesError(
            f"these {len(paths)} files hold {len(series)} volumes, not one: "
            + "; ".join(s.describe() for s in series)
        )
    return load_series(series[0], **kwargs)


# -- planes ---------------------------------------------------------------------------------


def _planes(
    headers: list[Header], assumed: list[str]
) -> tuple[list[_Plane], np.ndarray, tuple[float, float] | None, float | None]:
    """Every plane of the series with its position, plus orientation, pixel spacing (x, y mm;
    None when the files state none) and the slice step to fall back on. What had to be assumed
    is added to `assumed`, in words."""
    first = headers[0]
    if str(first.get("SOPClassUID", "")) in ENHANCED_IMAGE_CLASSES:
        if len(headers) != 1:
            raise SeriesError(f"series of {len(headers)} enhanced multi-frame files: load them one by one")
        return _enhanced_planes(first)
    orientation = _series_orientation(headers, assumed)
    spacing = first.get("PixelSpacing")
    pixel_spacing = None if spacing is None else _pixel_spacing(spacing, first.path.name)
    fallback_z = _float(first.get("SpacingBetweenSlices")) or _float(first.get("SliceThickness"))
    normal = np.cross(orientation[:3], orientation[3:])
    planes = []
    for header in headers:
        position = header.get("ImagePositionPatient")
        if not (isinstance(position, list) and len(position) == 3):
            if len(headers) > 1:
                raise DicomReadError(f"{header.path.name}: no ImagePositionPatient, cannot place the slice")
            position = [0.0, 0.0, 0.0]
            assumed.append(
                f"{header.path.name} states no ImagePositionPatient: the image is placed at (0, 0, 0) mm, "
                "so it does not line up with other objects of its frame of reference"
            )
        frames = int(header.get("NumberOfFrames", 1) or 1)
        step = fallback_z or 1.0
        if frames > 1:
            assumed.append(_stacked_frames_note(header, frames, step, fallback_z))
        for frame in range(frames):
            planes.append(
                _Plane(
                    header=header,
                    frame=frame if frames > 1 else None,
                    position=np.asarray(position, float) + frame * step * normal,
                    slope=_slope(header.get("RescaleSlope"), header.path.name),
                    intercept=_float(header.get("RescaleIntercept"), 0.0),
                    sop_class_uid=str(header.get("SOPClassUID", "")),
                    sop_instance_uid=str(header.get("SOPInstanceUID", "")),
                )
            )
    return planes, orientation, pixel_spacing, fallback_z


def _enhanced_planes(header: Header):
    """Planes of an enhanced multi-frame CT/MR from its shared and per-frame functional groups."""
    dataset = read_dataset(header.path)
    shared = dataset.get("SharedFunctionalGroupsSequence", [None])[0]
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence", [])
    if len(per_frame) != int(dataset.get("NumberOfFrames", 0)):
        raise DicomReadError(f"{header.path.name}: per-frame functional groups do not match NumberOfFrames")

    def group(frame_item, sequence: str, keyword: str, default=None):
        for item in (frame_item, shared):
            if item is not None and sequence in item and keyword in item[sequence][0]:
                return item[sequence][0][keyword].value
        return default

    orientation = group(per_frame[0], "PlaneOrientationSequence", "ImageOrientationPatient")
    spacing = group(per_frame[0], "PixelMeasuresSequence", "PixelSpacing")
    if orientation is None or spacing is None:
        raise DicomReadError(f"{header.path.name}: enhanced image without plane orientation or pixel spacing")
    thickness = _float(group(per_frame[0], "PixelMeasuresSequence", "SpacingBetweenSlices")) or _float(
        group(per_frame[0], "PixelMeasuresSequence", "SliceThickness")
    )
    _check_one_volume(
        header,
        [group(item, "FrameContentSequence", "TemporalPositionIndex") for item in per_frame],
        "time points",
    )
    _check_one_volume(
        header, [group(item, "MREchoSequence", "EffectiveEchoTime") for item in per_frame], "echoes"
    )
    planes = []
    for index, item in enumerate(per_frame):
        position = group(item, "PlanePositionSequence", "ImagePositionPatient")
        if position is None:
            raise DicomReadError(f"{header.path.name}: frame {index + 1} has no ImagePositionPatient")
        frame_orientation = group(item, "PlaneOrientationSequence", "ImageOrientationPatient")
        if not np.allclose(np.asarray(frame_orientation, float), np.asarray(orientation, float), atol=1e-3):
            raise SeriesError(f"{header.path.name}: frame {index + 1} has another orientation")
        planes.append(
            _Plane(
                header=header,
                frame=index,
                position=np.asarray(position, float),
                slope=_slope(
                    group(item, "PixelValueTransformationSequence", "RescaleSlope"),
                    f"{header.path.name} frame {index + 1}",
                ),
                intercept=_float(group(item, "PixelValueTransformationSequence", "RescaleIntercept"), 0.0),
                sop_class_uid=str(header.get("SOPClassUID", "")),
                sop_instance_uid=str(header.get("SOPInstanceUID", "")),
            )
        )
    return planes, np.asarray(orientation, float), _pixel_spacing(spacing, header.path.name), thickness


def _check_one_volume(header: Header, per_frame: list, what: str) -> None:
    """Refuse an enhanced multi-frame file whose frames hold several time points or echoes
    (`per_frame`: each frame's temporal position index or echo time)."""
    distinct = {str(value) for value in per_frame if value is not None}
    if len(distinct) > 1:
        raise SeriesError(
            f"{header.path.name}: its {len(per_frame)} frames hold {len(distinct)} {what}, not one "
            f"volume; Delineo loads one 3D volume: save one of the {what} as a series of its own"
        )


def _pixel_spacing(spacing, where: str) -> tuple[float, float]:
    """PixelSpacing (row, column mm) as (x, y) mm; refused unless two positive numbers."""
    try:
        row, column = (float(v) for v in spacing)
    except (TypeError, ValueError):
        raise DicomReadError(f"{where}: PixelSpacing {spacing!r} is not two numbers") from None
    if not (np.isfinite([row, column]).all() and row > 0 and column > 0):
        raise DicomReadError(f"{where}: PixelSpacing {row:g}\\{column:g} mm is not two positive sizes")
    return column, row


#: FrameIncrementPointer targets that make a multi-frame image's frames time points.
_TIME_POINTERS = {
    0x00181063: "FrameTime",
    0x00181065: "FrameTimeVector",
    0x00540070: "TimeSlotVector",
    0x00540100: "TimeSliceVector",
}
_AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _stacked_frames_note(header: Header, frames: int, step: float, fallback_z: float | None) -> str:
    """What was assumed to stack a multi-frame image whose frames state no position. Frames that
    follow one another in time (a cine) are shown as a stack to be looked at, said plainly: their
    "slices" are not places in the patient."""
    pointers = header.get("FrameIncrementPointer")
    pointers = pointers if isinstance(pointers, list) else [pointers]
    times = [_TIME_POINTERS[p] for p in pointers if p in _TIME_POINTERS]
    if times:
        return (
            f"{header.path.name} is a time series (cine) of {frames} frames (FrameIncrementPointer "
            f"{', '.join(times)}), not a volume: its frames are stacked {step:g} mm apart for viewing "
            "only; distances, volumes and contours across frames mean nothing"
        )
    source = "its slice spacing" if fallback_z else "1 mm, as it states no slice spacing"
    return (
        f"{header.path.name}: its {frames} frames state no position of their own; they are "
        f"assumed to be slices {step:g} mm apart ({source}) along the slice normal"
    )


def _series_orientation(headers: list[Header], assumed: list[str]) -> np.ndarray:
    """The orientation every file shares; files stating none (or a malformed one) take that of
    the others, or axial when none states one, said in `assumed`."""
    stated = [(h, h.get("ImageOrientationPatient")) for h in headers]
    known = [(h, np.asarray(o, float)) for h, o in stated if isinstance(o, list) and len(o) == 6]
    lacking = [(h, o) for h, o in stated if not (isinstance(o, list) and len(o) == 6)]
    reference, orientation = known[0] if known else (None, np.array(_AXIAL))
    for header, other in known[1:]:
        if not np.allclose(other, orientation, atol=1e-3):
            raise SeriesError(f"{header.path.name}: orientation differs from {reference.path.name}")
    if lacking:
        header, value = lacking[0]
        what = "no ImageOrientationPatient" if value is None else f"an ImageOrientationPatient of {value!r}"
        files = f"{header.path.name} and {len(lacking) - 1} other file(s) state" if len(lacking) > 1 else ""
        source = f"that of {reference.path.name}" if reference else "axial (1\\0\\0\\0\\1\\0)"
        assumed.append(
            f"{files or header.path.name + ' states'} {what}: the orientation is assumed to be {source}"
        )
    return orientation


def _slope(value, where: str) -> float:
    """RescaleSlope (1 when absent); refused when 0, which would make every pixel the same."""
    slope = _float(value, 1.0)
    if slope == 0:
        raise DicomReadError(f"{where}: RescaleSlope is 0, which would make every pixel the same value")
    return slope


def _float(value, default: float | None = None) -> float | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return default if value is None or value == "" else float(value)


# -- pixels ---------------------------------------------------------------------------------


def _read_planes(
    planes: list[_Plane],
    dtype: np.dtype,
    shape_yx: tuple[int, int],
    on_progress: ProgressCallback | None,
    cancel,
    beyond: dict[str, int] | None = None,
) -> np.ndarray:
    """Read and rescale every plane, in order, into one (planes, rows, columns) array; `beyond`
    gets, by file name, how many stored values lay beyond BitsStored's range (native or decoded)."""
    array = np.empty((len(planes), *shape_yx), dtype)
    scratch = np.empty(shape_yx[0] * shape_yx[1], stored_dtype(planes[0].header))
    # multi-frame and compressed files, decoded once: frames, and values beyond BitsStored per frame
    decoded: dict[object, tuple[np.ndarray, np.ndarray]] = {}
    for k, plane in enumerate(planes):
        if k % 16 == 0:
            if cancel is not None and cancel.is_set():
                raise Cancelled("loading cancelled")
            if on_progress is not None:
                on_progress("Loading slices", k, len(planes))
        header = plane.header
        target = array[k]
        count = 0
        if header.pixel_offset is not None and plane.frame is None:
            count = read_native_frames(header, target[np.newaxis], scratch)
        else:
            if header.path not in decoded:
                decoded.clear()
                decoded[header.path] = decode_frames(header)
            frames, frames_beyond = decoded[header.path]
            if frames.shape[1:] != shape_yx:
                raise DicomReadError(
                    f"{header.path.name}: decoded frames of size {frames.shape[1:]}, expected {shape_yx}"
                )
            target[...] = frames[plane.frame or 0]
            count = int(frames_beyond[plane.frame or 0])
        if count and beyond is not None:
            beyond[header.path.name] = beyond.get(header.path.name, 0) + count
        if plane.slope != 1.0 or plane.intercept != 0.0:
            if dtype.kind == "f":
                target *= dtype.type(plane.slope)
                target += dtype.type(plane.intercept)
            else:
                target += dtype.type(plane.intercept)
    if on_progress is not None:
        on_progress("Loading slices", len(planes), len(planes))
    return array


def _storage_warnings(headers: list[Header], beyond: dict[str, int]) -> list[str]:
    """Words for files stored differently from the rest of the series, and for stored values
    that BitsStored does not allow (cleared as the standard says: their values are likely wrong)."""
    warnings = []
    kinds: dict[tuple, list[str]] = {}
    for header in headers:
        kind = tuple(header.get(k) for k in ("BitsAllocated", "BitsStored", "PixelRepresentation"))
        kinds.setdefault(kind, []).append(header.path.name)
    if len(kinds) > 1:
        described = "; ".join(
            f"{allocated}/{stored} bits, {'signed' if representation == 1 else 'unsigned'} in {_some(names)}"
            for (allocated, stored, representation), names in sorted(kinds.items(), key=lambda i: -len(i[1]))
        )
        warnings.append(
            f"the files store their pixels differently (BitsAllocated/BitsStored): {described}; each is "
            "decoded as its own header says: check that their values agree"
        )
    if beyond:
        names = sorted(beyond)
        bits = {str(h.get("BitsStored")) for h in headers if h.path.name in beyond}
        warnings.append(
            f"{_some(names)} hold {sum(beyond.values())} stored value(s) beyond what their BitsStored "
            f"({', '.join(sorted(bits))}) allows; the bits above were cleared as the header says, so "
            "those pixels' values are likely wrong: the header's BitsStored may be damaged"
        )
    return warnings


def _some(names: list[str], shown: int = 3) -> str:
    """The first few of `names`, and how many more."""
    more = f" and {len(names) - shown} other file(s)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _check_duplicates(planes: list[_Plane], plan: StackPlan, array: np.ndarray) -> None:
    """Refuse duplicated positions whose pixels differ (which one is right cannot be known)."""
    if not plan.duplicates:
        return
    row_of = {index: k for k, index in enumerate(plan.order)}
    for kept, dropped in plan.duplicates:
        other = _read_planes([planes[dropped]], array.dtype, array.shape[1:], None, None)[0]
        if not np.array_equal(other, array[row_of[kept]]):
            raise SeriesError(
                f"{_plane_name(planes[kept])} and {_plane_name(planes[dropped])} are two "
                f"different images at the same position {np.round(planes[kept].position, 2).tolist()} mm"
            )


def _shared_uid_warnings(ordered: list[_Plane]) -> list[str]:
    """Words for each SOPInstanceUID (and frame) that names two planes at different positions:
    objects referencing the series by UID (an RTSTRUCT) cannot tell those images apart."""
    first: dict[tuple[str, int | None], _Plane] = {}
    warnings = []
    for plane in ordered:
        if not plane.sop_instance_uid:
            continue
        seen = first.setdefault((plane.sop_instance_uid, plane.frame), plane)
        if seen is not plane:
            warnings.append(
                f"{_plane_name(seen)} and {_plane_name(plane)} are two images at different positions "
                f"({np.round(seen.position, 2).tolist()} and {np.round(plane.position, 2).tolist()} mm) "
                f"with the same SOPInstanceUID {plane.sop_instance_uid}: the series is damaged; "
                "structures drawn on it cannot be exported as an RTSTRUCT, which references images by UID"
            )
    return warnings


def _plane_name(plane: _Plane) -> str:
    """The file of a plane, with its frame number (from 1) in a multi-frame file."""
    return plane.header.path.name + ("" if plane.frame is None else f" frame {plane.frame + 1}")


def _slice_ref(plane: _Plane) -> SliceRef:
    return SliceRef(
        sop_class_uid=plane.sop_class_uid,
        sop_instance_uid=plane.sop_instance_uid,
        position_xyz=tuple(float(v) for v in plane.position),
        frame=None if plane.frame is None else plane.frame + 1,
    )
