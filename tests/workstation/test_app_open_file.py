"""An image file (NIfTI, NRRD, MHA) opened as the case: these formats name no modality."""

import numpy as np
import pytest
from support.app import wait_idle
from support.dicom_factory import ct_phantom

from planning.geometry import Grid
from planning.imageio import read_image_file, save_volume
from planning.volume import Volume

pytestmark = pytest.mark.gui


def _save(path, array):
    save_volume(Volume(array, Grid(array.shape, (0.9, 0.9, 2.5))), path)
    return path


def test_a_ct_file_is_known_by_its_hounsfield_units(window, qtbot, tmp_path):
    """A CT saved as NIfTI opened with no modality: the HU readout had no unit and the window
    was a custom one, not soft tissue. Its values (lowest at air's −1000, air and water present)
    now make it a CT; the browser names the open file."""
    path = _save(tmp_path / "hn_ct.nii.gz", ct_phantom((6, 40, 48)))
    window.opening.open_path(path)
    wait_idle(qtbot, window)
    assert window.case.volume.modality == "CT"
    assert window.menus.preset_box.currentText() == "Soft tissue"
    window.browser.show_file(path, window.case.volume)
    item = window.browser.topLevelItem(0)
    details = "CT (values in Hounsfield units), 48×40×6 voxels of 0.9 × 0.9 × 2.5 mm"
    assert item.text(0) == "hn_ct.nii.gz" and item.text(1) == details
    assert item.toolTip(0) == f"{path}\n{details}"


@pytest.mark.parametrize(
    "name, values",
    [
        ("mr", lambda z, y, x: 100.0 * x),  # MR: no negative values
        ("labels", lambda z, y, x: (x // 16).astype(np.uint8)),  # a label map
        ("cropped_ct", lambda z, y, x: -100 + 2.0 * x),  # HU-like, but neither air nor its floor
        ("shifted", lambda z, y, x: np.where(x < 24, -2000, 0).astype(np.int16)),  # no air
    ],
)
def test_other_images_keep_no_modality(tmp_path, name, values):
    path = _save(tmp_path / f"{name}.nrrd", values(*np.indices((4, 32, 48))))
    assert read_image_file(path).modality == ""
