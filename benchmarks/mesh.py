"""Surfaces of a 117-label map: Delineo vs 3D Slicer's per-label pipeline vs scikit-image.

A synthetic 117-structure label map on a 512×512×300 grid (0.8×0.8×1.5 mm: organs as deformed
ellipsoids painted over each other, ribs and vessels as tubes) is turned into smoothed,
simplified, outward-normal meshes in patient mm three ways, in the same run:

- delineo: `planning.surfaces.build.surfaces_from_label_map`, all labels in one pass;
- slicer: per label, what 3D Slicer's binary-labelmap → closed-surface rule does (SlicerRT
  vtkBinaryLabelmapToClosedSurfaceConversionRule): pad, vtkDiscreteMarchingCubes, vtkDecimatePro
  (feature angle 60°, no splitting, topology kept), vtkWindowedSincPolyDataFilter (20 iterations,
  pass band 0.01, its default smoothing 0.5), transform to patient space, vtkPolyDataNormals.
  Each label is cropped to its bounding box first (Slicer runs it on the whole shared labelmap;
  `--slicer-full-extent` does that too);
- skimage: per label (cropped the same way) `skimage.measure.marching_cubes`, then the same VTK
  simplification, smoothing and normals.

Prints times (wall-clock and CPU seconds: the ratios use CPU time, which a shared machine's load
does not change), triangle counts and the ratios. `--check` also measures every Delineo mesh: closed
and manifold, enclosed volume against the voxel volume, symmetric Hausdorff distance to the exact
voxel boundary. `--labels FILE` runs on a label map file instead (e.g. the TotalSegmentator
example's labels.nii.gz).

    python benchmarks/mesh.py [--check] [--labels labels.nii.gz] [--decimation 0.8] [--small]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkCommonTransforms import vtkTransform
from vtkmodules.vtkFiltersCore import vtkDecimatePro, vtkPolyDataNormals, vtkWindowedSincPolyDataFilter
from vtkmodules.vtkFiltersGeneral import vtkDiscreteMarchingCubes, vtkTransformFilter

from planning.geometry import Grid
from planning.measurements import mesh_volume_cc, point_distances, surface_distances
from planning.surfaces.build import surfaces_from_label_map
from planning.surfaces.mesh import polydata_from_arrays
from planning.surfaces.voxels import voxel_boundary

# -- the label map ---------------------------------------------------------------------------------


def make_label_map(shape=(300, 512, 512), spacing_zyx=(1.5, 0.8, 0.8), seed: int = 7) -> np.ndarray:
    """117 labels: 55 organs, 14 small glands, 30 ribs, 18 vessels, painted in that order."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    spacing = np.asarray(spacing_zyx, float)
    extent = np.asarray(shape) * spacing
    centre = extent / 2
    body = extent * [0.45, 0.32, 0.42]
    kinds = ["organ"] * 55 + ["gland"] * 14 + ["rib"] * 30 + ["vessel"] * 18
    for value, kind in enumerate(kinds, start=1):
        if kind in ("organ", "gland"):
            semi = rng.uniform(12, 60, 3) if kind == "organ" else rng.uniform(4, 10, 3)
            _paint_blob(
                labels, value, centre + rng.uniform(-1, 1, 3) * (body - semi.max()), semi, rng, spacing
            )
        elif kind == "rib":
            side = 1 if value % 2 else -1
            angle = np.linspace(-0.3, 1.6, 500) * side
            radius = rng.uniform(0.85, 1.0) * body[1:]
            z = rng.uniform(0.2, 0.8) * extent[0] + 25 * np.sin(np.abs(angle) * 0.8)
            y = centre[1] + radius[0] * np.cos(angle) * 0.9
            x = centre[2] + radius[1] * np.sin(angle) * 0.95
            _paint_tube(labels, value, np.stack([z, y, x], 1), rng.uniform(3, 6), spacing)
        else:
            z = np.linspace(0.05, 0.95, 600) * extent[0]
            start = centre[1:] + rng.uniform(-0.6, 0.6, 2) * body[1:]
            amplitude, frequency = rng.uniform(5, 25, 2), rng.uniform(0.005, 0.02, 2)
            y = start[0] + amplitude[0] * np.sin(frequency[0] * z)
            x = start[1] + amplitude[1] * np.cos(frequency[1] * z)
            _paint_tube(labels, value, np.stack([z, y, x], 1), rng.uniform(3, 12), spacing)
    return labels


def _paint_blob(labels, value, centre, semi_axes, rng, spacing):
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    reach = semi_axes.max() * 1.2
    lo = np.maximum(np.floor((centre - reach) / spacing).astype(int), 0)
    hi = np.minimum(np.ceil((centre + reach) / spacing).astype(int) + 1, labels.shape)
    axes = np.meshgrid(
        *[np.arange(a, b) * s - c for a, b, s, c in zip(lo, hi, spacing, centre, strict=True)],
        indexing="ij",
        sparse=True,
    )
    u = [sum(rotation[j, i] * axes[j] for j in range(3)) for i in range(3)]
    r = np.sqrt(sum((ui / s) ** 2 for ui, s in zip(u, semi_axes, strict=True)))
    k, phase = rng.uniform(0.02, 0.06, 3), rng.uniform(0, 6.3, 3)
    r = (
        r
        + 0.12 * np.sin(k[0] * u[0] + phase[0]) * np.sin(k[1] * u[1] + phase[1])
        + 0.08 * np.sin(k[2] * u[2] + phase[2])
    )
    labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]][r <= 1] = value


def _paint_tube(labels, value, centres_mm, radius_mm, spacing):
    for c in centres_mm:
        lo = np.maximum(np.floor((c - radius_mm) / spacing).astype(int), 0)
        hi = np.minimum(np.ceil((c + radius_mm) / spacing).astype(int) + 1, labels.shape)
        if np.any(hi <= lo):
            continue
        z, y, x = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        inside = (z * spacing[0] - c[0]) ** 2 + (y * spacing[1] - c[1]) ** 2 + (x * spacing[2] - c[2]) ** 2
        labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]][inside <= radius_mm**2] = value


# -- the peers ---------------------------------------------------------------------------------------


def _image(array: np.ndarray) -> vtkImageData:
    image = vtkImageData()
    image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    image.GetPointData().SetScalars(numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True))
    return image


def _index_to_patient(grid: Grid, offset_zyx) -> vtkTransform:
    affine = grid.affine.copy()
    affine[:3, 3] = grid.index_to_patient(np.asarray(offset_zyx, float)[::-1])
    matrix = vtkMatrix4x4()
    for i in range(4):
        for j in range(4):
            matrix.SetElement(i, j, affine[i, j])
    transform = vtkTransform()
    transform.SetMatrix(matrix)
    return transform


def _slicer_post(polydata, transform, decimation, times):
    """Slicer's steps after contouring: decimate, smooth, to patient space, normals."""
    start = time.perf_counter()
    if decimation > 0:
        decimator = vtkDecimatePro()
        decimator.SetInputData(polydata)
        decimator.SetFeatureAngle(60)
        decimator.SplittingOff()
        decimator.PreserveTopologyOn()
        decimator.SetMaximumError(1)
        decimator.SetTargetReduction(decimation)
        decimator.Update()
        polydata = decimator.GetOutput()
    times["decimate"] += time.perf_counter() - start
    start = time.perf_counter()
    smoother = vtkWindowedSincPolyDataFilter()
    smoother.SetInputData(polydata)
    smoother.SetNumberOfIterations(20)
    smoother.SetPassBand(0.01)
    smoother.BoundarySmoothingOff()
    smoother.FeatureEdgeSmoothingOff()
    smoother.NonManifoldSmoothingOn()
    smoother.NormalizeCoordinatesOn()
    smoother.Update()
    times["smooth"] += time.perf_counter() - start
    start = time.perf_counter()
    to_patient = vtkTransformFilter()
    to_patient.SetInputConnection(smoother.GetOutputPort())
    to_patient.SetTransform(transform)
    normals = vtkPolyDataNormals()
    normals.SetInputConnection(to_patient.GetOutputPort())
    normals.ConsistencyOn()
    normals.SplittingOff()
    normals.Update()
    times["normals"] += time.perf_counter() - start
    return normals.GetOutput()


def _boxes(labels):
    return {v + 1: box for v, box in enumerate(ndimage.find_objects(labels)) if box is not None}


class Clock:
    """Wall-clock and CPU seconds (this process, all threads) since creation. The CPU time is
    what the ratios use: on a shared machine the wall time depends on everyone else's load."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def run_slicer(labels, grid, decimation, full_extent=False):
    times = dict(contour=0.0, decimate=0.0, smooth=0.0, normals=0.0)
    triangles = 0
    clock = Clock()
    for value, box in _boxes(labels).items():
        if full_extent:
            box = tuple(slice(0, n) for n in labels.shape)
        sub = np.pad(labels[box], 1)
        offset = [s.start - 1 for s in box]
        start = time.perf_counter()
        contour = vtkDiscreteMarchingCubes()
        contour.SetInputData(_image(sub))
        contour.SetValue(0, value)
        contour.ComputeNormalsOff()
        contour.ComputeGradientsOff()
        contour.Update()
        times["contour"] += time.perf_counter() - start
        mesh = _slicer_post(contour.GetOutput(), _index_to_patient(grid, offset), decimation, times)
        triangles += mesh.GetNumberOfPolys()
    return clock.read(), triangles, times


def run_skimage(labels, grid, decimation):
    from skimage.measure import marching_cubes

    times = dict(contour=0.0, decimate=0.0, smooth=0.0, normals=0.0)
    triangles = 0
    clock = Clock()
    for value, box in _boxes(labels).items():
        sub = np.pad(labels[box] == value, 1).astype(np.float32)
        offset = [s.start - 1 for s in box]
        start = time.perf_counter()
        vertices, faces, _, _ = marching_cubes(sub, 0.5)
        times["contour"] += time.perf_counter() - start
        # skimage returns (z, y, x) index positions; VTK wants (x, y, z)
        mesh = _slicer_post(
            polydata_from_arrays(vertices[:, ::-1], faces[:, ::-1]),
            _index_to_patient(grid, offset),
            decimation,
            times,
        )
        triangles += mesh.GetNumberOfPolys()
    return clock.read(), triangles, times


def run_delineo(labels, grid):
    stages: dict[str, float] = {}
    state = {"stage": None, "since": time.perf_counter()}

    def on_progress(stage, done, total):
        now = time.perf_counter()
        if state["stage"] is not None:
            stages[state["stage"]] = stages.get(state["stage"], 0.0) + now - state["since"]
        state["stage"], state["since"] = stage, now

    clock = Clock()
    surfaces = surfaces_from_label_map(labels, grid, on_progress=on_progress)
    seconds = clock.read()
    on_progress(None, 0, 0)
    return seconds, sum(len(s.triangles) for s in surfaces.values()), stages, surfaces


# -- quality -------------------------------------------------------------------------------------------


def check(labels, grid, surfaces):
    voxel_cc = grid.voxel_volume_cc
    diagonal = float(np.linalg.norm(grid.spacing_xyz))
    boxes = _boxes(labels)
    counts = np.bincount(labels.ravel())
    rows = []
    for value, surface in surfaces.items():
        topology = surface.topology()
        voxels_cc = counts[value] * voxel_cc
        error = 100 * (mesh_volume_cc(surface) - voxels_cc) / voxels_cc
        box = boxes[value]
        boundary = voxel_boundary(labels[box] == value, [s.start for s in box], grid)
        face_centres = boundary.points[boundary.triangles].mean(axis=1)
        hausdorff = max(
            surface_distances(surface, boundary).max(),
            surface_distances(boundary, surface).max(),
            point_distances(face_centres, surface).max(),
        )
        rows.append((value, topology.watertight, voxels_cc, error, hausdorff))
    watertight = sum(r[1] for r in rows)
    large = [r for r in rows if r[2] >= 5]
    print(f"closed and manifold: {watertight}/{len(rows)} meshes")
    print(
        f"volume vs voxels, structures ≥ 5 cc ({len(large)}): "
        f"max |error| {max(abs(r[3]) for r in large):.2f} %, "
        f"mean |error| {np.mean([abs(r[3]) for r in large]):.2f} %"
    )
    worst = max(rows, key=lambda r: r[4])
    print(
        f"Hausdorff to the voxel boundary: max {worst[4]:.2f} mm (label {worst[0]}), "
        f"median {np.median([r[4] for r in rows]):.2f} mm; one voxel diagonal = {diagonal:.2f} mm"
    )
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", help="a label map file instead of the synthetic one")
    parser.add_argument("--small", action="store_true", help="a 150×256×256 map (quick look)")
    parser.add_argument("--decimation", type=float, default=0.8, help="peers' DecimatePro target reduction")
    parser.add_argument("--check", action="store_true", help="measure the quality of Delineo's meshes")
    parser.add_argument(
        "--slicer-full-extent", action="store_true", help="also run Slicer on the whole map per label"
    )
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args(argv)

    if args.labels:
        from planning.imageio import read_image_file

        volume = read_image_file(args.labels)
        labels, grid = volume.array.astype(np.uint16), volume.grid
    else:
        shape = (150, 256, 256) if args.small else (300, 512, 512)
        spacing = (0.8, 0.8, 1.5) if not args.small else (1.6, 1.6, 3.0)
        start = time.perf_counter()
        labels = make_label_map(shape, spacing[::-1])
        grid = Grid(shape, spacing)
        print(f"generated the label map in {time.perf_counter() - start:.1f} s")
    n_labels = int(np.count_nonzero(np.bincount(labels.ravel())[1:]))
    z, y, x = labels.shape
    sx, sy, sz = grid.spacing_xyz
    print(f"{n_labels} structures on {x}×{y}×{z} voxels of {sx:g}×{sy:g}×{sz:g} mm")

    print("times: wall-clock s / CPU s of this process; ratios on CPU time (see Clock)")
    seconds, triangles, stages, surfaces = run_delineo(labels, grid)
    print(
        f"{'delineo':28s} {seconds[0]:7.1f} / {seconds[1]:7.1f} s  {triangles:9d} triangles  "
        + _stages(stages)
    )
    results = {}
    if not args.skip_peers:
        peers = [("slicer", lambda: run_slicer(labels, grid, args.decimation))]
        peers.append(("skimage", lambda: run_skimage(labels, grid, args.decimation)))
        if args.slicer_full_extent:
            peers.append(
                ("slicer, whole map per label", lambda: run_slicer(labels, grid, args.decimation, True))
            )
        for name, run in peers:
            peer_seconds, peer_triangles, times = run()
            results[name] = peer_seconds
            print(
                f"{name:28s} {peer_seconds[0]:7.1f} / {peer_seconds[1]:7.1f} s  "
                f"{peer_triangles:9d} triangles  " + _stages(times)
            )
        for name, peer_seconds in results.items():
            print(
                f"ratio {name} / delineo: {peer_seconds[1] / seconds[1]:.2f}× CPU time "
                f"({peer_seconds[0] / seconds[0]:.2f}× wall-clock)"
            )
    if args.check:
        check(labels, grid, surfaces)


def _stages(times: dict) -> str:
    return "(" + ", ".join(f"{k.lower()} {v:.1f}" for k, v in times.items()) + ")"


if __name__ == "__main__":
    main()
