"""Synthesize a top for an FPGA target: area (LUT, FF, DSP, BRAM ...) from Yosys and Fmax from
nextpnr where an open place-and-route exists (ecp5 out of context, ice40 in an I/O harness).
Results are cached by (Verilog hash, target, device, tool versions)."""

from __future__ import annotations

import argparse
import json

from .cmd_config import add_config_arguments, config_from_args
from .cmd_generate import add_top_argument
from .main import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from sparsemac.flow.synth import DEFAULT_DEVICE, TARGETS

    add_config_arguments(p)
    add_top_argument(p)
    p.add_argument("--target", required=True, metavar="TARGET",
                   help=f"one of {', '.join(TARGETS)}")
    p.add_argument("--device", metavar="DEV",
                   help="device of the target (default: "
                        + ", ".join(f"{t} {d}" for t, d in DEFAULT_DEVICE.items()) + ")")
    p.add_argument("--no-pnr", action="store_true", help="area only, skip place and route")
    p.add_argument("--no-cache", action="store_true", help="ignore and do not write the cache")
    p.add_argument("--work-dir", metavar="DIR", help="keep the tools' files (logs, netlists) here")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def main(args) -> int:
    from sparsemac.flow.synth import TARGETS, SynthError, format_report, synth, top_macs
    from sparsemac.hw.tops import default_top

    if args.target not in TARGETS:
        raise UsageError(f"--target must be one of {', '.join(TARGETS)}, not {args.target!r}")
    cfg = config_from_args(args)
    top = args.top or default_top(cfg)
    if args.work_dir:
        from sparsemac.cli.paths import out_dir

        out_dir(args.work_dir, "--work-dir")
    try:
        res = synth(cfg, top, target=args.target, device=args.device, pnr=not args.no_pnr,
                    work_dir=args.work_dir, use_cache=not args.no_cache)
    except SynthError as exc:
        raise UsageError(str(exc)) from None
    res["macs"] = top_macs(top, cfg)
    if args.json:
        print(json.dumps(res, indent=2, sort_keys=True))
    else:
        print(format_report(res, res["macs"]))
    return 0 if res["fits"] else 1
