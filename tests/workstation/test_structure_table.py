"""The structure table stays cheap to update with 100+ structures: a history change refills only
the rows whose stale mark changes, and TG-263 advice is worked out once per name."""

import numpy as np
import pytest
from support.app import show_sample

from workstation.app import services, structure_table
from workstation.app.structure_table import NAME, UNCOUNTED, VOLUME

pytestmark = pytest.mark.gui


def test_marking_a_structure_stale_refills_only_its_row(window, monkeypatch):
    case = show_sample(window)
    table = window.table
    name = case.structures.names()[1]
    refilled = []
    fill = table._fill
    monkeypatch.setattr(
        table, "_fill", lambda row, s, volume: refilled.append(s.name) or fill(row, s, volume)
    )
    table.set_stale([name])
    assert refilled == [name] and table.item(1, NAME).text().endswith("⟳")
    table.set_stale([name])
    assert refilled == [name]
    table.set_stale([])
    assert refilled == [name, name] and not table.item(1, NAME).text().endswith("⟳")


@pytest.fixture
def fresh_advice():
    structure_table.name_advice.cache_clear()
    yield
    structure_table.name_advice.cache_clear()


def test_name_advice_is_worked_out_once_per_name(fresh_advice, monkeypatch):
    asked = []
    monkeypatch.setattr(services, "name_advice", lambda name: asked.append(name) or "not TG-263")
    for _ in range(3):
        assert structure_table.name_advice("Lung Left") == "not TG-263"
    assert asked == ["Lung Left"]


def test_volumes_are_counted_off_the_gui_thread(window, qtbot, monkeypatch):
    import threading

    from planning.structures import Mask

    counted_on = []
    volume_cc = Mask.volume_cc
    monkeypatch.setattr(
        Mask,
        "volume_cc",
        property(lambda m: counted_on.append(threading.current_thread()) or volume_cc.fget(m)),
    )
    case = show_sample(window)
    table = window.table
    qtbot.waitUntil(lambda: all(table.item(r, VOLUME).text() != UNCOUNTED for r in range(table.rowCount())))
    shown = [float(table.item(r, VOLUME).text()) for r in range(table.rowCount())]
    assert counted_on and threading.main_thread() not in counted_on
    assert shown == pytest.approx([volume_cc.fget(s.mask) for s in case.structures], abs=0.01)


def test_a_failed_volume_count_does_not_stop_later_counts(window, qtbot, monkeypatch):
    """The volume worker had no error handler: once a count failed, the table kept waiting for it
    and no volume was shown again (and the closed case's queue was counted after a case switch)."""
    from planning.structures import Mask
    from workstation.app.structure_table import StructureTable

    volume_cc = Mask.volume_cc
    failures = []

    def counted(mask):
        if not failures:
            failures.append(mask)
            raise MemoryError("no memory for the count")
        return volume_cc.fget(mask)

    monkeypatch.setattr(Mask, "volume_cc", property(counted))
    case = show_sample(window)
    table = window.table
    qtbot.waitUntil(lambda: bool(failures) and table._measuring is None, timeout=10_000)
    structure = next(s for s in case.structures if s.mask.array.size)
    assert table.volume_of(structure) is None  # in the count that failed
    row = case.structures.names().index(structure.name)
    table._fill(row, structure, volume=True)  # its volume asked for again, as after an edit
    qtbot.waitUntil(lambda: table.volume_of(structure) is not None, timeout=10_000)
    assert float(table.item(row, VOLUME).text()) == pytest.approx(volume_cc.fget(structure.mask), abs=0.01)

    other = StructureTable()
    qtbot.addWidget(other)
    other.set_case(case)
    assert other._to_measure
    other.set_case(None)
    assert not other._to_measure


def test_a_tg263_name_awaiting_review_is_shown_whole_beside_the_padlock(window, qtbot):
    """At 1366×768 the name column was 92 px: 'Bone_Mandible  ?' showed as 'Bone_…le  ?'."""
    from PyQt6.QtGui import QFontMetrics

    from planning.structures import Structure
    from workstation.app.structure_table import LOCK

    case = show_sample(window)
    window.resize(1366, 768)
    first = case.structures[case.structures.names()[0]]
    case.structures.add(Structure("SpinalCord_PRV05", first.mask.shared(), first.color, awaiting_review=True))
    qtbot.wait(100)
    table = window.table
    item = table.item(table.rowCount() - 1, NAME)
    assert item.text() == "SpinalCord_PRV05  ?" and item.toolTip().splitlines()[0] == "SpinalCord_PRV05"
    needed = QFontMetrics(item.font()).horizontalAdvance(item.text())
    assert table.columnWidth(NAME) >= needed + 8
    assert table.columnViewportPosition(LOCK) + table.columnWidth(LOCK) <= table.viewport().width()


def test_renaming_moves_a_type_that_came_from_the_name_and_keeps_a_chosen_one(window):
    """A new structure renamed "PTV_Boost" stayed an ORGAN in the RTSTRUCT, a duplicated GTV-1
    renamed "CTV_Manual" a GTV."""
    from planning.structures import RoiType
    from workstation.app.structure_table import TYPE

    case = show_sample(window)
    table = window.table

    def rename(old, new):
        row = next(r for r in range(table.rowCount()) if table.item(r, NAME).data(256) == old)
        table.item(row, NAME).setText(new)

    name = window.commands.add_structure()
    assert case.structures[name].roi_type == RoiType.ORGAN
    rename(name, "PTV_Boost")
    assert case.structures["PTV_Boost"].roi_type == RoiType.PTV
    assert "PTV_Boost: type ORGAN → PTV" in window.statusBar().currentMessage()
    rename("PTV_Boost", "PTV_Boost_Ring")
    assert case.structures["PTV_Boost_Ring"].roi_type == RoiType.CONTROL
    case.history.undo()
    assert case.structures["PTV_Boost"].roi_type == RoiType.PTV  # one undo step with the name
    case.set_properties("Heart", roi_type=RoiType.AVOIDANCE)  # chosen by the user: kept
    rename("Heart", "PTV_Heart")
    assert case.structures["PTV_Heart"].roi_type == RoiType.AVOIDANCE
    row = next(r for r in range(table.rowCount()) if table.item(r, NAME).data(256) == "PTV_Heart")
    assert table.item(row, TYPE).text() == "AVOIDANCE"


def test_a_filled_structure_shows_its_volume_while_another_is_being_edited(window, qtbot):
    """Each edit of any structure restarted one shared 250 ms wait, so a structure just filled (a
    seeded GTV, added empty: 0.00 cc) kept showing 0.00 cc as long as another one was being
    painted, every dab under 250 ms after the last."""
    case = show_sample(window)
    table = window.table
    painted = case.structures.names()[0]
    qtbot.waitUntil(lambda: table.volume_of(case.structures[painted]) is not None)
    painted_before = table.item(0, VOLUME).text()
    name = window.commands.add_structure("GTV_new")
    row = case.structures.names().index(name)
    case.edit_region("draw", name, (slice(10, 20), slice(10, 30), slice(10, 30)), np.ones((10, 20, 20), bool))
    expected = case.structures[name].volume_cc
    assert table.item(row, VOLUME).text() == "…"  # counted once edits to it pause
    for z in range(30):  # a brush stroke on another structure: a dab every 40 ms for 1.2 s
        dab = (slice(z, z + 1), slice(0, 4), slice(0, 4))
        case.structures.edit_mask(painted, dab, np.ones((1, 4, 4), bool))
        qtbot.wait(40)
    assert float(table.item(row, VOLUME).text()) == pytest.approx(expected, abs=0.01)
    assert table.item(0, VOLUME).text() == painted_before  # the one painted: counted once it pauses
    painted_now = case.structures[painted].volume_cc
    assert float(painted_before) != pytest.approx(painted_now, abs=0.01)
    qtbot.waitUntil(lambda: float(table.item(0, VOLUME).text()) == pytest.approx(painted_now, abs=0.01))


def test_a_structure_filled_or_added_says_so_until_counted_never_a_false_zero(window, qtbot, tmp_path):
    """A seeded GTV is added empty (0.00 cc, counted) and filled when the delineation ends: it
    showed 0.00 cc for the 250 ms pause and the count after it. A structure not yet counted says
    "…"; an empty one, 0.00."""
    from planning.structures import Mask, Structure

    case = show_sample(window)
    table = window.table
    name = window.commands.add_structure("GTV")
    row = case.structures.names().index(name)
    assert table.item(row, VOLUME).text() == "0.00"  # empty: counted at once
    filled = Mask.from_full(case.grid, case.structures["GTV"].mask.full())
    case.replace_mask(f"Seeded delineation of {name}", name, filled)
    window.grab().save(str(tmp_path / "filled.png"))
    assert table.item(row, VOLUME).text() == "…"
    qtbot.waitUntil(lambda: table.volume_of(case.structures[name]) is not None)
    assert float(table.item(row, VOLUME).text()) == pytest.approx(filled.volume_cc, abs=0.01)
    case.add_structure(Structure("PTV", filled.copy()))
    row = case.structures.names().index("PTV")
    assert table.item(row, VOLUME).text() == "…"
    qtbot.waitUntil(lambda: table.item(row, VOLUME).text() == table.item(row - 1, VOLUME).text())
