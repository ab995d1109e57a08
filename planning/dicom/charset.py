"""The character set a dataset about to be written must declare.

A dataset without SpecificCharacterSet may hold ASCII text only. Text copied from the images
(names, study ID, accession number…) or typed by the user can hold any character, so the
decision is made from every text value of the finished dataset, sequences included.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

#: Value representations whose values are text in the dataset's character set.
TEXT_VRS = {"LO", "LT", "PN", "SH", "ST", "UC", "UT"}
#: What a dataset with non-ASCII text declares: UTF-8 holds every character.
UTF8 = "ISO_IR 192"


def declare_character_set(dataset: Dataset) -> None:
    """Set SpecificCharacterSet to UTF-8 when any text value (sequences included) is not ASCII."""
    if any(not text.isascii() for text in text_values(dataset)):
        dataset.SpecificCharacterSet = UTF8


def text_values(dataset: Dataset) -> Iterator[str]:
    """Every value of a text VR in `dataset` and its sequence items.

    Raw sequences (encoded bytes, such as an RTSTRUCT's contour items) are not parsed: their
    writer encodes them as ASCII. Raw text values are decoded as Latin-1, byte for byte.
    """
    for tag in list(dataset.keys()):
        element = dataset.get_item(tag)  # never parses a raw element
        vr = element.VR or _dictionary_vr(tag)
        if isinstance(element, RawDataElement):
            if vr in TEXT_VRS and element.value:
                yield bytes(element.value).decode("latin-1")
        elif vr == "SQ":
            for item in element.value:
                yield from text_values(item)
        elif vr in TEXT_VRS and element.value is not None:
            values = element.value if element.VM > 1 else [element.value]
            yield from (str(value) for value in values)


def _dictionary_vr(tag) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return ""
