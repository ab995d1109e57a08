"""DICOM Segmentation (SEG) export and import, for research pipelines.

highdicom reads SEGs and describes the segments (coded categories, algorithm, colour). The SEG
itself is built frame by frame (`planning.seg_dataset`), exactly as highdicom's `Segmentation`
would build it (a test compares the two files), because that class takes every plane of every segment as one
dense array (planes × rows × columns × segments): 18 GB for 117 structures on a 512 × 512 × 600
CT. Reading goes one segment at a time for the same reason.

A SEG stores each structure as binary frames on the image planes; planning systems read
RTSTRUCT instead (`planning.rtstruct`). The SEG references the original images by UID and copies
their patient, study and frame of reference. Structure names go to SegmentLabel; the RT ROI
interpreted type travels as the segmented property (targets as SNOMED "planning/clinical/gross
target volume", the body outline as "entire body", everything else as an organ), so a SEG
written by Delineo reads back with the same names, colours and types.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from planning import software_version
from planning.dicom.references import check_references
from planning.dicom.stack import image_plane_origins
from planning.errors import DelineoError, DicomReadError, FormatError, GeometryError
from planning.files import write_atomically
from planning.interpolation import fill_planes_without_images
from planning.seg_dataset import (
    frame_groups,
    packed_frames,
    planes_along_normal,
    seg_dataset,
)
from planning.seg_placement import segment_masks
from planning.structures import GenerationAlgorithm, Mask, RoiType, Structure, StructureSet
from planning.tg263 import style_for
from planning.volume import Volume

log = logging.getLogger(__name__)

_ANATOMY = codes.SCT.AnatomicalStructure
_SPATIAL = codes.SCT.SpatialAndRelationalConcept
_ENTIRE_BODY = Code("38266002", "SCT", "Entire body")
#: RT ROI interpreted type → (segmented property category, type).
_PROPERTY = {
    RoiType.PTV: (_SPATIAL, codes.SCT.PlanningTargetVolume),
    RoiType.CTV: (_SPATIAL, codes.SCT.ClinicalTargetVolume),
    RoiType.GTV: (_SPATIAL, codes.SCT.GrossTumorVolume),
    RoiType.EXTERNAL: (_ANATOMY, _ENTIRE_BODY),
}
#: The segment description Delineo writes: the structure's RT ROI interpreted type (the
#: segmented property codes can only say organ, target or body), then the structure's own
#: description, cut to 64 characters.
_ROI_TYPE_PREFIX = "RT ROI Interpreted Type: "
_TYPE_OF_CODE = {types.value: roi_type for roi_type, (_, types) in _PROPERTY.items()}


def write_seg(structure_set: StructureSet, volume: Volume, path: str | os.PathLike) -> list[str]:
    """Write the structures as a binary DICOM-SEG referencing `volume`'s images.

    Empty structures are left out (a SEG segment needs at least one frame); each is named in the
    warnings returned. The file is what highdicom's `Segmentation` writes for the same structures
    (its segment descriptions, frame order and dimension indices), but built one frame at a time:
    highdicom needs every plane of every segment in one array, 18 GB for 117 structures on a
    512 × 512 × 600 CT. Here memory grows with the frames written (32 KB per 512² frame).
    """
    path = Path(path)
    check_references(volume, "a DICOM-SEG")
    if not structure_set.grid.same_as(volume.grid):
        raise GeometryError("the structures are not on the image grid; resample them onto the images first")
    planes = [k for k, ref in enumerate(volume.slices) if ref is not None]
    warnings = [f"{s.name}: empty, left out of the SEG" for s in structure_set if s.mask.is_empty]
    if len(planes) < volume.grid.shape[0]:
        warnings.append(
            "planes interpolated on loading have no source image; the SEG covers the original images only"
        )
    drawn = [(s, _plane_counts(s.mask)) for s in structure_set if not s.mask.is_empty]
    skipped = [s.name for s, c in drawn if not c[planes].any()]
    if skipped:
        warnings.append(f"{', '.join(skipped)}: voxels only on interpolated planes, left out of the SEG")
    drawn = [(s, c) for s, c in drawn if c[planes].any()]
    if not drawn:
        raise FormatError(f"{path.name}: no structure has any voxel on the images; nothing to write")
    structures, counts = [s for s, _ in drawn], [c for _, c in drawn]
    # highdicom's frame order: segment by segment, planes along the normal of its volume index
    # convention; a plane's dimension index counts only the planes where some segment has voxels
    used = [k for k in planes_along_normal(volume, planes) if any(c[k] for c in counts)]
    frames = [
        (number, k, rank)
        for number, c in enumerate(counts, start=1)
        for rank, k in enumerate(used, start=1)
        if c[k]
    ]
    segments = [_description(i + 1, s) for i, s in enumerate(structures)]
    seg = seg_dataset(structure_set, volume, structures, planes, segments)
    origins = image_plane_origins(volume.grid, volume.slices)
    seg.PerFrameFunctionalGroupsSequence = [
        frame_groups(volume, k, number, rank, origins[k]) for number, k, rank in frames
    ]
    seg.NumberOfFrames = len(frames)
    seg.PixelData = packed_frames(structures, frames, volume.grid.shape[1:])
    seg["PixelData"].VR = "OB"
    write_atomically(path, lambda target: seg.save_as(target, enforce_file_format=True))
    for warning in warnings:
        log.warning("%s: %s", path.name, warning)
    return warnings


def read_seg(path: str | os.PathLike, volume: Volume, names: list[str] | None = None) -> StructureSet:
    """Read a binary or fractional DICOM-SEG onto `volume`'s grid (fractional: ≥ 50 % is inside)."""
    path = Path(path)
    try:
        seg = hd.seg.segread(path)
    except Exception as error:  # highdicom raises many types on files that are not SEG
        raise DicomReadError(f"{path.name}: cannot be read as a DICOM-SEG ({error})") from error
    own = str(seg.get("FrameOfReferenceUID", ""))
    if own and volume.frame_of_reference_uid and own != volume.frame_of_reference_uid:
        raise GeometryError(
            f"{path.name} belongs to frame of reference {own}, the loaded images to "
            f"{volume.frame_of_reference_uid}: load the images the segmentation was made on"
        )
    segments = {int(n): seg.get_segment_description(int(n)) for n in seg.segment_numbers}
    if names is not None:
        by_label = {d.segment_label.upper(): n for n, d in segments.items()}
        missing = [name for name in names if name.upper() not in by_label]
        if missing:
            known = ", ".join(d.segment_label for d in segments.values())
            raise DelineoError(f"{path.name} has no segment named {', '.join(missing)}; segments: {known}")
        segments = {by_label[name.upper()]: segments[by_label[name.upper()]] for name in names}
    structure_set = StructureSet(volume.grid, volume.frame_of_reference_uid, str(seg.get("ContentLabel", "")))
    for number, placed in segment_masks(seg, list(segments), volume):
        description = segments[number]
        mask = fill_planes_without_images(placed, volume.slices)
        name = description.segment_label or f"Segment_{number}"
        color, roi_type = style_for(name)
        written_type, text = _type_and_text(description)
        roi_type = written_type or _TYPE_OF_CODE.get(description.segmented_property_type.value, roi_type)
        algorithm = str(description.algorithm_type.value if description.algorithm_type else "MANUAL")
        structure = Structure(
            name=name,
            mask=mask,
            color=_display_color(description) or color,
            roi_type=roi_type,
            description=text,
            algorithm=GenerationAlgorithm(
                algorithm if algorithm in GenerationAlgorithm.__members__ else "MANUAL"
            ),
        )
        structure_set.add(structure)
    return structure_set


# -- writing helpers ------------------------------------------------------------------------


def _plane_counts(mask: Mask) -> np.ndarray:
    counts = np.zeros(mask.grid.shape[0], np.int64)
    if mask.box is not None:
        counts[mask.box[0]] = mask.array.reshape(mask.array.shape[0], -1).sum(axis=1)
    return counts


def _description(number: int, structure: Structure) -> hd.seg.SegmentDescription:
    category, kind = _PROPERTY.get(structure.roi_type, (_ANATOMY, codes.SCT.Organ))
    algorithm = structure.algorithm.value
    identification = None
    if algorithm != "MANUAL":
        identification = hd.AlgorithmIdentificationSequence(
            name="Delineo", family=codes.DCM.ArtificialIntelligence, version=software_version()
        )
    description = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=structure.name[:64],
        segmented_property_category=category,
        segmented_property_type=kind,
        algorithm_type=algorithm,
        algorithm_identification=identification,
        display_color=hd.color.CIELabColor.from_rgb(*structure.color),
    )
    own = f"; {structure.description}" if structure.description else ""
    description.SegmentDescription = f"{_ROI_TYPE_PREFIX}{structure.roi_type.value}{own}"[:64]  # LO
    return description


def _type_and_text(description) -> tuple[RoiType | None, str]:
    """The RT ROI interpreted type Delineo wrote in a segment's free-text description (the coded
    property has no code for BOLUS, AVOIDANCE, SUPPORT…), if any, and the structure's own text."""
    text = str(description.get("SegmentDescription", ""))
    if not text.startswith(_ROI_TYPE_PREFIX):
        return None, text
    value, _, own = text.removeprefix(_ROI_TYPE_PREFIX).partition("; ")
    return (RoiType(value) if value in RoiType.__members__ else None), own


def _display_color(description) -> tuple[int, int, int] | None:
    value = description.get("RecommendedDisplayCIELabValue")
    if value is None:
        return None
    return tuple(int(c) for c in hd.color.CIELabColor.from_dicom_value(value).to_rgb(clip=True))
