import numpy as np
import pytest

from planning.errors import DelineoError, FormatError
from planning.geometry import Grid
from planning.imageio import load_volume, save_volume
from planning.volume import Volume


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_research_formats_round_trip_with_geometry(tmp_path, suffix):
    direction = np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]], dtype=float)
    grid = Grid((4, 5, 6), (0.7, 0.8, 2.5), (-10.0, 20.0, 5.5), direction)
    array = np.arange(120, dtype=np.int16).reshape(4, 5, 6) - 60
    path = tmp_path / f"image{suffix}"
    save_volume(Volume(array, grid), path)
    back = load_volume(path)
    np.testing.assert_array_equal(back.array, array)
    assert back.grid.same_as(grid, tolerance_mm=1e-4)


def test_corrupt_nifti_gives_a_format_error(tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(FormatError, match="broken.nii.gz: cannot be read"):
        load_volume(path)


def test_unknown_output_format_and_missing_input(tmp_path):
    volume = Volume(np.zeros((1, 2, 2), np.uint8), Grid((1, 2, 2), (1, 1, 1)))
    with pytest.raises(FormatError, match="unknown image format"):
        save_volume(volume, tmp_path / "out.png")
    with pytest.raises(DelineoError, match="no such file"):
        load_volume(tmp_path / "nowhere")
