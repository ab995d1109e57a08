"""`delineo dvh RTDOSE RTSTRUCT [--series DICOM_FOLDER] --out dvh.csv`: DVH statistics per structure.

Without --series the DVH is computed from the RTSTRUCT's planar contours directly on the dose grid
(no CT needed: an RTSTRUCT often travels without all its images); each contour plane is then one
image slice thick, the slices estimated from the contour planes of the whole structure set
(`planning.contour_slabs`), and a DVH whose thickness is a guess says so. With --series the
structures are read onto the images, whose slices give the thickness; unedited ones still use
their planar contours.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from planning.errors import DelineoError
from workstation.cli.numbers import non_negative, percent, positive

log = logging.getLogger(__name__)

PLOT_SUFFIXES = {".png", ".svg", ".pdf"}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "dvh",
        help="dose-volume histograms and DVH metrics per structure (CSV, optional plot)",
        description="Cumulative DVH metrics (volume, Dmean, Dmin, Dmax, D_x%, D_xcc, V_xGy) for "
        "each structure of an RTSTRUCT on an RTDOSE. Structures are sampled below the dose voxel "
        "size as their shape needs; the CSV's sampling column says how.",
    )
    parser.add_argument("dose", type=Path, help="the RTDOSE file")
    parser.add_argument("structures", type=Path, help="the RTSTRUCT file (or a label map with --series)")
    parser.add_argument(
        "--series", type=Path, help="the image series the structures were drawn on (optional)"
    )
    parser.add_argument("--out", type=Path, required=True, help="CSV of metrics, one row per structure")
    parser.add_argument(
        "--curves", type=Path, help="also write the DVH curves as CSV (cumulative, and differential per bin)"
    )
    parser.add_argument("--plot", type=Path, help="also draw the cumulative DVHs (PNG, SVG or PDF)")
    parser.add_argument("--names", nargs="+", help="only these structures")
    parser.add_argument(
        "--levels",
        nargs="+",
        type=non_negative,
        default=[],
        metavar="GY",
        help="V_x doses, e.g. 10 20; for relative doses fractions of the reference dose, e.g. 0.95 (V95%%)",
    )
    parser.add_argument(
        "--percents", nargs="+", type=percent, default=[98, 95, 50, 2], metavar="P", help="D_x%% to report"
    )
    parser.add_argument("--cc", nargs="+", type=positive, default=[], metavar="CC", help="D_xcc to report")
    parser.add_argument(
        "--factor",
        default="auto",
        choices=["auto", "1", "2", "4", "8"],
        help="samples per dose voxel along x and y (default auto: contours as finely as their edge "
        "needs, at most 5%% of the volume within one sample of them, within a cost bound; a mask at "
        "its voxels' centres)",
    )
    parser.add_argument(
        "--end-cap",
        type=positive,
        metavar="MM",
        help="how far structures reach past their first and last contour planes (default: half "
        "the plane spacing, the slab convention; dicompyler-core's interpolation: a sixth of it)",
    )
    parser.set_defaults(handler=run)


def run(args) -> int:
    import numpy as np

    from planning.dose import load_dose
    from planning.dvh import DVH, compute_dvh, dose_unit, format_dose, format_volume, plot_dvhs, write_table
    from workstation.cli.outputs import check_distinct, check_output_file

    check_distinct(args.out, args.curves, args.plot)
    for path in (args.out, args.curves, args.plot):
        check_output_file(path, [args.dose, args.structures, args.series])
    if args.plot is not None and args.plot.suffix.lower() not in PLOT_SUFFIXES:
        raise DelineoError(f"{args.plot.name}: a plot is written as {', '.join(sorted(PLOT_SUFFIXES))}")

    dose = load_dose(args.dose)
    structures, frames, where, slices = _structures(args, dose)
    dose.check_same_frame(frames, where, args.dose.name)
    if args.names:
        wanted = set(args.names)
        missing = wanted - {name for name, _, _ in structures}
        if missing:
            raise DelineoError(f"{args.structures.name}: no structure named {', '.join(sorted(missing))}")
        structures = [s for s in structures if s[0] in wanted]
    factor = args.factor if args.factor == "auto" else int(args.factor)
    table, dvhs, colors = [], [], {}
    for name, geometry, color in structures:
        other = _other_frame(dose, geometry)
        if other:
            why = (
                f"{name}: declared in frame of reference {other}, the dose in "
                f"{dose.frame_of_reference_uid}: another patient coordinate system, no DVH"
            )
            print(f"{why}: a row without numbers")
            table.append(
                DVH(name, np.zeros(0), np.zeros(0), units=dose.unit_label, sampling="none", warnings=[why])
            )
            continue
        try:
            dvh = compute_dvh(
                dose, geometry, name=name, factor=factor, slices=slices, end_cap_mm=args.end_cap
            )
        except ValueError as error:  # settings this structure cannot take (an end cap past a plane)
            raise DelineoError(f"{name}: {error}") from None
        table.append(dvh)
        if dvh.is_empty:
            if not dvh.warnings:  # the CSV row says why it has no numbers
                dvh.warnings.append(f"no volume: {_why_empty(geometry)}")
            print(f"{name}: {dvh.warnings[0]}: a row without numbers")
            continue
        dvhs.append(dvh)
        if color:
            colors[name] = color
    unit = dose.unit_label
    write_table(
        table, args.out, percents=args.percents, cc=args.cc, levels=args.levels, dose_warnings=dose.warnings
    )
    for dvh in dvhs:
        dose = {"Dmean": dvh.mean, "Dmax": dvh.max, "D95%": dvh.d_percent(95)}
        print(
            f"{dvh.name:<20} {format_volume(dvh.volume_cc):>9} cc  "
            + "  ".join(f"{key} {format_dose(value, unit):>7}" for key, value in dose.items())
            + f" {dose_unit(unit)}"
        )
        for text in dvh.warnings:
            print(f"  warning: {text}")
    if args.curves:
        _write_curves(dvhs, args.curves, unit)
    if args.plot:
        plot_dvhs(dvhs, colors=colors).savefig(args.plot)
    print(f"wrote {', '.join(str(p) for p in (args.out, args.curves, args.plot) if p is not None)}")
    return 0


def _structures(
    args, dose
) -> tuple[list[tuple[str, object, tuple[int, int, int] | None]], set[str], str, object]:
    """(name, geometry for compute_dvh, colour) per structure; the frames of reference they are
    stated to be in, and what states it (for an error message); and the image slices they were
    drawn on: the series' slices, or, from an RTSTRUCT alone, estimated from the contour planes
    of its structures in the dose's frame of reference."""
    from planning.contour_slabs import ImageSlices

    if args.series is not None:
        from planning.imageio import load_volume
        from planning.structure_io import load_structures

        volume = load_volume(args.series)
        structure_set = load_structures(args.structures, volume)
        where = f"{args.structures.name} (on the images in {args.series.name})"
        slices = ImageSlices.from_images(volume.grid, volume.slices)
        return [(s.name, s, s.color) for s in structure_set], {volume.frame_of_reference_uid}, where, slices
    from planning.dicom.headers import read_dataset
    from planning.rtstruct.placement import stated_frames
    from planning.rtstruct.rois import parse_rois

    dataset = read_dataset(args.structures)
    if dataset.get("Modality") != "RTSTRUCT":
        raise DelineoError(
            f"{args.structures.name}: without --series the structures must be an RTSTRUCT "
            f"(this is {dataset.get('Modality', 'not DICOM RT')})"
        )
    rois, problems = parse_rois(dataset)
    for problem in problems:
        log.warning("%s: %s", args.structures.name, problem)
    structures = [(r.name, _InFrame(r.contours, r.frame_of_reference), r.color) for r in rois]
    in_frame = [geometry for _, geometry, _ in structures if not _other_frame(dose, geometry)]
    slices = ImageSlices.estimate(in_frame, dose.grid.slice_normal, dose.grid.spacing_xyz[2])
    return structures, stated_frames(dataset), args.structures.name, slices


def _why_empty(geometry) -> str:
    """Why a structure has no volume: an ROI without contours, with open ones only (points or
    lines), or a structure empty on the images."""
    if isinstance(geometry, list):
        return "the ROI has no contours" if not geometry else "no closed contours (points or lines only)"
    return "the structure is empty on these images"


class _InFrame(list):
    """An ROI's planar contours and the frame of reference its StructureSetROISequence item
    declares ('' when none): an RTSTRUCT may hold ROIs of several frames (a registered MR's and
    the CT's), and only those in the dose's frame have a DVH on it."""

    def __init__(self, contours, frame_of_reference: str):
        super().__init__(contours)
        self.frame_of_reference = frame_of_reference


def _other_frame(dose, geometry) -> str:
    """The frame of reference `geometry` is declared in when it is not the dose's ('' when the
    same, or either is not stated)."""
    frame = getattr(geometry, "frame_of_reference", "")
    if frame and dose.frame_of_reference_uid and frame != dose.frame_of_reference_uid:
        return frame
    return ""


def _write_curves(dvhs, path: Path, unit: str) -> None:
    """Long format: structure, dose, the cumulative volume receiving at least it (cc and %), and
    the differential volume receiving from it up to the next dose (cc; blank on the last row).
    Written atomically: a failed write leaves any earlier file whole."""
    from planning.dvh import dose_unit, shown_dose
    from planning.files import write_atomically

    def write(target: Path) -> None:
        with open(target, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            dose_column = f"dose_{dose_unit(unit).replace(' ', '_')}"  # relative doses in % of reference
            writer.writerow(["structure", dose_column, "volume_cc", "volume_%", "bin_volume_cc"])
            for dvh in dvhs:
                differential = [f"{cc:.5f}" for cc in dvh.differential()] + [""]
                doses = shown_dose(dvh.bin_edges, unit)
                for dose, cc, in_bin in zip(doses, dvh.cumulative(), differential, strict=True):
                    writer.writerow(
                        [dvh.name, f"{dose:.4f}", f"{cc:.5f}", f"{100 * cc / dvh.volume_cc:.4f}", in_bin]
                    )

    write_atomically(path, write)
