"""DICOM-SEG export: Delineo's frame-by-frame writer vs highdicom's `Segmentation`, same structures.

A synthetic 512×512 CT series (`--slices` planes, 0.98 × 0.98 × 1.5 mm) gets `--structures`
organ-like structures (as in `benchmarks/rtstruct.py`). Each writer runs in a fresh process, so
its peak memory (max RSS, GB) is its own: Delineo's `write_seg`, then highdicom given what it
needs, every plane of every segment in one boolean array. Both files are then read back with
highdicom and compared frame by frame; Delineo's reading (`read_seg`, one segment at a time)
is timed too.

    python benchmarks/seg.py [--structures 40] [--slices 150] [--skip-highdicom]

highdicom's array is planes × 512 × 512 × structures bytes: 1.6 GB at the defaults, 18 GB for
117 structures on 600 planes (use --skip-highdicom there).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]

from rtstruct import build_case, organ_structures  # noqa: E402

from planning.imageio import load_volume  # noqa: E402


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _delineo(folder: Path, count: int, out: Path, queue) -> None:
    from planning.seg import write_seg

    volume, structures = _case(folder, count)
    before = _peak_gb()
    start = time.perf_counter()
    write_seg(structures, volume, out)
    queue.put((time.perf_counter() - start, before, _peak_gb()))


def _highdicom(folder: Path, count: int, out: Path, queue) -> None:
    import highdicom as hd
    import pydicom

    from planning.seg import _description

    volume, structures = _case(folder, count)
    images = {ds.SOPInstanceUID: ds for ds in map(pydicom.dcmread, sorted(folder.iterdir()))}
    before = _peak_gb()
    start = time.perf_counter()
    pixels = np.stack([s.mask.full() for s in structures], axis=-1)
    hd.seg.Segmentation(
        source_images=[images[ref.sop_instance_uid] for ref in volume.slices],
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_description(i + 1, s) for i, s in enumerate(structures)],
        series_instance_uid=pydicom.uid.generate_uid(),
        series_number=1,
        sop_instance_uid=pydicom.uid.generate_uid(),
        instance_number=1,
        manufacturer="Delineo",
        manufacturer_model_name="Delineo",
        software_versions="benchmark",
        device_serial_number="0",
    ).save_as(out)
    queue.put((time.perf_counter() - start, before, _peak_gb()))


def _read(path: Path, folder: Path, queue) -> None:
    from planning.seg import read_seg

    volume = load_volume(folder)
    before = _peak_gb()
    start = time.perf_counter()
    structures = read_seg(path, volume)
    queue.put((time.perf_counter() - start, before, _peak_gb(), len(structures)))


def _case(folder: Path, count: int):
    """The benchmark's structures on the series in `folder` (the same in every process: seeded)."""
    volume = load_volume(folder)
    return volume, organ_structures(volume, count)


def _in_process(target, *args):
    queue = multiprocessing.get_context("spawn").Queue()
    process = multiprocessing.get_context("spawn").Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def _same_segments(a: Path, b: Path) -> bool:
    import highdicom as hd

    first, second = hd.seg.segread(a), hd.seg.segread(b)
    if list(first.segment_numbers) != list(second.segment_numbers):
        return False
    for number in first.segment_numbers:
        x = first.get_volume(segment_numbers=[number], combine_segments=False, dtype=np.uint8)
        y = second.get_volume(segment_numbers=[number], combine_segments=False, dtype=np.uint8)
        if not (np.array_equal(x.array, y.array) and np.allclose(x.affine, y.affine)):
            return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--structures", type=int, default=40)
    parser.add_argument("--slices", type=int, default=150)
    parser.add_argument("--skip-highdicom", action="store_true", help="only Delineo (large cases)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        print(f"Writing a 512×512×{args.slices} CT series; {args.structures} structures…", flush=True)
        build_case(scratch / "ct", args.slices, 0)
        ours = scratch / "delineo.seg.dcm"
        wall, before, peak = _in_process(_delineo, scratch / "ct", args.structures, ours)
        print(
            f"Delineo:   {wall:6.2f} s, peak RSS {peak:.2f} GB ({peak - before:+.2f} GB over the loaded "
            f"case), {ours.stat().st_size / 2**20:.0f} MB"
        )
        if not args.skip_highdicom:
            theirs = scratch / "highdicom.seg.dcm"
            their_wall, their_before, their_peak = _in_process(
                _highdicom, scratch / "ct", args.structures, theirs
            )
            print(
                f"highdicom: {their_wall:6.2f} s, peak RSS {their_peak:.2f} GB "
                f"({their_peak - their_before:+.2f} GB over the loaded case)"
            )
            print(
                f"Ratio: {their_wall / wall:.1f}× faster, "
                f"{(their_peak - their_before) / max(peak - before, 1e-3):.0f}× less added memory; "
                f"same segments read back by highdicom: {_same_segments(ours, theirs)}"
            )
        read_wall, read_before, read_peak, count = _in_process(_read, ours, scratch / "ct")
        print(
            f"Reading back (read_seg): {read_wall:.2f} s, {count} structures, peak RSS {read_peak:.2f} GB "
            f"({read_peak - read_before:+.2f} GB)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
