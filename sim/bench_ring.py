"""``sparsemac bench ring``: traffic on the ring RTL (Verilator + cocotb), docs/ring.md.

Builds a :class:`hw.ring.Ring`, runs ``sparsemac.sim.tb.ring::ring_bench`` on it with the
ring and traffic parameters passed as ``run_cocotb(..., params=...)``, and reads back the JSON
statistics it writes: flits injected and delivered, duplicates, losses, latency (cycles from
the flit's creation at the source, including waiting for injection, to its delivery), the mean
load carried per link and whether the ring stopped making progress (1,024 cycles without a
delivery).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import tempfile
from pathlib import Path

__all__ = ["run_ring_bench", "PATTERNS"]

PATTERNS = ("uniform", "hotspot", "multicast")


def _check_args(nodes, cycles, injection, stall, pattern, payload_width):
    # ValueErrors reading "... must be ..." are printed by the CLI as one-line user errors
    UsageError = ValueError  # noqa: N806

    if not 1 <= nodes <= 16:
        raise UsageError(f"--nodes must be between 1 and 16, not {nodes!r}")
    if cycles < 1:
        raise UsageError(f"--cycles must be at least 1, not {cycles!r}")
    if not 0.0 <= injection <= 1.0:
        raise UsageError(f"--injection must be between 0 and 1, not {injection!r}")
    if not 0.0 <= stall <= 0.99:
        raise UsageError(f"--stall must be between 0 and 0.99, not {stall!r}")
    if pattern not in PATTERNS:
        raise UsageError(f"--pattern must be one of {', '.join(PATTERNS)}, not {pattern!r}")
    if not 24 <= payload_width <= 512:
        raise UsageError(f"--payload-width must be between 24 and 512, not {payload_width!r}")


def run_ring_bench(*, nodes: int, cycles: int, injection: float = 1.0, stall: float = 0.0,
                   pattern: str = "uniform", seed: int | None = None, fifo_depth: int = 4,
                   payload_width: int = 32) -> dict:
    """Run one traffic measurement on the ring RTL; returns the statistics dict."""
    from sparsemac.hw.ring import Ring
    from sparsemac.sim.runner import run_cocotb

    _check_args(nodes, cycles, injection, stall, pattern, payload_width)
    if seed is None:
        seed = random.randrange(1 << 31)
    ring = Ring(nodes=nodes, payload_width=payload_width, fifo_depth=fifo_depth)
    with tempfile.TemporaryDirectory(prefix="ring-bench-") as tmp:
        out = Path(tmp) / "result.json"
        params = {"nodes": nodes, "payload_width": payload_width, "depth": fifo_depth,
                  "cycles": cycles, "injection": injection, "stall": stall, "pattern": pattern,
                  "json": str(out)}
        with contextlib.redirect_stdout(sys.stderr):
            run_cocotb(ring, toplevel="ring", test_module="sparsemac.sim.tb.ring",
                       testcase="ring_bench", params=params, seed=seed,
                       tag=f"bench-n{nodes}-{os.getpid()}")
        result = json.loads(out.read_text())
    result["fifo_depth"] = fifo_depth
    result["payload_width"] = payload_width
    return result
