"""`delineo send | echo | receive | find | retrieve`: DICOM networking with a planning system,
PACS or scanner.

delineo send RS.dcm [MORE ...] --to TPS@10.0.0.5:104 [--ae DELINEO]
delineo echo TPS@10.0.0.5:104
delineo receive --port 11112 --out incoming/ [--ae DELINEO] [--idle-exit SECONDS]
delineo find PACS@10.0.0.9:104 [--patient-id ID] [--name 'DOE^J*'] [--date 20240101-] [--modality CT]
delineo find PACS@10.0.0.9:104 --series STUDY_UID
delineo retrieve PACS@10.0.0.9:104 --study UID [--series UID ...] --out FOLDER [--move --port 11112]
"""

from __future__ import annotations

import time
from pathlib import Path

from planning.dicom import DEFAULT_AE_TITLE
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

    find = subparsers.add_parser("find", help="search a PACS for studies, or list a study's series (C-FIND)")
    find.add_argument("node", help="the PACS: AE_TITLE@host:port")
    find.add_argument("--patient-id", default="", help="patient ID (wildcards * and ? allowed)")
    find.add_argument(
        "--name",
        default="",
        help="patient name: 'DOE^JOHN', 'Doe, John' or 'doe john' (family name first), 'DOE*' "
        "(wildcards allowed)",
    )
    find.add_argument(
        "--date", default="", help="study date YYYYMMDD or range YYYYMMDD-YYYYMMDD (open: 20240101-)"
    )
    find.add_argument(
        "--modality", default="", help="studies holding a series of this modality (CT, MR, RTSTRUCT…)"
    )
    find.add_argument("--accession", default="", help="accession number")
    find.add_argument("--series", metavar="STUDY_UID", help="list the series of this study instead")
    _calling_options(find)
    find.set_defaults(handler=run_find)

    retrieve = subparsers.add_parser(
        "retrieve", help="bring a study or some of its series from a PACS into a folder (C-GET or C-MOVE)"
    )
    retrieve.add_argument("node", help="the PACS: AE_TITLE@host:port")
    retrieve.add_argument("--study", required=True, metavar="UID", help="the study instance UID (see find)")
    retrieve.add_argument(
        "--series", nargs="+", default=[], metavar="UID", help="only these series of the study (default: all)"
    )
    retrieve.add_argument("--out", type=Path, required=True, help="folder the instances are written to")
    retrieve.add_argument(
        "--move",
        action="store_true",
        help="retrieve with C-MOVE to this computer (for a PACS without C-GET; it must know our AE title, "
        "address and --port)",
    )
    retrieve.add_argument(
        "--port", type=int, default=11112, help="with --move: port to receive on (default 11112)"
    )
    _calling_options(retrieve)
    retrieve.set_defaults(handler=run_retrieve)


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


def run_find(args) -> int:
    from planning.dicom.network import Node
    from planning.dicom.query import StudyMatch, count_text, find_series, find_studies, person_name_variants
    from planning.errors import NetworkError

    node = Node.parse(args.node)
    if args.series:
        series = find_series(node, args.series, calling_ae=args.ae, timeout_s=args.timeout)
        if not series:
            raise NetworkError(f"{node} knows no series of study {args.series}")
        rows = [
            [count_text(s.number), s.modality, s.description, count_text(s.instance_count), s.series_uid]
            for s in series
        ]
        print(_table(["#", "Modality", "Description", "Images", "Series UID"], rows))
        return 0
    names = person_name_variants(args.name)
    if names != (args.name.strip(),):
        print(f"searching patient name {' or '.join(names)} (typed {args.name.strip()!r})")
    criteria = {
        "patient ID": args.patient_id,
        "name": " or ".join(n for n in names if n),
        "date": args.date,
        "modality": args.modality,
        "accession": args.accession,
    }
    limit = 500
    studies = find_studies(
        node,
        patient_id=args.patient_id,
        patient_name=args.name,
        study_date=args.date,
        modality=args.modality,
        accession=args.accession,
        calling_ae=args.ae,
        timeout_s=args.timeout,
        limit=limit,
    )
    if not studies:
        asked = ", ".join(f"{key} {value!r}" for key, value in criteria.items() if value) or "an empty search"
        raise NetworkError(f"no study on {node} matches {asked}")
    rows = [[s.display_date or "-", *s.cells()[1:], s.study_uid] for s in studies]
    print(_table([*StudyMatch.HEADERS, "Study UID"], rows))
    more = f" (the first {limit}: narrow the search)" if len(studies) == limit else ""
    patients = len({s.patient for s in studies})
    print(
        f"{len(studies)} study(ies) of {patients} patient(s) on {node}{more}; "
        "list one's series with --series STUDY_UID"
    )
    return 0


def run_retrieve(args) -> int:
    from planning.dicom.network import Node
    from planning.dicom.retrieve import incomplete, other_studies, retrieve

    node = Node.parse(args.node)
    check_output_folder(args.out)
    others = other_studies(args.out, args.study) if args.out.is_dir() else {}
    progress = ProgressBar()
    try:
        result = retrieve(
            node,
            args.out,
            args.study,
            args.series,
            move_port=args.port if args.move else None,
            calling_ae=args.ae,
            timeout_s=args.timeout,
            on_progress=progress,
        )
    finally:
        progress.close()
    print(result.summary())
    missing = incomplete(args.out)
    if missing:
        print(f"warning: {args.out} is incomplete: {missing}; retrieve the whole study again to complete it")
    if others:
        files = sum(others.values())
        print(
            f"warning: {args.out} also holds {files} file(s) of {len(others)} other stud"
            f"{'y' if len(others) == 1 else 'ies'} ({', '.join(sorted(others))}): opening the folder "
            "lists every series; retrieve into an empty folder to keep studies apart"
        )
    print(f"open it with: delineo open {args.out}")
    return 1 if result.failed or result.not_written else 0


def _table(headers: list[str], rows: list[list[str]], widest: int = 32) -> str:
    """Columns padded to their widest cell (text cut at `widest`, the last column whole)."""

    def cut(text: str, last: bool) -> str:
        text = str(text)
        return text if last or len(text) <= widest else text[: widest - 1] + "…"

    cells = [[cut(c, i == len(headers) - 1) for i, c in enumerate(row)] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
