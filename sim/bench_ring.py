"""``sparsemac bench ring``: traffic on the ring RTL (Verilator + cocotb), docs/ring.md.

Builds a :class:`hw.ring.Ring`, runs ``tests/sim/cocotb_ring.py::ring_bench`` on it with the
traffic parameters in environment variables, and reads back the JSON statistics it writes:
flits injected and delivered, duplicates, losses, latency (cycles from the flit's creation at
the source, including waiting for injection, to its delivery), the mean load carried per link
and whether the ring stopped making progress (1,024 cycles without a delivery).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import tempfile
from pathlib import Path

__all__ = ["register", "run_ring_bench", "PATTERNS"]

PATTERNS = ("uniform", "hotspot", "multicast")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ring", help="traffic on the ring interconnect RTL (Verilator)",
        description=__doc__.strip())
    p.add_argument("--nodes", type=int, default=4, help="ring nodes, 1..16 (default 4)")
    p.add_argument("--cycles", type=int, default=10000,
                   help="cycles of traffic generation before the drain (default 10000)")
    p.add_argument("--injection", type=float, default=1.0,
                   help="probability per node and cycle that a new flit is offered, 0..1")
    p.add_argument("--stall", type=float, default=0.0,
                   help="probability per node and cycle that eject is not ready, 0..0.99")
    p.add_argument("--pattern", choices=PATTERNS, default="uniform",
                   help="uniform all-to-all, hotspot (half the flits to node 0), or multicast "
                        "(30%% multicast mixed with unicast)")
    p.add_argument("--fifo-depth", type=int, default=4,
                   help="entries per input FIFO and virtual channel (default 4)")
    p.add_argument("--payload-width", type=int, default=32, help="flit payload bits (>= 24)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=main)


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
    from hw.ring import Ring
    from sim.runner import run_cocotb

    _check_args(nodes, cycles, injection, stall, pattern, payload_width)
    if seed is None:
        seed = random.randrange(1 << 31)
    ring = Ring(nodes=nodes, payload_width=payload_width, fifo_depth=fifo_depth)
    with tempfile.TemporaryDirectory(prefix="ring-bench-") as tmp:
        out = Path(tmp) / "result.json"
        env = {
            "SPARSEMAC_RING_NODES": str(nodes), "SPARSEMAC_RING_PAYLOAD": str(payload_width),
            "SPARSEMAC_RING_CYCLES": str(cycles), "SPARSEMAC_RING_INJECTION": repr(injection),
            "SPARSEMAC_RING_STALL": repr(stall), "SPARSEMAC_RING_PATTERN": pattern,
            "SPARSEMAC_RING_JSON": str(out),
        }
        with contextlib.redirect_stdout(sys.stderr):
            run_cocotb(ring, toplevel="ring", test_module="tests.sim.cocotb_ring",
                       testcase="ring_bench", env=env, seed=seed,
                       tag=f"bench-n{nodes}-{os.getpid()}")
        result = json.loads(out.read_text())
    result["fifo_depth"] = fifo_depth
    result["payload_width"] = payload_width
    return result


def _table(r: dict) -> str:
    rows = [
        ("ring", f"{r['nodes']} nodes, fifo_depth {r['fifo_depth']}, pattern {r['pattern']}, "
                 f"injection {r['injection']}, stall {r['stall']}, seed {r['seed']}"),
        ("cycles", f"{r['cycles']} + {r['drain_cycles']} drain"),
        ("injected", r["injected"]),
        ("delivered", f"{r['delivered']} of {r['expected']} expected deliveries"),
        ("duplicates", r["duplicates"]),
        ("lost", r["lost"]),
        ("misordered", r["misordered"]),
        ("latency max / mean", f"{r['lat_max']} / {r['mean_latency']:.2f} cycles"),
        ("throughput per link", f"{r['link_throughput']:.3f} flits/cycle"),
        ("accepted per node", f"{r['accept_rate']:.3f} flits/cycle"),
        ("stalled", "YES" if r["stalled"] else "no"),
    ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def main(args) -> int:
    r = run_ring_bench(nodes=args.nodes, cycles=args.cycles, injection=args.injection,
                       stall=args.stall, pattern=args.pattern, seed=args.seed,
                       fifo_depth=args.fifo_depth, payload_width=args.payload_width)
    print(json.dumps(r, indent=1) if args.json else _table(r))
    bad = r["stalled"] or r["lost"] or r["duplicates"] or r["misordered"] or r["unexpected"]
    return 1 if bad else 0
