"""Reading DICOM headers quickly: the attributes Delineo needs, without the pixel data.

Scanning a folder of thousands of slices and loading a series are both dominated by header
parsing. pydicom builds a full dataset for every file (about 1.5 ms for a CT slice); the walker
here reads only the top-level elements of uncompressed little-endian files, skips everything
else (sequences included), and records where the native pixel data starts so that the loader can
read it straight into the volume. Anything it does not handle (big endian, deflated, non-Latin
character sets, odd encodings) is read by pydicom instead, so the result never depends on which
path was taken.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from planning.errors import DicomReadError

#: Attributes read from every file: keyword → (tag, VR used when the file has implicit VR).
HEADER_TAGS: dict[str, tuple[int, str]] = {
    "SpecificCharacterSet": (0x00080005, "CS"),
    "ImageType": (0x00080008, "CS"),
    "SOPClassUID": (0x00080016, "UI"),
    "SOPInstanceUID": (0x00080018, "UI"),
    "StudyDate": (0x00080020, "DA"),
    "StudyTime": (0x00080030, "TM"),
    "AccessionNumber": (0x00080050, "SH"),
    "Modality": (0x00080060, "CS"),
    "Manufacturer": (0x00080070, "LO"),
    "ReferringPhysicianName": (0x00080090, "PN"),
    "StudyDescription": (0x00081030, "LO"),
    "SeriesDescription": (0x0008103E, "LO"),
    "PatientName": (0x00100010, "PN"),
    "PatientID": (0x00100020, "LO"),
    "PatientBirthDate": (0x00100030, "DA"),
    "PatientSex": (0x00100040, "CS"),
    "SliceThickness": (0x00180050, "DS"),
    "SpacingBetweenSlices": (0x00180088, "DS"),
    "EchoTime": (0x00180081, "DS"),
    "EchoNumbers": (0x00180086, "IS"),
    "GantryDetectorTilt": (0x00181120, "DS"),
    "StudyInstanceUID": (0x0020000D, "UI"),
    "SeriesInstanceUID": (0x0020000E, "UI"),
    "StudyID": (0x00200010, "SH"),
    "SeriesNumber": (0x00200011, "IS"),
    "AcquisitionNumber": (0x00200012, "IS"),
    "InstanceNumber": (0x00200013, "IS"),
    "ImagePositionPatient": (0x00200032, "DS"),
    "ImageOrientationPatient": (0x00200037, "DS"),
    "FrameOfReferenceUID": (0x00200052, "UI"),
    "TemporalPositionIdentifier": (0x00200100, "IS"),
    "SamplesPerPixel": (0x00280002, "US"),
    "PhotometricInterpretation": (0x00280004, "CS"),
    "NumberOfFrames": (0x00280008, "IS"),
    "FrameIncrementPointer": (0x00280009, "AT"),
    "Rows": (0x00280010, "US"),
    "Columns": (0x00280011, "US"),
    "PixelSpacing": (0x00280030, "DS"),
    "BitsAllocated": (0x00280100, "US"),
    "BitsStored": (0x00280101, "US"),
    "HighBit": (0x00280102, "US"),
    "PixelRepresentation": (0x00280103, "US"),
    "RescaleIntercept": (0x00281052, "DS"),
    "RescaleSlope": (0x00281053, "DS"),
}

_TAG_TO_KEYWORD = {tag: (keyword, vr) for keyword, (tag, vr) in HEADER_TAGS.items()}
_PIXEL_DATA = 0x7FE00010
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_SIMPLE_CHARSETS = {"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192"}
_FIRST_READ_BYTES = 16384


@dataclass
class Header:
    """The attributes of one DICOM file that Delineo uses to scan and load.

    Attributes:
        path: the file.
        transfer_syntax: Transfer Syntax UID from the file meta information.
        values: attribute keyword → value (str, int, float, or a list of them for multi-valued
            attributes); only the attributes of `HEADER_TAGS` that the file has (for an enhanced
            multi-frame image the scan adds the pixel measures of its functional groups).
        pixel_offset: byte offset of native (uncompressed, little-endian) pixel data in the file,
            None when the pixel data is encapsulated, big-endian or absent.
        pixel_length: byte length of that pixel data as the file declares it.
        file_size: size of the file in bytes.
    """

    path: Path
    transfer_syntax: str
    values: dict[str, object] = field(default_factory=dict)
    pixel_offset: int | None = None
    pixel_length: int | None = None
    file_size: int = 0

    def get(self, keyword: str, default=None):
        return self.values.get(keyword, default)

    def __getitem__(self, keyword: str):
        try:
            return self.values[keyword]
        except KeyError:
            raise DicomReadError(f"{self.path.name}: required attribute {keyword} is missing") from None


class NotDicomError(DicomReadError):
    """The file is not DICOM at all (as opposed to a DICOM file that is damaged)."""


class _NotHandled(Exception):
    """The fast walker does not handle this file; pydicom reads it instead."""


def read_header(path: str | Path) -> Header:
    """Read the attributes of `HEADER_TAGS` from one file.

    Raises:
        DicomReadError: the file is not DICOM, or is too damaged for its header to be read.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise NotDicomError(f"{path.name}: empty file (0 bytes)")
        return _walk(path)
    except _NotHandled:
        return _read_with_pydicom(path)
    except OSError as error:
        raise DicomReadError(f"{path.name}: cannot be read ({error.strerror or error})") from error


def read_dataset(path: str | Path, *, pixels: bool = False) -> pydicom.Dataset:
    """The whole dataset of one file through pydicom, with DICOM errors turned into our own."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # damage is reported by the error below
            return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except InvalidDicomError as error:
        raise NotDicomError(f"{path.name}: not a DICOM file") from error
    except OSError as error:
        raise DicomReadError(f"{path.name}: cannot be read ({error.strerror or error})") from error
    except Exception as error:  # pydicom raises many types on damaged files
        raise DicomReadError(f"{path.name}: damaged DICOM file ({error})") from error


# -- the fast walker ------------------------------------------------------------------------


def _walk(path: Path) -> Header:
    with open(path, "rb") as stream:
        buffer = stream.read(_FIRST_READ_BYTES)
        file_size = stream.seek(0, 2)
        if len(buffer) < 132 or buffer[128:132] != b"DICM":
            raise _NotHandled  # no preamble: pydicom decides whether it is DICOM at all
        try:
            return _parse(path, buffer, file_size)
        except _NeedMore:
            stream.seek(0)
            try:
                return _parse(path, stream.read(), file_size)
            except _NeedMore:
                raise DicomReadError(f"{path.name}: the file ends inside its header (truncated)") from None


class _NeedMore(Exception):
    """The header goes on past the bytes read so far."""


def _parse(path: Path, buffer: bytes, file_size: int) -> Header:
    position, transfer_syntax, media_sop_class = _read_meta(buffer)
    if (
        transfer_syntax not in (_IMPLICIT_LE, _EXPLICIT_LE)
        and not transfer_syntax.startswith("1.2.840.10008.1.2.4")
        and transfer_syntax != "1.2.840.10008.1.2.5"
    ):
        raise _NotHandled  # big endian, deflated, private: pydicom
    explicit = transfer_syntax != _IMPLICIT_LE
    header = Header(path=path, transfer_syntax=transfer_syntax, file_size=file_size)
    raw: dict[str, tuple[bytes, bytes]] = {}
    end = len(buffer)
    while True:
        if position + 8 > end:
            if end < file_size:
                raise _NeedMore
            if position > end:
                raise DicomReadError(f"{path.name}: the file ends inside its header (truncated)")
            break  # a dataset without pixel data ends here
        tag, vr, length, position = _element_header(buffer, position, explicit)
        if tag == _PIXEL_DATA:
            if length != _UNDEFINED and transfer_syntax in (_IMPLICIT_LE, _EXPLICIT_LE):
                header.pixel_offset, header.pixel_length = position, length
            break
        if length == _UNDEFINED:
            position = _skip_undefined(buffer, position, explicit)
            continue
        if tag in _TAG_TO_KEYWORD:
            if position + length > end:
                raise _NeedMore
            keyword, dictionary_vr = _TAG_TO_KEYWORD[tag]
            known_vr = vr if vr not in (b"", b"UN") else dictionary_vr.encode()  # UN: legal in explicit VR
            raw[keyword] = (known_vr, buffer[position : position + length])
        position += length
        if tag > _PIXEL_DATA:
            break
    charset = _decode_value(*raw["SpecificCharacterSet"], "latin-1") if "SpecificCharacterSet" in raw else ""
    if isinstance(charset, list) or charset not in _SIMPLE_CHARSETS:
        raise _NotHandled
    encoding = "utf-8" if charset == "ISO_IR 192" else "latin-1"
    for keyword, (vr, data) in raw.items():
        try:
            value = _decode_value(vr, data, encoding)
        except ValueError:
            raise DicomReadError(_not_a_number(path, keyword, data.decode("latin-1"))) from None
        if value is not None:
            header.values[keyword] = value
    if "SOPClassUID" not in header.values and media_sop_class:
        header.values["SOPClassUID"] = media_sop_class
    return header


def _read_meta(buffer: bytes) -> tuple[int, str, str]:
    """Walk the file meta group (explicit VR little endian): end, syntax, media SOP class."""
    position, transfer_syntax, media_sop_class = 132, None, ""
    while position + 8 <= len(buffer):
        group = struct.unpack_from("<H", buffer, position)[0]
        if group != 0x0002:
            break
        tag, _vr, length, position = _element_header(buffer, position, explicit=True)
        if length == _UNDEFINED:
            raise _NotHandled
        value = buffer[position : position + length].decode("ascii", errors="replace").strip("\0 ")
        if tag == 0x00020010:
            transfer_syntax = value
        elif tag == 0x00020002:
            media_sop_class = value
        position += length
    if transfer_syntax is None:
        raise _NotHandled
    return position, transfer_syntax, media_sop_class


def _element_header(buffer: bytes, position: int, explicit: bool) -> tuple[int, bytes, int, int]:
    """Read one element header: (tag, VR or b"", value length, position of the value)."""
    if position + 8 > len(buffer):
        raise _NeedMore
    group, element = struct.unpack_from("<HH", buffer, position)
    tag = (group << 16) | element
    if group == 0xFFFE or not explicit:
        return tag, b"", struct.unpack_from("<I", buffer, position + 4)[0], position + 8
    vr = buffer[position + 4 : position + 6]
    if vr in _LONG_VRS:
        if position + 12 > len(buffer):
            raise _NeedMore
        return tag, vr, struct.unpack_from("<I", buffer, position + 8)[0], position + 12
    if not vr.isalpha():
        raise _NotHandled
    return tag, vr, struct.unpack_from("<H", buffer, position + 6)[0], position + 8


def _skip_undefined(buffer: bytes, position: int, explicit: bool) -> int:
    """Skip a sequence of undefined length; return the position after its delimiter."""
    while True:
        tag, _vr, length, position = _element_header(buffer, position, explicit)
        if tag == _SEQUENCE_END:
            return position
        if tag != _ITEM:
            raise _NotHandled
        if length != _UNDEFINED:
            position += length
            continue
        while True:  # an item of undefined length: walk its elements to the item delimiter
            tag, _vr, length, position = _element_header(buffer, position, explicit)
            if tag == _ITEM_END:
                break
            position = (
                _skip_undefined(buffer, position, explicit) if length == _UNDEFINED else position + length
            )
        if position > len(buffer):
            raise _NeedMore


def _decode_value(vr: bytes, data: bytes, encoding: str):
    """Turn raw element bytes into str, int, float or a list of them (None when empty)."""
    if vr in (b"US", b"AT"):
        if vr == b"US":
            values = [v[0] for v in struct.iter_unpack("<H", data[: len(data) // 2 * 2])]
        else:  # tags, as (group, element) pairs
            values = [(g << 16) | e for g, e in struct.iter_unpack("<HH", data[: len(data) // 4 * 4])]
        return values[0] if len(values) == 1 else (values or None)
    text = (
        data.decode(encoding, errors="replace").rstrip("\0 ").lstrip(" ")
        if vr != b"UI"
        else (data.decode("ascii", errors="replace").rstrip("\0 "))
    )
    if text == "":
        return None
    parts = [part.strip() for part in text.split("\\")] if vr != b"PN" or "\\" in text else [text]
    if vr in (b"DS", b"IS"):
        numbers = [_number(part, vr == b"IS") for part in parts if part]
        return numbers[0] if len(numbers) == 1 else numbers
    return parts[0] if len(parts) == 1 else parts


def _number(text: str, integer: bool) -> int | float:
    """A DS or IS value; ValueError unless it is a finite number."""
    value = float(text)
    if not np.isfinite(value):
        raise ValueError(text)
    return int(value) if integer else value


def _not_a_number(path: Path, keyword: str, text: str) -> str:
    text = text.rstrip("\0 ")
    hint = " (a decimal comma? DICOM numbers use a point)" if "," in text else ""
    return f"{path.name}: {keyword} is '{text}', not a number{hint}"


# -- pydicom path ---------------------------------------------------------------------------


def _read_with_pydicom(path: Path) -> Header:
    dataset = read_dataset(path)
    return header_from_dataset(path, dataset)


def header_from_dataset(path: Path, dataset: pydicom.Dataset) -> Header:
    """The same `Header` the walker would give, built from a pydicom dataset."""
    transfer_syntax = str(getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", "") or "")
    values: dict[str, object] = {}
    for keyword in HEADER_TAGS:
        try:
            value = dataset.get(keyword)
            if value is None or value == "":
                continue
            values[keyword] = _plain(value)
            if HEADER_TAGS[keyword][1] in ("DS", "IS"):
                _check_numbers(values[keyword])
        except ValueError:
            raise DicomReadError(_not_a_number(path, keyword, _raw_text(dataset, keyword))) from None
    if "SOPClassUID" not in values and "MediaStorageSOPClassUID" in getattr(dataset, "file_meta", {}):
        values["SOPClassUID"] = str(dataset.file_meta.MediaStorageSOPClassUID)
    return Header(path=path, transfer_syntax=transfer_syntax, values=values, file_size=path.stat().st_size)


def _check_numbers(value) -> None:
    """ValueError unless `value` is a number or a list of numbers (pydicom keeps text it cannot
    read as a number when it only warns)."""
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, int | float):
            raise ValueError(item)


def _raw_text(dataset: pydicom.Dataset, keyword: str) -> str:
    """The value of `keyword` as the file writes it."""
    value = dataset.get_item(keyword).value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return "\\".join(map(str, value)) if isinstance(value, pydicom.multival.MultiValue) else str(value)


def _plain(value):
    """pydicom value → str/int/float or list of them (ValueError for a number that is not finite)."""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        items = [_plain(v) for v in value]
        return items[0] if len(items) == 1 else items
    if isinstance(value, pydicom.valuerep.DSfloat | pydicom.valuerep.DSdecimal):
        return _number(str(float(value)), integer=False)
    if isinstance(value, pydicom.valuerep.IS):
        return int(value)
    if isinstance(value, int | float):
        return value
    return str(value).strip()
