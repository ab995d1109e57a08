"""Values a header walker must decode as the dictionary says, and bad numbers named with the file."""

import numpy as np
import pydicom
import pytest
from support.dicom_factory import ct_phantom, write_ct_series, write_raw_value

from planning.dicom.headers import read_header
from planning.errors import DelineoError
from planning.imageio import load_volume

ROWS, POSITION, SPACING = 0x00280010, 0x00200032, 0x00280030


@pytest.fixture
def hu():
    return ct_phantom((4, 16, 20))


def test_rows_stored_as_un_are_read_by_the_dictionary_vr(tmp_path, hu):
    """UN is legal in explicit VR; the walker decoded its bytes as text ('invalid literal for int')."""
    paths = write_ct_series(tmp_path, hu)
    for path in paths:
        write_raw_value(path, ROWS, "UN", np.uint16(16).tobytes())
    assert pydicom.dcmread(paths[0]).Rows == 16
    assert read_header(paths[0])["Rows"] == 16
    np.testing.assert_array_equal(load_volume(tmp_path).array, hu)


@pytest.mark.parametrize("charset", ["", "ISO_IR 144"])  # the walker, and pydicom for other charsets
def test_a_decimal_comma_is_named_with_the_file_and_attribute(tmp_path, hu, charset):
    paths = write_ct_series(tmp_path, hu)
    for path in paths:
        if charset:
            dataset = pydicom.dcmread(path)
            dataset.SpecificCharacterSet = charset
            dataset.save_as(path)
        write_raw_value(path, POSITION, "DS", b"-20,0\\-18,0\\-15,0")
    message = r"CT0000.dcm: ImagePositionPatient is '-20,0\\-18,0\\-15,0', not a number \(a decimal comma"
    with pytest.raises(DelineoError, match=message):
        read_header(paths[0])
    with pytest.raises(DelineoError, match="no CT/MR image series found .*" + message):
        load_volume(tmp_path)


def test_a_nan_position_is_named_and_the_slice_left_out_with_a_warning(tmp_path, hu):
    """It stopped the load with 'cannot convert float NaN to integer'."""
    paths = write_ct_series(tmp_path, hu)
    write_raw_value(paths[2], POSITION, "DS", b"-20\\-18\\nan")
    volume = load_volume(tmp_path)
    assert any(
        r"CT0002.dcm: ImagePositionPatient is '-20\-18\nan', not a number" in w for w in volume.warnings
    )


def test_a_nan_pixel_spacing_is_named(tmp_path, hu):
    """Every file became a series of its own, the spacing never named."""
    paths = write_ct_series(tmp_path, hu)
    for path in paths:
        write_raw_value(path, SPACING, "DS", b"nan\\0.9")
    with pytest.raises(DelineoError, match=r"CT0000.dcm: PixelSpacing is 'nan\\0.9', not a number"):
        load_volume(tmp_path)
