"""Regenerate docs/activation_accuracy.md: ``python bench/activation_accuracy.py [--no-sim]``.

The measurement lives in :mod:`sparsemac.sim.activation_accuracy` (also behind
``sparsemac lut --report``); this script only points it at the checkout's docs/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sparsemac.sim.activation_accuracy import main

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--output" not in argv:
        argv += ["--output", str(ROOT / "docs" / "activation_accuracy.md")]
    sys.exit(main(argv))
