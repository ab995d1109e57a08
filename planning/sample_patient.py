"""A built-in sample patient made by code: a thorax CT phantom with its ground-truth structures.

Used when there is no data (a fresh install, a demo, CI screenshots). The phantom is a head-first
supine thorax in DICOM LPS coordinates: body on a carbon-fibre couch, two lungs, a heart, a spine
and ribs, a sternum, a spinal cord, and a 15 mm tumour in the right lung, with realistic
Hounsfield units and a little noise. It carries a synthetic (but stable) DICOM identity so every
structure exported against it references images by UID.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.uid import generate_uid

from planning.geometry import Grid
from planning.structures import GenerationAlgorithm, Mask, Structure, StructureSet
from planning.tg263 import distinct_color, style_for
from planning.volume import DicomIdentity, SliceRef, Volume

#: CT Image Storage.
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
#: Patient ID of the sample; lets the workstation recognise it in sessions.
SAMPLE_PATIENT_ID = "DELINEO-SAMPLE-001"


@dataclass
class SamplePatient:
    """The sample CT and the structures it was built from (the exact answer)."""

    volume: Volume
    structures: StructureSet


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=["delineo-sample-patient", *map(str, parts)])


def sample_identity() -> DicomIdentity:
    """The synthetic DICOM identity of the sample (the same on every run)."""
    return DicomIdentity(
        patient_id=SAMPLE_PATIENT_ID,
        patient_name="Sample^Thorax Phantom",
        patient_birth_date="19600101",
        patient_sex="O",
        study_instance_uid=_uid("study"),
        study_id="1",
        study_date="20240101",
        study_time="090000",
        study_description="Delineo sample thorax (synthetic)",
        accession_number="",
        series_instance_uid=_uid("series"),
        series_number="1",
        series_description="Synthetic thorax CT 2 mm / 3 mm",
        frame_of_reference_uid=_uid("frame-of-reference"),
        manufacturer="Delineo (synthetic)",
    )


def sample_grid(
    shape_zyx: tuple[int, int, int] = (80, 256, 256), pixel_mm: float = 1.95, slice_mm: float = 3.0
) -> Grid:
    """An axial head-first-supine grid centred on (0, 0, 0) mm."""
    nz, ny, nx = shape_zyx
    origin = (-(nx - 1) / 2 * pixel_mm, -(ny - 1) / 2 * pixel_mm + 20.0, -(nz - 1) / 2 * slice_mm)
    return Grid(shape_zyx, (pixel_mm, pixel_mm, slice_mm), origin)


def make_sample_patient(shape_zyx: tuple[int, int, int] = (80, 256, 256), seed: int = 7) -> SamplePatient:
    """Build the sample thorax CT (int16 HU) and its structures (External, lungs, heart, ...).

    Args:
        shape_zyx: grid size; the anatomy keeps its size in mm, so smaller grids are coarser.
        seed: noise seed (the default gives the same image on every run).
    """
    pixel_mm = 1.95 * 256 / shape_zyx[2]
    slice_mm = 3.0 * 80 / shape_zyx[0]
    grid = sample_grid(shape_zyx, pixel_mm, slice_mm)
    nz, ny, nx = grid.shape
    x = (grid.origin_xyz[0] + np.arange(nx) * pixel_mm)[None, None, :].astype(np.float32)
    y = (grid.origin_xyz[1] + np.arange(ny) * pixel_mm)[None, :, None].astype(np.float32)
    z = (grid.origin_xyz[2] + np.arange(nz) * slice_mm)[:, None, None].astype(np.float32)

    def ellipsoid(cx, cy, cz, ax, ay, az):
        return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2 <= 1.0

    # Body: an elliptic cylinder narrowing towards the neck (superior end).
    taper = 1.0 - 0.25 * np.clip((z - 60.0) / 60.0, 0.0, 1.0)
    body_r = ((x / (170.0 * taper)) ** 2 + (y / (115.0 * taper)) ** 2) <= 1.0
    body = np.broadcast_to(body_r, grid.shape)
    inner = ((x / (170.0 * taper - 12.0)) ** 2 + (y / (115.0 * taper - 12.0)) ** 2) <= 1.0
    inner = np.broadcast_to(inner, grid.shape)

    lung_r = ellipsoid(-75.0, 5.0, 5.0, 62.0, 80.0, 105.0) & inner
    lung_l = ellipsoid(75.0, 5.0, 5.0, 58.0, 80.0, 105.0) & inner
    heart = ellipsoid(22.0, -15.0, -40.0, 58.0, 48.0, 55.0)
    lung_l &= ~ellipsoid(22.0, -15.0, -40.0, 66.0, 56.0, 62.0)
    lung_r &= ~ellipsoid(0.0, 62.0, 0.0, 30.0, 30.0, 1e6)
    lung_l &= ~ellipsoid(0.0, 62.0, 0.0, 30.0, 30.0, 1e6)

    vertebra = np.broadcast_to(((x / 20.0) ** 2 + ((y - 58.0) / 17.0) ** 2) <= 1.0, grid.shape)
    canal = np.broadcast_to(((x / 8.0) ** 2 + ((y - 84.0) / 8.0) ** 2) <= 1.0, grid.shape)
    cord = np.broadcast_to(((x / 5.0) ** 2 + ((y - 84.0) / 5.0) ** 2) <= 1.0, grid.shape)
    lamina = np.broadcast_to(((x / 18.0) ** 2 + ((y - 88.0) / 13.0) ** 2) <= 1.0, grid.shape) & ~canal
    sternum = np.broadcast_to((np.abs(x) <= 14.0) & (np.abs(y + 100.0) <= 6.0), grid.shape) & (z < 90.0)
    rib_ring = np.broadcast_to(
        ((x / (170.0 * taper - 16.0)) ** 2 + (y / (115.0 * taper - 16.0)) ** 2 <= 1.0)
        & ((x / (170.0 * taper - 24.0)) ** 2 + (y / (115.0 * taper - 24.0)) ** 2 > 1.0)
        & (y > -95.0 * taper),
        grid.shape,
    )
    # Ribs run obliquely: lower (inferior) in front than at the back, so an axial slice cuts
    # each one in short arcs.
    ribs = rib_ring & (np.mod(z + 200.0 - 40.0 * y / 115.0, 24.0) < 8.0)
    bones = vertebra | lamina | sternum | ribs
    tumour = ellipsoid(-82.0, 12.0, 22.0, 16.0, 14.0, 15.0)
    tumour |= ellipsoid(-92.0, 4.0, 24.0, 8.0, 8.0, 9.0)
    lung_r &= ~tumour

    # Couch: carbon-fibre top and bottom skins around a foam core, below (posterior to) the body.
    couch_top = 115.0 + 8.0
    skin = (np.abs(y - (couch_top + 2.0)) <= 2.0) | (np.abs(y - (couch_top + 42.0)) <= 2.0)
    core = (y > couch_top + 4.0) & (y < couch_top + 40.0)
    couch_x = np.abs(x) <= 230.0

    rng = np.random.default_rng(seed)
    hu = np.full(grid.shape, -1000.0, np.float32)
    hu[np.broadcast_to(core & couch_x, grid.shape)] = -880.0
    hu[np.broadcast_to(skin & couch_x, grid.shape)] = 250.0
    hu[body] = -95.0  # subcutaneous fat
    hu[inner] = 45.0  # muscle and mediastinum
    hu[heart] = 38.0
    hu[lung_r | lung_l] = -840.0
    hu[bones] = 420.0
    cortical = bones & ~_eroded_xy(bones)
    hu[cortical] = 900.0
    hu[canal] = 20.0
    hu[cord] = 35.0
    hu[tumour] = 35.0
    hu += rng.normal(0.0, 12.0, grid.shape).astype(np.float32)
    array = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)

    identity = sample_identity()
    slices = [
        SliceRef(CT_IMAGE_STORAGE, _uid("image", k), tuple(float(v) for v in grid.slice_position(k)))
        for k in range(nz)
    ]
    volume = Volume(array, grid, "CT", identity, slices)

    structures = StructureSet(grid, identity.frame_of_reference_uid, label="Sample ground truth")
    truth = {
        "External": np.asarray(body),
        "Lung_R": lung_r,
        "Lung_L": lung_l,
        "Heart": heart & inner,
        "SpinalCord": np.asarray(cord),
        "Bone": bones,
        "GTV": tumour,
    }
    for name, full in truth.items():
        color, roi_type = style_for(name)
        color = distinct_color(color, [s.color for s in structures])  # TG-263 gives GTV the Heart's red
        mask = Mask.from_full(grid, np.ascontiguousarray(full))
        structures.add(
            Structure(
                name,
                mask,
                color,
                roi_type,
                GenerationAlgorithm.MANUAL,
                description="sample patient ground truth",
            )
        )
    return SamplePatient(volume, structures)


def _eroded_xy(mask: np.ndarray) -> np.ndarray:
    """In-plane 4-neighbour erosion (voxels whose four in-plane neighbours are all set)."""
    out = mask.copy()
    out[:, 1:, :] &= mask[:, :-1, :]
    out[:, :-1, :] &= mask[:, 1:, :]
    out[:, :, 1:] &= mask[:, :, :-1]
    out[:, :, :-1] &= mask[:, :, 1:]
    return out
