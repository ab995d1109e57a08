"""RTSTRUCTs with one damaged or inconsistent part: that part is left out, named in a warning, and
the rest of the file is read."""

import copy

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid
from support.dicom_factory import ct_phantom, write_ct_series

from planning.errors import GeometryError
from planning.imageio import load_volume
from planning.rtstruct.reader import read_rtstruct
from planning.rtstruct.writer import write_rtstruct
from planning.structures import Mask, Structure, StructureSet


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A 6-slice CT, two boxes A and B on slices 1–4, and the RTSTRUCT Delineo writes of them."""
    folder = tmp_path_factory.mktemp("ct")
    write_ct_series(folder, ct_phantom((6, 32, 32)))
    volume = load_volume(folder)
    boxes = {name: np.zeros(volume.grid.shape, bool) for name in "AB"}
    boxes["A"][1:5, 5:20, 5:20] = True
    boxes["B"][1:5, 10:25, 12:28] = True
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    for name, box in boxes.items():
        structures.add(Structure(name, Mask.from_full(volume.grid, box)))
    path = tmp_path_factory.mktemp("rs") / "rs.dcm"
    write_rtstruct(structures, volume, path)
    return pydicom.dcmread(path), volume, boxes


def _variant(source, path, change):
    """A copy of the dataset `source`, changed in place by `change`, saved at `path`."""
    dataset = copy.deepcopy(source)
    change(dataset)
    dataset.save_as(path)
    return path


def test_an_roi_of_another_frame_of_reference_is_left_out(case, tmp_path):
    source, volume, boxes = case
    other = generate_uid()

    def second_in_other_frame(ds):
        ds.StructureSetROISequence[1].ReferencedFrameOfReferenceUID = other
        frame = copy.deepcopy(ds.ReferencedFrameOfReferenceSequence[0])
        frame.FrameOfReferenceUID = other
        del frame.RTReferencedStudySequence
        ds.ReferencedFrameOfReferenceSequence.append(frame)

    path = _variant(source, tmp_path / "two_frames.dcm", second_in_other_frame)
    back = read_rtstruct(path, volume)
    assert back.names() == ["A"]
    np.testing.assert_array_equal(back["A"].mask.full(), boxes["A"])
    [warning] = back.warnings
    assert "B:" in warning and other in warning and volume.frame_of_reference_uid in warning

    def all_in_other_frame(ds):
        for item in ds.StructureSetROISequence:
            item.ReferencedFrameOfReferenceUID = other

    path = _variant(source, tmp_path / "rois_elsewhere.dcm", all_in_other_frame)
    with pytest.raises(GeometryError, match="no ROI is in the images' frame of reference.*A, B are"):
        read_rtstruct(path, volume)
