"""`delineo rtstruct export | import | check` on real DICOM files."""

import json

import numpy as np
import pydicom
import pytest
from support.data import data_path
from support.dicom_factory import ct_phantom, write_ct_series
from support.rtstruct_checks import dciodvfy_errors

from planning.geometry import Grid
from planning.imageio import load_volume, read_image_file, save_volume
from planning.volume import Volume
from workstation.cli import main


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    write_ct_series(root / "ct", ct_phantom((8, 40, 44)), spacing_xyz=(0.9, 0.9, 2.5))
    volume = load_volume(root / "ct")
    labels = np.zeros(volume.grid.shape, np.uint8)
    z, y, x = np.indices(volume.grid.shape)
    labels[(y - 20) ** 2 + (x - 14) ** 2 <= 36] = 1
    labels[(y - 20) ** 2 + (x - 30) ** 2 <= 36] = 2
    labels[1:7, 2:6, 2:40] = 3
    # The label map is stored with its y axis flipped, as some tools write NIfTI.
    grid = volume.grid
    flipped_grid = Grid(
        grid.shape,
        grid.spacing_xyz,
        tuple(grid.index_to_patient(np.array([0.0, grid.shape[1] - 1, 0.0]))),
        grid.direction @ np.diag([1.0, -1.0, 1.0]),
    )
    save_volume(Volume(labels[:, ::-1, :].copy(), flipped_grid), root / "labels.nii.gz")
    (root / "names.json").write_text(json.dumps({"1": "Parotid_R", "2": "Parotid_L", "3": "cord"}))
    return root, labels


def test_export_writes_a_conforming_rtstruct(case, capsys):
    root, labels = case
    out = root / "RS.dcm"
    code = main(
        [
            "rtstruct",
            "export",
            str(root / "labels.nii.gz"),
            "--series",
            str(root / "ct"),
            "--names",
            str(root / "names.json"),
            "--out",
            str(out),
            "--label",
            "CLI test",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "cord → SpinalCord" in printed
    assert dciodvfy_errors(out) == []
    ds = pydicom.dcmread(out)
    assert [roi.ROIName for roi in ds.StructureSetROISequence] == ["Parotid_R", "Parotid_L", "cord"]
    assert {roi.ROIGenerationAlgorithm for roi in ds.StructureSetROISequence} == {"AUTOMATIC"}
    assert ds.StructureSetLabel == "CLI test"


def test_import_gives_back_the_label_map(case, capsys):
    root, labels = case
    out = root / "RS.dcm"
    if not out.exists():
        test_export_writes_a_conforming_rtstruct(case, capsys)
    target = root / "back.nii.gz"
    assert main(["rtstruct", "import", str(out), "--series", str(root / "ct"), "--out", str(target)]) == 0
    printed = capsys.readouterr().out
    assert "Parotid_L" in printed and "cc" in printed
    back = read_image_file(target)
    np.testing.assert_array_equal(back.array, labels)
    assert json.loads((root / "back.json").read_text()) == {"1": "Parotid_R", "2": "Parotid_L", "3": "cord"}


def test_check_reports_and_sets_the_exit_code(case, capsys):
    root, _ = case
    out = root / "RS.dcm"
    if not out.exists():
        test_export_writes_a_conforming_rtstruct(case, capsys)
    assert main(["rtstruct", "check", str(out), "--series", str(root / "ct")]) == 0
    assert "no conformance problems found" in capsys.readouterr().out
    cerr = data_path("dicom", "ibsi1-lung-ct", "RS.dcm")
    assert main(["rtstruct", "check", str(cerr)]) == 1
    printed = capsys.readouterr().out
    assert "Errors" in printed and "GTV-1" in printed


def test_broken_file_is_one_clear_error_line(tmp_path, capsys):
    mock = data_path("dicom", "rt-utils", "mock_data")
    series = tmp_path / "ct"
    series.mkdir()
    for path in mock.glob("ct_*.dcm"):
        (series / path.name).symlink_to(path)
    code = main(
        [
            "rtstruct",
            "import",
            str(mock / "invalid_reference_rt.dcm"),
            "--series",
            str(series),
            "--out",
            str(tmp_path / "x.nii.gz"),
        ]
    )
    assert code == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("delineo: error: invalid_reference_rt.dcm") and "not loaded" in error
    assert error.endswith("or read the rest with --allow-missing-images")
    command = ["rtstruct", "import", str(mock / "invalid_reference_rt.dcm"), "--series", str(series)]
    assert main([*command, "--out", str(tmp_path / "x.nii.gz"), "--allow-missing-images"]) == 0
    assert "left out" in capsys.readouterr().err
