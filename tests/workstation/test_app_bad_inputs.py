"""Damaged files opened or imported while a case with unsaved edits is open: each is refused
naming the file and what is wrong with it (status bar and Messages), no traceback, and the open
case stays as it was: same structures, same voxels, still unsaved, undo still working."""

import re
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QApplication, QMessageBox
from support.app import drag, wait_idle, widget_point
from support.data import data_path
from support.dicom_factory import ct_phantom, write_ct_series

pytestmark = pytest.mark.gui


def _truncated_series(folder):
    paths = write_ct_series(folder / "truncated", ct_phantom((8, 40, 48)))
    data = paths[5].read_bytes()
    paths[5].write_bytes(data[: len(data) // 2])
    return folder / "truncated", ["CT0005.dcm", "pixel data truncated"]


def _text_files(folder):
    notes = folder / "notes"
    notes.mkdir()
    for k in range(3):
        (notes / f"note{k}.txt").write_text("Patient notes, not images\n")
    return notes, ["notes: no CT/MR image series found", "note0.txt: not a DICOM file"]


def _rtstruct_of_another_frame(folder):
    rtstruct = pydicom.dcmread(data_path("dicom", "ibsi1-lung-ct", "RS.dcm"))
    other = generate_uid()
    rtstruct.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = other
    for roi in rtstruct.StructureSetROISequence:
        roi.ReferencedFrameOfReferenceUID = other
    rtstruct.save_as(folder / "RS_other.dcm")
    return folder / "RS_other.dcm", ["RS_other.dcm", "frame of reference"]


def _dose_without_scaling(folder):
    dose = pydicom.dcmread(data_path("dicom", "dicompyler-breast", "rtdose.dcm"))
    del dose.DoseGridScaling
    dose.save_as(folder / "unscaled.dcm")
    return folder / "unscaled.dcm", ["unscaled.dcm", "no DoseGridScaling"]


def _dose_with_more_frames_than_pixels(folder):
    dose = pydicom.dcmread(data_path("dicom", "dicompyler-breast", "rtdose.dcm"))
    dose.NumberOfFrames = int(dose.NumberOfFrames) + 3
    dose.save_as(folder / "frames.dcm")
    return folder / "frames.dcm", ["frames.dcm", "NumberOfFrames 101"]


def _empty_nifti(folder):
    (folder / "empty.nii.gz").write_bytes(b"")
    return folder / "empty.nii.gz", ["empty.nii.gz", "empty file (0 bytes)"]


def _corrupt_session(folder):
    (folder / "case.delineo").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    return folder / "case.delineo", ["case.delineo", "not a Delineo session archive"]


def _seg_of_another_frame(folder, case):
    from planning.seg import write_seg

    write_seg(case.structures, case.volume, folder / "SEG.dcm")
    seg = pydicom.dcmread(folder / "SEG.dcm")
    seg.FrameOfReferenceUID = generate_uid()
    seg.save_as(folder / "SEG.dcm")
    return folder / "SEG.dcm", ["SEG.dcm", "frame of reference"]


def _label_map_with_nan(suffix):
    def make(folder, case):
        from planning.imageio import save_volume

        labels = np.zeros(case.volume.grid.shape, np.float32)
        labels[10:20, 100:140, 100:140] = 1
        labels[15, 120, 120:124] = np.nan  # inside the structure: it would lose them unsaid
        save_volume(case.volume.with_array(labels), folder / f"damaged{suffix}")
        return folder / f"damaged{suffix}", [f"damaged{suffix}", "4 voxels are not numbers (NaN or infinite)"]

    return make


#: (what is tried, how it is built, "open": File ▸ Open or a drop; "import": File ▸ Import structures)
BAD_INPUTS = [
    ("truncated CT series", _truncated_series, "open"),
    ("folder of text files", _text_files, "open"),
    ("RTSTRUCT of another frame of reference", _rtstruct_of_another_frame, "open"),
    ("RTSTRUCT of another frame of reference", _rtstruct_of_another_frame, "import"),
    ("RTDOSE without DoseGridScaling", _dose_without_scaling, "open"),
    ("RTDOSE with more frames than pixels", _dose_with_more_frames_than_pixels, "open"),
    ("empty NIfTI", _empty_nifti, "open"),
    ("empty NIfTI", _empty_nifti, "import"),
    ("corrupt session", _corrupt_session, "open"),
    ("DICOM-SEG of another frame of reference", _seg_of_another_frame, "open"),
    ("DICOM-SEG of another frame of reference", _seg_of_another_frame, "import"),
    ("NIfTI label map with NaN", _label_map_with_nan(".nii.gz"), "import"),
    ("NRRD label map with NaN", _label_map_with_nan(".nrrd"), "import"),
]
#: Those built from the open case.
_FROM_CASE = {_seg_of_another_frame, *(make for what, make, _ in BAD_INPUTS if "label map" in what)}


def _open_case_with_a_brushed_structure(window, qtbot):
    """The IBSI lung CT with its GTV, and a new structure brushed on it (unsaved)."""
    window.opening.open_path(data_path("dicom", "ibsi1-lung-ct"))
    wait_idle(qtbot, window)
    case = window.case
    name = window.commands.add_structure("Brushed")
    brush = window.tools.tools["brush"]
    brush.set_setting("radius_mm", 5.0)
    brush.set_setting("hu_limit", False)
    window.tools.activate("brush")
    view = window.views["axial"]
    k = view.slice_index
    drag(view, [widget_point(view, (k, 60, 60)), widget_point(view, (k, 60, 120))])
    assert case.structures[name].mask.voxel_count > 0 and window.dirty
    return case, name


def _said(window):
    return window.statusBar().currentMessage(), window.messages.messages()


@pytest.mark.parametrize(
    "make, route",
    [(make, route) for _, make, route in BAD_INPUTS],
    ids=[f"{what}-{route}" for what, _, route in BAD_INPUTS],
)
def test_a_damaged_input_is_refused_naming_it_and_the_open_case_keeps_its_edits(
    window, qtbot, tmp_path, make, route
):
    case, brushed = _open_case_with_a_brushed_structure(window, qtbot)
    before = {s.name: s.mask.full() for s in case.structures}
    steps = len(case.history.commands)
    listing = window.browser.scan
    assert listing is not None and listing.series
    folder = tmp_path / "inputs"
    folder.mkdir()
    path, problem = make(folder, case) if make in _FROM_CASE else make(folder)
    asked = []
    window.ask_unsaved_changes = lambda about: asked.append(about) or "cancel"

    (window.opening.import_structures if route == "import" else window.opening.open_path)(path)
    wait_idle(qtbot, window)
    QApplication.processEvents()

    assert not asked, "asked whether to drop the open case's edits for a file that cannot be opened"
    assert window.case is case and window.dirty and window.dose_layer is None
    assert case.structures.names() == list(before)
    for structure in case.structures:
        assert np.array_equal(structure.mask.full(), before[structure.name]), structure.name
    assert len(case.history.commands) == steps
    assert window.browser.scan is listing, "the Patients panel no longer lists the open case's series"
    shown = window.browser.topLevelItem(0).child(0).child(0).data(0, Qt.ItemDataRole.UserRole)
    assert shown is listing.series[0]
    status, messages = _said(window)
    said = [m for m in messages if problem[0] in m]
    assert said, f"no message names {problem[0]}: {messages}"
    for words in problem:
        assert words in status, f"status bar: {status!r} lacks {words!r}"
        assert any(words in m for m in said), f"Messages: {said} lack {words!r}"
    assert not any(re.search(r"\b\w+(Error|Exception): |Traceback|This is a bug", m) for m in messages)
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert not any("Traceback" in b.text() + b.detailedText() for b in boxes)
    window.undo()  # the stroke
    assert not case.structures[brushed].mask.voxel_count
    window.redo()
    assert np.array_equal(case.structures[brushed].mask.full(), before[brushed])
    shutil.rmtree(folder)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_a_float_label_map_of_whole_numbers_is_imported_saying_so(window, qtbot, tmp_path, suffix):
    """The rule `delineo compare` and `delineo mesh` apply: read, with a warning naming the file."""
    from planning.imageio import save_volume

    window.opening.open_path(data_path("dicom", "ibsi1-lung-ct"))
    wait_idle(qtbot, window)
    case = window.case
    labels = np.zeros(case.volume.grid.shape, np.float32)
    labels[10:20, 100:140, 100:140] = 3
    save_volume(case.volume.with_array(labels), tmp_path / f"floats{suffix}")

    window.opening.import_structures(tmp_path / f"floats{suffix}")
    wait_idle(qtbot, window)

    assert case.structures["Label_3"].mask.voxel_count == 10 * 40 * 40
    status, _ = _said(window)
    assert f"floats{suffix}: labels stored as float32 values, all whole numbers" in status
