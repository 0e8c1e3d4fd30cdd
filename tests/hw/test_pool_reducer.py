"""PoolReducer under amaranth.sim: every pooled row against golden's max / avg_divide (dividing
by ``KH*KW`` or by each column's count of real entries), with the gather running ahead at
random speed and random output back-pressure."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsemac.golden.pool import avg_divide, avg_recip
from sparsemac.hw.tile.pool_reducer import AVG_SHIFT, MAX_WINDOW, PoolReducer, recip_table

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
    for ch in range(chans):         # channel after channel, its column groups in order
        for cg in range(ncg):
            win = entries[(ch * ncg + cg) * kk:(ch * ncg + cg + 1) * kk].astype(np.int64)
            if avg:
                y = avg_divide(win.sum(axis=0), kk, max_count=256)
            else:
                y = win.max(axis=0)
            out.append((ch, cg, [int(v) for v in y]))
    return out


def _run(dut, entries, *, kk, chans, ncg, avg, exclude_pad, rng, seed, real=None,
         p_ready=0.6, p_avail=0.7):
    """Run one layer through ``dut``: the gather's ``avail`` advances at random (``p_avail``),
    ``o.ready`` is random (``p_ready``); ``real`` (entries x cols of 0/1, default all 1) are
    the entries' flags.  Returns the results ``(m, cg, y)`` and the cycles they were taken."""
    n, cols = entries.shape
    real = np.ones(entries.shape, dtype=np.int64) if real is None else real
    mem = [sum((int(v) & 0xFF) << (8 * j) for j, v in enumerate(row)) for row in entries]
    flags = [sum(int(v) << j for j, v in enumerate(row)) for row in real]
    nres = chans * ncg
    got, when = [], []

    async def bench(ctx):
        ctx.set(dut.avg, avg)
        ctx.set(dut.exclude_pad, exclude_pad)
        ctx.set(dut.kk, kk)
        ctx.set(dut.chans, chans)
        ctx.set(dut.ncg, ncg)
        ctx.set(dut.avail, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        avail, cycles = 0, 0
        while len(got) < nres:
            cycles += 1
            assert cycles < 50 * n + 500, f"seed {seed}: stuck after {len(got)} results"
            if avail < n and rng.random() < p_avail:
                avail += 1
            ctx.set(dut.avail, avail)
            ready = int(rng.random() < p_ready)
            ctx.set(dut.o.ready, ready)
            addr = ctx.get(dut.raddr)
            if ctx.get(dut.o.valid) and ready:
                p = ctx.get(dut.o.payload)
                got.append((int(p.m), int(p.cg), [int(v) for v in p.y]))
                when.append(cycles)
            await ctx.tick()
            ctx.set(dut.rdata, mem[addr] if addr < n else 0)
            ctx.set(dut.rdata_real, flags[addr] if addr < n else 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(5):
            await ctx.tick()
        assert not ctx.get(dut.busy), f"seed {seed}: busy after the last result"
        assert not ctx.get(dut.o.valid), f"seed {seed}: a result past the last window"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got, when


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
    got, _ = _run(dut, entries, kk=kk, chans=chans, ncg=ncg, avg=avg, exclude_pad=0, rng=rng,
                  seed=seed)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, (f"seed {seed} {'avg' if avg else 'max'} cols={cols} kk={kk}: "
                        f"result {i}: got (m, cg, y) {g}, expected {w}")


def test_recip_table_is_goldens():
    """The count-real table against golden's ``avg_recip`` (``R[0] = 0``: no real position)."""
    table = recip_table()
    assert len(table) == MAX_WINDOW + 1 and table[0] == 0
    want = avg_recip(np.arange(1, MAX_WINDOW + 1), AVG_SHIFT)
    assert table[1:] == [int(v) for v in want]
    assert max(table).bit_length() == AVG_SHIFT + 1         # R[1] = 2**25: the port's width


REAL_CASES = [  # (cols, lanes, kk, chans, ncg)
    (4, 4, 4, 3, 3),
    (4, 1, 9, 2, 3),        # one lane: four table reads per window, one per division cycle
    (8, 2, 6, 2, 2),
    (16, 4, 2, 2, 3),       # division slower than the window
    (3, 3, MAX_WINDOW, 1, 2),
    (2, 1, MAX_WINDOW, 2, 2),
]


def _real_flags(rng, kk, chans, ncg, cols):
    """Per window and column a random set of real entries (as a gather flags them), the same
    for every channel of a column group; with the bounds in every layer: count 1 (a corner of
    a padded 2x2), ``kk`` (an interior window, 225 at 15x15), ``kk - 1`` and 0 (a column past
    the output)."""
    real = np.zeros((ncg * chans * kk, cols), dtype=np.int64)
    for cg in range(ncg):
        counts = rng.integers(1, kk + 1, size=cols)
        fixed = [1, kk, max(1, kk - 1), 0]
        for j in range(min(cols, len(fixed))):
            counts[(j + cg) % cols] = fixed[j]
        for j, c in enumerate(counts):
            pos = rng.permutation(kk)[:c]
            for ch in range(chans):
                real[(ch * ncg + cg) * kk + pos, j] = 1
    return real


@pytest.mark.parametrize("case", REAL_CASES, ids=[f"c{c[0]}l{c[1]}kk{c[2]}" for c in REAL_CASES])
def test_pool_reducer_divides_by_the_real_count(case, seed):
    """``exclude_pad``: every column's average divides by its own count of real entries,
    bit-exact with golden's ``avg_divide`` (padding entries read -128 and add nothing),
    counts 1, ``kk - 1``, ``kk`` (225 at the largest window) and 0 (a column past the
    output: -128) in every layer, with random gather speed and ``o.ready`` stalls."""
    cols, lanes, kk, chans, ncg = case
    rng = np.random.default_rng(seed)
    real = _real_flags(rng, kk, chans, ncg, cols)
    entries = rng.integers(-128, 128, size=real.shape, dtype=np.int64)
    # extremes on the real entries of the first windows (all -128, all 127), random windows
    # after them
    if len(entries) >= 3 * kk:
        entries[:kk] = -128
        entries[kk:2 * kk] = 127
    entries[real == 0] = -128                       # the gather's padding byte
    want = []
    for ch in range(chans):
        for cg in range(ncg):
            w = slice((ch * ncg + cg) * kk, (ch * ncg + cg + 1) * kk)
            counts = real[w].sum(axis=0)
            sums = (entries[w] * real[w]).sum(axis=0)
            y = avg_divide(sums, np.maximum(counts, 1), max_count=kk).astype(np.int64)
            y[counts == 0] = -128
            want.append((ch, cg, [int(v) for v in y], [int(c) for c in counts]))
    dut = PoolReducer(cols=cols, lanes=lanes, addr_width=12)
    got, _ = _run(dut, entries, kk=kk, chans=chans, ncg=ncg, avg=1, exclude_pad=1, rng=rng,
                  seed=seed, real=real)
    assert len(got) == len(want)
    for i, (g, (ch, cg, y, counts)) in enumerate(zip(got, want)):
        assert g == (ch, cg, y), (f"seed {seed} cols={cols} lanes={lanes} kk={kk}: result {i} "
                                  f"(counts {counts}): got (m, cg, y) {g}, expected "
                                  f"{(ch, cg, y)}")


@pytest.mark.parametrize("case", [(4, 1, 2, 2, 3), (8, 2, 9, 2, 2), (4, 4, 1, 3, 2)],
                         ids=["c4l1kk2", "c8l2kk9", "c4l4kk1"])
def test_pool_reducer_real_count_takes_the_same_cycles(case, seed):
    """Both divisors take the same cycles: the same layer (every entry real) under the same
    random gather and output stalls, with ``exclude_pad`` 0 and 1, gives the same results at
    the same cycles (the cycle model has one rule, `golden.net_pool.pool_channel_tokens`)."""
    cols, lanes, kk, chans, ncg = case
    entries = np.random.default_rng(seed).integers(-128, 128, size=(kk * chans * ncg, cols))
    runs = []
    for excl in (0, 1):
        dut = PoolReducer(cols=cols, lanes=lanes, addr_width=12)
        runs.append(_run(dut, entries, kk=kk, chans=chans, ncg=ncg, avg=1, exclude_pad=excl,
                         rng=np.random.default_rng(seed), seed=seed))
    assert runs[0] == runs[1], (f"seed {seed} {case}: INCLUDE_PAD {runs[0]}\n"
                                f"count-real {runs[1]}")
