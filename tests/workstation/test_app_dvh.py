"""The DVH panel: the numbers of `delineo dvh`, computed in a worker, redone after an edit."""

import csv
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from support.app import show_sample, wait_idle
from support.data import data_path

from planning.dose import Dose
from planning.dvh import compute_dvh
from planning.geometry import Grid
from workstation.app.case import contours_left_out
from workstation.app.dvh_panel import NO_VOXEL

pytestmark = pytest.mark.gui


def test_dvhs_of_the_case_on_its_dose_and_after_an_edit(window, qtbot, tmp_path):
    case = show_sample(window)
    panel = window.dvh_panel
    window.docks.dvh_dock.show()
    assert not panel.compute_button.isEnabled() and "Load a dose" in panel.status.text()
    grid = case.grid  # a dose twice as coarse, rising linearly from 0 to 60 Gy right to left
    dose_grid = Grid((20, 64, 64), tuple(2 * s for s in grid.spacing_xyz), grid.origin_xyz, grid.direction)
    ramp = np.broadcast_to(np.linspace(0, 60, 64, dtype=np.float32), dose_grid.shape).copy()
    dose = Dose(ramp, dose_grid, frame_of_reference_uid=case.volume.frame_of_reference_uid)
    dose.warnings.append("RD.dcm: the dose of one fraction (DoseSummationType FRACTION)")
    window.set_dose(dose)
    qtbot.waitUntil(lambda: bool(panel.dvhs), timeout=60_000)
    wait_idle(qtbot, window)
    shown = panel.values()
    assert set(shown) == {s.name for s in case.structures if not s.mask.is_empty}
    for name in ("Lung_R", "Heart", "GTV"):
        expected = compute_dvh(dose, case.structures[name]).statistics(percents=(95, 50, 2))
        assert shown[name] == pytest.approx(expected)
    assert shown["Lung_R"]["Dmean"] < 30 < shown["Lung_L"]["Dmean"]  # the dose rises to the left
    assert panel.table.rowCount() == len(shown) and panel.table.item(0, 0).text() == panel.dvhs[0].name
    assert panel.table.horizontalHeaderItem(2).text() == "Dmean (Gy)"

    panel.compute()
    panel.compute()  # the first is cancelled; only the second's curves are shown
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=60_000)
    again = panel.values()
    assert set(again) == set(shown) and all(again[n] == pytest.approx(shown[n]) for n in shown)
    assert "DVHs not computed" not in panel.status.text()

    assert panel.save_csv(tmp_path / "dvh.csv")
    rows = list(csv.DictReader(open(tmp_path / "dvh.csv", encoding="utf-8")))
    assert [r["structure"] for r in rows] == [d.name for d in panel.dvhs]
    assert float(rows[0]["Dmean_Gy"]) == pytest.approx(panel.dvhs[0].mean, abs=1e-4)
    assert all(r["warnings"].startswith("RD.dcm: the dose of one fraction") for r in rows)
    assert not panel.save_csv(tmp_path / "missing" / "dvh.csv") and "Not saved" in panel.status.text()

    window.table.select("GTV")
    window.commands.delete_structure()
    assert "Structures edited" in panel.status.text()
    qtbot.waitUntil(lambda: "GTV" not in panel.values(), timeout=60_000)
    wait_idle(qtbot, window)


def test_the_panel_names_the_structures_the_loaded_images_cut(window, qtbot, tmp_path):
    """dicompyler-breast holds 1 of its 98 CT images: read with the case, 9 of its 10 closed
    structures have no voxel left and BODY is 140 of its 14,882 cc. The reading warnings stay
    with the case; the panel and the CSV name the cut structures, not only a status bar for 15 s."""
    from planning.dicom.load import load_series
    from planning.dicom.scan import scan
    from planning.dose import load_dose
    from planning.session import ImageReference
    from workstation.app import services
    from workstation.app.case import Case

    folder = data_path("dicom", "dicompyler-breast")
    volume = load_series(scan(folder).series[0])
    loaded = services.load_rtstruct(folder / "rtss.dcm", volume)
    case = Case.with_structures(volume, [loaded], ImageReference.for_volume(volume, "dicom", folder))
    assert case.structures.warnings == loaded.warnings and contours_left_out(case.structures.warnings)
    window.set_case(case)
    panel = window.dvh_panel
    window.docks.dvh_dock.show()
    window.set_dose(load_dose(folder / "rtdose.dcm"), folder / "rtdose.dcm")
    qtbot.waitUntil(lambda: bool(panel.dvhs), timeout=60_000)
    wait_idle(qtbot, window)
    status = panel.status.text()
    assert "Partial, reaching the edge of the loaded images (DVH of the loaded slices only): BODY." in status
    no_voxel = "Areola, Borders, Breast, Heart, Lt Lung, Nodes, Scar, Tumor Bed and 1 more (all in the CSV)"
    assert f"No voxel on these images (no DVH): {no_voxel}." in status
    assert "delineo dvh RTDOSE RTSTRUCT" in status
    assert panel.save_csv(tmp_path / "dvh.csv")
    rows = {r["structure"]: r for r in csv.DictReader(open(tmp_path / "dvh.csv", encoding="utf-8"))}
    assert "reaches the edge of the loaded images" in rows["BODY"]["warnings"]
    assert float(rows["BODY"]["volume_cc"]) < 200  # the slab of the one image, said to be partial
    assert rows["Breast"]["volume_cc"] == "0" and rows["Breast"]["Dmean_Gy"] == ""
    assert rows["Breast"]["warnings"] == f"Breast: {NO_VOXEL}"
    assert set(rows) == {s.name for s in case.structures}


def test_a_structure_around_an_image_missing_from_the_series_has_its_mask_volume(window, qtbot, tmp_path):
    """IBSI's lung CT without its image at z = -10.4 mm, and GTV-1 drawn on the others: the plane
    is interpolated on loading, the mask filled there, and the DVH's contour planes either side
    reach over it (the panel gives the case's images' slices): the DVH volume is the structure
    table's. It was one 3 mm slice short, the planes read as two separate parts."""
    import shutil

    import pydicom

    from planning.dicom.load import load_series
    from planning.dicom.scan import scan
    from planning.session import ImageReference
    from workstation.app import services
    from workstation.app.case import Case

    folder = data_path("dicom", "ibsi1-lung-ct")
    images = tmp_path / "image"
    images.mkdir()
    for path in (folder / "image").glob("DCM_IMG_*.dcm"):
        if abs(float(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[2]) + 10.4) > 0.01:
            shutil.copy(path, images / path.name)
    dataset = pydicom.dcmread(folder / "RS.dcm")
    item = dataset.ROIContourSequence[0]
    item.ContourSequence = pydicom.Sequence(
        [c for c in item.ContourSequence if abs(float(c.ContourData[2]) + 10.4) > 0.01]
    )
    dataset.save_as(tmp_path / "RS.dcm")
    volume = load_series(scan(images).series[0])
    assert sum(ref is None for ref in volume.slices) == 1
    loaded = services.load_rtstruct(tmp_path / "RS.dcm", volume)
    window.set_case(
        Case.with_structures(volume, [loaded], ImageReference.for_volume(volume, "dicom", images))
    )
    panel = window.dvh_panel
    window.docks.dvh_dock.show()
    dose = Dose(np.full(volume.grid.shape, 2.0, np.float32), volume.grid, volume.frame_of_reference_uid)
    window.set_dose(dose)
    qtbot.waitUntil(lambda: bool(panel.dvhs), timeout=60_000)
    wait_idle(qtbot, window)
    mask_cc = window.case.structures["GTV-1"].volume_cc
    assert panel.values()["GTV-1"]["volume_cc"] == pytest.approx(mask_cc, rel=0.005)


def test_structures_cut_by_the_images_are_still_named_after_the_session_is_reopened(window, qtbot, tmp_path):
    """The reading warnings (contours left out beyond the loaded images) are kept in the session:
    reopened, the DVH panel does not show BODY's 140 cc slab as a whole BODY."""
    from planning.dicom.load import load_series
    from planning.dicom.scan import scan
    from planning.dose import load_dose
    from planning.session import ImageReference
    from workstation.app import services
    from workstation.app.case import Case

    folder = data_path("dicom", "dicompyler-breast")
    volume = load_series(scan(folder).series[0])
    loaded = services.load_rtstruct(folder / "rtss.dcm", volume)
    reference = ImageReference.for_volume(volume, "dicom", folder)
    window.set_case(Case.with_structures(volume, [loaded], reference))
    window.saving.save_session_to(tmp_path / "breast.delineo")
    wait_idle(qtbot, window)
    before = window.case
    window.opening.open_session(tmp_path / "breast.delineo")
    wait_idle(qtbot, window)
    assert window.case is not before
    assert contours_left_out(window.case.structures.warnings)
    assert any("contours were left out" in m for m in window.messages.messages())  # said on opening
    panel = window.dvh_panel
    window.docks.dvh_dock.show()
    window.set_dose(load_dose(folder / "rtdose.dcm"), folder / "rtdose.dcm")
    qtbot.waitUntil(lambda: bool(panel.dvhs), timeout=60_000)
    wait_idle(qtbot, window)
    assert "Partial, reaching the edge of the loaded images (DVH of the loaded slices only): BODY." in (
        panel.status.text()
    )


def test_with_many_structures_rows_choose_the_curves_and_the_legend_stays_readable(window, qtbot):
    """118 names beside the axes squeezed the plot to nothing: above LEGEND_MAX curves there is
    no legend (the rows' colour swatches name the curves), and unticking rows hides curves,
    also after the DVHs are computed again."""
    from PyQt6.QtCore import Qt

    from planning.structures import Structure
    from workstation.app.dvh_panel import LEGEND_MAX

    case = show_sample(window)
    gtv = case.structures["GTV"]
    copies = [Structure(f"GTV_{i:02d}", gtv.mask.copy(), gtv.color, gtv.roi_type) for i in range(LEGEND_MAX)]
    case.add_structures(copies, "Copies")
    panel = window.dvh_panel
    window.docks.dvh_dock.show()
    grid = case.grid
    dose_grid = Grid((20, 64, 64), tuple(2 * s for s in grid.spacing_xyz), grid.origin_xyz, grid.direction)
    ramp = np.broadcast_to(np.linspace(0, 60, 64, dtype=np.float32), dose_grid.shape).copy()
    window.set_dose(Dose(ramp, dose_grid, frame_of_reference_uid=case.volume.frame_of_reference_uid))
    qtbot.waitUntil(lambda: bool(panel.dvhs), timeout=60_000)
    wait_idle(qtbot, window)

    def legend_names():
        legend = panel.canvas.figure.axes[0].get_legend()
        return None if legend is None else [t.get_text() for t in legend.get_texts()]

    assert len(panel.shown()) > LEGEND_MAX and legend_names() is None
    assert f"the legend shows when {LEGEND_MAX} curves or fewer are ticked" in panel.status.text()
    assert not panel.table.item(0, 0).icon().isNull()  # the row's colour names its curve
    for row in range(panel.table.rowCount()):
        item = panel.table.item(row, 0)
        if item.text().startswith("GTV_"):
            item.setCheckState(Qt.CheckState.Unchecked)
    assert not any(name.startswith("GTV_") for name in panel.shown())
    assert legend_names() == panel.shown() and len(panel.canvas.figure.axes[0].lines) == len(panel.shown())
    panel.compute()  # computed again (an edit, a new dose): the unticked rows stay unticked
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=60_000)
    assert legend_names() == panel.shown() and not any(n.startswith("GTV_") for n in panel.shown())


def test_dvhs_computed_before_an_edit_are_not_shown_after_it(window, qtbot, monkeypatch):
    """An edit while the DVHs were computed left that computation current: its curves, of the
    structures before the edit (or half through a stroke), were shown as the case's, and the
    status line said so until the recomputation a second later. The edit now drops it, and the
    worker samples copy-on-write snapshots taken when it started."""
    case = show_sample(window)
    panel = window.dvh_panel
    grid = case.grid
    dose = Dose(
        np.ones(grid.shape, np.float32), grid, frame_of_reference_uid=case.volume.frame_of_reference_uid
    )
    started = []

    def run(title, work, done, failed):
        started.append((work, done))
        return SimpleNamespace(cancel=threading.Event())

    monkeypatch.setattr(window.jobs, "run", run)
    window.set_dose(dose)
    panel.compute()
    work, done = started[-1]
    gtv = case.structures["GTV"].mask
    box = gtv.box
    volume = gtv.volume_cc
    gtv.replace_region(box, np.zeros(tuple(s.stop - s.start for s in box), bool))  # erased in place
    panel.mark_stale("Structures edited")
    result = work(lambda *a: None, None)
    assert next(d for d in result[0] if d.name == "GTV").volume_cc == pytest.approx(volume, rel=0.05)
    done(result)  # the worker's late answer
    assert panel.dvhs == [] and "Structures edited: DVHs to compute" in panel.status.text()


def test_the_metrics_and_curves_are_worked_out_in_the_worker(window, qtbot, monkeypatch):
    """With 117 structures of a 600-slice CT, filling the table and building the curves from the
    DVHs' millions of samples held the window for seconds once the worker was done; both are the
    worker's now, and the window only shows them."""
    import workstation.app.dvh_panel as dvh_panel
    from planning.dvh import DVH

    case = show_sample(window)
    threads = []

    def recorded(function):
        def call(*args, **kwargs):
            threads.append((function.__name__, threading.current_thread() is threading.main_thread()))
            return function(*args, **kwargs)

        return call

    monkeypatch.setattr(DVH, "statistics", recorded(DVH.statistics))
    monkeypatch.setattr(dvh_panel, "plot_dvhs", recorded(dvh_panel.plot_dvhs))
    window.docks.dvh_dock.show()
    grid = case.grid
    frame = case.volume.frame_of_reference_uid
    window.set_dose(Dose(np.ones(grid.shape, np.float32), grid, frame_of_reference_uid=frame))
    qtbot.waitUntil(lambda: bool(window.dvh_panel.dvhs), timeout=60_000)
    wait_idle(qtbot, window)
    assert {name for name, _ in threads} == {"statistics", "plot_dvhs"}
    assert not [name for name, on_main in threads if on_main]
    assert window.dvh_panel.values()["GTV"]["Dmean"] == pytest.approx(1.0)
    assert len(window.dvh_panel.canvas.figure.axes[0].lines) == len(window.dvh_panel.dvhs)


def test_small_volumes_and_relative_doses_show_their_digits(window, qtbot):
    """A 1-voxel structure's volume and relative doses (in % of the reference dose) read with the
    digits that tell them apart, as `delineo dvh` prints them: 2 decimals of a fraction read 0.95."""
    from planning.structures import Mask, Structure

    case = show_sample(window)
    grid = case.grid
    dot = np.zeros(grid.shape, bool)
    dot[10, 30, 30] = True
    case.structures.add(Structure("Dot", Mask.from_full(grid, dot)))
    window.docks.dvh_dock.show()
    frame = case.volume.frame_of_reference_uid
    relative = np.full(grid.shape, 0.9531, np.float32)
    window.set_dose(Dose(relative, grid, units="RELATIVE", frame_of_reference_uid=frame))
    panel = window.dvh_panel
    qtbot.waitUntil(lambda: bool(panel.dvhs), timeout=60_000)
    wait_idle(qtbot, window)
    row = next(r for r in range(panel.table.rowCount()) if panel.table.item(r, 0).text() == "Dot")
    voxel_cc = grid.voxel_volume_cc
    assert voxel_cc < 1
    volume = panel.table.item(row, 1).text()
    assert float(volume) == pytest.approx(voxel_cc, rel=0.005)  # 3 significant digits
    # in percent of the reference dose, as the V_x name them (V95%): "Dmean (relative)" read 0.9531
    assert panel.table.item(row, 2).text() == "95.31"  # Dmean
    assert panel.table.horizontalHeaderItem(2).text() == "Dmean (% of reference)"
