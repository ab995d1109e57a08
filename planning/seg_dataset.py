"""The DICOM-SEG dataset, built frame by frame as highdicom's `Segmentation` builds it.

`planning.seg.write_seg` assembles a SEG from these pieces: the attributes shared by all frames
(`seg_dataset`), each frame's functional groups (`frame_groups`, in the order of
`planes_along_normal`) and the bit-packed pixels (`packed_frames`). highdicom would need every
plane of every segment as one dense array; here memory grows with the frames written only.
"""

from __future__ import annotations

import re
from datetime import datetime

import highdicom as hd
import numpy as np
from highdicom.spatial import VOLUME_INDEX_CONVENTION, get_normal_vector
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, SegmentationStorage, generate_uid

from planning import software_version
from planning.dicom.charset import declare_character_set
from planning.dicom.file_meta import add_file_meta
from planning.structures import Structure, StructureSet
from planning.volume import Volume

_SOURCE_FOR_PROCESSING = Code("121322", "DCM", "Source image for image processing operation")
_SEGMENTATION = Code("113076", "DCM", "Segmentation")
#: The frames' dimensions: (index attribute, its functional group, label), as highdicom's.
_DIMENSIONS = (
    (Tag("ReferencedSegmentNumber"), Tag("SegmentIdentificationSequence"), "Referenced Segment Number"),
    (Tag("ImagePositionPatient"), Tag("PlanePositionSequence"), "Image Position Patient"),
)


def planes_along_normal(volume: Volume, planes: list[int]) -> list[int]:
    """`planes` (volume slice indices) in highdicom's order: by distance along the normal of the
    (down, right) index convention, which runs against the slice direction of an axial stack."""
    grid = volume.grid
    orientation = [*grid.direction[:, 0], *grid.direction[:, 1]]
    normal = get_normal_vector(orientation, index_convention=VOLUME_INDEX_CONVENTION)
    positions = np.array([volume.slices[k].position_xyz for k in planes], float)
    return [planes[i] for i in np.argsort(positions @ normal, kind="stable")]


def seg_dataset(
    structure_set: StructureSet,
    volume: Volume,
    structures: list[Structure],
    planes: list[int],
    segments: list[Dataset],
) -> Dataset:
    """Every attribute of the SEG but its frames: patient, study and frame of reference copied
    from the images, the `segments` (SegmentSequence items, one per structure), the references
    to the source images of `planes`, the shared geometry."""
    identity, grid = volume.identity, volume.grid
    now = datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")
    ds = Dataset()
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.SOPClassUID = SegmentationStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyDate, ds.StudyTime = identity.study_date, identity.study_time
    ds.ContentDate, ds.ContentTime = date, time
    ds.AccessionNumber = identity.accession_number
    ds.Modality = "SEG"
    ds.Manufacturer = "Delineo"
    ds.ReferringPhysicianName = identity.referring_physician_name
    ds.SeriesDescription = "Delineo segmentation"
    ds.ManufacturerModelName = "Delineo"
    sources = _source_references(volume, planes)
    series = Dataset()
    series.ReferencedInstanceSequence = [
        _reference(ref, frame=False) for ref in _first_of_each_instance(sources)
    ]
    series.SeriesInstanceUID = identity.series_instance_uid
    ds.ReferencedSeriesSequence = [series]
    ds.SourceImageSequence = [_reference(ref) for ref in sources]
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = identity.patient_birth_date
    ds.PatientSex = identity.patient_sex
    ds.DeviceSerialNumber = "0"
    ds.SoftwareVersions = software_version()
    ds.StudyInstanceUID = identity.study_instance_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyID = identity.study_id
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = volume.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    organization = Dataset()
    organization.DimensionOrganizationUID = generate_uid()
    ds.DimensionOrganizationSequence = [organization]
    ds.DimensionIndexSequence = [
        _dimension(organization.DimensionOrganizationUID, *pointers) for pointers in _DIMENSIONS
    ]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = grid.shape[1:]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    ds.LossyImageCompression = "00"
    ds.SegmentationType = "BINARY"
    ds.SegmentSequence = segments
    ds.SegmentsOverlap = "YES" if _overlap(structures, volume.grid.shape) else "NO"
    ds.ContentLabel = _content_label(structure_set.label)
    ds.ContentDescription = "Delineo structures"
    ds.PresentationLUTShape = "IDENTITY"
    shared = Dataset()
    shared.PlaneOrientationSequence = hd.PlaneOrientationSequence(
        coordinate_system="PATIENT",
        image_orientation=[float(v) for v in (*grid.direction[:, 0], *grid.direction[:, 1])],
    )
    shared.PixelMeasuresSequence = hd.PixelMeasuresSequence(
        pixel_spacing=[grid.spacing_xyz[1], grid.spacing_xyz[0]],
        slice_thickness=grid.spacing_xyz[2],
        spacing_between_slices=grid.spacing_xyz[2],
    )
    ds.SharedFunctionalGroupsSequence = [shared]
    add_file_meta(ds, ExplicitVRLittleEndian)
    declare_character_set(ds)
    return ds


def _content_label(label: str) -> str:
    """`label` as a Content Label (CS: at most 16 of A–Z, 0–9 and underscore)."""
    return re.sub(r"[^A-Z0-9_]", "_", (label or "DELINEO").upper())[:16] or "DELINEO"


def _dimension(organization_uid: str, index, group, label: str) -> Dataset:
    item = Dataset()
    item.DimensionOrganizationUID = organization_uid
    item.DimensionIndexPointer = index
    item.FunctionalGroupPointer = group
    item.DimensionDescriptionLabel = label
    return item


def _source_references(volume: Volume, planes: list[int]) -> list:
    """The slice references (`SliceRef`) of `planes`, each image or frame once, in plane order."""
    seen, sources = set(), []
    for k in planes:
        ref = volume.slices[k]
        if (ref.sop_instance_uid, ref.frame) not in seen:
            seen.add((ref.sop_instance_uid, ref.frame))
            sources.append(ref)
    return sources


def _first_of_each_instance(sources: list) -> list:
    firsts = {}
    for ref in sources:
        firsts.setdefault(ref.sop_instance_uid, ref)
    return list(firsts.values())


def _reference(ref, frame: bool = True) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = ref.sop_class_uid
    item.ReferencedSOPInstanceUID = ref.sop_instance_uid
    if frame and ref.frame is not None:
        item.ReferencedFrameNumber = ref.frame
    return item


def frame_groups(volume: Volume, k: int, number: int, rank: int, origin_xyz: np.ndarray) -> Dataset:
    """The per-frame functional groups of segment `number` on plane `k` (`rank`: its index in
    the image-position dimension; `origin_xyz`: the plane's first pixel, LPS mm). On a gantry-
    tilted stack the plane is the image's but its pixels are shifted: locations not preserved."""
    ref = volume.slices[k]
    source = _reference(ref)
    shifted = np.linalg.norm(np.asarray(ref.position_xyz) - origin_xyz) > 1e-3
    source.SpatialLocationsPreserved = "NO" if shifted else "YES"
    source.PurposeOfReferenceCodeSequence = [_code(_SOURCE_FOR_PROCESSING)]
    derivation = Dataset()
    derivation.SourceImageSequence = [source]
    derivation.DerivationCodeSequence = [_code(_SEGMENTATION)]
    content = Dataset()
    content.DimensionIndexValues = [number, rank]
    segment = Dataset()
    segment.ReferencedSegmentNumber = number
    groups = Dataset()
    groups.DerivationImageSequence = [derivation]
    groups.FrameContentSequence = [content]
    groups.PlanePositionSequence = hd.PlanePositionSequence(
        coordinate_system="PATIENT", image_position=[float(v) for v in origin_xyz]
    )
    groups.SegmentIdentificationSequence = [segment]
    return groups


def _code(code: Code) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = (
        code.value,
        code.scheme_designator,
        code.meaning,
    )
    return item


def packed_frames(structures: list[Structure], frames, plane_shape: tuple[int, int]) -> bytes:
    """The frames' pixels, one bit each, the first pixel in the lowest bit (PS3.5 8.1.1), packed
    eight frames at a time (eight frames always fill whole bytes)."""
    chunks = []
    for start in range(0, len(frames), 8):
        group = np.zeros((min(8, len(frames) - start), *plane_shape), bool)
        for row, (number, k, _) in enumerate(frames[start : start + 8]):
            mask = structures[number - 1].mask
            box = mask.box
            group[row, box[1], box[2]] = mask.array[k - box[0].start]
        chunks.append(np.packbits(group, bitorder="little").tobytes())
    data = b"".join(chunks)
    return data + b"\0" if len(data) % 2 else data


def _overlap(structures: list[Structure], shape) -> bool:
    """Whether any voxel belongs to two of the structures."""
    covered = np.zeros(shape, bool)
    for structure in structures:
        box, array = structure.mask.box, structure.mask.array
        if np.any(covered[box] & array):
            return True
        covered[box] |= array
    return False
