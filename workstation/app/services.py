"""Thin adapters between the window and the domain packages it drives.

The window calls these functions, never the domain modules directly, so each domain API is
wired in one place. Anything not available raises `Unavailable` (a `DelineoError` the window
shows as a message and uses to disable the matching action).
"""

from __future__ import annotations

import importlib

from planning.errors import DelineoError


class Unavailable(DelineoError):
    """A feature whose implementation is not installed or not built yet."""


def _module(name: str, feature: str):
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise Unavailable(f"{feature} is not available in this build ({name}: {error})") from error


def available(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def make_view3d(parent):
    """The 3D view widget of `workstation.view3d`."""
    raise Unavailable("the 3D view (workstation.view3d) is not built yet")


def load_rtstruct(path, volume):
    """Read an RTSTRUCT onto `volume`'s grid as a StructureSet."""
    raise Unavailable(f"{path}: reading RTSTRUCT files (planning.structure_io) is not built yet")
