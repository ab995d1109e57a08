"""Write synthetic CT series as real DICOM files, for tests of loading and export.

`write_ct_series` makes one file per slice with the attributes a scanner writes; arguments let a
test break the series in specific ways (positions, sizes, tilt, UIDs).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid


def ct_phantom(shape_zyx=(12, 40, 48), seed: int = 0) -> np.ndarray:
    """A small CT-like int16 HU volume: air around a water ellipse with a bone rod and noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape_zyx)
    cy, cx = (shape_zyx[1] - 1) / 2, (shape_zyx[2] - 1) / 2
    body = ((y - cy) / (0.4 * shape_zyx[1])) ** 2 + ((x - cx) / (0.45 * shape_zyx[2])) ** 2 <= 1
    hu = np.where(body, 20, -1000).astype(np.int16)
    bone = ((y - cy) ** 2 + (x - cx - 3) ** 2) <= 9
    hu[bone] = 700
    hu += (rng.normal(0, 10, shape_zyx) + z).astype(np.int16)
    return np.clip(hu, -1024, 3071)  # what 12-bit storage with intercept -1024 can hold


def write_ct_series(
    folder: Path,
    hu: np.ndarray,
    *,
    spacing_xyz=(0.9, 0.9, 2.5),
    origin_xyz=(-20.0, -18.0, -15.0),
    orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    positions: Sequence[Sequence[float]] | None = None,
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    file_names: Sequence[str] | None = None,
    instance_numbers: Sequence[int] | None = None,
    implicit_vr: bool = False,
    patient_id: str = "DELINEO-TEST",
    series_description: str = "synthetic CT",
) -> list[Path]:
    """Write `hu` (z, y, x) as a CT series, one slice per file; return the paths in z order.

    Slice k lies at ``positions[k]`` if given, else at origin + k·spacing_z along the normal.
    Stored as unsigned 12-bit values with RescaleIntercept −1024, as most CT scanners do.
    """
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    frame_of_reference_uid = frame_of_reference_uid or generate_uid()
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = np.cross(row, col)
    paths = []
    for k in range(hu.shape[0]):
        position = (
            positions[k] if positions is not None else np.asarray(origin_xyz) + k * spacing_xyz[2] * normal
        )
        name = file_names[k] if file_names is not None else f"CT{k:04d}.dcm"
        number = instance_numbers[k] if instance_numbers is not None else k + 1
        path = folder / name
        dataset = _ct_slice(hu[k], position, orientation, spacing_xyz, implicit_vr)
        dataset.SeriesInstanceUID = series_uid
        dataset.StudyInstanceUID = study_uid
        dataset.FrameOfReferenceUID = frame_of_reference_uid
        dataset.InstanceNumber = number
        dataset.PatientID = patient_id
        dataset.SeriesDescription = series_description
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _ct_slice(hu2d, position, orientation, spacing_xyz, implicit_vr: bool) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit_vr else ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.Manufacturer = "Delineo test factory"
    ds.PatientName = "Test^Phantom"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [f"{v:.6g}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.6g}" for v in orientation]
    ds.PixelSpacing = [f"{spacing_xyz[1]:.6g}", f"{spacing_xyz[0]:.6g}"]
    ds.SliceThickness = f"{spacing_xyz[2]:.6g}"
    ds.KVP = "120"
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = hu2d.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    stored = np.clip(hu2d.astype(np.int32) + 1024, 0, 4095).astype("<u2")
    ds.PixelData = stored.tobytes()
    return ds


def folder_to_send(folder: Path) -> Path:
    """A folder of 4 small CT images and one file that is not DICOM (networking tests)."""
    write_ct_series(folder, ct_phantom((4, 16, 20)))
    (folder / "notes.txt").write_text("not DICOM")
    return folder


def write_enhanced_ct(path, hu):
    """A minimal Enhanced CT: per-frame positions (descending z), shared orientation/spacing/rescale."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.PatientID = "ENH"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = (generate_uid() for _ in range(3))
    ds.Rows, ds.Columns = hu.shape[1:]
    ds.NumberOfFrames = hu.shape[0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    shared = Dataset()
    orientation, measures, transform = Dataset(), Dataset(), Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing = [0.8, 0.7]
    measures.SliceThickness = 2.0
    transform.RescaleIntercept, transform.RescaleSlope, transform.RescaleType = 0, 1, "HU"
    shared.PlaneOrientationSequence = [orientation]
    shared.PixelMeasuresSequence = [measures]
    shared.PixelValueTransformationSequence = [transform]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for k in range(hu.shape[0]):
        item, position = Dataset(), Dataset()
        position.ImagePositionPatient = [0.0, 0.0, 10.0 - 2.0 * k]
        item.PlanePositionSequence = [position]
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = hu[::-1].astype("<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_enhanced_mr(path, values):
    """A minimal Enhanced MR whose pixel measures (0.6 × 0.9 mm pixels: 0.9 mm between rows,
    3 mm thick slices) are in each frame's functional groups, as scanners write them, not shared."""
    write_enhanced_ct(path, values)
    dataset = pydicom.dcmread(path)
    dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    dataset.Modality = "MR"
    del dataset.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence
    for item in dataset.PerFrameFunctionalGroupsSequence:
        measures = Dataset()
        measures.PixelSpacing = [0.9, 0.6]
        measures.SliceThickness = 3.0
        item.PixelMeasuresSequence = [measures]
    dataset.save_as(path)


def give_slice_the_uid_of_another(paths: list[Path], index: int, source: int) -> str:
    """Damage a written series: slice `index` takes slice `source`'s SOPInstanceUID (two images,
    one UID). Returns the shared UID."""
    import pydicom

    shared = pydicom.dcmread(paths[source]).SOPInstanceUID
    damaged = pydicom.dcmread(paths[index])
    damaged.SOPInstanceUID = damaged.file_meta.MediaStorageSOPInstanceUID = shared
    damaged.save_as(paths[index])
    return shared


def tilted_positions(count: int, shift_y_mm: float = 0.8, spacing_z: float = 2.5) -> list[tuple]:
    """ImagePositionPatient of a gantry-tilted axial stack: each slice shifted `shift_y_mm` along
    y from the previous one, `spacing_z` mm further along z (0.8 per 2.5 mm: a 17.7° tilt)."""
    return [(-20.0, -18.0 + shift_y_mm * k, -15.0 + spacing_z * k) for k in range(count)]


def write_raw_value(path: Path, tag: int, vr: str, value: bytes) -> None:
    """Rewrite one element of a file with exactly these bytes and VR (values pydicom would refuse
    to write: a decimal comma, 'nan', a US value stored as UN)."""
    from pydicom import dcmread
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    dataset = dcmread(path)
    value += b" " * (len(value) % 2)
    dataset[Tag(tag)] = RawDataElement(Tag(tag), vr, len(value), value, 0, dataset.is_implicit_VR, True)
    dataset.save_as(path)


def write_latin1_ct_series(folder: Path, hu: np.ndarray) -> list[Path]:
    """A CT series in ISO_IR 100 (Latin-1) with non-ASCII names the writers copy into their
    objects: ReferringPhysicianName "Müller^Jürgen", StudyID "Ä1", AccessionNumber "Zürich-7"."""
    import pydicom

    paths = write_ct_series(folder, hu)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ReferringPhysicianName = "Müller^Jürgen"
        ds.StudyID = "Ä1"
        ds.AccessionNumber = "Zürich-7"
        ds.save_as(path)
    return paths


def write_dual_echo_mr(folder: Path, shape_zyx=(6, 24, 28)) -> None:
    """A dual-echo MR (PD then T2) as scanners write it: both echoes in one series, on the same
    slice positions, told apart by EchoNumbers 1 and 2. Echo e's values are 100·e plus the
    slice index, so a test can tell which echo loaded."""
    from pydicom import dcmread
    from pydicom.uid import MRImageStorage

    series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    for echo in (1, 2):
        values = np.broadcast_to(np.arange(shape_zyx[0])[:, None, None] + 100 * echo, shape_zyx)
        paths = write_ct_series(
            folder,
            values.astype(np.int16),
            series_uid=series_uid,
            study_uid=study_uid,
            frame_of_reference_uid=frame_uid,
            file_names=[f"E{echo}_{k:03d}.dcm" for k in range(shape_zyx[0])],
            series_description="PD/T2 dual echo",
        )
        for path in paths:
            dataset = dcmread(path)
            dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = MRImageStorage
            dataset.Modality = "MR"
            dataset.EchoNumbers = echo
            dataset.EchoTime = 20 * echo
            del dataset.KVP, dataset.RescaleType
            dataset.save_as(path)
