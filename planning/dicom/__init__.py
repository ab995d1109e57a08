"""DICOM input: fast header reading, folder scanning, series loading."""

#: Delineo's AE title (DICOM application entity) when none is given.
DEFAULT_AE_TITLE = "DELINEO"
