"""`delineo info PATH`: what a folder of DICOM files (or an image file) holds."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("info", help="list patients, studies, series and RT objects in a folder")
    parser.add_argument("path", type=Path, help="a folder (scanned recursively) or a file")
    parser.add_argument("--problems", action="store_true", help="list every unreadable file")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from planning.dicom.load import unread_warning
    from planning.dicom.scan import scan
    from planning.imageio import is_image_file, read_image_file

    if args.path.is_file() and is_image_file(args.path):
        volume = read_image_file(args.path)
        grid = volume.grid
        print(
            f"{args.path.name}: {volume.array.dtype} {grid.shape[2]}×{grid.shape[1]}×{grid.shape[0]} voxels"
        )
        print(f"  spacing (x, y, z) mm: {_numbers(grid.spacing_xyz)}")
        print(f"  origin (LPS mm):      {_numbers(grid.origin_xyz)}")
        for warning in volume.warnings:
            print(f"  warning: {warning}")
        return 0
    result = scan(args.path)
    for patient in result.patients():
        print(f"Patient {patient.patient_id or '(no ID)'}  {patient.name}")
        for study in patient.studies:
            print(f"  Study {study.date or ''} {study.description or ''}  [{study.instance_uid}]")
            for series in study.series:
                print(f"    Series {series.key}")
                print(f"      {series.describe()}")
                print(f"      frame of reference {series.identity.frame_of_reference_uid or '(none)'}")
                if series.unread:
                    print(f"      {unread_warning(series.unread)}")
            for obj in study.rt_objects:
                print(f"    {obj.describe()}")
                print(f"      file {obj.path}")
    if not result.series and not result.rt_objects:
        print(f"No DICOM objects found under {args.path}")
    if result.problems:
        print(f"{len(result.problems)} file(s) skipped:")
        shown = result.problems if args.problems else result.problems[:10]
        for problem in shown:
            print(f"  {problem.reason}")
        if len(shown) < len(result.problems):
            print(f"  … {len(result.problems) - len(shown)} more (--problems lists all)")
    return 0


def _numbers(values) -> str:
    return ", ".join(f"{v:.4g}" for v in values)
