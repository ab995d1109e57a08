"""The built-in head-and-neck model on the OpenKBP validation split: the model card's figures.

Every validation patient (never used in training or model selection) goes through the inference
engine as a user's CT would; Dice and HD95 (mm) are computed on the patient's own 128³ grid
against the OpenKBP contours. Prints the markdown table of MODEL_CARD.md and the acceptance
check (mean Dice over the 7 organs at risk ≥ 0.75, none below 0.60).

    python benchmarks/head_neck_validation.py [--data ../shared/data] [--model resources/models/head_neck]
        [--limit N] [--json results.json]

With ``--split train --patients pt_3,pt_7,...`` it scores the patients a training run held out
to pick its weights (the model card names them), as training does.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
ORGANS = ["Brainstem", "SpinalCord", "Parotid_L", "Parotid_R", "Esophagus", "Larynx", "Bone_Mandible"]
TARGETS = ["PTV56", "PTV63", "PTV70"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPOSITORY.parent / "shared" / "data")
    parser.add_argument("--model", type=Path, default=REPOSITORY / "resources" / "models" / "head_neck")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--limit", type=int, help="only the first N patients")
    parser.add_argument("--patients", help="only these patients, comma-separated (pt_3,pt_7)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write per-patient results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import numpy as np
    import torch

    from segmentation.training.evaluate import evaluate, save_results, summary_table

    torch.set_num_threads(args.threads)
    patients = args.patients.split(",") if args.patients else None
    results = evaluate(args.model, args.data / "openkbp" / args.split, args.limit, patients)
    if args.json:
        save_results(results, args.json)
    print(f"\n{args.model.name} on OpenKBP {args.split} ({len(results)} patients, inference engine)\n")
    print(summary_table(results, ORGANS + TARGETS, ORGANS))
    means = {s: np.mean([r.dice[s] for r in results if s in r.dice]) for s in ORGANS}
    mean = float(np.mean(list(means.values())))
    worst = min(means, key=means.get)
    passed = mean >= 0.75 and means[worst] >= 0.60
    print(
        f"\nAcceptance (mean OAR Dice ≥ 0.75, each ≥ 0.60): mean {mean:.3f}, lowest {worst} "
        f"{means[worst]:.3f} → {'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
