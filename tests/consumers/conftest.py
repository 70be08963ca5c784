"""Shared helpers of the consumers tests (``consumers_media``: tiny models, shop images, videos) are
importable from every subfolder."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
