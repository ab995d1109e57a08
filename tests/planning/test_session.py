"""Qt-free sessions: structures, contours, history arrays and view state survive a round trip."""

import json
import zipfile

import numpy as np
import pytest

from planning.errors import FormatError
from planning.geometry import Grid
from planning.session import FilledPlanes, ImageReference, Session, load_session, save_session
from planning.structures import DrawnElsewhere, Mask, PlanarContour, RoiType, Structure, StructureSet


def _session() -> Session:
    grid = Grid((6, 20, 30), (0.8, 0.9, 2.5), (10.0, -5.0, 3.0))
    structures = StructureSet(grid, "1.2.3", "Plan A")
    structures.warnings = ["Body: 3 contours were left out: they lie beyond the loaded images"]
    ball = np.zeros(grid.shape, bool)
    ball[1:5, 4:15, 6:20] = True
    ball[2:4, 7:10, 9:12] = False  # a hole
    gtv = Mask.from_full(grid, ball)
    structures.add(
        Structure(
            "GTV",
            gtv,
            (255, 0, 0),
            RoiType.GTV,
            recipe={"op": "expand", "source": "Imported", "margins": 5.0},
            locked=True,
        )
    )
    contour = PlanarContour(np.array([[0, 0, 3.0], [5, 0, 3.0], [5, 5, 3.0]]), "CLOSED_PLANAR", "1.2.3.4")
    moved = DrawnElsewhere(spacing_mm=5.0, drawn_cc=12.5, placed_cc=12.25)  # read from 5 mm planes
    structures.add(
        Structure(
            "Imported", Mask(grid), (0, 0, 255), contours=[contour], drawn_elsewhere=moved, visible=False
        )
    )
    reference = ImageReference(
        "dicom",
        "/data/ct",
        grid.shape,
        grid.spacing_xyz,
        grid.origin_xyz,
        series_uid="1.2.3.9",
        frame_of_reference_uid="1.2.3",
    )
    history = [
        {
            "commands": [
                {
                    "kind": "mask_edit",
                    "before": np.ones((2, 3, 4), bool),
                    "values": np.arange(5, dtype=np.int16),
                    "box": [slice(1, 3)],
                }
            ],
            "index": 1,
        }
    ]
    return Session(reference, structures, history, {"cursor_zyx": [1.0, 2.0, 3.0], "maximised": None})


@pytest.mark.parametrize("name", ["case.delineo", "case-folder"])
def test_round_trip(tmp_path, name):
    session = _session()
    path = save_session(session, tmp_path / name)
    loaded = load_session(path)
    assert loaded.image == session.image
    assert loaded.image.grid.same_as(session.structures.grid)
    assert loaded.structures.names() == ["GTV", "Imported"]
    assert loaded.structures.label == "Plan A" and loaded.structures.frame_of_reference_uid == "1.2.3"
    assert loaded.structures.warnings == session.structures.warnings  # what import left out
    for original in session.structures:
        copy = loaded.structures[original.name]
        assert np.array_equal(copy.mask.full(), original.mask.full())
        assert (copy.color, copy.roi_type, copy.recipe, copy.visible, copy.locked, copy.number) == (
            original.color,
            original.roi_type,
            original.recipe,
            original.visible,
            original.locked,
            original.number,
        )
    contour = loaded.structures["Imported"].contours[0]
    assert np.array_equal(contour.points, session.structures["Imported"].contours[0].points)
    assert contour.image_uid == "1.2.3.4" and loaded.structures["GTV"].contours is None
    assert loaded.structures["Imported"].drawn_elsewhere == DrawnElsewhere(5.0, 12.5, 12.25)
    assert loaded.structures["GTV"].drawn_elsewhere is None
    command = loaded.history[0]["commands"][0]
    assert (
        command["before"].dtype == bool and command["before"].shape == (2, 3, 4) and command["before"].all()
    )
    assert np.array_equal(command["values"], np.arange(5)) and command["box"] == [slice(1, 3)]
    assert loaded.view == {"cursor_zyx": [1.0, 2.0, 3.0], "maximised": None}
    assert loaded.saved_at


def test_masks_are_stored_cropped_and_bit_packed(tmp_path):
    session = _session()
    path = save_session(session, tmp_path / "s.delineo")
    with zipfile.ZipFile(path) as archive:
        document = json.loads(archive.read("session.json"))
        masks = archive.getinfo("structures.npz").file_size
    assert document["structures"][0]["shape"] == [4, 11, 14]
    assert masks < 2000


def test_saving_over_a_session_is_atomic(tmp_path, monkeypatch):
    path = save_session(_session(), tmp_path / "s.delineo")
    before = path.read_bytes()
    import planning.session as module

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(module, "_npz_bytes", broken)
    with pytest.raises(OSError):
        save_session(_session(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.delineo"]


def test_damaged_or_foreign_files_give_clear_errors(tmp_path):
    (tmp_path / "x.delineo").write_bytes(b"not a zip")
    with pytest.raises(FormatError, match="x.delineo: not a Delineo session archive"):
        load_session(tmp_path / "x.delineo")
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "session.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(FormatError, match="not a Delineo session"):
        load_session(folder)
    with pytest.raises(FormatError, match="no such session"):
        load_session(tmp_path / "missing.delineo")


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_damaged_members_are_named_in_a_format_error(tmp_path):
    folder = save_session(_session(), tmp_path / "f")
    _truncate(folder / "structures.npz")
    with pytest.raises(FormatError, match=r"f: damaged Delineo session \(structures.npz unreadable"):
        load_session(folder)
    (folder / "session.json").write_text("[1, 2]")
    with pytest.raises(FormatError, match="f: not a Delineo session"):
        load_session(folder)


def _edit_json(folder, edit) -> None:
    document = json.loads((folder / "session.json").read_text())
    edit(document)
    (folder / "session.json").write_text(json.dumps(document))


def _without_array(folder, key: str) -> None:
    with np.load(folder / "structures.npz") as npz:
        arrays = {name: npz[name] for name in npz.files if name != key}
    np.savez_compressed(folder / "structures.npz", **arrays)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: _edit_json(f, lambda d: d.pop("image")), "session.json has no 'image' entry"),
        (lambda f: _edit_json(f, lambda d: d.pop("structures")), "session.json has no 'structures' entry"),
        (
            lambda f: _edit_json(f, lambda d: d["image"].pop("shape")),
            "session.json: the 'image' entry has no 'shape' entry",
        ),
        (
            lambda f: _edit_json(f, lambda d: d["image"].update(bogus=1)),
            "session.json: the 'image' entry has unknown field(s) 'bogus'",
        ),
        (
            lambda f: _edit_json(f, lambda d: d["structures"][0].pop("offset")),
            "session.json: structure 'GTV' has no 'offset' entry",
        ),
        (
            lambda f: _edit_json(f, lambda d: d["structures"][0].update(color="red")),
            "session.json: structure 'GTV' has colour 'red', not three numbers 0–255",
        ),
        (
            lambda f: _edit_json(f, lambda d: d["structures"][1].update(color=[0, 300, 0])),
            "session.json: structure 'Imported' has colour [0, 300, 0], not three numbers 0–255",
        ),
        (
            lambda f: _without_array(f, "s0_mask"),
            "structures.npz has no mask for structure 'GTV' (s0_mask)",
        ),
        (
            lambda f: _without_array(f, "s1_contours_points"),
            "structures.npz has no contours for structure 'Imported' (s1_contours_points)",
        ),
        (
            lambda f: (f / "structures.npz").unlink(),
            "structures.npz is missing (it holds the masks of 2 structure(s))",
        ),
    ],
)
def test_missing_or_malformed_entries_are_said_in_words(tmp_path, damage, message):
    folder = save_session(_session(), tmp_path / "f")
    damage(folder)
    with pytest.raises(FormatError) as error:
        load_session(folder)
    assert str(error.value) == f"{folder}: damaged Delineo session ({message})"


def _set(index: int, **values):
    """A damage: structure record `index` of session.json gets `values`."""
    return lambda f: _edit_json(f, lambda d: d["structures"][index].update(values))


def _set_contours(**values):
    """A damage: the imported contours of structure 'Imported' get `values`."""
    return lambda f: _edit_json(f, lambda d: d["structures"][1]["contours"].update(values))


def _replace_array(folder, key: str, value) -> None:
    with np.load(folder / "structures.npz") as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays[key] = value(arrays[key])
    np.savez_compressed(folder / "structures.npz", **arrays)


ROI_TYPES = ", ".join(t.value for t in RoiType)


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            _set(0, number="x"),
            "session.json: structure 'GTV' has ROI number 'x', not a whole number from 1 to 2147483647",
        ),
        (
            _set(0, number=None),
            "session.json: structure 'GTV' has ROI number None, not a whole number from 1 to 2147483647",
        ),
        (
            _set(1, number=2.5),
            "session.json: structure 'Imported' has ROI number 2.5, not a whole number from 1 to 2147483647",
        ),
        (
            _set(0, number=0),
            "session.json: structure 'GTV' has ROI number 0, not a whole number from 1 to 2147483647",
        ),
        (
            _set(0, number=2**31),
            "session.json: structure 'GTV' has ROI number 2147483648, not a whole number from 1 to "
            "2147483647",
        ),
        (
            _set(0, color=[10**400, 0, 0]),  # valid JSON, too large for a float
            f"session.json: structure 'GTV' has colour {repr([10**400, 0, 0])[:59]}…, not three numbers "
            "0–255",
        ),
        (_set(1, number=1), "session.json: structures 'GTV' and 'Imported' have the same ROI number 1"),
        (_set(1, name="GTV"), "session.json: two structures are named 'GTV'"),
        (
            _set(0, roi_type="TUMOUR"),
            f"session.json: structure 'GTV' has ROI type 'TUMOUR', not one of {ROI_TYPES}",
        ),
        (_set(0, roi_type=3), f"session.json: structure 'GTV' has ROI type 3, not one of {ROI_TYPES}"),
        (
            _set(0, algorithm="BY HAND"),
            "session.json: structure 'GTV' has generation algorithm 'BY HAND', not one of AUTOMATIC, "
            "SEMIAUTOMATIC, MANUAL",
        ),
        (_set(0, name=7), "session.json: structure 1 has name 7, not a non-empty text"),
        (_set(1, name=" "), "session.json: structure 2 has name ' ', not a non-empty text"),
        (_set(0, description=["a"]), "session.json: structure 'GTV' has description ['a'], not a text"),
        (_set(0, visible="no"), "session.json: structure 'GTV' has 'visible' 'no', not true or false"),
        (_set(0, locked=1), "session.json: structure 'GTV' has 'locked' 1, not true or false"),
        (
            _set(0, color=[255, True, 0]),
            "session.json: structure 'GTV' has colour [255, True, 0], not three numbers 0–255",
        ),
        (_set(0, key=3), "session.json: structure 'GTV' has key 3, not a non-empty text"),
        (
            _set(0, shape=[4, "11", 14]),
            "session.json: structure 'GTV' has mask shape [4, '11', 14], not three whole numbers ≥ 0",
        ),
        (
            _set(0, shape=[4, 11]),
            "session.json: structure 'GTV' has mask shape [4, 11], not three whole numbers ≥ 0",
        ),
        (_set(0, offset=5), "session.json: structure 'GTV' has mask offset 5, not three whole numbers ≥ 0"),
        (
            _set(0, offset=[1, 4, 20]),
            "session.json: structure 'GTV': mask box at (1, 4, 20) of shape (4, 11, 14) leaves the grid "
            "(6, 20, 30)",
        ),
        (
            lambda f: _replace_array(f, "s0_mask", lambda a: a[:-10]),
            "structures.npz: the mask of structure 'GTV' (s0_mask) is 67 uint8 value(s) of shape (67,), not "
            "the 77 bytes of 4×11×14 yes/no values",
        ),
        (
            lambda f: _replace_array(f, "s0_mask", lambda a: a.astype(np.float32)),
            "structures.npz: the mask of structure 'GTV' (s0_mask) is 77 float32 value(s) of shape (77,), "
            "not the 77 bytes of 4×11×14 yes/no values",
        ),
        (
            lambda f: _edit_json(f, lambda d: d["structures"].__setitem__(0, 5)),
            "session.json: structure 1 is 5, not an object of named entries",
        ),
        (
            lambda f: _edit_json(f, lambda d: d.update(structures={"GTV": {}})),
            "session.json has structures {'GTV': {}}, not a list",
        ),
        (
            _set(1, contours="CLOSED_PLANAR"),
            "session.json: structure 'Imported': its contours is 'CLOSED_PLANAR', not an object of named "
            "entries",
        ),
        (
            _set_contours(types=["CLOSED"]),
            "session.json: structure 'Imported': its contours has a type 'CLOSED', not one of CLOSED_PLANAR, "
            "CLOSEDPLANAR_XOR, OPEN_PLANAR, POINT",
        ),
        (
            _set_contours(uids=["1.2.3.4", "1.2.3.5"]),
            "session.json: structure 'Imported': its contours have 1 types but 2 image UIDs",
        ),
        (
            _set_contours(uids=[5]),
            "session.json: structure 'Imported': its contours has uids [5], not a list of texts",
        ),
        (
            lambda f: _edit_json(f, lambda d: d["structures"][1]["contours"].pop("types")),
            "session.json: structure 'Imported': its contours has no 'types' entry",
        ),
        (
            lambda f: _replace_array(f, "s1_contours_counts", lambda a: a + 2),
            "structures.npz: the contours of structure 'Imported' (s1_contours) have 1 point count(s) adding "
            "up to 5 for 1 contour(s) of 3 points",
        ),
        (
            lambda f: _replace_array(f, "s1_contours_points", lambda a: a[:, :2]),
            "structures.npz: the contours of structure 'Imported' (s1_contours) have points of shape (3, 2) "
            "(float64), not (N, 3) numbers",
        ),
        (
            lambda f: _edit_json(f, lambda d: d["image"].update(kind="pacs")),
            "session.json: the 'image' entry has kind 'pacs', not one of dicom, file, sample",
        ),
        (
            lambda f: _edit_json(f, lambda d: d["image"].update(shape=["6", 20, 30])),
            "session.json: the 'image' entry has shape ['6', 20, 30], not three whole numbers ≥ 1",
        ),
        (
            lambda f: _edit_json(f, lambda d: d["image"].update(spacing_xyz=[0.8, None, 2.5])),
            "session.json: the 'image' entry has spacing_xyz [0.8, None, 2.5], not three numbers",
        ),
        (
            lambda f: _edit_json(f, lambda d: d["image"].update(spacing_xyz=[10**400, 1.0, 1.0])),
            f"session.json: the 'image' entry has spacing_xyz {repr([10**400, 1.0, 1.0])[:59]}…, not three "
            "numbers",
        ),
        (
            lambda f: _edit_json(f, lambda d: d["image"].update(direction=[1, 0, 0, 0, 1, 0, 0, 0])),
            "session.json: the 'image' entry has direction [1, 0, 0, 0, 1, 0, 0, 0], not nine numbers",
        ),
        (
            lambda f: _edit_json(f, lambda d: d["image"].update(spacing_xyz=[0.8, 0, 2.5])),
            "session.json: the 'image' entry: voxel spacing must be three positive sizes in mm, got "
            "(0.8, 0.0, 2.5)",
        ),
        (
            lambda f: _edit_json(f, lambda d: d["image"].update(path=5)),
            "session.json: the 'image' entry has path 5, not a text",
        ),
        (
            lambda f: _edit_json(f, lambda d: d.update(image=[])),
            "session.json: the 'image' entry is [], not an object of named entries",
        ),
        (
            lambda f: _edit_json(f, lambda d: d.update(structure_set=["Plan A"])),
            "session.json: the 'structure_set' entry is ['Plan A'], not an object of named entries",
        ),
        (
            lambda f: _edit_json(f, lambda d: d["structure_set"].update(label=None)),
            "session.json: the 'structure_set' entry has label None, not a text",
        ),
        (
            lambda f: _edit_json(f, lambda d: d["structure_set"].update(warnings="3 contours left out")),
            "session.json: the 'structure_set' entry has warnings '3 contours left out', not a list of texts",
        ),
    ],
)
def test_each_damaged_value_is_named_with_what_was_expected(tmp_path, damage, message):
    """A damaged value of a structure, of the image reference or of the structure set refuses
    the file, as other damages do (nothing drawn is dropped or guessed), saying which value of
    which structure is wrong and what was expected; some were Python's text ("invalid literal
    for int() with base 10: 'x'", "'TUMOUR' is not a valid RoiType"), others loaded as
    something else (a mask cut short read as empty voxels, ROI number 0 or a duplicate
    renumbered, the string "no" as visible)."""
    folder = save_session(_session(), tmp_path / "f")
    damage(folder)
    with pytest.raises(FormatError) as error:
        load_session(folder)
    assert str(error.value) == f"{folder}: damaged Delineo session ({message})"


def _set_history(folder, value) -> None:
    _edit_json(folder, lambda d: d["history"][0]["commands"][0].update(value))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: _set_history(f, {"values": {"__array__": "a9"}}), "history.npz has no array 'a9'"),
        (
            lambda f: _set_history(f, {"box": [{"__slice__": [1, "3"]}]}),
            "session.json: the history has a slice [1, '3'], not two whole numbers",
        ),
        (
            lambda f: _set_history(f, {"before": {"__array__": "a0", "bool_shape": [2, 3, 40]}}),
            "history.npz: array 'a0' is 3 uint8 value(s) of shape (3,), not the 30 bytes of 2×3×40 yes/no "
            "values",
        ),
        (
            lambda f: _set_history(f, {"before": {"__array__": "a0", "bool_shape": 24}}),
            "session.json: the history's array 'a0' has shape 24",
        ),
    ],
)
def test_a_damaged_history_is_left_out_saying_what_is_wrong(tmp_path, damage, message):
    folder = save_session(_session(), tmp_path / "f")
    damage(folder)
    loaded = load_session(folder)
    assert loaded.structures.names() == ["GTV", "Imported"] and loaded.history == []
    assert loaded.warnings == [f"{folder}: the undo history is damaged and was left out ({message})"]


def test_a_damaged_record_of_interpolated_planes_is_left_out_with_a_warning(tmp_path):
    folder = save_session(_session(), tmp_path / "f")
    _edit_json(folder, lambda d: d.update(interpolated={"one": {"axis": 0, "planes": {}}}))
    loaded = load_session(folder)
    assert loaded.interpolated == {} and loaded.structures.names() == ["GTV", "Imported"]
    assert loaded.warnings == [
        "the record of which slices interpolation filled is damaged and was left out: interpolating again "
        "keeps those slices as if drawn"
    ]


def test_a_damaged_history_leaves_the_structures_loadable(tmp_path):
    folder = save_session(_session(), tmp_path / "f")
    _truncate(folder / "history.npz")
    loaded = load_session(folder)
    assert loaded.structures.names() == ["GTV", "Imported"] and loaded.history == []
    assert loaded.warnings == [
        f"{folder}: the undo history and view state are damaged and were left out (history.npz unreadable: "
        "File is not a zip file)"
    ]


def test_a_folder_that_is_not_a_session_is_not_saved_over(tmp_path):
    folder = tmp_path / "dicom"
    folder.mkdir()
    (folder / "CT1.dcm").write_text("precious")
    with pytest.raises(FileExistsError, match="dicom: the folder holds other files"):
        save_session(_session(), folder)
    assert [p.name for p in tmp_path.iterdir()] == ["dicom"] and (folder / "CT1.dcm").exists()
    (tmp_path / "empty").mkdir()
    save_session(_session(), tmp_path / "empty")
    save_session(_session(), tmp_path / "empty")  # a session folder: saved over
    assert load_session(tmp_path / "empty").structures.names() == ["GTV", "Imported"]


@pytest.mark.parametrize("name", ["s.delineo", "s-folder"])
def test_saved_sessions_honour_the_umask_and_keep_the_mode_they_replace(tmp_path, name):
    import os
    import stat

    previous = os.umask(0o022)
    try:
        path = save_session(_session(), tmp_path / name)
        created = stat.S_IMODE(path.stat().st_mode)
        path.chmod(0o750 if path.is_dir() else 0o640)
        save_session(_session(), path)
        kept = stat.S_IMODE(path.stat().st_mode)
    finally:
        os.umask(previous)
    assert created == (0o755 if path.is_dir() else 0o644)
    assert kept == (0o750 if path.is_dir() else 0o640)


def test_the_record_of_interpolated_planes_keeps_its_axis(tmp_path):
    """Planes filled across x (sagittal) come back as such, next to an axial record."""
    session = _session()
    session.interpolated = {1: FilledPlanes(2, {7: "a1b2", 9: "c3d4"}), 2: FilledPlanes(0, {3: "e5f6"})}
    loaded = load_session(save_session(session, tmp_path / "f"))
    assert loaded.interpolated == session.interpolated


def test_a_record_of_interpolated_planes_saved_without_an_axis_is_axial(tmp_path):
    """Sessions saved before interpolation took an axis hold {plane: digest} per structure: those
    planes were axial. A record with an axis that is no array axis is dropped, not guessed."""
    folder = save_session(_session(), tmp_path / "f")
    _edit_json(folder, lambda d: d.update(interpolated={"1": {"4": "a1b2", "5": "c3d4"}}))
    assert load_session(folder).interpolated == {1: FilledPlanes(0, {4: "a1b2", 5: "c3d4"})}
    _edit_json(folder, lambda d: d.update(interpolated={"1": {"axis": 3, "planes": {"4": "a1b2"}}}))
    assert load_session(folder).interpolated == {}


def test_the_view_each_structure_was_drawn_in_is_kept(tmp_path):
    """The slice view a structure was last drawn in (interpolation fills between its slices
    there) comes back with the session, in a folder and in an archive."""
    session = _session()
    session.drawn_in = {1: "sagittal", 2: "coronal"}
    assert load_session(save_session(session, tmp_path / "f")).drawn_in == {1: "sagittal", 2: "coronal"}
    assert load_session(save_session(session, tmp_path / "f.delineo")).drawn_in == {
        1: "sagittal",
        2: "coronal",
    }


def test_a_session_saved_before_drawing_views_were_kept_loads_with_none_remembered(tmp_path):
    folder = save_session(_session(), tmp_path / "f")
    _edit_json(folder, lambda d: d.pop("drawn_in"))
    loaded = load_session(folder)
    assert (
        loaded.drawn_in == {} and loaded.warnings == [] and loaded.structures.names() == ["GTV", "Imported"]
    )


@pytest.mark.parametrize(
    "drawn_in, kept, message",
    [
        (
            {"1": "oblique", "2": "coronal"},
            {2: "coronal"},
            "session.json: ROI number 1 has drawing view 'oblique', not one of axial, coronal, sagittal",
        ),
        ({"1": 3}, {}, "session.json: ROI number 1 has drawing view 3, not one of axial, coronal, sagittal"),
        (
            {"one": "axial", "2": "sagittal"},
            {2: "sagittal"},
            "session.json has a drawing view for ROI number 'one', not a whole number",
        ),
        (["axial"], {}, "session.json has drawing views ['axial'], not an object of ROI numbers"),
    ],
)
def test_a_damaged_drawing_view_is_left_out_with_a_warning(tmp_path, drawn_in, kept, message):
    """Like a damaged record of interpolated planes: the structures still load, the damaged value
    is left out and said; interpolation then takes its direction from the structure's slices."""
    session = _session()
    session.interpolated = {1: FilledPlanes(2, {7: "a1b2"})}
    folder = save_session(session, tmp_path / "f")
    _edit_json(folder, lambda d: d.update(drawn_in=drawn_in))
    loaded = load_session(folder)
    assert loaded.drawn_in == kept and loaded.interpolated == session.interpolated
    assert loaded.structures.names() == ["GTV", "Imported"]
    assert loaded.warnings == [
        f"{message}; left out: interpolation takes its direction from the structure's slices"
    ]
