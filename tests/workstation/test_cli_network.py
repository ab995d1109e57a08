"""`delineo send | echo` against a storage SCP on this machine."""

import pytest
from support.dicom_factory import folder_to_send

from planning.dicom.network import Receiver
from workstation.cli import main


@pytest.fixture
def series(tmp_path):
    return folder_to_send(tmp_path / "ct")


def test_the_command_line_sends_and_echoes(series, tmp_path, capsys):
    with Receiver(tmp_path, port=0) as receiver:
        to = f"STORE@127.0.0.1:{receiver.port}"
        assert main(["echo", to]) == 0
        assert main(["send", str(series), "--to", to]) == 0
        assert main(["send", str(series / "notes.txt"), "--to", to]) == 1
    out = capsys.readouterr().out
    assert f"{to} answered in" in out
    assert f"sent 4 of 4 file(s) to {to}; 1 non-DICOM file(s) in the folders left alone" in out
    assert "failed: " in out and "notes.txt: not a DICOM file" in out
    assert main(["send", str(series), "--to", "nonsense"]) == 1
    assert "not a DICOM node" in capsys.readouterr().err
