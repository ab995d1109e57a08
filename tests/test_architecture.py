"""The layering rules, checked on what really gets imported (import-linter checks the source)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import sys
import planning, planning.imageio, planning.dicom.load
{extra}
loaded = sorted(sys.modules)
print("\\n".join(loaded))
"""


def imported_modules(extra: str = "") -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(extra=extra)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(result.stdout.split())


def test_planning_imports_no_gui_and_no_torch():
    modules = imported_modules()
    assert not {m for m in modules if m.split(".")[0] in ("PyQt6", "superqt", "torch", "segmentation")}
    assert not {m for m in modules if m.startswith("vtkmodules.qt")}


def test_segmentation_imports_no_gui():
    modules = imported_modules("import segmentation")
    assert not {m for m in modules if m.split(".")[0] in ("PyQt6", "superqt", "workstation")}
    assert not {m for m in modules if m.startswith("vtkmodules.qt")}


def test_ci_tests_the_installed_package_not_the_source_tree():
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        pytest.skip("only meaningful in CI, where the package is installed non-editable")
    import planning

    assert "site-packages" in Path(planning.__file__).parts


def test_the_command_line_parser_loads_no_heavy_library():
    # `delineo --help` and each command's start stay quick, and `delineo train` runs where only
    # the training's own libraries are installed (a GPU machine without DICOM or ITK libraries)
    probe = (
        "import sys\nfrom workstation.cli import build_parser\nbuild_parser()\nprint('\\n'.join(sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    heavy = (
        "pydicom",
        "SimpleITK",
        "pynetdicom",
        "highdicom",
        "torch",
        "PyQt6",
        "vtkmodules",
        "segmentation",
    )
    assert not {m for m in result.stdout.split() if m.split(".")[0] in heavy}
