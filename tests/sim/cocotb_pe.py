"""cocotb testbench of ProcessingElement: random dot products checked against golden.quant.wrap.

``acc_width`` and ``latency`` come from ``SPARSEMAC_PARAMS`` (``sim.tb.base.params_from_env``),
the seed from the run.
"""

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge
from sparsemac.golden.quant import wrap
from sparsemac.sim.tb.base import TB, params_from_env


class PeTB(TB):
    """One PE: ``valid`` / ``clear`` strobes (no ``ready``: a PE never stalls), the source's
    idle knob inserts idle cycles in the middle of a sum."""

    reset_cycles = 1
    settle_cycles = 0

    def quiet_inputs(self):
        return (self.dut.valid, self.dut.clear)


@cocotb.test()
async def random_dot_products(dut):
    p = params_from_env()
    acc_width, latency = int(p["acc_width"]), int(p["latency"])
    tb = PeTB(dut, idle=0.3)
    seed, rng = tb.seed, tb.rng
    await tb.reset()
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
            if tb.idle_now():  # idle cycles in the middle of a sum
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
