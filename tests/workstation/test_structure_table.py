"""The structure table stays cheap to update with 100+ structures: a history change refills only
the rows whose stale mark changes, and TG-263 advice is worked out once per name."""

import pytest
from support.app import show_sample

from workstation.app import services, structure_table
from workstation.app.structure_table import NAME, VOLUME

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
    qtbot.waitUntil(lambda: all(table.item(r, VOLUME).text() for r in range(table.rowCount())))
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
