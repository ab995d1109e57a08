"""`delineo` (no command) and `delineo open PATH` open the window; DELINEO_SCREENSHOT saves it."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtGui import QImage
from support.data import data_path
from support.dicom_factory import ct_phantom, write_ct_series

pytestmark = pytest.mark.gui

DELINEO = Path(sys.executable).parent / "delineo"


def _run(args, tmp_path, screenshot, timeout=300):
    env = {
        **os.environ,
        "DELINEO_SCREENSHOT": str(screenshot),
        "DELINEO_CONFIG_DIR": str(tmp_path / "config"),
    }
    return subprocess.run([str(DELINEO), *args], capture_output=True, text=True, timeout=timeout, env=env)


def _pixels(path: Path) -> np.ndarray:
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    buffer = image.constBits()
    buffer.setsize(image.sizeInBytes())
    rows = np.frombuffer(buffer, np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, : image.width() * 3].reshape(image.height(), image.width(), 3).copy()


def _has_colour(pixels: np.ndarray, colour, tolerance=12) -> bool:
    return bool((np.abs(pixels.astype(int) - np.asarray(colour)).max(axis=-1) <= tolerance).sum() > 50)


def test_delineo_without_command_shows_the_sample_patient(qapp, tmp_path):
    shot = tmp_path / "main.png"
    result = _run([], tmp_path, shot)
    assert result.returncode == 0, result.stderr
    pixels = _pixels(shot)
    assert pixels.shape[0] > 500 and pixels.shape[1] > 800
    # The sample's structures are drawn: External green, lungs blue, GTV/heart red.
    from planning.tg263 import style_for

    for name in ("External", "Lung_R", "GTV"):
        assert _has_colour(pixels, style_for(name)[0]), name


def test_delineo_open_loads_the_series_with_its_rtstruct(qapp, tmp_path):
    shot = tmp_path / "open.png"
    result = _run(["open", str(data_path("dicom", "ibsi1-lung-ct"))], tmp_path, shot)
    assert result.returncode == 0, result.stderr
    pixels = _pixels(shot)
    assert pixels.shape[1] > 800
    # GTV-1's colour as stored in the RTSTRUCT (drawn in the views).
    import pydicom

    rs = pydicom.dcmread(data_path("dicom", "ibsi1-lung-ct", "RS.dcm"), stop_before_pixels=True)
    colour = [int(c) for c in rs.ROIContourSequence[0].ROIDisplayColor]
    assert _has_colour(pixels, colour)


def test_a_folder_of_two_series_is_shot_once_they_are_listed(qapp, tmp_path):
    """A folder of several series opens none (the user chooses one): screenshot mode waited
    for a case that never came, its whole 600 s. It now shoots the listing and says why nothing
    is open; a folder without images ends at once with status 1."""
    folder = tmp_path / "two"
    write_ct_series(folder / "a", ct_phantom((4, 16, 20)), series_description="first")
    write_ct_series(folder / "b", ct_phantom((4, 16, 20)), series_description="second")
    shot = tmp_path / "two.png"
    result = _run(["open", str(folder)], tmp_path, shot, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "2 series found, none opened" in result.stderr
    assert QImage(str(shot)).width() > 800
    (tmp_path / "empty").mkdir()
    result = _run(["open", str(tmp_path / "empty")], tmp_path, tmp_path / "empty.png", timeout=120)
    assert result.returncode == 1 and "no image series found" in result.stderr


def test_help_version_and_errors_still_work(tmp_path):
    help_text = subprocess.run([str(DELINEO), "--help"], capture_output=True, text=True, timeout=60)
    assert help_text.returncode == 0 and "open" in help_text.stdout and "info" in help_text.stdout
    version = subprocess.run([str(DELINEO), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("delineo ")
    missing = subprocess.run(
        [str(DELINEO), "open", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 1 and "no such file or folder" in missing.stderr
