"""`delineo open PATH`: open a DICOM folder, a series file, an image file or a saved session in
the workstation window."""

from __future__ import annotations

from pathlib import Path

from planning.errors import DelineoError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "open", help="open a DICOM folder, image file or saved session in the workstation"
    )
    parser.add_argument(
        "path", type=Path, help="DICOM folder or file, NIfTI/NRRD/MHA file, or .delineo session"
    )
    parser.set_defaults(handler=run)


def run(args) -> int:
    if not args.path.exists():
        raise DelineoError(f"{args.path}: no such file or folder")
    from workstation.app.launch import run as launch

    return launch([str(args.path)])
