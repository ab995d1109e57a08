"""Opening and saving volumes by path: DICOM folders and files, NIfTI, NRRD, MHA.

`load_volume` is what the CLI and the workstation call with whatever the user points at. DICOM
goes through `planning.dicom`; the research formats go through SimpleITK, which keeps their
geometry (NIfTI's RAS is converted to LPS by ITK).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from planning.dicom.load import load_series
from planning.dicom.scan import ScanResult, scan
from planning.errors import DelineoError, FormatError
from planning.volume import Volume

#: File name endings read and written through SimpleITK.
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether the path names a NIfTI, NRRD or MetaImage file (by its ending)."""
    return str(path).lower().endswith(IMAGE_SUFFIXES)


def load_volume(path: str | os.PathLike, series: str | None = None, **kwargs) -> Volume:
    """Load a volume from a DICOM folder or file, or a NIfTI / NRRD / MHA file.

    Args:
        path: a folder of DICOM files (scanned recursively), one DICOM file, or an image file.
        series: SeriesInstanceUID (or loadable key) to pick when the folder holds several.
        kwargs: `on_progress` and `cancel`, passed on to the DICOM loader.

    Raises:
        DelineoError (or a subclass) naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise DelineoError(f"{path}: no such file or folder")
    if path.is_file() and is_image_file(path):
        return read_image_file(path)
    found = scan(path)
    return load_series(pick_series(found, path, series), **kwargs)


def pick_series(found: ScanResult, path: Path, series: str | None):
    """The one loadable series the user meant; a clear error when there is none or several."""
    if series is not None:
        return found.find_series(series)
    if len(found.series) == 1:
        return found.series[0]
    if not found.series:
        problems = "; ".join(p.reason for p in found.problems[:3])
        raise DelineoError(f"{path}: no CT/MR image series found" + (f" ({problems})" if problems else ""))
    listing = "\n  ".join(f"{s.key}: {s.describe()}" for s in found.series)
    raise DelineoError(f"{path} holds {len(found.series)} image series; choose one:\n  {listing}")


def read_image_file(path: str | os.PathLike) -> Volume:
    """A NIfTI, NRRD or MetaImage file as a `Volume` (no DICOM identity)."""
    path = Path(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise FormatError(f"{path.name}: cannot be read as an image ({_first_line(error)})") from error
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    return Volume.from_sitk(image)


def save_volume(volume: Volume, path: str | os.PathLike) -> None:
    """Write a volume as NIfTI, NRRD or MHA (chosen by the file ending), geometry included."""
    path = Path(path)
    if not is_image_file(path):
        raise FormatError(f"{path.name}: unknown image format; use one of {', '.join(IMAGE_SUFFIXES)}")
    image = volume.to_sitk()
    if volume.array.dtype == np.float64:
        image = sitk.Cast(image, sitk.sitkFloat32)
    try:
        sitk.WriteImage(image, str(path), useCompression=True)
    except RuntimeError as error:
        raise FormatError(f"{path.name}: cannot be written ({_first_line(error)})") from error


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("/", "sitk::", "ITK", "Exception"))]
    return (useful or lines or ["unknown error"])[-1]
