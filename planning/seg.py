"""DICOM Segmentation (SEG) export and import through highdicom, for research pipelines.

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
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from planning.errors import DelineoError, DicomReadError, FormatError, GeometryError
from planning.files import write_atomically
from planning.geometry import Grid
from planning.structure_io import labels_on_grid
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
_TYPE_OF_CODE = {types.value: roi_type for roi_type, (_, types) in _PROPERTY.items()}


def write_seg(structure_set: StructureSet, volume: Volume, path: str | os.PathLike) -> list[str]:
    """Write the structures as a binary DICOM-SEG referencing `volume`'s images.

    Empty structures are left out (a SEG segment needs at least one frame); each is named in the
    warnings returned.
    """
    path = Path(path)
    if not any(volume.slices) or not volume.frame_of_reference_uid:
        raise GeometryError(
            "a DICOM-SEG must reference its images: load the DICOM series the structures belong to"
        )
    if not structure_set.grid.same_as(volume.grid):
        raise GeometryError("the structures are not on the image grid; resample them onto the images first")
    warnings = [f"{s.name}: empty, left out of the SEG" for s in structure_set if s.mask.is_empty]
    structures = [s for s in structure_set if not s.mask.is_empty]
    if not structures:
        raise FormatError(f"{path.name}: no structure has any voxel; nothing to write")
    planes = [k for k, ref in enumerate(volume.slices) if ref is not None]
    skipped = [s.name for s in structures if not np.any(_plane_counts(s.mask)[planes])]
    if len(planes) < volume.grid.shape[0]:
        warnings.append(
            "planes interpolated on loading have no source image; the SEG covers the original images only"
        )
    pixels = np.zeros((len(planes), *volume.grid.shape[1:], len(structures)), bool)
    for index, structure in enumerate(structures):
        box = structure.mask.box
        for row, k in enumerate(planes):
            if box[0].start <= k < box[0].stop:
                pixels[row, box[1], box[2], index] = structure.mask.array[k - box[0].start]
    descriptions = [_description(i + 1, s) for i, s in enumerate(structures)]
    seg = hd.seg.Segmentation(
        source_images=[_source_image(volume, k) for k in planes],
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=1,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="Delineo",
        manufacturer_model_name="Delineo",
        software_versions=_software_version(),
        device_serial_number="0",
        content_label=(structure_set.label or "DELINEO").upper().replace(" ", "_")[:16],
        content_description="Delineo structures",
        series_description="Delineo segmentation",
    )
    if skipped:
        warnings.append(f"{', '.join(skipped)}: voxels only on interpolated planes, so empty in the SEG")
    write_atomically(path, seg.save_as)
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
    arrays = _segments_on_grid(seg, list(segments), volume)
    for (number, description), array in zip(segments.items(), arrays, strict=True):
        name = description.segment_label or f"Segment_{number}"
        color, roi_type = style_for(name)
        roi_type = _TYPE_OF_CODE.get(description.segmented_property_type.value, roi_type)
        algorithm = str(description.algorithm_type.value if description.algorithm_type else "MANUAL")
        structure = Structure(
            name=name,
            mask=Mask.from_full(volume.grid, array),
            color=_display_color(description) or color,
            roi_type=roi_type,
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
            name="Delineo", family=codes.DCM.ArtificialIntelligence, version=_software_version()
        )
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=structure.name[:64],
        segmented_property_category=category,
        segmented_property_type=kind,
        algorithm_type=algorithm,
        algorithm_identification=identification,
        display_color=hd.color.CIELabColor.from_rgb(*structure.color),
    )


def _display_color(description) -> tuple[int, int, int] | None:
    value = description.get("RecommendedDisplayCIELabValue")
    if value is None:
        return None
    return tuple(int(c) for c in hd.color.CIELabColor.from_dicom_value(value).to_rgb(clip=True))


def _source_image(volume: Volume, k: int) -> Dataset:
    """A header-only stand-in for image k: what highdicom copies and references from it."""
    identity, ref, grid = volume.identity, volume.slices[k], volume.grid
    ds = Dataset()
    ds.SOPClassUID = ref.sop_class_uid
    ds.SOPInstanceUID = ref.sop_instance_uid
    ds.StudyInstanceUID = identity.study_instance_uid
    ds.SeriesInstanceUID = identity.series_instance_uid
    ds.FrameOfReferenceUID = identity.frame_of_reference_uid
    ds.Modality = volume.modality or "OT"
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = identity.patient_birth_date
    ds.PatientSex = identity.patient_sex
    ds.StudyDate = identity.study_date
    ds.StudyTime = identity.study_time
    ds.StudyID = identity.study_id
    ds.AccessionNumber = identity.accession_number
    ds.ReferringPhysicianName = identity.referring_physician_name
    ds.Rows, ds.Columns = grid.shape[1:]
    ds.PixelSpacing = [f"{grid.spacing_xyz[1]:.10g}", f"{grid.spacing_xyz[0]:.10g}"]
    ds.SliceThickness = f"{grid.spacing_xyz[2]:.10g}"
    ds.ImageOrientationPatient = [f"{v:.10g}" for v in (*grid.direction[:, 0], *grid.direction[:, 1])]
    ds.ImagePositionPatient = [f"{v:.10g}" for v in ref.position_xyz]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    return ds


def _software_version() -> str:
    try:
        return version("delineo")
    except PackageNotFoundError:
        return "unknown"


# -- reading helpers ------------------------------------------------------------------------


def _segments_on_grid(seg, numbers: list[int], volume: Volume) -> list[np.ndarray]:
    """Segments as bool arrays on the volume's grid (nearest voxel through patient space)."""
    try:
        seg_volume = seg.get_volume(segment_numbers=numbers, combine_segments=False, dtype=np.uint8)
    except Exception as error:  # frames that do not form a regular stack
        raise DicomReadError(f"the segments do not form a regular stack of planes ({error})") from error
    array = np.asarray(seg_volume.array)
    if array.ndim == 3:
        array = array[..., np.newaxis]
    affine = np.asarray(seg_volume.affine, float)
    columns = affine[:3, :3]  # index (slice, row, column) → LPS mm
    spacing = np.linalg.norm(columns, axis=0)
    source = Grid(array.shape[:3], tuple(spacing[::-1]), tuple(affine[:3, 3]), (columns / spacing)[:, ::-1])
    return [labels_on_grid(array[..., c], source, volume.grid) > 0 for c in range(array.shape[-1])]
