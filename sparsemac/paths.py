"""Where sparsemac keeps build products and where its shipped data lives.

Nothing is written next to the installed package: simulation builds, lint runs and synthesis
caches go under :func:`cache_dir` (``$SPARSEMAC_CACHE``, else ``$XDG_CACHE_HOME/sparsemac``,
else ``~/.cache/sparsemac``).  The regression points ``SPARSEMAC_CACHE`` at the checkout's
``build/`` so that ``make clean`` removes it.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["cache_dir", "data_file"]


def cache_dir(*parts: str) -> Path:
    """``cache_dir("sim")`` -> the folder for Verilator builds (created on first use)."""
    root = os.environ.get("SPARSEMAC_CACHE")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "sparsemac"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_file(package: str, name: str) -> Path:
    """Path of a file shipped as package data (``data_file("sparsemac.configs", "tiny.yaml")``)."""
    return Path(str(resources.files(package).joinpath(name)))
