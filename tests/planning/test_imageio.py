import numpy as np
import pytest

from planning.errors import DelineoError, FormatError, GeometryError
from planning.geometry import Grid
from planning.imageio import load_volume, save_volume
from planning.volume import Volume


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".NII.GZ", ".MHA"])
def test_research_formats_round_trip_with_geometry(tmp_path, suffix):
    direction = np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]], dtype=float)
    grid = Grid((4, 5, 6), (0.7, 0.8, 2.5), (-10.0, 20.0, 5.5), direction)
    array = np.arange(120, dtype=np.int16).reshape(4, 5, 6) - 60
    path = tmp_path / "written" / f"image{suffix}"
    path.parent.mkdir()
    save_volume(Volume(array, grid), path)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # nothing left behind
    # a detached header names its data file as found beside it: the pair can be moved
    moved = tmp_path / "moved"
    path.parent.rename(moved)
    back = load_volume(moved / path.name)
    np.testing.assert_array_equal(back.array, array)
    assert back.grid.same_as(grid, tolerance_mm=1e-4)


def test_corrupt_nifti_gives_a_format_error(tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(FormatError, match="broken.nii.gz: cannot be read"):
        load_volume(path)


@pytest.mark.parametrize("name", ["empty.nii.gz", "empty.nrrd", "empty.mha"])
def test_an_empty_image_file_is_named_empty(tmp_path, name):
    """It was 'cannot be read as an image (sitk::ERROR: Unable to determine ImageIO reader …)'."""
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(FormatError, match=rf"^{name}: empty file \(0 bytes\)$"):
        load_volume(tmp_path / name)


def test_unknown_output_format_and_missing_input(tmp_path):
    volume = Volume(np.zeros((1, 2, 2), np.uint8), Grid((1, 2, 2), (1, 1, 1)))
    with pytest.raises(FormatError, match="unknown image format"):
        save_volume(volume, tmp_path / "out.png")
    with pytest.raises(DelineoError, match="no such file"):
        load_volume(tmp_path / "nowhere")


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_truncated_nifti_is_refused_not_zero_filled(tmp_path, suffix):
    """ITK reads a NIfTI file cut short as if complete, the missing voxels 0: refused instead."""
    grid = Grid((6, 40, 50), (1.0, 1.0, 2.0))
    array = np.random.default_rng(0).integers(-1000, 1000, grid.shape).astype(np.int16)
    whole = tmp_path / f"whole{suffix}"
    save_volume(Volume(array, grid), whole)
    np.testing.assert_array_equal(load_volume(whole).array, array)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    expected = 352 + array.nbytes
    with pytest.raises(
        FormatError, match=rf"cut{suffix}: truncated or damaged; it holds [\d,]+ of the {expected:,}"
    ):
        load_volume(cut)


def test_a_nifti_header_declaring_a_size_of_zero_is_refused(tmp_path):
    """ITK read dim[3] = 0 as 1 and gave the first of the file's 6 slices as the whole image."""
    grid = Grid((6, 40, 50), (1.0, 1.0, 2.0))
    path = tmp_path / "zero.nii"
    save_volume(Volume(np.ones(grid.shape, np.int16), grid), path)
    data = bytearray(path.read_bytes())
    data[46:48] = (0).to_bytes(2, "little")  # dim[3]
    path.write_bytes(bytes(data))
    with pytest.raises(
        FormatError, match=r"zero\.nii: damaged header: it declares an image of size 50 × 40 × 0"
    ):
        load_volume(path)


def test_a_gzipped_nifti_of_several_members_is_whole(tmp_path):
    import gzip

    grid = Grid((3, 8, 9), (1.0, 1.0, 2.0))
    array = np.arange(216, dtype=np.int16).reshape(grid.shape)
    save_volume(Volume(array, grid), tmp_path / "one.nii")
    raw = (tmp_path / "one.nii").read_bytes()
    (tmp_path / "two.nii.gz").write_bytes(gzip.compress(raw[:200]) + gzip.compress(raw[200:]))
    np.testing.assert_array_equal(load_volume(tmp_path / "two.nii.gz").array, array)


def test_image_files_that_are_not_one_volume_are_named(tmp_path):
    import SimpleITK as sitk

    series = sitk.JoinSeries([sitk.Image(5, 4, 3, sitk.sitkInt16)] * 2)
    sitk.WriteImage(series, str(tmp_path / "dynamic.nii.gz"))
    with pytest.raises(GeometryError, match="dynamic.nii.gz: a 4D image of 2 volumes"):
        load_volume(tmp_path / "dynamic.nii.gz")
    sitk.WriteImage(sitk.Image([5, 4, 3], sitk.sitkVectorUInt8, 3), str(tmp_path / "colour.nrrd"))
    with pytest.raises(GeometryError, match="colour.nrrd: only single-component images"):
        load_volume(tmp_path / "colour.nrrd")


@pytest.mark.parametrize("name", ["odd.nrrd", "odd.nii.gz", "odd.nii"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_voxels_that_are_not_numbers_are_counted_in_a_warning(tmp_path, name, dtype):
    """ITK reads a NIfTI file's NaN and infinite voxels as 0 (water, on a CT): they are counted
    in the file itself."""
    grid = Grid((2, 3, 4), (1.0, 1.0, 1.0))
    array = np.zeros(grid.shape, dtype)
    array[0, 0, :3] = [np.nan, np.inf, -np.inf]
    save_volume(Volume(array, grid), tmp_path / name)
    warnings = load_volume(tmp_path / name).warnings
    assert len(warnings) == 1 and f"{name}: 3 voxels are not numbers" in warnings[0]
    save_volume(Volume(np.zeros(grid.shape, np.float32), grid), tmp_path / "fine.nrrd")
    assert load_volume(tmp_path / "fine.nrrd").warnings == []
