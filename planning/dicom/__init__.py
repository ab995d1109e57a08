"""DICOM reading and networking.

Reading: fast header reading (`headers`), folder scanning (`scan`), the geometry of a stack of
planes (`stack`), pixel values (`pixels`) and series loading (`load`); `references` checks that an
object drawn on the images can reference them, `charset` what a written dataset must declare,
`file_meta` the file header of one Delineo writes.
Networking with a PACS (pynetdicom): send, echo and receive (`network`), search (`query`) and
retrieve (`retrieve`).
"""

#: Delineo's AE title (DICOM application entity) when none is given.
DEFAULT_AE_TITLE = "DELINEO"
