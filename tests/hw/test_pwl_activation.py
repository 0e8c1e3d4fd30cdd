"""amaranth.sim tests of hw.pwl_activation.PwlActivation against golden.lut.pwl_apply."""

import numpy as np
import pytest
from sparsemac.golden.lut import FUNCTIONS, PwlTable, build_pwl, pwl_apply
from sparsemac.hw.post.pwl_activation import PwlActivation

from tests.hw.test_requantizer import run_stream_sim


def _inputs(rng, segments, n):
    """Segment boundaries (first/last point of every segment, +-1), extremes, random."""
    ow = 16 - (segments.bit_length() - 1)
    starts = np.arange(segments) * (1 << ow) - 32768
    edges = np.concatenate([starts, starts - 1, starts + 1, starts + (1 << ow) - 1,
                            [-32768, -32767, 32767, 32766, 0, -1, 1]])
    edges = edges[(edges >= -32768) & (edges <= 32767)]
    return np.concatenate([edges, rng.integers(-32768, 32768, n)]).astype(np.int64)


def _random_table(rng, segments, out_width):
    """Arbitrary contents: full-range bases and slopes, every shift."""
    return PwlTable(rng.integers(-2**31, 2**31, segments), rng.integers(-2**17, 2**17, segments),
                    rng.integers(1, 32, segments), out_width)


def _check(dut, table, xs, *, seed, stall, bp):
    lanes = dut.lanes
    xs = np.concatenate([xs, np.zeros((-len(xs)) % lanes, dtype=np.int64)])
    beats = [{"data": [int(v) for v in xs[k:k + lanes]], "last": int(k // lanes % 5 == 4)}
             for k in range(0, len(xs), lanes)]
    counters = {}

    async def load(ctx):
        for s in range(table.segments):
            ctx.set(dut.wr.en, 1)
            ctx.set(dut.wr.addr, s)
            ctx.set(dut.wr.base, int(table.base[s]))
            ctx.set(dut.wr.slope, int(table.slope[s]))
            ctx.set(dut.wr.shift, int(table.shift[s]))
            await ctx.tick()
        ctx.set(dut.wr.en, 0)
        ctx.set(dut.clear_counters, 1)  # counters start from a known state
        await ctx.tick()
        ctx.set(dut.clear_counters, 0)

    async def after(ctx):
        await ctx.tick()
        counters["under"], counters["over"] = ctx.get(dut.underflows), ctx.get(dut.overflows)
        ctx.set(dut.clear_counters, 1)
        await ctx.tick()
        ctx.set(dut.clear_counters, 0)
        counters["cleared"] = (ctx.get(dut.underflows), ctx.get(dut.overflows))

    out = run_stream_sim(dut, beats, seed=seed, load=load, after=after, stall=stall,
                         backpressure=bp, latency=dut.latency)
    exp, n_under, n_over = pwl_apply(xs, table, counts=True)
    got = np.array([[o.data[j] for j in range(lanes)] for o in out]).ravel()
    bad = np.nonzero(got != exp)[0]
    if bad.size:
        x = int(xs[bad[0]])
        sg = (x + 32768) >> table.offset_width
        raise AssertionError(
            f"seed={seed}: x={x} (segment {sg}: base={table.base[sg]} slope={table.slope[sg]} "
            f"shift={table.shift[sg]}) expected {exp[bad[0]]}, got {got[bad[0]]} "
            f"({bad.size} mismatches)")
    assert [o.last for o in out] == [b["last"] for b in beats], f"seed={seed}: last flags"
    assert (counters["under"], counters["over"]) == (n_under, n_over), (
        f"seed={seed}: counters expected under={n_under} over={n_over}, got "
        f"{counters['under']} {counters['over']}")
    assert counters["cleared"] == (0, 0), f"seed={seed}: clear_counters left {counters}"


@pytest.mark.parametrize("lanes,segments,out_width,stall,bp", [
    (4, 32, 8, 0.3, 0.3),
    (2, 4, 16, 0.2, 0.4),
    (1, 256, 8, 0.0, 0.0),
    (3, 64, 16, 0.3, 0.2),
])
def test_pwl_matches_golden(seed, rng, lanes, segments, out_width, stall, bp):
    dut = PwlActivation(lanes=lanes, segments=segments, out_width=out_width)
    names = list(FUNCTIONS)
    func = names[int(rng.integers(len(names)))]
    hi = (1 << (out_width - 1)) - 1
    table = build_pwl(func, float(rng.uniform(2, 10)) / 32768, float(rng.uniform(0.5, 5)) / hi,
                      segments=segments, out_width=out_width)
    print(f"function {func}")
    _check(dut, table, _inputs(rng, segments, 300), seed=seed, stall=stall, bp=bp)


@pytest.mark.parametrize("out_width", [8, 16])
def test_pwl_arbitrary_tables_saturate_and_count(seed, rng, out_width):
    dut = PwlActivation(lanes=2, segments=8, out_width=out_width)
    table = _random_table(rng, 8, out_width)
    _check(dut, table, _inputs(rng, 8, 200), seed=seed, stall=0.2, bp=0.2)


@pytest.mark.parametrize("kw,exc,msg", [
    ({"segments": 24}, ValueError, "segments must be a power of two between 4 and 256, not 24"),
    ({"segments": 2}, ValueError, "segments must be a power of two between 4 and 256, not 2"),
    ({"segments": 512}, ValueError, "segments must be a power of two between 4 and 256, not 512"),
    ({"lanes": 0}, ValueError, "lanes must be between 1 and 64, not 0"),
    ({"out_width": 12}, ValueError, "out_width must be 8 or 16, not 12"),
    ({"out_width": "8"}, TypeError, "out_width must be an integer, not '8'"),
])
def test_pwl_rejects_impossible_parameters(kw, exc, msg):
    with pytest.raises(exc, match=f"^{msg}$"):
        PwlActivation(**kw)
