"""Retrieve from a PACS with pynetdicom: bring a study (or some of its series) to this computer
with C-GET (no listening port needed) or, for a PACS that only moves, with C-MOVE to a storage
SCP started here for the purpose. Finding what to retrieve is `planning.dicom.query`.

A retrieve writes each instance to a folder as ``<SOPInstanceUID>.dcm`` (atomically), reports
its progress from the PACS's pending responses (instances done / total), and stops on `cancel`
(C-CANCEL; the association is aborted if the PACS does not stop). A folder holding less than
was asked for is marked (`incomplete`). Every failure is a NetworkError (or Cancelled) that
names the node and says what happened: not reachable, association rejected (why), nothing
matching, the retrieve refused (the status in words), or instances that failed (how many).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from planning.dicom.network import (
    _MAX_CONTEXTS,
    _PENDING,
    DEFAULT_AE_TITLE,
    LOSSLESS_COMPRESSED,
    Node,
    Receiver,
    _associate,
    _count,
    _meaning,
    _require,
    _status_text,
    write_instance,
)
from planning.errors import Cancelled, DelineoError, FormatError, NetworkError

log = logging.getLogger(__name__)

STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
#: A retrieve whose sub-operations ended, one or more of them failed or with a warning (PS3.4 C.4.3)
_SOME_FAILED = 0xB000
_NO_GET = "C-GET (Study Root): retrieve with C-MOVE instead"
#: A file in a retrieve's folder (hidden: not an image) saying why its instances are incomplete
INCOMPLETE = ".incomplete"
_UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian]
#: Objects a planning workstation retrieves; offered first, with the compressed syntaxes.
_PLANNING_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT",
    "1.2.840.10008.5.1.4.1.1.4": "MR",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR",
    "1.2.840.10008.5.1.4.1.1.128": "PET",
    "1.2.840.10008.5.1.4.1.1.130": "Enhanced PET",
    "1.2.840.10008.5.1.4.1.1.481.1": "RT Image",
    "1.2.840.10008.5.1.4.1.1.481.2": "RT Dose",
    "1.2.840.10008.5.1.4.1.1.481.3": "RT Structure Set",
    "1.2.840.10008.5.1.4.1.1.481.5": "RT Plan",
    "1.2.840.10008.5.1.4.1.1.481.8": "RT Ion Plan",
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation",
    "1.2.840.10008.5.1.4.1.1.66.1": "Spatial Registration",
    "1.2.840.10008.5.1.4.1.1.66.3": "Deformable Spatial Registration",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture",
}
#: Images a PACS may keep compressed: each lossless compression Delineo decodes is proposed in a
#: context of its own, as the PACS accepts one transfer syntax per context and can send only in an
#: accepted one (one that does not decompress would fail them all if offered uncompressed only).
_COMPRESSIBLE_CLASSES = [
    "1.2.840.10008.5.1.4.1.1.2",
    "1.2.840.10008.5.1.4.1.1.4",
    "1.2.840.10008.5.1.4.1.1.128",
    "1.2.840.10008.5.1.4.1.1.2.1",
    "1.2.840.10008.5.1.4.1.1.4.1",
    "1.2.840.10008.5.1.4.1.1.481.1",
    "1.2.840.10008.5.1.4.1.1.7",
]


@dataclass
class RetrieveResult:
    """What a retrieve brought: the files written, and the instances the PACS reported failed or
    sent with a warning, and those received that could not be written here (why)."""

    node: Node
    folder: Path
    received: list[Path] = field(default_factory=list)
    completed: int = 0  # instances the PACS says it sent
    failed: int = 0
    warnings: int = 0
    not_written: list[str] = field(default_factory=list)

    @property
    def failed_at_pacs(self) -> int:
        """Instances the PACS could not send (those we refused, not written, it counts failed too)."""
        return max(0, self.failed - len(self.not_written))

    def summary(self) -> str:
        """One line in words: how many instances arrived, and what went wrong."""
        text = f"retrieved {len(self.received)} instance(s) from {self.node} into {self.folder}"
        if self.failed_at_pacs:
            text += f"; {self.failed_at_pacs} instance(s) failed at the PACS (it could not send them)"
        if self.not_written:
            text += f"; {len(self.not_written)} received but not written here: {self.not_written[0]}"
        if self.warnings:
            text += f"; {self.warnings} sent with a warning"
        return text


def retrieve(
    node: Node,
    folder: str | os.PathLike,
    study_uid: str,
    series_uids: Iterable[str] = (),
    *,
    move_port: int | None = None,
    calling_ae: str = DEFAULT_AE_TITLE,
    timeout_s: float = 30.0,
    on_progress: Callable[[str, int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> RetrieveResult:
    """Bring study `study_uid` (or only its series `series_uids`) from `node` into `folder`, one
    ``<SOPInstanceUID>.dcm`` per instance.

    By default with C-GET, over the association we open. With `move_port`, with C-MOVE: a
    storage SCP listens on that port as `calling_ae` while the PACS sends there (the PACS must
    know `calling_ae` with this computer's address and that port).

    Instances the PACS reports failed are counted in the result (NetworkError when none arrived).
    Raises NetworkError (not reachable, rejected, nothing matches, retrieve refused, port in use)
    and Cancelled (the files received so far stay in `folder`).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FormatError(f"{folder}: cannot be made to retrieve into ({error.strerror or error})") from error
    series_uids = [uid.strip() for uid in series_uids if uid.strip()]
    requests = _requests(study_uid.strip(), series_uids)
    result = RetrieveResult(node, folder)
    retrieval = _Retrieval(node, result, calling_ae, timeout_s, on_progress, cancel)
    try:
        try:
            if move_port is None:
                _get(retrieval, requests)
            else:
                _move(retrieval, requests, move_port)
        except _Refused as error:
            raise _why_refused(error, retrieval, study_uid.strip(), series_uids, move_port) from error
    except DelineoError as error:
        if result.received:  # what came stays, marked: opened later, it would pass for the whole
            what = _what(study_uid, series_uids)
            _mark_incomplete(folder, series_uids, f"the retrieve of {what} ended: {error}")
        raise
    result.received = list(dict.fromkeys(result.received))
    if result.failed_at_pacs:
        _mark_incomplete(folder, series_uids, f"{result.failed_at_pacs} instance(s) failed at {node}")
    else:  # what an earlier retrieve of these series (or of the whole study) left out is here now
        _mark_complete(folder, series_uids)
    if not result.received:
        what = _what(study_uid, series_uids)
        problems = []
        if result.failed_at_pacs:
            problems.append(f"{result.failed_at_pacs} failed at the PACS (it could not send them)")
        if result.not_written:
            problems.append(f"{len(result.not_written)} could not be written here: {result.not_written[0]}")
        raise NetworkError(f"no instance of {what} arrived from {node}: " + "; ".join(problems))
    return result


class _Refused(NetworkError):
    """A retrieve the PACS refused before sending anything, with its status."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _why_refused(
    error: _Refused, retrieval: _Retrieval, study_uid: str, series_uids: list[str], move_port: int | None
) -> NetworkError:
    """The refusal in words. Some PACS (Orthanc) answer a study they do not hold, or a C-MOVE
    destination they do not know or cannot reach, with the same bare failure status: a search
    tells the first apart, and a C-MOVE refusal says what the PACS needs to know of us."""
    from planning.dicom.query import find_series, find_studies

    node, calling_ae = retrieval.node, retrieval.calling_ae
    if not 0xC000 <= error.code <= 0xCFFF and error.code != 0xA900:
        return error
    options = {"calling_ae": calling_ae, "timeout_s": retrieval.timeout_s}
    held = "It holds the images, so it probably"
    try:
        if not find_studies(node, study_uid=study_uid, **options):
            return NetworkError(f"{node} has no study {study_uid} (a search for it finds nothing): {error}")
        if series_uids:
            listed = {s.series_uid for s in find_series(node, study_uid, **options)}
            missing = [uid for uid in series_uids if uid not in listed]
            if missing:
                return NetworkError(
                    f"{node} has no series {', '.join(missing)} in study {study_uid} "
                    f"(its series are listed with a search): {error}"
                )
    except DelineoError:  # the search is only a diagnosis: the refusal stands as it was
        log.debug("no search to explain the refusal", exc_info=True)
        held = "Perhaps it"
    if move_port is None:
        return error
    return NetworkError(
        f"{error}. {held} could not send them to {calling_ae!r}: the PACS "
        f"must know the AE title {calling_ae!r} with this computer's address and port {move_port}, and "
        "reach that port (a firewall?); or retrieve with C-GET"
    )


def incomplete(folder: str | os.PathLike) -> str | None:
    """Why the instances retrieved into `folder` are not the whole of what was asked (a retrieve
    cancelled, cut off or with instances the PACS could not send), or None. The mark stays until
    the whole study is retrieved into the folder again."""
    try:
        return (
            (Path(folder) / INCOMPLETE).read_text(encoding="utf-8").strip().splitlines()[-1].split("\t")[-1]
        )
    except (OSError, IndexError):
        return None


def other_studies(folder: str | os.PathLike, study_uid: str) -> dict[str, int]:
    """Study UID → number of DICOM files in `folder` (not in its subfolders) that belong to
    another study than `study_uid`: a folder holding several studies opens mixed."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    others: dict[str, int] = {}
    for path in sorted(Path(folder).glob("*.dcm")):
        try:
            found = str(
                dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"]).StudyInstanceUID
            )
        except (OSError, InvalidDicomError, AttributeError):
            continue
        if found != study_uid:
            others[found] = others.get(found, 0) + 1
    return others


def _mark_incomplete(folder: Path, series_uids: list[str], why: str) -> None:
    """Add a line to the folder's mark: the series retrieved (* the study), a tab, why."""
    try:
        with (folder / INCOMPLETE).open("a", encoding="utf-8") as mark:
            mark.write(f"{' '.join(series_uids) or '*'}\t{' '.join(why.split())}\n")
    except OSError:  # a full disk, say: the error raised says what happened
        log.warning("could not mark %s incomplete", folder, exc_info=True)


def _mark_complete(folder: Path, series_uids: list[str]) -> None:
    """Drop the mark's lines that a retrieve of `series_uids` (none: the study) completes."""
    mark = folder / INCOMPLETE
    try:
        if not series_uids:
            mark.unlink(missing_ok=True)
            return
        if not mark.exists():
            return
        lines = mark.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if not set(line.split("\t")[0].split()) <= set(series_uids)]
        if kept:
            mark.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
        else:
            mark.unlink()
    except OSError:
        log.warning("could not update %s", mark, exc_info=True)


def _requests(study_uid: str, series_uids: list[str]) -> list[tuple[str, Dataset]]:
    """(what, identifier) for each C-GET / C-MOVE: the study, or each of its series."""
    if not study_uid:
        raise ValueError("a study instance UID is needed to retrieve")
    requests = []
    for series_uid in series_uids or [None]:
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
        identifier.StudyInstanceUID = study_uid
        if series_uid:
            identifier.SeriesInstanceUID = series_uid
        requests.append((_what(study_uid, [series_uid] if series_uid else []), identifier))
    return requests


def _what(study_uid: str, series_uids: list[str]) -> str:
    if not series_uids:
        return f"study {study_uid}"
    return f"series {series_uids[0]}" if len(series_uids) == 1 else f"{len(series_uids)} series"


def _get(retrieval: _Retrieval, requests) -> None:
    from pynetdicom import AllStoragePresentationContexts, build_role, evt

    contexts = [(STUDY_ROOT_GET, None)] + [(uid, _UNCOMPRESSED) for uid in _PLANNING_CLASSES]
    contexts += [(uid, [syntax]) for uid in _COMPRESSIBLE_CLASSES for syntax in LOSSLESS_COMPRESSED]
    classes = list(_PLANNING_CLASSES)
    for context in AllStoragePresentationContexts:
        if len(contexts) == _MAX_CONTEXTS:
            break
        if context.abstract_syntax not in classes:
            classes.append(context.abstract_syntax)
            contexts.append((context.abstract_syntax, None))
    result = retrieval.result

    def store(event) -> int:
        try:
            result.received.append(write_instance(result.folder, event))
        except Exception as error:  # noqa: BLE001 — answered to the PACS as "out of resources"
            retrieval.not_written(error)
            return 0xA700
        return 0x0000

    association = _associate(
        retrieval.node,
        contexts,
        retrieval.calling_ae,
        retrieval.timeout_s,
        refused=f"does not offer {_NO_GET}",
        ext_neg=[build_role(uid, scp_role=True) for uid in classes],
        evt_handlers=[(evt.EVT_C_STORE, store)],
    )
    try:
        _require(
            association, STUDY_ROOT_GET, retrieval.node, "C-GET (Study Root): retrieve with C-MOVE instead"
        )
        for number, (what, identifier) in enumerate(requests, 1):
            responses = association.send_c_get(identifier, STUDY_ROOT_GET, msg_id=number)
            retrieval.follow(association, responses, number, STUDY_ROOT_GET, what, len(requests))
    finally:
        if association.is_established:
            association.release()


def _move(retrieval: _Retrieval, requests, port: int) -> None:
    result, node, calling_ae = retrieval.result, retrieval.node, retrieval.calling_ae
    receiver = Receiver(
        result.folder,
        ae_title=calling_ae,
        port=port,
        on_received=retrieval.arrived,
        on_not_written=retrieval.not_written,
    )
    receiver.received = result.received  # counted as they come (a cancel says how many are kept)
    with receiver:
        refused = "does not offer C-MOVE (Study Root)"
        association = _associate(node, [(STUDY_ROOT_MOVE, None)], calling_ae, retrieval.timeout_s, refused)
        # The PACS may say nothing here until it has stored the whole study (pending responses are
        # optional): silence is a timeout only while no instance arrives either (`follow` watches).
        association.dimse_timeout = association.network_timeout = None
        try:
            _require(association, STUDY_ROOT_MOVE, node, "C-MOVE (Study Root)")
            for number, (what, identifier) in enumerate(requests, 1):
                responses = association.send_c_move(identifier, calling_ae, STUDY_ROOT_MOVE, msg_id=number)
                retrieval.follow(
                    association, responses, number, STUDY_ROOT_MOVE, what, len(requests), idle=True
                )
        finally:
            if association.is_established:
                association.release()
        # The PACS stores on an association of its own: the last instances may still be on their way.
        deadline = time.monotonic() + min(retrieval.timeout_s, 10.0)
        while len(set(receiver.received)) < result.completed and time.monotonic() < deadline:
            time.sleep(0.05)
        result.received = list(receiver.received)


@dataclass
class _Retrieval:
    """One retrieve: where it comes from, what it brought so far, how it reports and stops."""

    node: Node
    result: RetrieveResult
    calling_ae: str
    timeout_s: float
    on_progress: Callable[[str, int, int], None] | None
    cancel: threading.Event | None
    #: when the PACS last answered or an instance last arrived (time.monotonic)
    active: float = field(default_factory=time.monotonic)
    stage: str = ""
    arrivals: int = 0  # instances that arrived (C-MOVE) during the current request
    counted: bool = False  # whether the PACS's pending responses count the current request

    def arrived(self, path: Path) -> None:
        """An instance arrived at the C-MOVE destination (in a network thread)."""
        self.active = time.monotonic()
        self.arrivals += 1
        if not self.counted and self.on_progress is not None:  # the PACS does not count: we do
            self.on_progress(self.stage, self.arrivals, 0)

    def not_written(self, error: Exception) -> None:
        """An instance that arrived could not be written (in a network thread): a full disk or a
        folder that cannot be written would fail every other instance, so the retrieve stops."""
        log.error("could not store an instance in %s: %s", self.result.folder, error)
        self.result.not_written.append(str(error))

    def stopping(self) -> bool:
        """Whether the retrieve is to stop: cancelled, or the instances cannot be written."""
        return bool(self.result.not_written) or (self.cancel is not None and self.cancel.is_set())

    def follow(
        self, association, responses: Iterator, msg_id: int, model: str, what: str, count: int, idle=False
    ):
        """Read the responses of one C-GET / C-MOVE to the end: progress, cancel, final status.
        With `idle`, the association is aborted once neither a response nor an instance came for
        the timeout (the association's own timeouts being off)."""
        node, result = self.node, self.result
        stage = self.stage = f"Retrieving from {node}" + (f" ({msg_id} of {count})" if count > 1 else "")
        self.active, self.arrivals, self.counted = time.monotonic(), 0, False
        finished = threading.Event()
        watcher = None
        watcher = threading.Thread(
            target=_watch, args=(association, msg_id, model, self, finished, idle), daemon=True
        )
        watcher.start()
        final = None
        if self.on_progress is not None:
            self.on_progress(stage, 0, 0)  # until the PACS says how many
        try:
            for status, _ in responses:
                self.active = time.monotonic()
                if not status or "Status" not in status:
                    break
                if int(status.Status) in _PENDING:
                    done, remaining = _sub_operations(status)
                    self.counted = True
                    if self.on_progress is not None:
                        self.on_progress(stage, done, done + remaining)
                    continue
                final = status
        finally:
            finished.set()
            watcher.join()
        if result.not_written:
            kept = len(set(result.received))
            raise NetworkError(
                f"cannot write into {result.folder}: {result.not_written[0]}; the retrieve from {node} "
                f"was stopped ({kept} instance(s) written)"
            )
        if self.cancel is not None and self.cancel.is_set():
            kept = len(set(result.received))
            raise Cancelled(f"retrieve from {node} cancelled; {kept} instance(s) kept in {result.folder}")
        if final is None:
            raise NetworkError(
                f"{node} stopped answering the retrieve of {what} (no response within "
                f"{self.timeout_s:g} s, or the association was aborted)"
            )
        code = int(final.Status)
        completed = _count(final, "NumberOfCompletedSuboperations") or 0
        failed = _count(final, "NumberOfFailedSuboperations") or 0
        warned = _count(final, "NumberOfWarningSuboperations") or 0
        if code not in (0x0000, _SOME_FAILED) and completed + warned == 0:
            meaning = f"{_meaning(code, self.calling_ae)}{_status_text(final)}"
            if failed:  # it tried: "out of resources" when every sub-operation failed
                raise NetworkError(f"{node} could not send {what}: {failed} instance(s) failed ({meaning})")
            raise _Refused(f"{node} refused the retrieve of {what}: {meaning}", code)
        if code == 0x0000 and completed + failed + warned == 0:
            raise NetworkError(f"{node} has no instance of {what} (nothing matches)")
        # A failure after some instances came (the PACS gave up midway): those that came stay.
        failed += _count(final, "NumberOfRemainingSuboperations") or 0
        result.completed += completed + warned
        result.failed += failed
        result.warnings += warned
        if self.on_progress is not None:
            self.on_progress(stage, completed + failed + warned, completed + failed + warned)


def _sub_operations(status: Dataset) -> tuple[int, int]:
    """(done, remaining) sub-operations of a pending C-GET / C-MOVE response."""
    done = sum(
        _count(status, f"Number{kind}Suboperations") or 0 for kind in ("OfCompleted", "OfFailed", "OfWarning")
    )
    return done, _count(status, "NumberOfRemainingSuboperations") or 0


def _watch(association, msg_id, model, retrieval: _Retrieval, finished: threading.Event, idle: bool):
    """Once the retrieve is to stop, ask the PACS to (C-CANCEL); abort if it goes on regardless.
    With `idle`, abort once nothing happened for the retrieve's timeout."""
    while not finished.wait(0.05):
        if retrieval.stopping():
            break
        if idle and time.monotonic() - retrieval.active > retrieval.timeout_s:
            _abort(association)
            return
    else:
        return
    try:
        association.send_c_cancel(msg_id, query_model=model)
    except Exception:  # noqa: BLE001 — the association may be gone already; aborting covers it
        log.debug("C-CANCEL not sent", exc_info=True)
    if not finished.wait(3.0):
        _abort(association)


def _abort(association) -> None:
    association.abort()
    # pynetdicom's reader waits for the next response up to the DIMSE timeout: wake it now
    queue = getattr(getattr(association, "dimse", None), "msg_queue", None)
    if queue is not None:
        queue.put((None, None))
