"""Seeded delineation on the IBSI-1 lung GTV from random clicks, as a user's clicks fall.

    python benchmarks/seeded_clicks.py [count] [seed]

`count` clicks (30) drawn at random (`seed` 0) at least 5 mm inside the expert GTV, each alone and
with the two outside clicks of the tests (effusion under the tumour, liver dome): Dice against
the expert contour, how many reach 0.70, leaks (over twice the GTV's volume), warnings, and the
time per click (median, max) on this machine's CPUs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.segmentation_models import dice  # noqa: E402

from planning.errors import DelineoError  # noqa: E402
from planning.imageio import load_volume  # noqa: E402
from planning.rtstruct.reader import read_rtstruct  # noqa: E402
from segmentation.seeded import delineate  # noqa: E402

DATA = Path(os.environ.get("DELINEO_DATA", ROOT.parent / "shared" / "data"))
OUTSIDE = [(17, 150, 110), (14, 100, 90)]


def main(count: int = 30, seed: int = 0) -> None:
    volume = load_volume(DATA / "dicom" / "ibsi1-lung-ct" / "image")
    expert = read_rtstruct(DATA / "dicom" / "ibsi1-lung-ct" / "RS.dcm", volume)["GTV-1"].mask.full()
    expert_cc = expert.sum() * volume.grid.voxel_volume_cc
    depth = ndi.distance_transform_edt(expert, sampling=volume.grid.spacing_zyx)
    candidates = np.argwhere(depth >= 5)
    picked = candidates[np.random.default_rng(seed).choice(len(candidates), count, replace=False)]
    clicks = [tuple(int(v) for v in click) for click in picked]
    for outside in ([], OUTSIDE):
        scores, volumes, times, warned, refused = [], [], [], 0, 0
        for click in clicks:
            warnings: list[str] = []
            started = time.perf_counter()
            try:
                mask = delineate(volume, click, outside, warnings=warnings)
            except DelineoError:
                refused += 1
                continue
            times.append(time.perf_counter() - started)
            scores.append(dice(mask.full(), expert))
            volumes.append(mask.volume_cc)
            warned += bool(warnings)
            flag = " leak" if mask.volume_cc > 2 * expert_cc else ""
            doubts = "; ".join(w.split(":")[0] for w in warnings)
            print(f"  {click}: Dice {scores[-1]:.3f}, {volumes[-1]:.0f} cc{flag} {doubts}")
        scores = np.array(scores)
        print(
            f"{len(outside)} outside clicks: Dice median {np.median(scores):.3f}, min {scores.min():.3f}, "
            f"≥ 0.70 in {(scores >= 0.7).sum()}/{len(scores)} ({refused} refused), "
            f"leaks {sum(v > 2 * expert_cc for v in volumes)}, warned {warned}, "
            f"{min(volumes):.0f}–{max(volumes):.0f} cc (GTV {expert_cc:.0f} cc), "
            f"time median {np.median(times):.2f} s, max {max(times):.2f} s"
        )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
