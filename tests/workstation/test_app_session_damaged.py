"""A session whose derived structure's recipe and saved view are damaged opens through the
window with every structure, saying in the Messages what was left out or reset."""

import json

import numpy as np
import pytest
from support.app import close_window, make_window, show_sample, wait_idle

from planning import derived

pytestmark = pytest.mark.gui


def test_a_session_with_a_damaged_recipe_and_view_opens_everything_else(window, qtbot, tmp_path):
    case = show_sample(window)
    ptv = derived.derive({"op": "expand", "source": "GTV", "margins": 5.0}, case.structures, name="PTV")
    case.add_structure(ptv)
    expected = {s.name: s.mask.full() for s in case.structures}
    path = tmp_path / "case-session"
    window.saving.save_session_to(path)
    wait_idle(qtbot, window)
    document = json.loads((path / "session.json").read_text())
    next(r for r in document["structures"] if r["name"] == "PTV")["recipe"]["margins"] = float("nan")
    shape = list(case.grid.shape)
    document["view"].update(
        window=["wide", 40],
        cursor_zyx=[shape[0] + 50, 1, 1],
        maximised="fifth",
        views={"axial": {"zoom": None}},
    )
    (path / "session.json").write_text(json.dumps(document))

    other = make_window(qtbot, tmp_path / "other.ini", tmp_path / "other-data")
    other.opening.open_path(path)
    wait_idle(qtbot, other)
    assert other.case is not None and other.case.structures.names() == list(expected)
    for structure in other.case.structures:
        assert np.array_equal(structure.mask.full(), expected[structure.name])
    assert other.case.structures["PTV"].recipe is None
    said = other.messages.messages()
    assert any("structure 'PTV': its recipe is damaged" in m and "margins nan" in m for m in said)
    assert any("its window/level is ['wide', 40], not a width > 0 and a level" in m for m in said)
    assert any(f"its slice position is [{shape[0] + 50}, 1, 1], not three slice positions" in m for m in said)
    assert any("its maximised view is 'fifth'" in m for m in said)
    assert any("the axial view's zoom and pan are {'zoom': None}" in m for m in said)
    assert other.grid.maximised is None and other.views["axial"].zoom == 1.0
    assert other.state.window == other.start_window
    other.commands.check_stale()  # the structures' check runs on what was kept
    wait_idle(qtbot, other)
    assert other.commands.stale == []
    close_window(qtbot, other)
