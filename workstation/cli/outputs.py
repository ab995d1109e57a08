"""Checks that a command's outputs can be written, made before it does any work.

A segmentation or a DVH that takes minutes and then fails on a mistyped --out folder loses the
user's time; these checks fail at once, with the path and the reason.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from planning.errors import DelineoError

#: Modalities of the DICOM objects commands write; any other DICOM file in an input folder is one
#: of the input's images, never to be replaced by a result.
_WRITTEN_MODALITIES = {"RTSTRUCT", "SEG"}


def check_output_file(path: Path | None, inputs: Sequence[Path | None] = ()) -> None:
    """`path` (skipped when None) can be created or replaced: its folder exists and is writable,
    it is not itself a folder, and it is none of the command's `inputs` (files, or folders of
    images: an image of theirs is not replaced either)."""
    if path is None:
        return
    _check_not_an_input(path, inputs)
    if path.is_dir():
        raise DelineoError(f"{path}: is a folder; give a file name to write")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise DelineoError(f"{path}: cannot be written: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DelineoError(f"{path}: cannot be written: no permission to write in {folder}")
    if path.exists() and not os.access(path, os.W_OK):
        raise DelineoError(f"{path}: cannot be replaced: the file is read-only")


def check_distinct(*paths: Path | None) -> None:
    """The outputs of one command are different files (a report and its CSV, a table and its
    plot): one would replace another."""
    given = [p for p in paths if p is not None]
    for i, path in enumerate(given):
        for other in given[i + 1 :]:
            if _place(path) == _place(other):
                raise DelineoError(f"{path}: named for two of the outputs; give each its own file")


def _place(path: Path) -> str:
    """Where `path` points, for comparing paths that may not exist yet: links and ".." resolved,
    and case ignored where file systems usually ignore it (macOS, Windows)."""
    key = str(path.resolve())
    return key.casefold() if sys.platform in ("darwin", "win32") else key


def _check_not_an_input(path: Path, inputs: Sequence[Path | None]) -> None:
    if not path.is_file():
        return
    for source in inputs:
        if source is None or not source.exists():
            continue
        if source.is_file() and os.path.samefile(path, source):
            raise DelineoError(f"{path}: is also an input of this command; write the result to another file")
        folders = path.resolve().parents
        inside = source.is_dir() and any(os.path.samefile(folder, source) for folder in folders)
        if inside and _is_input_image(path):
            raise DelineoError(f"{path}: is one of the input files in {source}; write the result elsewhere")


def _is_input_image(path: Path) -> bool:
    """Whether `path` is a DICOM file other than what commands write (an image, a dose, a plan)."""
    from planning.dicom.headers import read_header

    try:
        modality = str(read_header(path).values.get("Modality", "") or "")
    except (DelineoError, OSError, ValueError):  # not DICOM, or unreadable: not an image of the series
        return False
    return modality.upper() not in _WRITTEN_MODALITIES


def check_output_folder(path: Path) -> None:
    """`path` is a writable folder, or one that can be made: the nearest folder above it that
    exists is writable, and nothing on the way is a file."""
    if path.exists() and not path.is_dir():
        raise DelineoError(f"{path}: is a file; give a folder to write into")
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise DelineoError(f"{path}: cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DelineoError(f"{path}: cannot be written: no permission to write in {existing}")
