"""A JPEG Lossless encoder (ITU-T T.81 process 14, first-order prediction), for tests.

pydicom has no encoder for the JPEG Lossless transfer syntaxes and GDCM (through SimpleITK) always
writes them at 16-bit precision, so a stream at the precision of BitsStored, the way many scanners
and archives store 12-bit CT, is made here: one grayscale frame, one Huffman table, no restarts.
Signed values are stored as the standard says, as their low `precision` bits (two's complement),
which a decoder returns as they are, unsigned: the reader must sign-extend them.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGLosslessSV1

_CODE_BITS = 5  # one 5-bit Huffman code for each of the 17 difference categories 0…16


def encode_jpeg_lossless(values: np.ndarray, precision: int) -> bytes:
    """A JPEG Lossless (selection value 1) codestream of the 2-D `values`, each stored as its low
    `precision` bits."""
    rows, columns = values.shape
    samples = values.astype(np.int64) & ((1 << precision) - 1)
    predicted = np.empty_like(samples)
    predicted[:, 1:] = samples[:, :-1]  # Ra, the sample to the left
    predicted[1:, 0] = samples[:-1, 0]  # Rb, the sample above, first in each line
    predicted[0, 0] = 1 << (precision - 1)
    difference = (samples - predicted).ravel()
    difference = (difference + 32768) % 65536 - 32768  # modulo 2^16, as T.81 H.1.2.1 says
    category = np.zeros(difference.size, np.int64)
    nonzero = difference != 0
    category[nonzero] = np.floor(np.log2(np.abs(difference[nonzero]))).astype(np.int64) + 1
    extra = np.where(difference < 0, difference - 1, difference) & ((1 << category) - 1)
    extra[category == 16] = 0  # category 16 (difference 32768) has no extra bits
    extra_bits = np.where(category == 16, 0, category)
    code = (category << extra_bits) | extra  # Huffman code of the category = the category itself
    length = _CODE_BITS + extra_bits
    width = _CODE_BITS + 16
    shift = np.maximum(length[:, None] - 1 - np.arange(width), 0)
    bits = (code[:, None] >> shift) & 1
    bits = bits[np.arange(width) < length[:, None]].astype(np.uint8)
    bits = np.concatenate([bits, np.ones(-bits.size % 8, np.uint8)])  # pad with 1s
    scan = np.packbits(bits).tobytes().replace(b"\xff", b"\xff\x00")

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload

    counts = bytes(17 if length == _CODE_BITS else 0 for length in range(1, 17))
    huffman = segment(0xC4, bytes([0x00]) + counts + bytes(range(17)))
    frame = segment(
        0xC3, bytes([precision]) + rows.to_bytes(2, "big") + columns.to_bytes(2, "big") + b"\x01\x01\x11\x00"
    )
    start_of_scan = segment(0xDA, b"\x01\x01\x00\x01\x00\x00")  # predictor 1, no point transform
    return b"\xff\xd8" + huffman + frame + start_of_scan + scan + b"\xff\xd9"


def compress_jpeg_lossless(dataset: Dataset, values: np.ndarray) -> None:
    """Replace `dataset`'s pixel data with the 2-D `values`, JPEG-Lossless-encoded at the
    precision of its BitsStored."""
    dataset.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    dataset.PixelData = encapsulate([encode_jpeg_lossless(values, int(dataset.BitsStored))])
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True
