"""The undo history goes on working the same after a session is saved and reopened (or recovered),
and a save taken while the user draws holds the structures and history as they were."""

import numpy as np
import pytest

from planning.sample_patient import make_sample_patient
from planning.session import ImageReference, load_session, save_session
from planning.structures import Mask
from workstation.app.autosave import snapshot, write_snapshot
from workstation.app.case import Case


def _case() -> Case:
    sample = make_sample_patient((12, 40, 40))
    return Case(sample.volume, sample.structures, ImageReference.for_volume(sample.volume, "sample"))


def _reopened(case: Case, tmp_path) -> Case:
    path = save_session(case.to_session({}), tmp_path / "s.delineo")
    return Case.from_session(load_session(path), case.volume)


def _box_of(mask: Mask, size: int):
    k, y, x = (s.start + 1 for s in mask.box)
    return (slice(k, k + 1), slice(y, y + size), slice(x, x + size))


def test_a_structure_renamed_after_it_was_added_can_be_unmade_after_a_reopen(tmp_path):
    case = _case()
    names = case.structures.names()
    case.new_structure("Drawn")
    square = (slice(5, 6), slice(10, 20), slice(10, 20))
    case.edit_region("paint", "Drawn", square, np.ones((1, 10, 10), bool))
    case.set_properties("Drawn", name="Renamed")
    case = _reopened(case, tmp_path)
    for _ in range(3):
        case.history.undo()
    assert case.structures.names() == names
    for _ in range(3):
        case.history.redo()
    assert case.structures.names() == [*names, "Renamed"]
    assert case.structures["Renamed"].mask.voxel_count == 100


def test_an_undone_edit_stays_undone_when_an_earlier_one_is_redone_after_a_reopen(tmp_path):
    case = _case()
    heart = case.structures["Heart"].mask
    filled = Mask(case.grid, np.ones(heart.array.shape, bool), heart.offset)
    case.replace_mask("Margin", "Heart", filled)
    box = _box_of(filled, 4)
    case.edit_region("Erase", "Heart", box, np.zeros((1, 4, 4), bool))  # inside the box: in place
    case = _reopened(case, tmp_path)
    case.history.undo()
    case.history.undo()
    case.history.redo()
    assert case.structures["Heart"].mask.region(box).all()


def test_a_failed_undo_leaves_the_history_where_it_was():
    case = _case()
    case.new_structure("Drawn")
    case.structures.remove("Drawn")  # behind the history's back
    with pytest.raises(KeyError):
        case.history.undo()
    assert case.history.can_undo and not case.history.can_redo and case.history.undo_text


def test_a_save_taken_before_more_drawing_holds_the_case_as_it_was(tmp_path):
    case = _case()
    heart = case.structures["Heart"].mask
    box = _box_of(heart, 3)
    assert heart.region(box).any()
    before = heart.full()
    taken = snapshot((case, {}))
    case.edit_region("Erase", "Heart", box, np.zeros((1, 3, 3), bool))  # while the save runs
    saved = load_session(write_snapshot(taken, tmp_path / "s.delineo"))
    assert np.array_equal(saved.structures["Heart"].mask.full(), before)
    assert saved.history[0]["commands"] == [] and not case.structures["Heart"].mask.region(box).any()


def test_a_session_whose_history_is_damaged_opens_without_it_and_says_so(window, qtbot, tmp_path):
    from support.app import show_sample, wait_idle

    case = show_sample(window, shape=(12, 40, 40))
    case.new_structure("Drawn")
    folder = save_session(case.to_session({}), tmp_path / "s")
    (folder / "history.npz").write_bytes(b"damaged")
    window.ask_unsaved_changes = lambda about: "discard"
    window.opening.open_path(folder)
    wait_idle(qtbot, window)
    assert "Drawn" in window.case.structures and not window.case.history.can_undo
    assert "undo history and view state are damaged" in window.statusBar().currentMessage()


def test_a_session_whose_history_entries_cannot_be_rebuilt_opens_without_it_and_says_so(
    window, qtbot, tmp_path
):
    """session.json readable, but a history entry this Delineo cannot rebuild (a kind it does
    not know, a mask beyond the grid): the structures open all the same, without the history."""
    import json

    from support.app import show_sample, wait_idle

    case = show_sample(window, shape=(12, 40, 40))
    case.new_structure("Drawn")
    folder = save_session(case.to_session({}), tmp_path / "s")
    document = json.loads((folder / "session.json").read_text())
    document["history"][0]["commands"][0]["kind"] = "from_a_newer_delineo"
    (folder / "session.json").write_text(json.dumps(document))
    window.ask_unsaved_changes = lambda about: "discard"
    window.opening.open_path(folder)
    wait_idle(qtbot, window)
    assert "Drawn" in window.case.structures and not window.case.history.can_undo
    assert "undo history" in window.statusBar().currentMessage()


def _margin_of_heart(case: Case) -> None:
    heart = case.structures["Heart"].mask
    case.replace_mask("Margin", "Heart", Mask(case.grid, np.ones(heart.array.shape, bool), heart.offset))


def test_the_newest_step_is_undone_and_redone_without_unpacking_its_masks(monkeypatch):
    case = _case()
    _margin_of_heart(case)
    grown = case.structures["Heart"].mask.full()
    monkeypatch.setattr(np, "unpackbits", lambda *a, **k: pytest.fail("a mask was unpacked"))
    case.history.undo()
    case.history.redo()
    assert np.array_equal(case.structures["Heart"].mask.full(), grown)


def test_older_steps_are_bit_packed_off_the_calling_thread(monkeypatch):
    import threading

    from workstation.app import history

    packed_on = []
    packbits = np.packbits
    monkeypatch.setattr(
        np, "packbits", lambda *a, **k: packed_on.append(threading.current_thread()) or packbits(*a, **k)
    )
    case = _case()
    _margin_of_heart(case)
    case.new_structure("Drawn")
    history._packer.submit(lambda: None).result()  # the packing queued so far is done
    assert packed_on and threading.current_thread() not in packed_on
    assert case.history.commands[0]._after._array is None  # kept packed only
    case.history.undo()
    case.history.undo()
    case.history.redo()
    assert case.structures["Heart"].mask.array.all()


def test_a_reopened_history_is_bit_packed_off_the_calling_thread(tmp_path, monkeypatch):
    """Opening a session bit-packed every mask of its history on the GUI thread."""
    import threading

    from workstation.app import history

    case = _case()
    _margin_of_heart(case)
    case.new_structure("Drawn")
    grown = case.structures["Heart"].mask.full()
    history._packer.submit(lambda: None).result()
    path = save_session(case.to_session({}), tmp_path / "s.delineo")
    packed_on = []
    packbits = np.packbits
    monkeypatch.setattr(
        np, "packbits", lambda *a, **k: packed_on.append(threading.current_thread()) or packbits(*a, **k)
    )
    reopened = Case.from_session(load_session(path), case.volume)
    memory = sum(c.nbytes for c in reopened.history.commands)  # counted packed before they are
    history._packer.submit(lambda: None).result()  # the packing queued so far is done
    assert packed_on and threading.current_thread() not in packed_on
    assert reopened.history.commands[0]._after._array is None  # kept packed only
    assert sum(c.nbytes for c in reopened.history.commands) == memory
    reopened.history.undo()
    reopened.history.undo()
    reopened.history.redo()
    assert np.array_equal(reopened.structures["Heart"].mask.full(), grown)
