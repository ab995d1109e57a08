"""`delineo send | echo | receive`: DICOM networking with a planning system, PACS or scanner.

delineo send RS.dcm [MORE ...] --to TPS@10.0.0.5:104 [--ae DELINEO]
delineo echo TPS@10.0.0.5:104
delineo receive --port 11112 --out incoming/ [--ae DELINEO] [--idle-exit SECONDS]
"""

from __future__ import annotations

import time
from pathlib import Path

from planning.dicom.network import DEFAULT_AE_TITLE
from workstation.cli.numbers import positive
from workstation.cli.outputs import check_output_folder
from workstation.cli.progress import ProgressBar


def register(subparsers) -> None:
    send = subparsers.add_parser("send", help="send DICOM files or folders to a DICOM node (C-STORE)")
    send.add_argument("paths", type=Path, nargs="+", help="DICOM files or folders (searched)")
    send.add_argument("--to", required=True, help="the node: AE_TITLE@host:port")
    _calling_options(send)
    send.set_defaults(handler=run_send)

    echo = subparsers.add_parser("echo", help="check that a DICOM node answers (C-ECHO)")
    echo.add_argument("node", help="the node: AE_TITLE@host:port")
    _calling_options(echo)
    echo.set_defaults(handler=run_echo)

    receive = subparsers.add_parser("receive", help="receive DICOM files sent to this computer (storage SCP)")
    receive.add_argument("--out", type=Path, required=True, help="folder the received files are written to")
    receive.add_argument("--port", type=int, default=11112, help="port to listen on (default 11112)")
    receive.add_argument(
        "--ae", default=DEFAULT_AE_TITLE, help=f"this computer's AE title (default {DEFAULT_AE_TITLE})"
    )
    receive.add_argument(
        "--idle-exit",
        type=positive,
        metavar="SECONDS",
        help="stop after this long without a file (default: Ctrl+C)",
    )
    receive.set_defaults(handler=run_receive)


def _calling_options(parser) -> None:
    parser.add_argument(
        "--ae", default=DEFAULT_AE_TITLE, help=f"our (calling) AE title (default {DEFAULT_AE_TITLE})"
    )
    parser.add_argument(
        "--timeout", type=positive, default=30.0, help="network timeout in seconds (default 30)"
    )


def run_send(args) -> int:
    from planning.dicom.network import Node, send

    node = Node.parse(args.to)
    progress = ProgressBar()
    try:
        result = send(args.paths, node, calling_ae=args.ae, timeout_s=args.timeout, on_progress=progress)
    finally:
        progress.close()
    for path, why in result.warnings:
        print(f"warning: {path.name}: {why}")
    for path, why in result.failed:
        print(f"failed: {path}: {why}")
    skipped = f"; {len(result.skipped)} non-DICOM file(s) in the folders left alone" if result.skipped else ""
    total = len(result.sent) + len(result.failed)
    print(f"sent {len(result.sent)} of {total} file(s) to {node}{skipped}")
    return 1 if result.failed else 0


def run_echo(args) -> int:
    from planning.dicom.network import Node, echo

    node = Node.parse(args.node)
    seconds = echo(node, calling_ae=args.ae, timeout_s=args.timeout)
    print(f"{node} answered in {seconds * 1000:.0f} ms")
    return 0


def run_receive(args) -> int:
    from planning.dicom.network import Receiver

    check_output_folder(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    last = [time.monotonic()]  # when the last file arrived

    def received(path: Path) -> None:
        last[0] = time.monotonic()
        print(f"received {path.name}", flush=True)

    with Receiver(args.out, ae_title=args.ae, port=args.port, on_received=received) as receiver:
        print(
            f"listening as {args.ae} on port {receiver.port}; files go to {args.out} (Ctrl+C stops)",
            flush=True,
        )
        try:
            while args.idle_exit is None or time.monotonic() - last[0] < args.idle_exit:
                time.sleep(0.2)
        except KeyboardInterrupt:  # the usual way to stop listening
            pass
    print(f"received {len(receiver.received)} file(s)")
    return 0
