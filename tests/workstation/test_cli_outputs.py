"""Every command refuses an output it cannot write before doing any work, in one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.dicom_factory import ct_phantom, write_ct_series

import planning.imageio
from planning.errors import DelineoError
from workstation.cli import main
from workstation.cli.outputs import check_output_file, check_output_folder


@pytest.fixture
def no_loading(monkeypatch):
    """Any attempt to load an input fails the test: the output check must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the command loaded its input before checking its output")

    monkeypatch.setattr(planning.imageio, "load_volume", refuse)


@pytest.mark.parametrize(
    "command",
    [
        ["segment", "{ct}", "--model", "ct_rules", "--out", "{missing}/rs.dcm"],
        ["segment", "{ct}", "--model", "ct_rules", "--out", "{missing}/labels.nii.gz"],
        ["segment", "{ct}", "--model", "ct_rules", "--out", "{file}/masks"],
        ["compare", "{ct}", "{ct}", "--series", "{ct}", "--out", "{missing}/report.html"],
        ["compare", "{ct}", "{ct}", "--series", "{ct}", "--out", "r.html", "--csv", "{missing}/r.csv"],
        ["dvh", "{ct}", "{ct}", "--series", "{ct}", "--out", "{missing}/dvh.csv"],
        ["dvh", "{ct}", "{ct}", "--series", "{ct}", "--out", "dvh.csv", "--plot", "{missing}/dvh.png"],
        ["mesh", "{ct}", "--series", "{ct}", "--out", "{file}/meshes"],
        ["convert", "{ct}", "{missing}/ct.nii.gz"],
        ["rtstruct", "import", "{ct}", "--series", "{ct}", "--out", "{missing}/labels.nii.gz"],
        ["rtstruct", "export", "{ct}", "--series", "{ct}", "--out", "{missing}/rs.dcm"],
        ["train", "{ct}", "--run", "{file}/run"],
    ],
    ids=[
        "segment-rtstruct",
        "segment-labelmap",
        "segment-masks",
        "compare-html",
        "compare-csv",
        "dvh-csv",
        "dvh-plot",
        "mesh",
        "convert",
        "rtstruct-import",
        "rtstruct-export",
        "train",
    ],
)
def test_unwritable_output_fails_before_any_work(command, tmp_path, monkeypatch, capsys, no_loading):
    monkeypatch.chdir(tmp_path)
    write_ct_series(tmp_path / "ct", ct_phantom((3, 16, 16)))
    (tmp_path / "a_file").write_text("not a folder")
    places = {"ct": str(tmp_path / "ct"), "missing": str(tmp_path / "no" / "such"), "file": "a_file"}
    argv = [part.format(**places) for part in command]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("delineo: error: ") and err.count("\n") == 1, err
    assert "no/such does not exist" in err or "a_file is a file" in err


def test_checks_accept_what_can_be_written(tmp_path):
    check_output_file(tmp_path / "new.dcm")
    (tmp_path / "old.csv").write_text("replace me")
    check_output_file(tmp_path / "old.csv")
    check_output_file(None)
    check_output_folder(tmp_path / "new" / "nested")  # made later, by the command
    check_output_folder(tmp_path)


def test_checks_name_the_problem(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(DelineoError, match="is a folder; give a file name"):
        check_output_file(tmp_path)
    with pytest.raises(DelineoError, match="is a file; give a folder"):
        check_output_folder(tmp_path / "a_file")
    with pytest.raises(DelineoError, match=r"cannot be made: .*a_file is a file"):
        check_output_folder(tmp_path / "a_file" / "below")


def test_an_unforeseen_io_error_is_one_line_not_a_traceback(monkeypatch, capsys):
    import workstation.cli.info as info

    def disk_full(args):
        raise OSError(28, "No space left on device", "/data/out.dcm")

    monkeypatch.setattr(info, "run", disk_full)
    assert main(["info", "."]) == 1
    err = capsys.readouterr().err
    assert err == "delineo: error: /data/out.dcm: No space left on device\n"


@pytest.mark.parametrize(
    "command, why",
    [
        (["segment", "{image}", "--model", "ct_rules", "--out", "{image}"], "is also an input"),
        (["segment", "{ct}", "--model", "ct_rules", "--out", "{slice}"], "is one of the input files in"),
        (["convert", "{image}", "{image}"], "is also an input"),
        (["dvh", "{slice}", "{ct}", "--series", "{ct}", "--out", "{slice}"], "is also an input"),
        (["rtstruct", "export", "{image}", "--series", "{ct}", "--out", "{slice}"], "one of the input files"),
    ],
    ids=["segment-image", "segment-series", "convert", "dvh", "rtstruct-export"],
)
def test_an_output_never_replaces_an_input(command, why, tmp_path, capsys, no_loading):
    """`--out` naming the input image, or one of the input series' images, would destroy it."""
    write_ct_series(tmp_path / "ct", ct_phantom((3, 16, 16)))
    (tmp_path / "image.nii.gz").write_bytes(b"an image the user keeps")
    first_slice = sorted((tmp_path / "ct").iterdir())[0]
    before = first_slice.read_bytes()
    places = {"ct": str(tmp_path / "ct"), "image": str(tmp_path / "image.nii.gz"), "slice": str(first_slice)}
    assert main([part.format(**places) for part in command]) == 1
    assert why in capsys.readouterr().err
    assert first_slice.read_bytes() == before
    assert (tmp_path / "image.nii.gz").read_bytes() == b"an image the user keeps"


def test_an_rtstruct_in_the_series_folder_may_be_replaced(tmp_path):
    """What a command writes (an RTSTRUCT from an earlier run) is no input image: it may be
    written again."""
    from planning.imageio import load_volume
    from planning.structure_io import save_structures
    from planning.structures import Mask, Structure, StructureSet

    write_ct_series(tmp_path / "ct", ct_phantom((3, 16, 16)))
    volume = load_volume(tmp_path / "ct")
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    full = volume.array > -500
    structures.add(Structure("Body", Mask.from_full(volume.grid, full)))
    save_structures(structures, volume, tmp_path / "ct" / "RS.dcm")
    check_output_file(tmp_path / "ct" / "RS.dcm", [tmp_path / "ct"])


def test_one_file_named_two_ways_is_one_output(tmp_path, monkeypatch):
    from workstation.cli.outputs import check_distinct

    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    check_distinct(Path("report.html"), Path("report.csv"), None)
    with pytest.raises(DelineoError, match="named for two of the outputs"):
        check_distinct(Path("sub/../r.csv"), Path("r.csv"))
