"""Broken and unusual series written as DICOM files, each with its specific outcome."""

import logging
import random

import numpy as np
import pydicom
import pytest
from support.dicom_factory import (
    ct_phantom,
    give_slice_the_uid_of_another,
    tilted_positions,
    write_ct_series,
    write_enhanced_ct,
)

from planning.dicom.headers import read_header
from planning.dicom.load import load_files, load_series
from planning.dicom.scan import scan
from planning.dicom.stack import image_plane_origins
from planning.errors import DicomReadError, SeriesError
from planning.imageio import load_volume

SPACING = (0.9, 0.9, 2.5)
ORIGIN = (-20.0, -18.0, -15.0)


@pytest.fixture
def hu():
    return ct_phantom((12, 40, 48))


def test_regular_series_loads_exactly(tmp_path, hu):
    write_ct_series(tmp_path, hu, spacing_xyz=SPACING, origin_xyz=ORIGIN)
    volume = load_volume(tmp_path)
    np.testing.assert_array_equal(volume.array, hu)
    assert volume.array.dtype == np.int16
    np.testing.assert_allclose(volume.grid.spacing_xyz, SPACING, atol=1e-6)
    np.testing.assert_allclose(volume.grid.origin_xyz, ORIGIN, atol=1e-6)
    assert volume.warnings == []
    assert all(ref is not None for ref in volume.slices)
    np.testing.assert_allclose(
        [ref.position_xyz[2] for ref in volume.slices], ORIGIN[2] + 2.5 * np.arange(12)
    )


def test_order_comes_from_positions_not_names_or_instance_numbers(tmp_path, hu):
    names = [f"IM{n:04d}.dcm" for n in random.Random(3).sample(range(100), 12)]
    numbers = random.Random(4).sample(range(1, 13), 12)
    write_ct_series(tmp_path, hu, file_names=names, instance_numbers=numbers)
    volume = load_volume(tmp_path)
    np.testing.assert_array_equal(volume.array, hu)


def test_feet_first_positions_still_ascend_along_the_normal(tmp_path, hu):
    positions = [(ORIGIN[0], ORIGIN[1], ORIGIN[2] - 2.5 * k) for k in range(12)]
    write_ct_series(tmp_path, hu, positions=positions)
    volume = load_volume(tmp_path)
    np.testing.assert_array_equal(volume.array, hu[::-1])
    np.testing.assert_allclose(volume.grid.origin_xyz[2], ORIGIN[2] - 2.5 * 11, atol=1e-6)


def test_missing_slice_is_detected_and_interpolated(tmp_path, hu, caplog):
    paths = write_ct_series(tmp_path, hu)
    paths[5].unlink()
    with caplog.at_level(logging.WARNING):
        volume = load_volume(tmp_path)
    assert volume.shape == hu.shape  # the gap is filled back to 12 planes
    assert any("missing" in w and "resampled" in w for w in volume.warnings)
    assert "missing" in caplog.text
    assert volume.slices[5] is None and volume.slices[4] is not None
    np.testing.assert_array_equal(volume.array[4], hu[4])
    expected = np.rint((hu[4].astype(float) + hu[6]) / 2)
    np.testing.assert_array_equal(volume.array[5], expected)


def test_irregular_spacing_is_resampled_with_a_warning(tmp_path, hu):
    steps = [2.5] * 6 + [3.4] * 5
    along = np.concatenate([[0.0], np.cumsum(steps)])
    positions = [(ORIGIN[0], ORIGIN[1], ORIGIN[2] + a) for a in along]
    write_ct_series(tmp_path, hu, positions=positions)
    volume = load_volume(tmp_path)
    assert any("slice spacing changes from 2.5 mm to 3.4 mm" in w for w in volume.warnings)
    z_spacing = volume.grid.spacing_xyz[2]
    assert z_spacing == pytest.approx(2.5, abs=0.5)
    assert (volume.shape[0] - 1) * z_spacing == pytest.approx(along[-1], abs=z_spacing)
    one_step = [2.5] * 5 + [3.4] + [2.5] * 5  # no run of 3.4 mm: an irregular step
    along = np.concatenate([[0.0], np.cumsum(one_step)])
    write_ct_series(tmp_path / "one", hu, positions=[(ORIGIN[0], ORIGIN[1], ORIGIN[2] + a) for a in along])
    [warning] = load_volume(tmp_path / "one").warnings
    assert "irregular slice spacing: expected 2.5 mm, found gaps of 3.40 mm after 12.50 mm" in warning


@pytest.mark.parametrize("thick", [5.0, 6.0])  # 6 mm: a multiple of 3 mm, still no slice missing
def test_a_change_of_slice_spacing_is_said_so_not_taken_for_missing_slices(tmp_path, thick):
    """3 mm slices then thicker ones, nothing missing: the warning said "about 19 slice(s)
    missing" (or the grid was the median of both); the spacing change is named where it is, and
    the volume keeps the finer spacing."""
    steps = [3.0] * 24 + [thick] * 19
    along = np.concatenate([[0.0], np.cumsum(steps)])
    hu = ct_phantom((len(along), 24, 28))
    write_ct_series(tmp_path, hu, positions=[(ORIGIN[0], ORIGIN[1], ORIGIN[2] + a) for a in along])
    volume = load_volume(tmp_path)
    assert volume.warnings == [
        f"slice spacing changes from 3.0 mm to {thick:.1f} mm at z = {ORIGIN[2] + 72:.1f} mm; resampled "
        "to a regular 3.0 mm grid by linear interpolation between neighbouring slices"
    ]
    assert volume.grid.spacing_xyz[2] == pytest.approx(3.0)
    assert volume.shape[0] == round(along[-1] / 3.0) + 1
    np.testing.assert_array_equal(volume.array[:25], hu[:25])  # the 3 mm part as it was


def test_identical_duplicate_slice_is_dropped_with_a_warning(tmp_path, hu):
    paths = write_ct_series(tmp_path, hu)
    copy = pydicom.dcmread(paths[3])
    copy.SOPInstanceUID = pydicom.uid.generate_uid()
    copy.file_meta.MediaStorageSOPInstanceUID = copy.SOPInstanceUID
    copy.save_as(tmp_path / "copy_of_3.dcm")
    volume = load_volume(tmp_path)
    np.testing.assert_array_equal(volume.array, hu)
    assert any("duplicated" in w and "copy_of_3.dcm" in w or "CT0003.dcm" in w for w in volume.warnings)


def test_conflicting_duplicate_slice_is_refused(tmp_path, hu):
    paths = write_ct_series(tmp_path, hu)
    other = pydicom.dcmread(paths[3])
    other.SOPInstanceUID = pydicom.uid.generate_uid()
    other.file_meta.MediaStorageSOPInstanceUID = other.SOPInstanceUID
    other.PixelData = (np.frombuffer(other.PixelData, "<u2") + 50).astype("<u2").tobytes()
    other.save_as(tmp_path / "other_3.dcm")
    with pytest.raises(SeriesError, match="different images at the same position"):
        load_volume(tmp_path)


def test_two_slices_sharing_a_sop_instance_uid_are_named_in_a_warning(tmp_path, hu):
    paths = write_ct_series(tmp_path, hu)
    shared = give_slice_the_uid_of_another(paths, 5, 4)
    volume = load_volume(tmp_path)
    np.testing.assert_array_equal(volume.array, hu)  # the images are loaded as they are
    (warning,) = [w for w in volume.warnings if shared in w]
    assert "CT0004.dcm and CT0005.dcm" in warning
    assert "-5.0] and" in warning and "-2.5] mm" in warning  # both positions (z -5 and -2.5 mm)
    assert "cannot be exported as an RTSTRUCT" in warning


def test_gantry_tilt_is_detected_and_resampled(tmp_path):
    hu = ct_phantom((10, 40, 48))
    tilt = np.radians(15)
    # the gantry tilts the image plane about x; the table moves along z
    orientation = (1.0, 0.0, 0.0, 0.0, np.cos(tilt), -np.sin(tilt))
    positions = [(ORIGIN[0], ORIGIN[1], ORIGIN[2] + 2.5 * k) for k in range(10)]
    write_ct_series(tmp_path, hu, orientation=orientation, positions=positions)
    volume = load_volume(tmp_path)
    assert any("gantry tilt of 15.0°" in w for w in volume.warnings)
    normal = volume.grid.slice_normal
    np.testing.assert_allclose(normal, [0, np.sin(tilt), np.cos(tilt)], atol=1e-5)
    assert volume.grid.spacing_xyz[2] == pytest.approx(2.5 * np.cos(tilt), rel=1e-5)
    # every output voxel shows the source pixel at the same patient point
    k, y, x = 6, 20, 24
    source_point = (
        np.asarray(positions[k]) + 0.9 * x * np.array([1, 0, 0]) + 0.9 * y * np.array(orientation[3:])
    )
    index = volume.grid.patient_to_index(source_point)
    assert index[2] == pytest.approx(k, abs=1e-4)
    sampled = volume.array[k, int(round(index[1])), int(round(index[0]))]
    assert abs(int(sampled) - int(hu[k, y, x])) <= 60  # nearest voxel of a linearly resampled image


def test_sheared_planes_keep_their_images(tmp_path):
    positions = tilted_positions(6)
    write_ct_series(tmp_path, ct_phantom((6, 32, 32)), positions=positions)
    volume = load_volume(tmp_path)
    assert any("gantry tilt" in w for w in volume.warnings)
    # each image lies in its grid plane, shifted within it: a source, not an interpolated plane
    np.testing.assert_allclose([ref.position_xyz for ref in volume.slices], positions, atol=1e-4)
    origins = image_plane_origins(volume.grid, volume.slices)
    np.testing.assert_allclose(
        volume.grid.patient_to_index(origins), [[0, 0, k] for k in range(6)], atol=1e-4
    )


def test_mixed_sizes_split_into_two_loadable_series(tmp_path, hu):
    series_uid = pydicom.uid.generate_uid()
    write_ct_series(tmp_path, hu[:6], series_uid=series_uid)
    small = ct_phantom((6, 20, 24))
    positions = [(ORIGIN[0], ORIGIN[1], ORIGIN[2] + 2.5 * (k + 6)) for k in range(6)]
    write_ct_series(
        tmp_path,
        small,
        series_uid=series_uid,
        positions=positions,
        file_names=[f"small{k}.dcm" for k in range(6)],
    )
    found = scan(tmp_path)
    assert len(found.series) == 2
    assert {s.columns for s in found.series} == {48, 24}
    assert all("24×20" in s.split_note or "48×40" in s.split_note for s in found.series)
    shapes = sorted(load_series(s).shape for s in found.series)
    assert shapes == [(6, 20, 24), (6, 40, 48)]
    with pytest.raises(SeriesError, match="2 volumes"):
        load_files([h.path for s in found.series for h in s.headers])


def test_two_series_in_one_folder(tmp_path, hu):
    write_ct_series(tmp_path / "a", hu, series_description="first")
    write_ct_series(tmp_path / "b", hu[:4], series_description="second")
    found = scan(tmp_path)
    assert sorted(s.number_of_images for s in found.series) == [4, 12]
    with pytest.raises(Exception, match="holds 2 image series"):
        load_volume(tmp_path)
    second = next(s for s in found.series if s.description == "second")
    volume = load_volume(tmp_path, series=second.key)
    np.testing.assert_array_equal(volume.array, hu[:4])


def test_truncated_file_names_file_and_bytes(tmp_path, hu):
    paths = write_ct_series(tmp_path, hu)
    data = paths[7].read_bytes()
    paths[7].write_bytes(data[: len(data) - 3000])
    with pytest.raises(DicomReadError, match=r"CT0007.dcm: pixel data truncated, \d+ of 3840 bytes"):
        load_volume(tmp_path)


def test_a_file_cut_inside_its_header_is_reported_not_fatal(tmp_path, hu):
    """An interrupted copy: the file ends before its header does. It raised an internal
    exception out of the folder scan."""
    paths = write_ct_series(tmp_path, hu)
    (tmp_path / "partial.dcm").write_bytes(paths[0].read_bytes()[:700])
    with pytest.raises(DicomReadError, match=r"partial.dcm: the file ends inside its header \(truncated\)"):
        read_header(tmp_path / "partial.dcm")
    found = scan(tmp_path)
    assert [p.path.name for p in found.problems] == ["partial.dcm"]
    np.testing.assert_array_equal(load_volume(tmp_path).array, hu)


def test_non_dicom_and_unreadable_files_are_reported_not_fatal(tmp_path, hu):
    write_ct_series(tmp_path, hu)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 40)
    found = scan(tmp_path)
    reasons = {p.path.name: p.reason for p in found.problems}
    assert set(reasons) == {"notes.txt", "garbage.dcm"}
    assert "not a DICOM file" in reasons["notes.txt"]
    assert len(found.series) == 1
    np.testing.assert_array_equal(load_series(found.series[0]).array, hu)


def test_implicit_vr_series_and_header_walker_agree_with_pydicom(tmp_path, hu):
    paths = write_ct_series(tmp_path, hu, implicit_vr=True)
    header = read_header(paths[0])
    dataset = pydicom.dcmread(paths[0])
    assert header.get("ImagePositionPatient") == [float(v) for v in dataset.ImagePositionPatient]
    assert header.get("Rows") == 40 and header.get("RescaleIntercept") == -1024.0
    assert header.pixel_offset is not None
    np.testing.assert_array_equal(load_volume(tmp_path).array, hu)


def test_header_walker_skips_sequences_of_undefined_length(tmp_path, hu):
    path = write_ct_series(tmp_path, hu[:1])[0]
    dataset = pydicom.dcmread(path)
    item = pydicom.Dataset()
    item.CodeValue = "123"
    item.CodingSchemeDesignator = "99TEST"
    nested = pydicom.Dataset()
    nested.CodeMeaning = "nested"
    item.PurposeOfReferenceCodeSequence = pydicom.Sequence([nested])
    dataset.AnatomicRegionSequence = pydicom.Sequence([item])
    dataset["AnatomicRegionSequence"].is_undefined_length = True
    dataset.save_as(path)
    header = read_header(path)
    assert header.pixel_offset is not None
    assert header.get("SeriesDescription") == "synthetic CT"
    np.testing.assert_array_equal(load_volume(tmp_path).array, hu[:1])


def test_enhanced_multiframe_ct_uses_functional_groups(tmp_path, hu):
    path = tmp_path / "enhanced.dcm"
    write_enhanced_ct(path, hu[:5])
    volume = load_volume(path)
    np.testing.assert_array_equal(volume.array, hu[:5])  # frames stored head-first, sorted back
    np.testing.assert_allclose(volume.grid.spacing_xyz, (0.7, 0.8, 2.0), atol=1e-6)
    assert [ref.frame for ref in volume.slices] == [5, 4, 3, 2, 1]


def _rewrite(path, **changes) -> None:
    """Rewrite one file with attributes changed (None deletes the attribute)."""
    dataset = pydicom.dcmread(path)
    for keyword, value in changes.items():
        if value is None:
            delattr(dataset, keyword)
        else:
            setattr(dataset, keyword, value)
    dataset.save_as(path)


@pytest.mark.parametrize(
    ("changes", "note"),
    [
        ({"PixelSpacing": [0.5, 0.5]}, "0.5×0.5 mm pixels"),
        ({"PixelSpacing": None}, "no pixel spacing"),
        ({"FrameOfReferenceUID": "1.2.3.4"}, "frame of reference 1.2.3.4"),
        ({"PatientID": "OTHER"}, "patient ID OTHER"),
    ],
)
def test_a_slice_that_disagrees_with_its_series_is_split_off(tmp_path, hu, changes, note):
    """One slice of another pixel spacing or frame of reference cannot share the volume's grid;
    one of another patient (filed in the series by mistake) is not this patient's."""
    write_ct_series(tmp_path, hu, spacing_xyz=SPACING, origin_xyz=ORIGIN)
    _rewrite(sorted(tmp_path.glob("*.dcm"))[5], **changes)
    found = scan(tmp_path)
    assert sorted(s.number_of_images for s in found.series) == [1, 11]
    odd = next(s for s in found.series if s.number_of_images == 1)
    assert note in odd.split_note and note in odd.describe()
    with pytest.raises(SeriesError, match="2 volumes"):
        load_files(sorted(tmp_path.glob("*.dcm")))


def test_pixel_spacing_missing_is_named_and_impossible_spacing_refused(tmp_path, hu):
    write_ct_series(tmp_path, hu[:3], spacing_xyz=SPACING, origin_xyz=ORIGIN)
    files = sorted(tmp_path.glob("*.dcm"))
    for path in files:
        _rewrite(path, PixelSpacing=None)
    volume = load_files(files)
    assert volume.grid.spacing_xyz[:2] == (1.0, 1.0)
    assert any("no PixelSpacing" in w and "not in true millimetres" in w for w in volume.warnings)
    for path in files:
        _rewrite(path, PixelSpacing=[0, 0.9])
    with pytest.raises(DicomReadError, match=r"PixelSpacing 0\\0.9 mm is not two positive sizes"):
        load_files(files)
