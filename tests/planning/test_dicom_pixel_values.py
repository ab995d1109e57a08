"""Stored values and their rescale, file by file, never wrapped or flattened."""

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from support.dicom_factory import ct_phantom, write_ct_series

from planning.dicom.scan import scan
from planning.errors import DicomReadError, FormatError
from planning.imageio import load_volume, read_image_file


def test_bits_stored_varying_inside_a_series_does_not_wrap(tmp_path):
    """Slice 0 BitsStored 12, slice 2 BitsStored 16 holding 40000 with intercept -1024: the dtype
    came from slice 0 (int16) and 38976 wrapped to -26560."""
    hu = ct_phantom((4, 16, 20))
    paths = write_ct_series(tmp_path, hu)
    dataset = pydicom.dcmread(paths[2])
    stored = dataset.pixel_array.copy()
    stored[0, 0] = 40000
    dataset.BitsStored, dataset.HighBit, dataset.PixelData = 16, 15, stored.tobytes()
    dataset.save_as(paths[2])
    volume = load_volume(tmp_path)
    assert volume.array[2, 0, 0] == 40000 - 1024
    expected = hu.astype(np.int32)
    expected[2, 0, 0] = 40000 - 1024
    np.testing.assert_array_equal(volume.array, expected)


def test_a_rescale_slope_of_zero_is_refused_naming_the_file(tmp_path):
    """Every voxel became the intercept, silently."""
    paths = write_ct_series(tmp_path, ct_phantom((3, 16, 20)))
    dataset = pydicom.dcmread(paths[1])
    dataset.RescaleSlope = 0
    dataset.save_as(paths[1])
    with pytest.raises(DicomReadError, match="CT0001.dcm: RescaleSlope is 0, which would make every pixel"):
        load_volume(tmp_path)


def test_an_image_header_without_rows_is_called_damaged(tmp_path):
    paths = write_ct_series(tmp_path, ct_phantom((3, 16, 20)))
    dataset = pydicom.dcmread(paths[1])
    del dataset.Rows
    dataset.save_as(paths[1])
    [problem] = scan(tmp_path).problems
    assert problem.reason == "CT0001.dcm: damaged CT image: its header has no Rows or Columns"
    assert any("CT0001.dcm: damaged CT image" in w for w in load_volume(tmp_path).warnings)


def test_a_truncated_metaimage_is_called_truncated(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((10, 20, 30), np.int16)), str(tmp_path / "a.mha"))
    (tmp_path / "t.mha").write_bytes((tmp_path / "a.mha").read_bytes()[:-500])
    with pytest.raises(FormatError, match=r"t.mha: cannot be read as an image \(truncated or damaged"):
        read_image_file(tmp_path / "t.mha")
