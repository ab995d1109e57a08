"""A session whose derived structure's recipe or saved view state is damaged still opens every
image reference, structure and contour, saying what was damaged and what was left out or reset."""

import json

import numpy as np
import pytest

from planning import derived
from planning.geometry import Grid
from planning.session import ImageReference, Session, load_session, save_session
from planning.structures import Mask, PlanarContour, RoiType, Structure, StructureSet


def _session() -> Session:
    """A CTV with its imported contour, a PTV grown from it by 5 mm inside the BODY, and a ring."""
    grid = Grid((12, 40, 40), (1.0, 1.0, 2.5), (0.0, 0.0, 0.0))
    structures = StructureSet(grid, "1.2.3", "Plan")
    body, ctv = np.zeros(grid.shape, bool), np.zeros(grid.shape, bool)
    body[1:11, 2:38, 2:38] = True
    ctv[4:8, 15:25, 15:25] = True
    contour = PlanarContour(
        np.array([[15, 15, 10.0], [25, 15, 10.0], [25, 25, 10.0]]), "CLOSED_PLANAR", "1.9"
    )
    structures.add(Structure("BODY", Mask.from_full(grid, body), (0, 255, 0), RoiType.EXTERNAL))
    structures.add(Structure("CTV", Mask.from_full(grid, ctv), (255, 0, 0), RoiType.CTV, contours=[contour]))
    ptv = {"op": "expand", "source": "CTV", "margins": 5.0, "within": "BODY"}
    structures.add(derived.derive(ptv, structures, name="PTV"))
    structures.add(
        derived.derive({"op": "ring", "source": "PTV", "inner_mm": 1, "outer_mm": 3}, structures, name="Ring")
    )
    reference = ImageReference("file", "/data/ct.nii.gz", grid.shape, grid.spacing_xyz, grid.origin_xyz)
    view = {"cursor_zyx": [5.0, 20.0, 20.0], "window": [400.0, 40.0]}
    return Session(reference, structures, [{"commands": [], "index": 0}], view)


def _damage_ptv_recipe(folder, edit) -> None:
    document = json.loads((folder / "session.json").read_text())
    record = next(r for r in document["structures"] if r["name"] == "PTV")
    record["recipe"] = edit(record["recipe"])
    (folder / "session.json").write_text(json.dumps(document))


def _without(key):
    return lambda recipe: {k: v for k, v in recipe.items() if k != key}


def _with(**values):
    return lambda recipe: {**recipe, **values}


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda r: "CTV+5mm", "the recipe is 'CTV+5mm', not a structure name or an operation"),
        (
            lambda r: [r],
            "the recipe is [{'op': 'expand', 'source': 'CTV', 'margins': 5.0, 'within'…, not a structure "
            "name or an operation",
        ),
        (_without("margins"), "the recipe (expand) has no 'margins'"),
        (_without("source"), "the recipe (expand) has no 'source'"),
        (
            _with(op="grow"),
            "the recipe has the unknown operation 'grow' (known: expand, shrink, ring, fill_holes, "
            "remove_islands, keep_largest, union, intersect, xor, subtract)",
        ),
        (_without("op"), "the recipe has the unknown operation None (known: expand"),
        (_with(margins=float("nan")), "the recipe (expand) has margins nan, not finite numbers of mm ≥ 0"),
        (_with(margins=-3), "the recipe (expand) has margins -3, not finite numbers of mm ≥ 0"),
        (_with(margins="5"), "the recipe (expand) has margins '5', not finite numbers of mm ≥ 0"),
        (
            _with(margins={"right": 5, "up": 3}),
            "the recipe (expand) has margins for 'up', no patient direction",
        ),
        (_with(source=7), "the recipe (expand): its source is 7, not a structure name or an operation"),
        (_with(source=""), "the recipe (expand): its source names no structure"),
        (
            _with(within={"op": "union", "sources": []}),
            "the recipe (expand): its 'within' (union): its sources are [], not a list of structures",
        ),
        (_with(built_from=["CTV"]), "its record of the sources' versions is ['CTV'], not texts by name"),
    ],
)
def test_a_damaged_recipe_is_left_out_and_everything_else_opens(tmp_path, damage, problem):
    session = _session()
    folder = save_session(session, tmp_path / "case")
    _damage_ptv_recipe(folder, damage)
    loaded = load_session(folder)
    assert loaded.structures.names() == ["BODY", "CTV", "PTV", "Ring"]
    for original in session.structures:
        assert np.array_equal(loaded.structures[original.name].mask.full(), original.mask.full())
    assert np.array_equal(
        loaded.structures["CTV"].contours[0].points, session.structures["CTV"].contours[0].points
    )
    ptv = loaded.structures["PTV"]
    assert ptv.recipe is None and derived.RECIPE_TAG not in ptv.description
    assert ptv.description.startswith("Derived: (CTV + 5 mm) ∩ BODY")  # how it was made, still said
    assert loaded.structures["Ring"].recipe == session.structures["Ring"].recipe
    assert len(loaded.warnings) == 1
    assert loaded.warnings[0].startswith(f"session.json: structure 'PTV': its recipe is damaged ({problem}")
    assert loaded.warnings[0].endswith(
        "; the recipe was left out: PTV keeps its contours but is no longer rebuilt from its sources"
    )
    assert loaded.view == session.view and loaded.history == session.history
    assert derived.stale(loaded.structures) == []  # the rest is checked as before, PTV as drawn
    loaded.structures.set_mask("CTV", Mask(loaded.structures.grid))
    assert derived.stale(loaded.structures) == []  # PTV is no longer derived, nor the ring from it


@pytest.mark.parametrize(
    "view, problem",
    [
        ([1, 2], "the view state is [1, 2], not an object of named entries"),
        ({"window": {"__array__": "a7"}}, "history.npz has no array 'a7'"),
        (
            {"views": {"axial": {"pan": {"__slice__": ["x", 2]}}}},
            "session.json: the history has a slice ['x', 2]",
        ),
    ],
)
def test_a_damaged_view_state_is_reset_and_the_history_kept(tmp_path, view, problem):
    session = _session()
    folder = save_session(session, tmp_path / "case")
    document = json.loads((folder / "session.json").read_text())
    document["view"] = view
    (folder / "session.json").write_text(json.dumps(document))
    loaded = load_session(folder)
    assert loaded.view == {} and loaded.history == session.history
    assert loaded.structures.names() == ["BODY", "CTV", "PTV", "Ring"]
    assert len(loaded.warnings) == 1
    assert loaded.warnings[0].startswith(f"{folder}: the view state is damaged and was reset ({problem}")


#: Recipes making a cycle: a CTV shrunk from the PTV grown from it; a PTV grown from itself; a CTV
#: cut from the BODY by the ring around the PTV grown from it.
_CYCLES = [
    (
        {"CTV": {"op": "shrink", "source": "PTV", "margins": 5}},
        ["CTV", "PTV"],
        "the recipes of CTV and PTV in session.json read each other in a cycle (CTV → PTV → CTV: each "
        "built from the one before it); they were left out: CTV and PTV keep their contours but are no "
        "longer rebuilt from their sources",
    ),
    (
        {"PTV": {"op": "expand", "source": "PTV", "margins": 5}},
        ["PTV"],
        "the recipe of PTV in session.json reads PTV itself (PTV → PTV); it was left out: PTV keeps its "
        "contours but is no longer rebuilt from its sources",
    ),
    (
        {"CTV": {"op": "subtract", "source": "BODY", "minus": [{"op": "fill_holes", "source": "Ring"}]}},
        ["CTV", "PTV", "Ring"],
        "the recipes of CTV, PTV and Ring in session.json read each other in a cycle (CTV → PTV → Ring → "
        "CTV: each built from the one before it); they were left out",
    ),
]


@pytest.mark.parametrize("recipes, in_cycle, warning", _CYCLES)
def test_recipes_reading_each_other_in_a_cycle_are_left_out(tmp_path, recipes, in_cycle, warning):
    """Recipes in a cycle cannot be rebuilt, none before the others: they are left out when the
    session opens, the structures kept as they were and the others still derived."""
    session = _session()
    folder = save_session(session, tmp_path / "case")
    document = json.loads((folder / "session.json").read_text())
    for record in document["structures"]:
        if record["name"] in recipes:
            record["recipe"] = {**recipes[record["name"]], "built_from": {}}
    (folder / "session.json").write_text(json.dumps(document))

    loaded = load_session(folder)
    assert loaded.structures.names() == ["BODY", "CTV", "PTV", "Ring"]
    for original in session.structures:
        assert np.array_equal(loaded.structures[original.name].mask.full(), original.mask.full())
    for name in in_cycle:
        assert loaded.structures[name].recipe is None
        assert derived.RECIPE_TAG not in loaded.structures[name].description
    still_derived = [s.name for s in loaded.structures if s.recipe is not None]
    assert still_derived == [n for n in ("PTV", "Ring") if n not in in_cycle]
    assert len(loaded.warnings) == 1 and loaded.warnings[0].startswith(warning), loaded.warnings
    assert derived.rebuild(loaded.structures, still_derived) == still_derived  # no cycle refused
