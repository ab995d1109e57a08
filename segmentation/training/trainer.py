"""Training loop: masked Dice + BCE, warm-up and polynomial learning-rate decay, checkpoints
that resume exactly, model selection on held-out training cases (exporting the result as a model
folder, and fine-tuning one: `segmentation.training.model_folders`).

A run folder holds ``config.json``, ``checkpoint.pt`` (latest; state dicts only, loaded with
``weights_only=True``), ``best.safetensors`` (the weights that scored best on the held-out cases),
and ``log.jsonl`` (one line per logged iteration or evaluation, and one naming the device each
time the run starts or resumes). Each iteration draws its batch from a generator seeded with
(seed, iteration), so a resumed run draws the same batches.

Training runs on a CUDA GPU when there is one (then Apple MPS, then the CPU), like inference, or
on the device asked for. On CUDA the network computes in bfloat16 where the GPU supports it
(autocast; weights, optimiser and loss stay float32). A run may move between devices when it
resumes; its numbers then differ in the last bits, not in what it learns.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from planning.errors import Cancelled, DelineoError
from planning.files import write_atomically
from segmentation.engine import device as devices
from segmentation.engine.manifest import lateral_axis_zyx
from segmentation.networks import build_network
from segmentation.training.data import (
    Case,
    leave_out_unusual_references,
    load_cases,
    training_volume_ranges,
    write_json,
)
from segmentation.training.metrics import dice
from segmentation.training.sampling import Augmentation, PatchSampler

log = logging.getLogger(__name__)

#: A run's record of its training references' volumes (`training_volume_ranges`), for --export.
TRAINING_VOLUMES = "training_volumes.json"

HEAD_NECK_STRUCTURES = [
    "Brainstem",
    "SpinalCord",
    "Parotid_L",
    "Parotid_R",
    "Esophagus",
    "Larynx",
    "Bone_Mandible",
    "PTV56",
    "PTV63",
    "PTV70",
]


#: Parts of structure names (between "_", "-", "+", "^", "~", any case) that name several separate
#: pieces: TG-263's plurals of paired organs (both sides in one structure) and of repeated ones,
#: and a few common plurals TG-263 does not list.
SEVERAL_PIECES_WORDS = frozenset(
    (
        # paired organs, both sides
        "lungs kidneys parotids eyes lenses retinas cochleas orbits opticnrvs breasts femurs heads "
        "acetabulums zygomatics clavicles humeri scapulas hemispheres hippocampi externals internals "
        "sublings submands adrenals hilums ovaries testes ureters vocalcords arytenoids tonsils "
        "subclavians retrophars seminalves "
        # repeated or branching ones
        "ribs teeth vbs vertebrae bones vessels greatves nodes ln jejunum ileum"
    ).split()
)
#: Fragments anywhere in a name (any case) that mark several pieces: bowel loops, nerve
#: plexuses, ribs, vessels, lymph nodes.
SEVERAL_PIECES_FRAGMENTS = ("bowel", "plex", "ribs", "vessel", "ln_")
#: Whole names of several pieces whose first part also starts one-piece names (Bone_Mandible).
SEVERAL_PIECES_NAMES = frozenset(("bone", "bone_pelvic", "bone_mastoid", "kidney_cortex", "rib", "musc"))


def is_one_piece(name: str) -> bool:
    """Whether the organ `name` is one connected piece, so that a model may keep only the largest
    piece it draws (``keep_largest``: stray islands dropped). Not for the plural, paired or
    repeated names of `SEVERAL_PIECES_WORDS`, `SEVERAL_PIECES_FRAGMENTS` and
    `SEVERAL_PIECES_NAMES` (keeping the largest piece of "Lungs" keeps one lung), for a paired
    organ named without its side ("Lens", "Kidney": TG-263 has "Lens_L" and "Lens_R"), nor for
    unions ("Parotid_L+Parotid_R")."""
    from planning.tg263 import standard_structures

    lower = name.lower()
    if lower in SEVERAL_PIECES_NAMES or "+" in name:
        return False
    if any(fragment in lower for fragment in SEVERAL_PIECES_FRAGMENTS):
        return False
    if any(part in SEVERAL_PIECES_WORDS for part in re.split(r"[_\-^~\s]+", lower)):
        return False
    standard = {standard.lower() for standard in standard_structures()}
    return not (f"{lower}_l" in standard and f"{lower}_r" in standard)


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as the run's ``config.json``)."""

    structures: list[str] = field(default_factory=lambda: list(HEAD_NECK_STRUCTURES))
    spacing_zyx: tuple[float, float, float] = (2.5, 4.0, 4.0)
    normalization: dict = field(
        default_factory=lambda: {"type": "ct", "clip": [-400.0, 1200.0], "mean": 50.0, "std": 250.0}
    )
    architecture: str = "delineo_unet3d"
    channels: tuple[int, ...] = (8, 16, 32, 64, 128)
    strides_zyx: tuple[tuple[int, int, int], ...] = ((1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2))
    norm: str = "batch"
    deep_supervision: int = 2
    #: tile size at inference (batch-normalised networks take larger tiles than they train on)
    inference_patch_zyx: tuple[int, int, int] = (96, 128, 128)
    patch_zyx: tuple[int, int, int] = (32, 96, 96)
    batch_size: int = 2
    iterations: int = 3000
    learning_rate: float = 4e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    #: initial foreground probability of every output
    output_prior: float = 0.05
    foreground_fraction: float = 0.7
    #: from this iteration on, foreground patches draw the structure first, then a case that has
    #: it (structures delineated in few cases are seen as often as the others); before it, the
    #: case first, then one of its structures
    structure_balanced_from: int = 0
    #: later phases of training, each ``{"from": iteration, ...}`` with optional keys
    #: "structure_weights" {name: w}: balanced sampling draws structure `name` w times as often;
    #: "pos_weight" {name: w}: its cross-entropy counts its voxels w times;
    #: "learning_rate": a warm restart of the decay at this value;
    #: "reinitialise" [names]: those outputs restart from the prior (an output whose logits
    #: saturated at "never" gets no gradient from the Dice term)
    phases: list[dict] = field(default_factory=list)
    augmentation: dict = field(default_factory=lambda: asdict(Augmentation()))
    #: cases keep their own grid and each patch is sampled from it at `spacing_zyx` in one
    #: interpolation, with its augmentation: targets are then interpolated from the contours as
    #: drawn, not from a nearest-neighbour copy on the model's grid (which moves edges by up to
    #: half a voxel). Off by default: cases then stay in memory at their own resolution, which
    #: for 1 × 1 × 3 mm CTs is about 13 times their copy at 4 × 4 × 2.5 mm
    sample_native_grid: bool = False
    #: > 0: references of `unusual_reference_structures` (all when empty) whose volume is over this
    #: many times, or under 1/this, of the structure's median over the training cases are left
    #: out of the loss (`leave_out_unusual_references`); 0 keeps every reference
    unusual_reference_factor: float = 0.0
    unusual_reference_structures: list[str] = field(default_factory=list)
    seed: int = 0
    threads: int = 2
    #: channels-last memory layout (faster 3D convolutions on CPU with oneDNN)
    channels_last: bool = True
    log_every: int = 10
    checkpoint_every: int = 50
    evaluate_every: int = 250
    overlap: float = 0.5
    #: structures whose mean held-out Dice picks the best weights (all when empty)
    selection_structures: list[str] = field(default_factory=list)
    #: a model folder (manifest.json + weights) whose weights start the training: fine-tuning a
    #: built-in model on a clinic's own contours; its network must be the one described here
    init_from: str = ""

    @classmethod
    def from_json(cls, path: Path) -> TrainConfig:
        """The configuration a JSON file holds (its keys are the field names)."""
        return cls(**read_settings(path))

    def architecture_params(self) -> dict:
        """The ``params`` of the network in the manifest (`segmentation.architectures.unet3d`)."""
        return {
            "in_channels": 1,
            "out_channels": len(self.structures),
            "channels": list(self.channels),
            "strides_zyx": [list(s) for s in self.strides_zyx],
            "norm": self.norm,
            "deep_supervision": self.deep_supervision,
        }

    def outputs(self, omit: tuple[str, ...] = (), volumes: dict | None = None) -> list[dict]:
        """The manifest's output entries: one per structure not in `omit`, styled the TG-263
        way; organs of one piece (`is_one_piece`) keep only their largest connected piece; paired
        or repeated organs ("Lungs", "Ribs") and targets may be several (nodes).
        `volumes` (`training_volume_ranges`) gives organs their ``training_volume_cc``; a
        target's volume depends on the patient's disease, so targets get none."""
        from planning.structures import RoiType
        from planning.tg263 import style_for

        outputs = []
        for channel, structure in enumerate(self.structures):
            if structure in omit:
                continue
            color, roi_type = style_for(structure)
            entry = {
                "channel": channel,
                "name": structure,
                "type": roi_type.value,
                "color": list(color),
                "keep_largest": roi_type == RoiType.ORGAN and is_one_piece(structure),
            }
            record = (volumes or {}).get(structure)
            if record and roi_type == RoiType.ORGAN:
                entry["training_volume_cc"] = [record["smallest_cc"], record["largest_cc"]]
            outputs.append(entry)
        return outputs

    @property
    def mirrors_in_training(self) -> bool:
        """Whether the augmentation mirrors patches left-right."""
        return Augmentation(**self.augmentation).mirror_probability > 0

    def manifest_core(self) -> dict:
        """The manifest fields that describe what training did (preprocessing, network, inference)."""
        return {
            "modality": "CT",
            "architecture": {"name": self.architecture, "params": self.architecture_params()},
            "preprocessing": {
                "spacing_xyz": list(reversed(self.spacing_zyx)),
                "normalization": self.normalization,
                "crop": "body",
                "orientation": "LPS",
            },
            "inference": {
                "patch_size_zyx": list(self.inference_patch_zyx),
                "overlap": self.overlap,
                "size_divisor": 16,
                # test-time mirroring along the axis the training mirrored (left–right)
                "mirror_axes_zyx": [lateral_axis_zyx("LPS")] if self.mirrors_in_training else [],
                "activation": "sigmoid",
                "threshold": 0.5,
            },
        }


def masked_loss(
    logits: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor, pos_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary cross-entropy + soft Dice, counting only the structures delineated in each case.

    The Dice term is per structure over the whole batch, for the structures with voxels in the
    batch (an absent structure's Dice is 0 or 1 by convention and only adds noise; cross-entropy
    already teaches "nothing here")."""
    weight = labelled.float()
    if pos_weight is not None:
        pos_weight = pos_weight.to(logits.dtype)[None, :, None, None, None]
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none", pos_weight=pos_weight)
    bce = bce.mean(dim=(2, 3, 4))
    bce = (bce * weight).sum() / weight.sum().clamp(min=1)
    probability = torch.sigmoid(logits)
    w = weight[:, :, None, None, None]
    intersection = (probability * target * w).sum(dim=(0, 2, 3, 4))
    denominator = ((probability + target) * w).sum(dim=(0, 2, 3, 4))
    soft_dice = (2 * intersection + 1) / (denominator + 1)
    present = (labelled.any(0) & ((target * w).sum(dim=(0, 2, 3, 4)) > 0)).float()
    # mean over the present structures, 0 when none is (a masked mean: no wait for the GPU)
    dice_loss = ((1 - soft_dice) * present).sum() / present.sum().clamp(min=1)
    return bce + dice_loss


def deep_supervision_loss(
    levels: list[torch.Tensor],
    target: torch.Tensor,
    labelled: torch.Tensor,
    pos_weight: torch.Tensor | None = None,
):
    """`masked_loss` at full resolution plus, with weights halving per level, at the coarser
    deep-supervision outputs against area-averaged targets."""
    total, weights = 0.0, 0.0
    for depth, logits in enumerate(levels):
        scaled = target if depth == 0 else F.adaptive_avg_pool3d(target, logits.shape[2:])
        weight = 0.5**depth
        total = total + weight * masked_loss(logits, scaled, labelled, pos_weight)
        weights += weight
    return total / weights


def learning_rate(config: TrainConfig, iteration: int) -> float:
    """Linear warm-up, then polynomial decay to 0; a phase with a ``"learning_rate"`` restarts the
    decay from that value at its first iteration (the previous decay ends there)."""
    restarts = sorted((p["from"], float(p["learning_rate"])) for p in config.phases if "learning_rate" in p)
    start, peak, warmup = 0, config.learning_rate, config.warmup
    for first, value in restarts:
        if iteration >= first:
            start, peak, warmup = first, value, 0
    end = next((first for first, _ in restarts if first > start), config.iterations)
    if iteration - start < warmup:
        return peak * (iteration - start + 1) / warmup
    progress = (iteration - start - warmup) / max(1, end - start - warmup)
    return peak * (1 - min(progress, 1.0)) ** 0.9


def _initialise_output_bias(net, prior: float, channels: list[int] | None = None) -> None:
    """Output layers start predicting `prior` everywhere instead of 0.5: training then skips the
    long phase in which cross-entropy only pushes every logit down (RetinaNet's prior init).
    With `channels`, only those outputs are reset (weights zeroed, bias at the prior)."""
    bias = math.log(prior / (1 - prior))
    with torch.no_grad():
        for name, module in net.named_modules():
            if name == "head" or name.startswith("deep_heads."):
                if channels is None:
                    module.bias.fill_(bias)
                else:
                    module.weight[channels] = 0.0
                    module.bias[channels] = bias


def _load_initial_weights(net, folder: Path) -> None:
    """Start from a model folder's weights (checked against its manifest's sha256)."""
    from segmentation.engine.manifest import read_manifest
    from segmentation.engine.model import load_into, read_state_dict

    manifest = read_manifest(folder)
    load_into(
        net, read_state_dict(manifest.weights_path, manifest.weights_sha256), str(manifest.weights_path)
    )
    net.train()
    log.info("training starts from the weights of %s %s", manifest.name, manifest.version)


def _training_autocast(device):
    """bfloat16 autocast on CUDA GPUs that support it (no loss scaling needed); float32 elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _describe(device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


class Trainer:
    """Trains `config` on `train_cases`, picks weights on `holdout` (raw cases on their own grid).
    `device`: "cpu", "cuda", "mps", or None / "auto" for the best available."""

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        train_cases: list[Case],
        holdout: list[Case],
        device: str | None = None,
    ):
        self.config, self.run_dir = config, Path(run_dir)
        self.device = devices.choose_device(device)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # patches keep one shape: pick the fastest kernels
        self.net = build_network(config.architecture, config.architecture_params())
        _initialise_output_bias(self.net, config.output_prior)
        if config.init_from:
            _load_initial_weights(self.net, Path(config.init_from))
        self.memory_format = torch.channels_last_3d if config.channels_last else torch.contiguous_format
        self.net = self.net.to(self.device, memory_format=self.memory_format)
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.sampler = PatchSampler(
            train_cases,
            config.structures,
            config.patch_zyx,
            config.normalization,
            config.foreground_fraction,
            Augmentation(**config.augmentation),
            spacing_zyx=config.spacing_zyx,
            # patches are interpolated on a CUDA GPU; elsewhere on the CPU (MPS lacks some 3D ops)
            device=self.device if self.device.type == "cuda" else "cpu",
        )
        self.holdout = holdout
        self.iteration = 0
        self.best_score = -1.0
        self.history: list[dict] = []

    @property
    def checkpoint_path(self) -> Path:
        """The run folder's checkpoint (network, optimizer, iteration, best score)."""
        return self.run_dir / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        """Write the checkpoint atomically, so that a run stopped at any point resumes from it."""
        state = {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "iteration": self.iteration,
            "best_score": self.best_score,
        }
        write_atomically(self.checkpoint_path, lambda target: torch.save(state, target))

    def resume(self) -> bool:
        """Continue from the run folder's checkpoint; False when there is none."""
        if not self.checkpoint_path.exists():
            return False
        try:
            state = torch.load(self.checkpoint_path, weights_only=True, map_location=self.device)
        except Exception as error:  # torch raises many kinds on a damaged file
            raise DelineoError(
                f"{self.checkpoint_path}: cannot be read, damaged ({_first_line(error)}); move it away to "
                "start this run again from its first iteration"
            ) from error
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration = int(state["iteration"])
        self.best_score = float(state["best_score"])
        log.info("resumed %s at iteration %d", self.run_dir, self.iteration)
        return True

    def step(self) -> torch.Tensor:
        """One iteration; returns its loss (a tensor on the device: reading it waits for the GPU)."""
        config = self.config
        rng = np.random.default_rng([config.seed, self.iteration])
        torch.manual_seed(config.seed * 1_000_003 + self.iteration)
        balanced = self.iteration >= config.structure_balanced_from
        phase = self.phase()
        if phase.get("from") == self.iteration and phase.get("reinitialise"):
            channels = [config.structures.index(name) for name in phase["reinitialise"]]
            _initialise_output_bias(self.net, config.output_prior, channels)
        index = {name: k for k, name in enumerate(config.structures)}
        weights = {index[n]: float(w) for n, w in phase.get("structure_weights", {}).items()}
        pos_weight = None
        if phase.get("pos_weight"):
            pos_weight = torch.ones(len(config.structures))
            for name, value in phase["pos_weight"].items():
                pos_weight[index[name]] = float(value)
            pos_weight = pos_weight.to(self.device)
        batch = self.sampler.batch(rng, config.batch_size, balanced, weights)
        image, target, labelled = (tensor.to(self.device) for tensor in batch)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(config, self.iteration)
        self.net.train()
        with _training_autocast(self.device):
            levels = self.net.forward_levels(image.to(memory_format=self.memory_format))
        levels = [level.float() for level in levels]
        loss = deep_supervision_loss(levels, target, labelled, pos_weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 12.0)
        self.optimizer.step()
        self.iteration += 1
        return loss.detach()

    def phase(self) -> dict:
        """The training phase in force at this iteration ({} before the first)."""
        active = {}
        for phase in sorted(self.config.phases, key=lambda p: p["from"]):
            if self.iteration >= phase["from"]:
                active = phase
        return active

    def evaluate(self) -> dict:
        """Mean Dice per structure on the held-out cases (cases where it is delineated), each
        segmented by the inference engine with the network as it is now, as a user's CT would be."""
        from segmentation.engine.manifest import parse_manifest
        from segmentation.engine.model import from_manifest

        self.net.eval()
        data = {"name": self.run_dir.name, **self.config.manifest_core(), "outputs": self.config.outputs()}
        manifest = parse_manifest(data, self.run_dir / "manifest.json", weights=False)
        model = from_manifest(manifest, networks=[self.net])
        scores: dict[str, list[float]] = {name: [] for name in self.config.structures}
        for case in self.holdout:
            predicted = model.predict(case.volume(), device=str(self.device))
            for k, name in enumerate(self.config.structures):
                reference = case.mask(k)
                if case.labelled[k] and reference.any():
                    scores[name].append(dice(predicted[name].mask.full(), reference))
        return {name: float(np.mean(v)) for name, v in scores.items() if v}

    def selection_score(self, scores: dict) -> float:
        """The mean held-out Dice over `selection_structures` (all when none are named), 0 when none was
        scored."""
        names = self.config.selection_structures or list(scores)
        values = [scores[n] for n in names if n in scores]
        return float(np.mean(values)) if values else 0.0

    def run(self, on_progress=None, cancel: threading.Event | None = None) -> None:
        """Train up to `config.iterations`, logging to log.jsonl, checkpointing and keeping the best weights
        by held-out score (best.safetensors); without held-out cases the last weights are the best; cancel
        saves a checkpoint and raises `Cancelled`."""
        config = self.config
        logfile = (self.run_dir / "log.jsonl").open("a")
        started, losses = time.monotonic(), []
        logfile.write(json.dumps({"iteration": self.iteration, "device": _describe(self.device)}) + "\n")
        try:
            while self.iteration < config.iterations:
                if cancel is not None and cancel.is_set():
                    self.save_checkpoint()
                    raise Cancelled(f"training stopped at iteration {self.iteration}; run again to resume")
                losses.append(self.step())
                if self.iteration % config.log_every == 0:
                    entry = {
                        "iteration": self.iteration,
                        "loss": float(torch.stack(losses).mean()),
                        "lr": learning_rate(config, self.iteration - 1),
                        "seconds": round(time.monotonic() - started, 1),
                    }
                    logfile.write(json.dumps(entry) + "\n")
                    logfile.flush()
                    log.info("iteration %(iteration)d loss %(loss).4f", entry)
                    losses = []
                if self.holdout and (
                    self.iteration % config.evaluate_every == 0 or self.iteration == config.iterations
                ):
                    scores = self.evaluate()
                    score = self.selection_score(scores)
                    entry = {"iteration": self.iteration, "holdout_dice": scores, "score": score}
                    logfile.write(json.dumps(entry) + "\n")
                    logfile.flush()
                    log.info("iteration %d held-out score %.4f %s", self.iteration, score, scores)
                    if score > self.best_score:
                        self.best_score = score
                        save_weights(self.net, self.run_dir / "best.safetensors")
                if self.iteration % config.checkpoint_every == 0 or self.iteration == config.iterations:
                    self.save_checkpoint()
                if on_progress is not None:
                    on_progress("training", self.iteration, config.iterations)
        finally:
            logfile.close()
        if not self.holdout:
            save_weights(self.net, self.run_dir / "best.safetensors")


def save_weights(net, path: Path) -> None:
    """Write a network's weights to `path` as safetensors (on the CPU, contiguous)."""
    write_safetensors({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, path)


def write_safetensors(state: dict, path: Path) -> None:
    """Write `state` as safetensors, atomically, with the permissions of any new file (the umask).
    safetensors' own `save_file` creates owner-only files, which other users of a shared model
    folder could not read."""
    from safetensors.torch import save

    data = save(state)
    write_atomically(path, lambda target: target.write_bytes(data))


def split_holdout(sources: list, count: int, seed: int) -> tuple[list, list]:
    """(training, held-out) sources: `count` cases picked at random (seeded) for model selection."""
    if count <= 0:
        return list(sources), []
    if count >= len(sources):
        raise DelineoError(f"cannot hold out {count} of {len(sources)} cases for model selection")
    picked = set(np.random.default_rng(seed).choice(len(sources), count, replace=False).tolist())
    training = [s for i, s in enumerate(sources) if i not in picked]
    return training, [s for i, s in enumerate(sources) if i in picked]


def read_settings(path: Path) -> dict:
    """The JSON object of training settings in `path` (a --config file, a run's config.json);
    DelineoError naming the file when it is not one."""
    try:
        settings = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DelineoError(f"{path}: cannot be read as JSON settings ({error})") from error
    if not isinstance(settings, dict):
        raise DelineoError(f"{path}: holds a JSON {type(settings).__name__}, not an object of settings")
    return settings


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def prepare_run(
    config: TrainConfig, run_dir: Path, sources: list, holdout_count: int, device: str | None = None
) -> Trainer:
    """A Trainer for `run_dir` on `device` (None: the best available): a new run saves `config`
    once its cases have been read (a case refused leaves no run behind, whose settings a corrected
    command would then have to match); an existing one keeps its own config. Structures no
    training case delineates are refused, unless the run fine-tunes a model (`check_delineated`)."""
    from segmentation.training.case_folders import read_mask_folder
    from segmentation.training.data import check_delineated, read_openkbp

    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if config_path.exists():
        config = TrainConfig.from_json(config_path)
    training, held_out = split_holdout(sources, holdout_count, config.seed)
    split = {"training": [s[2] for s in training], "holdout": [s[2] for s in held_out]}
    split_path = run_dir / "split.json"
    if split_path.exists() and json.loads(split_path.read_text()) != split:
        raise DelineoError(
            f"{run_dir}: this run selects its weights on other held-out cases than {len(held_out)} "
            "drawn from these; resume it with the same cases and --holdout, or start a new run"
        )
    log.info("reading %d training and %d held-out cases", len(training), len(held_out))
    train_cases = load_cases(
        training, config.structures, None if config.sample_native_grid else config.spacing_zyx
    )
    check_delineated(train_cases, config.structures, fine_tuning=bool(config.init_from))
    holdout = [
        read_openkbp(folder, name, config.structures)
        if kind == "openkbp"
        else read_mask_folder(folder, config.structures)
        for kind, folder, name in held_out
    ]
    if not config_path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        config_path.write_text(json.dumps(asdict(config), indent=2) + "\n")
    split_path.write_text(json.dumps(split, indent=2))
    if config.unusual_reference_factor > 0:
        left_out = leave_out_unusual_references(
            train_cases,
            config.structures,
            config.unusual_reference_structures or config.structures,
            config.unusual_reference_factor,
        )
        write_json(
            run_dir / "left_out_references.json",
            [{"case": c, "structure": s, "cc": cc, "median_cc": m} for c, s, cc, m in left_out],
        )
    write_json(run_dir / TRAINING_VOLUMES, training_volume_ranges(train_cases, config.structures))
    trainer = Trainer(config, run_dir, train_cases, holdout, device)
    trainer.resume()
    return trainer
