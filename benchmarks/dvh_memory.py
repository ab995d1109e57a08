"""Memory held by the DVHs of a clinical-scale case, and their metrics for comparing two versions.

A generated 600×512×512 CT grid (0.977 × 0.977 × 1.5 mm) with 117 structures: an External of
the body's size (85 M voxels) and 116 ellipsoidal organs of 1 to 20 cm, as masks; a dose on a
2.5 mm grid over the whole CT (a 70 Gy ellipsoidal high-dose region falling off over 3 cm to a
5 Gy bath), float32 as `load_dose` reads it. Every structure's DVH is computed as the window's
DVH panel does (`compute_dvh` on the Structure) and kept. Printed: the samples, the bytes the
117 DVHs hold (their arrays; a volume broadcast from one number counts nothing), the process's
resident memory before and after, and the time.

    python benchmarks/dvh_memory.py [--metrics out.json] [--compare other.json]

`--metrics` writes every DVH's volume, Dmean, Dmin, Dmax, D98/95/50/2 %, D0.1cc, D2cc and
V5/V20/V50/V60 Gy (cc); `--compare` prints the largest difference from another run's file (Gy,
cc and % of the structure's volume).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from synthetic_organs import body_and_organs

from planning.dose import Dose
from planning.dvh import compute_dvh
from planning.geometry import Grid
from planning.structures import Structure

GRID = Grid((600, 512, 512), (0.977, 0.977, 1.5), (-250.0, -250.0, -450.0))
DOSE_GRID = Grid((360, 200, 200), (2.5, 2.5, 2.5), (-250.0, -250.0, -450.0))
LEVELS = (5, 20, 50, 60)
PERCENTS = (98, 95, 50, 2)


def resident_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def structures(count: int = 117, seed: int = 5):
    """An External and `count - 1` ellipsoids with radii of 10–100 mm, as cropped masks."""
    for name, mask in body_and_organs(GRID, count, seed):
        yield Structure(name, mask)


def dose() -> Dose:
    """70 Gy inside an ellipsoid near the centre, falling off over 30 mm to a 5 Gy bath."""
    nz, ny, nx = DOSE_GRID.shape
    s = DOSE_GRID.spacing_xyz[0]
    z, y, x = np.ogrid[:nz, :ny, :nx]
    reach = np.sqrt(
        ((z - nz / 2) * s / 60) ** 2 + ((y - ny / 2) * s / 40) ** 2 + ((x - nx / 2) * s / 50) ** 2
    )
    fall_mm = np.clip((reach - 1) * 45, 0, None)
    array = 5 + 65 * np.exp(-((fall_mm / 30) ** 2))
    return Dose(array.astype(np.float32), DOSE_GRID)


def held_bytes(dvh) -> int:
    """The bytes of a DVH's arrays: its doses and its sample volumes' table, indices and running
    totals (`SampleVolumes.nbytes`)."""
    return dvh.doses.nbytes + dvh.volumes_cc.nbytes


def metrics(dvh) -> dict:
    out = dvh.statistics(dose_levels=LEVELS, percents=PERCENTS)
    out["D0.1cc"], out["D2cc"] = dvh.d_cc(0.1), dvh.d_cc(2.0)
    return out


def compare(mine: dict, other: dict) -> None:
    worst_gy, worst_cc, worst_percent = 0.0, 0.0, 0.0
    for name, values in mine.items():
        volume = values["volume_cc"]
        for key, value in values.items():
            difference = abs(value - other[name][key])
            if key.startswith("V"):
                worst_cc = max(worst_cc, difference)
                worst_percent = max(worst_percent, 100 * difference / volume)
            elif key != "volume_cc":
                worst_gy = max(worst_gy, difference)
            else:
                worst_cc = max(worst_cc, difference)
    print(
        f"largest difference over {len(mine)} DVHs: {worst_gy:.3g} Gy (D, Dmean, Dmin, Dmax), "
        f"{worst_cc:.3g} cc, {worst_percent:.3g} % of a structure's volume (V, volume)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", help="write the DVHs' metrics to this JSON file")
    parser.add_argument("--compare", help="compare the metrics with this JSON file")
    arguments = parser.parse_args()
    plan = dose()
    start_mb, start = resident_mb(), time.perf_counter()
    dvhs = [compute_dvh(plan, structure) for structure in structures()]
    seconds = time.perf_counter() - start
    samples = sum(d.doses.size for d in dvhs)
    held = sum(held_bytes(d) for d in dvhs) / 2**20
    unequal = sum(d.volumes_cc.each is None for d in dvhs)
    print(
        f"{len(dvhs)} DVHs ({unequal} of samples of unequal volumes), {samples / 1e6:.1f} M samples, "
        f"held {held:,.0f} MB "
        f"(resident {start_mb:,.0f} -> {resident_mb():,.0f} MB), {seconds:.0f} s"
    )
    values = {d.name: metrics(d) for d in dvhs}
    if arguments.metrics:
        with open(arguments.metrics, "w") as stream:
            json.dump(values, stream)
    if arguments.compare:
        with open(arguments.compare) as stream:
            compare(values, json.load(stream))


if __name__ == "__main__":
    main()
