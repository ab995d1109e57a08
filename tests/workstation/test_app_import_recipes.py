"""An RTSTRUCT whose derived structures' recipes were damaged by another system, or read each
other in a cycle, is imported with every structure and its contours; the Messages say which
recipes were left out, in which file, and why."""

import numpy as np
import pydicom
import pytest
from support.app import show_sample, wait_idle

from planning import derived
from planning.rtstruct.reader import read_rtstruct
from planning.structures import RoiType, Structure, StructureSet

pytestmark = pytest.mark.gui


def test_an_rtstruct_with_a_damaged_recipe_and_a_cycle_is_imported_whole(window, qtbot, tmp_path):
    from workstation.app import services

    case = show_sample(window)
    plan = StructureSet(case.grid, case.volume.frame_of_reference_uid)
    plan.add(Structure("CTV", case.structures["GTV"].mask.copy(), roi_type=RoiType.CTV))
    plan.add(derived.derive({"op": "expand", "source": "CTV", "margins": 5.0}, plan, name="PTV"))
    ring = {"op": "ring", "source": "PTV", "inner_mm": 2, "outer_mm": 10}
    plan.add(derived.derive(ring, plan, name="Ring"))
    path = tmp_path / "RS.dcm"
    services.write_rtstruct(plan, case.volume, path)
    as_written = {s.name: s.mask.full() for s in read_rtstruct(path, case.volume)}
    dataset = pydicom.dcmread(path)
    rois = {roi.ROIName: roi for roi in dataset.StructureSetROISequence}
    rois["Ring"].ROIDescription = rois["Ring"].ROIDescription.replace('"outer_mm":10', '"outer_mm":NaN')
    rois["CTV"].ROIDescription = derived.description_for({"op": "shrink", "source": "PTV", "margins": 5})
    dataset.save_as(path)
    before = case.structures.names()

    window.opening.import_structures(path)
    wait_idle(qtbot, window)
    assert case.structures.names() == [*before, "CTV", "PTV", "Ring"]
    for name, mask in as_written.items():
        assert np.array_equal(case.structures[name].mask.full(), mask), name
        assert case.structures[name].recipe is None
    said = window.messages.messages()
    assert any(
        "Ring: the recipe in its ROI Description in RS.dcm is damaged (the recipe (ring) has outer_mm nan, "
        "not a finite number)" in m
        for m in said
    ), said
    assert any(
        "the recipes of CTV and PTV in RS.dcm read each other in a cycle (CTV → PTV → CTV: each built from "
        "the one before it); they were left out" in m
        for m in said
    ), said
    assert "Imported 3 structure(s) from RS.dcm; " in window.statusBar().currentMessage()
    window.commands.check_stale()
    wait_idle(qtbot, window)
    assert window.commands.stale == []
