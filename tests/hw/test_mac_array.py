"""MacArray under amaranth.sim: independent lanes with random idles vs a NumPy oracle."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsemac.golden.quant import wrap
from sparsemac.hw.tile.mac_array import MacArray


@pytest.mark.parametrize("rows,cols,acc_width,mul_pipeline", [(2, 3, 32, 2), (1, 1, 20, 0),
                                                              (3, 2, 24, 1)])
def test_mac_array_independent_lanes(rows, cols, acc_width, mul_pipeline, rng, seed):
    dut = MacArray(rows=rows, cols=cols, acc_width=acc_width, mul_pipeline=mul_pipeline)
    # per lane: a list of sums; each sum is a list of (w, x[cols]) pairs
    plans = []
    for _r in range(rows):
        sums = [[(-128, np.full(cols, -128))] * 30]
        for _ in range(6):
            n = int(rng.integers(1, 12))
            sums.append([(int(rng.integers(-128, 128)), rng.integers(-128, 128, cols))
                         for _ in range(n)])
        plans.append(sums)

    async def bench(ctx):
        for r in range(rows):
            for sums in [plans[r]]:
                for pairs in sums:
                    for i, (w, x) in enumerate(pairs):
                        ctx.set(dut.w[r], w)
                        for c in range(cols):
                            ctx.set(dut.x[r][c], int(x[c]))
                        ctx.set(dut.valid, 1 << r)
                        ctx.set(dut.clear, (1 << r) if i == 0 else 0)
                        await ctx.tick()
                        if rng.random() < 0.3:
                            ctx.set(dut.valid, 0)
                            await ctx.tick()
                    ctx.set(dut.valid, 0)
                    await ctx.tick().repeat(dut.latency)
                    ws = np.array([p[0] for p in pairs], dtype=np.int64)
                    xs = np.array([p[1] for p in pairs], dtype=np.int64)
                    expected = wrap(ws @ xs, acc_width)
                    for c in range(cols):
                        got = ctx.get(dut.acc[r][c])
                        assert got == int(expected[c]), (
                            f"seed={seed} lane {r} col {c}: expected {int(expected[c])}, "
                            f"got {got}")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_mac_array_parameter_errors():
    with pytest.raises(ValueError, match=r"rows must be between 1 and 64, not 0"):
        MacArray(rows=0, cols=2)
    with pytest.raises(TypeError, match=r"cols must be an integer, not 2.0"):
        MacArray(rows=2, cols=2.0)
    with pytest.raises(ValueError, match=r"mul_pipeline must be between 0 and 3, not 5"):
        MacArray(rows=2, cols=2, mul_pipeline=5)
