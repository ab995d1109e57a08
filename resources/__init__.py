"""Data files shipped inside the wheel: presets, TG-263 names, built-in model weights.

Always reach them through `resource`, never through paths relative to the source tree, so an
installed Delineo finds them too.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def resource(*parts: str) -> Traversable:
    """The resource file or folder at ``resources/<parts...>``."""
    return files(__name__).joinpath(*parts)
