"""The structure table stays cheap to update with 100+ structures: a history change refills only
the rows whose stale mark changes, and TG-263 advice is worked out once per name."""

import pytest
from support.app import show_sample

from workstation.app import services, structure_table
from workstation.app.structure_table import NAME

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
