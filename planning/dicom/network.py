"""DICOM networking with pynetdicom: send files to a node (C-STORE), check a node answers
(C-ECHO), and receive what a scanner, PACS or planning system sends (a storage SCP).

A node is written ``AE_TITLE@host:port`` (the called AE title, its address and port), as in a
planning system's DICOM export settings. Every failure names the node and what went wrong:
not reachable, association rejected (and why), or a file refused with its C-STORE status.
The association helpers here also serve the PACS search and retrieve (`planning.dicom.query`,
`planning.dicom.retrieve`).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from planning.dicom import DEFAULT_AE_TITLE
from planning.dicom.scan import list_files
from planning.errors import Cancelled, NetworkError
from planning.files import write_atomically

# pynetdicom logs every refused association and timeout itself; the errors raised here say it
# once, naming the node.
logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)

VERIFICATION = "1.2.840.10008.1.1"
#: Presentation contexts one association may propose (PS3.8).
_MAX_CONTEXTS = 128
_NODE = re.compile(r"^(?P<ae>[^@]{1,16})@(?P<host>[^:@]+):(?P<port>\d{1,5})$")
#: C-STORE statuses that store the object with a warning (PS3.4 B.2.3)
_STORED_WITH_WARNING = {0x0001, 0xB000, 0xB006, 0xB007}
#: Pending statuses of a C-FIND, C-GET or C-MOVE: more responses follow
_PENDING = (0xFF00, 0xFF01)
#: The lossless compressions Delineo decodes (never a lossy one: a PACS would not degrade images for us)
LOSSLESS_COMPRESSED = [JPEGLosslessSV1, JPEGLossless, JPEGLSLossless, JPEG2000Lossless, RLELossless]
_UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
#: What the Receiver accepts: uncompressed, then those compressions. A PACS that keeps its images
#: compressed and does not decompress them proposes only its compression: refused, nothing arrives.
RECEIVABLE_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    *LOSSLESS_COMPRESSED,
]


@dataclass(frozen=True)
class Node:
    """A DICOM application entity: its AE title, host and port."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Node:
        """``AE_TITLE@host:port`` (AE title 1–16 characters, port 1–65535)."""
        match = _NODE.match(text.strip())
        if match is None or not 0 < int(match["port"]) < 65536:
            raise NetworkError(
                f"{text!r} is not a DICOM node; write it AE_TITLE@host:port, e.g. TPS@10.0.0.5:104"
            )
        return cls(match["ae"].strip(), match["host"], int(match["port"]))

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass
class SendResult:
    """What a send did: the files stored, those stored with a warning, those refused (why), and
    the files found in folders that are not DICOM (left alone)."""

    node: Node
    sent: list[Path] = field(default_factory=list)
    warnings: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def echo(node: Node, *, calling_ae: str = DEFAULT_AE_TITLE, timeout_s: float = 10.0) -> float:
    """Verify that `node` answers (C-ECHO); returns the round trip in seconds."""
    started = time.perf_counter()
    association = _associate(node, [(VERIFICATION, None)], calling_ae, timeout_s)
    try:
        status = association.send_c_echo()
    finally:
        association.release()
    if not status or status.Status != 0x0000:
        raise NetworkError(f"{node} did not answer the verification (C-ECHO){_status_text(status)}")
    return time.perf_counter() - started


def send(
    paths: Iterable[str | os.PathLike],
    node: Node,
    *,
    calling_ae: str = DEFAULT_AE_TITLE,
    timeout_s: float = 30.0,
    on_progress: Callable[[str, int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> SendResult:
    """Send DICOM files (folders are searched) to `node` with C-STORE.

    Named files that are not DICOM, and objects the node refuses, are listed in the result's
    `failed` with the reason (files in folders that are not DICOM in `skipped`); the rest are
    sent. Raises NetworkError when the node cannot be reached or rejects the association, and
    Cancelled when `cancel` is set (between files).
    """
    result = SendResult(node)
    files: list[tuple[Path, str, str]] = []  # path, SOP class, transfer syntax
    for path, named in _files(paths):
        try:
            header = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
            files.append((path, str(header.SOPClassUID), str(header.file_meta.TransferSyntaxUID)))
        except (InvalidDicomError, AttributeError, OSError):
            if named:
                result.failed.append((path, "not a DICOM file (or one without a SOP class)"))
            else:
                result.skipped.append(path)
    done = 0
    for batch in _batches(files):
        syntaxes: dict[str, set[str]] = {}
        for _, sop_class, syntax in batch:
            syntaxes.setdefault(sop_class, set()).add(syntax)
        contexts = [
            (sop_class, list(dict.fromkeys([*sorted(found), ExplicitVRLittleEndian, ImplicitVRLittleEndian])))
            for sop_class, found in syntaxes.items()
        ]
        association = _associate(node, contexts, calling_ae, timeout_s)
        try:
            for path, _, _ in batch:
                if cancel is not None and cancel.is_set():
                    raise Cancelled(f"sending to {node} cancelled after {len(result.sent)} files")
                if on_progress is not None:
                    on_progress(f"Sending to {node}", done, len(files))
                _send_one(association, path, result)
                done += 1
        finally:
            association.release()
    if on_progress is not None:
        on_progress(f"Sending to {node}", done, len(files))
    return result


class Receiver:
    """A storage SCP: accepts C-ECHO and C-STORE of any storage object and writes each one to
    `folder` as ``<SOPInstanceUID>.dcm`` (the data set as received, with file meta information).
    Use as a context manager, or call `start` and `stop`. `on_received(path)` is called (in a
    network thread) for each file, `on_not_written(error)` for each that could not be written (the
    sender is answered "out of resources")."""

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        ae_title: str = DEFAULT_AE_TITLE,
        port: int = 11112,
        host: str = "0.0.0.0",
        on_received: Callable[[Path], None] | None = None,
        on_not_written: Callable[[Exception], None] | None = None,
    ):
        self.folder = Path(folder)
        self.ae_title, self.host, self.requested_port = ae_title, host, port
        self.on_received = on_received
        self.on_not_written = on_not_written
        self.received: list[Path] = []
        self._server = None

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose when asked for port 0)."""
        return self._server.server_address[1] if self._server is not None else self.requested_port

    def start(self) -> Receiver:
        from pynetdicom import AE, AllStoragePresentationContexts, evt

        if not self.folder.is_dir():
            raise NetworkError(f"{self.folder}: no such folder to receive DICOM files into")
        ae = AE(ae_title=self.ae_title)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, RECEIVABLE_SYNTAXES)
        ae.add_supported_context(VERIFICATION)
        try:
            self._server = ae.start_server(
                (self.host, self.requested_port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._store)]
            )
        except OSError as error:
            raise NetworkError(
                f"cannot listen on port {self.requested_port} ({error.strerror or error}): another program "
                "may use it, or ports below 1024 need administrator rights"
            ) from error
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _store(self, event) -> int:
        try:
            path = write_instance(self.folder, event)
        except Exception as error:  # noqa: BLE001 — any failure is answered to the sender as "out of resources"
            logging.getLogger(__name__).exception("could not store an instance in %s", self.folder)
            if self.on_not_written is not None:
                self.on_not_written(error)
            return 0xA700
        self.received.append(path)
        if self.on_received is not None:
            self.on_received(path)
        return 0x0000


def write_instance(folder: Path, event) -> Path:
    """Write the instance of a C-STORE request `event` to `folder` as ``<SOPInstanceUID>.dcm``
    (atomically: the data set as received, with file meta information); returns the path."""
    uid = re.sub(r"[^0-9.]", "_", str(event.request.AffectedSOPInstanceUID)) or "unnamed"
    path = folder / f"{uid}.dcm"
    data = event.encoded_dataset()
    write_atomically(path, lambda target: target.write_bytes(data))
    return path


def _files(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, bool]]:
    """(file, whether it was named itself rather than found in a folder), each file once."""
    files: dict[Path, tuple[Path, bool]] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise NetworkError(f"{path}: no such file or folder to send")
        if path.is_file():  # named: it stands, even if a folder given too holds it
            files[path.resolve()] = (path, True)
            continue
        for found in list_files(path):
            files.setdefault(found.resolve(), (found, False))
    return list(files.values())


def _batches(files: list[tuple[Path, str, str]]) -> list[list[tuple[Path, str, str]]]:
    """Files grouped so that each association proposes at most 128 contexts (one per SOP class)."""
    batches, classes = [], []
    for item in sorted(files, key=lambda f: f[1]):
        if not batches or (item[1] not in classes[-1] and len(classes[-1]) == _MAX_CONTEXTS):
            batches.append([])
            classes.append(set())
        batches[-1].append(item)
        classes[-1].add(item[1])
    return batches


def _associate(node: Node, contexts, calling_ae: str, timeout_s: float, refused: str = "", **options):
    """An established association with `node` proposing (SOP class, [transfer syntaxes]) (None:
    explicit then implicit VR little endian); `refused` says what the node lacks when it accepts
    none (the object types by default); `options` (``ext_neg``, ``evt_handlers``) go to
    pynetdicom's ``associate``."""
    from pynetdicom import AE

    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s
    for sop_class, syntaxes in contexts:
        ae.add_requested_context(sop_class, list(syntaxes or _UNCOMPRESSED))
    association = ae.associate(node.host, node.port, ae_title=node.ae_title, **options)
    if association.is_established:
        return association
    answer = getattr(association.acceptor, "primitive", None)  # the node's A-ASSOCIATE response
    if association.is_rejected:
        reason = f": {answer.reason_str}" if answer is not None else ""
        raise NetworkError(f"{node} rejected the association{reason} (we called as {calling_ae!r})")
    if answer is not None and answer.result == 0x00:
        if refused:
            raise NetworkError(f"{node} {refused}")
        names = [_sop_class_name(sop_class) for sop_class, _ in contexts]
        classes = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        raise NetworkError(f"{node} accepts none of these object types: {classes}")
    raise NetworkError(
        f"{node} cannot be reached (no answer within {timeout_s:g} s, connection refused, or aborted): "
        "check the address, the port and that the node is running"
    )


def _sop_class_name(uid: str) -> str:
    from pydicom.uid import UID

    return UID(uid).name or uid


def _send_one(association, path: Path, result: SendResult) -> None:
    try:
        status = association.send_c_store(path)
    except (ValueError, RuntimeError) as error:  # no accepted context for this object, say
        status = _send_decompressed(association, path)  # a node that takes no compression
        if status is None:
            result.failed.append((path, str(error)))
            return
    code = int(status.Status) if status and "Status" in status else None
    if code == 0x0000:
        result.sent.append(path)
    elif code in _STORED_WITH_WARNING:
        result.sent.append(path)
        result.warnings.append((path, f"stored with warning{_status_text(status)}"))
    else:
        result.failed.append((path, f"refused{_status_text(status)}"))


def _send_decompressed(association, path: Path):
    """The C-STORE status of `path` sent decompressed, for a node that accepted its object type
    uncompressed only (a planning system taking no JPEG); None when that cannot be done."""
    try:
        dataset = dcmread(path)
        if not dataset.file_meta.TransferSyntaxUID.is_compressed:
            return None
        dataset.decompress(generate_instance_uid=False)  # the same image: contours refer to its UID
        return association.send_c_store(dataset)
    except Exception:  # noqa: BLE001 — not decodable here, or still no context: the first error says why
        logging.getLogger(__name__).debug("%s not sent decompressed", path, exc_info=True)
        return None


def _status_text(status) -> str:
    if not status or "Status" not in status:
        return " (no response: timed out or aborted)"
    comment = f": {status.ErrorComment}" if "ErrorComment" in status else ""
    return f" (status 0x{int(status.Status):04X}{comment})"


# -- shared by the search (planning.dicom.query) and the retrieve (planning.dicom.retrieve) -------


def _require(association, model: str, node: Node, what: str) -> None:
    accepted = {str(context.abstract_syntax) for context in association.accepted_contexts}
    if model not in accepted:
        association.release()
        raise NetworkError(f"{node} does not offer {what}")


_MEANINGS = {
    0xA700: "it is out of resources",
    0xA701: "it is out of resources: it cannot count the matches",
    0xA702: "it is out of resources: it cannot send the instances",
    0xA900: "the request does not fit what it expects (identifier does not match the SOP class)",
    0x0122: "it does not support this request (SOP class not supported)",
    0x0124: "we are not authorised to retrieve",
}


def _meaning(code: int, destination: str) -> str:
    if code == 0xA801:
        return (
            f"it does not know the destination {destination!r}: add this AE title, with this computer's "
            "address and port, to the PACS's DICOM nodes (or retrieve with C-GET)"
        )
    if code in _MEANINGS:
        return _MEANINGS[code]
    if 0xC000 <= code <= 0xCFFF:
        return "it could not process the request"
    return "failed"


def _count(dataset: Dataset, keyword: str) -> int | None:
    value = dataset.get(keyword)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
