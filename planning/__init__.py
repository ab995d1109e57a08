"""The planning domain: volumes, DICOM, structures, RTSTRUCT/RTDOSE, margins, metrics, DVH.

No Qt and no torch here: everything is a function a script, the CLI, the tests and the GUI call
the same way. Conventions: arrays are indexed (z, y, x); geometry is in millimetres in DICOM
patient coordinates (LPS); see `planning.geometry`.
"""
