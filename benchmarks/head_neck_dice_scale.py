"""What a Dice score means on OpenKBP's coarse grid: the reference against itself moved one voxel.

OpenKBP's CTs have about 3.9 mm pixels and 3 mm slices, so a spinal cord is 2–3 voxels across.
This prints, per organ at risk, the mean Dice between each patient's reference contour and the
same contour (a) moved one voxel left–right, (b) one voxel anterior–posterior, (c) one slice
along z, and (d) grown by one voxel (a 3.9 mm margin in-plane, one slice in z). Clinical
contours of the same organ by two physicians commonly differ by that much, so these figures are a
scale for the head-and-neck model's Dice (`head_neck_validation.py`), not a ceiling.

    python benchmarks/head_neck_dice_scale.py [--data ../shared/data] [--split validation]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from segmentation.training.data import openkbp_case_names
from segmentation.training.evaluate import openkbp_volume
from segmentation.training.metrics import dice

REPOSITORY = Path(__file__).resolve().parents[1]
ORGANS = ["Brainstem", "SpinalCord", "Parotid_L", "Parotid_R", "Esophagus", "Larynx", "Bone_Mandible"]

#: name → how a reference mask (z, y, x) is changed
CHANGES = {
    "1 voxel L–R": lambda mask: _moved(mask, axis=2),
    "1 voxel A–P": lambda mask: _moved(mask, axis=1),
    "1 slice": lambda mask: _moved(mask, axis=0),
    "grown 1 voxel": ndimage.binary_dilation,
}


def _moved(mask: np.ndarray, axis: int) -> np.ndarray:
    """`mask` moved one voxel toward higher indices along `axis`; what leaves the array is lost."""
    moved = np.zeros_like(mask)
    source = [slice(None)] * 3
    target = [slice(None)] * 3
    source[axis], target[axis] = slice(0, -1), slice(1, None)
    moved[tuple(target)] = mask[tuple(source)]
    return moved


def dice_scale(split_folder: Path) -> tuple[dict[str, dict[str, float]], dict[str, int], np.ndarray]:
    """Mean Dice per organ and change, patients per organ, and the median spacing (z, y, x) in mm."""
    scores: dict[str, dict[str, list[float]]] = {organ: {name: [] for name in CHANGES} for organ in ORGANS}
    spacings = []
    for case in openkbp_case_names(split_folder):
        volume, reference = openkbp_volume(split_folder / f"{case}.npz")
        spacings.append(volume.grid.spacing_zyx)
        for organ in ORGANS:
            if organ in reference:
                for name, change in CHANGES.items():
                    scores[organ][name].append(dice(change(reference[organ]), reference[organ]))
    means = {
        organ: {name: float(np.mean(values)) for name, values in by_change.items()}
        for organ, by_change in scores.items()
    }
    patients = {organ: len(scores[organ]["1 slice"]) for organ in ORGANS}
    return means, patients, np.median(np.array(spacings), axis=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPOSITORY.parent / "shared" / "data")
    parser.add_argument("--split", default="validation")
    args = parser.parse_args()
    means, patients, spacing = dice_scale(args.data / "openkbp" / args.split)
    z, y, x = spacing
    print(f"OpenKBP {args.split}: median voxel {x:.2f} × {y:.2f} mm, slices {z:.2f} mm\n")
    print("| Organ | Patients | " + " | ".join(CHANGES) + " |")
    print("|---|---|" + "---|" * len(CHANGES))
    for organ in ORGANS:
        print(
            f"| {organ} | {patients[organ]} | " + " | ".join(f"{means[organ][n]:.3f}" for n in CHANGES) + " |"
        )
    print(
        "| **Mean** | | "
        + " | ".join(f"{np.mean([means[o][n] for o in ORGANS]):.3f}" for n in CHANGES)
        + " |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
