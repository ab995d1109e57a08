"""Surface meshes of structures: one closed, manifold triangle mesh per structure, in patient mm.

All structures of a label map are meshed in one pass (VTK's multi-label surface nets), so the
boundary two touching organs share is built, smoothed and simplified once and the two surfaces
meet without gaps or overlaps. The steps:

1. make every label's voxel region well composed (`planning.surface_topology`): diagonal voxel
   contacts are bridged, which is what makes every surface a closed 2-manifold;
2. `vtkSurfaceNets3D` on the label map (padded by one voxel so structures touching the grid's
   edge are closed): a quad mesh with one vertex per voxel corner on a boundary, each quad knowing
   the two labels it separates;
3. windowed-sinc smoothing (`vtkWindowedSincPolyDataFilter`, Slicer's default pass band) of the
   whole multi-label mesh; edges where three regions meet are smoothed along themselves;
4. the mesh is cut into patches, one per pair of touching labels (large ones into parts); each
   patch is simplified by quadric edge collapse (pyfqmr) with an error bound in mm, its rim,
   the points it shares with other patches, held in place; a simplified patch is kept only if
   no edge is shared by more than two of its triangles and its rim is intact (else it is
   simplified again at half the bound, a few times), so the structures' surfaces, assembled
   from their patches and oriented outward, stay closed and manifold;
5. points are mapped to patient coordinates (LPS mm) through the grid's direction matrix, so the
   meshes sit exactly on the image (a mirrored grid reverses the triangles' winding), and vertex
   normals are computed.

Structures of a `StructureSet` may overlap (a PTV over an organ, BODY around everything): they are
sorted into layers of mutually disjoint structures and each layer is meshed in one pass.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import numpy as np

from planning.geometry import Grid
from planning.structures import Structure, StructureSet, bounding_box
from planning.surface_topology import make_well_composed
from planning.surfaces.mesh import Surface, vertex_normals
from planning.surfaces.options import Progress, Stages, SurfaceOptions, check_cancelled
from planning.surfaces.simplify import (
    HELD_EXTENT,
    assemble,
    simplify_patches,
    small_parts,
    split_into_patches,
)
from planning.surfaces.surface_nets import (
    connected_parts,
    smooth_keeping_volumes,
    surface_nets,
    triangulate,
)

log = logging.getLogger(__name__)


# -- public entry points -----------------------------------------------------------------------


def build_surfaces(
    structures: StructureSet | Iterable[Structure],
    options: SurfaceOptions = SurfaceOptions(),
    *,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Surface]:
    """One surface per non-empty structure, keyed by structure name.

    Overlapping structures are meshed in separate passes (see the module docstring).

    Raises:
        Cancelled: when `cancel` is set.
    """
    structures = [s for s in structures if not s.mask.is_empty]
    if not structures:
        return {}
    grid = structures[0].mask.grid
    layers = disjoint_layers(structures)
    progress = Stages(on_progress, len(layers))
    surfaces: dict[str, Surface] = {}
    for members in layers:
        box = _union_box([s.mask.box for s in members])
        labels = np.zeros(tuple(s.stop - s.start + 2 for s in box), _label_type(len(members)))
        for value, structure in enumerate(members, start=1):
            mask = structure.mask
            target = tuple(
                slice(o - b.start + 1, o - b.start + 1 + n)
                for o, b, n in zip(mask.offset, box, mask.array.shape, strict=True)
            )
            labels[target][mask.array] = value
        offset = tuple(s.start - 1 for s in box)
        meshes = _mesh_layer(labels, offset, grid, options, progress, cancel)
        for value, structure in enumerate(members, start=1):
            if value in meshes:
                points, triangles, normals = meshes[value]
                surfaces[structure.name] = Surface(
                    structure.name, points, triangles, structure.color, normals
                )
    return surfaces


def surfaces_from_label_map(
    labels: np.ndarray,
    grid: Grid,
    names: dict[int, str] | None = None,
    colors: dict[int, tuple[int, int, int]] | None = None,
    options: SurfaceOptions = SurfaceOptions(),
    *,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> dict[int, Surface]:
    """One surface per non-zero label of a (z, y, x) label map on `grid`, in one pass.

    Names default to "Label_<value>", colours to the TG-263 style of the name.
    """
    from planning.tg263 import style_for

    if tuple(labels.shape) != grid.shape:
        raise ValueError(f"label map of shape {labels.shape} does not fit grid {grid.shape}")
    if labels.dtype.kind not in "iub" or (labels.size and labels.min() < 0):
        raise ValueError(f"a label map holds non-negative integers, not {labels.dtype} values")
    box = bounding_box(labels != 0)
    if box is None:
        return {}
    labels = labels[box]
    if labels.max() <= np.iinfo(np.uint16).max:
        values, compact = np.arange(int(labels.max()) + 1), labels
    else:
        values, compact = np.unique(labels, return_inverse=True)
        compact = compact.reshape(labels.shape)
    padded = np.pad(compact.astype(_label_type(int(compact.max())), copy=False), 1)
    offset = tuple(s.start - 1 for s in box)
    meshes = _mesh_layer(padded, offset, grid, options, Stages(on_progress, 1), cancel)
    surfaces = {}
    for index, (points, triangles, normals) in meshes.items():
        value = int(values[index])
        name = (names or {}).get(value, f"Label_{value}")
        color = (colors or {}).get(value) or style_for(name)[0]
        surfaces[value] = Surface(name, points, triangles, color, normals)
    return surfaces


def disjoint_layers(structures: list[Structure]) -> list[list[Structure]]:
    """Group structures into layers in which no two share a voxel (first fit, in the given
    order): each layer can be meshed as one label map."""
    if not structures:
        return []
    shape = structures[0].mask.grid.shape
    layers: list[tuple[np.ndarray, list[Structure]]] = []
    for structure in structures:
        mask = structure.mask
        for occupied, members in layers:
            if not occupied[mask.box][mask.array].any():
                occupied[mask.box] |= mask.array
                members.append(structure)
                break
        else:
            occupied = np.zeros(shape, bool)
            occupied[mask.box] = mask.array
            layers.append((occupied, [structure]))
    return [members for _, members in layers]


# -- the pipeline --------------------------------------------------------------------------


def _mesh_layer(
    labels: np.ndarray,
    offset_zyx: tuple[int, int, int],
    grid: Grid,
    options: SurfaceOptions,
    progress: Stages,
    cancel: threading.Event | None,
) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Mesh every label of a padded (z, y, x) label array whose voxel [0, 0, 0] is grid voxel
    `offset_zyx`. Returns {label: (points LPS mm, triangles, normals)}."""
    progress("Repairing voxel topology", 0, 1)
    original = labels
    labels = labels.copy()
    changed, failed = make_well_composed(labels)
    if changed:
        log.debug("bridged diagonal voxel contacts with %d voxels", changed)
    check_cancelled(cancel)
    for value in failed:
        labels[labels == value] = 0
    meshes = _mesh_well_composed(labels, offset_zyx, grid, options, progress, cancel)
    for value in failed:  # alone, a region can always be repaired
        box = bounding_box(original == value)
        box = tuple(
            slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, original.shape, strict=True)
        )
        binary = np.pad((original[box] == value).astype(np.uint8), 1)
        make_well_composed(binary, max_rounds=1000)
        corner = tuple(o + s.start - 1 for o, s in zip(offset_zyx, box, strict=True))
        alone = _mesh_well_composed(binary, corner, grid, options, progress, cancel)
        if 1 in alone:
            meshes[value] = alone[1]
    progress.layer += 1
    return meshes


def _mesh_well_composed(labels, offset_zyx, grid, options, progress, cancel):
    spacing = np.asarray(grid.spacing_xyz)
    progress("Extracting surfaces", 0, 1)
    points, quads, pairs = surface_nets(labels, spacing)
    check_cancelled(cancel)
    if len(quads) == 0:
        return {}
    progress("Smoothing surfaces", 0, 1)
    part = connected_parts(quads, len(points))
    if options.smoothing_iterations:
        points = smooth_keeping_volumes(points, quads, pairs, part, options)
    check_cancelled(cancel)
    triangles, pairs = triangulate(points, quads, pairs)
    patches = split_into_patches(triangles, pairs, points, options.patch_triangles)
    held = small_parts(points, part, HELD_EXTENT * options.decimation_tolerance_mm)
    simplified = simplify_patches(points, triangles, patches, held, options, progress, cancel)
    # scaled index of the padded array → patient: origin + D (spacing * (index + offset))
    matrix = grid.direction
    translation = np.asarray(grid.origin_xyz) + matrix @ (spacing * np.asarray(offset_zyx[::-1], float))
    mirrored = np.linalg.det(matrix) < 0
    meshes = {}
    values = sorted({int(v) for key in patches for v in key[:2] if v})
    for done, value in enumerate(values):
        progress("Assembling surfaces", done, len(values))
        check_cancelled(cancel)
        local_points, local_triangles = assemble(value, points, simplified)
        patient = local_points @ matrix.T + translation
        if mirrored:
            local_triangles = local_triangles[:, ::-1]
        normals = vertex_normals(patient, local_triangles) if options.normals else None
        meshes[value] = (patient, local_triangles, normals)
    progress("Assembling surfaces", len(values), len(values))
    return meshes


def _label_type(largest: int) -> type:
    return np.uint8 if largest <= np.iinfo(np.uint8).max else np.uint16


def _union_box(boxes) -> tuple[slice, slice, slice]:
    return tuple(
        slice(min(b[axis].start for b in boxes), max(b[axis].stop for b in boxes)) for axis in range(3)
    )
