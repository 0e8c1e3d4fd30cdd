"""cocotb testbench of ProcessingElement: random dot products checked against golden.quant.wrap."""

import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge
from sparsemac.golden.quant import wrap


@cocotb.test()
async def random_dot_products(dut):
    seed = int(os.environ["SPARSEMAC_SEED"])
    rng = random.Random(seed)
    acc_width = int(os.environ["SPARSEMAC_ACC_WIDTH"])
    latency = int(os.environ["SPARSEMAC_LATENCY"])
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.valid.value = 0
    dut.clear.value = 0
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    cases = [[(-128, -128)] * 300, [(127, -128)] * 50, [(0, 5)] * 3]
    for _ in range(40):
        n = rng.randint(1, 64)
        cases.append([(rng.randint(-128, 127), rng.randint(-128, 127)) for _ in range(n)])
    for case in cases:
        for i, (w, x) in enumerate(case):
            dut.w.value = w
            dut.x.value = x
            dut.valid.value = 1
            dut.clear.value = int(i == 0)
            await RisingEdge(dut.clk)
            if rng.random() < 0.3:  # idle cycles in the middle of a sum
                dut.valid.value = 0
                await RisingEdge(dut.clk)
        dut.valid.value = 0
        for _ in range(latency):
            await RisingEdge(dut.clk)
        await ReadOnly()
        ws, xs = np.array(case, dtype=np.int64).T
        expected = int(wrap(int(np.dot(ws, xs)), acc_width))
        got = dut.acc.value.to_signed()
        assert got == expected, f"seed={seed} pairs={case[:4]}... expected {expected}, got {got}"
        await RisingEdge(dut.clk)
