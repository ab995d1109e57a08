"""The character set declared for a dataset about to be written."""

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from planning.dicom.charset import declare_character_set, text_values


def _dataset(study_description: str = "CT", nested_name: str = "GTV") -> Dataset:
    ds = Dataset()
    ds.Modality = "RTSTRUCT"
    ds.StudyDescription = study_description
    item = Dataset()
    item.ROIName = nested_name
    item.ROINumber = 1
    ds.StructureSetROISequence = [item]
    return ds


def test_ascii_text_declares_nothing():
    ds = _dataset()
    declare_character_set(ds)
    assert "SpecificCharacterSet" not in ds


def test_non_ascii_text_anywhere_declares_utf8():
    for ds in (_dataset(study_description="Thorax für RT"), _dataset(nested_name="Hüfte")):
        declare_character_set(ds)
        assert ds.SpecificCharacterSet == "ISO_IR 192"


def test_raw_text_values_are_seen_and_raw_sequences_left_alone():
    ds = _dataset()
    tag = Tag("ReferringPhysicianName")
    ds[tag] = RawDataElement(tag, None, 4, "Mü".encode("latin-1") + b"  ", 0, True, True)
    sequence = Tag(0x3006, 0x0040)
    ds[sequence] = RawDataElement(sequence, "SQ", 8, b"\xfe\xff\x00\xe0\x00\x00\x00\x00", 0, True, True)
    assert sorted(text_values(ds)) == ["CT", "GTV", "Mü  "]
