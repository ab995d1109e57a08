"""NIfTI files are placed by their sform, as nibabel places them, when ITK reads them otherwise."""

import struct

import numpy as np
import pytest

from planning.errors import GeometryError
from planning.imageio import read_image_file
from planning.sform_shear import SHEAR_LIMIT_DEG

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


def _sheared(path, degrees: float, qform_code: int):
    """A file whose sform turns its j axis `degrees` towards its i axis (the qform, when set, is
    nibabel's nearest rotation)."""
    sheared = AFFINE.copy()
    sheared[0, 1] = AFFINE[1, 1] * np.tan(np.radians(degrees))
    image = nib.Nifti1Image(DATA, sheared)
    image.set_qform(sheared if qform_code else None, code=qform_code)
    image.set_sform(sheared, code=2)
    nib.save(image, path)
    return path, sheared


@pytest.mark.parametrize("qform_code", [0, 1])
def test_a_sheared_sform_is_refused_naming_the_shear(tmp_path, qform_code):
    # ITK refused it without saying why when the qform was not set, else placed it by the qform
    path, _ = _sheared(tmp_path / "shear.nii", 9.462, qform_code)
    with pytest.raises(GeometryError) as error:
        read_image_file(path)
    assert str(error.value).startswith(
        "shear.nii: its sform (code 2) is sheared: its voxel axes i and j meet at 80.538°, 9.462° from a "
        "right angle. Delineo places images by perpendicular axes, which would move voxels up to "
    )
    assert str(error.value).endswith("resample the image onto a grid with perpendicular axes first")


def test_a_shear_just_above_the_limit_is_refused(tmp_path):
    path, _ = _sheared(tmp_path / "shear.nii.gz", 1.2 * SHEAR_LIMIT_DEG, 0)
    with pytest.raises(GeometryError, match=r"i and j meet at 89\.988°, 0\.012° from a right angle"):
        read_image_file(path)


@pytest.mark.parametrize("degrees", [0.004, 0.008])
@pytest.mark.parametrize("qform_code", [0, 1])
def test_a_rounding_shear_is_made_perpendicular_with_a_warning(tmp_path, degrees, qform_code):
    # ITK refused shears above about 0.006° when the qform was not set
    path, sheared = _sheared(tmp_path / "round.nii", degrees, qform_code)
    volume = read_image_file(path)
    direction = volume.grid.direction
    np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-12)
    stated = RAS_TO_LPS @ sheared
    np.testing.assert_allclose(volume.grid.affine[:, 3], stated[:, 3], atol=1e-5)  # the same origin
    np.testing.assert_allclose(volume.grid.spacing_xyz, np.linalg.norm(stated[:3, :3], axis=0), rtol=1e-6)
    corner = np.array([5.0, 4.0, 3.0, 1.0])  # the last voxel (i, j, k)
    moved = np.linalg.norm((volume.grid.affine - stated) @ corner)
    assert 0 < moved < 3.0 * np.radians(degrees) * 4  # less than the shear moves the j axis' far end
    np.testing.assert_array_equal(volume.array, DATA.transpose(2, 1, 0))
    [warning] = volume.warnings
    assert warning.startswith(
        f"round.nii: its sform's voxel axes i and j meet at {90 - degrees:.4f}°, {degrees:.4f}° from a "
        "right angle (rounding by the program that wrote it, most likely); they are made perpendicular, "
        "which moves no voxel more than "
    )


def test_delineo_info_shows_the_geometry_warning(tmp_path, capsys):
    from workstation.cli import main

    path = _save(tmp_path / "neg.nii")
    _patch_float(path, 80, -2.0)
    assert main(["info", str(path)]) == 0
    assert "warning: neg.nii: its sform (code 1) and its qform/pixdim disagree" in capsys.readouterr().out
