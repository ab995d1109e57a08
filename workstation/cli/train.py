"""`delineo train DATA --run RUN`: train a segmentation model on labelled cases, resumably.

DATA is an OpenKBP split folder (``pt_*.npz``) or a folder of case folders, each holding
``image.nii.gz`` (or ``image.nrrd``, ``image/`` DICOM, ...) and one mask file per delineated
structure named after it (the layout ``delineo segment --out FOLDER`` writes). Running the same
command again continues from RUN's checkpoint; ``--export`` writes a model folder
(manifest.json + weights.safetensors) from the run's best weights. Training runs on a CUDA GPU
when there is one, else Apple MPS, else the CPU (``--device`` chooses).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from workstation.cli.numbers import count, positive_count


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a segmentation model on labelled cases (resumes an interrupted run)",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("data", type=Path, help="OpenKBP split folder or folder of case folders")
    parser.add_argument("--run", type=Path, required=True, help="run folder: config, checkpoints, logs")
    parser.add_argument(
        "--structures",
        nargs="+",
        help="output structure names, in channel order (default: the head-and-neck set)",
    )
    parser.add_argument("--config", type=Path, help="JSON file overriding TrainConfig fields")
    parser.add_argument("--iterations", type=positive_count, help="number of training iterations")
    parser.add_argument("--holdout", type=count, default=12, help="cases held out to pick the weights")
    parser.add_argument(
        "--init", type=Path, help="start from this model folder's weights (fine-tune a built-in model)"
    )
    parser.add_argument("--threads", type=positive_count, help="CPU threads for torch (default 2)")
    parser.add_argument(
        "--device",
        default="auto",
        help="where to train: cpu, cuda, cuda:N or mps (default auto: CUDA, then MPS, then the CPU)",
    )
    parser.add_argument("--export", type=Path, help="after training, write a model folder here")
    parser.add_argument("--name", default="custom_model", help="model name written by --export")
    parser.add_argument("--version", dest="model_version", default="1.0.0", help="model version")
    parser.add_argument("--description", default="", help="one-line description for --export")
    parser.add_argument(
        "--half-weights", action="store_true", help="--export stores the weights as float16 (half the size)"
    )
    parser.add_argument(
        "--omit", nargs="+", default=[], help="trained structures left out of the exported model"
    )
    parser.set_defaults(handler=run)


def run(args) -> int:
    # Idle OpenMP threads sleep instead of spinning: on a shared CPU spinning threads slow training
    # several-fold. Must be set before torch starts its thread pool.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from dataclasses import fields

    from planning.errors import DelineoError
    from segmentation.engine.device import choose_device
    from segmentation.training.data import discover
    from segmentation.training.model_folders import export_model, fine_tuning_config
    from segmentation.training.trainer import TrainConfig, prepare_run, read_settings

    from .outputs import check_output_folder
    from .progress import ProgressBar

    device = choose_device(args.device)  # before reading cases: an unavailable GPU fails at once
    check_output_folder(args.run)
    if args.export:
        check_output_folder(args.export)

    overrides = read_settings(args.config) if args.config else {}
    known = {f.name for f in fields(TrainConfig)}
    if set(overrides) - known:
        raise DelineoError(f"{args.config}: unknown settings {', '.join(sorted(set(overrides) - known))}")
    if args.structures:
        overrides["structures"] = args.structures
    if args.iterations:
        overrides["iterations"] = args.iterations
    if args.threads:
        overrides["threads"] = args.threads
    _check_resumed_settings(args.run, overrides)
    if args.init:  # the model's network, voxel size and structures; the rest as given
        config = fine_tuning_config(overrides, args.init)
    else:
        config = TrainConfig(**overrides)
    trainer = prepare_run(config, args.run, discover(args.data), args.holdout, str(device))
    print(f"training on {device}")
    progress = ProgressBar()
    try:
        trainer.run(on_progress=progress)
    finally:
        progress.close()
    print(f"trained {trainer.iteration} iterations; run folder {args.run}")
    if args.export:
        path = export_model(
            args.run,
            args.export,
            args.name,
            args.model_version,
            args.description,
            tuple(args.omit),
            args.half_weights,
        )
        print(f"model written to {path.parent}")
    return 0


def _check_resumed_settings(run: Path, overrides: dict) -> None:
    """A run resumes with the settings it was started with (its config.json): refuse other ones
    given now, which would otherwise be ignored without a word. Only --threads, which changes
    nothing that is learnt, may differ: it is saved for this and later sessions."""
    from planning.errors import DelineoError
    from segmentation.training.trainer import read_settings

    saved_path = run / "config.json"
    if not saved_path.exists():
        return
    saved = read_settings(saved_path)
    differing = [
        f"{key} {json.dumps(saved.get(key))} (asked: {json.dumps(value)})"
        for key, value in overrides.items()
        if key != "threads" and json.loads(json.dumps(value)) != saved.get(key)
    ]
    if differing:
        raise DelineoError(
            f"{run} resumes with the settings it was started with: {'; '.join(differing)}. "
            "Start a new run (--init can take this one's exported weights) to change them"
        )
    if "threads" in overrides and overrides["threads"] != saved.get("threads"):
        saved["threads"] = overrides["threads"]
        saved_path.write_text(json.dumps(saved, indent=2) + "\n")
