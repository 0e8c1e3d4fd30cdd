"""Lint the generated Verilog of a top with ``verilator --lint-only -Wall`` (reviewed waivers).

Exit code 0 when clean, 1 with Verilator's warnings printed otherwise, 2 for a user mistake
(bad config, unknown top).
"""

from __future__ import annotations

import argparse

from .cmd_config import add_config_arguments, config_from_args

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..hw.tops import TOPS

    add_config_arguments(p)
    p.add_argument("--top", metavar="NAME",
                   help=f"top to lint: {', '.join(TOPS)} (default: the most complete "
                        "available one)")
    p.add_argument("--all", action="store_true", help="lint every available top (default: off)")


def main(args) -> int:
    from ..flow.lint import WAIVERS, lint_config
    from ..hw.tops import available_tops

    cfg = config_from_args(args)
    tops = available_tops() if args.all else [args.top]
    bad = 0
    for top in tops:
        res = lint_config(cfg, top)
        if res.ok:
            print(f"lint clean: {res.top} ({res.path}, verilator -Wall, waivers {WAIVERS.name})")
        else:
            bad += 1
            print(res.output)
            print(f"lint FAILED: {res.top} ({res.path}): {len(res.warnings)} message(s)")
    return 1 if bad else 0
