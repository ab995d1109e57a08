"""The DICOM Part 10 file header Delineo writes before a dataset it creates."""

from __future__ import annotations

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID


def add_file_meta(dataset: Dataset, transfer_syntax: str) -> None:
    """Give `dataset` its file meta information (its SOP class and instance, `transfer_syntax`,
    Delineo as the implementation) and the 128-byte preamble, ready to be saved as a file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "DELINEO"
    dataset.file_meta = meta
    dataset.preamble = b"\0" * 128
