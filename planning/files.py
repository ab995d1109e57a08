"""Writing a file so that a failed write never destroys what was there before."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from planning.errors import FormatError


def write_atomically(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call `write` on a temporary file beside `path`, then move it onto `path`.

    A write that fails (disk full, an exception, an interruption) leaves any earlier file at
    `path` whole, and no partial file. The temporary name keeps `path`'s endings (`.nii.gz`…),
    so writers that pick a format by them still do.

    Raises:
        FormatError: an OSError while writing or moving, naming `path`.
    """
    path = Path(path)
    temporary = path.with_name(f".partial.{path.name}")
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as error:
        raise FormatError(f"{path.name}: cannot be written ({error.strerror or error})") from error
    finally:
        temporary.unlink(missing_ok=True)


def file_stem_for(name: str) -> str:
    """`name` (a structure's) as a file name stem on any system: letters, digits, "-", "_" and
    "." kept, anything else ("PTV 70", "Lung_L~", "A+B") replaced by "_"."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
