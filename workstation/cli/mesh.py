"""`delineo mesh LABELS_OR_RTSTRUCT [--series DICOM] --out DIR --format stl|obj|ply|vtp`: one
closed surface mesh per structure, in patient millimetres, DICOM LPS coordinates (RAS with
--ras), which each file names (`planning.mesh_export.UNITS`).

A label map (NIfTI, NRRD, MHA) is meshed on its own grid; with --series, structures (a label map,
an RTSTRUCT or a DICOM-SEG) are first read onto that image series' grid. A label map's structures
are named by --label-names, else by the JSON beside it (``labels.json`` for ``labels.nii.gz``), as
when the app imports it. A structure that runs off the images is named in a warning with the
sides where its mesh is capped flat: that face is the edge of the scan, not anatomy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from planning.errors import DelineoError, FormatError
from workstation.cli.numbers import count, non_negative
from workstation.cli.terminal import warn


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "mesh",
        help="surface meshes of structures (STL, OBJ, PLY, VTP), e.g. for 3D printing",
        description="One closed, manifold, smoothed and simplified surface per structure, in patient "
        "millimetres, DICOM patient LPS coordinates unless --ras (named in the STL header, OBJ/PLY "
        "comment, VTP field data), all structures of a label map built in one pass.",
    )
    parser.add_argument("source", type=Path, help="a label map file, or an RTSTRUCT / SEG with --series")
    parser.add_argument("--series", type=Path, help="the image series the structures belong to")
    parser.add_argument("--out", type=Path, required=True, help="folder for the mesh files")
    parser.add_argument("--format", default="stl", choices=("stl", "obj", "ply", "vtp"), help="file format")
    parser.add_argument("--names", nargs="+", help="only these structures")
    parser.add_argument(
        "--label-names",
        type=Path,
        help="JSON of label value → name, for a label map (default: the .json beside it, if any)",
    )
    parser.add_argument(
        "--print",
        action="store_true",
        help="3D printing: check every mesh is a closed solid (rebuild if not)",
    )
    parser.add_argument("--ras", action="store_true", help="write RAS coordinates (x and y negated)")
    parser.add_argument("--overwrite", action="store_true", help="replace mesh files already in --out")
    parser.add_argument(
        "--tolerance", type=non_negative, default=0.25, metavar="MM", help="simplification bound (0: none)"
    )
    parser.add_argument(
        "--smoothing", type=count, default=20, metavar="N", help="smoothing iterations (0: none)"
    )
    parser.set_defaults(handler=run)


def run(args) -> int:
    from planning.mesh_export import FilesExist, export_surfaces
    from planning.surfaces.options import SurfaceOptions
    from workstation.cli.outputs import check_output_folder
    from workstation.cli.progress import ProgressBar

    check_output_folder(args.out)
    options = SurfaceOptions(smoothing_iterations=args.smoothing, decimation_tolerance_mm=args.tolerance)
    progress = ProgressBar()
    try:
        surfaces, image_edges = _surfaces(
            args, options, progress, lambda names: _refuse_existing(args, names)
        )
        export = export_surfaces(
            surfaces,
            args.out,
            args.format,
            coordinates="RAS" if args.ras else "LPS",
            for_printing=args.print,
            overwrite=args.overwrite,
            image_edges=image_edges,
            on_progress=progress,
        )
    except FilesExist as error:
        raise DelineoError(f"{error} (give --overwrite to replace them)") from error
    finally:
        progress.close()
    _print_table(export)
    print(f"wrote {len(export.files)} file(s) to {args.out}")
    for cut in export.cut:
        warn(cut.describe())
    _report_stale([path for path in export.unwritten_files if path.exists()])
    return _report_unprintable(export.unprintable)


def _refuse_existing(args, names: list[str]) -> None:
    """Before any meshing: refuse when a file the export writes is there and not --overwrite.

    Raises:
        FilesExist: naming the files.
    """
    from planning.mesh_export import FilesExist, target_files

    existing = [path for path in target_files(names, args.out, args.format) if path.exists()]
    if existing and not args.overwrite:
        raise FilesExist(existing)


def _report_stale(paths: list) -> None:
    """Name the files of structures left out (not printable) that an earlier export left in
    the folder: they are kept (not this export's to delete) but are not current."""
    if paths:
        shown = ", ".join(path.name for path in paths)
        warn(
            f"{shown} in {paths[0].parent} {'is' if len(paths) == 1 else 'are'} from an earlier export, "
            "not replaced (not printable now): out of date"
        )


def _print_table(export) -> None:
    """One line per structure written, with the figures of the mesh written (repaired for
    printing), its file and, for printing, what was found."""
    from planning.measurements import mesh_area_cm2, mesh_volume_cc

    checks = {c.name: c for c in export.checks}
    print(f"{'structure':<32} {'triangles':>9} {'volume cc':>10} {'area cm²':>9}  file")
    for surface, path in export.written:
        check = checks.get(surface.name)
        note = (
            ""
            if check is None
            else (f"  rebuilt, was: {check.found}" if check.repaired else f"  {check.shells} shell(s)")
        )
        print(
            f"{surface.name:<32} {len(surface.triangles):>9} {mesh_volume_cc(surface):>10.2f} "
            f"{mesh_area_cm2(surface):>9.2f}  {path.name}{note}"
        )


def _report_unprintable(unprintable: list[tuple[str, str]]) -> int:
    """Warn of each structure left out of a print export; exit code 1 when there is one, so a
    script notices the missing part (the others were written)."""
    for _, reason in unprintable:
        warn(f"{reason}; it is left out")
    if not unprintable:
        return 0
    names = ", ".join(name for name, _ in unprintable)
    print(f"delineo: not printable, not written: {names} (the others were written)", file=sys.stderr)
    return 1


def _surfaces(args, options, progress, before_meshing) -> tuple[list, dict[str, list[str]]]:
    """The surfaces of the structures chosen (--names, else all), only those being built, and
    the patient sides where each reaches the edge of the images (`planning.mesh_export`);
    `before_meshing(names)` is called with their names first (in the order they come)."""
    from planning.margins import sides_at_edges
    from planning.surfaces.build import build_surfaces

    names = _label_names(args.label_names)
    if args.series is None:
        return _label_map_surfaces(args, names, options, progress, before_meshing)
    from planning.imageio import load_volume
    from planning.structure_io import load_structures

    volume = load_volume(args.series, on_progress=progress)
    structures = load_structures(args.source, volume, names)
    for warning in getattr(structures, "warnings", []):
        warn(warning)
    empty = {s.name for s in structures if s.mask.is_empty}
    chosen = _chosen(args, [s.name for s in structures], empty)
    wanted = [s for s in structures if s.name in chosen]
    before_meshing([s.name for s in wanted])
    edges = {s.name: sides_at_edges(s.mask) for s in wanted}
    return list(build_surfaces(wanted, options, on_progress=progress).values()), edges


def _label_map_surfaces(
    args, names: dict[int, str] | None, options, progress, before_meshing
) -> tuple[list, dict[str, list[str]]]:
    """The surfaces of the chosen labels of a label map file, named by `names` (--label-names)
    else by the JSON beside it (a name whose value is not in the map is an empty structure), and
    the sides where each reaches the edge of the images."""
    import numpy as np

    from planning.imageio import is_image_file, read_label_map
    from planning.margins import labels_at_edges
    from planning.structure_io import label_names
    from planning.surfaces.build import surfaces_from_label_map

    if not is_image_file(args.source):
        raise DelineoError(
            f"{args.source.name}: an RTSTRUCT or SEG needs --series, the images it was drawn on"
        )
    labels = read_label_map(args.source)
    names = label_names(args.source, names)
    present = {int(v) for v in np.unique(labels.array) if v}
    name_of = {v: names.get(v, f"Label_{v}") for v in sorted(present | set(names))}
    empty = set(name_of.values()) - {name_of[v] for v in present}
    chosen = _chosen(args, list(dict.fromkeys(name_of.values())), empty)
    array = labels.array
    if args.names:
        values = [v for v in present if name_of[v] in chosen]
        array = np.where(np.isin(array, values), array, 0)
    before_meshing([name_of[v] for v in sorted(present) if name_of[v] in chosen])
    meshes = surfaces_from_label_map(array, labels.grid, names, options=options, on_progress=progress)
    edges = {name_of[value]: sides for value, sides in labels_at_edges(array, labels.grid).items()}
    return list(meshes.values()), edges


def _chosen(args, names: list[str], empty: set[str]) -> set[str]:
    """The structure names to mesh: --names (else all) less the empty ones, which are named
    in a warning.

    Raises:
        DelineoError: a name in --names that no structure has, or nothing left to mesh.
    """
    if args.names:
        missing = [name for name in args.names if name not in names]
        if missing:
            raise DelineoError(f"{args.source.name}: no structure named {', '.join(missing)}")
    chosen = [name for name in names if not args.names or name in args.names]
    empties = [name for name in chosen if name in empty]
    if empties:
        shown = ", ".join(empties[:10]) + (f" and {len(empties) - 10} more" if len(empties) > 10 else "")
        warn(f"{shown} {'is' if len(empties) == 1 else 'are'} empty: no mesh")
    if len(empties) == len(chosen):
        raise DelineoError(f"{args.source.name}: no non-empty structure to mesh")
    return {name for name in chosen if name not in empty}


def _label_names(path: Path | None) -> dict[int, str] | None:
    if path is None:
        return None
    try:
        return {int(value): str(name) for value, name in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError) as error:
        raise FormatError(f"{path.name}: not a JSON object of label value → name ({error})") from error
