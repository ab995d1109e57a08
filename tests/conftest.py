"""Suite-wide settings: logging stays quiet, Qt runs on the virtual display pytest-xvfb starts."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
