"""The planning domain: volumes, DICOM, structures, RTSTRUCT/RTDOSE, margins, metrics, DVH.

No Qt and no torch here: everything is a function a script, the CLI, the tests and the GUI call
the same way. Conventions: arrays are indexed (z, y, x); geometry is in millimetres in DICOM
patient coordinates (LPS); see `planning.geometry`.
"""

from importlib.metadata import PackageNotFoundError, version


def software_version() -> str:
    """Delineo's version, as the DICOM objects it writes state it (SoftwareVersions)."""
    try:
        return version("delineo")
    except PackageNotFoundError:
        return "unknown"
