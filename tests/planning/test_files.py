"""A failed write leaves the earlier file whole and no partial file."""

import numpy as np
import pytest
import SimpleITK as sitk

from planning.errors import FormatError
from planning.files import write_atomically
from planning.geometry import Grid
from planning.imageio import load_volume, save_volume
from planning.volume import Volume


def test_a_failed_write_keeps_the_earlier_file(tmp_path):
    path = tmp_path / "labels.nii.gz"
    path.write_bytes(b"earlier export")

    def fails_half_way(target):
        assert target.name.endswith(".nii.gz") and target.parent == tmp_path
        target.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(FormatError, match=r"labels.nii.gz: cannot be written \(No space left on device\)"):
        write_atomically(path, fails_half_way)
    assert path.read_bytes() == b"earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.nii.gz"]
    write_atomically(path, lambda target: target.write_bytes(b"new"))
    assert path.read_bytes() == b"new" and len(list(tmp_path.iterdir())) == 1


def test_an_image_export_that_fails_keeps_the_earlier_one(tmp_path, monkeypatch):
    grid = Grid((2, 3, 4), (1.0, 1.0, 1.0))
    path = tmp_path / "ct.nrrd"
    save_volume(Volume(np.ones(grid.shape, np.int16), grid), path)

    def broken_writer(image, name, useCompression=False):
        open(name, "wb").write(b"NRRD0004\n")
        raise RuntimeError("ITK ERROR: disk full")

    monkeypatch.setattr(sitk, "WriteImage", broken_writer)
    with pytest.raises(FormatError, match="ct.nrrd: cannot be written"):
        save_volume(Volume(np.zeros(grid.shape, np.int16), grid), path)
    monkeypatch.undo()
    np.testing.assert_array_equal(load_volume(path).array, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["ct.nrrd"]
