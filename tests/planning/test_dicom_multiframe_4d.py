"""Several time points or echoes are never stacked as one volume; frames are named by number."""

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from support.dicom_factory import ct_phantom, write_ct_series, write_enhanced_ct

from planning.dicom.scan import scan
from planning.errors import SeriesError
from planning.imageio import load_volume


def _enhanced(path, hu, edit):
    write_enhanced_ct(path, hu)
    dataset = pydicom.dcmread(path)
    for k, item in enumerate(dataset.PerFrameFunctionalGroupsSequence):
        edit(k, item)
    dataset.save_as(path)
    return path


def test_an_enhanced_file_of_two_time_points_is_refused_naming_them(tmp_path):
    """2 time points × 3 slices: 'IM0000.dcm and IM0000.dcm are two different images...'."""

    def two_time_points(k, item):
        content = Dataset()
        content.TemporalPositionIndex = k // 3 + 1
        item.FrameContentSequence = [content]
        item.PlanePositionSequence[0].ImagePositionPatient = [0.0, 0.0, 2.0 * (k % 3)]

    path = _enhanced(tmp_path / "mr.dcm", ct_phantom((6, 16, 20)), two_time_points)
    with pytest.raises(SeriesError, match=r"mr.dcm: its 6 frames hold 2 time points, not one volume"):
        load_volume(path)


def test_conflicting_frames_are_named_by_frame_number(tmp_path):
    def same_place(k, item):
        if k == 1:
            item.PlanePositionSequence[0].ImagePositionPatient = [0.0, 0.0, 10.0]

    path = _enhanced(tmp_path / "ct.dcm", ct_phantom((3, 16, 20)), same_place)
    with pytest.raises(SeriesError, match=r"ct.dcm frame 1 and ct.dcm frame 2 are two different images"):
        load_volume(path)


def test_echoes_told_apart_by_echo_time_only_are_split(tmp_path):
    hu = ct_phantom((3, 16, 20))
    same = {"series_uid": "1.2.3", "study_uid": "1.2.4", "frame_of_reference_uid": "1.2.5"}
    paths = write_ct_series(tmp_path, hu, **same)
    paths += write_ct_series(tmp_path, hu + 5, file_names=["e0", "e1", "e2"], **same)
    for k, path in enumerate(paths):
        dataset = pydicom.dcmread(path)
        dataset.EchoTime = 20 if k < 3 else 80
        dataset.save_as(path)
    found = scan(tmp_path)
    assert sorted(s.split_note for s in found.series) == [
        "20×16, orientation 1 0 0 0 1 0, echo time 20 ms",
        "20×16, orientation 1 0 0 0 1 0, echo time 80 ms",
    ]
    second = next(s for s in found.series if s.split_note.endswith("80 ms"))
    np.testing.assert_array_equal(load_volume(tmp_path, series=second.key).array, hu + 5)
