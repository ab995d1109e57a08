"""Auto-segmentation benchmarks: Delineo's engine against nnU-Net's own predictor, and the engine's
promises (bounded memory, quick cancel, seconds-fast rules and seeded delineation).

    python benchmarks/segment.py                 # everything (about 10 minutes on 2 CPU cores)
    python benchmarks/segment.py nnunet          # one part: nnunet, memory, cancel, seeded, rules

nnunet: a real abdominal CT (pancreas-ct-134) resampled to 256×256×150 goes through an nnU-Net
v2 folder holding a 3d_fullres-sized network with random weights (6 stages, 32→320 features,
128³ patch, 3 mm spacing and 117 classes as TotalSegmentator's 3 mm model), once by nnunetv2's
``nnUNetPredictor.predict_single_npy_array`` and once by Delineo, same settings (1 fold, no
mirroring, tile step 0.5, Gaussian), each in its own process so that peak memory (max RSS) is
its own. Delineo runs twice: as a user gets it (crop to the body) and with ``crop="none"``
(exactly nnU-Net's work, the engine alone). Labels are compared voxel by voxel.

memory: a 512×512×600 CT through a model with 10 overlapping outputs at 1.5 mm, and through an
nnU-Net model with 117 classes at 1.5 mm: peak RSS.
cancel: a network whose tiles take seconds: time from cancel request to `Cancelled`.
seeded / rules: timings on the real CTs (median of repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
DATA = Path(os.environ.get("DELINEO_DATA", ROOT.parent / "shared" / "data"))


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def cpu_s() -> float:
    """CPU seconds (user + system) of this process and its finished children: on a shared machine
    a steadier measure of work than wall-clock time."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# -- nnU-Net parity and speed ------------------------------------------------------------------


def benchmark_ct(work: Path) -> tuple[Path, tuple[float, float, float]]:
    """pancreas-ct-134 resampled to 256×256×150 (float32 .npy) and its spacing (z, y, x) mm."""
    import SimpleITK as sitk

    from planning.imageio import load_volume

    volume = load_volume(DATA / "dicom" / "pancreas-ct-134")
    image = volume.to_sitk()
    size = (256, 256, 150)
    spacing = [n * s / m for n, s, m in zip(image.GetSize(), image.GetSpacing(), size, strict=True)]
    resampled = sitk.Resample(
        image,
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        spacing,
        image.GetDirection(),
        -1000.0,
        sitk.sitkInt16,
    )
    path = work / "ct.npy"
    np.save(path, sitk.GetArrayFromImage(resampled).astype(np.float32))
    return path, tuple(spacing[::-1])


def run_child(kind: str, folder: Path, ct: Path, spacing, out: Path, threads: int | None) -> dict:
    command = [sys.executable, __file__, "_child", kind, str(folder), str(ct), json.dumps(spacing), str(out)]
    if threads:
        command += ["--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def child(kind: str, folder: str, ct: str, spacing: str, out: str, threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    array = np.load(ct)
    spacing_zyx = json.loads(spacing)
    started, cpu_started = time.perf_counter(), cpu_s()
    if kind == "nnunet":
        from support.nnunet_folder import nnunet_predictor

        predictor = nnunet_predictor(Path(folder), folds=(0,))
        loaded, cpu_loaded = time.perf_counter(), cpu_s()
        labels = predictor.predict_single_npy_array(array[None], {"spacing": spacing_zyx})
        info = {}
    else:
        from support.nnunet_folder import label_map

        from planning.geometry import Grid
        from planning.volume import Volume
        from segmentation.nnunet import read_nnunet_folder

        model = read_nnunet_folder(folder, folds=[0], crop="none" if kind == "delineo-nocrop" else None)
        model.networks_on(torch.device("cpu"))
        loaded, cpu_loaded = time.perf_counter(), cpu_s()
        volume = Volume(array.astype(np.int16), Grid(array.shape, tuple(spacing_zyx[::-1])), modality="CT")
        labels = label_map(model.predict(volume, device="cpu"), model.outputs)
        info = {
            "tiles": model.last_run.tiles,
            "stages": {k: round(v, 1) for k, v in model.last_run.seconds.items()},
        }
    finished, cpu_finished = time.perf_counter(), cpu_s()
    np.save(out, labels)
    times = {
        "load_s": loaded - started,
        "predict_s": finished - loaded,
        "load_cpu_s": cpu_loaded - cpu_started,
        "predict_cpu_s": cpu_finished - cpu_loaded,
    }
    print(json.dumps({**times, "peak_gb": peak_rss_gb(), **info}))


def bench_nnunet(args) -> None:
    from support.nnunet_folder import FULLRES, write_nnunet_folder

    work = Path(tempfile.mkdtemp(prefix="delineo-bench-"))
    labels = [f"structure_{i}" for i in range(1, args.classes + 1)]
    folder = write_nnunet_folder(work, labels, size=FULLRES, spacing_zyx=(3.0, 3.0, 3.0), logit_scale=1.0)
    ct, spacing = benchmark_ct(work)
    body = np.load(ct) > -500
    print(
        f"CT 256×256×150 (pancreas-ct-134 resampled, {spacing[2]:.2f}×{spacing[1]:.2f}×{spacing[0]:.2f} mm), "
        f"nnU-Net 3d_fullres-sized network (6 stages, 32→320 features, patch 128³, 3 mm, "
        f"{args.classes} classes + background), random weights, CPU, threads: {args.threads or 'default'}"
    )
    results = {}
    for kind in ("nnunet", "delineo", "delineo-nocrop"):
        results[kind] = run_child(kind, folder, ct, spacing, work / f"{kind}.npy", args.threads)
        r = results[kind]
        extra = f", {r['tiles']} tiles, stages {r['stages']}" if "tiles" in r else ""
        print(
            f"  {kind:<15} predict {r['predict_s']:7.1f} s wall, {r['predict_cpu_s']:7.1f} s CPU  "
            f"(+ load {r['load_s']:.1f} s)  peak RSS {r['peak_gb']:.2f} GB{extra}"
        )
    reference = np.load(work / "nnunet.npy")
    for kind in ("delineo", "delineo-nocrop"):
        ours = np.load(work / f"{kind}.npy")
        ratio = results["nnunet"]["predict_s"] / results[kind]["predict_s"]
        cpu_ratio = results["nnunet"]["predict_cpu_s"] / results[kind]["predict_cpu_s"]
        overall, inside = np.mean(ours == reference), np.mean(ours[body] == reference[body])
        print(
            f"  {kind:<15} {ratio:4.2f}× faster than nnUNetPredictor (wall), {cpu_ratio:4.2f}× less CPU "
            f"time; labels equal on {overall:.4%} of "
            f"voxels, {inside:.4%} inside the patient (> −500 HU)"
        )
    print("  (the GPU path — CUDA autocast, out-of-memory fallback — was not run: no GPU on this machine)")


# -- memory --------------------------------------------------------------------------------------


def bench_memory(args) -> None:
    if args.child:
        import support.segmentation_models  # noqa: F401  (registers the test architecture)

        from planning.geometry import Grid
        from planning.volume import Volume
        from segmentation.engine.manifest import read_manifest
        from segmentation.engine.model import from_manifest

        shape = (600, 512, 512)
        z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
        hu = np.full(shape, -1000, np.int16)
        body = ((y - 256) / 200.0) ** 2 + ((x - 256) / 230.0) ** 2 <= 1
        hu[:] = np.where(body, 40, -1000)
        hu[:, 200:300, 180:260] = 400
        volume = Volume(hu, Grid(shape, (0.8, 0.8, 1.0)), modality="CT")
        if (Path(args.child) / "plans.json").is_file():
            from segmentation.nnunet import read_nnunet_folder

            model = read_nnunet_folder(args.child)
        else:
            model = from_manifest(read_manifest(args.child))
        started = time.perf_counter()
        result = model.predict(volume, device="cpu")
        seconds = time.perf_counter() - started
        print(
            json.dumps(
                {
                    "seconds": seconds,
                    "peak_gb": peak_rss_gb(),
                    "structures": len(result),
                    "tiles": model.last_run.tiles,
                }
            )
        )
        return
    from support.nnunet_folder import write_nnunet_folder
    from support.segmentation_models import write_model

    work = Path(tempfile.mkdtemp(prefix="delineo-bench-"))
    ten = write_model(
        work / "ten",
        [100.0 + 30 * i for i in range(10)],
        spacing_xyz=(1.5, 1.5, 1.5),
        patch_zyx=(128, 128, 128),
    )
    # 117 classes as TotalSegmentator's 1.5 mm models, from a network with 8 features at full
    # resolution (theirs have 32, which on this CPU would take an hour for this CT).
    small = {"features": [8, 16, 32, 64], "patch": [128, 128, 128], "strides": [[1, 1, 1]] + [[2, 2, 2]] * 3}
    many = write_nnunet_folder(
        work / "many", [f"structure_{i}" for i in range(1, 118)], size=small, spacing_zyx=(1.5, 1.5, 1.5)
    )
    for folder, what in (
        (ten, "model with 10 overlapping outputs at 1.5 mm"),
        (many, "nnU-Net model with 117 classes at 1.5 mm (8 features, random weights)"),
    ):
        result = subprocess.run(
            [sys.executable, __file__, "memory", "--child", str(folder)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-3000:])
        r = json.loads(result.stdout.strip().splitlines()[-1])
        print(
            f"512×512×600 CT (0.8×0.8×1 mm, 315 MB of int16), {what}: {r['seconds']:.0f} s, "
            f"{r['tiles']} tiles, {r['structures']} structures, peak RSS {r['peak_gb']:.2f} GB "
            "(target ≤ 8 GB)"
        )


# -- cancel ----------------------------------------------------------------------------------------


def bench_cancel(args) -> None:
    from support.segmentation_models import phantom, write_model

    from planning.errors import Cancelled
    from segmentation.engine.manifest import read_manifest
    from segmentation.engine.model import from_manifest

    work = Path(tempfile.mkdtemp(prefix="delineo-bench-"))
    # 20 layers of 0.5 s: a 10-second tile, like a large network on a slow CPU.
    folder = write_model(work / "slow", [100.0], params={"delay_s": 0.5, "layers": 20})
    model = from_manifest(read_manifest(folder))
    volume, _ = phantom()
    latencies = []
    for delay in (1.0, 2.3, 3.7):
        cancel = threading.Event()
        requested = []
        timer = threading.Timer(delay, lambda c=cancel, r=requested: (r.append(time.perf_counter()), c.set()))
        timer.start()
        try:
            model.predict(volume, device="cpu", cancel=cancel)
        except Cancelled:
            latencies.append(time.perf_counter() - requested[0])
    print(
        f"cancel: stopped {', '.join(f'{s:.2f}' for s in latencies)} s after the request, in the middle of "
        f"10-second tiles (target ≤ 2 s)"
    )


# -- seeded and rules --------------------------------------------------------------------------


def bench_seeded(args) -> None:
    from support.segmentation_models import dice

    from planning.imageio import load_volume
    from planning.rtstruct.reader import read_rtstruct
    from segmentation.seeded import delineate

    volume = load_volume(DATA / "dicom" / "ibsi1-lung-ct" / "image")
    expert = read_rtstruct(DATA / "dicom" / "ibsi1-lung-ct" / "RS.dcm", volume)["GTV-1"].mask.full()
    times = []
    for _ in range(5):
        started = time.perf_counter()
        mask = delineate(volume, (27, 105, 105), [(17, 150, 110), (14, 100, 90)])
        times.append(time.perf_counter() - started)
    alone = dice(delineate(volume, (27, 105, 105)).full(), expert)
    print(
        f"seeded (IBSI-1 lung GTV, 1 click inside + 2 outside): Dice {dice(mask.full(), expert):.3f} "
        f"(one click alone: {alone:.3f}), median {np.median(times):.2f} s, max {max(times):.2f} s on CPU "
        f"(target ≤ 2 s)"
    )


def bench_rules(args) -> None:
    from planning.imageio import load_volume
    from segmentation.rules import RuleModel

    for name, path in (
        ("pancreas-ct-134 512×512×134", DATA / "dicom" / "pancreas-ct-134"),
        ("ibsi1-lung-ct 204×201×60", DATA / "dicom" / "ibsi1-lung-ct" / "image"),
    ):
        volume = load_volume(path)
        times = []
        for _ in range(3):
            started = time.perf_counter()
            RuleModel().predict(volume)
            times.append(time.perf_counter() - started)
        print(
            f"rules ({name}): External, lungs, bones in {np.median(times):.1f} s (median of 3), "
            f"peak RSS so far {peak_rss_gb():.2f} GB"
        )


PARTS = {
    "nnunet": bench_nnunet,
    "memory": bench_memory,
    "cancel": bench_cancel,
    "seeded": bench_seeded,
    "rules": bench_rules,
}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else None
        child(*sys.argv[2:7], threads)
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("parts", nargs="*", help=f"what to run: {', '.join(PARTS)} (default: all)")
    parser.add_argument("--threads", type=int, help="torch threads for the nnunet part (both predictors)")
    parser.add_argument(
        "--classes",
        type=int,
        default=117,
        help="nnunet part: output classes (117: like TotalSegmentator's 3 mm model)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    for part in args.parts or list(PARTS):
        PARTS[part](args)


if __name__ == "__main__":
    main()
