"""Pixel data: stored values of DICOM frames, and the rescale to physical values.

Native little-endian pixel data is read straight from the file at the offset the header walker
found; everything else (JPEG baseline/lossless, JPEG-LS, JPEG 2000, RLE, deflated, big endian)
is decoded by pydicom's pixel-data plugins (pylibjpeg, pyjpegls, GDCM). Either way the values are
the stored values, masked to BitsStored and sign-extended as the header says, so both paths
agree to the bit.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import UID, JPEGLSTransferSyntaxes, JPEGTransferSyntaxes

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
    syntaxes it decodes), so that they are counted here, in the same pass that clears them.

    That request also stops pydicom sign-extending what a JPEG decoder returns: a signed frame
    coded at the precision of BitsStored (12-bit CT in JPEG Lossless) comes back as its low bits,
    unsigned (−96 as 4000). Such a frame cannot hold bits above BitsStored at all, so its values
    are sign-extended here without being counted (see `unextended_frames`)."""
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
    unextended = unextended_frames(dataset, header, syntax, len(frames))
    return mask_to_bits_stored(frames, header, per_frame=True, unextended=unextended)


def unextended_frames(dataset: Dataset, header: Header, syntax: UID, count: int) -> np.ndarray | None:
    """For signed pixels whose BitsStored is below BitsAllocated in a JPEG or JPEG-LS file: per
    frame, whether its codestream's precision is at most BitsStored, so that the decoder may return
    negative values as their low BitsStored bits, not sign-extended (pydicom sign-extends those
    only when it also clears the bits above BitsStored). None where no frame can be so."""
    allocated = int(header["BitsAllocated"])
    if (
        int(header.get("PixelRepresentation", 0)) != 1
        or int(header.get("BitsStored", allocated)) >= allocated
        or syntax not in JPEGTransferSyntaxes + JPEGLSTransferSyntaxes
    ):
        return None
    stored = int(header["BitsStored"])
    try:
        codestreams = list(generate_frames(dataset.PixelData, number_of_frames=count))
    except Exception:  # a fragment table pydicom decoded around: count every frame as usual
        return None
    if len(codestreams) != count:
        return None
    return np.array([(codestream_precision(frame) or allocated) <= stored for frame in codestreams])


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}  # T.81 SOFn; T.87 SOF55


def codestream_precision(codestream: bytes) -> int | None:
    """Sample precision (bits) of a JPEG or JPEG-LS codestream's frame header; None if not found
    before the scan."""
    position = 2 if codestream[:2] == b"\xff\xd8" else None
    while position is not None and position + 4 < len(codestream):
        if codestream[position] != 0xFF:
            return None
        marker = codestream[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
        elif marker in _SOF_MARKERS:
            return codestream[position + 4]
        elif marker == 0xDA:  # start of scan: no frame header before it
            return None
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            position += 2
        else:
            position += 2 + int.from_bytes(codestream[position + 2 : position + 4], "big")
    return None


def mask_to_bits_stored(
    values: np.ndarray, header: Header, per_frame: bool = False, unextended: np.ndarray | None = None
) -> tuple[np.ndarray, int | np.ndarray]:
    """Clear bits above BitsStored (unsigned) or sign-extend from BitsStored (signed), as the
    standard says; also return how many values this changed: values beyond BitsStored's range
    mean a wrong header (or overlay bits), and physical values that are likely wrong. With
    `per_frame`, `values` are (frames, rows, columns) and the count is an array, one per frame.

    `unextended` (per frame, with `per_frame`) marks frames a decoder may have returned as their
    low BitsStored bits, not sign-extended: a signed value there is beyond BitsStored only when it
    is neither the sign extension nor the zero extension of its low BitsStored bits."""
    allocated = values.dtype.itemsize * 8
    stored = int(header.get("BitsStored", allocated))
    if stored >= allocated:
        return values, np.zeros(len(values), np.int64) if per_frame else 0
    low, high = stored_range(header)
    if unextended is not None and values.dtype.kind == "i":
        high = np.where(unextended, (1 << stored) - 1, high).reshape(-1, 1, 1)
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
