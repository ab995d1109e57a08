"""`delineo compare A B --series DICOM_FOLDER --out report.html`: compare two structure sets."""

from __future__ import annotations

from pathlib import Path

from planning.errors import DelineoError
from workstation.cli.numbers import positive


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare two structure sets (Dice, HD95, surface Dice, APL…) as an HTML/CSV report",
        description="Compare test structures B against reference structures A on the same image. "
        "A and B are RTSTRUCT files (or folders holding one), DICOM-SEG files or label maps "
        "(NIfTI/NRRD/MHA). Structures are paired by name, ignoring case and punctuation; --pair pairs "
        "structures named differently.",
    )
    parser.add_argument("reference", type=Path, help="reference structures (A), e.g. the expert's")
    parser.add_argument("test", type=Path, help="test structures (B), e.g. the auto-contours")
    parser.add_argument(
        "--series", type=Path, help="the image (DICOM folder or image file); optional for label maps"
    )
    parser.add_argument("--out", type=Path, required=True, help="HTML report to write")
    parser.add_argument("--csv", type=Path, help="also write the table as CSV (default: next to --out)")
    parser.add_argument("--tolerance", type=positive, default=2.0, help="surface Dice / APL tolerance, mm")
    parser.add_argument("--names", nargs="+", help="only these structures")
    parser.add_argument(
        "--pair",
        action="append",
        type=_pair,
        default=[],
        metavar="REFERENCE=TEST",
        help='pair two differently named structures, e.g. --pair "Lt Lung=Lung_L" (repeat for more); '
        "other structures are paired by name",
    )
    parser.add_argument(
        "--labels",
        type=Path,
        help='label value → name JSON for both label maps: {"1": "Liver", …}, {"Liver": 1, …} or a list '
        "of names (default: each map's .json beside it)",
    )
    parser.set_defaults(handler=run)


def run(args) -> int:
    from planning.compare_report import compare_sets, summary, write_csv, write_html
    from planning.imageio import is_image_file, load_volume, read_label_map
    from planning.structure_io import label_map_structures, label_names, load_structures, read_names_file
    from workstation.cli.outputs import check_distinct, check_output_file
    from workstation.cli.progress import ProgressBar

    csv_path = args.csv or args.out.with_suffix(".csv")
    check_distinct(args.out, csv_path)
    for path in (args.out, csv_path):
        check_output_file(path, [args.reference, args.test, args.series])
    names = read_names_file(args.labels) if args.labels else None
    if args.series is not None:
        volume = load_volume(args.series)
        reference = load_structures(args.reference, volume, names)
    elif args.reference.is_file() and is_image_file(args.reference):
        volume = read_label_map(args.reference)  # the image and the reference, read once
        reference = label_map_structures(volume, args.reference, volume, names)
    else:
        raise DelineoError("--series is needed: RTSTRUCT and SEG structures are read onto their image series")
    test = load_structures(args.test, volume, names)
    for label_map, path, other in ((reference, args.reference, test), (test, args.test, reference)):
        if path.is_file() and is_image_file(path):
            for note in _declared_but_absent(label_map, path, label_names(path, names).values(), other):
                print(note)
    progress = ProgressBar()
    try:
        result = compare_sets(
            reference,
            test,
            tolerance_mm=args.tolerance,
            names=args.names,
            explicit=args.pair,
            reference_label=args.reference.name,
            test_label=args.test.name,
            on_progress=progress,
        )
    finally:
        progress.close()
    write_html(result, args.out, title=f"{args.test.name} vs {args.reference.name}")
    write_csv(result, csv_path)
    for a, b, m in result.rows:
        label = a if a == b else f"{a} ↔ {b}"
        print(
            f"{label:<28} Dice {m.dice:.3f}  HD95 {m.hd95_mm:6.1f} mm  surface Dice {m.surface_dice:.3f}  "
            f"APL {m.added_path_length_mm:7.0f} mm"
        )
    print(summary(result))
    print(f"wrote {args.out} and {csv_path}")
    return 0


def _pair(text: str) -> tuple[str, str]:
    """--pair's value: 'Lt Lung=Lung_L' → ('Lt Lung', 'Lung_L')."""
    import argparse

    from planning.compare_report import parse_pair

    try:
        return parse_pair(text)
    except DelineoError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _declared_but_absent(label_map, path: Path, declared, other) -> list[str]:
    """A structure of `other` that the label map's names declare but whose label never occurs in
    it was missed, not left unpaired: it is added to `label_map` empty (Dice 0, distances ∞),
    so that a missed organ counts. Returns a note for each."""
    from planning.compare_report import match_names
    from planning.structures import Mask, Structure

    notes = []
    for name in match_names(other.names(), label_map.names()).only_reference:
        pairs = match_names([name], list(declared)).pairs
        if pairs:
            label_map.add(Structure(pairs[0][1], Mask(label_map.grid)))
            notes.append(f"{pairs[0][1]}: named by the labels but absent from {path.name}; compared as empty")
    return notes
