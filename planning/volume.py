"""The `Volume`: a CT, MR or label image in memory with its exact patient geometry.

Voxels are a numpy array indexed [z, y, x]; geometry is a `Grid` (see `planning.geometry` for
the axis and unit conventions); DICOM identity says which patient, study, series and images the
voxels came from, so that structures drawn on them can be exported against the original images.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from planning.errors import GeometryError
from planning.geometry import Grid

if TYPE_CHECKING:  # SimpleITK is imported where it is used: code that never converts skips it
    import SimpleITK as sitk


def values_are_hu(modality: str) -> bool:
    """Whether an image of `modality` holds Hounsfield units (a CT), the scale of CT window and
    volume-rendering presets; an MR's values are intensities on its scanner's own scale."""
    return modality.upper() == "CT"


def not_in_hu(what: str, modality: str) -> str:
    """Why `what` ("a CT window", a CT preset…), set in Hounsfield units, does not apply to an
    image of `modality`, in words; "" on a CT."""
    if values_are_hu(modality):
        return ""
    return f"{what} in Hounsfield units; this image is {modality or 'not known to be a CT'}"


def typical_range(array: np.ndarray) -> tuple[float, float]:
    """The 1st and 99th percentiles of an image's values, from a regular sample of about 2 M
    voxels (every n-th along each axis): the range its values typically span, in its units."""
    step = max(1, round((array.size / 2_000_000) ** (1 / 3)))
    low, high = np.percentile(array[::step, ::step, ::step], (1, 99))
    return float(low), float(high)


@dataclass(frozen=True)
class SliceRef:
    """One source image of a volume: what an RTSTRUCT contour on that slice references.

    Attributes:
        sop_class_uid: SOP Class UID of the image.
        sop_instance_uid: SOP Instance UID of the image.
        position_xyz: ImagePositionPatient, LPS mm.
        frame: frame number (1-based) inside a multi-frame image, None for single-frame images.
    """

    sop_class_uid: str
    sop_instance_uid: str
    position_xyz: tuple[float, float, float]
    frame: int | None = None


@dataclass(frozen=True)
class DicomIdentity:
    """Where a volume comes from, as DICOM names it. Empty strings where unknown."""

    patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_instance_uid: str = ""
    study_id: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    accession_number: str = ""
    referring_physician_name: str = ""
    series_instance_uid: str = ""
    series_number: str = ""
    series_description: str = ""
    frame_of_reference_uid: str = ""
    manufacturer: str = ""


@dataclass
class Volume:
    """A 3D image with its patient geometry.

    Attributes:
        array: voxel values indexed [z, y, x]; HU for CT (rescale applied), scaled values for MR.
        grid: where the voxels are in patient space (LPS, mm).
        modality: DICOM modality ("CT", "MR", ...) or "" when unknown.
        identity: DICOM identity of the source series.
        slices: source image of each z index, in z order; None for a plane that was interpolated
            (missing slice, gantry tilt); empty for non-DICOM input.
        warnings: what loading had to correct (resampling, dropped duplicates), in words.
    """

    array: np.ndarray
    grid: Grid
    modality: str = ""
    identity: DicomIdentity = field(default_factory=DicomIdentity)
    slices: list[SliceRef | None] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise GeometryError(f"a volume needs a 3D array (z, y, x), got shape {self.array.shape}")
        if tuple(self.array.shape) != self.grid.shape:
            raise GeometryError(f"array shape {self.array.shape} does not match grid shape {self.grid.shape}")
        if self.slices and len(self.slices) != self.grid.shape[0]:
            raise GeometryError(
                f"{len(self.slices)} source slices for a volume of {self.grid.shape[0]} slices"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """Number of voxels (z, y, x)."""
        return self.grid.shape

    @property
    def frame_of_reference_uid(self) -> str:
        return self.identity.frame_of_reference_uid

    def with_array(self, array: np.ndarray, modality: str | None = None) -> Volume:
        """A volume on the same grid and identity holding other voxels (e.g. a label map)."""
        return replace(
            self,
            array=array,
            modality=self.modality if modality is None else modality,
            warnings=[],
        )

    # -- SimpleITK ---------------------------------------------------------------------------

    def to_sitk(self) -> sitk.Image:
        """A SimpleITK image sharing nothing with this volume (SimpleITK indexes (x, y, z))."""
        import SimpleITK as sitk

        array = self.array.view(np.uint8) if self.array.dtype == bool else self.array
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(self.grid.spacing_xyz)
        image.SetOrigin(self.grid.origin_xyz)
        image.SetDirection(tuple(self.grid.direction.ravel()))
        return image

    @classmethod
    def from_sitk(cls, image: sitk.Image, modality: str = "", **kwargs) -> Volume:
        """A volume from a 3D single-component SimpleITK image (2D images get one slice)."""
        import SimpleITK as sitk

        if image.GetNumberOfComponentsPerPixel() != 1:
            raise GeometryError(
                f"only single-component images are volumes; this one has "
                f"{image.GetNumberOfComponentsPerPixel()} components per voxel"
            )
        if image.GetDimension() == 2:
            image = sitk.JoinSeries(image)
        if image.GetDimension() != 3:
            raise GeometryError(f"only 3D images are volumes; this one is {image.GetDimension()}D")
        array = sitk.GetArrayFromImage(image)
        grid = Grid(
            shape=array.shape,
            spacing_xyz=image.GetSpacing(),
            origin_xyz=image.GetOrigin(),
            direction=np.array(image.GetDirection()).reshape(3, 3),
        )
        return cls(array=array, grid=grid, modality=modality, **kwargs)
