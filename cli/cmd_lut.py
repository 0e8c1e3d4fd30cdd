"""Build an activation table (int8 LUT or int16 PWL segment table) and report its error.

Examples::

    sparsemac lut gelu --in-scale 0.05 --out-scale 0.02
    sparsemac lut tanh --pwl --segments 32 --out-width 16 --in-scale 1.2e-4 --out-scale 3e-5
    sparsemac lut gelu --in-scale 0.05 --out-scale 0.02 --json
    sparsemac lut --report            # accuracy table -> activation_accuracy.md
"""

from __future__ import annotations

import argparse
import json

from .main import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from sparsemac.golden.lut import FUNCTIONS

    p.add_argument("function", nargs="?", metavar="FUNCTION",
                   help="one of: " + ", ".join(FUNCTIONS))
    p.add_argument("--in-scale", type=float, help="real value of one input LSB")
    p.add_argument("--out-scale", type=float, help="real value of one output LSB")
    p.add_argument("--pwl", action="store_true",
                   help="build the interpolated (int16 input) segment table instead")
    p.add_argument("--segments", type=int, default=32, help="PWL segments (power of two)")
    p.add_argument("--out-width", type=int, default=8, help="PWL output width: 8 or 16")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--report", action="store_true",
                   help="write the accuracy table (activation_accuracy.md, or --output FILE)")
    p.add_argument("--output", metavar="FILE", help="with --report: where to write it")
    p.add_argument("--no-sim", action="store_true",
                   help="with --report: skip the Verilator throughput/latency measurement")


def main(args) -> int:
    if args.report:
        from ..sim.activation_accuracy import DEFAULT_OUTPUT, run
        from .paths import out_file

        if args.output:
            out_file(args.output)
        return run(output=args.output or DEFAULT_OUTPUT, sim=not args.no_sim,
                   as_json=args.json, segments=args.segments)
    if not args.function:
        raise UsageError("give a FUNCTION (or --report)")
    if args.in_scale is None or args.out_scale is None:
        raise UsageError("--in-scale and --out-scale are required")
    from sparsemac.golden.lut import build_lut, build_pwl, lut_error, pwl_error

    if args.pwl:
        t = build_pwl(args.function, args.in_scale, args.out_scale, segments=args.segments,
                      out_width=args.out_width)
        err = pwl_error(args.function, t, args.in_scale, args.out_scale)
        if args.json:
            print(json.dumps({"function": args.function, "mode": "pwl",
                              "segments": t.segments, "out_width": t.out_width,
                              "in_scale": args.in_scale, "out_scale": args.out_scale,
                              "base": t.base.tolist(), "slope": t.slope.tolist(),
                              "shift": t.shift.tolist(), "error": err}))
            return 0
        print(f"# {args.function}: PWL {t.segments} segments, int16 -> int{t.out_width}, "
              f"in_scale={args.in_scale:g} out_scale={args.out_scale:g}")
        print(f"{'seg':>4} {'x0':>7} {'base':>12} {'slope':>8} {'shift':>5}")
        step = 1 << t.offset_width
        for s in range(t.segments):
            print(f"{s:4d} {s * step - 32768:7d} {t.base[s]:12d} {t.slope[s]:8d} "
                  f"{t.shift[s]:5d}")
    else:
        table = build_lut(args.function, args.in_scale, args.out_scale)
        err = lut_error(args.function, table, args.in_scale, args.out_scale)
        if args.json:
            print(json.dumps({"function": args.function, "mode": "lut",
                              "in_scale": args.in_scale, "out_scale": args.out_scale,
                              "table": [int(v) for v in table], "error": err}))
            return 0
        print(f"# {args.function}: int8 table, in_scale={args.in_scale:g} "
              f"out_scale={args.out_scale:g}; row r, column c holds f(16*r + c - 128)")
        for r in range(16):
            print(f"{16 * r - 128:5d}: " + " ".join(f"{int(v):4d}" for v in
                                                    table[16 * r:16 * r + 16]))
    print(f"error: max {err['max']:.4f} LSB (at x = {err['argmax']}), mean {err['mean']:.4f} LSB")
    return 0
