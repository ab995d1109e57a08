"""Booleans and clean-up on cropped masks."""

import numpy as np
import pytest

from planning import booleans
from planning.geometry import Grid
from planning.structures import Mask

GRID = Grid((20, 30, 30), (1.0, 1.0, 2.0))


def block(z, y, x):
    full = np.zeros(GRID.shape, bool)
    full[z, y, x] = True
    return Mask.from_full(GRID, full)


A = block(slice(2, 10), slice(5, 15), slice(5, 15))
B = block(slice(6, 14), slice(10, 20), slice(10, 20))


def test_set_operations_match_numpy():
    a, b = A.full(), B.full()
    assert np.array_equal(booleans.union(A, B).full(), a | b)
    assert np.array_equal(booleans.intersect(A, B).full(), a & b)
    assert np.array_equal(booleans.subtract(A, B).full(), a & ~b)
    assert np.array_equal(booleans.xor(A, B).full(), a ^ b)
    far = block(slice(15, 18), slice(25, 28), slice(25, 28))
    assert booleans.intersect(A, far).is_empty
    assert booleans.intersect(A, Mask(GRID)).is_empty
    assert booleans.union(Mask(GRID), A).voxel_count == A.voxel_count


def test_results_are_cropped_and_new():
    result = booleans.intersect(A, B)
    assert result.array.shape == (4, 5, 5) and result.offset == (6, 10, 10)
    assert result is not A and booleans.subtract(A).array is not A.array


def test_fill_holes_3d_and_per_slice():
    shell = booleans.subtract(
        block(slice(2, 12), slice(5, 15), slice(5, 15)), block(slice(4, 10), slice(7, 13), slice(7, 13))
    )
    assert booleans.fill_holes(shell).voxel_count == 10 * 100
    tube = booleans.subtract(A, block(slice(0, 20), slice(8, 12), slice(8, 12)))  # open at both ends
    assert booleans.fill_holes(tube).voxel_count == tube.voxel_count
    assert booleans.fill_holes(tube, per_slice=True).voxel_count == A.voxel_count


def test_islands():
    big = block(slice(2, 10), slice(5, 15), slice(5, 15))  # 800 voxels = 1.6 cc
    small = block(slice(15, 17), slice(25, 27), slice(25, 27))  # 8 voxels = 0.016 cc
    both = booleans.union(big, small)
    assert booleans.remove_islands(both, 0.1).voxel_count == 800
    assert booleans.remove_islands(both, 5).is_empty
    assert booleans.keep_largest(both).voxel_count == 800
    assert booleans.keep_largest(both, 2).voxel_count == 808


def test_derived_recipe_round_trip_and_rebuild():
    from planning.derived import describe, rebuild, recipe_from_description, stale
    from planning.structures import Structure, StructureSet

    structure_set = StructureSet(GRID)
    structure_set.add(Structure("CTV", A.copy()))
    structure_set.add(Structure("Rectum", B.copy()))
    from planning.derived import derive

    recipe = {
        "op": "subtract",
        "source": {"op": "expand", "source": "CTV", "margins": 2},
        "minus": ["Rectum"],
    }
    ptv = structure_set.add(derive(recipe, structure_set, name="PTV_Eval"))
    assert describe(recipe) == "((CTV + 2 mm) − Rectum)"
    assert recipe_from_description(ptv.description) == recipe
    assert not (ptv.mask.full() & B.full()).any()
    assert stale(structure_set) == []
    structure_set.set_mask("Rectum", Mask(GRID))
    assert stale(structure_set) == ["PTV_Eval"]
    before = ptv.volume_cc
    assert rebuild(structure_set) == ["PTV_Eval"]
    assert structure_set["PTV_Eval"].volume_cc > before and stale(structure_set) == []


def test_rebuilding_a_derived_structure_rebuilds_those_built_from_it():
    """GTV → CTV → PTV: after the GTV is edited the CTV is stale, and so is the PTV grown from it,
    which follows it in the same rebuild."""
    from planning.derived import derive, rebuild, stale
    from planning.margins import expand
    from planning.structures import Structure, StructureSet

    structure_set = StructureSet(GRID)
    structure_set.add(Structure("GTV", A.copy()))
    structure_set.add(derive({"op": "expand", "source": "GTV", "margins": 2}, structure_set, name="CTV"))
    structure_set.add(derive({"op": "expand", "source": "CTV", "margins": 4}, structure_set, name="PTV"))
    structure_set.set_mask("GTV", B.copy())
    assert stale(structure_set) == ["CTV", "PTV"]
    assert rebuild(structure_set) == ["CTV", "PTV"] and stale(structure_set) == []
    expected = expand(expand(B, 2), 4)
    assert np.array_equal(structure_set["PTV"].mask.full(), expected.full())


def test_why_a_derived_structure_is_out_of_date_names_its_sources():
    """The export check warns with these: the CTV's GTV changed, the PTV's CTV is out of date,
    the ring's body is gone."""
    from planning.derived import derive, why_stale
    from planning.structures import Structure, StructureSet

    structure_set = StructureSet(GRID)
    structure_set.add(Structure("GTV", A.copy()))
    structure_set.add(Structure("BODY", B.copy()))
    structure_set.add(derive({"op": "expand", "source": "GTV", "margins": 2}, structure_set, name="CTV"))
    structure_set.add(derive({"op": "expand", "source": "CTV", "margins": 4}, structure_set, name="PTV"))
    ring = {"op": "subtract", "sources": ["BODY", "PTV", "GTV"]}
    structure_set.add(derive(ring, structure_set, name="Ring"))
    assert why_stale(structure_set) == {}
    structure_set.set_mask("GTV", B.copy())
    structure_set.remove("BODY")
    assert why_stale(structure_set) == {
        "CTV": "derived from GTV, which changed since",
        "PTV": "derived from CTV, which is out of date itself",
        "Ring": "derived from GTV, which changed since; from BODY, which is no longer in the set; "
        "from PTV, which is out of date itself",
    }


def test_a_result_written_into_its_own_source_is_an_edit_not_a_recipe():
    """ "Bone" = Bone + 3 mm kept a recipe reading Bone: it was stale at once, and every rebuild
    grew it by another 3 mm."""
    from planning.derived import derive, stale
    from planning.margins import expand
    from planning.structures import Structure, StructureSet

    structure_set = StructureSet(GRID)
    structure_set.add(Structure("Bone", A.copy()))
    grown = derive({"op": "expand", "source": "Bone", "margins": 3}, structure_set, name="Bone")
    assert grown.recipe is None and grown.description == "Edited: Bone + 3 mm"
    assert np.array_equal(grown.mask.full(), expand(A, 3).full())
    structure_set.set_mask("Bone", grown.mask)
    structure_set["Bone"].recipe = grown.recipe
    assert stale(structure_set) == []


@pytest.mark.parametrize(
    "recipe",
    [
        {"op": "union", "sources": ["A", "B"]},
        {"op": "intersect", "sources": ["A", "B"]},
        {"op": "xor", "sources": ["A", "B"]},
        {"op": "subtract", "source": "A", "minus": ["B"]},
        {"op": "subtract", "sources": ["A", "B"]},
        {"op": "fill_holes", "source": "A"},
        {"op": "remove_islands", "source": "A", "min_cc": 0.001},
        {"op": "keep_largest", "source": "A"},
        {"op": "shrink", "source": "A", "margins": 1},
        {"op": "expand", "source": "A", "margins": 3},
        {"op": "ring", "source": "A", "inner_mm": 0, "outer_mm": 4},
    ],
)
def test_every_recipe_keeps_its_result_within_the_limit(recipe):
    from planning.derived import evaluate

    body = block(slice(0, 20), slice(0, 30), slice(0, 11))  # cuts through A and B
    unlimited = evaluate(recipe, {"A": A, "B": B}).full()
    limited = evaluate({**recipe, "within": "Body"}, {"A": A, "B": B, "Body": body}).full()
    assert unlimited[:, :, 11:].any()  # the limit matters
    assert np.array_equal(limited, unlimited & body.full())
