"""DICOM RT Structure Sets: contours from masks, writing, reading and conformance checks."""
