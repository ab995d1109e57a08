"""Series loading: Delineo vs SimpleITK's ImageSeriesReader (GDCM) vs a plain pydicom loop.

Each loader runs in a fresh subprocess (so peak memory is its own) on the same files, after one
warm-up read that puts them in the page cache. Time is folder path → volume in memory, including
the header scan each needs. Prints median times, ratios to SimpleITK, and peak memory over the
volume's own size.

    python benchmarks/load.py [--data ../shared/data] [--slices 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

LOADERS = {
    "delineo": """
from planning.imageio import load_volume
array = load_volume(folder).array
""",
    "simpleitk": """
import SimpleITK as sitk
reader = sitk.ImageSeriesReader()
reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
array = sitk.GetArrayViewFromImage(reader.Execute())
""",
    "pydicom": """
import numpy as np, pydicom
datasets = [pydicom.dcmread(p) for p in sorted(Path(folder).glob("*.dcm"))]
datasets.sort(key=lambda d: float(d.ImagePositionPatient[2]))
array = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets])
""",
}

RUNNER = """
import json, resource, sys, time
from pathlib import Path
folder = sys.argv[1]
import numpy, pydicom, SimpleITK, planning.imageio  # imports are not part of the timing
def resident_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
base = resident_kb()
start = time.perf_counter()
{code}
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": seconds, "peak_mb": (peak - base) / 1024, "shape": list(array.shape),
                  "volume_mb": array.size * 2 / 2**20}}))
"""


def run_loader(name: str, folder: Path) -> dict:
    script = RUNNER.format(code=LOADERS[name])
    result = subprocess.run(
        [sys.executable, "-c", script, str(folder)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def make_series(folder: Path, slices: int) -> Path:
    """A 512×512×`slices` CT series written by the test suite's DICOM factory."""
    root = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(root), str(root / "tests")]  # the repository first (see rtstruct.py)
    import numpy as np
    from support.dicom_factory import write_ct_series

    rng = np.random.default_rng(0)
    hu = rng.integers(-1024, 2000, size=(slices, 512, 512), dtype=np.int16)
    write_ct_series(folder, hu, spacing_xyz=(0.8, 0.8, 1.0))
    return folder


def benchmark(label: str, folder: Path, repeats: int) -> None:
    for name in LOADERS:  # warm the page cache
        run_loader(name, folder)
    results = {name: [run_loader(name, folder) for _ in range(repeats)] for name in LOADERS}
    median = {name: statistics.median(r["seconds"] for r in runs) for name, runs in results.items()}
    volume_mb = results["delineo"][0]["volume_mb"]
    print(f"\n{label}: {results['delineo'][0]['shape']} (int16 volume {volume_mb:.0f} MB)")
    print(f"  {'loader':<10} {'median s':>9} {'vs SimpleITK':>13} {'peak MB':>9} {'peak/volume':>12}")
    for name, runs in results.items():
        peak = max(r["peak_mb"] for r in runs)
        print(
            f"  {name:<10} {median[name]:9.3f} {median[name] / median['simpleitk']:12.2f}x "
            f"{peak:9.0f} {peak / volume_mb:11.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--slices", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    benchmark("pancreas-ct-134", args.data / "dicom" / "pancreas-ct-134", args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_series(Path(tmp), args.slices)
        benchmark(f"generated 512×512×{args.slices}", folder, args.repeats)
    print("\ntarget: Delineo ≤ 0.5× SimpleITK's time, peak memory ≤ 1.5× the volume's size")


if __name__ == "__main__":
    main()
