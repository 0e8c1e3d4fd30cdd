"""Build a board's bitstream (ULX3S-85F, iCEBreaker): the accelerator with on-chip memory and a
sparse self-test (flow/selftest.py), and report area against the device and Fmax against the
target.  Writes the bitstream, report.json/.md and
the pin constraints used (also into constraints/<board>/)."""

from __future__ import annotations

import argparse

from .main import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from sparsemac.flow.boards import BOARDS

    p.add_argument("--board", required=True, metavar="NAME", help=f"one of {', '.join(BOARDS)}")
    p.add_argument("--config", metavar="FILE",
                   help="config YAML (default: the board's self-test size on the tiny preset)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                   help="override one parameter (repeatable)")
    p.add_argument("--clock-mhz", type=float, default=None, metavar="MHZ",
                   help="core clock from the board's PLL (ECP5 boards; default: the board's)")
    p.add_argument("-o", "--out", metavar="DIR", required=True, help="output folder")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def main(args) -> int:
    import json

    from sparsemac.flow.boards import BOARDS, board_config, build_board, format_board_report
    from sparsemac.flow.synth import SynthError
    from sparsemac.host import NetworkError
    from sparsemac.hw.config import AcceleratorConfig

    if args.board not in BOARDS:
        raise UsageError(f"--board must be one of {', '.join(BOARDS)}, not {args.board!r}")
    cfg = AcceleratorConfig.from_yaml(args.config) if args.config else None
    if args.overrides:
        cfg = board_config(args.board, cfg).with_overrides(args.overrides)
    if args.clock_mhz is not None:
        from sparsemac.flow.clocking import ecp5_pll_params

        board = BOARDS[args.board]
        if board.target != "ecp5":
            raise UsageError(f"--clock-mhz needs an ECP5 board (a PLL), not {args.board}")
        try:
            ecp5_pll_params(board.osc_mhz, args.clock_mhz)
        except ValueError as exc:
            raise UsageError(f"--clock-mhz: {exc}") from None
    from sparsemac.cli.paths import out_dir

    out_dir(args.out)
    try:
        rep = build_board(args.board, args.out, cfg, clock_mhz=args.clock_mhz)
    except SynthError as exc:
        raise UsageError(str(exc)) from None
    except NetworkError as exc:  # the self-test layer does not fit this config's buffers
        raise UsageError(f"self-test layer: {exc}") from None
    print(json.dumps(rep, indent=2, sort_keys=True) if args.json else format_board_report(rep))
    return 0 if rep["result"] == "ok" else 1
