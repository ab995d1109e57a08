"""Accuracy of a model folder on OpenKBP patients: Dice and HD95 per structure, as in a model card.

Each patient goes through the inference engine exactly as a user's CT would
(`segmentation.registry.load_model(folder).predict(volume)`: body crop, reorientation,
`segmentation.preprocessing` resampling and normalisation, sliding window, back to the original
grid). Training picks its weights through the same engine (`Trainer.evaluate`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from planning.geometry import Grid
from planning.volume import Volume
from segmentation.training.data import OPENKBP_NAMES, far_from_median, openkbp_case_names
from segmentation.training.metrics import dice, hd95

log = logging.getLogger(__name__)

#: Contours smaller than this on a patient without the structure count as a false detection.
FALSE_POSITIVE_CC = 1.0

#: A reference whose volume is this many times the split's median for its structure, or less
#: than the median divided by it, is reported as unusual (e.g. a "SpinalCord" that outlines
#: the whole posterior neck). Reported, never left out of the figures.
UNUSUAL_VOLUME_FACTOR = 5.0


@dataclass
class CaseResult:
    """One patient's evaluation: run time in s, Dice and HD95 (mm) per structure, volumes in cc."""

    name: str
    seconds: float
    dice: dict[str, float] = field(default_factory=dict)
    hd95_mm: dict[str, float] = field(default_factory=dict)
    #: structures absent from the patient's reference → predicted volume in cc
    absent_predicted_cc: dict[str, float] = field(default_factory=dict)
    #: reference volume in cc of each structure the patient has
    reference_cc: dict[str, float] = field(default_factory=dict)
    #: what the run warned about (a volume outside the model's training range, ...)
    warnings: list[str] = field(default_factory=list)


def openkbp_volume(path: Path) -> tuple[Volume, dict[str, np.ndarray]]:
    """An OpenKBP patient as a CT `Volume` (origin 0, z toward the feet: direction diag(1, 1, −1))
    and its reference masks by TG-263 name (absent structures left out)."""
    with np.load(path) as data:
        image = data["ct_hu"].astype(np.int16)
        bits = data["structures"]
        spacing_zyx = [float(s) for s in data["spacing_zyx"]]
    grid = Grid(image.shape, tuple(reversed(spacing_zyx)), (0.0, 0.0, 0.0), np.diag([1.0, 1.0, -1.0]))
    masks = {}
    for bit, name in enumerate(OPENKBP_NAMES.values()):
        mask = ((bits >> bit) & 1).astype(bool)
        if mask.any():
            masks[name] = mask
    return Volume(image, grid, "CT"), masks


def predict_masks(model_folder: Path, volume: Volume) -> tuple[dict[str, np.ndarray], list[str]]:
    """Masks by structure name on the volume's grid, and the run's warnings."""
    from segmentation.registry import load_model

    model = load_model(str(model_folder))
    structures = model.predict(volume, device="cpu")
    return {s.name: s.mask.full() for s in structures}, list(model.last_run.warnings)


def evaluate(
    model_folder: str | Path,
    split_folder: str | Path,
    limit: int | None = None,
    patients: list[str] | None = None,
):
    """Per-patient results of `model_folder` on every ``pt_*.npz`` of `split_folder` (or on
    `patients` alone, names like "pt_3"), the first `limit` of them."""
    model_folder, split_folder = Path(model_folder), Path(split_folder)
    results = []
    names = (patients or openkbp_case_names(split_folder))[:limit]
    for i, name in enumerate(names, start=1):
        volume, reference = openkbp_volume(split_folder / f"{name}.npz")
        started = time.perf_counter()
        predicted, warnings = predict_masks(model_folder, volume)
        result = CaseResult(name, time.perf_counter() - started, warnings=warnings)
        voxel_cc = volume.grid.voxel_volume_cc
        for structure, mask in predicted.items():
            if structure in reference:
                result.reference_cc[structure] = float(reference[structure].sum()) * voxel_cc
                result.dice[structure] = dice(mask, reference[structure])
                result.hd95_mm[structure] = hd95(mask, reference[structure], volume.grid.spacing_zyx)
            else:
                result.absent_predicted_cc[structure] = float(mask.sum()) * voxel_cc
        log.info("%d/%d %s %.1f s: %s", i, len(names), name, result.seconds, _short(result.dice))
        results.append(result)
    return results


def _short(values: dict) -> str:
    return " ".join(f"{k}={v:.2f}" for k, v in values.items())


def unusual_references(results: list[CaseResult], organs: list[str], factor: float = UNUSUAL_VOLUME_FACTOR):
    """(patient, organ, volume cc, the organ's median cc over `results`) for each reference at
    least `factor` times larger or smaller than the median: contours that are probably of
    something else, whose Dice says little about the model. Organs only: a target's size is
    the patient's disease and varies that much."""
    volumes: dict[str, dict[str, float]] = {}
    for r in results:
        for structure, cc in r.reference_cc.items():
            if structure in organs:
                volumes.setdefault(structure, {})[r.name] = cc
    unusual = []
    for structure, by_patient in volumes.items():
        median, names = far_from_median(by_patient, factor)
        unusual += [(name, structure, by_patient[name], median) for name in names]
    order = {r.name: i for i, r in enumerate(results)}
    return sorted(unusual, key=lambda row: order[row[0]])


def summary_table(results: list[CaseResult], structures: list[str], organs: list[str]) -> str:
    """Markdown table: per structure, cases, Dice mean ± sd (median), HD95 median (mean) in mm."""
    lines = [
        "| Structure | Patients | Dice mean ± SD | Dice median | Dice min | HD95 mm median | HD95 mm mean |",
        "|---|---|---|---|---|---|---|",
    ]
    means = {}
    for structure in structures:
        scores = np.array([r.dice[structure] for r in results if structure in r.dice])
        distances = np.array([r.hd95_mm[structure] for r in results if structure in r.hd95_mm])
        if not len(scores):
            continue
        means[structure] = float(scores.mean())
        finite = distances[np.isfinite(distances)]
        missed = len(distances) - len(finite)
        hd_median = f"{np.median(finite):.1f}" if len(finite) else "–"
        hd_mean = (f"{finite.mean():.1f}" if len(finite) else "–") + (f" ({missed} missed)" if missed else "")
        lines.append(
            f"| {structure} | {len(scores)} | {scores.mean():.3f} ± {scores.std():.3f} | "
            f"{np.median(scores):.3f} | {scores.min():.3f} | {hd_median} | {hd_mean} |"
        )
    organ_means = [means[s] for s in organs if s in means]
    lines.append("")
    lines.append(f"Mean Dice over the {len(organ_means)} organs at risk: {np.mean(organ_means):.3f}")
    absent = {}
    for r in results:
        for structure, cc in r.absent_predicted_cc.items():
            count, hits = absent.get(structure, (0, 0))
            absent[structure] = (count + 1, hits + (cc >= FALSE_POSITIVE_CC))
    for structure in structures:
        if structure in absent:
            count, hits = absent[structure]
            lines.append(
                f"{structure}: absent from {count} patients' references; "
                f"drawn (≥ {FALSE_POSITIVE_CC:g} cc) on {hits} of them"
            )
    unusual = unusual_references(results, organs)
    if unusual:
        lines.append(
            f"Unusual references (over {UNUSUAL_VOLUME_FACTOR:g}× or under 1/{UNUSUAL_VOLUME_FACTOR:g} of "
            "the structure's median volume; counted in every figure above):"
        )
        lines += [
            f"- {name} {structure}: {cc:.1f} cc (median {median:.1f} cc)"
            for name, structure, cc, median in unusual
        ]
        left_out = {(name, structure) for name, structure, _, _ in unusual}
        kept = [[r.dice[s] for r in results if s in r.dice and (r.name, s) not in left_out] for s in organs]
        kept = [np.mean(scores) for scores in kept if scores]
        lines.append(f"Mean Dice over the organs at risk without the unusual references: {np.mean(kept):.3f}")
    warned = [r for r in results if r.warnings]
    lines.append(
        f"Patients with run warnings (a volume outside the model's training range, ...): "
        f"{len(warned)} of {len(results)}"
    )
    lines += [f"- {r.name}: {' | '.join(r.warnings)}" for r in warned]
    seconds = np.array([r.seconds for r in results])
    lines.append(f"Inference per patient: median {np.median(seconds):.1f} s (CPU)")
    return "\n".join(lines)


def save_results(results: list[CaseResult], path: Path) -> None:
    """Write the results to `path` as JSON, one object per patient."""
    path.write_text(json.dumps([r.__dict__ for r in results], indent=1) + "\n")
