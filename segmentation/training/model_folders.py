"""Model folders in and out of training: the settings for fine-tuning a model folder
(`fine_tuning_config`), and a run's best weights written as a model folder with its manifest and
a first model card (`export_model`)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from planning.errors import DelineoError
from segmentation.engine.manifest import read_manifest
from segmentation.engine.model import sha256_of
from segmentation.training.trainer import TRAINING_VOLUMES, TrainConfig, write_safetensors

#: TrainConfig fields that a model folder's manifest fixes (besides its structures): fine-tuning
#: must keep them.
_NETWORK_FIELDS = (
    "spacing_zyx",
    "normalization",
    "architecture",
    "channels",
    "strides_zyx",
    "norm",
    "deep_supervision",
)


def fine_tuning_config(overrides: dict, folder: Path) -> TrainConfig:
    """The TrainConfig for fine-tuning the model in `folder`: its network, voxel size,
    normalisation and structures, unless `overrides` (the user's settings) give them, and then
    they must agree. Raises DelineoError naming what differs, before any case is read."""
    from segmentation.engine.manifest import read_manifest

    manifest = read_manifest(folder)
    if manifest.architecture != "delineo_unet3d":
        raise DelineoError(
            f"{folder}: a {manifest.architecture} network; only Delineo's own models "
            "(delineo_unet3d) can be fine-tuned"
        )
    if manifest.ensemble:
        raise DelineoError(
            f"{folder}: an ensemble of {len(manifest.networks)} networks; fine-tune one of them "
            "(a model folder holding its weights alone) and average it with the others again"
        )
    params = manifest.architecture_params
    model = {
        "structures": _channel_names(manifest, overrides.get("structures"), folder),
        "spacing_zyx": tuple(manifest.spacing_xyz[::-1]),
        "normalization": manifest.normalization,
        "architecture": manifest.architecture,
        "channels": tuple(params["channels"]),
        "strides_zyx": tuple(tuple(s) for s in params["strides_zyx"]),
        "norm": params.get("norm", "batch"),
        "deep_supervision": int(params.get("deep_supervision", 0)),
        "inference_patch_zyx": tuple(manifest.patch_size_zyx),
    }
    config = TrainConfig(**{**model, **overrides, "init_from": str(Path(folder).resolve())})
    differing = [name for name in _NETWORK_FIELDS if _as_json(getattr(config, name)) != _as_json(model[name])]
    if differing:
        raise DelineoError(
            f"{folder}: its network has other {', '.join(differing)} than this training's settings; "
            "fine-tuning keeps the model's network (leave them out of --config)"
        )
    return config


def _channel_names(manifest, given: list[str] | None, folder: Path) -> list[str]:
    """The structure of each network channel: from the manifest's outputs, or `given` (needed
    when the model leaves some channels out), which must agree with them."""
    count = int(manifest.architecture_params["out_channels"])
    drawn = {o.channel: o.name for o in manifest.outputs}
    if given is not None:
        if len(given) != count or any(given[c] != name for c, name in drawn.items()):
            order = ", ".join(drawn.get(c, "?") for c in range(count))
            raise DelineoError(f"{folder}: the structures must be the model's channels in order: {order}")
        return list(given)
    if sorted(drawn) != list(range(count)):
        raise DelineoError(
            f"{folder}: the model draws {len(drawn)} of its {count} channels; give --structures "
            "naming every channel it was trained with, in order"
        )
    return [drawn[c] for c in range(count)]


def _as_json(value):
    """`value` as it reads back from a JSON config (tuples become lists)."""
    return json.loads(json.dumps(value))


def export_model(
    run_dir: Path,
    folder: Path,
    name: str,
    version: str,
    description: str,
    omit: tuple[str, ...] = (),
    half: bool = False,
) -> Path:
    """Write a model folder (manifest.json + weights.safetensors) from a run's best weights.

    `omit`: structures the network was trained on but that are not good enough to offer; their
    channels are computed and ignored (the model draws the others). `half`: store floating-point
    weights as float16 (half the file; the network still computes in float32), except tensors
    beyond float16's range (batch-norm running variances reach 10⁶), which stay float32."""
    from safetensors.torch import load_file

    run_dir, folder = Path(run_dir), Path(folder)
    config = TrainConfig.from_json(run_dir / "config.json")
    unknown = set(omit) - set(config.structures)
    if unknown:
        raise DelineoError(f"cannot omit {', '.join(sorted(unknown))}: not trained in {run_dir}")
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "weights.safetensors"
    state = load_file(str(run_dir / "best.safetensors"))
    if half:
        state = {k: _half_if_in_range(v) for k, v in state.items()}
    write_safetensors(state, weights)
    manifest = {
        "name": name,
        "version": version,
        "description": description,
        **config.manifest_core(),
        "weights": {"file": weights.name, "sha256": sha256_of(weights)},
        "outputs": config.outputs(omit, _training_volumes(run_dir, config.init_from)),
        "card": "MODEL_CARD.md",
    }
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    card = folder / "MODEL_CARD.md"
    if not card.exists():  # a card written by hand (a built-in model's) is kept
        card.write_text(_training_card(run_dir, config, name, version, omit), encoding="utf-8")
    return path


#: Fewer training contours of an organ than this give no volume range in the manifest: the
#: smallest and largest of a handful of cases would flag many new patients.
MIN_CASES_FOR_VOLUME_RANGE = 20


def _training_volumes(run_dir: Path, init_from: str | None) -> dict:
    """The organ volume ranges for the manifest (`TrainConfig.outputs`): the run's record of its
    training references, joined with the ranges of the model it fine-tunes (its cases were
    patients too); a range from fewer than `MIN_CASES_FOR_VOLUME_RANGE` cases alone is left out.
    Empty for a run from before the record."""
    path = run_dir / TRAINING_VOLUMES
    recorded = json.loads(path.read_text()) if path.exists() else {}
    base = {}
    if init_from and Path(init_from).is_dir():
        outputs = read_manifest(init_from).outputs
        base = {o.name: o.training_volume_cc for o in outputs if o.training_volume_cc}
    ranges = {}
    for name in set(recorded) | set(base):
        record = recorded.get(name)
        if record and (record["cases"] >= MIN_CASES_FOR_VOLUME_RANGE or name in base):
            low, high = record["smallest_cc"], record["largest_cc"]
            if name in base:
                low, high = min(low, base[name][0]), max(high, base[name][1])
        elif name in base:
            low, high = base[name]
        else:
            continue
        ranges[name] = {"smallest_cc": low, "largest_cc": high}
    return ranges


def _training_card(run_dir: Path, config: TrainConfig, name: str, version: str, omit) -> str:
    """A first model card from what the run recorded: data split, settings, held-out Dice."""
    split = json.loads((run_dir / "split.json").read_text()) if (run_dir / "split.json").exists() else {}
    log_path = run_dir / "log.jsonl"
    entries = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
    evaluations = [e for e in entries if "holdout_dice" in e]
    trained = max((e["iteration"] for e in entries), default=0)
    lines = [
        f"# {name} {version} — model card",
        "",
        "**Research use only. Not a medical device; not for clinical treatment planning.** Every",
        "contour it draws must be reviewed and edited by a qualified person.",
        "",
        f"Written by `delineo train --export` from the run `{run_dir.name}`; complete it by hand.",
        "",
        "## Training",
        "",
        f"- Cases: {len(split.get('training', []))} for training, {len(split.get('holdout', []))} held "
        "out to choose the weights (`split.json` of the run).",
        f"- {trained} of {config.iterations} iterations; patches of {' × '.join(map(str, config.patch_zyx))} "
        f"voxels at {' × '.join(f'{v:g}' for v in config.spacing_zyx)} mm (z, y, x), batch size "
        f"{config.batch_size}; started from {config.init_from or 'random weights'}.",
        f"- Network: {config.architecture}, channels {list(config.channels)}.",
        "",
    ]
    if evaluations:
        best = max(evaluations, key=lambda e: e["score"])
        lines += [
            f"## Held-out Dice (the weights kept: iteration {best['iteration']})",
            "",
            "| Structure | Dice |",
            "|---|---|",
            *[f"| {k} | {v:.3f} |" for k, v in best["holdout_dice"].items() if k not in omit],
            "",
            "These cases chose the weights, so they overstate the accuracy on new patients.",
        ]
    else:
        lines.append("No case was held out: the run measured no accuracy.")
    lines += [
        "",
        "## Not yet measured",
        "",
        "Accuracy on patients never used in training or to choose the weights; the intended use.",
        "",
    ]
    return "\n".join(lines)


def _half_if_in_range(tensor):
    """`tensor` as float16 when it is floating point and every value fits float16 (|v| ≤ 65504);
    otherwise unchanged: a cast would turn large values into infinities."""
    if tensor.is_floating_point() and tensor.abs().max() <= torch.finfo(torch.float16).max:
        return tensor.half()
    return tensor
