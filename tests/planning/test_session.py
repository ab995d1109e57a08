"""Qt-free sessions: structures, contours, history arrays and view state survive a round trip."""

import json
import zipfile

import numpy as np
import pytest

from planning.errors import FormatError
from planning.geometry import Grid
from planning.session import FilledPlanes, ImageReference, Session, load_session, save_session
from planning.structures import Mask, PlanarContour, RoiType, Structure, StructureSet


def _session() -> Session:
    grid = Grid((6, 20, 30), (0.8, 0.9, 2.5), (10.0, -5.0, 3.0))
    structures = StructureSet(grid, "1.2.3", "Plan A")
    structures.warnings = ["Body: 3 contours were left out: they lie beyond the loaded images"]
    ball = np.zeros(grid.shape, bool)
    ball[1:5, 4:15, 6:20] = True
    ball[2:4, 7:10, 9:12] = False  # a hole
    gtv = Mask.from_full(grid, ball)
    structures.add(Structure("GTV", gtv, (255, 0, 0), RoiType.GTV, recipe={"op": "x"}, locked=True))
    contour = PlanarContour(np.array([[0, 0, 3.0], [5, 0, 3.0], [5, 5, 3.0]]), "CLOSED_PLANAR", "1.2.3.4")
    structures.add(Structure("Imported", Mask(grid), (0, 0, 255), contours=[contour], visible=False))
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


def test_a_damaged_history_leaves_the_structures_loadable(tmp_path):
    folder = save_session(_session(), tmp_path / "f")
    _truncate(folder / "history.npz")
    loaded = load_session(folder)
    assert loaded.structures.names() == ["GTV", "Imported"] and loaded.history == []
    assert len(loaded.warnings) == 1 and "undo history is damaged" in loaded.warnings[0]


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
