"""A locked structure: every edit of its geometry, name or type and its deletion are refused by the
case before anything changes; colour and review stay free; undo and redo of a step that would
change it are refused too (unlock to undo), and the lock is no undo step of its own."""

import numpy as np
import pytest

from planning.sample_patient import make_sample_patient
from planning.session import ImageReference
from planning.structures import Mask, RoiType, Structure
from workstation.app.case import Case
from workstation.app.history import Locked

SQUARE = (slice(5, 6), slice(10, 20), slice(10, 20))


def _case() -> Case:
    sample = make_sample_patient((12, 40, 40))
    return Case(sample.volume, sample.structures, ImageReference.for_volume(sample.volume, "sample"))


def _state(case: Case):
    return [(s.name, s.roi_type, s.number, s.mask.full().tobytes()) for s in case.structures], len(
        case.history
    )


EDITS = {
    "brush": lambda case: case.stroke("Paint", "Heart"),
    "region": lambda case: case.edit_region("Fill", "Heart", SQUARE, np.ones((1, 10, 10), bool)),
    "replace": lambda case: case.replace_mask("Interpolate", "Heart", Mask(case.grid)),
    "derive": lambda case: case.derive_into("Heart", case.structures["Heart"].snapshot(), "Expand → Heart"),
    "rename": lambda case: case.set_properties("Heart", name="Coeur"),
    "type": lambda case: case.set_properties("Heart", roi_type=RoiType.PTV),
    "delete": lambda case: case.remove_structure("Heart"),
    "delete several": lambda case: case.remove_structures(["External", "Heart"], "Delete two"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_an_edit_of_a_locked_structure_is_refused_and_changes_nothing(edit):
    case = _case()
    case.set_locked("Heart", True)
    before = _state(case)
    with pytest.raises(Locked, match="^Heart is locked: unlock it to "):
        EDITS[edit](case)
    assert _state(case) == before
    case.set_locked("Heart", False)
    EDITS[edit](case)  # the same edit goes through once unlocked


def test_colour_review_and_reading_a_locked_structure_stay_free():
    case = _case()
    case.set_locked("Heart", True)
    case.set_properties("Heart", color=(1, 2, 3))
    heart = case.structures["Heart"].mask.shared()
    case.derive_into("Heart_PRV", Structure("Heart_PRV", heart), "Copy Heart")
    assert case.structures["Heart"].color == (1, 2, 3) and not case.structures["Heart_PRV"].locked
    case.history.undo()
    case.history.undo()  # the colour change itself
    assert case.structures["Heart"].color != (1, 2, 3)


def test_undo_and_redo_of_a_step_changing_a_locked_structure_are_refused_until_unlocked():
    case = _case()
    case.edit_region("Paint Heart", "Heart", SQUARE, np.ones((1, 10, 10), bool))
    painted = case.structures["Heart"].mask.full()
    generation = case.history.generation
    case.set_locked("Heart", True)
    assert case.history.generation > generation  # kept by the next autosave
    assert len(case.history) == 1  # locking is no undo step
    with pytest.raises(Locked, match="^Heart is locked: unlock it to undo “Paint Heart”$"):
        case.history.undo()
    assert np.array_equal(case.structures["Heart"].mask.full(), painted) and case.history.can_undo
    case.set_locked("Heart", False)
    case.history.undo()
    case.set_locked("Heart", True)
    with pytest.raises(Locked, match="to redo “Paint Heart”$"):
        case.history.redo()
    assert case.history.can_redo and not np.array_equal(case.structures["Heart"].mask.full(), painted)


def test_undoing_the_addition_or_a_rename_of_a_locked_structure_is_refused():
    case = _case()
    case.new_structure("Drawn")
    case.set_properties("Drawn", name="CTV")
    case.set_locked("CTV", True)
    with pytest.raises(Locked, match="^CTV is locked"):
        case.history.undo()  # the rename
    case.set_locked("CTV", False)
    case.history.undo()
    case.set_locked("Drawn", True)
    with pytest.raises(Locked, match="^Drawn is locked"):
        case.history.undo()  # the addition: it would delete Drawn
    assert "Drawn" in case.structures
