"""Thin adapters between the window and the domain packages it drives.

The window calls these functions, never the domain modules directly, so each domain API is
wired in one place. Anything not available raises `Unavailable` (a `DelineoError` the window
shows as a message).
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from planning.errors import DelineoError
from planning.structures import Mask


class Unavailable(DelineoError):
    """A feature whose implementation cannot be imported here."""


def _module(name: str, feature: str):
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise Unavailable(f"{feature} is not available in this build ({name}: {error})") from error


# -- structures in and out ------------------------------------------------------------------------


def load_rtstruct(path, volume, on_progress=None, cancel=None):
    """Read an RTSTRUCT (or DICOM-SEG) onto `volume`'s grid as a StructureSet (warnings in
    `.warnings`)."""
    structure_io = _module("planning.structure_io", "Reading structure sets")
    return structure_io.load_structures(
        path, volume, on_progress=on_progress, cancel=cancel, allow_missing_images=True
    )


def write_rtstruct(structure_set, volume, path, **options) -> list[str]:
    """Write an RTSTRUCT; returns the writer's warnings."""
    structure_io = _module("planning.structure_io", "RTSTRUCT export")
    return structure_io.save_structures(structure_set, volume, path, kind="rtstruct", **options)


def check_rtstruct(path, volume) -> list[tuple[str, str]]:
    """Conformance findings for an RTSTRUCT file as (severity, text): "error", "warning", "note"."""
    check = _module("planning.rtstruct.check", "The RTSTRUCT conformance check")
    report = check.check_rtstruct(path, volume)
    return [(f.severity, f"{f.roi}: {f.message}" if f.roi else f.message) for f in report.findings]


def name_advice(name: str) -> str:
    """'' for a TG-263 name, else what is wrong with it and the standard names probably meant."""
    from planning.tg263 import check_name

    return check_name(name).message


def load_dose(path):
    """An RTDOSE file as a `planning.dose.Dose`."""
    return _module("planning.dose", "RTDOSE display").load_dose(path)


# -- structure tools -----------------------------------------------------------------------------


def union(*masks: Mask) -> Mask:
    return _module("planning.booleans", "Booleans").union(*masks)


def derive(recipe: dict, structures, *, name: str, on_progress=None, cancel=None):
    """A derived Structure (margins, Booleans...) named `name`, built from `recipe` (the format of
    `planning.derived`), carrying its recipe and description."""
    derived = _module("planning.derived", "Margins and Booleans")
    return derived.derive(recipe, structures, name=name, on_progress=on_progress, cancel=cancel)


def logged_warnings(function, *args, **kwargs) -> tuple[object, list[str]]:
    """`function(*args, **kwargs)`'s result and the warnings the domain packages logged while it
    ran in this thread (a margin cut where the images end), for the window to say at once; they
    reach the Messages panel as every warning does."""
    caught: list[str] = []
    thread = threading.get_ident()

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == thread and record.levelno >= logging.WARNING:
                caught.append(record.getMessage())

    handler = Catch()
    loggers = [logging.getLogger(name) for name in ("planning", "segmentation")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        return function(*args, **kwargs), caught
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


@dataclass
class Interpolated:
    """What `interpolate` made: the new mask, the slices drawn by hand, digests of the slices
    filled, and the gaps (first, last drawn slice) left unfilled: separate parts of the
    structure."""

    mask: Mask
    keys: list[int]
    digests: dict[int, str]
    separate: list[tuple[int, int]]


def interpolate(
    mask: Mask, on_progress=None, cancel=None, filled: dict | None = None, axis: int = 0
) -> Interpolated:
    """Fill the slices across array `axis` (0 = z, 1 = y, 2 = x) between the drawn slices of a
    structure, except across gaps that separate parts of it (two nodes drawn apart). `filled`
    holds the digests an earlier interpolation along the same axis returned: those slices, unless
    edited since, are filled again rather than taken as drawn."""
    module = _module("planning.interpolation", "Slice interpolation")
    keys = module.key_planes(mask, filled or {}, axis)
    spacing = mask.grid.spacing_zyx[axis]
    limit = module.bridging_limit_mm(keys, spacing)
    result = module.interpolate(
        mask, axis=axis, planes=keys, max_gap_mm=limit, on_progress=on_progress, cancel=cancel
    )
    between = [k for k in module.contoured_planes(result, axis) if k not in set(keys)]
    separate = [(a, b) for a, b in zip(keys, keys[1:], strict=False) if limit and (b - a) * spacing > limit]
    return Interpolated(result, keys, module.plane_digests(result, between, axis), separate)


def axes_with_gaps(mask: Mask) -> list[int]:
    """The array axes (0 = z, 1 = y, 2 = x) along which `mask` has empty planes between drawn ones."""
    return _module("planning.interpolation", "Slice interpolation").axes_with_gaps(mask)


def recipe_sources(recipe: dict) -> set[str]:
    """The structure names a recipe reads."""
    return _module("planning.derived", "Derived structures").sources(recipe)


def rename_recipe_source(recipe: dict, description: str, old: str, new: str) -> tuple[dict, str]:
    """A recipe (and the description written from it) reading structure `new` where it read
    `old`; a description the user wrote is kept."""
    return rename_recipe_sources(recipe, description, {old: new})


def rename_recipe_sources(recipe: dict, description: str, names: dict[str, str]) -> tuple[dict, str]:
    """A recipe (and the description written from it) reading each structure under its new name
    in `names` (old → new); a description the user wrote is kept."""
    derived = _module("planning.derived", "Derived structures")
    updated = derived.renamed_all(recipe, names)
    bare = {k: v for k, v in recipe.items() if k != "built_from"}
    if description == derived.description_for(bare):
        description = derived.description_for({k: v for k, v in updated.items() if k != "built_from"})
    return updated, description


def edited_description(recipe: dict) -> str:
    """The description of a derived structure edited by hand (it keeps no recipe)."""
    return _module("planning.derived", "Derived structures").edited_description(recipe)


def stale_structures(structure_set) -> list[str]:
    """Derived structures whose sources changed since they were built (hashes masks: a worker)."""
    try:
        derived = importlib.import_module("planning.derived")
    except ImportError:
        return []
    return derived.stale(structure_set)


def why_stale(structure_set) -> dict[str, str]:
    """The derived structures out of date, each with why in words ("derived from CTV, which changed
    since"): `planning.derived.why_stale` (hashes masks: a worker)."""
    return _module("planning.derived", "Derived structures").why_stale(structure_set)


def rebuild(structure_set, names: list[str], on_progress=None, cancel=None) -> list:
    """New versions of derived structures `names` and of those built from them (sources first),
    computed from a snapshot of the set without touching it; returns the new Structures in order."""
    derived = _module("planning.derived", "Rebuilding derived structures")
    table = {s.name: s.mask for s in structure_set}
    rebuilt = []
    for name in derived.rebuild_order(structure_set, names):
        recipe = {k: v for k, v in structure_set[name].recipe.items() if k != "built_from"}
        missing = sorted(n for n in derived.sources(recipe) if n not in table)
        if missing:
            raise DelineoError(
                f"{name} cannot be rebuilt: it is derived from {', '.join(missing)}, which the case no "
                "longer holds (restore it with Undo, or make the structure again)"
            )
        structure = derived.derive(recipe, table, name=name, on_progress=on_progress, cancel=cancel)
        table[name] = structure.mask
        rebuilt.append(structure)
    return rebuilt


# -- segmentation ----------------------------------------------------------------------------------


@dataclass
class ModelInfo:
    """A segmentation model as the dialog lists it (`segmentation.registry` loads and keeps it)."""

    name: str
    title: str
    structures: list[str] = field(default_factory=list)
    description: str = ""
    #: the DICOM modality of the images it segments ("CT"; "" where its folder does not say)
    modality: str = ""
    #: structures drawn only when asked for (targets guessed from the image alone)
    on_request: list[str] = field(default_factory=list)
    #: the model card, when it has one
    card: Path | None = None


def models() -> list[ModelInfo]:
    """Installed segmentation models (the built-in ones, the user's, nnU-Net's)."""
    registry = _module("segmentation.registry", "Auto-segmentation")
    return [
        ModelInfo(
            entry.name,
            entry.title,
            list(entry.structures),
            entry.description,
            entry.modality,
            list(entry.on_request),
            entry.card,
        )
        for entry in registry.list_models()
    ]


def modality_mismatch(model: ModelInfo, image_modality: str) -> str:
    """Why `model` cannot take an image of `image_modality` (an MR for a CT model); "" when it can."""
    inputs = _module("segmentation.engine.inputs", "Auto-segmentation")
    return inputs.modality_mismatch(image_modality, model.modality, model.name)


def segment(
    volume, model: ModelInfo, structures: list[str], device: str | None = None, on_progress=None, cancel=None
):
    """Run a model on `volume` on `device` ("cpu"; None: the best there is); returns a StructureSet
    of AUTOMATIC structures, with what the run warned about (an image that does not look like the
    model's input, a GPU that ran out of memory) in its `warnings`."""
    registry = _module("segmentation.registry", "Auto-segmentation")
    runner = registry.load_model(model.name)
    structure_set = runner.predict(
        volume, structures=structures, device=device, on_progress=on_progress, cancel=cancel
    )
    run = getattr(runner, "last_run", None)
    structure_set.warnings = [*structure_set.warnings, *(run.warnings if run else [])]
    return structure_set


def seeded(volume, inside, outside, on_progress=None, cancel=None, warnings=None) -> Mask:
    """Delineate a lesion from clicks (voxel (z, y, x) points inside and outside it); doubts
    about the result are appended to `warnings`."""
    module = _module("segmentation.seeded", "Seeded delineation")
    return module.delineate(
        volume, inside, outside, on_progress=on_progress, cancel=cancel, warnings=warnings
    )


# -- 3D --------------------------------------------------------------------------------------------


def make_view3d(parent):
    """The 3D view widget of `workstation.view3d`."""
    return _module("workstation.view3d", "The 3D view").View3D(parent)
