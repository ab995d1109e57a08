"""Objects drawn on images reference them by UID (planning.dicom.references): a series whose two
images share one SOPInstanceUID cannot be referenced, and every writer refuses it the same way."""

import numpy as np
import pytest
from support.dicom_factory import ct_phantom, give_slice_the_uid_of_another, write_ct_series

from planning.errors import GeometryError
from planning.imageio import load_volume
from planning.rtstruct.writer import write_rtstruct
from planning.seg import write_seg
from planning.structures import Mask, Structure, StructureSet


@pytest.mark.parametrize("write, name", [(write_rtstruct, "RTSTRUCT"), (write_seg, "DICOM-SEG")])
def test_writers_refuse_images_whose_references_are_ambiguous(tmp_path, write, name):
    """Two images sharing one SOPInstanceUID (a damaged series): the object could not say which
    image a contour or frame is on, so it is refused, naming the UID and both positions."""
    paths = write_ct_series(tmp_path / "ct", ct_phantom((6, 20, 24)))
    shared = give_slice_the_uid_of_another(paths, 3, 2)
    damaged = load_volume(tmp_path / "ct")
    box = np.zeros(damaged.grid.shape, bool)
    box[1:5, 5:15, 5:15] = True
    boxed = StructureSet(damaged.grid, damaged.frame_of_reference_uid)
    boxed.add(Structure("Box", Mask.from_full(damaged.grid, box)))
    with pytest.raises(GeometryError, match=name) as refused:
        write(boxed, damaged, tmp_path / "x.dcm")
    assert shared in str(refused.value)
    assert "[-20.0, -18.0, -10.0] and [-20.0, -18.0, -7.5] mm" in str(refused.value)
    assert not (tmp_path / "x.dcm").exists()
