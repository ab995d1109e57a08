"""Writing structure surfaces: STL (binary), OBJ with colours (+ .mtl), PLY (binary, vertex
colours), VTP (VTK XML), and a 3D-printing mode that guarantees one closed, manifold,
outward-oriented shell set per structure and reports its volume.

Files: STL, PLY and VTP hold one structure each (`<name>.<ext>`); OBJ holds all structures as
named objects with one material (colour) each, in `surfaces.obj` + `surfaces.mtl`. A file is
named after its structure, Unicode kept, only characters no file system accepts replaced; a
structure whose name is a valid file name always gets it, and the real name is stored in the
file where the format has room (an OBJ comment line before its object, whose name and material
have '#' replaced as OBJ readers take it for a comment; PLY comment, VTP field data; the STL
header is 80 ASCII bytes). Existing files are not replaced unless asked. Coordinates are patient
millimetres, DICOM LPS by default; `coordinates="RAS"` negates x and y (what older 3D Slicer
versions and some mesh tools expect). Each file says which (`UNITS`): in the STL header, a PLY
comment, the OBJ's first comment line, VTP field data "Coordinates"; each begins with the tag
3D Slicer (4.11 and later) reads, "SPACE=LPS" or "SPACE=RAS" (in VTP the field data "SPACE"), so
either file lands on the image there. Files are written to a temporary name and moved into
place, so a failed export leaves no half-written file.

A structure that runs off the images (a liver whose top the scan does not show) is meshed
closed, capped by a flat face at the image's end or edge: right for printing, but that face is
where the scan stops, not the structure's surface. The caller passes the sides where each
structure reaches the edge of the images (`planning.margins.sides_at_edges`); `Export.cut`
names them for each structure written, for the user to be told.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from planning.errors import Cancelled, FormatError
from planning.files import write_atomically
from planning.surfaces.mesh import Surface, vertex_normals

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


@dataclass(frozen=True)
class CutByImages:
    """A structure written that runs off the images: its mesh is capped flat there.

    Attributes:
        name: the structure.
        sides: the patient sides ("superior", "left"…) where it reaches the edge of the images.
    """

    name: str
    sides: tuple[str, ...]

    def describe(self) -> str:
        """E.g. "Liver: cut by the superior end of the images; the flat face there is the edge
        of the scan, not anatomy"."""
        from planning.margins import edges_in_words

        faces = "the flat face there is" if len(self.sides) == 1 else "the flat faces there are"
        return (
            f"{self.name}: cut by {edges_in_words(list(self.sides))} of the images; "
            f"{faces} the edge of the scan, not anatomy"
        )


@dataclass
class Export:
    """Files written; (the surface as written, its file) for each structure written (repaired
    for printing, in the coordinates asked); in printing mode, the check of each structure
    written and, for each one left out, (its name, why it could not be printed) and the file
    it would have had (none for OBJ): one already there is not from this export; the
    structures written that the images cut off (`cut`)."""

    files: list[Path]
    checks: list[PrintCheck]
    unprintable: list[tuple[str, str]] = field(default_factory=list)
    written: list[tuple[Surface, Path]] = field(default_factory=list)
    unwritten_files: list[Path] = field(default_factory=list)
    cut: list[CutByImages] = field(default_factory=list)


class FilesExist(FormatError):
    """The export would replace files already there; nothing was written."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        shown = ", ".join(p.name for p in paths[:10]) + (" …" if len(paths) > 10 else "")
        super().__init__(
            f"{len(paths)} file(s) already exist in {paths[0].parent}: {shown}; nothing was written"
        )


def export_surfaces(
    surfaces: Iterable[Surface],
    folder: str | os.PathLike,
    fmt: str = "stl",
    *,
    coordinates: str = "LPS",
    for_printing: bool = False,
    repair_spacing_mm: float = 0.5,
    overwrite: bool = False,
    image_edges: Mapping[str, Sequence[str]] | None = None,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Export:
    """Write surfaces to `folder` in format `fmt` (stl, obj, ply or vtp).

    `image_edges`: for a structure that reaches the edge of the images, the patient sides
    there (`planning.margins.sides_at_edges`); `Export.cut` lists those written, whose meshes
    are capped flat at those sides.

    With `for_printing`, every mesh is checked: closed, manifold, consistently outward-oriented.
    A mesh that is not is rebuilt from its voxelisation at `repair_spacing_mm` (which is
    watertight by construction, see `planning.surfaces`); its volume is reported either way. A
    mesh that cannot be rebuilt (one enclosing no volume) is left out with a warning, listed in
    `Export.unprintable`, and the others are written.

    Raises:
        FilesExist: a file to write is already there and not `overwrite` (checked first).
        FormatError: unknown format or coordinate system, or a file that cannot be written.
        Cancelled: when `cancel` is set.
    """
    fmt = _format(fmt)
    if coordinates not in ("LPS", "RAS"):
        raise FormatError(f"coordinates must be 'LPS' or 'RAS', not {coordinates!r}")
    on_progress = on_progress or (lambda stage, done, total: None)
    surfaces = [s for s in surfaces if not s.is_empty]
    folder = Path(folder)
    targets = target_files([s.name for s in surfaces], folder, fmt)
    existing = [path for path in targets if path.exists()]
    if existing and not overwrite:
        raise FilesExist(existing)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [targets[0]] * len(surfaces) if fmt == "obj" else targets
    checks: list[PrintCheck] = []
    ready: list[tuple[Surface, Path]] = []
    unprintable: list[tuple[str, str]] = []
    for done, (surface, path) in enumerate(zip(surfaces, paths, strict=True)):
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
        ready.append((_in_coordinates(surface, coordinates), path))
    on_progress("Writing meshes", 0, 1)
    if fmt == "obj":
        files = write_obj([surface for surface, _ in ready], targets[0], coordinates)
    else:
        writer = {"stl": write_stl, "ply": write_ply, "vtp": write_vtp}[fmt]
        for done, (surface, path) in enumerate(ready):
            on_progress("Writing meshes", done, len(ready))
            writer(surface, path, coordinates)
        files = [path for _, path in ready]
    on_progress("Writing meshes", 1, 1)
    unwritten = [] if fmt == "obj" else [path for path in paths if path not in files]
    cut = [
        CutByImages(surface.name, tuple(sides))
        for surface, _ in ready
        if (sides := (image_edges or {}).get(surface.name))
    ]
    return Export(files, checks, unprintable, ready, unwritten, cut)


def target_files(names: list[str], folder: str | os.PathLike, fmt: str = "stl") -> list[Path]:
    """The files an export of the (non-empty) structures `names`, in that order, writes in
    `folder`: one per structure, or the OBJ and its .mtl. Known before any meshing, so a caller
    can refuse to replace files first."""
    fmt, folder = _format(fmt), Path(folder)
    if fmt == "obj":
        return [folder / "surfaces.obj", folder / "surfaces.mtl"]
    return [folder / f"{stem}.{fmt}" for stem in _file_names(names)]


def _format(fmt: str) -> str:
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise FormatError(f"unknown mesh format {fmt!r}; use one of {', '.join(FORMATS)}")
    return fmt


def printable(surface: Surface, repair_spacing_mm: float = 0.5) -> tuple[Surface, PrintCheck]:
    """The surface as a watertight solid, and what was found: rebuilt from its voxelisation when
    it is not closed, manifold and outward-oriented with a positive volume (an inside-out mesh
    is rebuilt facing outward)."""
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
    from planning.surfaces.build import surfaces_from_label_map
    from planning.surfaces.voxels import voxelize

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


#: Characters no common file system accepts in a name (Windows' list, and control characters).
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')
#: Names Windows reserves for devices, with any extension.
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"{d}{i}" for d in ("COM", "LPT") for i in range(1, 10))}


def _file_names(names: list[str]) -> list[str]:
    """Unique file name stems for structure names (unique ignoring case). A name that is a
    valid stem is its own, whatever comes before it; the others get a cleaned stem, numbered
    (_2, _3, …) when it is taken."""
    return _unique(names, _safe_stem)


def _unique(names: list[str], clean: Callable[[str], str]) -> list[str]:
    """`clean(name)` for each name, unique ignoring case: a name `clean` keeps is its own,
    whatever comes before it; the others are numbered (_2, _3, …) when theirs is taken."""
    stems = [clean(name) for name in names]
    result: list[str | None] = [None] * len(names)
    taken: set[str] = set()
    for i, (name, stem) in enumerate(zip(names, stems, strict=True)):
        if stem == name and stem.casefold() not in taken:
            result[i] = stem
            taken.add(stem.casefold())
    for i, stem in enumerate(stems):
        if result[i] is None:
            candidate, n = stem, 2
            while candidate.casefold() in taken:
                candidate, n = f"{stem}_{n}", n + 1
            result[i] = candidate
            taken.add(candidate.casefold())
    return result


def _safe_stem(name: str) -> str:
    """`name` with the characters file systems refuse replaced by _, no leading dot, no
    trailing space or dot, not a Windows device name, at most 200 UTF-8 bytes."""
    stem = _UNSAFE.sub("_", name).lstrip(". ").rstrip(". ")
    stem = stem.encode("utf-8")[:200].decode("utf-8", "ignore").rstrip(". ") or "structure"
    if stem.split(".")[0].upper() in _RESERVED:
        stem += "_"
    return stem


def _one_line(name: str) -> str:
    """A name for a one-line field of a file (OBJ object, PLY comment): control characters
    become spaces."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", name)


def _obj_object(name: str) -> str:
    """An OBJ object name: one line, no '#' (OBJ readers cut a line there, as a comment)."""
    return _one_line(name).replace("#", "_")


def _mtl_material(name: str) -> str:
    """An MTL material name: one word (readers split at spaces), no '#', a valid file stem."""
    return _safe_stem(re.sub(r"[\s#]", "_", name))


# -- writers -----------------------------------------------------------------------------------

#: What a file's coordinates are, for each coordinate system (ASCII: an STL header): 3D Slicer's
#: tag, then in words
UNITS = {
    "LPS": "SPACE=LPS, mm, DICOM patient LPS",
    "RAS": "SPACE=RAS, mm, patient RAS (DICOM LPS with x, y negated)",
}


def write_stl(surface: Surface, path: str | os.PathLike, coordinates: str = "LPS") -> None:
    """Binary STL (little-endian), facet normals from the triangles' winding; the header names
    the coordinates (`UNITS`) before the structure (cut at 80 bytes)."""
    p = surface.points[surface.triangles]
    normals = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = normals / np.where(length > 0, length, 1)
    record = np.dtype([("normal", "<f4", 3), ("vertices", "<f4", (3, 3)), ("attribute", "<u2")])
    data = np.zeros(len(p), record)
    data["normal"], data["vertices"] = normals, p
    header = f"Delineo, {UNITS[coordinates]}: {surface.name}".encode("ascii", "replace")[:80].ljust(80, b" ")

    def write(target: Path) -> None:
        with open(target, "wb") as stream:
            stream.write(header)
            stream.write(np.uint32(len(data)).tobytes())
            stream.write(data.tobytes())

    write_atomically(Path(path), write)


def write_ply(surface: Surface, path: str | os.PathLike, coordinates: str = "LPS") -> None:
    """Binary little-endian PLY with vertex normals and vertex colours; a comment names the
    structure and the coordinates (`UNITS`)."""
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
        f"comment Delineo surface {_one_line(surface.name)}, {UNITS[coordinates]}\n"
        f"element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property float nx\nproperty float ny\nproperty float nz\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode()

    def write(target: Path) -> None:
        with open(target, "wb") as stream:
            stream.write(header)
            stream.write(vertices.tobytes())
            stream.write(faces.tobytes())

    write_atomically(Path(path), write)


def write_obj(surfaces: list[Surface], path: str | os.PathLike, coordinates: str = "LPS") -> list[Path]:
    """One Wavefront OBJ with an object and a material (its colour) per structure, plus the
    .mtl beside it; its first comment names the coordinates (`UNITS`). Returns both paths."""
    path = Path(path)
    library = path.with_suffix(".mtl")
    names = [s.name for s in surfaces]
    objects, materials = _unique(names, _obj_object), _unique(names, _mtl_material)

    def write_library(target: Path) -> None:
        with open(target, "w", encoding="utf-8") as stream:
            stream.write("# Delineo structure colours\n")
            for surface, material in zip(surfaces, materials, strict=True):
                r, g, b = (c / 255 for c in surface.color)
                stream.write(
                    f"\nnewmtl {material}\nKa 0 0 0\nKd {r:.4f} {g:.4f} {b:.4f}\n"
                    "Ks 0.1 0.1 0.1\nNs 10\nd 1\nillum 2\n"
                )

    def write_objects(target: Path) -> None:
        with open(target, "w", encoding="utf-8") as stream:
            stream.write(f"# Delineo structure surfaces, {UNITS[coordinates]}\nmtllib {library.name}\n")
            base = 1
            for surface, name, material in zip(surfaces, objects, materials, strict=True):
                normals = surface.normals
                if normals is None:
                    normals = vertex_normals(surface.points, surface.triangles)
                stream.write(f"# structure {_one_line(surface.name)}\no {name}\nusemtl {material}\n")
                np.savetxt(stream, surface.points, fmt="v %.4f %.4f %.4f")
                np.savetxt(stream, normals, fmt="vn %.4f %.4f %.4f")
                ids = surface.triangles + base
                np.savetxt(stream, np.repeat(ids, 2, axis=1), fmt="f %d//%d %d//%d %d//%d")
                base += len(surface.points)

    write_atomically(library, write_library)
    write_atomically(path, write_objects)
    return [path, library]


def write_vtp(surface: Surface, path: str | os.PathLike, coordinates: str = "LPS") -> None:
    """VTK XML poly data (compressed, binary), with normals; field data: the colour, the name,
    the coordinates (`UNITS`) and 3D Slicer's "SPACE" ("LPS" or "RAS")."""
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
    units = vtkStringArray()
    units.SetName("Coordinates")
    units.InsertNextValue(UNITS[coordinates])
    space = vtkStringArray()
    space.SetName("SPACE")
    space.InsertNextValue(coordinates)
    for array in (color, name, units, space):
        polydata.GetFieldData().AddArray(array)

    def write(target: Path) -> None:
        writer = vtkXMLPolyDataWriter()
        writer.SetFileName(str(target))
        writer.SetInputData(polydata)
        writer.SetDataModeToAppended()
        writer.SetCompressorTypeToZLib()
        if not writer.Write():
            raise OSError(f"VTK could not write {target}")

    write_atomically(Path(path), write)
