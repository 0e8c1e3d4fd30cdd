"""Output paths given on the command line, checked before any work starts.

A flag that names an output folder (``-o/--out``, ``--work-dir``) or file (``--output``) is
checked first, so a mistake is one line (exit code 2) and no partial output is left behind:
an existing file where a folder is wanted, a folder that cannot be created or written, a file
whose folder is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

from sparsemac.cli.main import UsageError

__all__ = ["out_dir", "out_file"]


def out_dir(path, flag: str = "-o/--out") -> Path:
    """Create folder ``path`` (and its parents) and check it is writable."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{flag} must be a folder, not the existing file {str(p)!r}")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag}: cannot create folder {str(p)!r}: {exc.strerror}") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise UsageError(f"{flag}: folder {str(p)!r} is not writable")
    return p


def out_file(path, flag: str = "--output") -> Path:
    """Check that file ``path`` can be written (its folder exists and is writable)."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{flag} must be a file, not the folder {str(p)!r}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{flag}: folder {str(parent)!r} of {str(p)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"{flag}: {str(p)!r} is not writable")
    return p
