"""Saving and restoring a contouring session without Qt: image reference, structures, history, view.

A session is a folder or a single archive (a zip whose name ends in ``.delineo`` or ``.zip``):

- ``session.json``: format version, the image reference (where the image is and what grid it
  must have), every structure's attributes (name, colour, type, algorithm, number, description,
  recipe, visibility), which slices interpolation filled in each and the slice view each was
  last drawn in, the edit history and the view state as plain data;
- ``structures.npz`` (compressed): each mask's bounding-box array, bit-packed, plus the imported
  planar contours and markers still attached to unedited structures;
- ``history.npz`` (compressed): the arrays the history refers to.

The history and view state are opaque to this module: any JSON-able data whose leaves may also be
numpy arrays (stored in ``history.npz``). Writes are atomic (`planning.session_storage`): a crash
while saving leaves the previous file whole, which is what autosave relies on.
"""

from __future__ import annotations

import io
import json
import logging
import os
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path

import numpy as np

from planning import derived
from planning import session_fields as check
from planning.errors import Cancelled, FormatError, GeometryError
from planning.geometry import Grid
from planning.recipe_check import check_recipe
from planning.session_storage import check_folder_target, read_files, write_archive, write_folder
from planning.structures import GenerationAlgorithm, Mask, PlanarContour, RoiType, Structure, StructureSet

log = logging.getLogger(__name__)

FORMAT_NAME = "delineo-session"
FORMAT_VERSION = 1
ARCHIVE_SUFFIXES = (".delineo", ".zip")
#: What `ImageReference.kind` may be.
IMAGE_KINDS = ("dicom", "file", "sample")
#: The largest ROI number an RTSTRUCT can carry (ROINumber is an IS value: a signed 32-bit integer).
MAX_ROI_NUMBER = 2**31 - 1
#: The slice views a structure may have been drawn in (`Session.drawn_in`).
DRAWING_VIEWS = ("axial", "coronal", "sagittal")


@dataclass
class ImageReference:
    """Where the session's image comes from and the grid it must load onto.

    Attributes:
        kind: "dicom" (a folder or file of a DICOM series), "file" (NIfTI/NRRD/MHA) or "sample"
            (the built-in sample patient, made by code).
        path: absolute path of the folder or file ("" for the sample).
        series_uid: SeriesInstanceUID (or loadable key) to pick in the folder.
        frame_of_reference_uid: the image's frame of reference.
        patient_id, patient_name, description: shown to the user when restoring.
        shape, spacing_xyz, origin_xyz, direction: the grid (see `planning.geometry`).
    """

    kind: str
    path: str
    shape: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]
    direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1)
    series_uid: str = ""
    frame_of_reference_uid: str = ""
    patient_id: str = ""
    patient_name: str = ""
    description: str = ""

    @property
    def grid(self) -> Grid:
        """The `planning.geometry.Grid` the referenced image had."""
        return Grid(self.shape, self.spacing_xyz, self.origin_xyz, np.reshape(self.direction, (3, 3)))

    @classmethod
    def for_volume(
        cls, volume, kind: str, path: str | os.PathLike = "", series_key: str = ""
    ) -> ImageReference:
        """The reference of a loaded `planning.volume.Volume` read from `path`. `series_key` is
        the loadable's key (`planning.dicom.scan.ImageSeries.key`) where it was one part of a
        split series ("<uid>#2": one echo of a dual-echo MR), else its SeriesInstanceUID is kept."""
        grid, identity = volume.grid, volume.identity
        return cls(
            kind=kind,
            path=str(Path(path).resolve()) if str(path) else "",
            shape=grid.shape,
            spacing_xyz=grid.spacing_xyz,
            origin_xyz=grid.origin_xyz,
            direction=tuple(float(v) for v in grid.direction.ravel()),
            series_uid=series_key or identity.series_instance_uid,
            frame_of_reference_uid=identity.frame_of_reference_uid,
            patient_id=identity.patient_id,
            patient_name=identity.patient_name,
            description=identity.series_description,
        )


@dataclass(frozen=True)
class FilledPlanes:
    """What slice interpolation put in the planes it filled in one structure.

    Attributes:
        axis: the array axis it interpolated along: 0 = z (axial planes), 1 = y, 2 = x.
        digests: {plane index along `axis`: digest of what it put there} (see
            `planning.interpolation.plane_digests`).
    """

    axis: int
    digests: dict[int, str]


@dataclass
class Session:
    """Everything needed to put a user back where they were.

    Attributes:
        image: the image reference.
        structures: the structure set (on `image.grid`).
        history: the edit history as plain data (list of JSON-able dicts; arrays allowed).
        view: view state as plain data (slice positions, window/level, zoom, layout...).
        saved_at: ISO time of the save (filled in by `save_session`).
        warnings: what loading had to leave out, in words (a damaged history...).
        interpolated: the planes slice interpolation filled, by ROI number, so that
            interpolating again redoes them and keeps the drawn ones (see
            `planning.interpolation.key_planes`).
        drawn_in: the slice view (one of `DRAWING_VIEWS`) each structure was last drawn in, by
            ROI number: interpolation fills between its slices in that view. A structure absent
            (sessions saved before it was kept) was not drawn in a remembered view.
    """

    image: ImageReference
    structures: StructureSet
    history: list = field(default_factory=list)
    view: dict = field(default_factory=dict)
    saved_at: str = ""
    warnings: list[str] = field(default_factory=list)
    interpolated: dict[int, FilledPlanes] = field(default_factory=dict)
    drawn_in: dict[int, str] = field(default_factory=dict)


ProgressCallback = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


# -- saving ---------------------------------------------------------------------------------


def save_session(
    session: Session,
    path: str | os.PathLike,
    *,
    on_progress: ProgressCallback = _no_progress,
    cancel=None,
) -> Path:
    """Write `session` to a folder, or to an archive when `path` ends in .delineo or .zip.

    The write is atomic: the previous session at `path` stays whole until the new one is
    complete. Returns the path written.

    Raises:
        FileExistsError: `path` is a file, or a folder neither empty nor a session (its
            contents would be replaced), and is left as it was.
    """
    path = Path(path)
    is_archive = path.name.lower().endswith(ARCHIVE_SUFFIXES)
    if not is_archive:
        check_folder_target(path)
    session.saved_at = datetime.now().isoformat(timespec="seconds")
    files = _encode(session, on_progress, cancel)
    if is_archive:
        write_archive(path, files)
    else:
        write_folder(path, files)
    on_progress("Saving session", 1, 1)
    return path


def _encode(session: Session, on_progress: ProgressCallback, cancel) -> dict[str, bytes]:
    structures, mask_arrays = [], {}
    items = list(session.structures)
    for index, structure in enumerate(items):
        if cancel is not None and cancel.is_set():
            raise Cancelled("saving the session was cancelled")
        on_progress("Saving structures", index, len(items))
        mask = structure.mask
        key = f"s{index}"
        mask_arrays[f"{key}_mask"] = np.packbits(mask.array, axis=None)
        record = {
            "key": key,
            **structure.properties_plain(),
            "offset": list(mask.offset),
            "shape": list(mask.array.shape),
            "contours": _pack_contours(structure.contours, f"{key}_contours", mask_arrays),
            "markers": _pack_contours(structure.markers, f"{key}_markers", mask_arrays),
        }
        structures.append(record)
    history_arrays: dict[str, np.ndarray] = {}
    history = _to_plain(session.history, history_arrays)
    document = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "saved_at": session.saved_at,
        "image": _reference_to_plain(session.image),
        "structure_set": {
            "label": session.structures.label,
            "frame_of_reference_uid": session.structures.frame_of_reference_uid,
            "warnings": list(session.structures.warnings),  # e.g. contours left out at import
        },
        "structures": structures,
        "interpolated": {
            str(number): {
                "axis": filled.axis,
                "planes": {str(k): digest for k, digest in filled.digests.items()},
            }
            for number, filled in session.interpolated.items()
        },
        "drawn_in": {str(number): view for number, view in session.drawn_in.items()},
        "history": history,
        "view": _to_plain(session.view, history_arrays),
    }
    return {
        "session.json": json.dumps(document, indent=1).encode("utf-8"),
        "structures.npz": _npz_bytes(mask_arrays),
        "history.npz": _npz_bytes(history_arrays),
    }


def _pack_contours(contours: list[PlanarContour] | None, key: str, arrays: dict) -> dict | None:
    if contours is None:
        return None
    if not contours:
        return {"key": None, "types": [], "uids": []}
    arrays[f"{key}_points"] = np.concatenate(
        [np.asarray(c.points, np.float64).reshape(-1, 3) for c in contours]
    )
    arrays[f"{key}_counts"] = np.array([len(np.asarray(c.points).reshape(-1, 3)) for c in contours], np.int64)
    return {
        "key": key,
        "types": [c.geometric_type for c in contours],
        "uids": [c.image_uid for c in contours],
    }


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _reference_to_plain(reference: ImageReference) -> dict:
    plain = asdict(reference)
    for key in ("shape", "spacing_xyz", "origin_xyz", "direction"):
        plain[key] = [float(v) if key != "shape" else int(v) for v in plain[key]]
    return plain


def _to_plain(value, arrays: dict[str, np.ndarray]):
    """JSON-able copy of `value`; numpy arrays go into `arrays` and are replaced by references."""
    if isinstance(value, np.ndarray):
        key = f"a{len(arrays)}"
        if value.dtype == bool:
            arrays[key] = np.packbits(value, axis=None)
            return {"__array__": key, "bool_shape": list(value.shape)}
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, dict):
        return {str(k): _to_plain(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v, arrays) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, slice):
        return {"__slice__": [value.start, value.stop]}
    return value


# -- loading --------------------------------------------------------------------------------


def load_session(path: str | os.PathLike) -> Session:
    """Read a session folder or archive written by `save_session`.

    A damaged history, view state, record of interpolated slices or derived structure's recipe
    (or recipes reading each other in a cycle) is left out, with a warning in `Session.warnings`
    naming it, so the structures still load.
    Anything else damaged in the image reference or the structures refuses the file (nothing the
    user drew is dropped or guessed): the message names the entry, the structure, what it holds
    and what was expected.

    Raises:
        FormatError: the path is not a Delineo session, or is damaged (named in the message).
    """
    path = Path(path)
    files = read_files(path)
    document = _document(path, files)
    dropped: list[str] = []  # the damaged recipes left out
    try:
        mask_arrays = _npz(files, "structures.npz")
        reference = _reference_from_plain(check.entry(document, "image", "session.json"))
        grid = reference.grid
        structures = _structure_set_from(document.get("structure_set", {}), grid)
        records = check.sequence(
            check.entry(document, "structures", "session.json"), "session.json", "structures"
        )
        if records and "structures.npz" not in files:
            raise ValueError(f"structures.npz is missing (it holds the masks of {len(records)} structure(s))")
        numbers: dict[int, str] = {}
        for index, record in enumerate(records):
            structure = _structure_from_record(record, index, grid, mask_arrays, dropped)
            if structure.name in structures:
                raise ValueError(f"session.json: two structures are named {structure.name!r}")
            if structure.number in numbers:
                raise ValueError(
                    f"session.json: structures {numbers[structure.number]!r} and {structure.name!r} have "
                    f"the same ROI number {structure.number}"
                )
            numbers[structure.number] = structure.name
            structures.add(structure, rename=False)
    except (KeyError, ValueError, TypeError, AttributeError, GeometryError) as error:
        raise FormatError(f"{path}: damaged Delineo session ({error})") from error
    for warning in derived.drop_recipes_in_cycles(structures, "session.json"):
        log.warning(warning)
        dropped.append(warning)
    session = Session(reference, structures, saved_at=str(document.get("saved_at", "")), warnings=dropped)
    session.interpolated = _interpolated_from(document.get("interpolated", {}), session.warnings)
    session.drawn_in = _drawn_in_from(document.get("drawn_in", {}), session.warnings)
    try:
        history_arrays = _npz(files, "history.npz")
    except ValueError as error:
        _warn(session, f"{path}: the undo history and view state are damaged and were left out ({error})")
        return session
    try:
        session.history = _from_plain(document.get("history", []), history_arrays)
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        _warn(session, f"{path}: the undo history is damaged and was left out ({error})")
    try:
        session.view = check.mapping(_from_plain(document.get("view", {}), history_arrays), "the view state")
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        _warn(session, f"{path}: the view state is damaged and was reset ({error})")
    return session


def _warn(session: Session, warning: str) -> None:
    log.warning(warning)
    session.warnings.append(warning)


def _interpolated_from(plain, warnings: list[str]) -> dict[int, FilledPlanes]:
    """The interpolation record as saved; a damaged one is dropped, said in `warnings` (its
    planes then count as drawn, as before sessions kept it). Sessions saved before interpolation
    took an axis hold {plane: digest} per structure: axial planes."""
    try:
        return {int(n): _filled_from(record) for n, record in plain.items()}
    except (AttributeError, KeyError, TypeError, ValueError):
        warning = (
            "the record of which slices interpolation filled is damaged and was left out: interpolating "
            "again keeps those slices as if drawn"
        )
        log.warning(warning)
        warnings.append(warning)
        return {}


def _drawn_in_from(plain, warnings: list[str]) -> dict[int, str]:
    """The view each structure was last drawn in, as saved; a damaged entry (or record) is left
    out, said in `warnings`: that structure is then interpolated as one not drawn here (across
    its last interpolation's slices, or those with gaps between drawn ones)."""
    drawn_in: dict[int, str] = {}
    damaged: list[str] = []
    if not isinstance(plain, dict):
        damaged.append(f"session.json has drawing views {check.shown(plain)}, not an object of ROI numbers")
        plain = {}
    for number, view in plain.items():
        try:
            if not (number.isascii() and number.isdigit()):
                shown = check.shown(number)
                raise ValueError(
                    f"session.json has a drawing view for ROI number {shown}, not a whole number"
                )
            drawn_in[int(number)] = check.one_of(
                view, DRAWING_VIEWS, f"session.json: ROI number {number}", "drawing view"
            )
        except ValueError as error:
            damaged.append(str(error))
    for error in damaged:
        warning = f"{error}; left out: interpolation takes its direction from the structure's slices"
        log.warning(warning)
        warnings.append(warning)
    return drawn_in


def _filled_from(record: dict) -> FilledPlanes:
    axis, planes = (int(record["axis"]), record["planes"]) if "planes" in record else (0, record)
    if axis not in (0, 1, 2):
        raise ValueError(f"no array axis {axis}")
    return FilledPlanes(axis, {int(k): str(digest) for k, digest in planes.items()})


def _document(path: Path, files: dict[str, bytes]) -> dict:
    """The checked contents of session.json."""
    try:
        document = json.loads(files["session.json"].decode("utf-8"))
    except (KeyError, ValueError) as error:
        raise FormatError(f"{path}: not a Delineo session (no readable session.json)") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise FormatError(f"{path}: not a Delineo session (format {found!r})")
    try:
        version = int(document.get("version", 0))
    except (TypeError, ValueError) as error:
        raise FormatError(f"{path}: damaged Delineo session (version {document['version']!r})") from error
    if version > FORMAT_VERSION:
        raise FormatError(
            f"{path}: session format version {version} is newer than this Delineo "
            f"reads ({FORMAT_VERSION}); update Delineo"
        )
    return document


def _npz(files: dict[str, bytes], name: str) -> dict[str, np.ndarray]:
    """The arrays of member `name` (none when it is absent); ValueError when it is damaged."""
    data = files.get(name)
    if not data:
        return {}
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as error:
        raise ValueError(f"{name} unreadable: {error}") from error


def _array(arrays: dict[str, np.ndarray], key: str, what: str) -> np.ndarray:
    """`arrays[key]` from structures.npz, or a ValueError saying what is missing."""
    if key not in arrays:
        raise ValueError(f"structures.npz has no {what} ({key})")
    return arrays[key]


def _reference_from_plain(plain: dict) -> ImageReference:
    where = "session.json: the 'image' entry"
    check.mapping(plain, where)
    for key in ("kind", "path", "shape", "spacing_xyz", "origin_xyz"):
        check.entry(plain, key, where)
    unknown = sorted(set(plain) - {f.name for f in fields(ImageReference)})
    if unknown:
        raise ValueError(f"{where} has unknown field(s) {', '.join(map(repr, unknown))}")
    values = dict(plain)
    values["kind"] = check.one_of(values["kind"], IMAGE_KINDS, where, "kind")
    values["shape"] = check.numbers(values["shape"], where, "shape", 3, integer=True, low=1)
    values["spacing_xyz"] = check.numbers(values["spacing_xyz"], where, "spacing_xyz", 3)
    values["origin_xyz"] = check.numbers(values["origin_xyz"], where, "origin_xyz", 3)
    if "direction" in values:
        values["direction"] = check.numbers(values["direction"], where, "direction", 9)
    for key in ("path", "series_uid", "frame_of_reference_uid", "patient_id", "patient_name", "description"):
        if key in values:
            values[key] = check.text(values[key], where, key)
    reference = ImageReference(**values)
    try:
        _ = reference.grid
    except GeometryError as error:  # spacing not positive, direction not a rotation
        raise ValueError(f"{where}: {error}") from error
    return reference


def _structure_set_from(info, grid: Grid) -> StructureSet:
    """The empty structure set the 'structure_set' entry describes (label, frame of reference,
    what importing it left out)."""
    where = "session.json: the 'structure_set' entry"
    check.mapping(info, where)
    structures = StructureSet(
        grid,
        check.text(info.get("frame_of_reference_uid", ""), where, "frame_of_reference_uid"),
        check.text(info.get("label", "Delineo"), where, "label"),
    )
    structures.warnings = list(check.texts(info.get("warnings", []), where, "warnings"))
    return structures


def _structure_from_record(
    record: dict, index: int, grid: Grid, arrays: dict[str, np.ndarray], warnings: list[str]
) -> Structure:
    """The structure of one record of session.json's 'structures' list, each value checked; a
    damaged recipe is dropped, said in `warnings`."""
    name = record.get("name") if isinstance(record, dict) else None
    what = f"structure {name!r}" if isinstance(name, str) and name.strip() else f"structure {index + 1}"
    where = f"session.json: {what}"
    check.mapping(record, where)
    for key in ("name", "key", "shape", "offset", "roi_type", "algorithm", "number"):
        check.entry(record, key, where)
    properties = {
        "name": check.text(record["name"], where, "name", empty=False),
        "color": check.colour(record.get("color"), where),
        "roi_type": check.one_of(record["roi_type"], RoiType, where, "ROI type"),
        "algorithm": check.one_of(record["algorithm"], GenerationAlgorithm, where, "generation algorithm"),
        "number": check.whole(record["number"], where, "ROI number", low=1, high=MAX_ROI_NUMBER),
        "description": check.text(record.get("description", ""), where, "description"),
        "recipe": record.get("recipe"),
        "drawn_elsewhere": _drawn_elsewhere(record.get("drawn_elsewhere"), where),
        **{key: check.flag(record.get(key, default), where, repr(key)) for key, default in _FLAGS.items()},
    }
    if properties["recipe"] is not None:
        _drop_damaged_recipe(properties, where, warnings)
    key = check.text(record["key"], where, "key", empty=False)
    shape = check.numbers(record["shape"], where, "mask shape", 3, integer=True, low=0)
    offset = check.numbers(record["offset"], where, "mask offset", 3, integer=True, low=0)
    packed = _array(arrays, f"{key}_mask", f"mask for {what}")
    try:
        bits = check.packed_bits(packed, shape, f"structures.npz: the mask of {what} ({key}_mask)")
        mask = Mask(grid, bits, offset)
    except GeometryError as error:  # the box leaves the image
        raise ValueError(f"{where}: {error}") from error
    contours = _unpack_contours(record.get("contours"), arrays, what, f"{where}: its contours")
    markers = _unpack_contours(record.get("markers"), arrays, what, f"{where}: its markers")
    return Structure.from_properties(properties, mask, contours=contours, markers=markers)


def _drawn_elsewhere(value, where: str) -> dict | None:
    """A structure record's `DrawnElsewhere` data (spacing mm, volumes cc), checked; None when absent."""
    if value is None:
        return None
    check.mapping(value, where)
    keys = ("spacing_mm", "drawn_cc", "placed_cc")
    values = check.numbers([value.get(key) for key in keys], where, "drawn_elsewhere", len(keys), low=0)
    return dict(zip(keys, values, strict=True))


def _drop_damaged_recipe(properties: dict, where: str, warnings: list[str]) -> None:
    """Leave out a structure's recipe that cannot be carried out (an unknown operation, a margin
    not a number…), and its copy in the description: the structure keeps its geometry as drawn or
    last built, and is no longer rebuilt from its sources."""
    try:
        check_recipe(properties["recipe"])
    except ValueError as error:
        properties["recipe"] = None
        properties["description"] = derived.without_recipe(properties["description"])
        warning = (
            f"{where}: its recipe is damaged ({error}); the recipe was left out: "
            f"{properties['name']} keeps its contours but is no longer rebuilt from its sources"
        )
        log.warning(warning)
        warnings.append(warning)


#: The true/false attributes of a structure record, and their values when absent.
_FLAGS = {"visible": True, "awaiting_review": False, "locked": False}


def _unpack_contours(
    packed: dict | None, arrays: dict[str, np.ndarray], what: str, where: str
) -> list[PlanarContour] | None:
    """The planar contours (or markers) of a structure record: None (not kept), or an object
    naming its arrays in structures.npz and each contour's type and image."""
    if packed is None:
        return None
    check.mapping(packed, where)
    key = check.entry(packed, "key", where)
    if key is None:
        return []
    key = check.text(key, where, "key", empty=False)
    kinds = check.sequence(check.entry(packed, "types", where), where, "types")
    for kind in kinds:
        check.one_of(kind, check.CONTOUR_TYPES, where, "a type")
    uids = check.texts(check.entry(packed, "uids", where), where, "uids")
    if len(uids) != len(kinds):
        raise ValueError(f"{where} have {len(kinds)} types but {len(uids)} image UIDs")
    points = _array(arrays, f"{key}_points", f"contours for {what}")
    counts = _array(arrays, f"{key}_counts", f"contours for {what}")
    pieces = check.contour_arrays(points, counts, len(kinds), what, key)
    return [PlanarContour(piece, kind, uid) for piece, kind, uid in zip(pieces, kinds, uids, strict=True)]


def _from_plain(value, arrays: dict[str, np.ndarray]):
    """`value` with its array and slice references (see `_to_plain`) replaced by what they
    stand for; a ValueError in words for one that cannot be (the history is then left out)."""
    if isinstance(value, dict):
        if "__array__" in value:
            key = value["__array__"]
            if not isinstance(key, str) or key not in arrays:
                raise ValueError(f"history.npz has no array {check.shown(key)}")
            data = arrays[key]
            if "bool_shape" in value:
                shape = value["bool_shape"]
                if not (isinstance(shape, list) and all(check.is_whole(n) and n >= 0 for n in shape)):
                    raise ValueError(
                        f"session.json: the history's array {key!r} has shape {check.shown(shape)}"
                    )
                return check.packed_bits(data, tuple(int(n) for n in shape), f"history.npz: array {key!r}")
            return data
        if "__slice__" in value:
            bounds = value["__slice__"]
            if not (
                isinstance(bounds, list)
                and len(bounds) == 2
                and all(b is None or check.is_whole(b) for b in bounds)
            ):
                raise ValueError(
                    f"session.json: the history has a slice {check.shown(bounds)}, not two whole numbers"
                )
            return slice(*(None if b is None else int(b) for b in bounds))
        return {k: _from_plain(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_plain(v, arrays) for v in value]
    return value
