"""External programs the tests check Delineo against (dciodvfy, plastimatch, Orthanc).

Locally a test whose program is not installed is skipped; under CI (``CI=true``) it fails, so CI
can never pass on skipped checks: the README's setup command installs them all.
"""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


#: Where Debian puts daemons such as Orthanc: not on an ordinary user's PATH.
SYSTEM_PROGRAMS = os.pathsep.join(["/usr/local/sbin", "/usr/sbin", "/sbin"])


def require(tool: str) -> str:
    """The path of program `tool` (on PATH or among the system programs); skip the test (locally)
    or fail it (CI) when it is missing."""
    path = shutil.which(tool, path=os.environ.get("PATH", os.defpath) + os.pathsep + SYSTEM_PROGRAMS)
    if path is None:
        message = f"{tool} is not installed (the README's setup command installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path
