"""Auto-segmentation from the window: a worker with progress and Cancel, the GUI stays responsive."""

import time

import numpy as np
import pytest
from PyQt6.QtCore import Qt, QTimer
from support.app import show_sample, wait_idle

pytestmark = pytest.mark.gui


def run_autoseg(window, qtbot):
    """Open Auto-segmentation on the window's case, run the model it offers first (the rules) to
    the end, and return the dialog."""
    window.open_autoseg()
    dialog = window.autoseg_dialog
    dialog.run_button.click()
    wait_idle(qtbot, window)
    return dialog


def test_window_stays_responsive_and_progress_reaches_the_end(window, qtbot):
    case = show_sample(window, shape=(60, 192, 192))
    window.open_autoseg()
    dialog = window.autoseg_dialog
    stages, values = [], []
    window.jobs.progressed.connect(
        lambda job: (stages.append(job.stage), values.append(dialog.progress.value()))
    )
    gaps, last = [], [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer(interval=10)
    timer.timeout.connect(tick)
    timer.start()
    before = set(case.structures.names())
    dialog.run_button.click()
    assert not dialog.run_button.isEnabled() and dialog.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: bool(dialog.pending) or not window.jobs.busy, timeout=120_000)
    timer.stop()
    wait_idle(qtbot, window)
    assert dialog.pending, window.jobs.errors
    # The event loop kept running while the model worked (a frozen window would show long gaps).
    assert len(gaps) > 20 and max(gaps) < 0.5
    assert dialog.progress.value() == 1000 and len(set(stages)) >= 2
    added = set(case.structures.names()) - before
    assert added == set(dialog.pending)
    # One undo step removes everything the model added.
    window.undo()
    assert set(case.structures.names()) == before


def test_cancel_stops_the_model_and_adds_nothing(window, qtbot):
    case = show_sample(window, shape=(60, 192, 192))
    window.open_autoseg()
    dialog = window.autoseg_dialog
    before = case.structures.names()
    dialog.run_button.click()
    start = time.perf_counter()
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=30_000)
    assert time.perf_counter() - start < 5
    assert case.structures.names() == before and not dialog.pending
    assert dialog.stage.text() == "Cancelled." and dialog.run_button.isEnabled()
    assert not window.jobs.errors
    # It runs again after a cancel.
    dialog.run_button.click()
    wait_idle(qtbot, window)
    assert dialog.pending
    assert np.all([case.structures[n].algorithm.value == "AUTOMATIC" for n in dialog.pending])


def test_a_run_warning_is_shown_with_the_results(window, qtbot):
    case = show_sample(window, shape=(40, 128, 128))
    case.volume.array += 600  # rescaled: no air at −1000
    dialog = run_autoseg(window, qtbot)
    assert dialog.pending, window.jobs.errors
    assert "Warning: ct_rules expects a CT in Hounsfield units" in dialog.stage.text()
    assert "expects a CT in Hounsfield units" in window.statusBar().currentMessage()


def test_errors_are_reported_in_words_and_the_window_carries_on(window, qtbot, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "CT1.dcm").write_bytes(b"DICM" * 10)
    window.opening.open_path(broken)
    wait_idle(qtbot, window)
    assert window.case is None
    assert "broken: no CT/MR image series found (CT1.dcm: " in window.statusBar().currentMessage()
    window.opening.open_session(tmp_path / "missing.delineo")
    wait_idle(qtbot, window)
    assert window.jobs.errors and "missing.delineo: no such session" in window.jobs.errors[-1]
    show_sample(window)
    assert window.case is not None


def test_the_device_chosen_in_the_dialog_is_the_one_the_model_runs_on(window, qtbot, monkeypatch):
    from workstation.app import services

    asked = []
    segment = services.segment
    monkeypatch.setattr(
        services,
        "segment",
        lambda volume, model, names, device, **kw: (
            asked.append(device) or segment(volume, model, names, device, **kw)
        ),
    )
    show_sample(window, shape=(40, 128, 128))
    window.open_autoseg()
    dialog = window.autoseg_dialog
    assert [dialog.device_box.itemData(i) for i in range(dialog.device_box.count())] == [None, "cpu"]
    dialog.device_box.setCurrentIndex(1)
    dialog.run_button.click()
    wait_idle(qtbot, window)
    assert asked == ["cpu"] and dialog.pending, window.jobs.errors


def test_structures_asked_for_but_not_found_are_named(window, qtbot, monkeypatch):
    from planning.structures import Mask, Structure, StructureSet
    from workstation.app import services

    case = show_sample(window, shape=(40, 128, 128))

    def segment(volume, model, names, device, **kwargs):
        found = StructureSet(case.grid)
        found.add(Structure("External", case.structures["External"].mask.copy()))
        found.add(Structure("Lung_L", Mask(case.grid)))  # outside the field of view
        return found

    monkeypatch.setattr(services, "segment", segment)
    dialog = run_autoseg(window, qtbot)
    assert "1 structures added" in dialog.stage.text()
    assert "Not found in this image: Lung_L." in dialog.stage.text()


def test_a_run_that_finds_nothing_says_so(window, qtbot, monkeypatch):
    from planning.structures import Mask, Structure, StructureSet
    from workstation.app import services

    case = show_sample(window, shape=(40, 128, 128))

    def segment(volume, model, names, device, **kwargs):
        found = StructureSet(case.grid)
        found.add(Structure("Lung_L", Mask(case.grid)))
        return found

    monkeypatch.setattr(services, "segment", segment)
    dialog = run_autoseg(window, qtbot)
    assert dialog.stage.text() == "Nothing found: no structures added.\nNot found in this image: Lung_L."
    assert not case.history.can_undo


def test_a_result_renamed_before_it_is_rejected_is_still_removed(window, qtbot):
    case = show_sample(window, shape=(40, 128, 128))
    dialog = run_autoseg(window, qtbot)
    name = next(n for n in dialog.pending if n.startswith("Lung_R"))
    number = case.structures[name].number
    case.set_properties(name, name="Lung_R_auto")
    dialog.reject_result(number)
    assert "Lung_R_auto" not in case.structures and name not in case.structures


def test_a_model_run_on_the_wrong_body_site_says_so(window, qtbot):
    """The head-and-neck model on the (thorax) sample patient: its organs come out far smaller
    than in any training case, and the dialog says the image may show another body site, where
    the user reviews the results."""
    show_sample(window, shape=(60, 192, 192))
    window.open_autoseg()
    dialog = window.autoseg_dialog
    dialog.model_box.setCurrentIndex(dialog.model_box.findData("head_neck_openkbp"))
    dialog.run_button.click()
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=180_000)
    wait_idle(qtbot, window)
    assert not window.jobs.errors
    assert "Most organs head_neck_openkbp draws were not found or came out smaller" in dialog.stage.text()


def test_every_warning_of_a_run_is_shown(window, qtbot, monkeypatch):
    """A run may warn of several things (values not like Hounsfield units, then an organ of an
    odd volume): the dialog lists each, not only the first."""
    from workstation.app import services

    show_sample(window, shape=(60, 192, 192))
    segment = services.segment

    def warned(*args, **kwargs):
        result = segment(*args, **kwargs)
        result.warnings = [*result.warnings, "first thing to check", "Lung_L: 0.2 cc, review it."]
        return result

    monkeypatch.setattr(services, "segment", warned)
    window.open_autoseg()
    dialog = window.autoseg_dialog
    dialog.run_button.click()
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=120_000)
    wait_idle(qtbot, window)
    text = dialog.stage.text()
    assert "Warning: first thing to check" in text and "Warning: Lung_L: 0.2 cc, review it." in text


def test_results_get_colours_told_apart_from_the_case_which_keeps_its_own(window, qtbot):
    from planning.tg263 import MIN_DELTA_E, delta_e

    case = show_sample(window, shape=(40, 128, 128))
    case.structures["GTV"].color = (0, 230, 0)  # as read from a file: the rule External's green, nearly
    before = {s.name: s.color for s in case.structures}
    dialog = run_autoseg(window, qtbot)
    assert any(name.startswith("External") for name in dialog.pending)
    assert {name: case.structures[name].color for name in before} == before
    for name in dialog.pending:
        colour = case.structures[name].color
        others = [s.color for s in case.structures if s.name != name]
        assert min(delta_e(colour, other) for other in others) >= MIN_DELTA_E, name


def _colour_pixels(view, colour) -> int:
    """Pixels of exactly `colour` in the view, painted into an image (whatever the screen's depth)."""
    from PyQt6.QtGui import QColor, QImage

    image = QImage(view.size(), QImage.Format.Format_RGB32)
    view.render(image)
    target = QColor(*colour).rgb()
    pixels = np.frombuffer(image.constBits().asstring(image.sizeInBytes()), np.uint32)
    return int(((pixels & 0xFFFFFF) == (target & 0xFFFFFF)).sum())


def test_results_look_pending_until_accepted_or_rejected(window, qtbot):
    from PyQt6.QtWidgets import QLineEdit, QStyleOptionViewItem

    case = show_sample(window, shape=(40, 128, 128))
    dialog = run_autoseg(window, qtbot)
    table, view = window.table, window.views["axial"]
    external = next(name for name in dialog.pending if name.startswith("External"))
    lung = next(name for name in dialog.pending if name.startswith("Lung_R"))

    def name_item(name):
        return table.item(case.structures.names().index(name), 2)

    assert name_item(external).text() == f"{external}  ?" and name_item(external).font().italic()
    assert "pending: accept or reject it" in name_item(external).toolTip()
    editor = table.itemDelegateForColumn(2).createEditor(
        table, QStyleOptionViewItem(), table.indexFromItem(name_item(external))
    )
    table.itemDelegateForColumn(2).setEditorData(editor, table.indexFromItem(name_item(external)))
    assert isinstance(editor, QLineEdit) and editor.text() == external  # renamed without the mark
    colour = case.structures[external].color  # an outline only: its pixels are the outline's
    dotted = _colour_pixels(view, colour)
    dialog.accept_result(case.structures[external].number)
    assert name_item(external).text() == external and not name_item(external).font().italic()
    assert dotted < 0.8 * _colour_pixels(view, colour)
    assert name_item(lung).text().endswith("?")
    dialog.reject_result(case.structures[lung].number)
    assert lung not in case.structures
    dialog.accept_all()
    assert not any(table.item(row, 2).text().endswith("?") for row in range(table.rowCount()))


def test_the_3d_view_draws_results_awaiting_review_as_wireframes(window, qtbot):
    case = show_sample(window, shape=(40, 128, 128))
    dialog = run_autoseg(window, qtbot)
    qtbot.waitUntil(window.view3d.is_ready, timeout=120_000)
    lung = next(name for name in dialog.pending if name.startswith("Lung_R"))

    def wireframe(name) -> bool:
        actor = window.view3d._actors[case.structures[name]]
        return actor.GetProperty().GetRepresentationAsString() == "Wireframe"

    assert wireframe(lung)
    assert not wireframe("GTV")  # the case's own contours stay solid
    dialog.accept_result(case.structures[lung].number)
    assert not wireframe(lung)


def test_results_still_await_review_after_the_session_is_reopened(window, qtbot, monkeypatch, tmp_path):
    """The review state is kept in the session: a reopened one marks the results again in the
    table and the 3D view, and they are accepted from the table or rejected from the dialog."""
    from planning.structures import Structure, StructureSet
    from workstation.app import services

    case = show_sample(window, shape=(40, 128, 128))

    def segment(volume, model, names, device, **kwargs):
        found = StructureSet(case.grid)
        for name in ("Lung_R", "Heart"):
            found.add(Structure(f"{name}_auto", case.structures[name].mask.copy()))
        return found

    monkeypatch.setattr(services, "segment", segment)
    window.open_autoseg()
    window.autoseg_dialog.run_button.click()
    wait_idle(qtbot, window)
    window.saving.save_session_to(tmp_path / "review.delineo")
    wait_idle(qtbot, window)
    window.opening.open_path(tmp_path / "review.delineo")
    wait_idle(qtbot, window)
    case, table = window.case, window.table
    assert window.autoseg_dialog is None  # closed with the case it worked on
    qtbot.waitUntil(window.view3d.is_ready, timeout=120_000)

    def marked(name) -> bool:
        actor = window.view3d._actors[case.structures[name]]
        text = table.item(case.structures.names().index(name), 2).text()
        return text.endswith("?") and actor.GetProperty().GetRepresentationAsString() == "Wireframe"

    assert marked("Lung_R_auto") and marked("Heart_auto") and not marked("Heart")
    next(a for a in table.review_menu("Lung_R_auto").actions() if a.text().startswith("Accept")).trigger()
    assert not marked("Lung_R_auto") and table.review_menu("Lung_R_auto") is None
    window.open_autoseg()
    assert window.autoseg_dialog.pending == ["Heart_auto"]
    window.autoseg_dialog.reject_result(case.structures["Heart_auto"].number)
    assert "Heart_auto" not in case.structures
    window.undo()
    window.undo()
    assert marked("Lung_R_auto") and case.structures["Heart_auto"].awaiting_review


def _heart_found(case):
    """A model run finding Heart_auto (a copy of the case's Heart)."""
    from planning.structures import Structure, StructureSet

    found = StructureSet(case.grid)
    found.add(Structure("Heart_auto", case.structures["Heart"].mask.copy()))
    return found


def _finds_heart(case):
    return lambda volume, model, names, device, **kwargs: _heart_found(case)


def _finds_heart_even_when_cancelled(case):
    """A model that waits until cancelled (10 s at most), then returns its result all the same:
    one that notices the Cancel only after its last step."""

    def segment(volume, model, names, device, cancel, **kwargs):
        cancel.wait(10)
        return _heart_found(case)

    return segment


def test_results_of_a_cancelled_run_are_dropped(window, qtbot, monkeypatch):
    from workstation.app import services

    case = show_sample(window, shape=(40, 128, 128))
    monkeypatch.setattr(services, "segment", _finds_heart_even_when_cancelled(case))
    window.open_autoseg()
    dialog = window.autoseg_dialog
    before = case.structures.names()
    dialog.run_button.click()
    dialog.cancel_button.click()
    wait_idle(qtbot, window)
    assert case.structures.names() == before and not case.history.can_undo
    assert dialog.stage.text() == "Cancelled." and dialog.results.rowCount() == 0


def test_results_of_a_run_for_a_case_closed_meanwhile_are_dropped(window, qtbot, monkeypatch):
    from workstation.app import services

    case = show_sample(window, shape=(40, 128, 128))
    monkeypatch.setattr(services, "segment", _finds_heart_even_when_cancelled(case))
    window.open_autoseg()
    window.autoseg_dialog.run_button.click()
    other = show_sample(window, shape=(40, 128, 128))  # another case opened while it runs
    before = other.structures.names()
    wait_idle(qtbot, window)
    assert other.structures.names() == before and not other.history.can_undo
    assert "Heart_auto" not in case.structures
    assert "results dropped, the case they were for is no longer open" in window.statusBar().currentMessage()


def test_results_arriving_as_the_window_closes_are_dropped(window, qtbot, monkeypatch):
    from workstation.app import services

    case = show_sample(window, shape=(40, 128, 128))
    monkeypatch.setattr(services, "segment", _finds_heart_even_when_cancelled(case))
    window.open_autoseg()
    window.autoseg_dialog.run_button.click()
    before = case.structures.names()
    assert window.close()
    assert case.structures.names() == before and not case.history.can_undo


def test_a_run_goes_on_after_the_dialog_is_closed_and_its_results_arrive(window, qtbot):
    case = show_sample(window, shape=(40, 128, 128))
    window.open_autoseg()
    dialog = window.autoseg_dialog
    dialog.run_button.click()
    dialog.close()
    assert window.jobs.busy and window.progress_panel.cancel.isEnabled()
    wait_idle(qtbot, window)
    assert dialog.pending and all(case.structures[n].awaiting_review for n in dialog.pending)
    assert "structures added; accept or reject each" in window.statusBar().currentMessage()
    window.open_autoseg()
    assert window.autoseg_dialog is dialog and dialog.results.rowCount() == len(dialog.pending)


def test_reject_on_a_row_deletes_that_rows_contour_after_a_rename_and_a_rerun(window, qtbot, monkeypatch):
    """Run 1's result is renamed, run 2 brings one of run 1's name: Reject on run 1's row deletes
    run 1's (renamed) contour, not run 2's."""
    from PyQt6.QtWidgets import QPushButton

    from workstation.app import services

    case = show_sample(window, shape=(40, 128, 128))
    monkeypatch.setattr(services, "segment", _finds_heart(case))
    dialog = run_autoseg(window, qtbot)
    case.set_properties("Heart_auto", name="Heart_model")
    dialog.run_button.click()
    wait_idle(qtbot, window)
    assert [dialog.results.item(row, 0).text() for row in range(2)] == ["Heart_model", "Heart_auto"]
    buttons = dialog.results.cellWidget(0, 2).findChildren(QPushButton)
    next(b for b in buttons if b.text() == "Reject").click()
    assert "Heart_model" not in case.structures and case.structures["Heart_auto"].awaiting_review


def test_a_long_undo_label_leaves_the_tools_on_the_toolbar(window, qtbot):
    """Undo named 'Undo Auto-segmentation (head_neck_openkbp 0.6.0): 10 structures' on its button:
    Auto-segmentation and the tools after it went into the toolbar's overflow menu."""
    from PyQt6.QtWidgets import QToolBar

    from planning.structures import Structure

    case = show_sample(window, shape=(40, 128, 128))
    label = "Auto-segmentation (head_neck_openkbp 0.6.0): 10 structures"
    case.add_structures([Structure("Heart_auto", case.structures["Heart"].mask.copy())], label)
    window.undo()
    qtbot.wait(50)
    toolbar = window.findChild(QToolBar)
    for action in (window.menus.undo_action, window.menus.redo_action, window.menus.autoseg_action):
        assert toolbar.widgetForAction(action).isVisible(), action.text()
    button = toolbar.widgetForAction(window.menus.redo_action)
    assert button.text() == "Redo" and button.toolTip() == f"Redo {label}"
    assert window.menus.redo_action.text() == f"&Redo {label}"  # in full in the Edit menu


def test_reject_all_is_one_undo_step(window, qtbot):
    case = show_sample(window, shape=(40, 128, 128))
    before = case.structures.names()
    dialog = run_autoseg(window, qtbot)
    added = [n for n in case.structures.names() if n not in before]
    assert len(added) > 1
    dialog.reject_all()
    assert case.structures.names() == before
    assert window.menus.undo_action.text() == "&Undo Reject all auto-contours"
    window.undo()  # every rejected contour back at once, still awaiting review
    assert case.structures.names() == before + added
    assert all(case.structures[n].awaiting_review for n in added)


def test_reject_all_keeps_a_result_edited_by_hand_and_rows_follow_undo(window, qtbot):
    """A pending Lung_R half erased by the physician was deleted by Reject all with the rest; an
    accept undone left its row saying "accepted" with no buttons."""
    from PyQt6.QtWidgets import QLabel

    case = show_sample(window, shape=(40, 128, 128))
    dialog = run_autoseg(window, qtbot)
    lung = next(name for name in dialog.pending if name.startswith("Lung_R"))
    external = next(name for name in dialog.pending if name.startswith("External"))
    row = dialog._rows[case.structures[external].number]
    dialog.accept_result(case.structures[external].number)
    assert dialog.results.cellWidget(row, 2).text() == "accepted"
    window.undo()
    assert case.structures[external].awaiting_review
    assert not isinstance(dialog.results.cellWidget(row, 2), QLabel)  # Accept and Reject again
    box = case.structures[lung].mask.box
    half = tuple(slice(b.start, (b.start + b.stop) // 2) if a == 2 else b for a, b in enumerate(box))
    case.edit_region("Erase", lung, half, np.zeros(tuple(b.stop - b.start for b in half), bool))
    dialog.reject_all()
    assert lung in case.structures and external not in case.structures
    assert window.statusBar().currentMessage().startswith(f"Kept, edited by hand since: {lung}")
    window.undo()  # the rejection: the rows say pending again
    assert not isinstance(dialog.results.cellWidget(row, 2), QLabel)


def test_a_result_named_as_a_structure_of_the_case_is_said_to_be_named_apart(window, qtbot):
    """The sample's own External, lungs and Bone keep their names; the results arrived as
    External_2… with only "4 structures added"."""
    show_sample(window, shape=(40, 128, 128))
    dialog = run_autoseg(window, qtbot)
    assert "Named apart: External_2 (External is taken), Lung_L_2 (Lung_L is taken)" in dialog.stage.text()


def test_the_dialog_of_a_closed_case_is_deleted_and_follows_nothing(window, qtbot):
    from PyQt6 import sip

    show_sample(window, shape=(40, 128, 128))
    window.open_autoseg()
    old = window.autoseg_dialog
    show_sample(window, shape=(40, 128, 128))  # another case: the old dialog goes with its case
    assert window.autoseg_dialog is None
    qtbot.waitUntil(lambda: sip.isdeleted(old), timeout=5_000)


def test_a_dialog_whose_case_closed_mid_run_is_deleted_only_once_the_run_has_ended(
    window, qtbot, monkeypatch
):
    """Deleted at once, the dialog was gone when its run ended, and the run's ending (results
    dropped) failed on the deleted widgets instead of being said."""
    import threading

    from PyQt6 import sip

    from workstation.app import services

    case = show_sample(window, shape=(40, 128, 128))
    release = threading.Event()

    def segment(volume, model, names, device, cancel, **kwargs):
        release.wait(10)
        return _heart_found(case)

    monkeypatch.setattr(services, "segment", segment)
    window.open_autoseg()
    old = window.autoseg_dialog
    old.run_button.click()
    show_sample(window, shape=(40, 128, 128))  # another case while it runs
    qtbot.wait(200)  # the event loop turns: a deletion asked for now would happen here
    assert not sip.isdeleted(old)
    release.set()
    wait_idle(qtbot, window)
    assert "results dropped, the case they were for is no longer open" in window.statusBar().currentMessage()
    assert not window.jobs.errors
    qtbot.waitUntil(lambda: sip.isdeleted(old), timeout=5_000)


def test_targets_a_model_guesses_from_the_image_are_offered_unticked_beside_its_model_card(window):
    """The head-and-neck model's PTV56/63/70 (where OpenKBP's physicians put targets in similar
    patients, not this patient's disease) were ticked with the organs and arrived without a word;
    the model card was named, not linked."""
    from workstation.app.autoseg_dialog import ON_REQUEST

    show_sample(window)
    window.open_autoseg()
    dialog = window.autoseg_dialog
    dialog.model_box.setCurrentIndex(dialog.model_box.findData("head_neck_openkbp"))
    items = [dialog.structure_list.item(i) for i in range(dialog.structure_list.count())]
    unticked = [item for item in items if item.checkState() == Qt.CheckState.Unchecked]
    assert [item.text() for item in unticked] == [f"PTV{d}  (only when ticked)" for d in (56, 63, 70)]
    assert unticked[0].toolTip() == ON_REQUEST
    assert "PTV56" not in dialog.selected_structures() and "Brainstem" in dialog.selected_structures()
    unticked[0].setCheckState(Qt.CheckState.Checked)
    assert "PTV56" in dialog.selected_structures()  # the structure's own name, for the run
    assert 'MODEL_CARD.md">Model card</a>' in dialog.description.text()
