"""How long the RTSTRUCT export check stops other Python threads (the window's GUI thread).

A blank 600-slice CT series (512², 0.977 × 0.977 × 1.5 mm) with 117 structures is written as an
RTSTRUCT: a body-sized External, 76 organ-like structures (`benchmarks/rtstruct.py`) and 40
vessels running through every slice, half of them pairs (two contours a slice).
The export dialog's check then reads it back in a worker thread (`check_rtstruct` with the
images) while the main thread beats every 10 ms, as the window's event loop would run: every
beat later than 10 ms is a freeze (the worker holding the GIL: garbage collections of its
objects, long numpy conversions); the longest garbage collections are printed too. `--heap`
keeps that many million small Python objects alive meanwhile, as a window's heap (a full
collection walks all of them).

    python benchmarks/export_check_freeze.py [--slices 600] [--heap 2]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rtstruct import build_case  # noqa: E402

from planning.rtstruct.check import check_rtstruct  # noqa: E402
from planning.rtstruct.writer import write_rtstruct  # noqa: E402
from planning.structures import Mask, RoiType, Structure  # noqa: E402


def add_external(structures, volume) -> None:
    """A body-sized elliptic cylinder through every slice."""
    nz, ny, nx = volume.grid.shape
    y, x = np.ogrid[:ny, :nx]
    body = ((y - ny / 2) / (0.42 * ny)) ** 2 + ((x - nx / 2) / (0.46 * nx)) ** 2 <= 1
    mask = Mask.from_full(volume.grid, np.broadcast_to(body, (nz, ny, nx)).copy())
    structures.add(Structure("External", mask, roi_type=RoiType.EXTERNAL))


def add_vessels(structures, volume, count: int, seed: int = 1) -> None:
    """`count` tubes of 3–12 mm radius wandering through every slice, every other one a pair."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = volume.grid.shape
    pixel = volume.grid.spacing_xyz[0]
    y, x = np.ogrid[:ny, :nx]
    for index in range(count):
        radius = rng.uniform(3, 12) / pixel
        start, drift = rng.uniform(0.3, 0.7, 2) * (ny, nx), rng.uniform(-0.05, 0.05, 2)
        twin = rng.uniform(30, 60) / pixel if index % 2 else 0.0
        array = np.zeros((nz, ny, nx), bool)
        for k in range(nz):
            cy, cx = start + drift * k
            array[k] = (y - cy) ** 2 + (x - cx) ** 2 <= radius**2
            if twin:
                array[k] |= (y - cy) ** 2 + (x - cx - twin) ** 2 <= radius**2
        structures.add(Structure(f"Vessel_{index + 1:02d}", Mask.from_full(volume.grid, array)))


def collections_during(job) -> list[tuple[float, int]]:
    """Run `job`; the garbage collections meanwhile as (ms, generation)."""
    found, started = [], {}

    def timed(phase, info):
        if phase == "start":
            started["at"] = time.perf_counter()
        else:
            found.append(((time.perf_counter() - started["at"]) * 1000, info["generation"]))

    gc.callbacks.append(timed)
    try:
        job()
    finally:
        gc.callbacks.remove(timed)
    return found


def beats_during(job) -> tuple[list[float], float]:
    """Run `job` in a thread; the gaps (ms) between 10 ms beats of this thread meanwhile, and the
    job's duration (s)."""
    gaps: list[float] = []
    worker = threading.Thread(target=job)
    start = last = time.perf_counter()
    worker.start()
    while worker.is_alive():
        time.sleep(0.01)
        now = time.perf_counter()
        gaps.append((now - last) * 1000)
        last = now
    worker.join()
    return gaps, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=600)
    parser.add_argument("--organs", type=int, default=76)
    parser.add_argument("--vessels", type=int, default=40)
    parser.add_argument("--heap", type=float, default=2.0, help="million Python objects kept alive")
    arguments = parser.parse_args()
    heap = [[i] for i in range(int(arguments.heap * 1e6))]  # lists: always tracked by the collector
    with tempfile.TemporaryDirectory() as folder:
        volume, structures = build_case(Path(folder) / "ct", arguments.slices, arguments.organs)
        add_vessels(structures, volume, arguments.vessels)
        add_external(structures, volume)
        path = Path(folder) / "RS.dcm"
        start = time.perf_counter()
        write_rtstruct(structures, volume, path)
        written = time.perf_counter() - start
        reports = []
        timing = []

        def check():
            reports.append(check_rtstruct(path, volume, run_dciodvfy=False))

        collections = collections_during(lambda: timing.append(beats_during(check)))
        gaps, seconds = timing[0]
    longest = sorted(gaps, reverse=True)[:5]
    print(
        f"{len(structures)} structures on {arguments.slices} slices, {path.name} "
        f"written in {written:.0f} s; the check took {seconds:.1f} s "
        f"({reports[0].description.split(', ')[-1]}); {len(heap) / 1e6:g} M objects alive"
    )
    print(
        f"beats of 10 ms: longest gaps {', '.join(f'{g:.0f}' for g in longest)} ms; "
        f"{sum(g > 100 for g in gaps)} over 100 ms"
    )
    slowest = sorted(collections, reverse=True)[:3]
    print(
        f"{len(collections)} garbage collections, the longest "
        + ", ".join(f"{ms:.0f} ms (generation {generation})" for ms, generation in slowest)
    )


if __name__ == "__main__":
    main()
