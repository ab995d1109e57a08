"""The Messages panel keeps every warning and error of the session, from any thread."""

import copy
import threading

import numpy as np
import pydicom
import pytest
from support.app import wait_idle
from support.data import data_path

pytestmark = pytest.mark.gui


def test_loading_warnings_all_reach_the_panel(window, qtbot, tmp_path):
    """A series without pixel spacing, and an RTSTRUCT with two damaged contours: the status bar
    shows one message at a time, the panel keeps the three."""
    images = data_path("dicom", "ibsi1-lung-ct", "image")
    folder = tmp_path / "patient"
    folder.mkdir()
    for path in images.glob("DCM_IMG_*.dcm"):
        dataset = pydicom.dcmread(path)
        del dataset.PixelSpacing
        dataset.save_as(folder / path.name)
    rtstruct = pydicom.dcmread(data_path("dicom", "ibsi1-lung-ct", "RS.dcm"))
    damaged = copy.deepcopy(rtstruct)
    contours = damaged.ROIContourSequence[0].ContourSequence
    points = np.asarray(contours[0].ContourData, float).reshape(-1, 3)
    points[0, 2] += 7.3  # not planar
    contours[0].ContourData = [f"{v:.4f}"[:16] for v in points.ravel()]
    contours[1].NumberOfContourPoints = 2  # declares another count than it holds
    damaged.save_as(folder / "RS.dcm")
    assert not window.docks.messages_dock.isVisible() and window.messages.button.isHidden()

    window.opening.open_path(folder)
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: window.messages.count() >= 3, timeout=10_000)
    shown = " | ".join(window.messages.messages())
    assert "no PixelSpacing" in shown and "1 mm pixels are assumed" in shown
    assert "lie on no image plane" in shown and "left out" in shown
    assert "NumberOfContourPoints" in shown
    assert window.messages.button.text() == f"⚠ {window.messages.count()}"
    window.messages.button.click()
    assert window.docks.messages_dock.isVisible()


def test_warnings_from_workers_and_failed_jobs_are_listed_once(window, qtbot):
    import logging

    worker = threading.Thread(target=lambda: logging.getLogger("planning.somewhere").warning("from a worker"))
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: window.messages.count() == 1, timeout=5_000)
    logging.getLogger("planning.somewhere").warning("from a worker")  # a repeat is not listed again
    logging.getLogger("planning.somewhere").info("not a warning")
    window.on_job_failed("Loading", "boom.dcm: not a DICOM file")
    qtbot.waitUntil(lambda: window.messages.count() == 2, timeout=5_000)
    assert window.messages.messages() == ["from a worker", "Loading: boom.dcm: not a DICOM file"]
    assert "Error: Loading: boom.dcm" in window.messages.item(1).text()


def test_pixel_decoder_failures_are_listed_once_in_the_loading_error(window, qtbot):
    """pydicom logs each decoder plugin's failure; the loading error already names them all."""
    import logging

    logging.getLogger("pydicom.pixels.decoders.base").error("No matching JPEG 2000 format found")
    window.on_job_failed(
        "Loading CT", "a.dcm: cannot decode JPEG 2000 (pylibjpeg: No matching JPEG 2000 format found)"
    )
    qtbot.waitUntil(lambda: window.messages.count() >= 1, timeout=5_000)
    qtbot.wait(100)
    assert window.messages.messages() == [
        "Loading CT: a.dcm: cannot decode JPEG 2000 (pylibjpeg: No matching JPEG 2000 format found)"
    ]


def test_an_unexpected_error_is_shown_and_the_work_autosaved(window, qtbot):
    from support.app import show_sample

    from workstation.app.launch import report_unexpected

    show_sample(window)
    window.commands.add_structure("Edited")  # unsaved work
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError as error:
        report_unexpected(window, ZeroDivisionError, error, error.__traceback__)
    [message] = window.messages.messages()  # once, in words (the traceback goes to the log)
    assert message.startswith("Unexpected error: ZeroDivisionError: division by zero. This is a bug")
    qtbot.waitUntil(window.autosaver.path.exists, timeout=30_000)
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=30_000)


def test_results_are_kept_but_not_counted_as_warnings(window):
    window.messages.add("INFO", "GTV ↔ Heart: 49.9 mm")
    assert window.messages.button.text() == "Messages 1"
    window.messages.add("WARNING", "a warning")
    assert window.messages.button.text() == "⚠ 1"
    assert window.messages.messages() == ["GTV ↔ Heart: 49.9 mm", "a warning"]


def test_a_warning_repeating_a_result_is_listed_and_counted(window):
    window.messages.add("INFO", "Liver: 0 mm")
    window.messages.add("WARNING", "Liver: 0 mm")
    window.messages.add("WARNING", "Liver: 0 mm")  # a repeat of the last one is not
    assert window.messages.count() == 2 and window.messages.button.text() == "⚠ 1"
