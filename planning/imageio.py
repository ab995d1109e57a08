"""Opening and saving volumes by path: DICOM folders and files, NIfTI, NRRD, MHA.

`load_volume` is what the CLI and the workstation call with whatever the user points at. DICOM
goes through `planning.dicom`; the research formats go through SimpleITK, which keeps their
geometry (NIfTI's RAS is converted to LPS by ITK). Where a NIfTI file's sform and the geometry
ITK read (its qform or pixdim) disagree, the sform wins, as in nibabel, FSL and most tools. A
sheared sform (axes not at right angles: `planning.sform_shear`) is refused, unless the shear is
rounding (under 0.01°): the axes are then made perpendicular.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import struct
import threading
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from planning.dicom.load import load_series
from planning.dicom.scan import ScanResult, scan
from planning.errors import DelineoError, FormatError, GeometryError
from planning.geometry import Grid
from planning.sform_shear import (
    SHEAR_LIMIT_DEG,
    SHEAR_NOISE_DEG,
    Shear,
    perpendicular_grid,
    shear_of,
    voxels_moved_mm,
)
from planning.volume import Volume

log = logging.getLogger(__name__)

#: File name endings read and written through SimpleITK.
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
#: The ITK reader of each ending.
_IMAGE_IO = {
    ".nii.gz": "NiftiImageIO",
    ".nii": "NiftiImageIO",
    ".nrrd": "NrrdImageIO",
    ".nhdr": "NrrdImageIO",
    ".mha": "MetaImageIO",
    ".mhd": "MetaImageIO",
}

#: ITK's switch letting its NIfTI reader take a sform whose axes are not perpendicular.
_ITK_PERMISSIVE = "ITK_NIFTI_SFORM_PERMISSIVE"
#: One read at a time changes that switch.
_PERMISSIVE_LOCK = threading.Lock()

#: The range of an image's lowest value that, with air and water present, makes it a CT: air
#: (−1000 HU, stored from −1024) down to the padding outside a scanner's field of view (−3024).
CT_LOWEST_HU = (-3100, -990)


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether the path names a NIfTI, NRRD or MetaImage file (by its ending)."""
    return image_suffix(path) is not None


def image_suffix(path: str | os.PathLike) -> str | None:
    """The path's image file ending (one of `IMAGE_SUFFIXES`, lower case, whatever its case in
    the name), or None."""
    name = Path(path).name.lower()
    return next((suffix for suffix in IMAGE_SUFFIXES if name.endswith(suffix)), None)


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
        raise DelineoError(found.nothing_to_open(path))
    listing = "\n  ".join(f"{s.key}: {s.describe()}" for s in found.series)
    raise DelineoError(f"{path} holds {len(found.series)} image series; choose one:\n  {listing}")


def read_image_file(path: str | os.PathLike) -> Volume:
    """A NIfTI, NRRD or MetaImage file as a `Volume` (no DICOM identity). These formats name no
    modality: an image whose values look like Hounsfield units is read as CT (said in the log).

    Raises:
        FormatError: the file cannot be read, or a NIfTI file holds less data than its header
            declares (ITK would fill the rest with zeros).
        GeometryError: the image is not one 3D single-component volume, or a NIfTI file's sform
            holds a shear (axes `SHEAR_LIMIT_DEG` or more from right angles).
    """
    path = Path(path)
    volume, bad = _read_with_non_finite(path)
    if _looks_like_ct(volume.array):
        volume.modality = "CT"
        log.info("%s: values in Hounsfield units (air and water present): read as CT", path.name)
    if bad:
        volume.warnings.append(
            f"{path.name}: {bad:,} voxels are not numbers (NaN or infinite): the image may be damaged, "
            "and values computed over those voxels are meaningless"
        )
    for warning in volume.warnings:
        log.warning("%s", warning)
    return volume


def read_label_map(path: str | os.PathLike) -> Volume:
    """A NIfTI, NRRD or MetaImage label map as a `Volume` of labels 0, 1, 2, … in the smallest
    unsigned integer type that holds them. The one rule every reader of label maps applies:
    integer labels are read as they are; floating-point labels are read when every value is a
    whole number (with a warning naming the file); NaN or infinite voxels are refused, since a
    damaged label map must not lose structures to background unsaid.

    Raises:
        FormatError: the file cannot be read, or holds NaN or infinite voxels (with their count),
            values that are not whole numbers or negative values (with an example).
        GeometryError: as `read_image_file`.
    """
    path = Path(path)
    labels, bad = _read_with_non_finite(path)
    values = labels.array
    if bad:
        raise FormatError(
            f"{path.name}: {bad:,} voxels are not numbers (NaN or infinite): the label map is damaged; "
            f"{_LABELS}"
        )
    if values.dtype.kind not in "iub":
        if values.dtype.kind != "f":
            raise FormatError(f"{path.name}: holds {values.dtype} values; {_LABELS}")
        fractional = values[values != np.rint(values)]
        if fractional.size:
            raise FormatError(
                f"{path.name}: {fractional.size:,} voxels hold values that are not whole numbers (e.g. "
                f"{fractional.flat[0]:g}): a probability map or an image, not a label map; {_LABELS}"
            )
        labels.warnings.append(
            f"{path.name}: labels stored as {values.dtype} values, all whole numbers: read as integer labels"
        )
    lowest, highest = (values.min(), values.max()) if values.size else (0, 0)
    if lowest < 0:
        raise FormatError(f"{path.name}: holds negative values (e.g. {lowest:g}); {_LABELS}")
    if highest > np.iinfo(np.uint32).max:
        raise FormatError(
            f"{path.name}: holds labels up to {highest:g}; {_LABELS} up to {np.iinfo(np.uint32).max:,}"
        )
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32) if highest <= np.iinfo(t).max)
    labels.array = values.astype(dtype, copy=False)
    for warning in labels.warnings:
        log.warning("%s", warning)
    return labels


#: What a label map holds, said when it holds something else.
_LABELS = "a label map holds whole-number labels 0, 1, 2, …"


def _read_with_non_finite(path: Path) -> tuple[Volume, int]:
    """An image file as a `Volume`, placed by its NIfTI sform where it has one, and the count of
    its voxels that are NaN or infinite (`read_image_file`'s Raises)."""
    if path.is_file() and path.stat().st_size == 0:
        raise FormatError(f"{path.name}: empty file (0 bytes)")
    nifti_header = _read_nifti_header(path) if path.name.lower().endswith((".nii", ".nii.gz")) else None
    sform = _used_sform(nifti_header) if nifti_header is not None else None
    if nifti_header is not None:
        _check_nifti_complete(path, nifti_header)
    if sform is not None:
        _check_sform_shear(path, nifti_header, sform)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    suffix = image_suffix(path)
    if suffix is not None and not path.name.endswith(suffix):  # ITK knows endings in lower case only
        reader.SetImageIO(_IMAGE_IO[suffix])
    try:
        with _sform_shear_allowed(sform):
            image = reader.Execute()
    except RuntimeError as error:
        reason = _first_line(error)
        if "No such file or directory" in reason:  # the data ended before the voxels did
            reason = "truncated or damaged: its data ends before all its voxels are read"
        raise FormatError(f"{path.name}: cannot be read as an image ({reason})") from error
    except MemoryError:
        raise FormatError(f"{path.name}: not enough memory to read the image") from None
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() == 4:
        raise GeometryError(
            f"{path.name}: a 4D image of {image.GetSize()[3]} volumes; save the one to use as its own file"
        )
    try:
        volume = Volume.from_sitk(image)
    except GeometryError as error:
        raise GeometryError(f"{path.name}: {error}") from None
    except MemoryError:
        raise FormatError(f"{path.name}: not enough memory for its {_size_words(image)} image") from None
    if nifti_header is not None:
        _apply_sform(volume, path, nifti_header, sform)
    return volume, _non_finite(path, volume, nifti_header)


def _non_finite(path: Path, volume: Volume, nifti_header: bytes | None) -> int:
    """NaN or infinite voxels: a NIfTI file's counted in its data (ITK reads them as 0)."""
    bad = _nifti_non_finite(path, nifti_header) if nifti_header is not None else 0
    if volume.array.dtype.kind == "f":
        bad = bad or volume.array.size - int(np.count_nonzero(np.isfinite(volume.array)))
    return bad


def _looks_like_ct(array: np.ndarray) -> bool:
    """Whether an image's values look like Hounsfield units (these formats name no modality): the
    lowest near air's −1000 (down to a scanner's padding value), air and water both present
    (≥ 0.5 % of the voxels each, on every fourth row and column)."""
    sample = array[:, ::4, ::4]
    if sample.size == 0 or not np.issubdtype(sample.dtype, np.number):
        return False
    lowest = np.nanmin(sample)
    if not CT_LOWEST_HU[0] <= lowest <= CT_LOWEST_HU[1]:
        return False
    air = np.count_nonzero((sample >= -1100) & (sample <= -900))
    water = np.count_nonzero((sample >= -100) & (sample <= 100))
    return min(air, water) >= 0.005 * sample.size


def _read_nifti_header(path: Path) -> bytes | None:
    """The first 540 bytes of a NIfTI file (plain or gzipped); None when they cannot be read (ITK's
    own error then names the problem)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            return stream.read(540)
    except (OSError, EOFError, zlib.error):
        return None


def _check_nifti_complete(path: Path, header: bytes) -> None:
    """Refuse a NIfTI-1/2 file (plain or gzipped) holding fewer bytes than its header declares."""
    try:
        expected = _nifti_size(header)
    except FormatError as error:
        raise FormatError(f"{path.name}: {error}") from None
    if expected is None:
        return
    gzipped = path.name.lower().endswith(".gz")
    available = _decompressed_size(path, expected) if gzipped else path.stat().st_size
    if available < expected:
        raise FormatError(
            f"{path.name}: truncated or damaged; it holds {available:,} of the {expected:,} bytes its "
            "header declares"
        )


class _NiftiLayout(NamedTuple):
    """Where a NIfTI file's voxels are: byte order ("<" or ">"), dim[0..7], bits per voxel, NIfTI
    datatype code and the byte offset of the first voxel."""

    endian: str
    dims: tuple[int, ...]
    bitpix: int
    datatype: int
    offset: int


def _nifti_layout(header: bytes) -> _NiftiLayout | None:
    """The layout a NIfTI-1 or NIfTI-2 header states; None if the header is neither."""
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            datatype, bitpix = struct.unpack(endian + "2h", header[70:74])
            offset = int(struct.unpack(endian + "f", header[108:112])[0])
            return _NiftiLayout(endian, dims, bitpix, datatype, offset)
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            dims = struct.unpack(endian + "8q", header[16:80])
            datatype, bitpix = struct.unpack(endian + "2h", header[12:16])
            offset = struct.unpack(endian + "q", header[168:176])[0]
            return _NiftiLayout(endian, dims, bitpix, datatype, offset)
    return None


def _nifti_size(header: bytes) -> int | None:
    """Bytes a NIfTI file must hold (voxel offset + voxel data), from its header; None if the
    header is not NIfTI-1 or NIfTI-2; FormatError if it declares a size below 1."""
    layout = _nifti_layout(header)
    if layout is None or not 1 <= layout.dims[0] <= 7 or layout.bitpix <= 0:
        return None
    sizes = layout.dims[1 : layout.dims[0] + 1]
    if min(sizes) < 1:  # ITK reads a size of 0 as 1: a volume of one slice, the rest ignored
        raise FormatError(f"damaged header: it declares an image of size {' × '.join(map(str, sizes))}")
    return layout.offset + int(np.prod(sizes, dtype=np.int64)) * layout.bitpix // 8


#: NIfTI datatype codes of floating-point voxels, and their numpy types.
_NIFTI_FLOATS = {16: np.float32, 64: np.float64}


def _nifti_non_finite(path: Path, header: bytes, chunk_values: int = 2**24) -> int:
    """Voxels of a floating-point NIfTI file that are NaN or infinite, counted in the file's own
    data: ITK's reader turns them into 0, which on a CT reads as water."""
    layout = _nifti_layout(header)
    if layout is None or layout.datatype not in _NIFTI_FLOATS or not 1 <= layout.dims[0] <= 7:
        return 0
    dtype = np.dtype(_NIFTI_FLOATS[layout.datatype]).newbyteorder(layout.endian)
    remaining = int(np.prod(layout.dims[1 : layout.dims[0] + 1], dtype=np.int64))
    bad = 0
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as stream:
        stream.seek(layout.offset)
        while remaining > 0:
            values = np.frombuffer(stream.read(min(remaining, chunk_values) * dtype.itemsize), dtype)
            if not values.size:
                break
            bad += values.size - int(np.count_nonzero(np.isfinite(values)))
            remaining -= values.size
    return bad


def _nifti_sform(header: bytes) -> tuple[int, np.ndarray] | None:
    """sform_code and sform (3×4, voxel index → RAS mm) of a NIfTI-1/2 header; None if the
    header is not NIfTI."""
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            code = struct.unpack(endian + "h", header[254:256])[0]
            rows = struct.unpack(endian + "12f", header[280:328])
            break
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            code = struct.unpack(endian + "i", header[348:352])[0]
            rows = struct.unpack(endian + "12d", header[400:496])
            break
    else:
        return None
    return code, np.array(rows, dtype=np.float64).reshape(3, 4)


class _UsedSform(NamedTuple):
    """A NIfTI header's sform in use: its code, the sform (3×4, voxel → LPS mm) and its shear."""

    code: int
    lps: np.ndarray
    shear: Shear


def _used_sform(header: bytes) -> _UsedSform | None:
    """The sform of a NIfTI header whose sform is in use (code > 0) and places every voxel
    (finite, no voxel step of length 0); else None."""
    found = _nifti_sform(header)
    if found is None or found[0] <= 0:
        return None
    code, sform = found
    lps = np.diag([-1.0, -1.0, 1.0]) @ sform
    if not (np.all(np.isfinite(lps)) and np.all(np.linalg.norm(lps[:, :3], axis=0) > 0)):
        return None
    return _UsedSform(code, lps, shear_of(lps))


def _check_sform_shear(path: Path, header: bytes, sform: _UsedSform) -> None:
    """Refuse a NIfTI file whose sform's voxel axes are `SHEAR_LIMIT_DEG` or more from right
    angles: no grid places its voxels where the file does (ITK would refuse it without saying
    why, or place it by its qform, elsewhere than nibabel and FSL do)."""
    code, lps, shear = sform
    if shear.shear_deg < SHEAR_LIMIT_DEG:
        return
    shape = tuple(max(int(n), 1) for n in _nifti_layout(header).dims[3:0:-1])  # (z, y, x)
    moved = voxels_moved_mm(lps, perpendicular_grid(lps, shape))
    raise GeometryError(
        f"{path.name}: its sform (code {code}) is sheared: its voxel axes {shear.axes} meet at "
        f"{shear.angle_deg:.3f}°, {shear.shear_deg:.3f}° from a right angle. Delineo places images by "
        f"perpendicular axes, which would move voxels up to {moved:.2f} mm from where the file puts "
        "them; resample the image onto a grid with perpendicular axes first"
    )


@contextmanager
def _sform_shear_allowed(sform: _UsedSform | None):
    """While ITK reads a NIfTI file whose sform holds a shear below `SHEAR_LIMIT_DEG` (rounding),
    let it (ITK refuses any above about 0.006° when the qform is not set); `_apply_sform` then
    makes the axes perpendicular. The variable is ITK's own switch, set for this read only."""
    if sform is None or sform.shear.shear_deg < SHEAR_NOISE_DEG:
        yield
        return
    with _PERMISSIVE_LOCK:
        previous = os.environ.get(_ITK_PERMISSIVE)
        os.environ[_ITK_PERMISSIVE] = "1"
        try:
            yield
        finally:
            if previous is None:
                del os.environ[_ITK_PERMISSIVE]
            else:
                os.environ[_ITK_PERMISSIVE] = previous


def _apply_sform(volume: Volume, path: Path, header: bytes, placed: _UsedSform | None) -> None:
    """Place `volume` by the file's sform (sform_code > 0; `placed`, `_used_sform`'s) where ITK's
    geometry differs, with a warning naming both. An sform sheared less than `SHEAR_LIMIT_DEG`
    (larger ones are refused before reading) is made perpendicular, said unless the shear is mere
    rounding; a degenerate sform is not used, said."""
    found = _nifti_sform(header)
    if found is None or found[0] <= 0:
        return
    code, itk = found[0], volume.grid
    if placed is None:
        stated = np.diag([-1.0, -1.0, 1.0]) @ found[1]
        if not np.allclose(stated, itk.affine[:3], atol=1e-3):
            volume.warnings.append(
                f"{path.name}: its sform (code {code}) differs from its qform/pixdim geometry but is "
                f"degenerate (a voxel step of length 0, or not a number), so it is not used; the image "
                f"is placed by {_describe(itk)}; the sform says {np.round(stated, 4).tolist()} (LPS mm)"
            )
        return
    stated, shear = placed.lps, placed.shear
    grid = perpendicular_grid(stated, itk.shape)
    if shear.shear_deg >= SHEAR_NOISE_DEG:
        volume.grid = grid
        volume.warnings.append(
            f"{path.name}: its sform's voxel axes {shear.axes} meet at {shear.angle_deg:.4f}°, "
            f"{shear.shear_deg:.4f}° from a right angle (rounding by the program that wrote it, most "
            f"likely); they are made perpendicular, which moves no voxel more than "
            f"{voxels_moved_mm(stated, grid):.3f} mm"
        )
    elif not np.allclose(stated, itk.affine[:3], atol=1e-3):
        volume.grid = grid
        volume.warnings.append(
            f"{path.name}: its sform (code {code}) and its qform/pixdim disagree; the sform is used, as "
            f"nibabel, FSL and most tools do: {_describe(grid)} (the qform/pixdim said {_describe(itk)})"
        )


def _describe(grid: Grid) -> str:
    """A grid's origin, spacing and axes in words (LPS mm)."""

    def numbers(values) -> str:
        return ", ".join(f"{v:.4g}" for v in np.asarray(values, float).ravel() + 0.0)

    axes = "; ".join(numbers(grid.direction[:, k]) for k in range(3))
    return (
        f"origin ({numbers(grid.origin_xyz)}) mm, spacing ({numbers(grid.spacing_xyz)}) mm, "
        f"axes x ({axes.replace('; ', '), y (', 1).replace('; ', '), z (', 1)})"
    )


def _decompressed_size(path: Path, expected: int, chunk: int = 1 << 20) -> int:
    """Bytes a gzipped file decompresses to, up to its first damage. The gzip trailer's size
    (modulo 2³²) answers at once for a complete file of one member."""
    with open(path, "rb") as raw:
        raw.seek(-4, os.SEEK_END)
        if struct.unpack("<I", raw.read(4))[0] == expected % 2**32:
            return expected
    total, inflate = 0, zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    with open(path, "rb") as raw:
        try:
            while data := raw.read(chunk):
                while data:
                    total += len(inflate.decompress(data))
                    data = inflate.unused_data if inflate.eof else b""
                    if inflate.eof:  # the next gzip member, if any
                        inflate = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
        except zlib.error:
            pass
    return total


def save_volume(volume: Volume, path: str | os.PathLike) -> None:
    """Write a volume as NIfTI, NRRD or MetaImage (chosen by the file ending, in any case),
    geometry included. The files are written in a hidden folder beside `path` under their final
    names and then moved into place, the header last: a failed write leaves an earlier file whole,
    and a detached header (.nhdr, .mhd) names its data file as it will be found."""
    path = Path(path)
    suffix = image_suffix(path)
    if suffix is None:
        raise FormatError(f"{path.name}: unknown image format; use one of {', '.join(IMAGE_SUFFIXES)}")
    try:
        image = volume.to_sitk()
        if volume.array.dtype == np.float64:
            image = sitk.Cast(image, sitk.sitkFloat32)
    except (MemoryError, RuntimeError) as error:  # SimpleITK's allocation failure is a RuntimeError
        raise FormatError(
            f"{path.name}: cannot be written, not enough memory for a copy of the volume "
            f"({volume.array.nbytes / 2**30:.2f} GiB; {_first_line(error) if str(error) else 'MemoryError'})"
        ) from None
    header = path.name[: -len(suffix)] + suffix  # SimpleITK picks the format by a lower-case ending
    staging = path.with_name(f".partial.{path.name}.d")
    try:
        staging.mkdir(exist_ok=True)
        try:
            sitk.WriteImage(image, str(staging / header), useCompression=True)
        except RuntimeError as error:
            raise FormatError(f"{path.name}: cannot be written ({_first_line(error)})") from error
        for written in sorted(staging.iterdir(), key=lambda p: p.name == header):
            os.replace(written, path if written.name == header else path.with_name(written.name))
    except OSError as error:
        raise FormatError(f"{path.name}: cannot be written ({error.strerror or error})") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _size_words(image: sitk.Image) -> str:
    """'W×H×D type, N GiB' of an image."""
    size = image.GetSize()
    nbytes = int(np.prod(size, dtype=np.int64)) * image.GetSizeOfPixelComponent()
    return f"{'×'.join(map(str, size))} {image.GetPixelIDTypeAsString()}, {nbytes / 2**30:.2f} GiB"


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("/", "sitk::", "ITK", "Exception"))]
    return (useful or lines or ["unknown error"])[-1]
