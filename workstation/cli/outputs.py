"""Checks that a command's outputs can be written, made before it does any work.

A segmentation or a DVH that takes minutes and then fails on a mistyped --out folder loses the
user's time; these checks fail at once, with the path and the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

from planning.errors import DelineoError


def check_output_file(path: Path | None) -> None:
    """`path` (skipped when None) can be created or replaced: its folder exists and is writable,
    and it is not itself a folder."""
    if path is None:
        return
    if path.is_dir():
        raise DelineoError(f"{path}: is a folder; give a file name to write")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise DelineoError(f"{path}: cannot be written: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DelineoError(f"{path}: cannot be written: no permission to write in {folder}")
    if path.exists() and not os.access(path, os.W_OK):
        raise DelineoError(f"{path}: cannot be replaced: the file is read-only")


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
