"""Model manifests: the declarative description of a model folder (JSON or TOML).

A model folder holds ``manifest.json`` (or ``manifest.toml``), the weights and a model card.
`read_manifest` parses and validates it; every problem is a `ManifestError` naming the file and
the field. Fields (optional ones with their default):

- ``name``, ``version`` (""), ``description`` (""), ``modality`` ("CT"), ``card`` ("");
- ``architecture``: ``name`` registered in `segmentation.networks`, ``params`` ({});
- ``weights``: ``file`` (.safetensors, or a state dict read with weights_only), ``sha256``;
- ``ensemble`` ([]): more networks run on the same tiles, their logits averaged with the main
  one's (as mirrorings are): ``[{architecture (default: the main one's), weights}]``, each with
  the main network's ``out_channels``;
- ``preprocessing``: ``spacing_xyz`` (mm), ``normalization`` (see `segmentation.preprocessing`),
  ``crop`` ("body" | "none"; "body"), ``orientation`` (three letters, "LPS"),
  ``normalize_before_resample`` (false);
- ``inference``: ``patch_size_zyx``, ``overlap`` (0.5), ``mirror_axes_zyx`` ([]: test-time
  mirroring, averaged; along the left–right axis the ``X_L``/``X_R`` outputs swap back),
  ``activation`` ("sigmoid": channel k ⇒ output k, overlaps allowed | "softmax": channel 0 is
  background), ``threshold`` (0.5), ``size_divisor`` (16);
- ``outputs``: ``[{channel, name, type, color, keep_largest, training_volume_cc}]`` — type (RT ROI
  interpreted type) and colour default to the TG-263 table's for the name; ``keep_largest``
  (false): keep only the largest connected piece (an organ that is one piece: stray islands far
  from it are dropped); ``training_volume_cc`` (none): ``[smallest, largest]`` volume of the
  structure in the model's training contours, in cc; a result outside it is warned about;
  ``by_default`` (true): false for an output drawn only when asked for by name (targets a model
  guesses from the image alone: the dialog offers them unticked, the CLI leaves them out).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from planning.errors import DelineoError
from planning.structures import RoiType

#: File names a model folder's manifest may have, in the order they are looked for.
MANIFEST_NAMES = ("manifest.json", "manifest.toml")
#: Orientation letters: the patient direction toward which an array index grows.
_AXIS_LETTERS = {"L": (0, 1), "R": (0, -1), "P": (1, 1), "A": (1, -1), "S": (2, 1), "I": (2, -1)}


class ManifestError(DelineoError):
    """A model manifest is missing, unreadable or describes an impossible model."""


@dataclass(frozen=True)
class OutputSpec:
    """One structure a model draws: network channel, name, RT ROI interpreted type, colour, and
    whether only its largest connected piece is kept; the (smallest, largest) volume in cc of
    the structure in the model's training contours, when known; whether it is drawn unless the
    user names the structures (`by_default`)."""

    channel: int
    name: str
    roi_type: RoiType
    color: tuple[int, int, int]
    keep_largest: bool = False
    training_volume_cc: tuple[float, float] | None = None
    by_default: bool = True


@dataclass(frozen=True)
class NetworkSpec:
    """One network of a model: its registered architecture, the parameters it is built with, and
    its weights file (relative to the model folder) with the file's sha256."""

    architecture: str
    params: dict
    weights_file: str
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """A validated model manifest.

    Attributes:
        folder: the model folder (weights and card paths are relative to it).
        spacing_xyz: voxel size in mm the network works at.
        orientation: three letters, the patient directions the network's x, y, z indices grow
            toward ("LPS": left, posterior, superior — how DICOM CT loads).
        patch_size_zyx: network input size in voxels.
        overlap: fraction of the patch shared by neighbouring tiles (0 ≤ overlap < 1).
        size_divisor: input sizes the network accepts are multiples of this (smaller tiles).
        activation: "sigmoid" (channel k ⇒ outputs[k], may overlap) or "softmax" (channel 0
            background, argmax labels).
        ensemble: networks beyond the main one (``architecture``, ``weights_file``), averaged
            with it.
    """

    folder: Path
    path: Path
    name: str
    version: str
    description: str
    modality: str
    architecture: str
    architecture_params: dict
    weights_file: str
    weights_sha256: str
    spacing_xyz: tuple[float, float, float]
    normalization: dict
    crop: str
    orientation: str
    normalize_before_resample: bool
    patch_size_zyx: tuple[int, int, int]
    overlap: float
    size_divisor: int
    mirror_axes_zyx: tuple[int, ...]
    activation: str
    threshold: float
    outputs: tuple[OutputSpec, ...]
    card: str
    ensemble: tuple[NetworkSpec, ...] = ()

    @property
    def weights_path(self) -> Path:
        """The main network's weights file, in the model folder."""
        return self.folder / self.weights_file

    @property
    def networks(self) -> tuple[NetworkSpec, ...]:
        """Every network the model averages: the main one first, then its ensemble."""
        main = (self.architecture, self.architecture_params, self.weights_file, self.weights_sha256)
        return (NetworkSpec(*main), *self.ensemble)

    @property
    def structure_names(self) -> list[str]:
        """The outputs' structure names, in manifest order."""
        return [output.name for output in self.outputs]


def model_title(name: str, version: str) -> str:
    """How a model is named to users: "head_neck_openkbp 0.6.0" (the name alone without a version)."""
    return f"{name} {version}".strip()


def find_manifest(folder: str | Path) -> Path | None:
    """The manifest file of a model folder, None when it has none."""
    folder = Path(folder)
    for name in MANIFEST_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def read_manifest(path: str | Path) -> Manifest:
    """Parse and validate a manifest file (or the manifest of a model folder)."""
    path = Path(path)
    if path.is_dir():
        found = find_manifest(path)
        if found is None:
            raise ManifestError(f"{path}: no {' or '.join(MANIFEST_NAMES)} in this model folder")
        path = found
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ManifestError(f"{path}: cannot be read as a model manifest ({error})") from error
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: a manifest is a JSON/TOML object, not {type(data).__name__}")
    return parse_manifest(data, path)


def parse_manifest(data: dict, path: Path, *, weights: bool = True) -> Manifest:
    """Validate manifest `data` read from `path` (named in errors; the model folder is its parent).
    ``weights=False`` accepts a manifest without a weights entry: networks given in memory, as in
    training-time evaluation."""
    return _Validator(Path(path), data, weights).manifest()


class _Validator:
    """Reads fields with clear errors: "<file>: field 'a.b' must be ..."."""

    def __init__(self, path: Path, data: dict, weights: bool = True, prefix: str = ""):
        self.path, self.data, self.weights = path, data, weights
        self.prefix = prefix  # where `data` lies in the manifest, for errors: "ensemble[0]."

    def fail(self, field: str, problem: str):
        raise ManifestError(f"{self.path}: field {self.prefix + field!r} {problem}")

    def get(self, field: str, kind, default=...):
        value = self.data
        for part in field.split("."):
            if not isinstance(value, dict) or part not in value:
                if default is ...:
                    self.fail(field, "is missing")
                return default
            value = value[part]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            self.fail(field, f"must be {getattr(kind, '__name__', kind)}, got {value!r}")
        return value

    def numbers(self, field: str, count: int, kind, default=...) -> tuple:
        values = self.get(field, list, default)
        if values is default and default is not ...:
            return tuple(default)
        ok = len(values) == count and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values
        )
        if not ok or (kind is int and not all(float(v).is_integer() for v in values)):
            self.fail(field, f"must be {count} positive {kind.__name__}s, got {values!r}")
        return tuple(kind(v) for v in values)

    def manifest(self) -> Manifest:
        activation = self.get("inference.activation", str)
        if activation not in ("sigmoid", "softmax"):
            self.fail("inference.activation", f"must be 'sigmoid' or 'softmax', got {activation!r}")
        overlap = self.get("inference.overlap", float, 0.5)
        if not 0.0 <= overlap < 1.0:
            self.fail("inference.overlap", f"must be in [0, 1), got {overlap}")
        mirror = tuple(self.get("inference.mirror_axes_zyx", list, []))
        if any(a not in (0, 1, 2) for a in mirror) or len(set(mirror)) != len(mirror):
            self.fail("inference.mirror_axes_zyx", f"must list distinct axes among 0, 1, 2, got {mirror}")
        crop = self.get("preprocessing.crop", str, "body")
        if crop not in ("body", "none"):
            self.fail("preprocessing.crop", f"must be 'body' or 'none', got {crop!r}")
        orientation = self.get("preprocessing.orientation", str, "LPS").upper()
        if not _valid_orientation(orientation):
            self.fail("preprocessing.orientation", f"must be three letters like 'LPS', got {orientation!r}")
        normalization = self.get("preprocessing.normalization", dict)
        if normalization.get("type") not in ("ct", "zscore", "none"):
            self.fail("preprocessing.normalization.type", "must be 'ct', 'zscore' or 'none'")
        if normalization["type"] == "ct":
            for key in ("clip", "mean", "std"):
                if key not in normalization:
                    self.fail(f"preprocessing.normalization.{key}", "is missing (needed by type 'ct')")
        sha = self.sha256("weights.sha256", required=self.weights)
        outputs = self.outputs(activation)
        params = self.get("architecture.params", dict, {})
        network_channels = params.get("out_channels")
        if isinstance(network_channels, int) and not isinstance(network_channels, bool):
            beyond = [o for o in outputs if o.channel >= network_channels]
            if beyond:
                self.fail(
                    "architecture.params.out_channels",
                    f"is {network_channels}, but {beyond[0].name} is read from channel {beyond[0].channel} "
                    f"(channels count from 0)",
                )
        weights_file = self.get("weights.file", str, ... if self.weights else "")
        ensemble = self.ensemble(self.get("architecture.name", str), params, weights_file)
        return Manifest(
            folder=self.path.parent,
            path=self.path,
            name=self.get("name", str),
            version=str(self.get("version", str, "")),
            description=self.get("description", str, ""),
            modality=self.get("modality", str, "CT").upper(),
            architecture=self.get("architecture.name", str),
            architecture_params=params,
            weights_file=weights_file,
            weights_sha256=sha,
            spacing_xyz=self.numbers("preprocessing.spacing_xyz", 3, float),
            normalization=normalization,
            crop=crop,
            orientation=orientation,
            normalize_before_resample=self.get("preprocessing.normalize_before_resample", bool, False),
            patch_size_zyx=self.numbers("inference.patch_size_zyx", 3, int),
            overlap=overlap,
            size_divisor=int(self.get("inference.size_divisor", int, 16)),
            mirror_axes_zyx=mirror,
            activation=activation,
            threshold=self.get("inference.threshold", float, 0.5),
            outputs=outputs,
            card=self.get("card", str, ""),
            ensemble=ensemble,
        )

    def sha256(self, field: str, required: bool = True) -> str:
        sha = self.get(field, str, ... if required else "").lower()
        if (required or sha) and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
            self.fail(field, f"must be 64 hexadecimal digits, got {sha!r}")
        return sha

    def ensemble(self, architecture: str, params: dict, weights_file: str) -> tuple[NetworkSpec, ...]:
        """The networks averaged with the main one, which must return its channels."""
        entries = self.get("ensemble", list, [])
        if entries and not self.weights:
            self.fail("ensemble", "is for model folders (networks given in memory are averaged as given)")
        members, files = [], {weights_file}
        for i, entry in enumerate(entries):
            field = f"ensemble[{i}]"
            if not isinstance(entry, dict):
                self.fail(field, f"must be an object with 'weights' (and 'architecture'), got {entry!r}")
            member = _Validator(self.path, entry, prefix=f"{field}.")
            own = "architecture" in entry  # else the main network's
            member_architecture = member.get("architecture.name", str) if own else architecture
            member_params = member.get("architecture.params", dict, {}) if own else params
            member_file = member.get("weights.file", str)
            if member_file in files:
                self.fail(f"{field}.weights.file", f"repeats {member_file!r}: each network has its weights")
            files.add(member_file)
            if member_params.get("out_channels") != params.get("out_channels"):
                self.fail(
                    f"{field}.architecture.params.out_channels",
                    f"is {member_params.get('out_channels')!r}, the main network's is "
                    f"{params.get('out_channels')!r}: averaged networks return the same channels",
                )
            members.append(
                NetworkSpec(member_architecture, member_params, member_file, member.sha256("weights.sha256"))
            )
        return tuple(members)

    def outputs(self, activation: str) -> tuple[OutputSpec, ...]:
        from planning.tg263 import style_for

        entries = self.get("outputs", list)
        if not entries:
            self.fail("outputs", "must list at least one structure")
        outputs, names, channels = [], set(), set()
        first_channel = 0 if activation == "sigmoid" else 1
        for i, entry in enumerate(entries):
            field = f"outputs[{i}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
                self.fail(field, "must be an object with a non-empty 'name'")
            channel = entry.get("channel", i + first_channel)
            if not isinstance(channel, int) or isinstance(channel, bool) or channel < first_channel:
                self.fail(f"{field}.channel", f"must be an integer ≥ {first_channel} for {activation}")
            if entry["name"] in names or channel in channels:
                self.fail(field, f"repeats name {entry['name']!r} or channel {channel}")
            names.add(entry["name"])
            channels.add(channel)
            default_color, default_type = style_for(entry["name"])
            try:
                roi_type = RoiType(entry.get("type", default_type))
            except ValueError:
                self.fail(f"{field}.type", f"is not an RT ROI interpreted type: {entry.get('type')!r}")
            color = entry.get("color", default_color)
            if not (
                isinstance(color, (list, tuple))
                and len(color) == 3
                and all(isinstance(c, int) and 0 <= c <= 255 for c in color)
            ):
                self.fail(f"{field}.color", f"must be three integers 0–255, got {color!r}")
            keep_largest, by_default = entry.get("keep_largest", False), entry.get("by_default", True)
            for key, value in (("keep_largest", keep_largest), ("by_default", by_default)):
                if not isinstance(value, bool):
                    self.fail(f"{field}.{key}", f"must be true or false, got {value!r}")
            training_volume = entry.get("training_volume_cc")
            if training_volume is not None:
                if not _is_volume_range(training_volume):
                    self.fail(
                        f"{field}.training_volume_cc",
                        f"must be [smallest, largest] in cc, 0 ≤ smallest ≤ largest, got {training_volume!r}",
                    )
                training_volume = (float(training_volume[0]), float(training_volume[1]))
            outputs.append(
                OutputSpec(
                    channel, entry["name"], roi_type, tuple(color), keep_largest, training_volume, by_default
                )
            )
        return tuple(outputs)


def _is_volume_range(value) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and 0 <= value[0] <= value[1]
    )


def _valid_orientation(letters: str) -> bool:
    axes = [_AXIS_LETTERS.get(c, (None, 0))[0] for c in letters]
    return len(letters) == 3 and None not in axes and sorted(axes) == [0, 1, 2]


def orientation_axes(letters: str) -> list[tuple[int, int]]:
    """For each array axis (x, y, z) of `letters`, the LPS axis it follows and its sign."""
    return [_AXIS_LETTERS[c] for c in letters.upper()]


def lateral_axis_zyx(letters: str) -> int:
    """The array axis (0 z, 1 y, 2 x) that runs left–right in orientation `letters`."""
    lps_axes = [lps for lps, _sign in orientation_axes(letters)]
    return 2 - lps_axes.index(0)


def mirror_permutation(names: list[str | None]) -> list[int]:
    """Channel order after a left–right mirror: ``X_L`` ↔ ``X_R`` (TG-263 laterality suffixes);
    `names` per channel, None for a channel without one; unpaired channels stay in place."""
    index = {name: k for k, name in enumerate(names) if name}
    order = []
    for k, name in enumerate(names):
        partner = {"_L": "_R", "_R": "_L"}.get((name or "")[-2:])
        order.append(index.get(name[:-2] + partner, k) if partner else k)
    return order
