"""``sparsemac bench ring``: traffic on the ring RTL (Verilator + cocotb), docs/ring.md.

Runs :func:`sparsemac.sim.bench_ring.run_ring_bench` and prints its statistics: flits injected
and delivered, duplicates, losses, latency (cycles from the flit's creation at the source,
including waiting for injection, to its delivery), the mean load carried per link and whether
the ring stopped making progress (1,024 cycles without a delivery).
"""

from __future__ import annotations

import json

from ..sim.bench_ring import PATTERNS, run_ring_bench

__all__ = ["register", "main"]


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
