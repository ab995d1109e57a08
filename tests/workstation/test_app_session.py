"""Sessions, autosave and crash recovery with the real window (a killed process included)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from support.app import close_window, make_window, show_sample, wait_idle
from support.dicom_factory import write_dual_echo_mr

from workstation.app.autosave import recoverable

pytestmark = pytest.mark.gui


def _paint(case, name="GTV"):
    k = int(case.structures[name].mask.offset[0]) + 2
    box = (slice(k, k + 1), slice(10, 20), slice(10, 20))
    case.edit_region("Paint test", name, box, np.ones((1, 10, 10), bool))
    return box


@pytest.mark.parametrize("kind", ["archive", "folder"])
def test_session_saves_and_reopens_everything(window, qtbot, tmp_path, kind):
    case = show_sample(window)
    box = _paint(case)
    case.set_properties("Heart", color=(1, 2, 3))
    case.set_properties("GTV", recipe={"op": "expand", "source": "Heart", "margins": 5.0})
    window.state.set_cursor([20, 30, 40])
    window.set_preset("Lung")
    window.views["axial"].set_zoom(2.0)
    window.grid.maximise("sagittal")
    window.table.select("Heart")
    window.tools.activate("brush")
    expected = {s.name: (s.mask.full(), s.color, s.roi_type, s.recipe) for s in case.structures}
    path = tmp_path / ("case.delineo" if kind == "archive" else "case-session")
    window.saving.save_session_to(path)
    wait_idle(qtbot, window)
    assert path.exists() and not window.dirty

    other = make_window(qtbot, tmp_path / "other.ini", tmp_path / "other-data")
    other.opening.open_path(path)
    wait_idle(qtbot, other)
    restored = other.case
    assert restored is not None and restored.structures.names() == list(expected)
    for structure in restored.structures:
        full, color, roi_type, recipe = expected[structure.name]
        assert np.array_equal(structure.mask.full(), full)
        assert (structure.color, structure.roi_type, structure.recipe) == (color, roi_type, recipe)
    assert np.allclose(other.state.cursor, [20, 30, 40])
    assert other.menus.preset_box.currentText() == "Lung"
    assert other.views["axial"].zoom == pytest.approx(2.0)
    assert other.grid.maximised == "sagittal"
    assert other.table.active_name() == "Heart"
    assert other.tools.active.key == "brush" and other.menus.tool_actions["brush"].isChecked()
    # The history came back too: undo goes on where the first window stopped.
    assert other.case.history.undo_text == "Edit GTV"
    other.undo()
    other.undo()
    other.undo()
    assert not other.case.structures["GTV"].mask.region(box).any()
    close_window(qtbot, other)


def test_default_autosave_interval_loses_at_most_a_minute(qtbot, tmp_path):
    from PyQt6.QtCore import QSettings

    from workstation.app.main_window import MainWindow

    window = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), tmp_path)
    qtbot.addWidget(window)
    assert window.autosaver.timer.interval() <= 60_000
    assert window.autosaver.timer.isActive()


CRASHING_SESSION = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    from PyQt6.QtCore import QSettings, QTimer
    from PyQt6.QtWidgets import QApplication
    app = QApplication([])
    from planning.sample_patient import make_sample_patient
    from planning.session import ImageReference
    from workstation.app.case import Case
    from workstation.app.main_window import MainWindow
    ini, data = sys.argv[1], sys.argv[2]
    window = MainWindow(QSettings(ini, QSettings.Format.IniFormat), Path(data), autosave_interval_s=0.3)
    window.show()
    sample = make_sample_patient((40, 128, 128))
    case = Case(sample.volume, sample.structures, ImageReference.for_volume(sample.volume, "sample"))
    window.set_case(case)
    case.edit_region("Paint before the crash", "GTV", (slice(20, 21), slice(10, 20), slice(10, 20)),
                     np.ones((1, 10, 10), bool))
    case.new_structure("Drawn_before_crash")
    def report():
        if window.autosaver._saved_generation is not None:
            print("AUTOSAVED", window.autosaver.path, flush=True)
        else:
            QTimer.singleShot(100, report)
    QTimer.singleShot(100, report)
    app.exec()
    """
)


def test_killed_process_is_recovered_from_autosave(qtbot, tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "xcb")}
    process = subprocess.Popen(
        [sys.executable, "-c", CRASHING_SESSION, str(tmp_path / "crash.ini"), str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("AUTOSAVED"), process.stderr.read() if process.poll() is not None else line
    finally:
        process.kill()  # SIGKILL: no clean-up code runs, like a crash
        process.wait(timeout=30)
    found = recoverable(data)
    assert len(found) == 1
    window = make_window(qtbot, tmp_path / "next.ini", data)
    assert window.opening.offer_recovery(automatic=True)
    wait_idle(qtbot, window)
    case = window.case
    assert case is not None and "Drawn_before_crash" in case.structures
    assert case.structures["GTV"].mask.region((slice(20, 21), slice(10, 20), slice(10, 20))).all()
    assert window.dirty  # recovered work still has to be saved
    assert recoverable(data) == []  # the autosave was consumed
    window.undo()
    window.undo()
    assert "Drawn_before_crash" not in case.structures
    assert not case.structures["GTV"].mask.region((slice(20, 21), slice(10, 20), slice(10, 20))).all()
    close_window(qtbot, window)


def test_clean_exit_with_unsaved_work_offers_it_next_time(qtbot, tmp_path):
    data = tmp_path / "data"
    first = make_window(qtbot, tmp_path / "a.ini", data)
    case = show_sample(first)
    _paint(case)
    first.close()
    found = recoverable(data)
    assert len(found) == 1 and "unsaved at exit" in found[0].description
    saved = make_window(qtbot, tmp_path / "b.ini", tmp_path / "data2")
    show_sample(saved)
    saved.close()
    assert recoverable(tmp_path / "data2") == []  # nothing changed: nothing kept


def test_an_autosave_whose_owner_record_is_damaged_is_still_offered(qtbot, tmp_path):
    """An empty or truncated owner.json (written in place by earlier versions: a power cut can
    leave it so) hid the autosave for good. Its process id is then read from the folder name:
    a live process's autosave is still not offered."""
    import os

    data = tmp_path / "data"
    first = make_window(qtbot, tmp_path / "a.ini", data)
    _paint(show_sample(first))
    first.close()
    [kept] = recoverable(data)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    stamp = kept.folder.name.split("-", 1)[1]
    crashed = kept.folder.rename(kept.folder.with_name(f"{int(ended.stdout)}-{stamp}"))
    (crashed / "owner.json").write_text('{"pid": 0, "descr')  # truncated
    [entry] = recoverable(data)
    assert entry.folder == crashed and entry.crashed and "damaged" in entry.description
    assert "GTV" in entry.load().structures.names()
    crashed.rename(crashed.with_name(f"{os.getppid()}-{stamp}"))
    assert recoverable(data) == []  # the parent process is alive: its autosave is in use


def test_first_case_is_the_sample_then_the_most_recent_data(qtbot, tmp_path):
    from support.data import data_path

    from planning.sample_patient import SAMPLE_PATIENT_ID
    from workstation.app.launch import open_first_case

    first = make_window(qtbot, tmp_path / "s.ini", tmp_path / "data")
    open_first_case(first, [], interactive=False)
    wait_idle(qtbot, first)
    assert first.case.volume.identity.patient_id == SAMPLE_PATIENT_ID
    first.opening.open_path(data_path("dicom", "ibsi1-lung-ct"))
    wait_idle(qtbot, first)
    close_window(qtbot, first)
    first.close()
    second = make_window(qtbot, tmp_path / "s.ini", tmp_path / "data")
    open_first_case(second, [], interactive=False)
    wait_idle(qtbot, second)
    assert second.case.volume.grid.shape == (60, 201, 204)  # the most recent data, not the sample
    close_window(qtbot, second)


def test_session_of_a_nifti_image(window, qtbot, tmp_path):
    from planning.imageio import save_volume
    from planning.sample_patient import make_sample_patient

    image = tmp_path / "ct.nii.gz"
    save_volume(make_sample_patient((20, 64, 64)).volume, image)
    window.opening.open_path(image)
    wait_idle(qtbot, window)
    assert window.case.reference.kind == "file" and window.case.grid.shape == (20, 64, 64)
    name = window.commands.add_structure("Drawn")
    window.case.edit_region(
        "paint", name, (slice(5, 6), slice(10, 20), slice(10, 20)), np.ones((1, 10, 10), bool)
    )
    window.saving.save_session_to(tmp_path / "nifti.delineo")
    wait_idle(qtbot, window)
    other = make_window(qtbot, tmp_path / "o.ini", tmp_path / "o")
    other.opening.open_path(tmp_path / "nifti.delineo")
    wait_idle(qtbot, other)
    assert other.case.structures[name].mask.voxel_count == 100
    close_window(qtbot, other)


def test_a_reopened_session_says_so_lists_its_series_and_replays_no_old_import_warning(
    window, qtbot, tmp_path
):
    """Reopening IBSI-1's session put its RTSTRUCT's import warning back in the status bar and the
    Messages as if new ("GTV-1: no RT ROI Interpreted Type; taken as GTV"), and left the Patients
    list empty."""
    from support.data import data_path

    window.opening.open_path(data_path("dicom", "ibsi1-lung-ct"))
    wait_idle(qtbot, window)
    imported = "GTV-1: no RT ROI Interpreted Type"
    assert imported in window.statusBar().currentMessage()
    window.saving.save_session_to(tmp_path / "lung.delineo")
    wait_idle(qtbot, window)
    other = make_window(qtbot, tmp_path / "other.ini", tmp_path / "other")
    other.opening.open_path(tmp_path / "lung.delineo")
    wait_idle(qtbot, other)
    other.grab().save(str(tmp_path / "reopened.png"))
    said = other.statusBar().currentMessage()
    assert said.startswith("Reopened session lung.delineo, saved ") and imported not in said
    assert other.messages.button.text() == "Messages 1"  # a note, no warning to count
    assert [m for m in other.messages.messages() if imported in m][0].startswith("When imported: ")
    assert [item.text(0) for item in other.browser.series_items()] == [
        item.text(0) for item in window.browser.series_items()
    ]
    assert other.browser.series_items()
    close_window(qtbot, other)


def test_opening_another_case_asks_before_dropping_unsaved_changes(window, qtbot, tmp_path):
    # the question comes once the other case has loaded, so edits made meanwhile count too
    from planning.sample_patient import make_sample_patient
    from planning.session import load_session

    case = show_sample(window)
    _paint(case)
    other = make_sample_patient((30, 96, 96))
    asked = []

    def answer(reply):
        window.ask_unsaved_changes = lambda description: asked.append(description) or reply

    answer("cancel")
    window.opening._show_volume(other.volume, "sample", "", [other.structures])
    assert window.case is case and window.dirty and len(asked) == 1  # kept, edits and all
    window.session_path = tmp_path / "kept.delineo"
    answer("save")
    window.opening._show_volume(other.volume, "sample", "", [other.structures])
    assert window.case is not case and not window.dirty and len(asked) == 2
    saved = load_session(tmp_path / "kept.delineo")
    assert {s.name for s in saved.structures} == set(case.structures.names())
    assert saved.structures["GTV"].mask.voxel_count == case.structures["GTV"].mask.voxel_count
    _paint(window.case)
    answer("discard")
    window.opening._show_volume(other.volume, "sample", "", [other.structures])
    assert len(asked) == 3 and not window.dirty
    # nothing unsaved: no question
    window.opening._show_volume(other.volume, "sample", "", [other.structures])
    assert len(asked) == 3


def _disk_full(monkeypatch, folder):
    """Session archives written under `folder` fail as on a full disk."""
    import errno

    import planning.session

    write = planning.session.write_archive

    def write_unless_full(path, files):
        if path.is_relative_to(folder):
            raise OSError(errno.ENOSPC, "No space left on device")
        write(path, files)

    monkeypatch.setattr(planning.session, "write_archive", write_unless_full)


def _close_with_unsaved_work(qtbot, tmp_path, data):
    """A window closed normally with unsaved work (kept in an autosave for the next start)."""
    first = make_window(qtbot, tmp_path / "first.ini", data)
    show_sample(first)
    first.commands.add_structure("Unsaved_work")
    first.close()
    [entry] = recoverable(data)
    return entry


def test_cancelling_a_session_open_keeps_save_on_the_open_case_file(window, qtbot, tmp_path):
    """Answering Cancel to "unsaved changes?" while opening session B kept the open case, but
    pointed Save at B: the next Ctrl+S overwrote B with the open case."""
    from planning.sample_patient import make_sample_patient
    from planning.session import load_session

    show_sample(window)
    window.commands.add_structure("Only_in_B")
    window.saving.save_session_to(tmp_path / "B.delineo")
    wait_idle(qtbot, window)
    other = make_sample_patient((30, 96, 96))
    window.opening._show_volume(other.volume, "sample", "", [other.structures])
    window.commands.add_structure("Only_in_A")
    window.ask_unsaved_changes = lambda description: "cancel"
    window.opening.open_session(tmp_path / "B.delineo")
    wait_idle(qtbot, window)
    assert "Only_in_A" in window.case.structures and window.session_path is None
    window.session_path = tmp_path / "A.delineo"  # what Ctrl+S then asks for
    window.saving.save_session()
    wait_idle(qtbot, window)
    assert "Only_in_B" in load_session(tmp_path / "B.delineo").structures


def test_closing_when_the_unsaved_work_cannot_be_kept_asks_first(window, qtbot, tmp_path, monkeypatch):
    """On a full disk the exit autosave failed with an exception and the window closed anyway,
    losing the unsaved work without a word."""
    from PyQt6.QtWidgets import QFileDialog

    from planning.session import load_session

    show_sample(window)
    window.commands.add_structure("Unsaved_work")
    _disk_full(monkeypatch, tmp_path / "data")
    asked = []
    window.ask_close_without_autosave = lambda reason: asked.append(reason) or "cancel"
    assert not window.close() and window.isVisible()
    assert "No space left on device" in asked[0]
    assert any("could not be kept" in m for m in window.messages.messages())
    elsewhere = tmp_path / "elsewhere.delineo"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args: (str(elsewhere), ""))
    window.ask_close_without_autosave = lambda reason: "save"
    assert window.close() and not window.isVisible()
    assert "Unsaved_work" in load_session(elsewhere).structures


def test_failing_autosaves_are_said_once_until_one_works(window, qtbot, tmp_path, monkeypatch):
    """Autosaves failing (a full disk) were only logged: the user went on working unprotected."""
    show_sample(window)

    def autosave_after_an_edit():
        window.commands.add_structure()
        window.statusBar().clearMessage()
        window.autosaver.save_now()
        wait_idle(qtbot, window)
        return window.statusBar().currentMessage()

    _disk_full(monkeypatch, tmp_path / "data")
    assert autosave_after_an_edit().startswith("Autosave failed: [Errno 28] No space left on device")
    assert autosave_after_an_edit() == ""  # the same run of failures: said once
    [said] = [m for m in window.messages.messages() if m.startswith("Autosave failed")]
    monkeypatch.undo()
    autosave_after_an_edit()
    assert window.autosaver.path.exists()
    _disk_full(monkeypatch, tmp_path / "data")
    assert autosave_after_an_edit().startswith("Autosave failed")  # a new run of failures
    monkeypatch.undo()


def test_closing_right_after_a_save_waits_for_it(window, qtbot, tmp_path):
    """Closing the window at once after Ctrl+S cancelled the save: no session file was written."""
    from planning.session import load_session

    case = show_sample(window, (80, 256, 256))
    _paint(case)
    target = tmp_path / "mywork.delineo"
    window.saving.save_session_to(target)
    assert not window.close()  # waits for the save, shown in the progress panel
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=60_000)
    assert load_session(target).structures["GTV"].mask.voxel_count == case.structures["GTV"].mask.voxel_count
    assert recoverable(tmp_path / "data") == []  # saved: nothing left to recover


def test_recovered_work_is_autosaved_at_once(qtbot, tmp_path, monkeypatch):
    """Recovering deleted the old autosave at once, and the recovered work was in no autosave
    until the next one (30 s later): a crash meanwhile lost it for good."""
    data = tmp_path / "data"
    entry = _close_with_unsaved_work(qtbot, tmp_path, data)
    window = make_window(qtbot, tmp_path / "next.ini", data)
    _disk_full(monkeypatch, data)
    assert window.opening.offer_recovery(automatic=True)
    wait_idle(qtbot, window)
    assert "Unsaved_work" in window.case.structures and window.dirty
    assert entry.path.exists()  # the recovered work is in no other autosave yet: kept
    monkeypatch.undo()
    window.autosaver.save_now()
    wait_idle(qtbot, window)
    assert window.autosaver.path.exists() and not entry.folder.exists()
    close_window(qtbot, window)


def test_cancelling_a_recovery_keeps_the_autosave(qtbot, tmp_path):
    """Answering Cancel to "unsaved changes?" when recovering kept the open case but deleted the
    autosave it declined to replace it with."""
    data = tmp_path / "data"
    entry = _close_with_unsaved_work(qtbot, tmp_path, data)
    window = make_window(qtbot, tmp_path / "next.ini", data)
    case = show_sample(window)
    window.commands.add_structure("Current_work")
    window.ask_unsaved_changes = lambda description: "cancel"
    assert window.opening.offer_recovery(automatic=True)
    wait_idle(qtbot, window)
    assert window.case is case and entry.path.exists()
    assert recoverable(data) == [entry]
    close_window(qtbot, window)


def test_a_session_whose_dose_moved_says_so(window, qtbot, tmp_path):
    """A session whose dose file had moved reopened without the dose, without a word."""
    import shutil

    from support.data import data_path

    folder = tmp_path / "breast"
    shutil.copytree(data_path("dicom", "dicompyler-breast"), folder)
    window.opening.open_path(folder)
    wait_idle(qtbot, window)
    assert window.dose_layer is not None
    window.saving.save_session_to(tmp_path / "breast.delineo")
    wait_idle(qtbot, window)
    (folder / "rtdose.dcm").rename(tmp_path / "rtdose.dcm")
    other = make_window(qtbot, tmp_path / "other.ini", tmp_path / "other")
    other.opening.open_path(tmp_path / "breast.delineo")
    wait_idle(qtbot, other)
    assert other.case is not None and other.dose_layer is None
    said = f"The session's dose {folder / 'rtdose.dcm'} is no longer there"
    assert other.statusBar().currentMessage().startswith(said)
    assert any(m.startswith(said) for m in other.messages.messages())
    close_window(qtbot, other)


def test_a_session_whose_images_moved_opens_from_where_the_user_says_they_are(window, qtbot, tmp_path):
    """It could not be opened at all ("the session's image … is no longer there"), the contours
    drawn in it out of reach. Another folder without the series is refused, naming the series."""
    import shutil

    from support.data import data_path

    folder = tmp_path / "lung"
    shutil.copytree(data_path("dicom", "ibsi1-lung-ct"), folder)
    window.opening.open_path(folder)
    wait_idle(qtbot, window)
    box = _paint(window.case, "GTV-1")
    window.saving.save_session_to(tmp_path / "lung.delineo")
    wait_idle(qtbot, window)
    moved = folder.rename(tmp_path / "archive")
    other = make_window(qtbot, tmp_path / "other.ini", tmp_path / "other")
    answers = [data_path("dicom", "rt-utils", "mock_data"), moved]  # another series, then the right one
    other.opening.ask_where_images_are = lambda reference: answers.pop(0)
    other.opening.open_path(tmp_path / "lung.delineo")
    wait_idle(qtbot, other)
    assert other.case is None
    assert any("is not among the scanned" in m for m in other.messages.messages())
    other.opening.open_path(tmp_path / "lung.delineo")
    wait_idle(qtbot, other)
    assert other.case is not None and other.case.structures["GTV-1"].mask.region(box).all()
    assert other.case.reference.path == str(moved.resolve())  # the next save keeps the new place
    (tmp_path / "archive").rename(tmp_path / "gone")
    third = make_window(qtbot, tmp_path / "third.ini", tmp_path / "third")
    third.opening.ask_where_images_are = lambda reference: None
    third.opening.open_path(tmp_path / "lung.delineo")
    wait_idle(qtbot, third)
    assert third.case is None and "no longer there" in third.messages.messages()[-1]
    close_window(qtbot, other)
    close_window(qtbot, third)


def test_the_recovery_question_says_why_there_is_work_to_recover(qtbot, tmp_path):
    """After a normal close that kept unsaved work, the question said Delineo had not closed normally."""
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication, QMessageBox

    data = tmp_path / "data"
    entry = _close_with_unsaved_work(qtbot, tmp_path, data)
    window = make_window(qtbot, tmp_path / "next.ini", data)
    asked = []

    def answer_no():
        box = QApplication.activeModalWidget()
        asked.append(box.text())
        box.button(QMessageBox.StandardButton.Discard).click()

    QTimer.singleShot(0, answer_no)
    assert not window.opening.offer_recovery()
    assert "closed with unsaved changes" in asked[0] and "did not close normally" not in asked[0]
    assert not entry.folder.exists()


def _contour_echo_2(window, qtbot, folder):
    """Open a synthetic dual-echo MR in `folder`, load its T2 echo and paint a GTV on it; the
    box painted."""
    write_dual_echo_mr(folder)
    window.opening.open_path(folder)
    wait_idle(qtbot, window)
    scan = window.browser.scan
    window.opening.load_series(scan, next(s for s in scan.series if s.split_note.endswith("echo 2")))
    wait_idle(qtbot, window)
    assert window.case.volume.array.min() == 200  # echo 2's values
    window.commands.add_structure("GTV")
    return _paint(window.case)


def _save_and_reopen(window, qtbot, tmp_path):
    """Save the window's session and open it in a new window (returned)."""
    path = tmp_path / "case.delineo"
    window.saving.save_session_to(path)
    wait_idle(qtbot, window)
    other = make_window(qtbot, tmp_path / "other.ini", tmp_path / "other-data")
    other.opening.open_path(path)
    wait_idle(qtbot, other)
    return other


def test_a_session_on_one_echo_of_a_dual_echo_mr_reopens_on_that_echo(window, qtbot, tmp_path):
    """Both echoes of a dual-echo MR share one SeriesInstanceUID and load as two series. A session
    contoured on the T2 echo kept only that UID, and reopening it (or recovering its autosave)
    failed with 'series … is split into several volumes': the contours could not be had back.
    The session now names the loadable (echo 2) and reopens on it."""
    box = _contour_echo_2(window, qtbot, tmp_path / "mr")
    other = _save_and_reopen(window, qtbot, tmp_path)
    assert not other.messages.messages()
    assert other.case is not None and other.case.volume.array.min() == 200  # echo 2, not echo 1
    assert other.case.structures["GTV"].mask.region(box).all()
    close_window(qtbot, other)


def test_a_session_naming_only_a_split_series_reopens_on_a_part_of_its_size_and_says_so(
    window, qtbot, tmp_path
):
    """Sessions saved before the parts of a split series had keys of their own name the series
    alone, and reopening them failed ('series … is split into several volumes'): their contours
    could not be had back. Now the part of the session's size opens (the first of two echoes,
    which share it) with a warning saying to check it; the contours come back."""
    import dataclasses

    box = _contour_echo_2(window, qtbot, tmp_path / "mr")
    uid = window.case.volume.identity.series_instance_uid
    window.case.reference = dataclasses.replace(window.case.reference, series_uid=uid)  # as saved then
    other = _save_and_reopen(window, qtbot, tmp_path)
    assert other.case is not None and other.case.volume.array.min() == 100  # echo 1, the first
    assert other.case.structures["GTV"].mask.region(box).all()
    assert any("opened on the first" in text for text in other.messages.messages())
    close_window(qtbot, other)
