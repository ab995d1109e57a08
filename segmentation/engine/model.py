"""Models backed by networks: weights checked and loaded safely, kept loaded between runs.

`NetworkModel` is what `segmentation.registry` hands out for a Delineo model folder (manifest +
safetensors) and for an nnU-Net folder (`segmentation.nnunet`). Its networks are built once and
kept per device, so the second run on a CT pays no loading time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from planning.errors import DelineoError
from planning.structures import StructureSet
from planning.volume import Volume
from segmentation.engine import device as devices
from segmentation.engine.manifest import (
    Manifest,
    NetworkSpec,
    OutputSpec,
    lateral_axis_zyx,
    mirror_permutation,
)
from segmentation.engine.pipeline import Recipe, RunInfo, credit, run
from segmentation.engine.plausibility import volume_warnings

log = logging.getLogger(__name__)


class WeightsError(DelineoError):
    """A weights file is missing, altered (sha256) or does not fit its network."""


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex (read 1 MiB at a time)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: Path, sha256: str | None = None) -> dict:
    """Tensors of a weights file: safetensors, or a state dict read with ``weights_only=True``
    (never unpickled code). With `sha256`, the file must have that digest. Errors name the
    file with its folder (every model's file is called weights.safetensors)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256.lower():
            raise WeightsError(
                f"{path}: sha256 is {actual}, the manifest of {path.parent} pins {sha256}: "
                "file altered or replaced"
            )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # safetensors and torch raise many kinds
        raise WeightsError(f"{path}: cannot be read as weights ({error})") from error
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return state


def load_into(network, state: dict, source: str):
    """Load `state` into `network` strictly; a clear error when names or shapes differ or when a
    tensor holds infinities or NaN (a damaged file, or one cast to a type too small for it)."""
    for name, tensor in state.items():
        bad = int((~tensor.isfinite()).sum()) if tensor.is_floating_point() else 0
        if bad:
            raise WeightsError(
                f"{source}: {name} holds {bad} non-finite value(s) (inf or NaN) of {tensor.numel()}: "
                "the weights are damaged (a float16 copy of values beyond its range turns them into inf)"
            )
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[:3]
        raise WeightsError(f"{source}: weights do not fit the network ({' '.join(first)})") from error
    return network.eval()


class NetworkModel:
    """A model made of networks and a `Recipe`; the common interface of every Delineo model:
    ``name``, ``version``, ``description``, ``modality``, ``outputs`` and ``predict``."""

    def __init__(
        self,
        name: str,
        recipe: Recipe,
        build_networks: Callable[[], list],
        *,
        version: str = "",
        description: str = "",
        source: Path | None = None,
        kind: str = "network",
        skeletons: Callable[[], list] | None = None,
    ):
        self.name, self.version, self.description = name, version, description
        self.recipe, self.source, self.kind = recipe, source, kind
        self._build_networks = build_networks
        self._skeletons = skeletons
        self._networks: dict[str, list] = {}
        self._lock = threading.Lock()
        self.last_run: RunInfo | None = None

    @property
    def modality(self) -> str:
        """The modality the model is for ("CT", "MR")."""
        return self.recipe.modality

    @property
    def outputs(self) -> tuple[OutputSpec, ...]:
        """The structures it draws (`OutputSpec`: channel, name, type, colour)."""
        return self.recipe.outputs

    def networks_on(self, device) -> list:
        """The networks on `device`, built and moved there once (the CPU's are kept too: a GPU
        out of memory falls back to them)."""
        import copy

        key = str(device)
        with self._lock:
            if key not in self._networks:
                cpu = self._networks.get("cpu")
                if cpu is None:  # networks given already built may be on a GPU (a network in training)
                    built = self._build_networks()
                    cpu = [net if _on_cpu(net) else copy.deepcopy(net).cpu() for net in built]
                    self._networks["cpu"] = cpu
                if key != "cpu":
                    self._networks[key] = [copy.deepcopy(net).to(device).eval() for net in cpu]
            return self._networks[key]

    def sizing(self) -> tuple[list, bool]:
        """The networks on the meta device (`skeletons`: nothing read or allocated), to estimate
        a run's memory with, and whether they are loaded on the CPU already."""
        with self._lock:
            loaded = "cpu" in self._networks
        return self._skeletons(), loaded

    def release(self, device=None) -> None:
        """Forget the networks on a device (all devices when None) and free its memory."""
        with self._lock:
            keys = list(self._networks) if device is None else [str(device)]
            for key in keys:
                self._networks.pop(key, None)
        if device is not None:
            devices.free_memory(device)

    def predict(
        self,
        volume: Volume,
        *,
        structures: list[str] | None = None,
        device: str | None = None,
        overlap: float | None = None,
        on_progress: Callable[[str, float, float], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> StructureSet:
        """Segment `volume`: a StructureSet of AUTOMATIC structures on its grid. `overlap`: the
        fraction of a tile its neighbours share (default: the model's; more is smoother, slower)."""
        target = devices.choose_device(device)
        recipe = self.recipe if overlap is None else dataclasses.replace(self.recipe, overlap=float(overlap))
        info = RunInfo()
        try:
            result = run(
                volume,
                recipe,
                self.networks_on,
                target,
                structures=structures,
                on_progress=on_progress,
                cancel=cancel,
                info=info,
                name=self.name,
                sizing=None if self._skeletons is None else self.sizing,
            )
        finally:
            self.last_run = info
        info.warnings += volume_warnings(result, recipe.outputs, self.name)
        for structure in result:
            structure.description = credit(self.name, self.version)
        return result


def check_shapes(network, state: dict, weights: Path | str, description: str) -> None:
    """Refuse weights whose tensor names or shapes differ from `network`'s (built on the meta
    device), so a wrong architecture never allocates its parameters. `weights` (the file) and
    `description` (what describes the network: "manifest.json") are named in the error."""
    expected = {name: tuple(tensor.shape) for name, tensor in network.state_dict().items()}
    found = {name: tuple(tensor.shape) for name, tensor in state.items()}
    problems = [f"{name} is missing" for name in expected if name not in found]
    problems += [f"{name} is not in the network" for name in found if name not in expected]
    problems += [
        f"{name} is {found[name]} in the file, {shape} in the network"
        for name, shape in expected.items()
        if name in found and found[name] != shape
    ]
    if problems:
        raise WeightsError(
            f"{weights}: weights do not fit the network that {description} describes "
            f"({'; '.join(problems[:3])}{'; …' if len(problems) > 3 else ''})"
        )


def _on_cpu(net) -> bool:
    return all(p.device.type == "cpu" for p in net.parameters())


def from_manifest(manifest: Manifest, networks: list | None = None) -> NetworkModel:
    """A `NetworkModel` for a Delineo model folder: its weights (every network of an ensemble,
    averaged) are loaded on first use, or `networks` (already built, in eval mode: a network
    being trained) are used as they are."""
    from segmentation import preprocessing
    from segmentation.engine.resample import linear_map

    norm = manifest.normalization
    target = tuple(manifest.spacing_xyz[::-1])

    def prepare(image, spacing_zyx):
        if manifest.normalize_before_resample:
            return preprocessing.resample(preprocessing.normalize(image, norm), spacing_zyx, target)
        return preprocessing.normalize(preprocessing.resample(image, spacing_zyx, target), norm)

    def back_maps(model_shape, original_shape, model_spacing, original_spacing):
        return [
            linear_map(n_model, n_original, original / model)
            for n_model, n_original, model, original in zip(
                model_shape, original_shape, model_spacing, original_spacing, strict=True
            )
        ]

    def skeleton(spec: NetworkSpec):
        """The network on the meta device: shapes only, a manifest asking for 1,000 GiB allocates
        nothing."""
        import torch

        from segmentation.networks import build_network

        try:
            with torch.device("meta"):
                return build_network(spec.architecture, spec.params)
        except (TypeError, ValueError) as error:
            raise DelineoError(f"{manifest.path}: architecture cannot be built ({error})") from error

    def build():
        from segmentation.networks import build_network

        loaded = []
        for spec in manifest.networks:
            path = manifest.folder / spec.weights_file
            state = read_state_dict(path, spec.sha256)
            check_shapes(skeleton(spec), state, path, manifest.path.name)
            network = build_network(spec.architecture, spec.params)  # as skeleton()
            loaded.append(load_into(network, state, str(path)))
        return loaded

    recipe = Recipe(
        outputs=manifest.outputs,
        activation=manifest.activation,
        threshold=manifest.threshold,
        patch_zyx=manifest.patch_size_zyx,
        overlap=manifest.overlap,
        mirror_axes=manifest.mirror_axes_zyx,
        size_divisor=(manifest.size_divisor,) * 3,
        orientation=manifest.orientation,
        transpose=(0, 1, 2),
        crop=manifest.crop,
        modality=manifest.modality,
        prepare=prepare,
        back_maps=back_maps,
        model_spacing=lambda spacing: target,
        activation_first=True,
        network_channels=manifest.architecture_params.get("out_channels"),
    )
    return NetworkModel(
        manifest.name,
        dataclasses.replace(recipe, lateral_mirror=_lateral_mirror(recipe)),
        build if networks is None else lambda: networks,
        version=manifest.version,
        description=manifest.description,
        source=manifest.folder,
        kind="delineo",
        skeletons=(lambda: [skeleton(spec) for spec in manifest.networks]) if networks is None else None,
    )


def _lateral_mirror(recipe: Recipe) -> tuple[int, tuple[int, ...]]:
    """The left–right array axis and the channel order after mirroring along it (`Recipe`)."""
    names: list[str | None] = [None] * recipe.channels
    for output in recipe.outputs:
        names[output.channel] = output.name
    return lateral_axis_zyx(recipe.orientation), tuple(mirror_permutation(names))
