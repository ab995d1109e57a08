"""The engine on a GPU: a 512×512×300 CT through an nnU-Net 3d_fullres-sized network (6 stages,
32→320 features, 128³ patch, 1.5 mm, 117 classes as TotalSegmentator's 1.5 mm model; random
weights), end to end: from `predict` on the CT to the structures on its grid. Issue 5's target is
≤ 20 s on an H100. Runs three times (the first includes CUDA start-up) and prints the card.

    python benchmarks/segment_gpu.py [--out DIR] [--device cuda]

Needs the test support package (tests/support) and dynamic-network-architectures; no data.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def synthetic_ct(shape_zyx=(300, 512, 512), seed: int = 0):
    """A body-sized ellipse of soft tissue (40 HU, noise 20 HU) in air, 0.8×0.8×1.5 mm voxels."""
    from planning.geometry import Grid
    from planning.volume import Volume

    rng = np.random.default_rng(seed)
    _, y, x = np.ogrid[: shape_zyx[0], : shape_zyx[1], : shape_zyx[2]]
    body = ((y - shape_zyx[1] / 2) / 200.0) ** 2 + ((x - shape_zyx[2] / 2) / 240.0) ** 2 <= 1
    ct = np.where(body, 40, -1000).astype(np.int16) + rng.normal(0, 20, shape_zyx).astype(np.int16)
    return Volume(ct, Grid(shape_zyx, (0.8, 0.8, 1.5), (0.0, 0.0, 0.0), np.eye(3)), "CT")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, help="folder for the model and results (default: a temporary one)"
    )
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    import torch
    from support.nnunet_folder import FULLRES, write_nnunet_folder

    from segmentation.registry import load_model

    work = args.out or Path(tempfile.mkdtemp())
    labels = [f"structure_{i}" for i in range(1, 118)]
    folder = write_nnunet_folder(work, labels, size=FULLRES, spacing_zyx=(1.5, 1.5, 1.5), logit_scale=1.0)
    volume = synthetic_ct()
    cuda = args.device.startswith("cuda")
    results = {"card": torch.cuda.get_device_name(0) if cuda else args.device, "torch": torch.__version__}
    started = time.perf_counter()
    model = load_model(str(folder))
    results["load_s"] = round(time.perf_counter() - started, 2)
    for run in range(3):
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        structures = model.predict(volume, device=args.device)
        if cuda:
            torch.cuda.synchronize()
        results[f"predict_{run}_s"] = round(time.perf_counter() - started, 2)
        results["structures"], results["tiles"] = len(structures), model.last_run.tiles
    if cuda:
        results["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(results))
    print(
        f"512×512×300 CT, 117-class nnU-Net 3d_fullres-sized network, {results['card']}: "
        f"{results['predict_1_s']}–{results['predict_2_s']} s end to end "
        f"(first run {results['predict_0_s']} s with CUDA start-up; model load {results['load_s']} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
