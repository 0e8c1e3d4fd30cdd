"""Benchmarks on the RTL or the cycle model: ``sparsemac bench KIND ...`` (kinds below).

Each kind lives in its own module with ``register(subparsers)``; a kind's module adds its
parser and sets ``func`` to its entry point.  Output is a table, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import importlib

# modules that register bench kinds (matmul/conv2d: the compute tile; ring: the interconnect)
BENCH_MODULES = ["sparsemac.cli.bench_layer", "sparsemac.cli.bench_ring"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="kind", metavar="KIND")
    for modname in BENCH_MODULES:
        importlib.import_module(modname).register(sub)
    p.set_defaults(_bench_parser=p)


def main(args) -> int:
    if not getattr(args, "func", None):
        args._bench_parser.print_help()
        return 2
    return int(args.func(args) or 0)
