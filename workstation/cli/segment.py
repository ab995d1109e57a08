"""`delineo segment INPUT --model NAME --out OUT`: auto-segmentation from the command line.

OUT is chosen by its form: ``*.dcm`` an RTSTRUCT referencing the input series (DICOM input),
``*.nii.gz`` / ``*.nrrd`` / ``*.mha`` one label map (overlaps lost, with a warning naming each
structure that lost voxels), anything else a folder with one mask file per structure named after
it (structures may overlap). A file the run would write that is already there (an earlier run's,
or the user's own contours) is refused before anything runs, unless ``--overwrite``. Mask files
in the folder that this run does not write (an earlier run's other structures) are kept and
named in a warning. A structure not found in the image (often outside the field of view) is
named as such, and gets no mask file and no ROI in an RTSTRUCT: an empty one would read, for
training or in a planning system, as delineated and absent (with ``--overwrite``, an earlier
mask of it is removed for that reason, and named).
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from planning.errors import DelineoError
from planning.files import file_stem_for
from workstation.cli.numbers import overlap_fraction
from workstation.cli.outputs import check_output_file, check_output_folder
from workstation.cli.progress import ProgressBar
from workstation.cli.terminal import warn


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "segment", help="auto-segment a CT/MR with a model and save RTSTRUCT, label map or masks"
    )
    parser.add_argument("input", type=Path, help="DICOM folder or file, or an image file")
    parser.add_argument("--model", required=True, help="model name (see `delineo models`) or model folder")
    parser.add_argument("--structures", nargs="+", metavar="NAME", help="only these structures")
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda", "mps"],
        default="auto",
        help="where to run (default: CUDA, else MPS, else CPU)",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="RTSTRUCT (.dcm), label map (.nii.gz/.nrrd/.mha) or a folder of masks",
    )
    parser.add_argument("--series", help="SeriesInstanceUID when the input folder holds several")
    parser.add_argument(
        "--folds",
        nargs="+",
        type=_fold,
        metavar="FOLD",
        help="nnU-Net models: folds to ensemble, numbers (0 1 2 …) or 'all' for fold_all "
        "(default: every numbered fold, as nnU-Net)",
    )
    parser.add_argument(
        "--mirroring",
        action=argparse.BooleanOptionalAction,
        help="network models: test-time mirroring, predictions on the image and its mirror images "
        "averaged (2-8x slower). Default: the model's (nnU-Net: off; Delineo models: on along the "
        "axes they were trained mirrored along, if any)",
    )
    parser.add_argument(
        "--overlap",
        type=overlap_fraction,
        help="network models: fraction of a tile shared with its neighbours (default: the model's)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the RTSTRUCT, label map or mask files of these structures if already there",
    )
    parser.add_argument(
        "--mask-format",
        default=".nii.gz",
        choices=[".nii.gz", ".nrrd", ".mha"],
        help="file type of the per-structure masks (folder output)",
    )
    parser.set_defaults(handler=run)


def _fold(text: str) -> int | str:
    """An nnU-Net fold: a fold number (fold_N) or "all" (fold_all)."""
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a fold number (0, 1, 2, …) or 'all', got {text!r}")
    return value


def run(args) -> int:
    from planning.dicom.references import check_references
    from planning.imageio import load_volume
    from segmentation.engine.inputs import wanted_names
    from segmentation.registry import find_model, load_model, model_options

    kind = _output_kind(args.out)
    if kind == "masks":
        check_output_folder(args.out)
    else:
        check_output_file(args.out, [args.input])
    entry = find_model(args.model)
    if args.structures:  # checked against the model's list before minutes of loading
        wanted_names(list(entry.structures), args.structures, entry.name)
    options = model_options(entry, folds=args.folds, mirroring=args.mirroring)
    if args.overlap is not None and entry.kind == "rules":
        raise DelineoError(f"--overlap applies to network models only; {entry.name} has no tiles")
    wanted = args.structures or entry.default_structures  # targets guessed from the image: if named
    _refuse_existing(args, kind, wanted)
    progress = ProgressBar()
    cancel = threading.Event()
    started = time.perf_counter()
    try:
        volume = load_volume(args.input, series=args.series, on_progress=progress)
        if kind == "rtstruct":  # checked before the run, not after it
            if not volume.slices:
                raise DelineoError(
                    f"{args.out.name}: an RTSTRUCT needs DICOM images as input; save a label map or masks"
                )
            check_references(volume)
        model = load_model(entry.path and str(entry.path) or entry.name, **options)
        structures = model.predict(
            volume,
            structures=wanted,
            device=None if args.device == "auto" else args.device,
            **({} if args.overlap is None else {"overlap": args.overlap}),
            on_progress=progress,
            cancel=cancel,
        )
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        progress.close()
    if entry.on_request and not args.structures:
        print(
            f"not drawn unless named with --structures: {', '.join(entry.on_request)} (guessed from the "
            "image alone, not this patient's disease; see the model card)"
        )
    run_info = getattr(model, "last_run", None)
    for warning in [*volume.warnings, *(run_info.warnings if run_info else [])]:
        warn(warning)
    warnings, lost = save(structures, volume, args.out, kind, args.mask_format, inputs=[args.input])
    for warning in warnings:
        warn(warning)
    seconds = time.perf_counter() - started
    device = f" on {run_info.device}" if run_info and run_info.device else ""
    print(f"{model.name}: {len(structures)} structure(s){device} in {seconds:.1f} s → {args.out}")
    losses = {loss.name: loss for loss in lost}  # what a label map holds of overlapping structures
    for structure in structures:
        line = f"  {structure.name:<24} {structure.volume_cc:10.1f} cc"
        if structure.name in losses:
            line += f"  ({losses[structure.name].kept_cc:.1f} cc in {args.out.name}: overlaps lost)"
        print(line)
    missing = [s.name for s in structures if s.mask.is_empty]
    if missing:  # often outside the field of view
        written = {"masks": " (no mask file written for them)", "rtstruct": " (no ROI written for them)"}
        written = written.get(kind, "")
        print(f"not found in this image: {', '.join(missing)}{written}")
    return 0


#: How the label map's overlap warning tells the user to keep overlaps.
_KEEP_OVERLAPS = "a mask folder (--out FOLDER) or an RTSTRUCT (--out NAME.dcm) keeps overlaps"


def save(
    structures, volume, out: Path, kind: str, mask_format: str = ".nii.gz", inputs=()
) -> tuple[list[str], list]:
    """Write the structures to `out` as `kind` (`_output_kind`; see the module docstring);
    returns the warnings and, for a label map, what overlaps cost each structure
    (`LabelMapLoss`). `inputs`: the command's inputs, not named among a mask folder's other
    files."""
    from planning.imageio import save_volume
    from planning.structure_io import label_map_warning, save_label_map, save_structures

    if kind == "rtstruct":
        found = [s for s in structures if not s.mask.is_empty]  # an empty ROI reads as "absent"
        if not found:
            raise DelineoError(f"{out}: not written: the model found none of its structures in this image")
        save_structures(_subset(structures, found), volume, out, kind="rtstruct")  # logs its warnings
        return [], []
    if kind == "labelmap":
        losses = save_label_map(structures, volume, out)
        warning = label_map_warning(losses, _KEEP_OVERLAPS)
        return [warning] if warning else [], losses
    out.mkdir(parents=True, exist_ok=True)
    written, warnings = [], []
    for structure in structures:
        path = out / f"{file_stem_for(structure.name)}{mask_format}"
        if structure.mask.is_empty:  # not found: an empty file would read as "delineated: absent"
            if path.exists():  # an earlier run's mask of it is not this image's: as if overwritten
                path.unlink()
                warnings.append(f"{path}: an earlier mask of {structure.name}, not found now, was removed")
            continue
        mask = volume.with_array(structure.mask.full().astype("uint8"), modality="SEG")
        written.append(path)
        save_volume(mask, path)
    others = _other_masks(out, written, inputs)
    if not others:
        return warnings, []
    listing = ", ".join(p.name for p in others[:20]) + (
        f" and {len(others) - 20} more" if len(others) > 20 else ""
    )
    warning = (
        f"{out}: {len(others)} mask file(s) there were not written by this run (an earlier run's?) and are "
        f"kept: {listing}; they are not this run's structures (write into an empty folder to keep runs apart)"
    )
    return [*warnings, warning], []


def _refuse_existing(args, kind: str, names: list[str]) -> None:
    """Before any work: refuse to replace a file the run writes (the RTSTRUCT or label map, or
    the masks of the structures `names`) unless --overwrite; the user's own contours may be
    there."""
    if kind == "masks":
        paths = [args.out / f"{file_stem_for(name)}{args.mask_format}" for name in names]
    else:
        paths = [args.out]
    existing = [path for path in paths if path.exists()]
    if existing and not args.overwrite:
        shown = ", ".join(path.name for path in existing[:10]) + (" …" if len(existing) > 10 else "")
        where = f" in {args.out}" if kind == "masks" else ""
        raise DelineoError(f"{shown}{where}: already there, not replaced (give --overwrite to replace)")


def _subset(structures, keep):
    """A structure set of `structures`' grid and frame of reference holding only `keep`."""
    from planning.structures import StructureSet

    subset = StructureSet(structures.grid, structures.frame_of_reference_uid, label=structures.label)
    subset.warnings = list(structures.warnings)
    for structure in keep:
        subset.add(structure, rename=False)
    return subset


def _other_masks(folder: Path, written, inputs) -> list[Path]:
    """Image files in `folder` other than those `written` and the `inputs` (hidden ones aside)."""
    from planning.imageio import is_image_file

    mine = {p.name for p in written}
    given = {p.resolve() for p in inputs if p is not None and p.exists()}
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and is_image_file(p)
        and p.name not in mine
        and p.resolve() not in given
    )


def _output_kind(out: Path) -> str:
    """What OUT is, from its form: "rtstruct", "labelmap", or "masks" (a folder). A name with
    the ending of another kind of file (out.txt, out.png, out.zip) is refused: it would have
    become a folder."""
    import mimetypes

    from planning.imageio import IMAGE_SUFFIXES, is_image_file

    if out.name.lower().endswith(".dcm"):
        return "rtstruct"
    if is_image_file(out):
        return "labelmap"
    if not out.is_dir() and any(mimetypes.guess_type(out.name)):
        raise DelineoError(
            f"--out {out.name}: not an output this command writes: an RTSTRUCT (.dcm), a label map "
            f"({', '.join(IMAGE_SUFFIXES)}) or a folder (a name without a file ending)"
        )
    return "masks"
