"""The command line shows each warning once, and log lines never run into a progress bar."""

from __future__ import annotations

import logging

import numpy as np
import pydicom
from pydicom.encaps import encapsulate
from support.dicom_factory import ct_phantom, write_ct_series

from planning.geometry import Grid
from planning.imageio import save_volume
from planning.volume import Volume
from workstation.cli import main, terminal
from workstation.cli.progress import ProgressBar


def test_a_warning_logged_and_returned_is_shown_once(tmp_path, capsys):
    grid = Grid((2, 3, 4), (1.0, 1.0, 1.0))
    array = np.zeros(grid.shape, np.float32)
    array[0, 0, 0] = np.nan
    save_volume(Volume(array, grid), tmp_path / "odd.nrrd")
    assert main(["convert", str(tmp_path / "odd.nrrd"), str(tmp_path / "out.nii.gz")]) == 0
    shown = capsys.readouterr()
    assert (shown.out + shown.err).count("1 voxels are not numbers") == 1
    terminal.warn("something only returned")
    assert capsys.readouterr().out == "warning: something only returned\n"


def test_a_log_record_starts_below_a_progress_bar(capsys):
    bar = ProgressBar()
    terminal.install(verbose=False)
    bar("Loading", 1, 2)
    logging.getLogger("planning.test").warning("a problem")
    bar("Loading", 2, 2)
    bar.close()
    lines = capsys.readouterr().err.split("\n")
    assert lines[0].endswith(" 50.0%") and lines[1] == "WARNING: a problem"
    assert lines[2].endswith("100.0%") and lines[3] == ""


def test_undecodable_pixel_data_is_one_error_line_without_tracebacks(tmp_path, capsys):
    for path in write_ct_series(tmp_path / "ct", ct_phantom((2, 8, 8))):
        dataset = pydicom.dcmread(path)
        dataset.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
        dataset.PixelData = encapsulate([b"not a JPEG 2000 codestream"])
        dataset.save_as(path, enforce_file_format=True)
    assert main(["convert", str(tmp_path / "ct"), str(tmp_path / "out.nii.gz")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "ERROR:" not in err
    assert "cannot decode JPEG 2000 Image Compression (Lossless Only) pixel data" in err
