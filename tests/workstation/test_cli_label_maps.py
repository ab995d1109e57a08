"""One rule for label maps in `delineo compare` and `delineo mesh`, NIfTI and NRRD alike
(`planning.imageio.read_label_map`): whole-number float labels are read, with a warning; NaN
voxels and values that are not whole numbers are refused naming the file."""

import csv

import numpy as np
import pytest
import SimpleITK as sitk

from workstation.cli import main

FORMATS = [".nii.gz", ".nrrd"]  # NIfTI: ITK reads NaN as 0, so the NaN are counted in the file


def _labels() -> np.ndarray:
    labels = np.zeros((12, 40, 40), np.uint8)
    labels[2:10, 10:25, 10:25] = 1
    labels[3:6, 28:35, 28:35] = 2
    return labels


def _write(path, array) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.0, 1.0, 2.5))
    sitk.WriteImage(image, str(path))


def _compare(tmp_path, path) -> int:
    _write(tmp_path / "test.nii.gz", _labels())
    return main(["compare", str(path), str(tmp_path / "test.nii.gz"), "--out", str(tmp_path / "report.html")])


def _mesh(tmp_path, path) -> int:
    return main(["mesh", str(path), "--out", str(tmp_path / "meshes")])


COMMANDS = {"compare": _compare, "mesh": _mesh}


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_label_map_with_nan_is_refused_naming_the_file_and_the_count(tmp_path, capsys, command, suffix):
    """compare read a NIfTI's NaN as background with a warning and refused an NRRD's as
    'non-integer values'; a damaged label map is refused by every command."""
    labels = _labels().astype(np.float32)
    labels[0, 0, :3] = np.nan
    labels[5, 12, 12] = np.nan  # inside structure 1: it would lose the voxel unsaid
    path = tmp_path / f"damaged{suffix}"
    _write(path, labels)
    assert COMMANDS[command](tmp_path, path) == 1
    said = capsys.readouterr().err
    assert (
        f"error: damaged{suffix}: 4 voxels are not numbers (NaN or infinite): the label map is damaged"
        in said
    )


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("command", COMMANDS)
def test_whole_number_float_labels_are_read_with_a_warning(tmp_path, capsys, command, suffix):
    """mesh refused float labels that compare read; both read them, saying they were float."""
    path = tmp_path / f"floats{suffix}"
    _write(path, _labels().astype(np.float32))
    assert COMMANDS[command](tmp_path, path) == 0
    said = capsys.readouterr().err
    warning = f"floats{suffix}: labels stored as float32 values, all whole numbers: read as integer labels"
    assert said.count(warning) == 1, said
    if command == "mesh":
        assert sorted(p.name for p in (tmp_path / "meshes").iterdir()) == ["Label_1.stl", "Label_2.stl"]
    else:
        rows = csv.DictReader(open(tmp_path / "report.csv", encoding="utf-8"))
        assert {r["reference_structure"]: float(r["dice"]) for r in rows} == {"Label_1": 1.0, "Label_2": 1.0}


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("command", COMMANDS)
def test_values_that_are_not_whole_numbers_are_refused_with_an_example(tmp_path, capsys, command, suffix):
    labels = _labels().astype(np.float32)
    fractional = np.count_nonzero(labels == 2)
    labels[labels == 2] = 0.25
    path = tmp_path / f"probabilities{suffix}"
    _write(path, labels)
    assert COMMANDS[command](tmp_path, path) == 1
    said = capsys.readouterr().err
    assert (
        f"probabilities{suffix}: {fractional} voxels hold values that are not whole numbers (e.g. 0.25)"
        in said
    )


def test_compare_without_series_reads_the_reference_label_map_once(tmp_path, monkeypatch):
    """The reference is the image and the reference structures: one read serves both."""
    reads = []
    reader = sitk.ImageFileReader

    class CountingReader(reader):
        def Execute(self):
            reads.append(self.GetFileName())
            return super().Execute()

    monkeypatch.setattr(sitk, "ImageFileReader", CountingReader)
    _write(tmp_path / "reference.nii.gz", _labels())
    assert _compare(tmp_path, tmp_path / "reference.nii.gz") == 0
    assert [name for name in reads if name.endswith("reference.nii.gz")] == [
        str(tmp_path / "reference.nii.gz")
    ]
