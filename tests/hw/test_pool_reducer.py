"""PoolReducer under amaranth.sim: every pooled row against golden's max / avg_divide, with the
gather running ahead at random speed and random output back-pressure."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsemac.golden.pool import avg_divide
from sparsemac.hw.tile.pool_reducer import MAX_WINDOW, PoolReducer

CASES = [  # (cols, lanes, kk, chans, ncg)
    (4, 4, 4, 3, 2),
    (4, 1, 9, 2, 3),
    (4, 2, 1, 5, 2),        # a 1x1 window: every entry is a whole window
    (16, 4, 2, 2, 2),       # division slower than the window
    (3, 3, MAX_WINDOW, 1, 1),
    (2, 1, 7, 4, 1),
]


def _expected(entries, kk, chans, ncg, avg):
    out = []
    for cg in range(ncg):
        for ch in range(chans):
            win = entries[(cg * chans + ch) * kk:(cg * chans + ch + 1) * kk].astype(np.int64)
            if avg:
                y = avg_divide(win.sum(axis=0), kk, max_count=256)
            else:
                y = win.max(axis=0)
            out.append((ch, cg, [int(v) for v in y]))
    return out


@pytest.mark.parametrize("case", CASES, ids=[f"c{c[0]}l{c[1]}kk{c[2]}" for c in CASES])
@pytest.mark.parametrize("avg", [0, 1], ids=["max", "avg"])
def test_pool_reducer(case, avg, seed):
    cols, lanes, kk, chans, ncg = case
    rng = np.random.default_rng(seed)
    n = kk * chans * ncg
    entries = rng.integers(-128, 128, size=(n, cols), dtype=np.int64)
    # extremes: all -128 (max = -128; avg sum at its lowest), all 127, ties of +-0.5
    entries[:min(n, kk)] = -128
    if n >= 2 * kk:
        entries[kk:2 * kk] = 127
    want = _expected(entries, kk, chans, ncg, avg)
    dut = PoolReducer(cols=cols, lanes=lanes, addr_width=12)
    mem = [sum((int(v) & 0xFF) << (8 * j) for j, v in enumerate(row)) for row in entries]

    async def bench(ctx):
        ctx.set(dut.avg, avg)
        ctx.set(dut.kk, kk)
        ctx.set(dut.chans, chans)
        ctx.set(dut.ncg, ncg)
        ctx.set(dut.avail, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        avail, got, cycles = 0, [], 0
        while len(got) < len(want):
            cycles += 1
            assert cycles < 50 * n + 500, f"seed {seed}: stuck after {len(got)} results"
            if avail < n and rng.random() < 0.7:
                avail += 1
            ctx.set(dut.avail, avail)
            ready = int(rng.random() < 0.6)
            ctx.set(dut.o.ready, ready)
            addr = ctx.get(dut.raddr)
            if ctx.get(dut.o.valid) and ready:
                p = ctx.get(dut.o.payload)
                got.append((int(p.m), int(p.cg), [int(v) for v in p.y]))
            await ctx.tick()
            ctx.set(dut.rdata, mem[addr] if addr < n else 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(5):
            await ctx.tick()
        assert not ctx.get(dut.busy), f"seed {seed}: busy after the last result"
        assert not ctx.get(dut.o.valid), f"seed {seed}: a result past the last window"
        for i, (g, w) in enumerate(zip(got, want)):
            assert g == w, (f"seed {seed} {'avg' if avg else 'max'} cols={cols} kk={kk}: "
                            f"result {i}: got (m, cg, y) {g}, expected {w}")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
