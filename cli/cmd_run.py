"""Run a network of layers from a YAML layer list end to end (docs/host.md).

The layer list is compiled (pruning, int8 quantization, packing, requantization, activation
tables) into one memory image with a descriptor table, run on an engine, and every layer's
output buffer is compared with the golden model.  ``--engine model`` is the functional model of
the accelerator (it reads only the image and the descriptors); ``--engine rtl`` drives the
accelerator top on Verilator.  Cycles come from the tile cycle model (see ``cycle_model``).
Exit code 0 when every layer matches, 1 on a mismatch or an accelerator error, 2 on a user
mistake.
"""

from __future__ import annotations

import argparse
import json

from .cmd_config import add_config_arguments, config_from_args
from .main import UsageError

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", metavar="NETWORK.yaml", help="layer list (docs/host.md)")
    p.add_argument("--engine", choices=("rtl", "model"), default="model",
                   help="model: functional model of the accelerator; rtl: the accelerator top "
                   "on Verilator")
    add_config_arguments(p)
    p.add_argument("--seed", type=int, default=None,
                   help="seed of random weights/input (default: the file's seed)")
    p.add_argument("--base", type=lambda s: int(s, 0), default=None, metavar="ADDR",
                   help="memory window base address (default 0x10000)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _table(rep: dict) -> str:
    out = [f"network {rep['network']} on the {rep['engine']} engine, config {rep['config']}, "
           f"seed {rep['seed']}",
           f"memory window {rep['mem_base']:#x} + {rep['mem_bytes']} bytes, "
           f"{rep['desc_count']} descriptors at {rep['desc_base']:#x}",
           f"cycles: {rep['cycle_model']}", ""]
    hdr = (f"{'#':>2} {'name':<12} {'op':<7} {'format':<7} {'M x K x N':<16} {'density':>7} "
           f"{'cycles':>8} {'roofline':>8} {'ach/roof':>8} {'bound':<7} {'mismatch':>8}")
    out += [hdr, "-" * len(hdr)]
    for e in rep["layers"]:
        mkn = f"{e['m']}x{e['k']}x{e['n']}"
        cyc = e.get("cycles", "-")
        roof = e.get("roofline_cycles", "-")
        ach = f"{e['achieved_over_roofline']:.2f}" if "cycles" in e else "-"
        out.append(f"{e['index']:>2} {e['name'][:12]:<12} {e['op']:<7} {e['format']:<7} "
                   f"{mkn:<16} {e['density']:>7.3f} {cyc:>8} {roof:>8} {ach:>8} "
                   f"{e.get('bound', '-'):<7} {e['mismatches']:>8}")
    out += ["-" * len(hdr),
            f"   {'total':<12} {'':<7} {'':<7} {'':<16} {'':>7} {rep['cycles']:>8} "
            f"{rep['roofline_cycles']:>8} {rep['achieved_over_roofline']:>8.2f} {'':<7} "
            f"{rep['mismatches']:>8}"]
    status = rep["status"]
    if status != "OK":
        status += f" at descriptor {rep['error_desc']}: {rep['error']}"
    out.append(f"status {status}; {rep['mismatches']} mismatches")
    return "\n".join(out)


def main(args) -> int:
    from ..host import NetworkError
    from ..host.run import run_network

    cfg = config_from_args(args)
    try:
        if args.engine == "rtl":
            from ..sim.rtl_engine import run_network_rtl

            rep = run_network_rtl(args.network, cfg, seed=args.seed, base=args.base)
        else:
            rep = run_network(args.network, cfg, seed=args.seed, base=args.base)
    except NetworkError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(rep) if args.json else _table(rep))
    return 0 if rep["status"] == "OK" and rep["mismatches"] == 0 else 1
