"""DICOM input: fast header reading, folder scanning, series loading."""
