"""DICOM RT Structure Sets: contours from masks, writing, reading and conformance checks.

`write_rtstruct` (`planning.rtstruct.writer`), `read_rtstruct` (`planning.rtstruct.reader`) and
`check_rtstruct` (`planning.rtstruct.check`); `planning.structure_io` chooses between RTSTRUCT,
DICOM-SEG and label maps by file.

Reading is in parts: the file's ROIs (`planning.rtstruct.rois`, its ROIContourSequence in
`planning.rtstruct.roi_contour_sequence`), their contours placed on the image planes
(`planning.rtstruct.placement`; `planning.rtstruct.drawn_planes` for those drawn on another
reconstruction) and rasterised (`planning.rtstruct.contours`, which also traces
the contours the writer writes).
"""

from planning.rtstruct.check import ConformanceReport, Finding, check_rtstruct
from planning.rtstruct.reader import read_rtstruct
from planning.rtstruct.writer import write_rtstruct

__all__ = ["ConformanceReport", "Finding", "check_rtstruct", "read_rtstruct", "write_rtstruct"]
