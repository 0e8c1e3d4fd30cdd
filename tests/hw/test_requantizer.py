"""amaranth.sim tests of hw.requantizer.Requantizer against golden.quant.requantize."""

import random

import numpy as np
import pytest
from amaranth.hdl import Signal
from amaranth.sim import Simulator
from sparsemac.golden.lut import requantize_to
from sparsemac.golden.quant import requantize
from sparsemac.hw.post.requantizer import Requantizer

# -- stream helpers shared by the output-pipeline unit tests ---------------------------------


def run_stream_sim(dut, beats, *, seed, load=None, stall=0.3, backpressure=0.3, timeout=None,
                   latency=None, after=None):
    """Drive ``beats`` (payload dicts) into ``dut.i`` and collect ``dut.o`` payloads.

    ``load(ctx)`` (async) runs before streaming (table writes), ``after(ctx)`` (async) once
    every output beat was taken (status reads).  The producer inserts idle
    cycles with probability ``stall`` and the consumer drops ``ready`` with probability
    ``backpressure`` (seeded).  When ``latency`` is given and both are 0, the test also checks
    that the first output appears exactly ``latency`` cycles after the first input.
    Returns the list of output payloads (as read from the simulator).
    """
    prng = random.Random(seed)
    out = []
    timing = {}
    cycle = Signal(32, name="cycle")

    async def count(ctx):
        n = 0
        async for _ in ctx.tick():
            n += 1
            ctx.set(cycle, n)

    async def put_all(ctx):
        if load is not None:
            await load(ctx)
        for n, b in enumerate(beats):
            while stall and prng.random() < stall:
                await ctx.tick()
            ctx.set(dut.i.payload, b)
            ctx.set(dut.i.valid, 1)
            _, t = await ctx.tick().sample(dut.i.ready, cycle).until(dut.i.ready)
            if n == 0:
                timing["first_in"] = t
            ctx.set(dut.i.valid, 0)

    async def get_all(ctx):
        crng = random.Random(seed + 1)
        deadline = timeout or (len(beats) * 20 + 2000)
        while len(out) < len(beats) and ctx.get(cycle) < deadline:
            rdy = not (backpressure and crng.random() < backpressure)
            ctx.set(dut.o.ready, int(rdy))
            _, _, valid, payload, t = await ctx.tick().sample(dut.o.valid, dut.o.payload,
                                                               cycle)
            if valid and rdy:
                out.append(payload)
                if len(out) == 1:
                    timing["first_out"] = t
        ctx.set(dut.o.ready, 0)
        if after is not None and len(out) == len(beats):
            await after(ctx)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(count)
    sim.add_testbench(put_all, background=True)
    sim.add_testbench(get_all)
    sim.run()
    assert len(out) == len(beats), (
        f"seed={seed}: got {len(out)} of {len(beats)} beats before the time-out")
    if latency is not None and not stall and not backpressure:
        got = timing["first_out"] - timing["first_in"]
        assert got == latency, f"seed={seed}: latency expected {latency}, got {got}"
    return out


# -- tests ------------------------------------------------------------------------------------

EDGE_ACCS = [0, 1, -1, 2**31 - 1, -2**31, 2**30, -2**30, 127, -128, 255, -257, 12345, -12345]


def _random_params(rng, channels):
    bias = rng.integers(-2**31, 2**31, channels)
    mult = rng.integers(1, 2**31, channels)
    shift = rng.integers(1, 64, channels)
    # a share of "realistic" parameters whose results do not all saturate
    k = channels // 2
    mult[:k] = rng.integers(2**29, 2**31, k)
    shift[:k] = rng.integers(30, 48, k)
    bias[:k] = rng.integers(-2**12, 2**12, k)
    mult[0], shift[0] = 1, 1  # exact tie cases: +-x.5
    bias[0] = 0
    return bias, mult, shift


def _load_params(dut, bias, mult, shift):
    async def load(ctx):
        for c in range(len(bias)):
            ctx.set(dut.params.en, 1)
            ctx.set(dut.params.addr, c)
            ctx.set(dut.params.bias, int(bias[c]))
            ctx.set(dut.params.mult, int(mult[c]))
            ctx.set(dut.params.shift, int(shift[c]))
            await ctx.tick()
        ctx.set(dut.params.en, 0)
    return load


def _beats(rng, lanes, channels, n, acc_width):
    lo, hi = -(1 << (acc_width - 1)), 1 << (acc_width - 1)
    beats = []
    for b in range(n):
        c = int(rng.integers(0, channels))
        if b % 3 == 0:
            acc = [int(rng.choice(EDGE_ACCS)) for _ in range(lanes)]
            acc = [int(np.clip(a, lo, hi - 1)) for a in acc]
        else:
            acc = [int(v) for v in rng.integers(lo, hi, lanes)]
        if b % 5 == 1:  # small values around the rounding points
            acc = [int(v) for v in rng.integers(-600, 600, lanes)]
        beats.append({"data": acc, "channel": c, "last": int(b % 7 == 6)})
    return beats


@pytest.mark.parametrize("lanes,acc_width,channels,out_width,stall,bp", [
    (4, 32, 5, 8, 0.3, 0.3),
    (1, 32, 1, 8, 0.5, 0.5),
    (3, 20, 7, 8, 0.2, 0.4),
    (2, 48, 4, 8, 0.3, 0.3),
    (2, 32, 4, 16, 0.3, 0.3),
    (4, 32, 5, 8, 0.0, 0.0),
])
def test_requantizer_matches_golden(seed, rng, lanes, acc_width, channels, out_width, stall, bp):
    dut = Requantizer(lanes=lanes, acc_width=acc_width, max_channels=channels,
                      out_width=out_width)
    bias, mult, shift = _random_params(rng, channels)
    beats = _beats(rng, lanes, channels, 150, acc_width)
    out = run_stream_sim(dut, beats, seed=seed, load=_load_params(dut, bias, mult, shift),
                         stall=stall, backpressure=bp, latency=dut.latency)
    for n, (b, o) in enumerate(zip(beats, out)):
        c = b["channel"]
        acc = np.array(b["data"], dtype=np.int64)
        if out_width == 8:
            exp = requantize(acc, bias[c], mult[c], shift[c], acc_width=acc_width)
        else:
            exp = requantize_to(acc, bias[c], mult[c], shift[c], acc_width=acc_width,
                                out_width=out_width)
        got = [o.data[j] for j in range(lanes)]
        assert list(map(int, exp)) == got and o.last == b["last"], (
            f"seed={seed} beat {n}: acc={b['data']} ch={c} bias={bias[c]} mult={mult[c]} "
            f"shift={shift[c]}: expected {list(map(int, exp))} last={b['last']}, "
            f"got {got} last={o.last}")


def test_requantizer_latency_property():
    assert Requantizer(acc_width=32).latency == 9
    assert Requantizer(acc_width=48).latency == 10


@pytest.mark.parametrize("kw,exc,msg", [
    ({"lanes": 0}, ValueError, "lanes must be between 1 and 64, not 0"),
    ({"lanes": 2.0}, TypeError, "lanes must be an integer, not 2.0"),
    ({"acc_width": 65}, ValueError, "acc_width must be between 8 and 64, not 65"),
    ({"max_channels": 0}, ValueError, "max_channels must be between 1 and 65536, not 0"),
    ({"out_width": 7}, ValueError, "out_width must be between 8 and 32, not 7"),
])
def test_requantizer_rejects_impossible_parameters(kw, exc, msg):
    with pytest.raises(exc, match=f"^{msg}$"):
        Requantizer(**kw)
