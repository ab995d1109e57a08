"""Time and peak memory of a margin on a body-sized structure (512 × 512 × 600 CT, 0.977 mm pixels,
1.5 mm slices), and a digest of the result to check that a change leaves it the same.

Structures:
- ``cylinder``: an elliptic cylinder through every slice, 396 × 456 px (the External of the
  stall audit's synthetic case);
- ``body``: an ellipse whose semi-axes change along z (a neck, shoulders, a taper), on slices 20 to
  579 only, so that its ends and slice-to-slice changes are measured too.

Each run is its own process (``--one``), so that the peak resident memory (VmHWM, reset before
the margin) belongs to that margin alone; "extra" is that peak less the memory in use before.

    python benchmarks/margin_memory.py [--runs cylinder:5 body:5 body:-5]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time

import numpy as np

from planning.geometry import Grid
from planning.margins import expand_or_shrink
from planning.structures import Mask

GRID = Grid((600, 512, 512), (0.977, 0.977, 1.5), (-250.0, -250.0, -450.0))


def cylinder() -> Mask:
    y, x = np.ogrid[:512, :512]
    plane = ((y - 256) / 198.0) ** 2 + ((x - 256) / 228.0) ** 2 <= 1
    return Mask(GRID, np.broadcast_to(plane, GRID.shape).copy())


def body() -> Mask:
    """Semi-axes (rows, columns) in pixels per slice: 80 × 70 at the head end rising to 200 × 228."""
    z = np.arange(GRID.shape[0], dtype=float)
    rows = 80 + 120 / (1 + np.exp(-(z - 150) / 15))
    cols = 70 + 158 / (1 + np.exp(-(z - 170) / 10)) - 20 * (z > 450) * (z - 450) / 150
    full = np.zeros(GRID.shape, bool)
    y, x = np.ogrid[:512, :512]
    for k in range(20, 580):
        full[k] = ((y - 256) / rows[k]) ** 2 + ((x - 256) / cols[k]) ** 2 <= 1
    return Mask.from_full(GRID, full)


def memory_kb(key: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key + ":"))


def one(structure: str, margin_mm: float) -> str:
    mask = {"cylinder": cylinder, "body": body}[structure]()
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current resident size
    before_kb = memory_kb("VmRSS")
    start = time.perf_counter()
    result = expand_or_shrink(mask, margin_mm)
    seconds = time.perf_counter() - start
    extra_gb = (memory_kb("VmHWM") - before_kb) / 2**20
    digest = hashlib.sha1(repr(result.offset).encode() + np.packbits(result.array).tobytes()).hexdigest()
    return (
        f"{structure:9s} {margin_mm:+5g} mm  {mask.voxel_count / 1e6:6.1f} M voxels → "
        f"{result.voxel_count / 1e6:6.1f} M  {seconds:6.1f} s  extra peak {extra_gb:5.2f} GB  "
        f"(input {before_kb / 2**20:4.2f} GB resident)  result {digest[:12]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["cylinder:5", "body:5", "body:-5"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        structure, margin = args.one.split(":")
        print(one(structure, float(margin)), flush=True)
        return
    for run in args.runs:
        subprocess.run([sys.executable, __file__, "--one", run], check=True)


if __name__ == "__main__":
    main()
