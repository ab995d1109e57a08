"""Access to the real test data in ``../shared/data`` (or ``$DELINEO_DATA``).

Locally a test whose data is missing is skipped; under CI (``CI=true``) it fails, so CI can never
pass on skipped data tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    return Path(os.environ.get("DELINEO_DATA", REPOSITORY.parent / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """The path of a shared data file or folder; skip (locally) or fail (CI) when absent."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        message = f"test data {path} is missing (set DELINEO_DATA)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path
