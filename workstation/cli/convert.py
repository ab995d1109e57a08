"""`delineo convert SERIES OUT`: a DICOM series (or image file) to NIfTI / NRRD / MHA."""

from __future__ import annotations

from pathlib import Path

from workstation.cli.outputs import check_output_file
from workstation.cli.progress import ProgressBar
from workstation.cli.terminal import warn


def register(subparsers) -> None:
    parser = subparsers.add_parser("convert", help="convert a series to NIfTI, NRRD or MHA")
    parser.add_argument("source", type=Path, help="DICOM folder or file, or an image file")
    parser.add_argument("output", type=Path, help="output file: .nii.gz, .nii, .nrrd or .mha")
    parser.add_argument("--series", help="SeriesInstanceUID when the folder holds several")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from planning.imageio import load_volume, save_volume

    check_output_file(args.output, [args.source])
    progress = ProgressBar()
    try:
        volume = load_volume(args.source, series=args.series, on_progress=progress)
    finally:
        progress.close()
    for warning in volume.warnings:
        warn(warning)
    save_volume(volume, args.output)
    grid = volume.grid
    print(f"wrote {args.output} ({grid.shape[2]}×{grid.shape[1]}×{grid.shape[0]}, {volume.array.dtype})")
    return 0
