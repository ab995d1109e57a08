"""Surfaces: watertight, on the voxels, in patient space, one pass for touching structures."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from support.data import data_path

from planning.errors import Cancelled
from planning.geometry import Grid
from planning.measurements import mesh_volume_cc, point_distances, surface_distances
from planning.structures import Mask, Structure, StructureSet
from planning.surface_topology import critical_blocks, make_well_composed, mesh_topology
from planning.surfaces.build import build_surfaces, disjoint_layers, surfaces_from_label_map
from planning.surfaces.mesh import Surface
from planning.surfaces.options import SurfaceOptions
from planning.surfaces.voxels import voxel_boundary


def rotated_grid(shape=(40, 48, 44), spacing=(0.9, 0.8, 1.5)) -> Grid:
    """An oblique grid whose row axis is also flipped: a hard case for patient-space meshes."""
    angle = np.radians(25)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    return Grid(shape, spacing, (-30.0, 12.0, -400.0), rotation @ np.diag([1, -1, 1]))


def ball(grid: Grid, centre_lps, radius_mm) -> np.ndarray:
    z, y, x = np.indices(grid.shape)
    points = grid.index_to_patient(np.stack([x, y, z], -1).reshape(-1, 3).astype(float))
    return (np.linalg.norm(points - centre_lps, axis=1) <= radius_mm).reshape(grid.shape)


def hausdorff_to_voxels(surface: Surface, mask: np.ndarray, grid: Grid) -> float:
    boundary = voxel_boundary(mask, (0, 0, 0), grid)
    centres = boundary.points[boundary.triangles].mean(axis=1)
    return max(
        surface_distances(surface, boundary).max(),
        surface_distances(boundary, surface).max(),
        point_distances(centres, surface).max(),
    )


def solid_centroid(surface: Surface) -> np.ndarray:
    """Centroid of the solid a closed surface encloses (divergence theorem)."""
    origin = surface.points.mean(axis=0)
    p = surface.points[surface.triangles] - origin
    volumes = np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])) / 6
    return origin + (volumes[:, None] * p.sum(axis=1) / 4).sum(axis=0) / volumes.sum()


def test_sphere_on_an_oblique_flipped_grid_sits_on_its_voxels():
    grid = rotated_grid()
    centre = grid.index_to_patient(np.array([21.3, 23.7, 19.2]))
    mask = ball(grid, centre, 11.0)
    structure_set = StructureSet(grid)
    structure_set.add(Structure("Ball", Mask.from_full(grid, mask), (10, 200, 30)))
    surface = build_surfaces(structure_set)["Ball"]

    topology = surface.topology()
    assert topology.watertight and topology.shells == 1 and topology.euler == 2
    voxels_cc = mask.sum() * grid.voxel_volume_cc
    assert mesh_volume_cc(surface) == pytest.approx(voxels_cc, rel=0.02)
    assert mesh_volume_cc(surface) == pytest.approx(4 / 3 * np.pi * 11.0**3 / 1000, rel=0.03)
    # in patient space: centred where the ball is, radius 11 mm
    radii = np.linalg.norm(surface.points - centre, axis=1)
    assert abs(radii.mean() - 11.0) < 0.4
    assert np.abs(surface.points.mean(axis=0) - centre).max() < 0.3
    assert hausdorff_to_voxels(surface, mask, grid) <= np.linalg.norm(grid.spacing_xyz)
    # outward normals: they point away from the centre
    assert np.all(np.einsum("ij,ij->i", surface.normals, surface.points - centre) > 0)
    assert surface.color == (10, 200, 30)


def test_simplification_keeps_within_its_tolerance():
    grid = Grid((36, 40, 40), (1.0, 1.0, 1.0))
    mask = ball(grid, grid.index_to_patient(np.array([19.5, 20.2, 17.8])), 14.0)
    full = surfaces_from_label_map(
        mask.astype(np.uint8), grid, options=SurfaceOptions(decimation_tolerance_mm=0)
    )
    simple = surfaces_from_label_map(
        mask.astype(np.uint8), grid, options=SurfaceOptions(decimation_tolerance_mm=0.3)
    )
    assert len(simple[1].triangles) < 0.6 * len(full[1].triangles)
    assert simple[1].topology().watertight
    assert max(surface_distances(simple[1], full[1]).max(), surface_distances(full[1], simple[1]).max()) < 0.3


def test_touching_structures_share_their_boundary():
    grid = Grid((20, 30, 40), (1.0, 1.0, 2.0))
    labels = np.zeros(grid.shape, np.uint8)
    labels[4:16, 5:25, 5:20] = 1
    labels[4:16, 5:25, 20:35] = 2
    surfaces = surfaces_from_label_map(labels, grid, {1: "left", 2: "right"})
    left, right = surfaces[1], surfaces[2]
    assert left.name == "left" and right.name == "right"
    for value, surface in surfaces.items():
        assert surface.topology().watertight
        assert mesh_volume_cc(surface) == pytest.approx(
            (labels == value).sum() * grid.voxel_volume_cc, rel=0.03
        )
    # the contact face is one mesh: its points are shared exactly, with no gap
    shared = set(map(tuple, left.points.round(9))) & set(map(tuple, right.points.round(9)))
    assert len(shared) > 50
    contact = np.array(sorted(shared))
    assert np.allclose(contact[:, 0], 19.5, atol=1e-6)  # the face between voxel columns 19 and 20


def test_diagonal_contacts_still_give_closed_manifold_meshes():
    grid = Grid((12, 12, 12), (1.0, 1.0, 1.0))
    labels = np.zeros(grid.shape, np.uint8)
    labels[3:6, 3:6, 3:6] = 1
    labels[6:9, 6:9, 3:6] = 1  # touches the first block along an edge
    labels[6:9, 6:9, 6:9] = 1  # and a corner contact of two labels
    labels[3:6, 3:6, 6:9] = 2
    labels[2, 2, 2] = 2  # a single voxel meeting label 1 at a corner
    assert critical_blocks(np.pad(labels, 1))
    surfaces = surfaces_from_label_map(labels, grid)
    assert set(surfaces) == {1, 2}
    for surface in surfaces.values():
        assert surface.topology().watertight


def test_well_composed_repair_changes_few_voxels_and_leaves_no_critical_block():
    rng = np.random.default_rng(3)
    labels = np.pad((rng.random((20, 20, 20)) < 0.35).astype(np.uint8) * rng.integers(1, 4, (20, 20, 20)), 1)
    labels = labels.astype(np.uint8)
    before = labels.copy()
    changed, failed = make_well_composed(labels)
    assert failed == []
    assert critical_blocks(labels) == {}
    assert 0 < np.count_nonzero(labels != before) <= changed


def test_overlapping_structures_are_meshed_in_layers():
    grid = Grid((30, 40, 40), (1.0, 1.0, 1.5))
    body = np.zeros(grid.shape, bool)
    body[2:28, 3:37, 3:37] = True
    organ = ball(grid, grid.index_to_patient(np.array([14.0, 20.0, 15.0])), 8)
    ptv = ball(grid, grid.index_to_patient(np.array([22.0, 20.0, 15.0])), 9)
    structure_set = StructureSet(grid)
    for name, mask in (("BODY", body), ("Liver", organ), ("PTV", ptv)):
        structure_set.add(Structure(name, Mask.from_full(grid, mask)))
    assert [[s.name for s in layer] for layer in disjoint_layers(list(structure_set))] == [
        ["BODY"],
        ["Liver"],
        ["PTV"],
    ]
    surfaces = build_surfaces(structure_set)
    assert set(surfaces) == {"BODY", "Liver", "PTV"}
    for name, surface in surfaces.items():
        assert surface.topology().watertight
        assert mesh_volume_cc(surface) == pytest.approx(structure_set[name].volume_cc, rel=0.03)


def test_progress_and_cancel():
    grid = Grid((16, 16, 16), (1.0, 1.0, 1.0))
    labels = np.zeros(grid.shape, np.uint8)
    labels[4:12, 4:12, 4:12] = 1
    stages = []
    surfaces_from_label_map(labels, grid, on_progress=lambda stage, done, total: stages.append(stage))
    assert "Smoothing surfaces" in stages and stages[-1] == "Assembling surfaces"
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        surfaces_from_label_map(labels, grid, cancel=cancel)


def test_surface_round_trips_through_vtk():
    grid = Grid((14, 14, 14), (1.0, 1.0, 1.0))
    labels = np.zeros(grid.shape, np.uint8)
    labels[3:10, 4:11, 2:12] = 1
    surface = surfaces_from_label_map(labels, grid)[1]
    again = Surface.from_polydata(surface.to_polydata(), "box", surface.color)
    assert np.allclose(again.points, surface.points) and np.array_equal(again.triangles, surface.triangles)
    assert np.allclose(again.normals, surface.normals, atol=1e-6)


def test_mesh_topology_finds_holes_pinches_and_flips():
    tetra = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]])
    assert mesh_topology(tetra).watertight and mesh_topology(tetra).euler == 2
    assert mesh_topology(tetra[:3]).boundary_edges == 3
    flipped = tetra.copy()
    flipped[0] = flipped[0, ::-1]
    assert mesh_topology(flipped).misoriented_edges == 3
    pinched = np.concatenate([tetra, tetra + 3])  # two tetrahedra sharing vertex 3
    topology = mesh_topology(pinched)
    assert topology.closed and not topology.manifold and topology.nonmanifold_vertices == 1
    fin = np.concatenate([tetra, [[0, 1, 4]]])  # a third triangle on edge 0-1
    assert mesh_topology(fin).nonmanifold_edges == 1


def test_totalsegmentator_labels_mesh_closed_accurate_and_in_place():
    """31 real labels on a y-flipped NIfTI grid: every mesh watertight, volumes and Hausdorff
    distances within the acceptance bounds, and each mesh where its voxels are."""
    from planning.imageio import read_image_file

    folder = data_path("dicom", "totalseg-example")
    volume = read_image_file(folder / "labels.nii.gz")
    names = {int(k): v for k, v in json.loads((folder / "labels.json").read_text()).items()}
    grid, labels = volume.grid, volume.array
    assert np.linalg.det(grid.direction) < 0  # the flipped axis this test is about
    surfaces = surfaces_from_label_map(labels, grid, names)
    assert len(surfaces) == 31
    counts = np.bincount(labels.ravel())
    diagonal = np.linalg.norm(grid.spacing_xyz)
    from scipy import ndimage

    boxes = ndimage.find_objects(labels)
    for value, surface in surfaces.items():
        assert surface.name == names[value]
        assert surface.topology().watertight, surface.name
        voxels_cc = counts[value] * grid.voxel_volume_cc
        if voxels_cc >= 5:
            assert mesh_volume_cc(surface) == pytest.approx(voxels_cc, rel=0.03), surface.name
        box = boxes[value - 1]
        voxel_centres = grid.index_to_patient(
            (np.argwhere(labels[box] == value) + [s.start for s in box])[:, ::-1].astype(float)
        )
        if voxels_cc >= 1:  # the mesh's centroid is the voxels' centroid: it sits on them
            assert np.linalg.norm(solid_centroid(surface) - voxel_centres.mean(axis=0)) < 1.0, surface.name
        if value in (1, 5, 52, 79, 98):  # spleen, liver, aorta, spinal cord, a rib: Hausdorff
            mask = labels[box] == value
            boundary = voxel_boundary(mask, [s.start for s in box], grid)
            assert surface_distances(surface, boundary).max() <= diagonal, surface.name
            assert surface_distances(boundary, surface).max() <= diagonal, surface.name


def test_a_larger_tolerance_never_gives_heavier_meshes():
    """A patch whose simplification is unsound is simplified again at a smaller tolerance, not
    left whole: the 31 real labels at 1 mm were three times heavier than at 0.25 mm."""
    from planning.imageio import read_image_file

    volume = read_image_file(data_path("dicom", "totalseg-example", "labels.nii.gz"))
    meshes = {
        mm: surfaces_from_label_map(
            volume.array, volume.grid, options=SurfaceOptions(decimation_tolerance_mm=mm)
        )
        for mm in (0, 0.25, 1)
    }
    for value, coarse in meshes[1].items():
        assert len(coarse.triangles) <= len(meshes[0.25][value].triangles), coarse.name
        assert coarse.topology().watertight, coarse.name
    for value in (1, 5):  # spleen, liver: within the bound of the unsimplified mesh
        coarse, full = meshes[1][value], meshes[0][value]
        assert max(surface_distances(coarse, full).max(), surface_distances(full, coarse).max()) <= 1.0


@pytest.mark.parametrize("tolerance", [0.25, 2.0])
def test_specks_of_a_voxel_or_two_keep_their_volume(tolerance):
    """Smoothing shrank a lone voxel to a 0.04 mm speck and simplification flattened it to two
    triangles; each keeps its voxels' volume now, beside a large structure that is smoothed."""
    labels = np.zeros((12, 14, 40), np.uint16)
    labels[5:10, 3:11, 3:30] = 20
    for i in range(10):
        labels.flat[i * 13] = i + 1
    labels[11, 12, 36:38] = 11  # two voxels
    grid = Grid(labels.shape, (1.0, 1.0, 1.0))
    surfaces = surfaces_from_label_map(
        labels, grid, options=SurfaceOptions(decimation_tolerance_mm=tolerance)
    )
    for value, surface in surfaces.items():
        voxels_cc = np.count_nonzero(labels == value) * grid.voxel_volume_cc
        assert surface.topology().watertight, value
        assert mesh_volume_cc(surface) == pytest.approx(voxels_cc, rel=0.1), value
    large = surfaces[20]
    assert not np.allclose(large.points, np.round(large.points * 2) / 2)  # smoothed: off the corners


def test_a_flat_shell_is_not_a_solid():
    triangle = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    flat = Surface("Clip", triangle, [[0, 1, 2], [0, 2, 1]])
    assert mesh_topology(flat.triangles).watertight  # by its edges alone it looks closed
    topology = flat.topology()
    assert not topology.watertight and topology.flat_shells == 1
    assert "flat shell(s) enclosing no volume" in topology.describe()


def test_an_inside_out_mesh_is_described_as_such():
    labels = np.zeros((12, 12, 12), np.uint8)
    labels[3:9, 3:9, 3:9] = 1
    box = surfaces_from_label_map(labels, Grid(labels.shape, (1.0, 1.0, 1.0)))[1]
    inverted = Surface("Box", box.points, box.triangles[:, ::-1])
    topology = inverted.topology()
    assert topology.inside_out and not topology.watertight
    assert topology.describe() == "inside out (triangles face inward: negative volume)"
    assert box.topology().watertight


def test_pyfqmr_is_only_used_under_its_lock(monkeypatch):
    # pyfqmr keeps its mesh in global state: two threads simplifying at once swapped structures'
    # surfaces (the 3D view building while a Surgery dialog measured). Every use holds the lock.
    import pyfqmr

    from planning.surfaces.simplify import PYFQMR_LOCK

    real, calls = pyfqmr.Simplify, []

    class Checked:
        def __init__(self):
            self.inner = real()

        def __getattr__(self, name):
            calls.append(PYFQMR_LOCK.locked())
            return getattr(self.inner, name)

    monkeypatch.setattr(pyfqmr, "Simplify", Checked)
    grid = Grid((36, 40, 40), (1.0, 1.0, 1.0))
    mask = ball(grid, grid.index_to_patient(np.array([19.5, 20.2, 17.8])), 14.0)
    surfaces_from_label_map(mask.astype(np.uint8), grid)
    assert calls and all(calls)


def test_level_of_detail_is_coarse_closed_close_and_gives_pyfqmr_patches_only(monkeypatch):
    # for the 3D view while the camera moves: a large surface is first simplified by pyfqmr
    # (VTK's decimation alone took 110 s of CPU for a 117-organ CT), in patches only: given a
    # whole surface it held Python's GIL for seconds, freezing the window
    import pyfqmr

    grid = Grid((60, 90, 90), (1.5, 1.0, 1.0))
    mask = ball(grid, grid.index_to_patient(np.array([45.0, 45.0, 30.0])), 40.0)
    surface = surfaces_from_label_map(
        mask.astype(np.uint8), grid, options=SurfaceOptions(decimation_tolerance_mm=0)
    )[1]
    real, given = pyfqmr.Simplify, []  # the triangles of each mesh given to pyfqmr

    class Recorded:
        def __init__(self):
            self.inner = real()

        def setMesh(self, points, triangles):  # noqa: N802 (pyfqmr's name)
            given.append(len(triangles))
            self.inner.setMesh(points, triangles)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(pyfqmr, "Simplify", Recorded)
    coarse = surface.level_of_detail(1500)
    patch = SurfaceOptions().patch_triangles
    assert len(surface.triangles) > 2 * patch and len(given) > 1
    assert max(given) <= 1.2 * patch  # its triangles, and one per seam point holding it still
    assert 500 <= len(coarse.triangles) <= 1.3 * 1500
    assert coarse.topology().watertight
    assert np.allclose(coarse.points.min(0), surface.points.min(0), atol=6) and np.allclose(
        coarse.points.max(0), surface.points.max(0), atol=6
    )
    assert surface.level_of_detail(len(surface.triangles)) is surface


def test_coarse_meshes_of_the_sample_patient_are_closed_with_every_shell():
    # vertex clustering opened holes, pinched thin parts and flipped triangles (dark specks in
    # the 3D view while the camera moved): Bone's coarse mesh had 267 open and 309 non-manifold
    # edges; its shells (spine with ribs, and the sternum) each keep a closed coarse mesh
    from planning.sample_patient import make_sample_patient

    surfaces = build_surfaces(make_sample_patient().structures)
    for surface in surfaces.values():
        coarse = surface.level_of_detail(1500)
        topology = coarse.topology()
        assert topology.watertight, (surface.name, topology.describe())
        assert topology.shells == surface.topology().shells
        assert len(coarse.triangles) <= (3 if surface.name == "Bone" else 1.3) * 1500
        normals = coarse.normals[coarse.triangles].sum(axis=1)  # outward: along the faces' normals
        p = coarse.points[coarse.triangles]
        faces = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        assert np.mean(np.einsum("ij,ij->i", normals, faces) > 0) > 0.99
