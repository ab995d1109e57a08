"""Too little memory, or a header claiming too much, is a clear error, never a traceback."""

import numpy as np
import pydicom
import pytest
from support.dicom_factory import ct_phantom, write_ct_series

import planning.dicom.load as load
from planning.errors import DicomReadError, FormatError, SeriesError
from planning.imageio import load_volume, save_volume
from planning.volume import Volume
from workstation.cli import main


@pytest.fixture
def series(tmp_path):
    write_ct_series(tmp_path / "ct", ct_phantom((4, 16, 20)))
    return tmp_path / "ct"


def test_a_header_claiming_huge_images_is_refused_before_allocating(series, monkeypatch):
    """Rows = Columns = 65535 over 640 bytes of pixels: a 32 GiB MemoryError came first."""
    for path in series.iterdir():
        dataset = pydicom.dcmread(path)
        dataset.Rows = dataset.Columns = 65535
        dataset.save_as(path)
    monkeypatch.setattr(load, "_read_planes", pytest.fail)  # nothing may be read or allocated
    with pytest.raises(DicomReadError, match=r"CT000\d.dcm: pixel data truncated, 640 of 8589672450 bytes"):
        load_volume(series)


def test_too_little_memory_names_the_series_and_the_size(series, monkeypatch, capsys, tmp_path):
    def out_of_memory(*args):
        raise MemoryError

    monkeypatch.setattr(load, "_read_planes", out_of_memory)
    with pytest.raises(
        SeriesError, match=r"not enough memory to load series .*20×16×4 int16 voxels need 0\.00 GiB"
    ):
        load_volume(series)
    assert main(["convert", str(series), str(tmp_path / "out.nii.gz")]) == 1
    err = capsys.readouterr().err
    assert "delineo: error: not enough memory to load series" in err and "Traceback" not in err


def test_too_little_memory_to_write_names_the_file(tmp_path, monkeypatch):
    volume = Volume.__new__(Volume)
    volume.array = np.zeros((2, 3, 4), np.int16)

    def out_of_memory(self):
        raise RuntimeError("sitk::ERROR: Exception thrown\nFailed to allocate memory for image.")

    monkeypatch.setattr(Volume, "to_sitk", out_of_memory)
    with pytest.raises(
        FormatError, match=r"out.nrrd: cannot be written, not enough memory .*allocate memory"
    ):
        save_volume(volume, tmp_path / "out.nrrd")
