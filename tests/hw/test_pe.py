"""ProcessingElement under amaranth.sim: random sums with idle cycles vs golden wrap, edges."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsemac.golden.quant import wrap
from sparsemac.hw.tile.pe import ProcessingElement


@pytest.mark.parametrize("acc_width,mul_pipeline", [(32, 2), (20, 0), (16, 1), (48, 3)])
def test_pe_random_sums(acc_width, mul_pipeline, rng):
    dut = ProcessingElement(acc_width=acc_width, mul_pipeline=mul_pipeline)
    sums = [np.full(40, -128), rng.integers(-128, 128, 1), rng.integers(-128, 128, 17)]
    sums += [rng.integers(-128, 128, rng.integers(1, 30)) for _ in range(10)]
    weights = [np.full_like(s, -128) if i == 0 else rng.integers(-128, 128, len(s))
               for i, s in enumerate(sums)]

    async def bench(ctx):
        for xs, ws in zip(sums, weights):
            for i, (x, w) in enumerate(zip(xs, ws)):
                ctx.set(dut.x, int(x))
                ctx.set(dut.w, int(w))
                ctx.set(dut.valid, 1)
                ctx.set(dut.clear, int(i == 0))
                await ctx.tick()
                if rng.random() < 0.25:
                    ctx.set(dut.valid, 0)
                    await ctx.tick()
            ctx.set(dut.valid, 0)
            await ctx.tick().repeat(dut.latency)
            expected = int(wrap(int(np.dot(xs.astype(np.int64), ws.astype(np.int64))), acc_width))
            got = ctx.get(dut.acc)
            assert got == expected, f"acc_width={acc_width}: expected {expected}, got {got}"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_pe_parameter_errors():
    with pytest.raises(ValueError, match=r"mul_pipeline must be between 0 and 3, not 4"):
        ProcessingElement(mul_pipeline=4)
    with pytest.raises(ValueError, match=r"acc_width must be between 16 and 64, not 15"):
        ProcessingElement(acc_width=15)
    with pytest.raises(TypeError, match=r"data_width must be an integer, not 8.0"):
        ProcessingElement(data_width=8.0)
