"""Whether a volume's images can be referenced by UID from an object drawn on them (an RTSTRUCT,
a DICOM-SEG): loaded from DICOM, with its UIDs, each SOPInstanceUID (and frame) naming one image."""

from __future__ import annotations

from planning.errors import GeometryError
from planning.volume import SliceRef, Volume


def check_references(volume: Volume, what: str = "an RTSTRUCT") -> None:
    """Raise unless `volume` came from DICOM images that an object can reference by UID, each
    UID (and frame) naming one image."""
    if not any(volume.slices):
        raise GeometryError(
            f"the volume was not loaded from a DICOM series, so {what} would have no images to "
            "reference; load the DICOM series the structures were drawn on"
        )
    missing = [
        keyword
        for keyword, uid in (
            ("FrameOfReferenceUID", volume.frame_of_reference_uid),
            ("StudyInstanceUID", volume.identity.study_instance_uid),
            ("SeriesInstanceUID", volume.identity.series_instance_uid),
            ("SOPInstanceUID", all(ref.sop_instance_uid for ref in volume.slices if ref is not None)),
        )
        if not uid
    ]
    if missing:
        raise GeometryError(
            f"the images lack {', '.join(missing)} (removed by anonymisation?), so {what} cannot "
            "reference them; export from a series that keeps its UIDs"
        )
    first: dict[tuple[str, int | None], SliceRef] = {}
    for ref in filter(None, volume.slices):
        seen = first.setdefault((ref.sop_instance_uid, ref.frame), ref)
        if seen.position_xyz != ref.position_xyz:
            raise GeometryError(
                f"two images of the series, at {_mm(seen.position_xyz)} and {_mm(ref.position_xyz)} mm, "
                f"share the SOPInstanceUID {ref.sop_instance_uid}, so {what} could not say which of them "
                "a contour lies on; the series is damaged: have it exported again from the scanner or PACS"
            )


def _mm(position_xyz: tuple[float, float, float]) -> list[float]:
    return [round(v, 2) for v in position_xyz]
