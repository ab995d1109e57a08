"""`delineo rtstruct export | import | check`: RT Structure Sets from the command line.

delineo rtstruct export LABELS --series DICOM_FOLDER [--names names.json] --out RS.dcm
delineo rtstruct import RS.dcm --series DICOM_FOLDER --out labels.nii.gz
delineo rtstruct check RS.dcm [--series DICOM_FOLDER]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workstation.cli.numbers import non_negative
from workstation.cli.outputs import check_output_file
from workstation.cli.progress import ProgressBar
from workstation.cli.terminal import warn


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "rtstruct",
        help="export, import and check DICOM RT Structure Sets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="rtstruct_command", metavar="ACTION", required=True)

    export = commands.add_parser("export", help="write structures as an RTSTRUCT referencing a DICOM series")
    export.add_argument("labels", type=Path, help="label map (.nii.gz, .nrrd, .mha), DICOM-SEG or RTSTRUCT")
    _series_arguments(export)
    export.add_argument(
        "--names", type=Path, help='JSON of label names: {"1": "Liver", …} (default: LABELS .json)'
    )
    export.add_argument(
        "--out", type=Path, required=True, help="RTSTRUCT file to write (.dcm; .seg.dcm: DICOM-SEG)"
    )
    export.add_argument(
        "--simplify-mm",
        type=non_negative,
        default=0.0,
        help="contour simplification tolerance (mm; at most 5%% of each contour's size)",
    )
    export.add_argument(
        "--keyhole", action="store_true", help="join holes to their outline (keyhole contours)"
    )
    export.add_argument(
        "--min-island-mm2",
        type=non_negative,
        default=None,
        help="drop islands smaller than this (mm², default 1) that touch nothing of their structure "
        "on the neighbouring slices, and fill holes that small",
    )
    export.add_argument("--label", help="structure set label (16 characters at most)")
    export.add_argument(
        "--algorithm",
        choices=("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"),
        default="AUTOMATIC",
        help="ROI generation algorithm recorded for label-map structures (default AUTOMATIC)",
    )
    export.set_defaults(handler=run_export)

    imported = commands.add_parser("import", help="read an RTSTRUCT onto its DICOM series, save a label map")
    imported.add_argument("rtstruct", type=Path, help="RTSTRUCT file")
    _series_arguments(imported)
    imported.add_argument(
        "--out", type=Path, required=True, help="label map (.nii.gz, .nrrd, .mha) or .seg.dcm"
    )
    imported.add_argument("--roi", action="append", dest="rois", help="ROI to read (repeatable; default all)")
    imported.add_argument(
        "--allow-missing-images",
        action="store_true",
        help="leave out contours on no loaded image plane (images not loaded, between slices, not planar)",
    )
    imported.set_defaults(handler=run_import)

    check = commands.add_parser("check", help="report what a planning system would object to")
    check.add_argument("rtstruct", type=Path, help="RTSTRUCT file")
    check.add_argument(
        "--series", type=Path, help="DICOM folder of the images: also check the contours on them"
    )
    check.add_argument("--series-uid", help="SeriesInstanceUID when the folder holds several series")
    check.add_argument("--no-dciodvfy", action="store_true", help="skip the dciodvfy IOD check")
    check.set_defaults(handler=run_check)


def _series_arguments(parser) -> None:
    parser.add_argument("--series", type=Path, required=True, help="DICOM folder of the images")
    parser.add_argument("--series-uid", help="SeriesInstanceUID when the folder holds several series")


def _load_series(args):
    from planning.imageio import load_volume

    progress = ProgressBar()
    try:
        return load_volume(args.series, series=args.series_uid, on_progress=progress)
    finally:
        progress.close()


def run_export(args) -> int:
    from planning.structure_io import load_structures, read_names_file, save_structures
    from planning.structures import GenerationAlgorithm
    from planning.tg263 import check_name

    check_output_file(args.out, [args.labels, args.series])
    volume = _load_series(args)
    names = read_names_file(args.names) if args.names else None
    structures = load_structures(args.labels, volume, names, algorithm=GenerationAlgorithm(args.algorithm))
    for warning in structures.warnings:
        warn(warning)
    options = {"simplify_mm": args.simplify_mm, "keyhole": args.keyhole, "label": args.label}
    if args.min_island_mm2 is not None:
        options["min_island_mm2"] = args.min_island_mm2
    progress = ProgressBar()
    notes: list[str] = []
    try:
        warnings = save_structures(structures, volume, args.out, notes=notes, on_progress=progress, **options)
    finally:
        progress.close()
    for warning in warnings:
        warn(warning)
    for note in notes:
        print(f"note: {note}")
    nonstandard = [check_name(s.name) for s in structures if not check_name(s.name).standard]
    if nonstandard:
        print(f"note: {len(nonstandard)} of {len(structures)} names are not TG-263:")
        for result in nonstandard:
            hint = f" → {', '.join(result.suggestions)}?" if result.suggestions else ""
            print(f"  {result.name}{hint}")
    print(f"wrote {args.out} ({len(structures)} structures on {volume.grid.shape[0]} images)")
    return 0


def run_import(args) -> int:
    from planning.errors import ContoursOffImagesError
    from planning.rtstruct.reader import read_rtstruct
    from planning.structure_io import save_structures

    check_output_file(args.out, [args.rtstruct, args.series])
    volume = _load_series(args)
    progress = ProgressBar()
    try:
        structures = read_rtstruct(
            args.rtstruct,
            volume,
            names=args.rois,
            allow_missing_images=args.allow_missing_images,
            on_progress=progress,
        )
    except ContoursOffImagesError as error:
        raise ContoursOffImagesError(f"{error}; or read the rest with --allow-missing-images") from None
    finally:
        progress.close()
    for warning in structures.warnings:
        warn(warning)
    for warning in save_structures(structures, volume, args.out):
        warn(warning)
    for value, structure in enumerate(structures, start=1):
        kind = structure.roi_type.value
        print(f"  {value:3d}  {structure.name:<24} {kind:<10} {structure.volume_cc:10.2f} cc")
    print(f"wrote {args.out} ({len(structures)} structures)")
    return 0


def run_check(args) -> int:
    from planning.rtstruct.check import check_rtstruct

    volume = _load_series(args) if args.series else None
    report = check_rtstruct(args.rtstruct, volume, run_dciodvfy=not args.no_dciodvfy)
    print(report.text())
    return 1 if report.errors else 0
