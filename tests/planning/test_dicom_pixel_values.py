"""Stored values and their rescale, file by file, never wrapped or flattened."""

import numpy as np
import pydicom
from support.dicom_factory import ct_phantom, write_ct_series

from planning.imageio import load_volume


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
