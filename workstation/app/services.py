"""Thin adapters between the window and the domain packages it drives.

The window calls these functions, never the domain modules directly, so each domain API is
wired in one place. Anything not available raises `Unavailable` (a `DelineoError` the window
shows as a message).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from planning.errors import DelineoError
from planning.structures import Mask


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


# -- structures in and out ------------------------------------------------------------------------


def load_rtstruct(path, volume, on_progress=None, cancel=None):
    """Read an RTSTRUCT onto `volume`'s grid as a StructureSet (warnings in `.warnings`)."""
    reader = _module("planning.rtstruct.reader", "Reading RTSTRUCT files")
    return reader.read_rtstruct(path, volume, on_progress=on_progress, cancel=cancel)


def write_rtstruct(structure_set, volume, path, **options) -> list[str]:
    """Write an RTSTRUCT; returns the writer's warnings."""
    writer = _module("planning.rtstruct.writer", "RTSTRUCT export")
    return writer.write_rtstruct(structure_set, volume, path, **options)


def check_rtstruct(path, volume) -> list[tuple[str, str]]:
    """Conformance findings for an RTSTRUCT file as (level, text), level "error" or "warning"."""
    try:
        checker = importlib.import_module("planning.rtstruct.check")
    except ImportError:
        return [("warning", "the RTSTRUCT conformance checker (planning.rtstruct.check) is not built yet")]
    findings = checker.check_rtstruct(path, volume=volume)
    return [(str(getattr(f, "level", "warning")).lower(), str(getattr(f, "message", f))) for f in findings]


# -- structure tools -----------------------------------------------------------------------------


def union(*masks: Mask) -> Mask:
    return _module("planning.booleans", "Booleans").union(*masks)


def derive(recipe: dict, structures: dict, on_progress=None, cancel=None) -> Mask:
    """Compute a derived structure's mask from its recipe (see `derive_dialog`)."""
    margins = _module("planning.margins", "Margins")
    booleans = _module("planning.booleans", "Booleans")
    op = recipe["op"]
    kwargs = {"on_progress": on_progress, "cancel": cancel}

    def mask(name: str) -> Mask:
        if name not in structures:
            raise DelineoError(f"the recipe needs structure {name!r}, which does not exist")
        return structures[name].mask

    within = mask(recipe["within"]) if recipe.get("within") else None
    if op == "expand":
        return margins.expand(
            mask(recipe["source"]), _margins(margins, recipe["margins"]), within=within, **kwargs
        )
    if op == "shrink":
        result = margins.shrink(mask(recipe["source"]), _margins(margins, recipe["margins"]), **kwargs)
    elif op == "ring":
        return margins.ring(
            mask(recipe["source"]), recipe["inner_mm"], recipe["outer_mm"], within=within, **kwargs
        )
    elif op in ("union", "intersect", "xor"):
        result = getattr(booleans, op)(*(mask(name) for name in recipe["sources"]))
    elif op == "subtract":
        first, *others = recipe["sources"]
        result = booleans.subtract(mask(first), *(mask(name) for name in others))
    elif op == "fill_holes":
        result = booleans.fill_holes(mask(recipe["source"]))
    elif op == "remove_islands":
        result = booleans.remove_islands(mask(recipe["source"]), recipe["min_cc"])
    elif op == "keep_largest":
        result = booleans.keep_largest(mask(recipe["source"]))
    else:
        raise DelineoError(f"unknown operation {op!r}")
    return booleans.intersect(result, within) if within is not None else result


def _margins(margins_module, value):
    return margins_module.Margins(**value) if isinstance(value, dict) else float(value)


def interpolate(mask: Mask, on_progress=None, cancel=None) -> Mask:
    """Fill the slices between contoured slices of a structure."""
    module = _module("planning.interpolation", "Slice interpolation")
    return module.interpolate(mask, on_progress=on_progress, cancel=cancel)


# -- segmentation ----------------------------------------------------------------------------------


@dataclass
class ModelInfo:
    """A segmentation model as the dialog lists it."""

    name: str
    title: str
    structures: list[str] = field(default_factory=list)
    description: str = ""


def models() -> list[ModelInfo]:
    """Installed segmentation models (the rule-based one first)."""
    registry = _module("segmentation.registry", "Auto-segmentation")
    found = []
    for model in registry.list_models():
        found.append(
            ModelInfo(
                name=model.name,
                title=getattr(model, "title", model.name),
                structures=list(model.structures),
                description=getattr(model, "description", ""),
            )
        )
    return found


def segment(volume, model: str, structures: list[str], on_progress=None, cancel=None):
    """Run a model on `volume`; returns a StructureSet of AUTOMATIC structures."""
    registry = _module("segmentation.registry", "Auto-segmentation")
    return registry.segment(volume, model, structures=structures, on_progress=on_progress, cancel=cancel)


def seeded(volume, inside, outside, on_progress=None, cancel=None) -> Mask:
    """Delineate a lesion from clicks (voxel (z, y, x) points inside and outside it)."""
    module = _module("segmentation.seeded", "Seeded delineation")
    return module.delineate(volume, inside, outside, on_progress=on_progress, cancel=cancel)


# -- 3D --------------------------------------------------------------------------------------------


def make_view3d(parent):
    """The 3D view widget of `workstation.view3d`."""
    module = _module("workstation.view3d", "The 3D view")
    return module.View3D(parent)
