"""A real PACS for tests: Orthanc (Debian's ``orthanc`` package) run on free localhost ports with a
configuration of its own, its storage in a temporary folder, and no HTTP server.

    with Orthanc(tmp_path) as pacs:
        send([folder], pacs.node)
        retrieve(pacs.node, out, study_uid, move_port=pacs.move_port)

Orthanc knows Delineo's AE title (`DELINEO`) at ``127.0.0.1:move_port`` as a C-MOVE destination.
Like dciodvfy and plastimatch, a missing Orthanc skips the test locally and fails it under CI.
The system service the package installs is never used.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from planning.dicom.network import DEFAULT_AE_TITLE, Node, echo
from planning.errors import NetworkError
from support.pacs import free_port
from support.tools import require

ORTHANC_AE = "ORTHANC"


class Orthanc:
    """Orthanc started in `folder` (its storage, index, configuration and log go there)."""

    def __init__(self, folder: Path, *, ae_title: str = ORTHANC_AE, **settings):
        self.folder = Path(folder)
        self.ae_title = ae_title
        self.move_port = free_port()  # where Orthanc sends a C-MOVE to DELINEO
        self.settings = settings
        self.port = 0
        self._process: subprocess.Popen | None = None

    @property
    def node(self) -> Node:
        return Node(self.ae_title, "127.0.0.1", self.port)

    @property
    def log(self) -> str:
        """What Orthanc logged so far (to read when a test fails)."""
        path = self.folder / "orthanc.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout_s: float = 30.0) -> Orthanc:
        binary = require("Orthanc")
        storage = self.folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = {
            "Name": "Delineo tests",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "DicomAet": self.ae_title,
            "DicomPort": self.port,
            "DicomCheckCalledAet": True,
            "HttpServerEnabled": False,
            "HttpPort": free_port(),
            "RemoteAccessAllowed": False,
            "Plugins": [],
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "DicomModalities": {"delineo": [DEFAULT_AE_TITLE, "127.0.0.1", self.move_port]},
            "DicomScuTimeout": 10,
            **self.settings,
        }
        path = self.folder / "orthanc.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        with (self.folder / "orthanc.log").open("w") as log:
            self._process = subprocess.Popen(
                [binary, str(path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with status {self._process.returncode}:\n{self.log}")
            try:
                echo(self.node, timeout_s=2.0)
                return self
            except NetworkError:
                if time.monotonic() > deadline:
                    self.stop()
                    message = f"Orthanc did not answer C-ECHO within {timeout_s:g} s:\n{self.log}"
                    raise RuntimeError(message) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> Orthanc:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
