"""Mesh files read back by VTK's own readers; the 3D-printing check repairs what it must."""

from __future__ import annotations

import numpy as np
import pytest
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkIOGeometry import vtkOBJReader, vtkSTLReader
from vtkmodules.vtkIOPLY import vtkPLYReader
from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

from planning.errors import FormatError
from planning.geometry import Grid
from planning.margins import labels_at_edges, sides_at_edges
from planning.measurements import mesh_volume_cc
from planning.mesh_export import CutByImages, FilesExist, export_surfaces, printable
from planning.structures import Mask, Structure
from planning.surfaces.build import build_surfaces, surfaces_from_label_map
from planning.surfaces.mesh import Surface

GRID = Grid((30, 40, 40), (1.0, 1.0, 1.5), (-20.0, 5.0, 60.0))


@pytest.fixture(scope="module")
def surfaces() -> list[Surface]:
    labels = np.zeros(GRID.shape, np.uint8)
    z, y, x = np.indices(GRID.shape)
    labels[(z - 15) ** 2 + (y - 20) ** 2 + (x - 12) ** 2 <= 64] = 1
    labels[5:25, 8:30, 24:34] = 2
    return list(
        surfaces_from_label_map(
            labels, GRID, {1: "GTV 1", 2: "Liver/left"}, {1: (255, 0, 0), 2: (0, 128, 255)}
        ).values()
    )


def read(reader, path):
    reader.SetFileName(str(path))
    reader.Update()
    return reader.GetOutput()


@pytest.mark.parametrize(
    "fmt, reader", [("stl", vtkSTLReader), ("ply", vtkPLYReader), ("vtp", vtkXMLPolyDataReader)]
)
def test_one_file_per_structure_read_back(tmp_path, surfaces, fmt, reader):
    export = export_surfaces(surfaces, tmp_path, fmt)
    assert [p.name for p in export.files] == [f"GTV 1.{fmt}", f"Liver_left.{fmt}"]
    for surface, path in zip(surfaces, export.files, strict=True):
        mesh = read(reader(), path)
        assert mesh.GetNumberOfPolys() == len(surface.triangles)
        assert np.allclose(
            mesh.GetBounds(), np.stack([surface.points.min(0), surface.points.max(0)], 1).ravel(), atol=1e-3
        )
        if fmt == "ply":
            colours = vtk_to_numpy(mesh.GetPointData().GetScalars())
            assert np.all(colours == surface.color)
        if fmt == "vtp":
            assert mesh.GetFieldData().GetAbstractArray("Name").GetValue(0) == surface.name
            assert mesh.GetPointData().GetNormals() is not None
    assert not list(tmp_path.glob(".*.part"))


def test_obj_scene_with_colours_and_ras(tmp_path, surfaces):
    export = export_surfaces(surfaces, tmp_path, "obj", coordinates="RAS")
    obj, mtl = export.files
    assert (obj.name, mtl.name) == ("surfaces.obj", "surfaces.mtl")
    text = mtl.read_text()
    assert "newmtl GTV_1\nKa 0 0 0\nKd 1.0000 0.0000 0.0000" in text and "Kd 0.0000 0.5020 1.0000" in text
    assert "usemtl Liver_left" in obj.read_text()
    mesh = read(vtkOBJReader(), obj)
    assert mesh.GetNumberOfPolys() == sum(len(s.triangles) for s in surfaces)
    lps = np.concatenate([s.points for s in surfaces])
    x_min, x_max = mesh.GetBounds()[:2]
    assert x_min == pytest.approx(-lps[:, 0].max(), abs=1e-3) and x_max == pytest.approx(
        -lps[:, 0].min(), abs=1e-3
    )


def test_printing_keeps_watertight_meshes_and_reports_volume(tmp_path, surfaces):
    export = export_surfaces(surfaces, tmp_path, "stl", for_printing=True)
    for check, surface in zip(export.checks, surfaces, strict=True):
        assert not check.repaired and check.shells == 1
        assert check.volume_cc == pytest.approx(mesh_volume_cc(surface))
    assert export.checks[1].volume_cc == pytest.approx(20 * 22 * 10 * 1.5 / 1000, rel=0.03)


def test_printing_rebuilds_a_broken_mesh(surfaces):
    ball = surfaces[0]
    broken = Surface(ball.name, ball.points, ball.triangles[5:], ball.color)  # holes
    assert not broken.topology().closed
    fixed, check = printable(broken, repair_spacing_mm=0.5)
    assert check.repaired and "open edges" in check.found
    assert fixed.topology().watertight and check.shells == 1
    assert check.volume_cc == pytest.approx(mesh_volume_cc(ball), rel=0.05)


def test_unknown_format_is_refused(tmp_path, surfaces):
    with pytest.raises(FormatError, match="3mf"):
        export_surfaces(surfaces, tmp_path, "3mf")


def test_printing_leaves_out_only_the_mesh_that_encloses_nothing(tmp_path, surfaces):
    triangle = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    flat = Surface("Clip", triangle, [[0, 1, 2], [0, 2, 1]])  # two triangles back to back
    export = export_surfaces([surfaces[0], flat, surfaces[1]], tmp_path, "stl", for_printing=True)
    assert [p.name for p in export.files] == ["GTV 1.stl", "Liver_left.stl"]
    assert [c.name for c in export.checks] == ["GTV 1", "Liver/left"]
    [(name, reason)] = export.unprintable
    assert name == "Clip" and reason.startswith("Clip: ") and "no volume" in reason


def named_boxes(names: list[str]) -> list[Surface]:
    labels = np.zeros((4 * len(names) + 2, 8, 8), np.uint8)
    for i in range(len(names)):
        labels[1 + 4 * i : 4 + 4 * i, 2:6, 2:6] = i + 1
    meshes = surfaces_from_label_map(labels, Grid(labels.shape, (1.0, 1.0, 1.0)), dict(enumerate(names, 1)))
    return list(meshes.values())


def test_file_names_keep_the_structure_names(tmp_path):
    names = ["肝臓", "GTV/1", "GTV_1", "Liver", "liver", "CON", ".hidden", "a:b ", "Ösophagus."]
    export = export_surfaces(named_boxes(names), tmp_path, "stl")
    stems = [p.stem for p in export.files]
    # GTV_1 is a valid name: it gets it, although GTV/1 comes first; case clashes are numbered
    assert stems == ["肝臓", "GTV_1_2", "GTV_1", "Liver", "liver_2", "CON_", "hidden", "a_b", "Ösophagus"]
    assert [(s.name, path.name) for s, path in export.written][1] == ("GTV/1", "GTV_1_2.stl")
    assert len(list(tmp_path.iterdir())) == len(names)


@pytest.mark.parametrize("fmt", ["obj", "ply", "vtp"])
def test_the_real_name_is_stored_in_the_file(tmp_path, fmt):
    export = export_surfaces(named_boxes(["肝臓", "GTV/1"]), tmp_path, fmt)
    if fmt == "obj":
        text = export.files[0].read_text(encoding="utf-8")
        assert "o 肝臓\n" in text and "o GTV/1\n" in text
        assert read(vtkOBJReader(), export.files[0]).GetNumberOfPolys() > 0
    elif fmt == "ply":
        header = export.files[0].read_bytes()[:300].decode()
        assert "comment Delineo surface 肝臓, SPACE=LPS, mm, DICOM patient LPS\n" in header
        assert read(vtkPLYReader(), export.files[0]).GetNumberOfPolys() > 0
    else:
        mesh = read(vtkXMLPolyDataReader(), export.files[1])
        assert mesh.GetFieldData().GetAbstractArray("Name").GetValue(0) == "GTV/1"
        fields = mesh.GetFieldData()
        assert fields.GetAbstractArray("Coordinates").GetValue(0) == "SPACE=LPS, mm, DICOM patient LPS"
        assert fields.GetAbstractArray("SPACE").GetValue(0) == "LPS"  # 3D Slicer's tag


def test_a_hash_in_a_name_does_not_start_an_obj_comment(tmp_path):
    export = export_surfaces(named_boxes(["GTV#1", "GTV#2", "GTV_1"]), tmp_path, "obj")
    obj, mtl = (path.read_text(encoding="utf-8") for path in export.files)
    keyed = [line for line in (obj + mtl).splitlines() if line.split(" ")[0] in ("o", "usemtl", "newmtl")]
    assert not [line for line in keyed if "#" in line]
    materials = [line.split()[1] for line in mtl.splitlines() if line.startswith("newmtl ")]
    assert materials == ["GTV_1_2", "GTV_2", "GTV_1"]  # three colours, none merged
    assert [line for line in obj.splitlines() if line.startswith("o ")] == ["o GTV_1_2", "o GTV_2", "o GTV_1"]
    assert "# structure GTV#1\no GTV_1_2\n" in obj  # the real name, in a comment line


def test_existing_files_are_kept_unless_overwriting(tmp_path):
    surfaces = named_boxes(["Label_1", "Label_2"])
    (tmp_path / "Label_2.stl").write_text("the user's own model")
    with pytest.raises(FilesExist, match="1 file.* already exist in .*: Label_2.stl; nothing was written"):
        export_surfaces(surfaces, tmp_path, "stl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Label_2.stl"]
    assert (tmp_path / "Label_2.stl").read_text() == "the user's own model"
    export_surfaces(surfaces, tmp_path, "stl", overwrite=True)
    header = (tmp_path / "Label_2.stl").read_bytes()[:80]
    assert header.startswith(b"Delineo, SPACE=LPS, mm, DICOM patient LPS: Label_2")


#: a feet-first-like grid: slice index grows towards the feet, row index towards anterior
CUT_GRID = Grid((12, 24, 20), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.diag([1.0, -1.0, -1.0]))


def cut_structures() -> list[Structure]:
    """A liver running off the first slice (superior here), a vessel through every slice along
    the last column (the patient's left), a kidney inside the images."""
    liver, vessel, kidney = (np.zeros(CUT_GRID.shape, bool) for _ in range(3))
    liver[0:6, 4:16, 4:14] = True
    vessel[:, 18:21, 17:20] = True
    kidney[7:10, 4:8, 4:8] = True
    return [Structure(name, Mask.from_full(CUT_GRID, full)) for name, full in
            (("Liver", liver), ("Vessel", vessel), ("Kidney_R", kidney))]  # fmt: skip


def test_a_structure_the_images_cut_off_is_named_with_the_sides_capped_flat(tmp_path):
    """The mesh of a liver whose top the scan does not show is closed by a flat face at the first
    slice: the export names the liver and that side, and writes the same files as untold."""
    structures = cut_structures()
    edges = {s.name: sides_at_edges(s.mask) for s in structures}
    surfaces = list(build_surfaces(structures).values())
    liver = surfaces[0].points
    top = liver[:, 2] > liver[:, 2].max() - 0.1  # superior: z of slice 0 is the highest
    assert np.ptp(liver[top, 0]) > 8 and np.ptp(liver[top, 1]) > 10  # a flat cap, 10 × 12 mm

    told = export_surfaces(surfaces, tmp_path / "told", "stl", for_printing=True, image_edges=edges)
    assert told.cut == [
        CutByImages("Liver", ("superior",)),
        CutByImages("Vessel", ("superior", "inferior", "left")),
    ]
    assert told.cut[0].describe() == (
        "Liver: cut by the superior end of the images; the flat face there is the edge of the scan, "
        "not anatomy"
    )
    assert told.cut[1].describe() == (
        "Vessel: cut by the superior and inferior ends and the left edge of the images; "
        "the flat faces there are the edge of the scan, not anatomy"
    )
    untold = export_surfaces(surfaces, tmp_path / "untold", "stl", for_printing=True)
    assert untold.cut == []
    assert [p.read_bytes() for p in told.files] == [p.read_bytes() for p in untold.files]


def test_only_structures_written_are_named_as_cut(tmp_path):
    triangle = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    flat = Surface("Clip", triangle, [[0, 1, 2], [0, 2, 1]])  # not printable: left out
    edges = {"Clip": ["superior"], "GTV": ["left"]}
    export = export_surfaces([flat], tmp_path, "stl", for_printing=True, image_edges=edges)
    assert export.files == [] and export.cut == []


def test_the_labels_of_a_label_map_at_the_edges_are_those_of_their_masks():
    labels = np.zeros(CUT_GRID.shape, np.uint8)
    for value, structure in enumerate(cut_structures(), start=1):
        labels[structure.mask.full()] = value
    assert labels_at_edges(labels, CUT_GRID) == {
        value: sides_at_edges(structure.mask)
        for value, structure in enumerate(cut_structures(), start=1)
        if sides_at_edges(structure.mask)
    }
    assert labels_at_edges(labels, CUT_GRID)[2] == ["superior", "inferior", "left"]
