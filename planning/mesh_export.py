"""Writing structure surfaces: STL (binary), OBJ with colours (+ .mtl), PLY (binary, vertex
colours), VTP (VTK XML), and a 3D-printing mode that guarantees one closed, manifold,
outward-oriented shell set per structure and reports its volume.

Files: STL, PLY and VTP hold one structure each (`<name>.<ext>`); OBJ holds all structures as
named objects with one material (colour) each, in `surfaces.obj` + `surfaces.mtl`. Coordinates
are patient millimetres, DICOM LPS by default; `coordinates="RAS"` negates x and y (what most
mesh tools and 3D Slicer's RAS scenes expect). Files are written to a temporary name and moved
into place, so a failed export leaves no half-written file.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from planning.errors import Cancelled, FormatError
from planning.files import write_atomically
from planning.surfaces import Surface, vertex_normals

log = logging.getLogger(__name__)

FORMATS = ("stl", "obj", "ply", "vtp")

Progress = Callable[[str, float, float], None]


@dataclass(frozen=True)
class PrintCheck:
    """What the 3D-printing check found and did for one structure.

    Attributes:
        name: the structure.
        found: the mesh's topology as given ("closed manifold, 1 shell(s)" or its faults).
        repaired: whether it had to be rebuilt (voxelised at `repair_spacing_mm` and re-meshed).
        shells: closed shells in the written mesh.
        volume_cc: volume enclosed by the written mesh.
    """

    name: str
    found: str
    repaired: bool
    shells: int
    volume_cc: float


@dataclass
class Export:
    """Files written and, in printing mode, the check of each structure written and, for each
    structure left out, (its name, why it could not be printed)."""

    files: list[Path]
    checks: list[PrintCheck]
    unprintable: list[tuple[str, str]] = field(default_factory=list)


def export_surfaces(
    surfaces: Iterable[Surface],
    folder: str | os.PathLike,
    fmt: str = "stl",
    *,
    coordinates: str = "LPS",
    for_printing: bool = False,
    repair_spacing_mm: float = 0.5,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Export:
    """Write surfaces to `folder` in format `fmt` (stl, obj, ply or vtp).

    With `for_printing`, every mesh is checked: closed, manifold, consistently outward-oriented.
    A mesh that is not is rebuilt from its voxelisation at `repair_spacing_mm` (which is
    watertight by construction, see `planning.surfaces`); its volume is reported either way. A
    mesh that cannot be rebuilt (one enclosing no volume) is left out with a warning, listed in
    `Export.unprintable`, and the others are written.

    Raises:
        FormatError: unknown format or coordinate system, or a file that cannot be written.
        Cancelled: when `cancel` is set.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise FormatError(f"unknown mesh format {fmt!r}; use one of {', '.join(FORMATS)}")
    if coordinates not in ("LPS", "RAS"):
        raise FormatError(f"coordinates must be 'LPS' or 'RAS', not {coordinates!r}")
    on_progress = on_progress or (lambda stage, done, total: None)
    surfaces = [s for s in surfaces if not s.is_empty]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    checks: list[PrintCheck] = []
    ready: list[Surface] = []
    unprintable: list[tuple[str, str]] = []
    for done, surface in enumerate(surfaces):
        on_progress("Checking meshes" if for_printing else "Preparing meshes", done, len(surfaces))
        if cancel is not None and cancel.is_set():
            raise Cancelled("mesh export was cancelled")
        if for_printing:
            try:
                surface, check = printable(surface, repair_spacing_mm)
            except FormatError as error:
                log.warning("%s; it is left out", error)
                unprintable.append((surface.name, str(error)))
                continue
            checks.append(check)
        ready.append(_in_coordinates(surface, coordinates))
    on_progress("Writing meshes", 0, 1)
    files: list[Path] = []
    if fmt == "obj":
        files += write_obj(ready, folder / "surfaces.obj")
    else:
        names = _file_names([s.name for s in ready])
        writer = {"stl": write_stl, "ply": write_ply, "vtp": write_vtp}[fmt]
        for done, (surface, name) in enumerate(zip(ready, names, strict=True)):
            on_progress("Writing meshes", done, len(ready))
            path = folder / f"{name}.{fmt}"
            writer(surface, path)
            files.append(path)
    on_progress("Writing meshes", 1, 1)
    return Export(files, checks, unprintable)


def printable(surface: Surface, repair_spacing_mm: float = 0.5) -> tuple[Surface, PrintCheck]:
    """The surface as a watertight solid, and what was found: rebuilt from its voxelisation when
    it is not closed, manifold and outward-oriented with a positive volume."""
    from planning.measurements import mesh_volume_cc

    topology = surface.topology()
    volume = mesh_volume_cc(surface)
    repaired = not topology.watertight or volume <= 0
    if repaired:
        log.info("%s: %s; rebuilding it for printing", surface.name, topology.describe())
        rebuilt = _revoxelised(surface, repair_spacing_mm)
        after = rebuilt.topology()
        if not after.watertight:
            raise FormatError(f"{surface.name}: the mesh cannot be made printable ({after.describe()})")
        surface, shells, volume = rebuilt, after.shells, mesh_volume_cc(rebuilt)
    else:
        shells = topology.shells
    return surface, PrintCheck(surface.name, topology.describe(), repaired, shells, volume)


def _revoxelised(surface: Surface, spacing_mm: float) -> Surface:
    """Voxelise a (possibly leaky) surface by scan conversion and mesh the voxels again."""
    from planning.geometry import Grid
    from planning.surfaces import surfaces_from_label_map, voxelize

    low = surface.points.min(axis=0) - 2 * spacing_mm
    high = surface.points.max(axis=0) + 2 * spacing_mm
    dims_xyz = np.ceil((high - low) / spacing_mm).astype(int) + 1
    grid = Grid(tuple(int(n) for n in dims_xyz[::-1]), (spacing_mm,) * 3, tuple(low))
    mask = voxelize(surface, grid).astype(np.uint8)
    meshes = surfaces_from_label_map(mask, grid, {1: surface.name}, {1: surface.color})
    if 1 not in meshes:
        raise FormatError(f"{surface.name}: the mesh encloses no volume and cannot be printed")
    return meshes[1]


def _in_coordinates(surface: Surface, coordinates: str) -> Surface:
    if coordinates == "LPS":
        return surface
    flip = np.array([-1.0, -1.0, 1.0])  # a rotation by 180° about z: orientation is kept
    normals = None if surface.normals is None else surface.normals * flip
    return Surface(surface.name, surface.points * flip, surface.triangles, surface.color, normals)


def _file_names(names: list[str]) -> list[str]:
    """File-system safe, unique stems for structure names."""
    result, seen = [], set()
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "structure"
        candidate, n = stem, 2
        while candidate.lower() in seen:
            candidate, n = f"{stem}_{n}", n + 1
        seen.add(candidate.lower())
        result.append(candidate)
    return result


# -- writers -----------------------------------------------------------------------------------


def write_stl(surface: Surface, path: str | os.PathLike) -> None:
    """Binary STL (little-endian), facet normals from the triangles' winding."""
    p = surface.points[surface.triangles]
    normals = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = normals / np.where(length > 0, length, 1)
    record = np.dtype([("normal", "<f4", 3), ("vertices", "<f4", (3, 3)), ("attribute", "<u2")])
    data = np.zeros(len(p), record)
    data["normal"], data["vertices"] = normals, p
    header = f"Delineo surface {surface.name} (mm)".encode("ascii", "replace")[:80].ljust(80, b" ")

    def write(target: Path) -> None:
        with open(target, "wb") as stream:
            stream.write(header)
            stream.write(np.uint32(len(data)).tobytes())
            stream.write(data.tobytes())

    write_atomically(Path(path), write)


def write_ply(surface: Surface, path: str | os.PathLike) -> None:
    """Binary little-endian PLY with vertex normals and vertex colours."""
    normals = (
        surface.normals if surface.normals is not None else vertex_normals(surface.points, surface.triangles)
    )
    vertex = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4"),
                       ("red", "u1"), ("green", "u1"), ("blue", "u1")])  # fmt: skip
    vertices = np.zeros(len(surface.points), vertex)
    for axis, key in enumerate("xyz"):
        vertices[key] = surface.points[:, axis]
        vertices["n" + key] = normals[:, axis]
    vertices["red"], vertices["green"], vertices["blue"] = surface.color
    face = np.dtype([("count", "u1"), ("indices", "<i4", 3)])
    faces = np.zeros(len(surface.triangles), face)
    faces["count"], faces["indices"] = 3, surface.triangles
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"comment Delineo surface {surface.name}, patient mm\n"
        f"element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property float nx\nproperty float ny\nproperty float nz\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode("ascii", "replace")

    def write(target: Path) -> None:
        with open(target, "wb") as stream:
            stream.write(header)
            stream.write(vertices.tobytes())
            stream.write(faces.tobytes())

    write_atomically(Path(path), write)


def write_obj(surfaces: list[Surface], path: str | os.PathLike) -> list[Path]:
    """One Wavefront OBJ with an object and a material (its colour) per structure, plus the
    .mtl beside it. Returns both paths."""
    path = Path(path)
    library = path.with_suffix(".mtl")
    names = _file_names([s.name for s in surfaces])

    def write_library(target: Path) -> None:
        with open(target, "w", encoding="utf-8") as stream:
            stream.write("# Delineo structure colours\n")
            for surface, name in zip(surfaces, names, strict=True):
                r, g, b = (c / 255 for c in surface.color)
                stream.write(
                    f"\nnewmtl {name}\nKa 0 0 0\nKd {r:.4f} {g:.4f} {b:.4f}\n"
                    "Ks 0.1 0.1 0.1\nNs 10\nd 1\nillum 2\n"
                )

    def write_objects(target: Path) -> None:
        with open(target, "w", encoding="utf-8") as stream:
            stream.write(f"# Delineo structure surfaces, patient mm\nmtllib {library.name}\n")
            base = 1
            for surface, name in zip(surfaces, names, strict=True):
                normals = surface.normals
                if normals is None:
                    normals = vertex_normals(surface.points, surface.triangles)
                stream.write(f"o {name}\nusemtl {name}\n")
                np.savetxt(stream, surface.points, fmt="v %.4f %.4f %.4f")
                np.savetxt(stream, normals, fmt="vn %.4f %.4f %.4f")
                ids = surface.triangles + base
                np.savetxt(stream, np.repeat(ids, 2, axis=1), fmt="f %d//%d %d//%d %d//%d")
                base += len(surface.points)

    write_atomically(library, write_library)
    write_atomically(path, write_objects)
    return [path, library]


def write_vtp(surface: Surface, path: str | os.PathLike) -> None:
    """VTK XML poly data (compressed, binary), with normals, the colour and the name."""
    from vtkmodules.vtkCommonCore import vtkStringArray, vtkUnsignedCharArray
    from vtkmodules.vtkIOXML import vtkXMLPolyDataWriter

    polydata = surface.to_polydata()
    color = vtkUnsignedCharArray()
    color.SetName("Color")
    color.SetNumberOfComponents(3)
    color.InsertNextTuple3(*surface.color)
    name = vtkStringArray()
    name.SetName("Name")
    name.InsertNextValue(surface.name)
    polydata.GetFieldData().AddArray(color)
    polydata.GetFieldData().AddArray(name)

    def write(target: Path) -> None:
        writer = vtkXMLPolyDataWriter()
        writer.SetFileName(str(target))
        writer.SetInputData(polydata)
        writer.SetDataModeToAppended()
        writer.SetCompressorTypeToZLib()
        if not writer.Write():
            raise OSError(f"VTK could not write {target}")

    write_atomically(Path(path), write)
