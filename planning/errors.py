"""Typed errors of the planning domain.

Every error a user can meet names the file or object at fault and says what is wrong with it in
words, so the GUI and the CLI can show ``str(error)`` as it is.
"""

from __future__ import annotations


class DelineoError(Exception):
    """Base class of every error Delineo raises on purpose."""


class DicomReadError(DelineoError):
    """A DICOM file cannot be read: not DICOM, truncated, undecodable pixel data, missing tags."""


class SeriesError(DelineoError):
    """A set of slices cannot form one volume: mixed sizes, duplicates, no geometry."""


class GeometryError(DelineoError):
    """Objects do not share a geometry: another frame of reference, grids that do not match."""


class ContoursOffImagesError(GeometryError):
    """Contours lie on no loaded image plane (beyond the images, between them, not planar);
    the reader can leave them out instead when asked."""


class FormatError(DelineoError):
    """A non-DICOM file (NIfTI, NRRD, MHA, JSON, ...) cannot be read or written."""


class NetworkError(DelineoError):
    """A DICOM node cannot be reached, rejects us, or refuses what is sent."""


class Cancelled(DelineoError):
    """A long job stopped because its cancel flag was set."""
