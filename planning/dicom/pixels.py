"""Pixel data: stored values of DICOM frames, and the rescale to physical values.

Native little-endian pixel data is read straight from the file at the offset the header walker
found; everything else (JPEG baseline/lossless, JPEG-LS, JPEG 2000, RLE, deflated, big endian)
is decoded by pydicom's pixel-data plugins (pylibjpeg, pyjpegls, GDCM). Either way the values are
the stored values, masked to BitsStored and sign-extended as the header says, so both paths
agree to the bit.
"""

from __future__ import annotations

import numpy as np
from pydicom.uid import UID

from planning.dicom.headers import Header, read_dataset
from planning.errors import DicomReadError


def stored_dtype(header: Header) -> np.dtype:
    """numpy dtype of the stored pixel values (little endian)."""
    bits = int(header["BitsAllocated"])
    signed = int(header.get("PixelRepresentation", 0)) == 1
    if bits not in (8, 16, 32):
        raise DicomReadError(f"{header.path.name}: {bits}-bit pixels are not supported")
    return np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")


def check_grayscale(header: Header) -> None:
    """Raise unless the image is single-sample grayscale (what a CT or MR volume holds)."""
    samples = int(header.get("SamplesPerPixel", 1))
    if samples != 1:
        photometric = header.get("PhotometricInterpretation", "?")
        raise DicomReadError(
            f"{header.path.name}: colour image ({photometric}, {samples} samples per pixel) "
            "cannot be a CT or MR volume"
        )


def frame_bytes(header: Header) -> int:
    """Bytes of one uncompressed frame."""
    return int(header["Rows"]) * int(header["Columns"]) * stored_dtype(header).itemsize


def check_native_length(header: Header) -> None:
    """Refuse native pixel data shorter than Rows × Columns × frames of the header (checked
    before anything is allocated: a damaged header may claim gigabytes)."""
    if header.pixel_offset is None:
        return
    frames = int(header.get("NumberOfFrames", 1) or 1)
    needed = frame_bytes(header) * frames
    available = min(header.pixel_length or 0, max(header.file_size - header.pixel_offset, 0))
    if available < needed:
        raise DicomReadError(
            f"{header.path.name}: pixel data truncated, {available} of {needed} bytes "
            f"({header['Columns']}×{header['Rows']} pixels × {frames} frame(s))"
        )


def read_native_frames(header: Header, out: np.ndarray, scratch: np.ndarray | None = None) -> int:
    """Read all frames of a native-encoded file into `out` (frames, rows, columns); return how
    many stored values lay beyond BitsStored's range (see `mask_to_bits_stored`).

    `out` may have any numeric dtype; values are converted by assignment. `scratch` is a
    reusable buffer of the stored dtype and at least the size of `out`.
    """
    dtype = stored_dtype(header)
    count = out.size
    needed = count * dtype.itemsize
    available = min(header.pixel_length or 0, max(header.file_size - (header.pixel_offset or 0), 0))
    if available < needed:
        raise DicomReadError(f"{header.path.name}: pixel data truncated, {available} of {needed} bytes")
    if scratch is None or scratch.size < count or scratch.dtype != dtype:
        scratch = np.empty(count, dtype)
    raw = scratch[:count]
    with open(header.path, "rb") as stream:
        stream.seek(header.pixel_offset)
        got = stream.readinto(memoryview(raw).cast("B"))
    if got < needed:
        raise DicomReadError(f"{header.path.name}: pixel data truncated, {got} of {needed} bytes")
    out.reshape(-1)[...], beyond = mask_to_bits_stored(raw, header)
    return beyond


def decode_frames(header: Header) -> tuple[np.ndarray, np.ndarray]:
    """All frames of a file as stored values, shape (frames, rows, columns), via pydicom, masked
    to BitsStored and sign-extended like native data (see `mask_to_bits_stored`); and, per frame,
    how many stored values lay beyond BitsStored's range. pydicom is asked to leave the bits above
    BitsStored as decoded (it clears them itself for RLE, JPEG lossless and the uncompressed
    syntaxes it decodes), so that they are counted here, in the same pass that clears them."""
    dataset = read_dataset(header.path, pixels=True)
    if "PixelData" not in dataset:
        raise DicomReadError(f"{header.path.name}: the file has no pixel data")
    syntax = UID(header.transfer_syntax or dataset.file_meta.get("TransferSyntaxUID", ""))
    try:
        dataset.pixel_array_options(correct_unused_bits=False)
        frames = dataset.pixel_array
    except Exception as error:  # decoders raise anything from ValueError to RuntimeError
        raise DicomReadError(
            f"{header.path.name}: cannot decode {syntax.name or syntax} pixel data ({error})"
        ) from error
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[np.newaxis]
    if frames.ndim != 3:
        raise DicomReadError(f"{header.path.name}: pixel data of shape {frames.shape} is not grayscale")
    return mask_to_bits_stored(frames, header, per_frame=True)


def mask_to_bits_stored(
    values: np.ndarray, header: Header, per_frame: bool = False
) -> tuple[np.ndarray, int | np.ndarray]:
    """Clear bits above BitsStored (unsigned) or sign-extend from BitsStored (signed), as the
    standard says; also return how many values this changed: values beyond BitsStored's range
    mean a wrong header (or overlay bits), and physical values that are likely wrong. With
    `per_frame`, `values` are (frames, rows, columns) and the count is an array, one per frame."""
    allocated = values.dtype.itemsize * 8
    stored = int(header.get("BitsStored", allocated))
    if stored >= allocated:
        return values, np.zeros(len(values), np.int64) if per_frame else 0
    low, high = stored_range(header)
    outside = (values < low) | (values > high)
    if per_frame:
        beyond = np.count_nonzero(outside.reshape(len(values), -1), axis=1)
    else:
        beyond = int(np.count_nonzero(outside))
    if values.dtype.kind == "u":
        return values & values.dtype.type((1 << stored) - 1), beyond
    shift = values.dtype.type(allocated - stored)
    return (values << shift) >> shift, beyond


def stored_range(header: Header) -> tuple[int, int]:
    """Lowest and highest stored value a file's BitsStored and PixelRepresentation allow."""
    dtype = stored_dtype(header)
    bits = int(header.get("BitsStored", dtype.itemsize * 8))
    if dtype.kind == "u":
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def rescaled_dtype(planes: list[tuple[float, float, tuple[int, int]]]) -> np.dtype:
    """The narrowest dtype that holds every rescaled value exactly, given each plane's slope,
    intercept and stored range (see `stored_range`).

    Integer rescale (slope 1, integer intercepts) keeps integers: CT stays int16 HU when it
    fits; anything else becomes float32.
    """
    if any(slope != 1.0 or intercept != round(intercept) for slope, intercept, _ in planes):
        return np.dtype(np.float32)
    low = min(stored[0] + intercept for _, intercept, stored in planes)
    high = max(stored[1] + intercept for _, intercept, stored in planes)
    for candidate in (np.uint8, np.int16, np.uint16, np.int32):
        info = np.iinfo(candidate)
        if info.min <= low and high <= info.max:
            return np.dtype(candidate)
    return np.dtype(np.float64)
