"""Where a session's files go: a folder, or a zip archive, written atomically.

A save builds the new folder or archive beside the old one under a hidden name, then moves it
into place, so a crash leaves the previous session whole. A folder is swapped in two renames
(the old one to ``NAME.old`` first); reading falls back to ``NAME.old`` when a crash came between
them. The files themselves (session.json, the npz members) are `planning.session`'s.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

from planning.errors import FormatError


def check_folder_target(path: Path) -> None:
    """Refuse to save a folder session over a file or over a folder holding something else."""
    if path.is_dir() and any(path.iterdir()) and not (path / "session.json").is_file():
        raise FileExistsError(f"{path}: the folder holds other files and is not a Delineo session")
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path}: a file of that name exists and is not a session folder")


def _new_sibling(path: Path, make: Callable[[Path], None]) -> Path:
    """A new hidden file or folder beside `path`, made by `make` (so it gets the umask's mode)."""
    while True:
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        try:
            make(candidate)
            return candidate
        except FileExistsError:
            continue


def _create_file(path: Path) -> None:
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))


def _keep_mode(temporary: Path, path: Path) -> None:
    """Give the new file or folder the mode of the one it replaces, if any."""
    if path.exists():
        os.chmod(temporary, stat.S_IMODE(path.stat().st_mode))


def write_archive(path: Path, files: dict[str, bytes]) -> None:
    """Write `files` (member name → bytes) as an uncompressed zip archive at `path`, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _new_sibling(path, _create_file)
    try:
        with open(temporary, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as archive:
            for name, data in files.items():
                archive.writestr(name, data)
            # npz members are compressed already; the JSON is small.
        _keep_mode(temporary, path)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_folder(path: Path, files: dict[str, bytes]) -> None:
    """Write `files` (file name → bytes) as the folder `path`, replacing any earlier one whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _new_sibling(path, lambda candidate: candidate.mkdir(0o777))
    try:
        for name, data in files.items():
            (temporary / name).write_bytes(data)
        _keep_mode(temporary, path)
        old = path.with_name(path.name + ".old")
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
        temporary.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def read_files(path: Path) -> dict[str, bytes]:
    """The files (name → bytes) of a session folder or archive; FormatError when there is none."""
    if path.is_dir():
        return {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}
    if not path.exists():
        old = path.with_name(path.name + ".old")
        if old.is_dir():  # a crash between the two renames of a folder save
            return read_files(old)
        raise FormatError(f"{path}: no such session")
    try:
        with zipfile.ZipFile(path) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile as error:
        raise FormatError(f"{path}: not a Delineo session archive ({error})") from error
