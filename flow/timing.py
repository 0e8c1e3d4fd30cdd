"""Critical paths from nextpnr's ``--report`` JSON, summarized for people.

nextpnr lists, per clock pair, the slowest path as a chain of segments (``clk-to-q``,
``routing`` with the net's name, ``logic`` through a cell, ``setup``).  A summary keeps what an
engineer needs to decide where a register goes: the total delay, how much of it is logic and
how much routing, the number of logic cells (and of carry cells: an adder or comparator), and
the named nets the path runs through, with the source nets compressed to their readable names
(Amaranth keeps the hierarchy in the net name, ``core.accel.tile0.tile.lane1.cur``).
"""

from __future__ import annotations

import re

__all__ = ["critical_paths", "format_path"]

# nets Yosys and nextpnr invent: $abc$123, $auto$..., CCU2 internals, _DI/_Z tails of packing
_INTERNAL = re.compile(r"(^\$|\$abc\$|\$auto\$|CCU2_|\$procmux|_SB_|_TRELLIS_)")


def _readable(net: str) -> str | None:
    if not net or _INTERNAL.search(net):
        return None
    # the cells packing hung on the net's name: keep the source signal's name
    net = re.split(r"_(?:LUT4|PFUMX|CCU2C|L6MUX21|TRELLIS|DP16KD|MULT18|DPR16X4|DO)(?:_|$)",
                   net)[0]
    net = re.sub(r"\[\d+\]$", "", net)          # a bit of a bus -> the bus
    return net or None


def critical_paths(report: dict, limit_nets: int = 12) -> list[dict]:
    """One summary per clock pair in ``report["critical_paths"]``.

    Each summary: ``from``/``to`` (clock edges), ``delay_ns`` (total), ``logic_ns``,
    ``routing_ns``, ``logic_cells`` (non-carry logic steps), ``carry_cells`` (CCU2C halves and
    carry steps), ``start`` (the first named net: the register the path starts at), ``end``
    (the cell it ends at), ``through`` (the distinct named nets in order, at most
    ``limit_nets``, the middle elided) and ``fmax_mhz`` of that path alone.
    """
    out = []
    for cp in report.get("critical_paths", []):
        segs = cp.get("path", [])
        logic = sum(s.get("delay", 0.0) for s in segs if s.get("type") != "routing")
        routing = sum(s.get("delay", 0.0) for s in segs if s.get("type") == "routing")
        carry = sum(1 for s in segs if s.get("type") == "logic"
                    and ("FCI" in (s["from"].get("port"), s["to"].get("port"))
                         or "CCU2" in s["from"].get("cell", "")))
        lcells = sum(1 for s in segs if s.get("type") == "logic") - carry
        nets: list[str] = []
        for s in segs:
            if s.get("type") == "routing":
                name = _readable(s.get("net", ""))
                if name and name not in nets:
                    nets.append(name)
        if len(nets) > limit_nets:
            half = limit_nets // 2
            nets = nets[:half] + ["..."] + nets[-half:]
        total = logic + routing
        end = re.split(r"_TRELLIS|_SB_|_DP16KD|_MULT18|\$", segs[-1]["to"].get("cell", ""))[0] \
            if segs else ""
        out.append({
            "from": cp.get("from", ""), "to": cp.get("to", ""),
            "delay_ns": round(total, 2), "logic_ns": round(logic, 2),
            "routing_ns": round(routing, 2), "logic_cells": lcells, "carry_cells": carry,
            "start": nets[0] if nets else "", "end": end, "through": nets,
            "fmax_mhz": round(1000.0 / total, 2) if total > 0 else None,
        })
    return out


def format_path(p: dict) -> str:
    """One line: ``12.3 ns (logic 5.1, routing 7.2; 9 LUT, 16 carry): a -> b -> c``."""
    return (f"{p['delay_ns']} ns (logic {p['logic_ns']}, routing {p['routing_ns']}; "
            f"{p['logic_cells']} logic cells, {p['carry_cells']} carry): "
            + " -> ".join(p["through"]))
