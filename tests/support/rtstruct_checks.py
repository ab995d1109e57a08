"""Independent checks for RTSTRUCT tests: dciodvfy, plastimatch, overlap and surface distances.

plastimatch's masks come back on its own image geometry; they are compared with Delineo's by
mapping through patient coordinates (nearest voxel), never by assuming the same array layout.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.uid import generate_uid
from scipy import ndimage

from planning.geometry import Grid
from planning.structure_io import labels_on_grid
from planning.volume import Volume
from support.tools import require


def dciodvfy_errors(path: Path) -> list[str]:
    """The 'Error' lines dciodvfy prints for a DICOM file (empty when the file conforms)."""
    result = subprocess.run(
        [require("dciodvfy"), str(path)], capture_output=True, text=True, errors="replace", timeout=120
    )
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


def plastimatch_masks(rtstruct: Path, series: Path, out: Path) -> dict[str, sitk.Image]:
    """plastimatch's rasterisation (even-odd: --xor-contours) of every ROI, by ROI name."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            require("plastimatch"),
            "convert",
            "--input",
            str(rtstruct),
            "--referenced-ct",
            str(series),
            "--output-prefix",
            str(out),
            "--prefix-format",
            "nrrd",
            "--xor-contours",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return {path.stem: sitk.ReadImage(str(path)) for path in out.glob("*.nrrd")}


def on_volume_grid(image: sitk.Image, volume: Volume) -> np.ndarray:
    """A mask image carried onto the volume's grid through patient coordinates, as bool (z, y, x)."""
    source = Grid(
        sitk.GetArrayViewFromImage(image).shape,
        image.GetSpacing(),
        image.GetOrigin(),
        np.array(image.GetDirection()).reshape(3, 3),
    )
    return labels_on_grid(sitk.GetArrayFromImage(image).astype(np.uint8), source, volume.grid) > 0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def hd95_mm(a: np.ndarray, b: np.ndarray, spacing_zyx) -> float:
    """95th percentile of the symmetric surface distances between two masks, in mm."""
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return float("inf")
    box = tuple(
        slice(max(s.start - 2, 0), s.stop + 2) for s in ndimage.find_objects((a | b).astype(np.uint8))[0]
    )
    a, b = np.pad(a[box], 1), np.pad(b[box], 1)
    surface_a = a & ~ndimage.binary_erosion(a)
    surface_b = b & ~ndimage.binary_erosion(b)
    to_b = ndimage.distance_transform_edt(~surface_b, sampling=spacing_zyx)[surface_a]
    to_a = ndimage.distance_transform_edt(~surface_a, sampling=spacing_zyx)[surface_b]
    return float(np.percentile(np.concatenate([to_b, to_a]), 95))


def copy_with_uids(source: Path, target: Path) -> Path:
    """Copy a DICOM series, uncompressed, with the study/series/instance UIDs anonymisation removed."""
    target.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    for path in sorted(p for p in source.iterdir() if p.is_file()):
        dataset = pydicom.dcmread(path)
        dataset.StudyInstanceUID = dataset.get("StudyInstanceUID") or study
        dataset.SeriesInstanceUID = dataset.get("SeriesInstanceUID") or series
        if not dataset.get("SOPInstanceUID"):
            dataset.SOPInstanceUID = generate_uid()
        if not dataset.get("SOPClassUID"):
            dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        if dataset.file_meta.TransferSyntaxUID.is_compressed:
            dataset.decompress()  # plastimatch cannot decode JPEG 2000
        dataset.save_as(target / f"{path.name}.dcm")  # plastimatch reads only *.dcm files
    return target
