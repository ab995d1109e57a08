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
