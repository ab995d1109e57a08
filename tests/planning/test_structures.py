import numpy as np
import pytest

from planning.errors import GeometryError
from planning.geometry import Grid
from planning.structures import GenerationAlgorithm, Mask, RoiType, Structure, StructureSet
from planning.tg263 import style_for

GRID = Grid((10, 20, 30), (1.0, 1.0, 2.0))


def ball(center=(5, 10, 15), radius=4):
    z, y, x = np.indices(GRID.shape)
    return (z - center[0]) ** 2 + (y - center[1]) ** 2 + (x - center[2]) ** 2 <= radius**2


def test_mask_is_stored_cropped_and_restores_exactly():
    full = ball()
    mask = Mask.from_full(GRID, full)
    assert mask.array.shape == (9, 9, 9)
    assert mask.offset == (1, 6, 11)
    np.testing.assert_array_equal(mask.full(), full)
    assert mask.volume_cc == pytest.approx(full.sum() * 2.0 / 1000)
    np.testing.assert_array_equal(mask.slice_z(5), full[5])
    assert not Mask.from_full(GRID, np.zeros(GRID.shape, bool)).box


def test_replace_region_grows_and_shrinks_the_box():
    mask = Mask.from_full(GRID, ball())
    box = (slice(0, 2), slice(0, 3), slice(0, 3))
    mask.replace_region(box, np.ones((2, 3, 3), bool))
    assert mask.offset == (0, 0, 0)
    expected = ball()
    expected[box] = True
    np.testing.assert_array_equal(mask.full(), expected)
    mask.replace_region((slice(0, 10), slice(0, 20), slice(0, 30)), np.zeros(GRID.shape, bool))
    assert mask.is_empty and mask.box is None


def test_mask_outside_grid_is_refused():
    with pytest.raises(GeometryError):
        Mask(GRID, np.ones((2, 2, 2), bool), offset=(9, 0, 0))


def test_structure_set_numbers_names_and_events():
    structure_set = StructureSet(GRID, "1.2.3")
    events = []
    structure_set.added.connect(lambda s: events.append(("added", s.name)))
    structure_set.changed.connect(lambda s, box: events.append(("changed", s.name, box)))
    first = structure_set.add(
        Structure(
            "GTV", Mask.from_full(GRID, ball()), roi_type=RoiType.GTV, algorithm=GenerationAlgorithm.AUTOMATIC
        )
    )
    second = structure_set.add(Structure("GTV", Mask(GRID)))
    assert (first.number, second.number) == (1, 2)
    assert second.name == "GTV_2"
    box = (slice(0, 1), slice(0, 2), slice(0, 2))
    before = structure_set.edit_mask("GTV", box, np.ones((1, 2, 2), bool))
    assert not before.any()
    assert first.algorithm == GenerationAlgorithm.SEMIAUTOMATIC  # a person edited a model contour
    assert events[-1] == ("changed", "GTV", box)
    with pytest.raises(KeyError, match="no structure named 'Liver'"):
        structure_set["Liver"]


def test_label_map_round_trip_with_tg263_styles():
    labels = np.zeros(GRID.shape, np.uint8)
    labels[ball()] = 3
    labels[0:2, 0:4, 0:4] = 7
    structure_set = StructureSet.from_label_map(GRID, labels, {3: "Heart", 7: "PTV_High"})
    assert structure_set.names() == ["Heart", "PTV_High"]
    assert structure_set["Heart"].color == (255, 0, 0)
    assert structure_set["PTV_High"].roi_type == RoiType.PTV
    assert structure_set["Heart"].number == 3
    np.testing.assert_array_equal(structure_set.to_label_map() == 1, labels == 3)


def test_a_totalsegmentator_label_map_takes_tg263_colours_told_apart():
    """TotalSegmentator's names ("liver", "kidney_left") got colours hashed from the name: a
    light-green liver, 26 pairs of its 31 structures hard to tell apart (ΔE < 20)."""
    import json

    from support.data import data_path

    from planning.imageio import load_volume
    from planning.tg263 import MIN_DELTA_E, delta_e, standard_structures

    folder = data_path("dicom", "totalseg-example")
    labels = load_volume(folder / "labels.nii.gz")
    names = {int(k): v for k, v in json.loads((folder / "labels.json").read_text()).items()}
    structures = StructureSet.from_label_map(labels.grid, labels.array.astype(np.uint8), names)
    assert structures["liver"].color == standard_structures()["Liver"]["color"]
    assert structures["spinal_cord"].color == standard_structures()["SpinalCord"]["color"]
    colours = [s.color for s in structures]
    assert len(colours) == 31
    assert min(delta_e(a, b) for i, a in enumerate(colours) for b in colours[i + 1 :]) >= MIN_DELTA_E


def test_style_for_unknown_name_is_stable():
    assert style_for("MyThing") == style_for("MyThing")
    assert style_for("BODY")[1] == RoiType.EXTERNAL
    with pytest.raises(ValueError, match="colour"):
        Structure("x", Mask(GRID), color=(300, 0, 0))


def test_edits_inside_the_box_keep_it_tight():
    mask = Mask.from_full(GRID, ball())
    expected = ball()
    # erase the whole top plane of the box: the box must shrink
    top = (slice(1, 2), slice(0, 20), slice(0, 30))
    mask.replace_region(top, np.zeros((1, 20, 30), bool))
    expected[top] = False
    assert mask.offset[0] == 2
    # paint strictly inside: the box stays, content is exact
    inner = (slice(4, 6), slice(9, 11), slice(14, 16))
    mask.replace_region(inner, np.zeros((2, 2, 2), bool))
    expected[inner] = False
    np.testing.assert_array_equal(mask.full(), expected)
    assert mask.box == (slice(2, 10), slice(6, 15), slice(11, 20))


def test_a_label_map_names_each_structure_that_lost_voxels_to_a_later_one(tmp_path):
    """A label map keeps one label per voxel, the later structure's: the warning names the
    structures that keep less than they were drawn with, and how much they keep."""
    from planning.imageio import read_image_file
    from planning.structure_io import label_map_losses, save_structures
    from planning.volume import Volume

    structure_set = StructureSet(GRID, "1.2.3")
    ptv, organ = ball(radius=4), ball(radius=2)
    apart = np.zeros(GRID.shape, bool)
    apart[0:2, 0:3, 0:3] = True
    for name, full in (("PTV63", ptv), ("Larynx", organ), ("Cord", apart)):
        structure_set.add(Structure(name, Mask.from_full(GRID, full)))
    [loss] = label_map_losses(structure_set)
    assert (loss.name, loss.drawn, loss.kept) == ("PTV63", ptv.sum(), (ptv & ~organ).sum())
    assert loss.kept_cc == pytest.approx((ptv & ~organ).sum() * 2.0 / 1000)
    volume = Volume(np.zeros(GRID.shape, np.int16), GRID)
    [warning] = save_structures(structure_set, volume, tmp_path / "labels.nii.gz")
    kept = f"{loss.kept} of {loss.drawn} voxels ({loss.kept / loss.drawn:.0%}"
    assert f"PTV63 keeps {kept}" in warning and "Larynx" not in warning and "Cord" not in warning
    assert "more than one structure" in warning and "save an RTSTRUCT or SEG to keep overlaps" in warning
    labels = read_image_file(tmp_path / "labels.nii.gz").array
    assert (labels == 1).sum() == loss.kept  # what the file holds
    # the later structure wins: listed the other way round, the organ is what loses voxels
    reordered = label_map_losses(structure_set, ["Larynx", "PTV63", "Cord"])
    assert [(lost.name, lost.kept) for lost in reordered] == [("Larynx", 0)]
    structure_set.remove("Larynx")
    assert label_map_losses(structure_set) == []
    assert save_structures(structure_set, volume, tmp_path / "labels.nii.gz") == []


def test_a_misspelt_writer_option_is_an_error_not_ignored(tmp_path):
    """RTSTRUCT options mean nothing to a label map and are left out for it; a name no writer
    knows is refused (a misspelt option silently ignored would write something else)."""
    from planning.structure_io import save_structures
    from planning.volume import Volume

    grid = Grid((4, 8, 8), (1.0, 1.0, 2.0))
    structures = StructureSet(grid)
    structures.add(Structure("Box", Mask.from_full(grid, np.ones(grid.shape, bool))))
    volume = Volume(np.zeros(grid.shape, np.int16), grid)
    save_structures(structures, volume, tmp_path / "labels.nii.gz", simplify_mm=0.5, on_progress=None)
    with pytest.raises(TypeError, match="overlap_advise"):
        save_structures(structures, volume, tmp_path / "labels.nii.gz", overlap_advise="x")


def test_a_snapshot_of_the_set_keeps_what_it_held_while_the_set_is_edited():
    grid = Grid((4, 5, 6), (1.0, 1.0, 1.0))
    structures = StructureSet(grid, "1.2.3", "Plan")
    structures.warnings = ["contours were left out"]
    for name in ("A", "B"):
        structures.add(Structure(name, Mask.from_full(grid, np.ones(grid.shape, bool))))
    whole, part = structures.snapshot(), structures.snapshot(["B"], label="Export")
    structures.edit_mask("B", (slice(0, 1), slice(0, 1), slice(0, 1)), np.zeros((1, 1, 1), bool))
    assert whole.names() == ["A", "B"] and part.names() == ["B"]
    assert (part.label, whole.label, part.frame_of_reference_uid) == ("Export", "Plan", "1.2.3")
    assert whole.warnings == part.warnings == ["contours were left out"]
    assert part["B"].mask.full().all() and not structures["B"].mask.full().all()


def test_a_label_map_moved_two_voxels_says_how_much_of_the_images_it_covers(tmp_path):
    """Moved 2 of 512 columns it covers 99.6 % of the images; 16 samples per axis said 94 %."""
    from support.data import data_path

    from planning.geometry import Grid
    from planning.imageio import load_volume, save_volume
    from planning.structure_io import load_structures

    folder = data_path("dicom", "totalseg-example")
    ct, labels = load_volume(folder / "ct"), load_volume(folder / "labels.nii.gz")
    grid = labels.grid
    origin = np.asarray(grid.origin_xyz) + 2 * grid.spacing_xyz[0] * np.asarray(grid.direction)[:, 0]
    save_volume(labels.with_array(labels.array), tmp_path / "moved.nii.gz")  # then moved:
    moved = load_volume(tmp_path / "moved.nii.gz")
    moved.grid = Grid(grid.shape, grid.spacing_xyz, tuple(origin), grid.direction)
    save_volume(moved, tmp_path / "moved.nii.gz")
    warnings = load_structures(tmp_path / "moved.nii.gz", ct).warnings
    assert any("label map covers 99.6% of the images" in w for w in warnings), warnings


def test_a_mask_keeps_an_unpickled_bool_array_as_the_same_object():
    """An unpickled bool array's dtype equals numpy's bool without being it: the mask must still
    keep the array itself, so that `shared` reads it (the structure table then knows which mask
    it counted; it showed no volume at all for a case built from pickled structures)."""
    import pickle

    array = pickle.loads(pickle.dumps(np.ones((2, 3, 4), bool)))
    mask = Mask(Grid((4, 5, 6), (1.0, 1.0, 1.0)), array, (1, 1, 1))
    assert mask.array is array
    assert mask.shared().array is mask.array
