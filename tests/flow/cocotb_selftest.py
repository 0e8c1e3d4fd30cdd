"""cocotb side of tests/flow/test_selftest.py and test_tile_selftest.py: clock, reset, wait
for ``done``, report."""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge


@cocotb.test()
async def selftest_runs(dut):
    max_cycles = int(os.environ["SPARSEMAC_MAX_CYCLES"])
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    wrong = int(os.environ.get("SPARSEMAC_WRONG_BYTE", "0"))
    try:                     # AccelSelfTest: wrong_byte, TileSelfTest: wrong_value
        dut.wrong_byte.value = wrong
    except AttributeError:
        dut.wrong_value.value = wrong
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    cyc = 0
    while not dut.done.value and cyc < max_cycles:
        await RisingEdge(dut.clk)
        cyc += 1
    for _ in range(3):       # done, ok and fail stay where they are
        await RisingEdge(dut.clk)
    res = {"cycles_to_done": cyc}
    for name in ("done", "ok", "fail", "status", "mismatches", "cycles", "timed_out",
                 "results", "tile_error"):
        try:
            res[name] = int(getattr(dut, name).value)
        except AttributeError:  # a member the other self-test does not have
            pass
    with open(os.environ["SPARSEMAC_SELFTEST_OUT"], "w") as fh:
        json.dump(res, fh)
