"""A whole contouring session in the real window on a real lung CT with its RTSTRUCT:
open, auto-segment, paint and undo, interpolate, margins, export and read back, save and reopen."""

import numpy as np
import pytest
from support.app import click, close_window, grab, make_window, wait_idle, widget_point
from support.data import data_path

from planning.structure_io import load_structures
from planning.structures import GenerationAlgorithm

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def test_whole_workflow_on_a_lung_ct(window, qtbot, tmp_path):
    # 1. Open the folder: the CT loads with the RTSTRUCT that references it (one GTV).
    window.opening.open_path(data_path("dicom", "ibsi1-lung-ct"))
    wait_idle(qtbot, window)
    case = window.case
    assert case.volume.grid.shape == (60, 201, 204)
    assert case.structures.names() == ["GTV-1"]
    assert len(window.browser.series_items()) == 1
    gtv = case.structures["GTV-1"].mask.full()
    assert 300 < case.structures["GTV-1"].volume_cc < 420

    # 2. Rule-based auto-segmentation in a worker; results reviewed one by one.
    window.open_autoseg()
    dialog = window.autoseg_dialog
    assert dialog.models and dialog.models[0].name == "ct_rules"
    assert {"External", "Lung_L", "Lung_R"} <= set(dialog.selected_structures())
    dialog.run_button.click()
    assert window.jobs.busy  # the model runs in a worker; the window keeps handling events
    qtbot.waitUntil(lambda: bool(dialog.pending) or not window.jobs.busy, timeout=180_000)
    wait_idle(qtbot, window)
    produced = list(dialog.pending)
    # This CT's field of view holds the right hemithorax only: no left lung to find.
    assert {"External", "Lung_R"} <= set(produced) and "Lung_L" not in produced
    for name in produced:
        assert case.structures[name].algorithm == GenerationAlgorithm.AUTOMATIC
    dialog.accept_result(case.structures["External"].number)
    dialog.accept_result(case.structures["Lung_R"].number)
    dialog.reject_all()
    assert set(case.structures.names()) == {"GTV-1", "External", "Lung_R"}
    window.undo()  # the rejection is an undo step like any other
    assert set(case.structures.names()) == {"GTV-1", "External", "Lung_R", "Bone"}
    window.redo()
    body = case.structures["External"].mask.full()
    assert (gtv & body).sum() / gtv.sum() > 0.99  # the tumour is inside the body
    lung = case.structures["Lung_R"].mask.full()
    assert np.median(case.volume.array[lung]) < -600  # air-filled lung tissue

    # 3. Paint into the GTV with the brush, then undo: exactly the imported GTV again.
    view = window.views["axial"]
    window.table.select("GTV-1")
    k = view.slice_index
    outside = np.argwhere(~gtv[k] & body[k])[0]
    window.tools.tools["brush"].set_setting("radius_mm", 4.0)
    window.tools.tools["brush"].set_setting("hu_limit", False)
    window.tools.activate("brush")
    click(view, widget_point(view, (k, *outside)))
    assert case.structures["GTV-1"].mask.full()[k, outside[0], outside[1]]
    assert case.structures["GTV-1"].algorithm == GenerationAlgorithm.MANUAL
    window.undo()
    assert np.array_equal(case.structures["GTV-1"].mask.full(), gtv)
    assert case.structures["GTV-1"].contours is not None  # imported contours kept: lossless export

    # 4. Interpolate: a structure drawn on two slices 6 apart is filled in between.
    name = window.commands.add_structure("Nodule")
    for z in (k - 3, k + 3):
        case.edit_region(
            "draw", name, (slice(z, z + 1), slice(90, 110), slice(60, 80)), np.ones((1, 20, 20), bool)
        )
    window.table.select(name)
    window.menus.interpolate_action.trigger()
    wait_idle(qtbot, window)
    nodule = case.structures[name].mask.full()
    assert all(nodule[z, 100, 70] for z in range(k - 3, k + 4))
    assert nodule[k].sum() == pytest.approx(400, rel=0.1)

    # 5. Margins: GTV-1 + 5 mm kept inside the body, a new CTV with its recipe.
    from workstation.app.derive_dialog import DeriveDialog

    derive = DeriveDialog(window)
    derive.operation.setCurrentText("Expand (margin)")
    derive.source_a.setCurrentText("GTV-1")
    derive.margin.setValue(5.0)
    derive.within.setCurrentText("External")
    derive.output.setText("CTV")
    derive.compute()
    wait_idle(qtbot, window)
    ctv = case.structures["CTV"]
    assert ctv.recipe["op"] == "expand" and ctv.recipe["within"] == "External"
    assert ctv.volume_cc > case.structures["GTV-1"].volume_cc * 1.1
    assert not (ctv.mask.full() & ~body).any()

    # 6. Export the RTSTRUCT: the check runs first and is shown, then the checked file is written.
    target = tmp_path / "RS_export.dcm"
    export = window.export_rtstruct()
    export.path_edit.setText(str(target))
    export.run_check()  # options may have been re-read; run again explicitly
    qtbot.waitUntil(lambda: export.write_button.isEnabled(), timeout=120_000)
    wait_idle(qtbot, window)
    report = [export.report.item(i).text() for i in range(export.report.count())]
    assert report and not any(line.startswith("ERROR") for line in report)
    export.write_button.click()
    assert target.exists()
    back = load_structures(target, case.volume)
    assert set(back.names()) == set(case.structures.names())
    for structure in case.structures:
        if structure.mask.volume_cc >= 1:
            assert dice(back[structure.name].mask.full(), structure.mask.full()) >= 0.98, structure.name
        assert back[structure.name].color == structure.color

    # 7. The GTV outline is drawn where the GTV is (rendered pixels; the lung's outline runs along
    # the tumour, so the others are hidden for this check).
    for other in case.structures.names():
        case.set_visible(other, other == "GTV-1")
    image = grab(view)
    edge = np.argwhere(gtv[k] & ~np.roll(gtv[k], 1, axis=0))[::9]
    colour = case.structures["GTV-1"].color
    near = [
        np.abs(image[max(p.y() - 2, 0) : p.y() + 3, max(p.x() - 2, 0) : p.x() + 3].astype(int) - colour)
        .max(axis=-1)
        .min()
        < 40
        for p in (widget_point(view, (k, r, c)) for r, c in edge)
    ]
    assert np.mean(near) > 0.95

    # 8. Save the session and reopen it in a new window: everything is back, undo included.
    session = tmp_path / "lung.delineo"
    window.saving.save_session_to(session)
    wait_idle(qtbot, window)
    again = make_window(qtbot, tmp_path / "again.ini", tmp_path / "again-data")
    again.opening.open_path(session)
    wait_idle(qtbot, again)
    assert again.case.structures.names() == case.structures.names()
    for structure in case.structures:
        assert np.array_equal(again.case.structures[structure.name].mask.full(), structure.mask.full())
    assert again.case.history.undo_text == case.history.undo_text
    again.undo()  # undoes the CTV
    assert "CTV" not in again.case.structures
    close_window(qtbot, again)


def test_seeded_tumour_delineation_with_clicks(window, qtbot):
    window.opening.open_path(data_path("dicom", "ibsi1-lung-ct"))
    wait_idle(qtbot, window)
    case = window.case
    expert = case.structures["GTV-1"].mask.full()
    view = window.views["axial"]
    centre = np.argwhere(expert).mean(axis=0).round().astype(int)
    window.state.set_cursor(centre)
    window.tools.activate("seeded")
    click(view, widget_point(view, centre))
    wait_idle(qtbot, window)
    assert "GTV" in case.structures  # a new structure: the expert GTV-1 is left alone
    assert np.array_equal(case.structures["GTV-1"].mask.full(), expert)
    first = case.structures["GTV"].mask.full()
    assert dice(first, expert) > 0.7, dice(first, expert)
    assert case.structures["GTV"].algorithm == GenerationAlgorithm.SEMIAUTOMATIC
    # The seeds are drawn on the slice; Esc starts over, undo removes the result.
    tool = window.tools.active
    assert len(tool.inside) == 1
    window.undo()
    assert case.structures["GTV"].mask.is_empty
    print(f"seeded delineation, one click: Dice {dice(first, expert):.2f} against the expert GTV")
