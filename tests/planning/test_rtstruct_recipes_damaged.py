"""An RTSTRUCT whose derived structure's recipe (in its ROI Description) was damaged by another
system is read whole: the damaged recipe is left out with a warning naming the structure, the
file and the fault, and the structure keeps its contours."""

import numpy as np
import pydicom
import pytest
from support.dicom_factory import ct_phantom, write_ct_series

from planning import derived
from planning.imageio import load_volume
from planning.rtstruct.reader import read_rtstruct
from planning.rtstruct.writer import write_rtstruct
from planning.structures import Mask, RoiType, Structure, StructureSet


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A CT, and the RTSTRUCT of a CTV, the PTV grown from it by 5 mm inside the BODY and a ring
    around the PTV; with the masks read back from it as written."""
    folder = tmp_path_factory.mktemp("ct")
    write_ct_series(folder, ct_phantom((10, 40, 40)))
    volume = load_volume(folder)
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    body, ctv = np.zeros(volume.grid.shape, bool), np.zeros(volume.grid.shape, bool)
    body[1:9, 2:38, 2:38] = True
    ctv[4:7, 15:25, 15:25] = True
    structures.add(Structure("BODY", Mask.from_full(volume.grid, body), roi_type=RoiType.EXTERNAL))
    structures.add(Structure("CTV", Mask.from_full(volume.grid, ctv), roi_type=RoiType.CTV))
    ptv = {"op": "expand", "source": "CTV", "margins": 5, "within": "BODY"}
    structures.add(derived.derive(ptv, structures, name="PTV"))
    ring = {"op": "ring", "source": "PTV", "inner_mm": 1, "outer_mm": 4}
    structures.add(derived.derive(ring, structures, name="Ring"))
    path = tmp_path_factory.mktemp("rs") / "RS.plan.dcm"
    write_rtstruct(structures, volume, path)
    as_written = read_rtstruct(path, volume)
    assert as_written.warnings == [] and as_written["PTV"].recipe is not None
    return path, volume, {s.name: s.mask.full() for s in as_written}


def _with_description(source, target, name: str, edit) -> None:
    """Copy RTSTRUCT `source` to `target` with the ROI Description of `name` edited."""
    dataset = pydicom.dcmread(source)
    roi = next(r for r in dataset.StructureSetROISequence if r.ROIName == name)
    roi.ROIDescription = edit(roi.get("ROIDescription", ""))
    dataset.save_as(target)


@pytest.mark.parametrize(
    "damage, problem",
    [
        (
            lambda d: d.replace('"margins":5', '"margins":NaN'),
            "the recipe (expand) has margins nan, not finite numbers of mm ≥ 0",
        ),
        (lambda d: d.replace('"margins":5', '"margins":-5'), "the recipe (expand) has margins -5"),
        (
            lambda d: d.replace('"op":"expand"', '"op":"grow"'),
            "the recipe has the unknown operation 'grow' (known: expand, shrink, ring",
        ),
        (
            lambda d: d.replace('"source":"CTV"', '"source":""'),
            "the recipe (expand): its source names no structure",
        ),
        # cut to 64 characters (an LO), or by one
        (lambda d: d[:64], "its JSON is cut short or damaged (Unterminated string starting at: character"),
        (lambda d: d[:-1], "its JSON is cut short or damaged (Expecting ',' delimiter: its end, "),
        (
            lambda d: d[: d.index(derived.RECIPE_TAG) + len(derived.RECIPE_TAG)] + '["CTV", 5]',
            "the recipe is ['CTV', 5], not a structure name or an operation",
        ),
    ],
)
def test_a_damaged_recipe_is_left_out_and_the_structure_read(exported, tmp_path, damage, problem):
    path, volume, masks = exported
    damaged = tmp_path / "RS.edited.dcm"
    _with_description(path, damaged, "PTV", damage)

    back = read_rtstruct(damaged, volume)
    assert back.names() == list(masks)
    for structure in back:
        assert np.array_equal(structure.mask.full(), masks[structure.name]), structure.name
    ptv = back["PTV"]
    assert ptv.recipe is None and derived.RECIPE_TAG not in ptv.description
    assert back["Ring"].recipe["source"] == "PTV" and derived.stale(back) == []
    assert len(back.warnings) == 1
    warning = back.warnings[0]
    assert warning.startswith(
        f"PTV: the recipe in its ROI Description in RS.edited.dcm is damaged ({problem}"
    ), warning
    assert warning.endswith(
        "the recipe was left out: PTV keeps its contours but is no longer rebuilt from its sources"
    )


def test_a_recipe_too_long_for_a_description_cut_at_1024_characters_is_said_damaged(exported, tmp_path):
    """Another system that wrote back a longer summary and cut the description at the ROI
    Description's 1024 characters cut the recipe's end."""
    path, volume, masks = exported
    damaged = tmp_path / "RS.cut.dcm"
    _with_description(path, damaged, "PTV", lambda d: (("Reviewed. " * 110)[: 1044 - len(d)] + d)[:1024])

    back = read_rtstruct(damaged, volume)
    assert back["PTV"].recipe is None and back["PTV"].description.startswith("Reviewed.")
    assert np.array_equal(back["PTV"].mask.full(), masks["PTV"])
    assert any(
        w.startswith("PTV: the recipe in its ROI Description in RS.cut.dcm is damaged") for w in back.warnings
    )


def test_recipes_reading_each_other_in_a_cycle_are_left_out(exported, tmp_path):
    """Another system gave the CTV a recipe shrinking it from the PTV grown from it: neither can be
    rebuilt before the other, so both recipes are left out; the ring around the PTV stays derived."""
    path, volume, masks = exported
    damaged = tmp_path / "RS.cycle.dcm"
    ctv = derived.description_for({"op": "shrink", "source": "PTV", "margins": 5})
    _with_description(path, damaged, "CTV", lambda d: ctv)

    back = read_rtstruct(damaged, volume)
    assert back.names() == list(masks)
    for structure in back:
        assert np.array_equal(structure.mask.full(), masks[structure.name]), structure.name
    assert back["CTV"].recipe is None and back["PTV"].recipe is None and back["Ring"].recipe is not None
    assert back["CTV"].description == "Derived: PTV − 5 mm"
    assert back.warnings == [
        "the recipes of CTV and PTV in RS.cycle.dcm read each other in a cycle (CTV → PTV → CTV: each "
        "built from the one before it); they were left out: CTV and PTV keep their contours but are no "
        "longer rebuilt from their sources"
    ]
    assert derived.rebuild(back, ["Ring"]) == ["Ring"]


def test_cycles_are_found_with_their_members_and_one_cycle_through_the_first():
    from planning.recipe_check import cycles

    reads = {
        "PTV": {"CTV", "BODY"},
        "CTV": {"PTV"},
        "Ring": {"PTV"},  # built from a cycle, on none
        "A": {"B"},
        "B": {"A", "C"},
        "C": {"B"},
        "Self": {"Self"},
    }
    assert cycles(reads) == [
        (["PTV", "CTV"], ["PTV", "CTV", "PTV"]),
        (["A", "B", "C"], ["A", "B", "A"]),
        (["Self"], ["Self", "Self"]),
    ]
    assert cycles({"PTV": {"CTV"}, "Ring": {"PTV", "BODY"}}) == []
