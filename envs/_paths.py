"""Where downloaded datasets live on disk: one cache directory, one subdirectory per dataset.

The cache directory is, in order of precedence, ``$AGEMEM_CACHE_DIR``, ``$XDG_CACHE_HOME/agemem_gym``, or
``~/.cache/agemem_gym``. Nothing here creates a directory; the downloader does that when it writes.

>>> import os
>>> os.environ["AGEMEM_CACHE_DIR"] = "/tmp/agemem-cache"
>>> dataset_cache_dir("hotpotqa").as_posix()
'/tmp/agemem-cache/hotpotqa'
>>> del os.environ["AGEMEM_CACHE_DIR"]
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_DIR_ENV", "cache_dir", "dataset_cache_dir"]

CACHE_DIR_ENV = "AGEMEM_CACHE_DIR"
"""Environment variable that overrides the cache directory."""


def cache_dir() -> Path:
    """The root cache directory (it may not exist yet)."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "agemem_gym"


def dataset_cache_dir(name: str) -> Path:
    """The cache subdirectory of one dataset, e.g. ``dataset_cache_dir("hotpotqa")``."""
    return cache_dir() / name
