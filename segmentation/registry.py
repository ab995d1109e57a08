"""Finding models: built-in ones, the user's folders, nnU-Net results, TotalSegmentator's weights.

Where models are looked for (nothing is ever downloaded):

- built-in: the rule-based ``ct_rules`` and ``resources/models/<folder>/manifest.json``;
- the user's model folders: ``$DELINEO_MODELS`` (paths separated by ``os.pathsep``) and
  ``~/.delineo/models``; each holds Delineo model folders (manifest + weights) or nnU-Net folders;
- nnU-Net results: ``$nnUNet_results/DatasetXXX_Name/Trainer__Plans__configuration``;
- TotalSegmentator's weights where it installs them: ``$TOTALSEG_HOME_DIR/nnunet/results`` or
  ``~/.totalsegmentator/nnunet/results``.

Every model listed has its own name. When two are named alike (a user's copy of a built-in
model, two nnU-Net trainings of one dataset and configuration with other trainers or plans), the
first found keeps the name (built-in, then the user's, nnU-Net's results, TotalSegmentator's;
nnU-Net's default ``nnUNetTrainer__nnUNetPlans`` before other trainings of its dataset) and the
others are listed, with a warning, under a name saying which they are:
``DatasetXXX_Name/Trainer__Plans__configuration`` for nnU-Net folders, ``name@user`` (else
``name@folder``) for Delineo ones. A folder that cannot be described (an unreadable or malformed
manifest or dataset.json) is left out with a warning naming it and what is wrong.

`load_model` keeps what it loads: the next run with the same model reuses the loaded networks.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

from planning.errors import DelineoError
from segmentation.engine.manifest import find_manifest, model_title, read_manifest

log = logging.getLogger(__name__)

#: How many loaded models stay in memory (least recently used ones are dropped).
CACHE_SIZE = 3


@dataclass(frozen=True)
class ModelEntry:
    """A model that can be loaded, described without loading it.

    Attributes:
        kind: "rules", "delineo" (manifest folder) or "nnunet".
        origin: "built-in", "user", "nnU-Net" or "TotalSegmentator".
    """

    name: str
    kind: str
    origin: str
    path: Path | None
    description: str
    modality: str
    structures: tuple[str, ...]
    #: the manifest's version ("" where the folder does not say: nnU-Net)
    version: str = ""
    #: structures drawn only when asked for by name (a manifest output's ``by_default`` false)
    on_request: tuple[str, ...] = ()
    #: the model card (Markdown), when the folder has one
    card: Path | None = None

    @property
    def default_structures(self) -> list[str]:
        """The structures drawn when the user names none."""
        return [name for name in self.structures if name not in self.on_request]

    @property
    def title(self) -> str:
        """Name and version, as lists show the model ("head_neck_openkbp 0.6.0")."""
        return model_title(self.name, self.version)


def search_roots() -> list[tuple[str, Path]]:
    """(origin, folder) pairs searched for models, existing ones only."""
    roots: list[tuple[str, Path]] = []
    for part in os.environ.get("DELINEO_MODELS", "").split(os.pathsep):
        if part:
            roots.append(("user", Path(part).expanduser()))
    roots.append(("user", Path.home() / ".delineo" / "models"))
    if os.environ.get("nnUNet_results"):
        roots.append(("nnU-Net", Path(os.environ["nnUNet_results"]).expanduser()))
    # where TotalSegmentator itself looks: TOTALSEG_WEIGHTS_PATH, else its home's nnunet/results
    totalseg = Path(os.environ.get("TOTALSEG_HOME_DIR", Path.home() / ".totalsegmentator")).expanduser()
    weights = os.environ.get("TOTALSEG_WEIGHTS_PATH")
    weights_folder = Path(weights).expanduser() if weights else totalseg / "nnunet" / "results"
    roots.append(("TotalSegmentator", weights_folder))
    return [(origin, path) for origin, path in roots if path.is_dir()]


def builtin_folder() -> Path | None:
    """The folder of built-in models inside the installed resources (None if absent)."""
    from resources import resource

    folder = Path(str(resource("models")))
    return folder if folder.is_dir() else None


def list_models() -> list[ModelEntry]:
    """Every model Delineo can find, built-in ones first, each under its own name; folders that
    cannot be described, and models renamed because their name was taken, are logged."""
    entries, problems = _scan()
    for problem in problems:
        log.warning("%s", problem)
    return entries


def _scan() -> tuple[list[ModelEntry], list[str]]:
    """The models found (with unique names) and what went wrong or was renamed finding them."""
    from segmentation.rules import RuleModel

    rules = RuleModel()
    entries = [
        ModelEntry(
            rules.name,
            "rules",
            "built-in",
            None,
            rules.description,
            rules.modality,
            tuple(o.name for o in rules.outputs),
            rules.version,
        )
    ]
    folders: list[tuple[str, Path]] = []
    builtin = builtin_folder()
    if builtin is not None:
        folders += [("built-in", p) for p in sorted(builtin.iterdir()) if p.is_dir()]
    problems: list[str] = []
    for origin, root in search_roots():
        try:
            folders += [(origin, p) for p in _candidate_folders(root)]
        except OSError as error:
            problems.append(f"skipping model folder {root}: cannot be listed ({error})")
    owners = {e.name: e for e in entries}
    visited = set()
    for origin, folder in folders:
        real = _real(folder)
        if real in visited:  # one folder under two roots (a root named twice, or one in another)
            continue
        visited.add(real)
        try:
            entry = describe_folder(folder, origin)
        except (DelineoError, OSError) as error:
            problems.append(f"skipping model folder {folder}: {error}")
            continue
        if entry is None:
            continue
        if entry.name in owners:
            first = owners[entry.name]
            renamed = replace(entry, name=_free_name(entry, owners))
            problems.append(
                f"two models are named {entry.name!r}: {_where(first)} keeps the name, "
                f"{_where(entry)} is listed as {renamed.name!r}"
            )
            entry = renamed
        owners[entry.name] = entry
        entries.append(entry)
    return entries, problems


def _where(entry: ModelEntry) -> str:
    return f"{entry.path or entry.name} ({entry.origin})"


def _free_name(entry: ModelEntry, taken) -> str:
    """A name for `entry` that no model in `taken` has, saying which it is: for an nnU-Net
    folder "DatasetXXX_Name/Trainer__Plans__configuration", else "name@origin" ("@user"), else
    "name@folder"; numbered if those are taken too."""
    if entry.kind == "nnunet" and entry.path is not None:
        candidates = [f"{entry.path.parent.name}/{entry.path.name}", f"{entry.name}@{entry.path.parent.name}"]
    else:
        candidates = [f"{entry.name}@{entry.origin}"]
        if entry.path is not None:
            candidates.append(f"{entry.name}@{entry.path.name}")
    for name in candidates:
        if name not in taken and name != entry.name:
            return name
    number = 2
    while f"{candidates[-1]}@{number}" in taken:
        number += 1
    return f"{candidates[-1]}@{number}"


def _candidate_folders(root: Path) -> list[Path]:
    """Model folders directly under `root`, and nnU-Net's Dataset*/Trainer__Plans__config ones
    (nnU-Net's default trainer and plans first: it keeps the dataset's name when another
    training of the same configuration is there too)."""
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if find_manifest(child) or (child / "plans.json").is_file():
            found.append(child)
        else:
            found += sorted(
                (p for p in child.iterdir() if p.is_dir() and (p / "plans.json").is_file()),
                key=lambda p: (not p.name.startswith("nnUNetTrainer__nnUNetPlans__"), p.name),
            )
    return found


def describe_folder(folder: Path, origin: str = "user") -> ModelEntry | None:
    """A `ModelEntry` for a Delineo or nnU-Net model folder, None if it is neither."""
    folder = Path(folder)
    if find_manifest(folder):
        manifest = read_manifest(folder)
        card = folder / manifest.card if manifest.card else None
        return ModelEntry(
            manifest.name,
            "delineo",
            origin,
            folder,
            manifest.description,
            manifest.modality,
            tuple(manifest.structure_names),
            manifest.version,
            on_request=tuple(o.name for o in manifest.outputs if not o.by_default),
            card=card if card is not None and card.is_file() else None,
        )
    from segmentation import nnunet

    if nnunet.is_nnunet_folder(folder):
        dataset = nnunet.read_dataset(folder)  # an object, its labels and channels checked
        outputs, _ = nnunet.dataset_outputs(dataset, folder)
        names = tuple(o.name for o in outputs)
        name = nnunet.default_name(folder)
        modality = nnunet.input_modality(folder, dataset)
        return ModelEntry(name, "nnunet", origin, folder, str(dataset.get("name") or name), modality, names)
    return None


def find_model(name_or_path: str) -> ModelEntry:
    """The model called `name_or_path`, or the model folder at that path."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        entry = describe_folder(path)
        if entry is None:
            raise DelineoError(f"{path}: not a model folder (no manifest.json, not an nnU-Net folder)")
        # a folder the lists show under another name (its own was taken) keeps that name
        listed = [e for e in _scan()[0] if e.path is not None and _real(e.path) == _real(path)]
        return replace(entry, name=listed[0].name, origin=listed[0].origin) if listed else entry
    entries = list_models()
    for entry in entries:
        if entry.name == name_or_path:
            return entry
    matches = [e for e in entries if e.name.lower().startswith(name_or_path.lower())]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise DelineoError(f"model name {name_or_path!r} is ambiguous: {', '.join(e.name for e in matches)}")
    names = ", ".join(e.name for e in entries)
    raise DelineoError(f"no model named {name_or_path!r}; available: {names}")


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


_CACHE: OrderedDict[tuple, object] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def load_model(name_or_path: str, **options):
    """The model (rules, Delineo or nnU-Net) ready to ``predict``; kept loaded for the next call.

    `options` go to `segmentation.nnunet.read_nnunet_folder` for nnU-Net folders (folds,
    mirroring, crop); Delineo models take ``mirroring`` (False: none, whatever their manifest
    says). `model_options` checks them.
    """
    entry = find_model(name_or_path)
    key = (entry.kind, str(entry.path), entry.name, tuple(sorted((k, repr(v)) for k, v in options.items())))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    model = _load(entry, options)
    with _CACHE_LOCK:
        _CACHE[key] = model
        while len(_CACHE) > CACHE_SIZE:
            _, dropped = _CACHE.popitem(last=False)
            release = getattr(dropped, "release", None)
            if release is not None:
                release()
    return model


def model_options(entry: ModelEntry, *, folds=None, mirroring: bool | None = None) -> dict:
    """The `load_model` options for a run's choices (None: the model's default), checked before
    anything loads: a choice the model cannot take is refused naming why.

    Args:
        folds: nnU-Net folds to ensemble (numbers or "all").
        mirroring: test-time mirroring on or off. nnU-Net models mirror, when asked, along the
            axes their trainer allowed; Delineo models along those their manifest lists (the axes
            they were trained mirrored along), so one trained without mirrored images cannot.
    """
    options: dict = {}
    if folds:
        if entry.kind != "nnunet":
            raise DelineoError(f"folds apply to nnU-Net models only; {entry.name} is a {entry.kind} model")
        options["folds"] = list(folds)
    if mirroring is None:
        return options
    if entry.kind == "rules":
        raise DelineoError(
            f"mirroring applies to network models; {entry.name} draws by rules, with no network"
        )
    if entry.kind == "delineo" and mirroring and not read_manifest(entry.path).mirror_axes_zyx:
        raise DelineoError(
            f"{entry.name} was not trained on mirrored images (its manifest's inference.mirror_axes_zyx "
            "is empty): mirroring would average in its guesses on images unlike any it learnt from"
        )
    options["mirroring"] = mirroring
    return options


def _load(entry: ModelEntry, options: dict):
    if entry.kind == "rules":
        from segmentation.rules import RuleModel

        return RuleModel()
    if entry.kind == "delineo":
        from segmentation.engine.model import from_manifest

        options = dict(options)
        mirroring = options.pop("mirroring", None)
        if options:
            raise DelineoError(f"options {sorted(options)} apply to nnU-Net models only")
        manifest = read_manifest(entry.path)
        if mirroring is False:
            manifest = replace(manifest, mirror_axes_zyx=())
        model = from_manifest(manifest)
        model.name = entry.name  # the name it is listed under (renamed when another had it)
        return model
    from segmentation.nnunet import read_nnunet_folder

    return read_nnunet_folder(entry.path, name=entry.name, **options)


def clear_cache() -> None:
    """Forget every loaded model (frees their memory)."""
    with _CACHE_LOCK:
        models = list(_CACHE.values())
        _CACHE.clear()
    for model in models:
        release = getattr(model, "release", None)
        if release is not None:
            release()
