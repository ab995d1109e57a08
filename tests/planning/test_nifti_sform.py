"""NIfTI files are placed by their sform, as nibabel places them, when ITK reads them otherwise."""

import struct

import numpy as np
import pytest

from planning.imageio import read_image_file

nib = pytest.importorskip("nibabel")

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
DATA = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)  # nibabel order (i, j, k)
AFFINE = np.array([[2.0, 0, 0, 10], [0, 3.0, 0, 20], [0, 0, 4.0, 30], [0, 0, 0, 1]])


def _save(path, qform=None, qform_code=0, sform_code=1):
    image = nib.Nifti1Image(DATA, AFFINE)
    image.set_qform(qform, code=qform_code)
    image.set_sform(AFFINE, code=sform_code)
    nib.save(image, path)
    return path


def _patch_float(path, offset, value):
    data = bytearray(path.read_bytes())
    struct.pack_into("<f", data, offset, value)
    path.write_bytes(bytes(data))


def _assert_placed_as_nibabel(path):
    volume = read_image_file(path)
    np.testing.assert_allclose(volume.grid.affine, RAS_TO_LPS @ nib.load(path).affine, atol=1e-5)
    np.testing.assert_array_equal(volume.array, DATA.transpose(2, 1, 0))
    [warning] = volume.warnings
    assert warning.startswith(f"{path.name}: its sform (code ") and "the sform is used" in warning
    return warning


def test_an_sform_that_disagrees_with_the_qform_wins(tmp_path):
    """Sform code 2, qform code 1 elsewhere: ITK placed the image by the qform."""
    qform = AFFINE.copy()
    qform[:3, 3] = [-50, -60, -70]
    warning = _assert_placed_as_nibabel(_save(tmp_path / "a.nii.gz", qform, qform_code=1, sform_code=2))
    assert "origin (-10, -20, 30) mm" in warning and "origin (50, 60, -70) mm" in warning


def test_a_negative_pixdim_does_not_mirror_the_sform(tmp_path):
    path = _save(tmp_path / "neg.nii")
    _patch_float(path, 80, -2.0)  # pixdim[1]
    _assert_placed_as_nibabel(path)


def test_a_zero_pixdim_takes_the_sform_spacing(tmp_path):
    path = _save(tmp_path / "zero.nii", AFFINE, qform_code=1)
    _patch_float(path, 84, 0.0)  # pixdim[2]
    warning = _assert_placed_as_nibabel(path)
    assert "spacing (2, 3, 4) mm" in warning and "spacing (2, 1, 4) mm" in warning


def test_an_agreeing_sform_gives_no_warning(tmp_path):
    volume = read_image_file(_save(tmp_path / "ok.nii.gz", AFFINE, qform_code=1))
    np.testing.assert_allclose(volume.grid.affine, RAS_TO_LPS @ AFFINE, atol=1e-5)
    assert volume.warnings == []


def test_a_sheared_sform_that_disagrees_is_named_not_used(tmp_path):
    image = nib.Nifti1Image(DATA, AFFINE)
    sheared = AFFINE.copy()
    sheared[0, 1] = 0.5
    image.set_qform(AFFINE, code=1)
    image.set_sform(sheared, code=2)
    nib.save(image, tmp_path / "shear.nii")
    volume = read_image_file(tmp_path / "shear.nii")
    np.testing.assert_allclose(volume.grid.affine, RAS_TO_LPS @ AFFINE, atol=1e-5)
    [warning] = volume.warnings
    assert warning.startswith("shear.nii: its sform (code 2) differs") and "is not used" in warning


def test_delineo_info_shows_the_geometry_warning(tmp_path, capsys):
    from workstation.cli import main

    path = _save(tmp_path / "neg.nii")
    _patch_float(path, 80, -2.0)
    assert main(["info", str(path)]) == 0
    assert "warning: neg.nii: its sform (code 1) and its qform/pixdim disagree" in capsys.readouterr().out
