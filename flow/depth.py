"""Register-to-register paths of a mapped ECP5 netlist, ranked before place and route.

nextpnr reports one critical path per clock, after 30-60 minutes of placing and routing a
64-MAC build.  This module reads the netlist Yosys wrote for nextpnr (``synth_ecp5 -json``:
LUT4, PFUMX, L6MUX21, CCU2C, TRELLIS_FF, DP16KD, MULT18X18D, TRELLIS_DPR16X4) and estimates
the arrival time at every register input with a simple delay model, so that every slow path
is seen at once, in seconds:

- a cell's delay from its inputs to its outputs (LUT4 0.24 ns, a carry cell's input to its sum
  0.36 ns and carry-in to carry-out 0.06 ns per two bits, an unregistered block RAM read or
  multiplier 3.5 / 4.0 ns after the clock or the inputs);
- a net's routing delay ``ROUTE_NS + FANOUT_NS * log2(fanout)`` (the dedicated carry chain
  between CCU2C cells is free; the clock and nets driven by a DCCA global buffer are not
  counted).

The numbers are not nextpnr's: routing depends on placement.  What the estimate gives is the
ranking (logic levels, carry chains, fan-out), the list of every path above a budget and
their start and end registers by name, which is where a register goes.

Usage: ``python -m sparsemac.flow.depth NETLIST.json [--top 30] [--budget-ns 10]``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import defaultdict

from .timing import _INTERNAL, _readable

__all__ = ["load_netlist", "analyze", "format_paths"]

ROUTE_NS = 0.9       # one ordinary net
FANOUT_NS = 0.25     # more per doubling of the fan-out
# DP16KD: nextpnr's clock-to-out of a block RAM without its output register (5.83 ns on the
# placed 64-MAC build of e8cea14, whose critical path started there; 3.5 before, which ranked
# that path 99th)
CLK_TO_Q = {"TRELLIS_FF": 0.52, "DP16KD": 5.83, "MULT18X18D": 0.6}
SETUP_NS = 0.1

# combinational arcs: (cell type) -> delay from any data input to any output
_LUTLIKE = {"LUT4": 0.24, "PFUMX": 0.2, "L6MUX21": 0.2, "TRELLIS_DPR16X4": 0.5}
_CARRY_IN_TO_SUM = 0.36
_CARRY_CHAIN = 0.06
_MULT_COMB = 4.0


def load_netlist(path) -> dict:
    """The top module of a Yosys JSON netlist."""
    with open(path) as f:
        data = json.load(f)
    tops = [m for m in data["modules"].values() if m.get("attributes", {}).get("top")]
    if len(tops) != 1:
        raise ValueError(f"netlist {path} must have exactly one top module, has {len(tops)}")
    return tops[0]


def _names(module: dict) -> dict[int, str]:
    """A readable name for each net bit: the shortest public name, a top-level port's only if
    the net has no other (a register driving an output is named after the register)."""
    out: dict[int, tuple[bool, int, str]] = {}
    ports = set(module.get("ports", {}))
    for name, info in module.get("netnames", {}).items():
        if info.get("hide_name") or _INTERNAL.search(name):
            continue
        bits = info["bits"]
        for i, b in enumerate(bits):
            if isinstance(b, str):
                continue
            label = name if len(bits) == 1 else f"{name}[{i}]"
            key = (name in ports, len(label), label)
            if b not in out or key < out[b]:
                out[b] = key
    return {b: k[2] for b, k in out.items()}


def _mult_registered(cell: dict) -> bool:
    p = cell.get("parameters", {})
    return any(str(p.get(k, "NONE")) != "NONE" for k in ("REG_INPUTA_CLK", "REG_INPUTB_CLK"))


def analyze(module: dict) -> list[dict]:
    """Every register input's estimated arrival, worst first.

    Each entry: ``delay_ns``, ``levels`` (LUT4 cells; a PFUMX or L6MUX21 widens a LUT inside
    its slice and is not counted), ``carry`` (CCU2C cells), ``start``
    and ``end`` (readable names of the launching and capturing nets), ``through`` (readable
    nets on the way).
    """
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 200000))   # each cone is walked recursively
    try:
        return _analyze(module)
    finally:
        sys.setrecursionlimit(limit)


def _analyze(module: dict) -> list[dict]:
    cells = module["cells"]
    fanout: dict[int, int] = defaultdict(int)
    drivers: dict[int, tuple[str, str]] = {}
    global_nets: set[int] = set()
    for cname, c in cells.items():
        for port, bits in c["connections"].items():
            d = c["port_directions"].get(port)
            for b in bits:
                if isinstance(b, str):
                    continue
                if d == "output":
                    drivers[b] = (cname, port)
                else:
                    fanout[b] += 1
        if c["type"] == "DCCA":
            global_nets.update(b for b in c["connections"]["CLKO"] if not isinstance(b, str))
    clocks = {b for c in cells.values() if c["type"] == "TRELLIS_FF"
              for b in c["connections"]["CLK"]}

    def route(b: int, cname: str, port: str) -> float:
        if b in global_nets or b in clocks:
            return 0.0
        drv = drivers.get(b)
        if drv and cells[drv[0]]["type"] == "CCU2C" and drv[1] == "COUT" and port == "CIN":
            return 0.0
        # inside a slice: LUT4 -> PFUMX (ALUT/BLUT), PFUMX -> L6MUX21 (D0/D1)
        sink = cells[cname]["type"]
        if drv and ((sink == "PFUMX" and port in ("ALUT", "BLUT"))
                    or (sink == "L6MUX21" and port in ("D0", "D1"))):
            return 0.0
        return ROUTE_NS + FANOUT_NS * math.log2(max(1, fanout[b]))

    # arrival[bit] = (time, levels, carry, predecessor bit)
    arrival: dict[int, tuple[float, int, int, int | None]] = {}
    for c in cells.values():
        t = c["type"]
        if t in ("TRELLIS_FF", "DP16KD") or (t == "MULT18X18D" and _mult_registered(c)):
            for port, bits in c["connections"].items():
                if c["port_directions"].get(port) == "output":
                    for b in bits:
                        if not isinstance(b, str):
                            arrival[b] = (CLK_TO_Q[t], 0, 0, None)
    for b in set(module.get("ports", {}) and [x for p in module["ports"].values()
                                               if p["direction"] == "input"
                                               for x in p["bits"]]):
        if not isinstance(b, str):
            arrival.setdefault(b, (0.0, 0, 0, None))

    memo_busy: set[int] = set()

    def arrive(b) -> tuple[float, int, int, int | None]:
        if isinstance(b, str):
            return (0.0, 0, 0, None)
        if b in arrival:
            return arrival[b]
        drv = drivers.get(b)
        if drv is None or b in memo_busy:
            arrival[b] = (0.0, 0, 0, None)
            return arrival[b]
        memo_busy.add(b)
        cname, oport = drv
        c = cells[cname]
        t = c["type"]
        best = (0.0, 0, 0, None)
        conns = c["connections"]
        if t == "CCU2C":
            # S0 from A0..D0 and CIN; COUT and S1 from everything
            ins = {"S0": ["A0", "B0", "C0", "D0", "CIN"]}.get(
                oport, ["A0", "B0", "C0", "D0", "A1", "B1", "C1", "D1", "CIN"])
            for port in ins:
                for ib in conns.get(port, []):
                    a = arrive(ib)
                    if isinstance(ib, str):
                        continue
                    cell_d = _CARRY_CHAIN if (port == "CIN" and oport == "COUT") else \
                        _CARRY_IN_TO_SUM if port != "CIN" else 0.27
                    tt = a[0] + route(ib, cname, port) + cell_d
                    if tt > best[0]:
                        best = (tt, a[1], a[2] + 1, ib)
        elif t == "DCCA":                # a global buffer: the clock tree, no logic
            for ib in conns.get("CLKI", []):
                a = arrive(ib)
                if not isinstance(ib, str):
                    best = (a[0] + route(ib, cname, "CLKI"), a[1], a[2], ib)
        elif t in _LUTLIKE or t == "MULT18X18D":
            d = _LUTLIKE.get(t, _MULT_COMB)
            for port, bits in conns.items():
                if c["port_directions"].get(port) != "input" or port in ("WCK", "CLK0", "CLK1",
                                                                         "CLK2", "CLK3"):
                    continue
                if t == "TRELLIS_DPR16X4" and port not in ("RAD",):
                    continue
                for ib in bits:
                    if isinstance(ib, str):
                        continue
                    a = arrive(ib)
                    tt = a[0] + route(ib, cname, port) + d
                    if tt > best[0]:
                        best = (tt, a[1] + (t == "LUT4"), a[2], ib)
        memo_busy.discard(b)
        arrival[b] = best
        return best

    endpoints = []
    for cname, c in cells.items():
        t = c["type"]
        if t == "TRELLIS_FF":
            ports = ["DI", "CE", "LSR"]
        elif t == "DP16KD":
            ports = [p for p, d in c["port_directions"].items()
                     if d == "input" and not p.startswith("CLK")]
        elif t == "MULT18X18D" and _mult_registered(c):
            ports = [p for p in c["port_directions"] if p[0] in "AB" and p[1:].isdigit()]
        elif t == "TRELLIS_DPR16X4":
            ports = ["WAD", "DI", "WRE"]
        else:
            continue
        worst = None
        for port in ports:
            for ib in c["connections"].get(port, []):
                if isinstance(ib, str):
                    continue
                a = arrive(ib)
                tt = a[0] + route(ib, cname, port) + SETUP_NS
                if worst is None or tt > worst[0]:
                    worst = (tt, a[1], a[2], ib, port)
        if worst is not None:
            endpoints.append((cname, *worst))

    names = _names(module)
    out = []
    for cname, tt, levels, carry, ib, port in endpoints:
        chain = []
        b = ib
        while b is not None:
            chain.append(b)
            b = arrival.get(b, (0, 0, 0, None))[3]
        chain.reverse()
        readable = [names[x] for x in chain if x in names]
        through = []
        for n in readable:
            base = _readable(n)          # the source signal, without packing's cell tails
            if base and (not through or through[-1] != base):
                through.append(base)
        q = cells[cname]["connections"].get("Q", [None])[0]
        end = names.get(q, cname) if q is not None else cname
        out.append({"delay_ns": round(tt, 2), "levels": levels, "carry": carry,
                    "start": through[0] if through else "?", "end": f"{end}.{port}",
                    "through": through})
    out.sort(key=lambda e: -e["delay_ns"])
    return out


def format_paths(paths: list[dict], top: int = 30, budget_ns: float | None = None) -> str:
    """A table of the slowest paths, one per (start, end bus) pair."""
    seen = set()
    lines = ["| est. ns | LUT levels | carry cells | from | to | through |",
             "|---|---|---|---|---|---|"]
    for p in paths:
        if budget_ns is not None and p["delay_ns"] < budget_ns:
            break
        key = (p["start"], re.sub(r"\[\d+\]", "", p["end"]))
        if key in seen:
            continue
        seen.add(key)
        mid = p["through"][1:-1]
        if len(mid) > 6:
            mid = mid[:3] + ["..."] + mid[-2:]
        lines.append(f"| {p['delay_ns']:.2f} | {p['levels']} | {p['carry']} | {p['start']} | "
                     f"{p['end']} | {' > '.join(mid)} |")
        if len(seen) >= top:
            break
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("netlist", help="Yosys JSON netlist (synth_ecp5 -json)")
    ap.add_argument("--top", type=int, default=30, help="paths to list (default 30)")
    ap.add_argument("--budget-ns", type=float, default=None,
                    help="list only paths at or above this estimate")
    args = ap.parse_args(argv)
    paths = analyze(load_netlist(args.netlist))
    print(format_paths(paths, args.top, args.budget_ns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
