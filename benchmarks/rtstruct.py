"""RTSTRUCT export: Delineo vs rt-utils (what TotalSegmentator uses) on the same structures.

A synthetic 512×512×300 CT series (0.98 × 0.98 × 1.5 mm) is written to a temporary folder and
117 irregular structures of organ-like sizes (some with cavities) are drawn on it. Delineo
exports all of them; rt-utils exports a subset (it takes around a second per ROI at this size)
and its time is extrapolated per ROI to 117, as the output says. Both times are file-to-file:
structures in memory → RTSTRUCT on disk. The Delineo file is then checked with dciodvfy.

    python benchmarks/rtstruct.py [--structures 117] [--rt-utils-rois 6] [--slices 300]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# the repository before tests/, whose planning/, segmentation/… test folders would else stand for
# the packages where they are installed editable (a finder that Python asks after the path)
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]

from support.dicom_factory import write_ct_series  # noqa: E402

from planning.imageio import load_volume  # noqa: E402
from planning.rtstruct.writer import write_rtstruct  # noqa: E402
from planning.structures import GenerationAlgorithm, Mask, Structure, StructureSet  # noqa: E402

SPACING = (0.977, 0.977, 1.5)


def organ_like(grid, rng) -> tuple[np.ndarray, tuple[int, int, int]]:
    """A lumpy ellipsoid (optionally hollow) of 5–400 cc inside the body, as a cropped mask."""
    nz, ny, nx = grid.shape
    axes_mm = rng.uniform(8, 55, 3) * np.array([1.0, 1.0, 1.4])
    half = np.ceil(axes_mm * 1.3 / np.array(grid.spacing_zyx)[::-1]).astype(int)  # x, y, z voxels
    centre = np.array(
        [
            rng.integers(half[0] + 60, nx - half[0] - 60),
            rng.integers(half[1] + 90, ny - half[1] - 90),
            rng.integers(half[2] + 2, nz - half[2] - 2),
        ]
    )
    z, y, x = np.ogrid[-half[2] : half[2] + 1, -half[1] : half[1] + 1, -half[0] : half[0] + 1]
    px, py, pz = x * grid.spacing_xyz[0], y * grid.spacing_xyz[1], z * grid.spacing_xyz[2]
    radius = np.sqrt((px / axes_mm[0]) ** 2 + (py / axes_mm[1]) ** 2 + (pz / axes_mm[2]) ** 2)
    phases = rng.uniform(0, 2 * np.pi, 3)
    lumps = 1 + 0.12 * np.sin(3 * np.arctan2(py, px) + phases[0]) * np.cos(2 * np.arctan2(pz, px) + phases[1])
    mask = radius <= lumps
    if rng.random() < 0.2:
        mask &= radius > 0.5 * lumps  # a cavity: holes on the middle slices
    offset = tuple(int(c - h) for c, h in zip(centre[::-1], half[::-1], strict=True))
    return mask, offset


def build_case(folder: Path, slices: int, count: int, seed: int = 0):
    """(volume, structures): a blank CT series of `slices` planes written to `folder` and loaded,
    with `count` organ-like structures on it."""
    hu = np.full((slices, 512, 512), -1000, np.int16)
    write_ct_series(folder, hu, spacing_xyz=SPACING, origin_xyz=(-250.0, -250.0, -225.0))
    volume = load_volume(folder)
    return volume, organ_structures(volume, count, seed)


def organ_structures(volume, count: int, seed: int = 0) -> StructureSet:
    """`count` organ-like structures on `volume`'s grid, the same for the same seed."""
    rng = np.random.default_rng(seed)
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid, "Benchmark")
    for index in range(count):
        array, offset = organ_like(volume.grid, rng)
        structures.add(
            Structure(
                f"Organ_{index + 1:03d}",
                Mask(volume.grid, array, offset),
                algorithm=GenerationAlgorithm.AUTOMATIC,
            )
        )
    return structures


def time_delineo(structures, volume, path: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one export."""
    start, cpu = time.perf_counter(), time.process_time()
    write_rtstruct(structures, volume, path)
    return time.perf_counter() - start, time.process_time() - cpu


def time_rt_utils(structures, folder: Path, path: Path, rois: int) -> tuple[float, float, int]:
    """(wall, CPU) seconds per ROI for rt-utils, measured on the first `rois` structures."""
    from rt_utils import RTStructBuilder

    chosen = list(structures)[:rois]
    masks = [np.moveaxis(s.mask.full(), 0, -1) for s in chosen]  # rt-utils wants (rows, columns, slices)
    start, cpu = time.perf_counter(), time.process_time()
    rtstruct = RTStructBuilder.create_new(dicom_series_path=str(folder))
    for structure, mask in zip(chosen, masks, strict=True):
        rtstruct.add_roi(mask=mask, color=list(structure.color), name=structure.name)
    rtstruct.save(str(path))
    return (time.perf_counter() - start) / len(chosen), (time.process_time() - cpu) / len(chosen), len(chosen)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--structures", type=int, default=117)
    parser.add_argument(
        "--rt-utils-rois", type=int, default=6, help="ROIs rt-utils exports (0: skip rt-utils)"
    )
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the writer names every dropped speck; not the point here
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        print(f"Writing a 512×512×{args.slices} CT series and {args.structures} structures…", flush=True)
        volume, structures = build_case(scratch / "ct", args.slices, args.structures)
        total_cc = sum(s.volume_cc for s in structures)
        print(
            f"  {len(structures)} structures, {total_cc:.0f} cc in all "
            f"({min(s.volume_cc for s in structures):.0f}–{max(s.volume_cc for s in structures):.0f} cc each)"
        )
        time_delineo(structures, volume, scratch / "warm-up.dcm")  # imports and caches
        wall, cpu = min(time_delineo(structures, volume, scratch / "delineo.dcm") for _ in range(3))
        size_mb = (scratch / "delineo.dcm").stat().st_size / 2**20
        print(
            f"Delineo:  {wall:6.2f} s wall, {cpu:.2f} s CPU for {len(structures)} ROIs "
            f"({wall / len(structures) * 1000:.0f} ms per ROI, {size_mb:.1f} MB); target ≤ 5 s: "
            f"{'met' if wall <= 5 else 'NOT met'} (wall)"
        )
        if shutil.which("dciodvfy"):
            result = subprocess.run(
                ["dciodvfy", str(scratch / "delineo.dcm")], capture_output=True, text=True
            )
            errors = [
                line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")
            ]
            print(f"          dciodvfy: {len(errors)} error(s)")
        if args.rt_utils_rois:
            per_roi, per_roi_cpu, measured = time_rt_utils(
                structures, scratch / "ct", scratch / "rt_utils.dcm", args.rt_utils_rois
            )
            total, total_cpu = per_roi * len(structures), per_roi_cpu * len(structures)
            print(
                f"rt-utils: {per_roi:6.2f} s wall, {per_roi_cpu:.2f} s CPU per ROI, measured on {measured} "
                f"ROIs and extrapolated to {len(structures)} ROIs: {total:.1f} s wall, {total_cpu:.1f} s CPU"
            )
            print(
                f"Delineo is {total / wall:.1f}× faster in wall time, {total_cpu / cpu:.1f}× in CPU time "
                f"(target ≥ 5×: {'met' if total / wall >= 5 else 'NOT met'})"
            )
        print(f"(load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
