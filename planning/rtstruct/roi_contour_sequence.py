"""The ROIContourSequence of an RTSTRUCT dataset as plain values: per item, the ROI number, the
display colour as stated and the contour items (ContourData, geometric type, referenced image
UID, declared point count), in file order.

A file with thousands of contours would spend most of its reading time in pydicom's datasets, so
a little-endian sequence is walked straight from its bytes; other encodings go through pydicom.
"""

from __future__ import annotations

import struct

from pydicom.dataelem import RawDataElement

_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_ROI_CONTOUR_SEQUENCE = 0x30060039
_CONTOUR_SEQUENCE = 0x30060040
_CONTOUR_IMAGE_SEQUENCE = 0x30060016
_SEQUENCE_TAGS = {_CONTOUR_SEQUENCE, _CONTOUR_IMAGE_SEQUENCE}  # the sequences inside ROI contours
_REFERENCED_SOP_INSTANCE = 0x00081155
_GEOMETRIC_TYPE = 0x30060042
_POINT_COUNT = 0x30060046
_CONTOUR_DATA = 0x30060050
_DISPLAY_COLOR = 0x3006002A
_REFERENCED_ROI_NUMBER = 0x30060084


#: A contour item as read: ContourData (raw DS bytes or numbers), type, image UID, declared count.
_Item = tuple[bytes | list, str, str, int | None]


def read_roi_contours(dataset) -> list[tuple[int | None, object, list[_Item]]]:
    """(ROI number, ROIDisplayColor as stated (None when absent or empty), contour items) of each
    ROIContourSequence item, in file order.

    The sequence is walked straight from its bytes when the file is little endian (thousands of
    items: pydicom's datasets would take most of the reading time); otherwise through pydicom.
    """
    if _ROI_CONTOUR_SEQUENCE not in dataset:
        return []
    items = raw_roi_contour_items(dataset)
    if items is not None:
        try:
            return [_roi_from_raw(item) for item in items]
        except (ValueError, UnicodeDecodeError):
            pass  # not the plain encoding the walker knows: pydicom reads it
    result = []
    for roi in dataset.ROIContourSequence:
        contours = []
        for contour in roi.get("ContourSequence", []):
            images = contour.get("ContourImageSequence", [])
            data = contour.get_item(_CONTOUR_DATA) if _CONTOUR_DATA in contour else None
            value = (
                data.value
                if isinstance(data, RawDataElement)
                else (list(contour.ContourData) if data else b"")
            )
            contours.append(
                (
                    value if value is not None else b"",
                    str(contour.get("ContourGeometricType", "") or "CLOSED_PLANAR").strip().upper(),
                    str(images[0].get("ReferencedSOPInstanceUID", "")) if images else "",
                    int_or_none(contour.get("NumberOfContourPoints")),
                )
            )
        color = roi.get("ROIDisplayColor")
        result.append((int_or_none(roi.get("ReferencedROINumber")), None if color == "" else color, contours))
    return result


def raw_roi_contour_items(dataset) -> list[dict] | None:
    """The ROIContourSequence's items walked straight from its bytes, each {tag: bytes, or list
    of items}, leaving it unparsed by pydicom; None when absent, already parsed, or not in the
    plain little-endian encoding the walker knows. A nested sequence other than the contours'
    and their images' may stay bytes in an implicit-VR file (`sequence_items` reads it)."""
    if _ROI_CONTOUR_SEQUENCE not in dataset:
        return None
    element = dataset.get_item(_ROI_CONTOUR_SEQUENCE)
    if not (
        isinstance(element, RawDataElement) and element.is_little_endian and isinstance(element.value, bytes)
    ):
        return None
    try:
        return _parse_sequence(element.value, 0, len(element.value), not element.is_implicit_VR)[0]
    except (ValueError, struct.error, UnicodeDecodeError):
        return None


def sequence_items(data: bytes) -> list[dict]:
    """The items of a sequence's bytes in implicit VR little endian (how a sequence left as
    bytes is encoded: one the implicit-VR walker did not know, or one of VR UN). Raises
    ValueError or struct.error when they are not that."""
    return _parse_sequence(data, 0, len(data), False)[0]


def _roi_from_raw(item: dict) -> tuple[int | None, object, list[_Item]]:
    contours = []
    for contour in item.get(_CONTOUR_SEQUENCE, []):
        images = contour.get(_CONTOUR_IMAGE_SEQUENCE, [])
        uid = _ascii(images[0].get(_REFERENCED_SOP_INSTANCE, b"")) if images else ""
        kind = _ascii(contour.get(_GEOMETRIC_TYPE, b"")).upper() or "CLOSED_PLANAR"
        contours.append(
            (contour.get(_CONTOUR_DATA, b""), kind, uid, int_or_none(_ascii(contour.get(_POINT_COUNT, b""))))
        )
    color = _ascii(item.get(_DISPLAY_COLOR, b""))
    return (
        int_or_none(_ascii(item.get(_REFERENCED_ROI_NUMBER, b""))),
        color.split("\\") if color else None,
        contours,
    )


def _parse_sequence(data: bytes, position: int, length: int, explicit: bool) -> tuple[list[dict], int]:
    """The items of a sequence value (little endian): each {tag: bytes, or list of items}."""
    end = len(data) if length == _UNDEFINED else position + length
    items = []
    while position + 8 <= end:
        group, element, item_length = struct.unpack_from("<HHI", data, position)
        position += 8
        tag = group << 16 | element
        if tag == _SEQUENCE_END:
            break
        if tag != _ITEM:
            raise ValueError(f"unexpected tag {tag:08X} in a sequence")
        item_end = end if item_length == _UNDEFINED else position + item_length
        item, position = _parse_item(data, position, item_end, explicit)
        items.append(item)
    return items, position


def _parse_item(data: bytes, position: int, end: int, explicit: bool) -> tuple[dict, int]:
    elements: dict = {}
    while position + 8 <= end:
        group, element = struct.unpack_from("<HH", data, position)
        tag = group << 16 | element
        if tag == _ITEM_END:
            return elements, position + 8
        if explicit:
            vr = data[position + 4 : position + 6]
            if vr in _LONG_VRS:
                length = struct.unpack_from("<I", data, position + 8)[0]
                position += 12
            else:
                length = struct.unpack_from("<H", data, position + 6)[0]
                position += 8
            sequence = vr == b"SQ"
        else:
            length = struct.unpack_from("<I", data, position + 4)[0]
            position += 8
            sequence = tag in _SEQUENCE_TAGS
        if sequence:
            elements[tag], position = _parse_sequence(data, position, length, explicit)
        elif length == _UNDEFINED:
            raise ValueError(f"element {tag:08X} of undefined length")
        else:
            elements[tag] = data[position : position + length]
            position += length
    return elements, position


def _ascii(value: bytes) -> str:
    return value.decode("ascii").strip(" \0")


def int_or_none(value) -> int | None:
    """`int(value)`, or None when that fails (an absent or empty value, text that is not a number)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
