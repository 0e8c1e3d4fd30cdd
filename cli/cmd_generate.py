"""Write the top-level Verilog, the resolved config, the register map (once the accelerator
has one) and a manifest (tool versions, SHA-256 of the Verilog) into a folder."""

from __future__ import annotations

import argparse

from .cmd_config import add_config_arguments, config_from_args


def add_top_argument(p: argparse.ArgumentParser) -> None:
    """``--top NAME``: which registered top to build (hw/tops.py)."""
    from sparsemac.hw.tops import TOPS

    p.add_argument("--top", metavar="NAME",
                   help=f"top to generate: {', '.join(TOPS)} (default: the most complete "
                        "available one)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    add_top_argument(p)
    p.add_argument("-o", "--out", metavar="DIR", required=True, help="output folder")


def main(args) -> int:
    from sparsemac.cli.paths import out_dir
    from sparsemac.flow.generate import generate

    cfg = config_from_args(args)
    out_dir(args.out)
    manifest = generate(cfg, args.out, top=args.top)
    print(f"{args.out}/{manifest['verilog']}: top {manifest['top']} "
          f"(module {manifest['module']}), sha256 {manifest['verilog_sha256'][:16]}")
    for name in sorted(manifest["files"]):
        if name != manifest["verilog"]:
            print(f"{args.out}/{name}")
    print(f"{args.out}/manifest.json")
    return 0
