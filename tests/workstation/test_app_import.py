"""Structures and doses added to the open case: File ▸ Import structures…, Open dose…, or a
dropped RTSTRUCT / RTDOSE file."""

from pathlib import Path

import numpy as np
import pytest
from support.app import show_sample, wait_idle
from support.data import data_path

from planning.imageio import save_volume

pytestmark = pytest.mark.gui


def test_an_rtstruct_and_a_label_map_are_added_as_undoable_steps(window, qtbot, tmp_path):
    window.opening.open_path(data_path("dicom", "ibsi1-lung-ct"))
    wait_idle(qtbot, window)
    case = window.case
    assert case.structures.names() == ["GTV-1"]
    window.opening.open_path(data_path("dicom", "ibsi1-lung-ct", "RS.dcm"))  # a second observer's, say
    wait_idle(qtbot, window)
    assert case.structures.names() == ["GTV-1", "GTV-1_2"]
    assert case.structures["GTV-1_2"].volume_cc == pytest.approx(case.structures["GTV-1"].volume_cc)
    assert "Imported 1 structure(s) from RS.dcm" in window.statusBar().currentMessage()

    labels = np.zeros(case.grid.shape, np.uint8)
    labels[20:30, 80:120, 80:120] = 1
    save_volume(case.volume.with_array(labels), tmp_path / "auto.nii.gz")
    window.opening.import_structures(tmp_path / "auto.nii.gz")
    wait_idle(qtbot, window)
    assert case.structures.names() == ["GTV-1", "GTV-1_2", "Label_1"]
    assert case.structures["Label_1"].mask.full().sum() == labels.sum()
    case.history.undo()
    assert case.structures.names() == ["GTV-1", "GTV-1_2"]


def test_a_dose_of_another_patient_is_refused_when_opened(window, qtbot):
    window.opening.open_path(data_path("dicom", "ibsi1-lung-ct"))
    wait_idle(qtbot, window)
    window.opening.open_path(data_path("dicom", "dicompyler-breast", "rtdose.dcm"))
    wait_idle(qtbot, window)
    assert window.dose_layer is None
    assert "frame of reference" in window.messages.messages()[-1]


def test_of_several_doses_of_the_series_none_is_shown_and_each_is_named(window, qtbot, tmp_path):
    """Two plans' doses beside the images: the first by file name was shown (a boost, 3.7 Gy,
    for a 14.7 Gy plan) without a word of the other."""
    import shutil

    import pydicom
    from pydicom.uid import generate_uid

    folder = tmp_path / "breast"
    shutil.copytree(data_path("dicom", "dicompyler-breast"), folder)
    boost = pydicom.dcmread(folder / "rtdose.dcm")
    boost.SOPInstanceUID, boost.SeriesInstanceUID = generate_uid(), generate_uid()
    boost.DoseGridScaling = float(boost.DoseGridScaling) / 4
    boost.save_as(folder / "a_boost.dcm")
    window.opening.open_path(folder)
    wait_idle(qtbot, window)
    assert window.case is not None and window.dose_layer is None
    said = (
        "2 RT Doses reference this series: a_boost.dcm (PLAN dose, PHYSICAL, GY), rtdose.dcm (PLAN "
        "dose, PHYSICAL, GY): none is shown"
    )
    assert any(said in m for m in window.messages.messages())
    window.opening.open_path(folder / "rtdose.dcm")  # the one wanted
    wait_idle(qtbot, window)
    assert window.dose_layer is not None


def test_a_plans_dose_beside_its_beams_doses_is_shown_and_said_so(window, qtbot, tmp_path):
    """A plan's dose and its beams' (DoseSummationType BEAM, naming the same RTPLAN): the plan's
    is the one to evaluate, shown, and the warning names what each file holds; a beam dose of
    another plan leaves the choice to the user."""
    import shutil

    import pydicom
    from pydicom.uid import generate_uid

    folder = tmp_path / "breast"
    shutil.copytree(data_path("dicom", "dicompyler-breast"), folder)
    beam = pydicom.dcmread(folder / "rtdose.dcm")
    beam.SOPInstanceUID, beam.SeriesInstanceUID = generate_uid(), generate_uid()
    beam.DoseSummationType = "BEAM"
    beam.DoseGridScaling = float(beam.DoseGridScaling) / 4
    beam.save_as(folder / "a_beam.dcm")
    window.opening.open_path(folder)
    wait_idle(qtbot, window)
    assert window.dose_layer is not None and Path(window.dose_path).name == "rtdose.dcm"
    said = (
        "2 RT Doses reference this series: a_beam.dcm (BEAM dose, PHYSICAL, GY), rtdose.dcm (PLAN "
        "dose, PHYSICAL, GY): rtdose.dcm is shown, the whole plan's dose (the others are its beam doses)"
    )
    assert any(said in m for m in window.messages.messages())

    beam.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = generate_uid()  # another plan's beam
    beam.save_as(folder / "a_beam.dcm")
    window.opening.open_path(folder)
    wait_idle(qtbot, window)
    assert window.dose_layer is None
    assert "none is shown" in window.messages.messages()[-1]


def test_menu_actions_need_a_case(window):
    assert not window.menus.import_action.isEnabled() and not window.menus.dose_action.isEnabled()


def test_an_import_keeps_its_reading_warnings_with_the_case():
    """Warnings of an imported set (contours left out beyond the images...) join the case's, for
    the DVH panel; the structures come in as one undo step."""
    from planning.sample_patient import make_sample_patient
    from planning.session import ImageReference
    from planning.structures import Structure, StructureSet
    from workstation.app.case import Case, contours_left_out

    sample = make_sample_patient((10, 32, 32))
    case = Case(sample.volume, sample.structures, ImageReference.for_volume(sample.volume, "sample"))
    loaded = StructureSet(case.grid, case.volume.frame_of_reference_uid)
    loaded.add(Structure("GTV", case.structures["GTV"].mask.copy()))
    loaded.warnings = ["3 contour(s) of GTV lie beyond the loaded images; those contours were left out"]
    assert not contours_left_out(case.structures.warnings)
    case.import_structures(loaded, "Import RS.dcm")
    assert case.structures.names()[-1] == "GTV_2" and contours_left_out(case.structures.warnings)
    case.history.undo()
    assert "GTV_2" not in case.structures


def test_a_reimported_derived_structure_reads_the_reimported_sources(window, qtbot, tmp_path):
    """A GTV and the PTV grown from it, exported and imported again while the open GTV was
    edited: the imported PTV_2 is derived from the imported GTV_2, as it was exported, so it is
    not out of date; it read the open GTV, was marked out of date, and a rebuild overwrote it."""
    from planning import derived
    from workstation.app import services

    case = show_sample(window)
    case.add_structure(
        derived.derive({"op": "expand", "source": "GTV", "margins": 5.0}, case.structures, name="PTV")
    )
    exported = services.write_rtstruct(case.structures, case.volume, tmp_path / "RS.dcm")
    assert not any("PTV" in w and "recipe" in w for w in exported)
    k = int(case.structures["GTV"].mask.offset[0]) + 2
    case.edit_region(
        "Paint", "GTV", (slice(k, k + 1), slice(5, 15), slice(5, 15)), np.ones((1, 10, 10), bool)
    )
    ptv_as_exported = case.structures["PTV"].mask.full()

    window.opening.import_structures(tmp_path / "RS.dcm")
    wait_idle(qtbot, window)
    assert {"GTV_2", "PTV_2"} <= set(case.structures.names())
    imported = case.structures["PTV_2"]
    assert derived.sources(imported.recipe) == {"GTV_2"} and set(imported.recipe["built_from"]) == {"GTV_2"}
    assert "GTV_2 + 5 mm" in imported.description
    window.commands.check_stale()
    wait_idle(qtbot, window)
    assert window.commands.stale == ["PTV"]  # the open PTV, whose GTV was edited; not the imported one
    window.commands.rebuild_stale()
    wait_idle(qtbot, window)
    assert imported.mask.full().sum() == pytest.approx(ptv_as_exported.sum(), rel=0.02)
    assert not np.array_equal(case.structures["PTV"].mask.full(), ptv_as_exported)
