"""The `delineo` command line.

Each sub-command lives in its own module exposing ``register(subparsers)``, which adds its parser
and sets ``handler`` (a function taking the parsed arguments and returning an exit code).
Heavy imports (torch, Qt, VTK) happen inside handlers, so ``delineo --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from importlib.metadata import version

from planning.errors import Cancelled, DelineoError
from workstation.cli import terminal

#: Modules under workstation.cli that provide sub-commands, in the order --help lists them.
COMMAND_MODULES = (
    "open",
    "info",
    "convert",
    "compare",
    "dvh",
    "rtstruct",
    "train",
    "segment",
    "models",
    "mesh",
    "network",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="delineo",
        description="Delineo: contouring, auto-segmentation, 3D planning and RTSTRUCT export. "
        "Without a command, opens the workstation window.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug messages")
    parser.add_argument("--version", action="version", version=f"delineo {version('delineo')}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"workstation.cli.{name}").register(subparsers)
    return parser


def open_workstation(args) -> int:
    """No sub-command: open the main window (the recent case, or the built-in sample patient)."""
    from workstation.app.launch import run

    return run([])


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    terminal.install(args.verbose)
    handler = getattr(args, "handler", None)
    if handler is None:
        handler = open_workstation
    try:
        return int(handler(args) or 0)
    except Cancelled as error:
        print(f"delineo: cancelled: {error}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("delineo: interrupted", file=sys.stderr)
        return 130
    except DelineoError as error:
        print(f"delineo: error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:  # a value the domain refuses (its message says which and why)
        logging.getLogger(__name__).debug("refused value", exc_info=True)
        print(f"delineo: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a file the checks up front could not foresee (disk full, removed…)
        logging.getLogger(__name__).debug("I/O error", exc_info=True)
        where = f"{error.filename}: " if error.filename else ""
        print(f"delineo: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
