"""Suite-wide settings: logging stays quiet, Qt runs on the virtual display pytest-xvfb starts;
fixtures the planning and command-line tests against Orthanc share."""

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")


@pytest.fixture(scope="module")
def orthanc_case(tmp_path_factory) -> dict:
    """The files the Orthanc tests send (`support.orthanc.prepare_case`), made once per module."""
    from support.orthanc import prepare_case

    return prepare_case(tmp_path_factory.mktemp("orthanc_case"))


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """Orthanc (`support.orthanc.Orthanc`), empty, started once per module on free ports."""
    from support.orthanc import Orthanc

    with Orthanc(tmp_path_factory.mktemp("orthanc")) as pacs:
        yield pacs
