"""Geometry a file does not state is assumed only with a warning saying what; frames in time are
refused as a volume."""

import numpy as np
import pydicom
import pytest
from support.dicom_factory import ct_phantom, write_ct_series

from planning.dicom.headers import read_header
from planning.dicom.load import load_series
from planning.dicom.scan import ImageSeries
from planning.imageio import load_volume
from planning.volume import DicomIdentity


@pytest.fixture
def hu():
    return ct_phantom((3, 16, 20))


def _edit(paths, **changes):
    for path in paths:
        dataset = pydicom.dcmread(path)
        for keyword, value in changes.items():
            if value is None:
                delattr(dataset, keyword)
            else:
                setattr(dataset, keyword, value)
        dataset.save_as(path)


def test_no_orientation_is_assumed_axial_with_a_warning(tmp_path, hu):
    _edit(write_ct_series(tmp_path, hu), ImageOrientationPatient=None)
    volume = load_volume(tmp_path)
    np.testing.assert_array_equal(volume.grid.direction, np.eye(3))
    assert volume.warnings == [
        "CT0000.dcm and 2 other file(s) state no ImageOrientationPatient: the orientation is "
        "assumed to be axial (1\\0\\0\\0\\1\\0)"
    ]


def test_an_orientation_of_five_values_is_named(tmp_path, hu):
    _edit(write_ct_series(tmp_path, hu), ImageOrientationPatient=[0, 1, 0, 0, 0])
    [warning] = load_volume(tmp_path).warnings
    assert "an ImageOrientationPatient of [0.0, 1.0, 0.0, 0.0, 0.0]" in warning and "axial" in warning


def test_one_file_without_orientation_takes_the_others_with_a_warning(tmp_path, hu):
    paths = write_ct_series(tmp_path, hu)
    _edit(paths[1:2], ImageOrientationPatient=None)  # the scan splits it off; a caller may not
    series = ImageSeries("1", DicomIdentity(), "CT", [read_header(path) for path in paths])
    assert load_series(series).warnings == [
        "CT0001.dcm states no ImageOrientationPatient: the orientation is assumed to be that of CT0000.dcm"
    ]


def test_a_single_slice_without_position_is_placed_at_zero_with_a_warning(tmp_path, hu):
    [path] = write_ct_series(tmp_path, hu[:1])
    _edit([path], ImagePositionPatient=None)
    volume = load_volume(path)
    assert volume.grid.origin_xyz == (0.0, 0.0, 0.0)
    [warning] = volume.warnings
    assert warning.startswith(
        "CT0000.dcm states no ImagePositionPatient: the image is placed at (0, 0, 0) mm"
    )


def _multiframe(tmp_path, hu, **changes):
    [path] = write_ct_series(tmp_path, hu[:1])
    stored = np.clip(hu.astype(np.int32) + 1024, 0, 4095).astype("<u2")
    _edit([path], NumberOfFrames=len(hu), PixelData=stored.tobytes(), **changes)
    return path


def test_a_cine_is_shown_as_a_stack_and_said_to_be_a_time_series(tmp_path, hu):
    path = _multiframe(tmp_path, hu, FrameIncrementPointer=0x00181063, FrameTime=33.0)
    volume = load_volume(path)
    np.testing.assert_array_equal(volume.array, hu)
    assert volume.warnings == [
        "CT0000.dcm is a time series (cine) of 3 frames (FrameIncrementPointer FrameTime), not a "
        "volume: its frames are stacked 2.5 mm apart for viewing only; distances, volumes and "
        "contours across frames mean nothing"
    ]


def test_frames_without_positions_are_stacked_with_a_warning(tmp_path, hu):
    volume = load_volume(_multiframe(tmp_path, hu))
    np.testing.assert_array_equal(volume.array, hu)
    assert volume.warnings == [
        "CT0000.dcm: its 3 frames state no position of their own; they are assumed to be slices "
        "2.5 mm apart (its slice spacing) along the slice normal"
    ]
