"""Labelled cases for training: the OpenKBP reader (a clinic's own case folders:
`segmentation.training.case_folders`), and their preparation on the model's grid with the shared
preprocessing (`segmentation.preprocessing`).

A case holds its CT in HU (int16, (z, y, x), index axes growing toward the patient's left,
posterior and superior: "LPS", how DICOM CT loads) and its structures as a bit field: bit k set ⇔ the
voxel is inside output structure k (structures may overlap). `labelled[k]` says whether structure
k was delineated for this case at all; an undelineated structure is left out of the loss rather
than taught as empty (OpenKBP contours the oesophagus in only a third of its patients).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from planning.errors import DelineoError
from planning.geometry import Grid
from planning.volume import Volume

log = logging.getLogger(__name__)

#: OpenKBP's bit order (its README) → Delineo's TG-263 output names.
OPENKBP_NAMES = {
    "Brainstem": "Brainstem",
    "SpinalCord": "SpinalCord",
    "RightParotid": "Parotid_R",
    "LeftParotid": "Parotid_L",
    "Esophagus": "Esophagus",
    "Larynx": "Larynx",
    "Mandible": "Bone_Mandible",
    "PTV56": "PTV56",
    "PTV63": "PTV63",
    "PTV70": "PTV70",
}

#: HU of voxels outside the patient / scanned field.
AIR_HU = -1024


@dataclass
class Case:
    """One labelled case.

    Attributes:
        name: identifier (file or folder name).
        image_hu: CT in HU, int16 (z, y, x).
        labels: bit field (z, y, x), unsigned; bit k ⇔ inside structure k.
        labelled: bool (K,): structure k was delineated for this case.
        spacing_zyx: voxel size in mm.
    """

    name: str
    image_hu: np.ndarray
    labels: np.ndarray
    labelled: np.ndarray
    spacing_zyx: tuple[float, float, float]

    def mask(self, k: int) -> np.ndarray:
        """Boolean mask of structure k."""
        return ((self.labels >> k) & 1).astype(bool)

    def volume(self) -> Volume:
        """The CT as a `Volume` (origin 0, index axes along L, P, S), for the inference engine."""
        grid = Grid(self.image_hu.shape, tuple(reversed(self.spacing_zyx)))
        return Volume(self.image_hu, grid, "CT")


def label_dtype(n_structures: int):
    """The unsigned integer type of a label bit field for `n_structures` structures (at most 32)."""
    if n_structures > 32:
        raise ValueError(f"at most 32 output structures are supported, got {n_structures}")
    return np.uint16 if n_structures <= 16 else np.uint32


def openkbp_case_names(folder: str | Path) -> list[str]:
    """The patients of an OpenKBP split folder, in a stable order (pt_1, pt_2, ..., by number)."""
    names = [p.stem for p in Path(folder).glob("pt_*.npz")]
    return sorted(names, key=lambda n: int(n.split("_")[1]))


def read_openkbp(folder: str | Path, name: str, structures: list[str]) -> Case:
    """One OpenKBP patient (``pt_N.npz``) with its structures mapped to `structures` (TG-263 names).

    OARs missing from the patient are unlabelled; a missing PTV is labelled empty (the plan has no
    such dose level, which is an answer, not a gap). OpenKBP's z index grows toward the feet; the
    case is flipped to LPS.
    """
    path = Path(folder) / f"{name}.npz"
    try:
        with np.load(path) as data:
            image = data["ct_hu"].astype(np.int16)
            bits = data["structures"].astype(np.uint16)
            spacing = tuple(float(s) for s in data["spacing_zyx"])
    except (OSError, KeyError, ValueError) as error:
        raise DelineoError(f"{path}: not a readable OpenKBP case ({error})") from error
    labels = np.zeros(image.shape, label_dtype(len(structures)))
    labelled = np.zeros(len(structures), bool)
    by_name = {tg263: bit for bit, tg263 in enumerate(OPENKBP_NAMES.values())}
    for k, structure in enumerate(structures):
        if structure not in by_name:
            raise DelineoError(f"{structure!r} is not an OpenKBP structure ({', '.join(by_name)})")
        mask = (bits >> by_name[structure]) & 1
        labels |= mask.astype(labels.dtype) << k
        labelled[k] = bool(mask.any()) or structure.startswith("PTV")
    return Case(
        name, np.ascontiguousarray(image[::-1]), np.ascontiguousarray(labels[::-1]), labelled, spacing
    )


def to_lps(array: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """`array` (z, y, x) with index axes along `direction` (columns: LPS unit vectors of the x, y,
    z index axes) permuted and flipped so its x, y, z indices grow toward L, P, S. Oblique axes
    follow their nearest patient axis."""
    direction = np.asarray(direction, float)
    lps_axis = np.abs(direction).argmax(0)  # for index axis x, y, z: which LPS axis it follows
    if sorted(lps_axis) != [0, 1, 2]:
        raise DelineoError(f"cannot orient an image with direction {direction.tolist()}")
    sign = np.sign(direction[lps_axis, [0, 1, 2]])
    # array axis of index axis a is 2 − a; new array axis of LPS axis b is 2 − b
    order = [2 - int(np.flatnonzero(lps_axis == 2 - axis)[0]) for axis in range(3)]
    array = np.transpose(array, order)
    flips = tuple(axis for axis in range(3) if sign[lps_axis == 2 - axis][0] < 0)
    return np.flip(array, flips) if flips else array


def prepare(case: Case, spacing_zyx=None, body_threshold_hu: float = -500.0, margin_mm: float = 20.0) -> Case:
    """`case` cropped to the patient (voxels above `body_threshold_hu`) plus `margin_mm`, so that
    thousands of cases fit in memory; first resampled to `spacing_zyx` (mm) with
    `segmentation.preprocessing.resample` (CT trilinear, labels nearest) unless it is None (the
    case keeps its own grid and patches are sampled from it at the model's spacing).
    """
    image, labels = case.image_hu, case.labels
    spacing = tuple(float(s) for s in case.spacing_zyx)
    if spacing_zyx is not None:
        import torch

        from segmentation.preprocessing import resample

        image = resample(torch.from_numpy(image), spacing, spacing_zyx, "trilinear")
        image = image.round_().clamp_(-32768, 32767).to(torch.int16).numpy()
        labels = resample(torch.from_numpy(labels.astype(np.int64)), spacing, spacing_zyx, "nearest")
        labels = labels.numpy().astype(case.labels.dtype)
        spacing = tuple(float(s) for s in spacing_zyx)
    inside = np.argwhere(image > body_threshold_hu)
    if inside.size:
        margin = np.ceil(margin_mm / np.asarray(spacing, float)).astype(int)
        low = np.maximum(inside.min(0) - margin, 0)
        high = np.minimum(inside.max(0) + margin + 1, image.shape)
        box = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
        image, labels = image[box], labels[box]
    return Case(case.name, np.ascontiguousarray(image), np.ascontiguousarray(labels), case.labelled, spacing)


def load_cases(sources: list[tuple[str, Path, str]], structures: list[str], spacing_zyx=None) -> list[Case]:
    """Read and prepare cases (`prepare`). Each source is (kind, folder, name): kind "openkbp"
    (folder of ``pt_N.npz``, name the patient) or "folder"
    (`segmentation.training.case_folders.read_mask_folder`, folder the case itself)."""
    cases = []
    for kind, folder, name in sources:
        if kind == "openkbp":
            case = read_openkbp(folder, name, structures)
        elif kind == "folder":
            from segmentation.training.case_folders import read_mask_folder

            case = read_mask_folder(folder, structures)
        else:
            raise ValueError(f"unknown case source kind {kind!r}")
        cases.append(prepare(case, spacing_zyx))
    return cases


def check_delineated(cases: list[Case], structures: list[str], fine_tuning: bool = False) -> None:
    """Refuse structures delineated in none of `cases` (no mask file in any case folder, or
    absent from every OpenKBP patient): outputs nothing would teach. When `fine_tuning` a model
    whose outputs these are, they are only named in a warning (the loss leaves them out; the
    model keeps what it learnt of them)."""
    missing = [name for k, name in enumerate(structures) if not any(case.labelled[k] for case in cases)]
    if not missing:
        return
    what = f"{', '.join(missing)}: delineated in none of the {len(cases)} training cases"
    if fine_tuning:
        log.warning("%s; fine-tuning leaves them out of the loss", what)
        return
    it, its = ("it", "its") if len(missing) == 1 else ("them", "their")
    raise DelineoError(f"{what}; train without {it} (--structures) or add {its} masks")


def far_from_median(volumes: dict, factor: float) -> tuple[float, list]:
    """(median of `volumes`' values, the keys whose value is over `factor` times the median or
    under the median divided by `factor`)."""
    median = float(np.median(list(volumes.values())))
    return median, [
        key for key, value in volumes.items() if value > factor * median or value * factor < median
    ]


def reference_volumes(cases: list[Case], channels: list[int]) -> dict[int, dict[int, float]]:
    """For each structure channel in `channels`: {case index: volume in cc} of its non-empty
    references in `cases` (those delineated)."""
    volumes: dict[int, dict[int, float]] = {}
    for i, case in enumerate(cases):
        voxel_cc = float(np.prod(case.spacing_zyx)) / 1000.0
        for k in channels:
            if case.labelled[k]:
                count = int(np.count_nonzero(case.mask(k)))
                if count:
                    volumes.setdefault(k, {})[i] = count * voxel_cc
    return volumes


def training_volume_ranges(cases: list[Case], structures: list[str]) -> dict[str, dict]:
    """Per structure delineated in `cases`: how many cases and the smallest and largest
    reference volume in cc (a trained model's manifest carries them; see
    `segmentation.engine.plausibility`)."""
    volumes = reference_volumes(cases, list(range(len(structures))))
    return {
        structures[k]: {
            "cases": len(by_case),
            "smallest_cc": round(min(by_case.values()), 2),
            "largest_cc": round(max(by_case.values()), 2),
        }
        for k, by_case in sorted(volumes.items())
    }


def leave_out_unusual_references(
    cases: list[Case], structures: list[str], names: list[str], factor: float
) -> list:
    """Mark as not delineated (left out of the loss) each reference of a structure in `names`
    whose volume is over `factor` times, or under 1/`factor` of, that structure's median over
    `cases`: a partial contour (a 0.5 cc larynx against a median of 21 cc) or one of something
    else would teach the network a wrong extent. Returns (case, structure, cc, median cc) for
    each reference left out."""
    unknown = sorted(set(names) - set(structures))
    if unknown:
        raise DelineoError(f"unusual references: {', '.join(unknown)} not among the trained structures")
    volumes = reference_volumes(cases, [k for k, name in enumerate(structures) if name in names])
    left_out = []
    for k, by_case in volumes.items():
        median, unusual = far_from_median(by_case, factor)
        for i in unusual:
            cases[i].labelled = cases[i].labelled.copy()
            cases[i].labelled[k] = False
            left_out.append((cases[i].name, structures[k], by_case[i], median))
    for name, structure, cc, median in left_out:
        log.warning(
            "%s: %s reference (%.1f cc, median %.1f cc) left out of training", name, structure, cc, median
        )
    return left_out


def discover(path: str | Path) -> list[tuple[str, Path, str]]:
    """Case sources under `path`: an OpenKBP split folder (``pt_*.npz``) or a folder of case
    folders (one per patient, `segmentation.training.case_folders` layout)."""
    path = Path(path)
    if not path.is_dir():
        raise DelineoError(f"{path}: not a folder of training cases")
    names = openkbp_case_names(path)
    if names:
        return [("openkbp", path, name) for name in names]
    cases = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not cases:
        raise DelineoError(f"{path}: no cases (pt_*.npz files or case folders) found")
    return [("folder", case, case.name) for case in cases]


def write_json(path: Path, value) -> None:
    """Write `value` to `path` as indented JSON."""
    path.write_text(json.dumps(value, indent=2) + "\n")
