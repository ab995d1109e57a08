"""`delineo mesh`: label maps and RTSTRUCTs to mesh files."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from support.data import data_path
from vtkmodules.vtkIOGeometry import vtkSTLReader

from planning.errors import FormatError
from workstation.cli import main


def label_map(path, direction=(1, 0, 0, 0, -1, 0, 0, 0, 1)):
    labels = np.zeros((20, 30, 30), np.uint8)
    labels[4:16, 5:20, 5:15] = 1
    labels[4:16, 5:20, 15:25] = 7
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing((1.0, 1.0, 2.0))
    image.SetDirection(direction)
    sitk.WriteImage(image, str(path))
    return labels


def test_label_map_to_stl_for_printing(tmp_path, capsys):
    label_map(tmp_path / "labels.nii.gz")
    (tmp_path / "names.json").write_text('{"1": "Liver", "7": "Stomach"}')
    code = main(
        ["mesh", str(tmp_path / "labels.nii.gz"), "--label-names", str(tmp_path / "names.json"),
         "--out", str(tmp_path / "out"), "--format", "stl", "--print"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "Liver" in out and "Stomach" in out and "1 shell(s)" in out
    reader = vtkSTLReader()
    reader.SetFileName(str(tmp_path / "out" / "Liver.stl"))
    reader.Update()
    x0, x1, y0, y1, z0, z1 = reader.GetOutput().GetBounds()
    # patient LPS mm: columns 5–14, rows 5–19 on a flipped y axis, slices 4–15 of 2 mm
    assert 4 < x0 < 5.5 and 14 < x1 < 15.5
    assert -20.5 < y0 < -19 and -5.5 < y1 < -4
    assert 6.5 < z0 < 8 and 30 < z1 < 31.5
    # the header says what the coordinates are (a binary STL's 80 bytes, not starting "solid")
    header = (tmp_path / "out" / "Liver.stl").read_bytes()[:80]
    assert header.rstrip() == b"Delineo, SPACE=LPS, mm, DICOM patient LPS: Liver"


def test_ras_coordinates_are_named_in_the_file(tmp_path):
    label_map(tmp_path / "labels.nii.gz")
    out = tmp_path / "out"
    assert main(["mesh", str(tmp_path / "labels.nii.gz"), "--out", str(out), "--format", "obj", "--ras"]) == 0
    first = (out / "surfaces.obj").read_text().splitlines()[0]
    assert first == "# Delineo structure surfaces, SPACE=RAS, mm, patient RAS (DICOM LPS with x, y negated)"


def test_a_label_map_is_named_by_the_json_beside_it(tmp_path):
    """labels.json beside labels.nii.gz names the meshes without --series too, as the app's
    import and --series read it; --label-names, when given, names them instead."""
    label_map(tmp_path / "labels.nii.gz")
    (tmp_path / "labels.json").write_text('{"1": "Liver", "7": "Stomach"}')
    (tmp_path / "names.json").write_text('{"1": "Liver_2", "7": "Stomach_2"}')
    assert main(["mesh", str(tmp_path / "labels.nii.gz"), "--out", str(tmp_path / "beside")]) == 0
    assert sorted(p.name for p in (tmp_path / "beside").iterdir()) == ["Liver.stl", "Stomach.stl"]
    argv = ["mesh", str(tmp_path / "labels.nii.gz"), "--label-names", str(tmp_path / "names.json")]
    assert main([*argv, "--out", str(tmp_path / "given")]) == 0
    assert sorted(p.name for p in (tmp_path / "given").iterdir()) == ["Liver_2.stl", "Stomach_2.stl"]


def test_structures_the_images_cut_off_are_named_with_their_flat_sides(tmp_path, capsys):
    """On a grid whose row axis is flipped, a liver on the first row and the last slice runs
    off the posterior edge and the superior end; the stomach, inside, is not named."""
    labels = np.zeros((20, 30, 30), np.uint8)
    labels[10:20, 0:12, 5:15] = 1
    labels[4:16, 5:20, 16:25] = 7
    image = sitk.GetImageFromArray(labels)
    image.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
    sitk.WriteImage(image, str(tmp_path / "labels.nii.gz"))
    (tmp_path / "labels.json").write_text('{"1": "Liver", "7": "Stomach"}')
    argv = ["mesh", str(tmp_path / "labels.nii.gz"), "--out", str(tmp_path / "out"), "--print"]
    assert main(argv) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: Liver: cut by the superior end and the posterior edge of the images; "
        "the flat faces there are the edge of the scan, not anatomy"
    ]


def test_organs_of_a_real_scan_are_named_where_it_cuts_them(tmp_path, capsys):
    """TotalSegmentator's 20-slice example: the liver goes on past both ends of the scan, the
    pancreas past its inferior end (the NIfTI's slices run inferior to superior)."""
    labels = data_path("dicom", "totalseg-example", "labels.nii.gz")
    argv = ["mesh", str(labels), "--out", str(tmp_path), "--names", "liver", "pancreas", "--format", "obj"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "warning: liver: cut by the inferior and superior ends of the images; the flat faces" in out
    assert "warning: pancreas: cut by the inferior end of the images; the flat face there is" in out


def test_rtstruct_needs_its_series(tmp_path, capsys):
    rtstruct = data_path("dicom", "ibsi1-lung-ct", "RS.dcm")
    assert main(["mesh", str(rtstruct), "--out", str(tmp_path)]) == 1
    assert "needs --series" in capsys.readouterr().err
    code = main(
        [
            "mesh",
            str(rtstruct),
            "--series",
            str(rtstruct.parent / "image"),
            "--out",
            str(tmp_path),
            "--format",
            "ply",
        ]
    )
    assert code == 0
    assert (tmp_path / "GTV-1.ply").exists()


def dots(path):
    """Ten one-voxel structures and a larger one (labels 1–10 and 20)."""
    labels = np.zeros((10, 10, 40), np.uint16)
    for i in range(10):
        labels.flat[i * 13] = i + 1
    labels[5:9, 3:8, 3:30] = 20
    sitk.WriteImage(sitk.GetImageFromArray(labels), str(path))


def test_one_voxel_structures_are_printed_as_voxel_sized_solids(tmp_path, capsys):
    dots(tmp_path / "dots.nii.gz")
    assert main(["mesh", str(tmp_path / "dots.nii.gz"), "--out", str(tmp_path / "out"), "--print"]) == 0
    assert len(list((tmp_path / "out").glob("*.stl"))) == 11
    assert "Label_2  " in capsys.readouterr().out


def test_an_unprintable_structure_does_not_cost_the_others(tmp_path, capsys, monkeypatch):
    import planning.mesh_export as mesh_export

    real = mesh_export.printable

    def printable(surface, spacing):
        if surface.name == "Label_2":
            raise FormatError("Label_2: the mesh encloses no volume and cannot be printed")
        return real(surface, spacing)

    monkeypatch.setattr(mesh_export, "printable", printable)
    dots(tmp_path / "dots.nii.gz")
    assert main(["mesh", str(tmp_path / "dots.nii.gz"), "--out", str(tmp_path / "out"), "--print"]) == 1
    written = sorted(p.stem for p in (tmp_path / "out").glob("*.stl"))
    assert len(written) == 10 and "Label_2" not in written
    captured = capsys.readouterr()
    assert "Label_2: the mesh encloses no volume" in captured.out + captured.err
    assert "not printable, not written: Label_2 (the others were written)" in captured.err


def test_a_file_left_from_an_earlier_export_is_named_as_out_of_date(tmp_path, capsys, monkeypatch):
    import planning.mesh_export as mesh_export

    real = mesh_export.printable

    def printable(surface, spacing):
        if surface.name == "Label_2":
            raise FormatError("Label_2: the mesh encloses no volume and cannot be printed")
        return real(surface, spacing)

    monkeypatch.setattr(mesh_export, "printable", printable)
    dots(tmp_path / "dots.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    (out / "Label_2.stl").write_text("yesterday's Label_2")
    argv = ["mesh", str(tmp_path / "dots.nii.gz"), "--out", str(out), "--print", "--overwrite"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert "Label_2.stl in " in said and "from an earlier export, not replaced (not printable now)" in said
    assert (out / "Label_2.stl").read_text() == "yesterday's Label_2"  # kept: not ours to delete


def test_files_are_named_after_the_structures_and_never_replaced_silently(tmp_path, capsys, monkeypatch):
    import planning.surfaces.build

    label_map(tmp_path / "labels.nii.gz")
    (tmp_path / "names.json").write_text('{"1": "肝臓", "7": "GTV/1"}', encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "肝臓.stl").write_text("the user's own model")
    argv = ["mesh", str(tmp_path / "labels.nii.gz"), "--label-names", str(tmp_path / "names.json"),
            "--out", str(out)]  # fmt: skip
    meshed = []
    real = planning.surfaces.build.surfaces_from_label_map
    monkeypatch.setattr(
        planning.surfaces.build, "surfaces_from_label_map", lambda *a, **k: meshed.append(1) or real(*a, **k)
    )
    assert main(argv) == 1
    assert "肝臓.stl; nothing was written (give --overwrite to replace them)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["肝臓.stl"]
    assert not meshed  # refused before any meshing (minutes for a whole-body label map)
    assert main([*argv, "--overwrite"]) == 0
    table = capsys.readouterr().out
    assert "GTV_1.stl" in [line.split()[-1] for line in table.splitlines() if line.startswith("GTV/1 ")]
    assert sorted(p.name for p in out.iterdir()) == ["GTV_1.stl", "肝臓.stl"]


def test_an_empty_structure_is_named_as_empty_not_as_missing(tmp_path, capsys):
    import copy

    import pydicom

    rtstruct = data_path("dicom", "ibsi1-lung-ct", "RS.dcm")
    dataset = pydicom.dcmread(rtstruct)
    roi = copy.deepcopy(dataset.StructureSetROISequence[0])
    roi.ROINumber, roi.ROIName = 99, "PRV_Cord"
    dataset.StructureSetROISequence.append(roi)
    contours = copy.deepcopy(dataset.ROIContourSequence[0])
    contours.ReferencedROINumber = 99
    del contours.ContourSequence
    dataset.ROIContourSequence.append(contours)
    dataset.save_as(tmp_path / "RS.dcm")
    argv = ["mesh", str(tmp_path / "RS.dcm"), "--series", str(rtstruct.parent / "image"),
            "--out", str(tmp_path / "out"), "--names", "PRV_Cord", "GTV-1"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "PRV_Cord is empty: no mesh" in captured.out + captured.err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["GTV-1.stl"]


def test_only_the_structures_named_are_meshed(tmp_path, capsys, monkeypatch):
    import planning.surfaces.build

    label_map(tmp_path / "labels.nii.gz")
    (tmp_path / "names.json").write_text('{"1": "Liver", "7": "Stomach", "9": "Spleen"}')
    meshed = []
    real = planning.surfaces.build.surfaces_from_label_map

    def spy(labels, grid, *args, **kwargs):
        meshed.append(sorted(np.unique(labels).tolist()))
        return real(labels, grid, *args, **kwargs)

    monkeypatch.setattr(planning.surfaces.build, "surfaces_from_label_map", spy)
    argv = ["mesh", str(tmp_path / "labels.nii.gz"), "--label-names", str(tmp_path / "names.json")]
    assert main([*argv, "--out", str(tmp_path / "one"), "--names", "Stomach"]) == 0
    assert meshed == [[0, 7]]
    assert main([*argv, "--out", str(tmp_path / "all")]) == 0
    captured = capsys.readouterr()
    assert "Spleen is empty: no mesh" in captured.out + captured.err
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["Liver.stl", "Stomach.stl"]


def test_the_report_gives_the_figures_of_the_repaired_mesh(tmp_path, capsys, monkeypatch):
    import workstation.cli.mesh as mesh_command
    from planning.geometry import Grid
    from planning.measurements import mesh_volume_cc
    from planning.surfaces.build import surfaces_from_label_map
    from planning.surfaces.mesh import Surface

    labels = np.zeros((40, 40, 40), np.uint8)
    labels[10:30, 10:30, 10:30] = 1
    box = surfaces_from_label_map(labels, Grid(labels.shape, (1.0, 1.0, 1.0)), {1: "Box"})[1]
    inverted = Surface("Box", box.points, box.triangles[:, ::-1])  # e.g. from a tool with flipped winding
    assert mesh_volume_cc(inverted) < 0
    monkeypatch.setattr(
        mesh_command, "_surfaces", lambda args, options, progress, before_meshing: ([inverted], {})
    )
    label_map(tmp_path / "labels.nii.gz")
    assert main(["mesh", str(tmp_path / "labels.nii.gz"), "--out", str(tmp_path / "out"), "--print"]) == 0
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Box ")]
    reader = vtkSTLReader()
    reader.SetFileName(str(tmp_path / "out" / "Box.stl"))
    reader.Update()
    written = Surface.from_polydata(reader.GetOutput(), "Box")
    assert row.split()[1] == str(len(written.triangles))
    assert (
        float(row.split()[2]) == pytest.approx(mesh_volume_cc(written), abs=0.01)
        and mesh_volume_cc(written) > 7
    )
    assert "rebuilt, was: inside out" in row
