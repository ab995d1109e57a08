"""Reading a DICOM RT Structure Set onto the image grid it was drawn on.

Each CLOSED_PLANAR contour is placed on its image: the one its ContourImageSequence names when
that image is loaded, otherwise the image plane its points lie on (CERR and others write no
per-contour reference). Contours are rasterised with the pixel-centre rule — a voxel belongs to
the structure when its centre is inside — and the contours of one plane are combined even-odd, so
a contour inside another is a hole and a contour inside a hole an island. POINT and OPEN_PLANAR
items are kept as markers, never filled. The contours themselves are kept on each structure
(`Structure.contours`) so that an unedited structure is written back unchanged.

Contours drawn on another reconstruction of the images' frame of reference (regular planes with
another spacing, in a file that references neither the loaded series nor its images) are placed
by nearest plane: each image plane takes the contour plane nearest to it, within half their
spacing (`planning.rtstruct.drawn_planes`), with a warning; contours of different planes are
never combined. Such structures keep as their own contours those outlines moved along the slice
normal onto the image planes that take them, each referencing its image: written back, they are
the outlines as drawn, on these images' planes (not traced again on this pixel grid). What that
does to each structure's volume (its contours' slabs on the drawn planes against those on the
image planes) is kept (`Structure.drawn_elsewhere`) for the writer to report, and a change of more
than 1 % is a warning here.

Planes of the volume with no source image (interpolated on loading) get the shape interpolated
between the neighbouring images, as a planning system does between contoured slices, unless the
structure has contours of its own there (drawn on the image missing from the series).

An ROI declared in another frame of reference than the images (in a file that names the images'
frame too) is left out with a warning. An RTSTRUCT of another frame of reference, or with
contours on images that are not loaded (or on no image plane: between the slices, or not planar),
is refused with an error naming what is wrong. One exception: a file whose frame of reference UID
differs from the images' but whose contours reference the loaded images one by one (some
exporters invent a new frame of reference UID) is read onto those images, with a warning.

Damage is confined to what it touches, each left out with a warning naming its ROI: contours
whose ContourData is empty, absent, not numbers, not whole (x, y, z) points or 10¹¹ mm or more
away; closed contours with fewer than 3 points; the later ROI and ROI Contour items of an ROI
number used twice; a derived structure's recipe in its ROI Description that is damaged (its
JSON cut short, an unknown operation, a margin not a number of mm ≥ 0: the structure is read as
drawn, `planning.derived.restore_recipes`). Markers (POINT, OPEN_PLANAR) more than half a slice
beyond the images are kept, with a warning. An ROI without contours is read as an empty
structure, and a ROIDisplayColor that is not three numbers 0–255 gives way to the name's default
colour, each said in a warning.
Contours wholly or partly beyond the images' in-plane edges are filled where they lie on the
images, and counted in a warning naming their ROI.

Modules: reading the file's ROIs is `planning.rtstruct.rois` (its ROIContourSequence
`planning.rtstruct.roi_contour_sequence`), placing the contours on the image planes
`planning.rtstruct.placement` (the planes of another reconstruction `planning.rtstruct.drawn_planes`),
rasterising them `planning.rtstruct.contours`; this module puts them together into a `StructureSet`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from planning.derived import restore_recipes
from planning.dicom.headers import read_dataset
from planning.errors import Cancelled, DelineoError, DicomReadError
from planning.interpolation import fill_planes_without_images
from planning.rtstruct import contours as planar
from planning.rtstruct.drawn_planes import DrawnPlanes, planes_of_another_reconstruction
from planning.rtstruct.placement import (
    ImagePlanes,
    PlacedRoi,
    check_frame_of_reference,
    check_outside,
    in_images_frame,
    place_roi,
    stated_frames,
)
from planning.rtstruct.rois import RoiRecord, parse_rois
from planning.rtstruct.writer import RT_STRUCTURE_SET_STORAGE
from planning.structures import DrawnElsewhere, GenerationAlgorithm, Mask, RoiType, Structure, StructureSet
from planning.tg263 import style_for
from planning.volume import Volume

log = logging.getLogger(__name__)


#: Contours farther than this from their image plane (mm) are reported.
OFF_PLANE_REPORT_MM = 0.05
#: Contours moved from another reconstruction's planes onto the images' are warned of when their
#: volume changes by more than this.
VOLUME_CHANGE_REPORTED = 0.01
_ProgressCallback = Callable[[str, int, int], None]


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
    drawn = planes_of_another_reconstruction(dataset, records, volume)
    records = _select(records, names, path)
    placer = ImagePlanes(volume, drawn)
    check_frame_of_reference(path, dataset, records, volume, placer, warnings)
    records = in_images_frame(path, stated_frames(dataset), records, volume, warnings)
    placed = [(record, place_roi(record, placer)) for record in records]
    if drawn is not None:
        warnings.append(_placed_by_nearest_plane(path, drawn, volume, placed))
    check_outside(path, placed, placer, allow_missing_images, warnings)
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
    warnings += restore_recipes(structure_set, path.name)
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


def _placed_by_nearest_plane(
    path: Path, drawn: DrawnPlanes, volume: Volume, placed: list[tuple[RoiRecord, PlacedRoi]]
) -> str:
    """The warning for contours drawn on another reconstruction's planes."""
    unused = sum(p.unused for _, p in placed)
    return (
        f"the contours of {path.name} were drawn on planes spaced {drawn.spacing_mm:.2f} mm, not on these "
        f"images' planes; placed on the image's {volume.grid.spacing_xyz[2]:.2f} mm planes by nearest "
        f"plane (each image plane takes the contour plane within {0.5 * drawn.spacing_mm:.2f} mm of it)"
        + (f"; {unused} contour(s) on planes no image plane is nearest to were not used" if unused else "")
        + "; every structure keeps its outlines as drawn, moved onto the image planes that take them"
    )


def _structure(record: RoiRecord, placed: PlacedRoi, placer: ImagePlanes, warnings: list[str]) -> Structure:
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
    if any(placed.beyond_edges.values()):
        counts = ", ".join(f"{n} {how}" for how, n in placed.beyond_edges.items())
        warnings.append(
            f"{name}: contours beyond the images' in-plane edges: {counts}; only what lies on the images "
            "is filled"
        )
    drawn_elsewhere = _drawn_elsewhere(record, placed, placer) if placer.drawn else None
    if drawn_elsewhere is not None and abs(drawn_elsewhere.change) > VOLUME_CHANGE_REPORTED:
        warnings.append(_volume_changed(name, drawn_elsewhere, placed, grid.spacing_xyz[2]))
    filled, offset = planar.rasterize(planar.Loops.from_list(placed.loops, placed.planes), grid.shape)
    mask = Mask(grid, filled, offset)
    if any(ref is None for ref in placer.slices) and not mask.is_empty:
        mask = fill_planes_without_images(mask, placer.slices, drawn=placed.planes)
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
        drawn_elsewhere=drawn_elsewhere,
        markers=placed.markers,
    )


def _drawn_elsewhere(record: RoiRecord, placed: PlacedRoi, placer: ImagePlanes) -> DrawnElsewhere:
    """The volume a record's contours enclose on the planes they were drawn on and on the image
    planes that took them, each plane a slab one spacing thick."""
    drawn = placer.drawn
    closed = [c for c in record.contours if c.encloses_area]
    along = np.array([float((c.points @ placer.normal).mean()) for c in closed])
    as_drawn = planar.Loops.from_list([placer.in_plane(c, 0) for c in closed], drawn.nearest(along).tolist())
    placed_loops = planar.Loops.from_list(placed.loops, placed.planes)
    spacing_x, spacing_y, spacing_z = placer.grid.spacing_xyz
    cc_per_pixel_mm = spacing_x * spacing_y / 1000.0
    return DrawnElsewhere(
        spacing_mm=drawn.spacing_mm,
        drawn_cc=planar.enclosed_area(as_drawn) * cc_per_pixel_mm * drawn.spacing_mm,
        placed_cc=planar.enclosed_area(placed_loops) * cc_per_pixel_mm * spacing_z,
    )


def _volume_changed(name: str, moved: DrawnElsewhere, placed: PlacedRoi, spacing_mm: float) -> str:
    unused = f"; {placed.unused} of its contours lie on planes no image plane takes" if placed.unused else ""
    return (
        f"{name}: its contours enclose {moved.drawn_cc:.2f} cc on the {moved.spacing_mm:.2f} mm planes "
        f"they were drawn on, {moved.placed_cc:.2f} cc on these {spacing_mm:.2f} mm images "
        f"({100 * moved.change:+.1f} %){unused}"
    )
