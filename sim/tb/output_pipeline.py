"""cocotb testbench of hw.output_pipeline.OutputPipeline (requant -> LUT) against golden.

The block parameters come from ``SPARSEMAC_PARAMS`` (``sim.tb.base.params_from_env``):
``lanes``, ``acc_width``, ``channels``, ``latency``, ``pwl_latency``, ``pwl_segments``,
``out_width`` (the PWL path's output width) and optionally ``bench_json`` (where ``throughput``
writes its numbers); the seed from the run.
"""

import json
import random

import cocotb
import numpy as np
from cocotb.triggers import Event, ReadOnly, RisingEdge
from sparsemac.golden.lut import (
    FUNCTIONS,
    build_lut,
    build_pwl,
    output_pipeline,
    pwl_apply,
    requantize_to,
)

from .base import TB, params_from_env, run_seed

P = params_from_env()
SEED = run_seed()
LANES = int(P["lanes"])
ACC_WIDTH = int(P["acc_width"])
CHANNELS = int(P["channels"])
LATENCY = int(P["latency"])
PWL_LATENCY = int(P["pwl_latency"])
SEGMENTS = int(P["pwl_segments"])
OUT_WIDTH = int(P["out_width"])
CH_WIDTH = max(1, (CHANNELS - 1).bit_length())


def pack_in(accs, channel, last):
    v = 0
    mask = (1 << ACC_WIDTH) - 1
    for j, a in enumerate(accs):
        v |= (int(a) & mask) << (j * ACC_WIDTH)
    v |= channel << (LANES * ACC_WIDTH)
    v |= last << (LANES * ACC_WIDTH + CH_WIDTH)
    return v


def unpack_out(v):
    vals = []
    w = OUT_WIDTH
    for j in range(LANES):
        b = (v >> (w * j)) & ((1 << w) - 1)
        vals.append(b - (1 << w) if b >> (w - 1) else b)
    return vals, (v >> (w * LANES)) & 1


class PipelineTB(TB):
    """The output pipeline's :class:`sim.tb.base.TB`: the ``i`` source (idle knob, seeded by
    the run's seed), the ``o`` sink (backpressure knob, its own generator seeded ``seed + 7``),
    parameter and table loaders.

    Members
    -------
    out : StreamSink
        Beats of ``o`` as ``((values, last), cycle)``; start it with ``out.start()``.
    accepted : list of int
        Cycle of each accepted input beat.
    """

    reset_cycles = 2

    def __init__(self, dut, *, idle=0.0, backpressure=0.0):
        super().__init__(dut, seed=SEED, idle=idle, backpressure=backpressure)
        self.accepted = []
        self.out = self.sink("o", rng=random.Random(SEED + 7), decode=unpack_out)

    def quiet_inputs(self):
        d = self.dut
        return (d.i__valid, d.o__ready, d.params__en, d.lut_wr__en, d.lut_swap, d.mode,
                d.pwl_wr__en, d.pwl_clear)

    async def load_params(self, bias, mult, shift):
        d = self.dut
        for c in range(len(bias)):
            d.params__en.value = 1
            d.params__addr.value = c
            d.params__bias.value = int(bias[c]) & 0xFFFFFFFF
            d.params__mult.value = int(mult[c])
            d.params__shift.value = int(shift[c])
            await RisingEdge(d.clk)
        d.params__en.value = 0

    async def load_table(self, table, swap=True):
        """Write ``table`` into the shadow bank (after any pending swap) and strobe ``swap``."""
        d = self.dut
        while True:
            await ReadOnly()
            pending = int(d.lut_swap_pending.value)
            await RisingEdge(d.clk)
            if not pending:
                break
        for a, v in enumerate(table):
            d.lut_wr__en.value = 1
            d.lut_wr__addr.value = a
            d.lut_wr__data.value = int(v) & 0xFF
            await RisingEdge(d.clk)
        d.lut_wr__en.value = 0
        if swap:
            d.lut_swap.value = 1
            await RisingEdge(d.clk)
            d.lut_swap.value = 0

    async def load_pwl(self, table):
        d = self.dut
        for s in range(table.segments):
            d.pwl_wr__en.value = 1
            d.pwl_wr__addr.value = s
            d.pwl_wr__base.value = int(table.base[s]) & 0xFFFFFFFF
            d.pwl_wr__slope.value = int(table.slope[s]) & 0x3FFFF
            d.pwl_wr__shift.value = int(table.shift[s])
            await RisingEdge(d.clk)
        d.pwl_wr__en.value = 0
        d.pwl_clear.value = 1
        await RisingEdge(d.clk)
        d.pwl_clear.value = 0

    async def send_beats(self, beats):
        """Drive (accs, channel, last) beats on ``i`` (the base's source: seeded idle cycles
        between transfers, ``valid`` held until ``ready``)."""
        await self.send("i", [pack_in(accs, ch, last) for accs, ch, last in beats],
                        on_accept=lambda _i, cycle: self.accepted.append(cycle))

    async def finish(self):
        """End of a test: let the pipeline drain, then no beat may be left unchecked."""
        await self.cycles(max(LATENCY, PWL_LATENCY) + 4)
        self.check_sinks_empty()


def random_params(rng):
    bias = rng.integers(-2**20, 2**20, CHANNELS)
    mult = rng.integers(2**29, 2**31, CHANNELS)
    shift = rng.integers(34, 44, CHANNELS)
    bias[0], mult[0], shift[0] = 0, 1, 1  # channel 0: acc = 2*y gives exactly y (all 256 codes)
    return bias, mult, shift


def expected(beats, tables_of_beats, params):
    bias, mult, shift = params
    exp = []
    for (accs, ch, last), table in zip(beats, tables_of_beats):
        y = output_pipeline(np.array(accs, dtype=np.int64), bias[ch], mult[ch], shift[ch], table,
                            acc_width=ACC_WIDTH)
        exp.append(([int(v) for v in y], last))
    return exp


def check(tb, exp, what):
    """Consume every pending beat of ``tb.out``: exactly ``exp``; returns ``((vals, last),
    cycle)`` of each."""
    got = tb.out.take()
    assert len(got) == len(exp), (
        f"seed={SEED} {what}: expected {len(exp)} beats, got {len(got)}")
    for n, (((vals, last), _), (ev, el)) in enumerate(zip(got, exp)):
        assert vals == ev and last == el, (
            f"seed={SEED} {what} beat {n}: expected {ev} last={el}, got {vals} last={last}")
    return got


def packet_all_codes(rng, extra):
    """Every int8 code through channel 0 (acc = 2*y), then ``extra`` random beats."""
    codes = np.arange(-128, 128)
    rng.shuffle(codes)
    beats = []
    for k in range(0, 256, LANES):
        chunk = list(codes[k:k + LANES]) + [0] * max(0, k + LANES - 256)
        beats.append(([2 * int(c) for c in chunk], 0, 0))
    lo, hi = -(1 << (ACC_WIDTH - 1)), 1 << (ACC_WIDTH - 1)
    for _ in range(extra):
        ch = int(rng.integers(0, CHANNELS))
        accs = rng.integers(-2**14, 2**14, LANES) if rng.random() < 0.7 else \
            rng.integers(lo, hi, LANES)
        beats.append(([int(a) for a in accs], ch, 0))
    beats[-1] = (beats[-1][0], beats[-1][1], 1)
    return beats


async def run_functions(dut, idle, backpressure):
    rng = np.random.default_rng(SEED)
    tb = PipelineTB(dut, idle=idle, backpressure=backpressure)
    await tb.reset()
    params = random_params(rng)
    await tb.load_params(*params)
    tb.out.start()
    names = list(FUNCTIONS)
    tables = [build_lut(f, float(rng.uniform(0.005, 0.12)), float(rng.uniform(0.005, 0.08)))
              for f in names]
    packets = [packet_all_codes(rng, int(rng.integers(1, 20))) for _ in names]
    await tb.load_table(tables[0])
    all_beats, all_tables = [], []
    for p, pk in enumerate(packets):
        swapped = Event()

        async def loader(p=p, swapped=swapped):
            if p + 1 < len(tables):
                await tb.load_table(tables[p + 1])
            swapped.set()

        cocotb.start_soon(loader())
        await tb.send_beats(pk)      # packet p uses table p: its swap was strobed before
        await swapped.wait()   # packet p + 1 may start only after table p + 1's swap strobe
        all_beats += pk
        all_tables += [tables[p]] * len(pk)
    await tb.out.wait(len(all_beats))
    check(tb, expected(all_beats, all_tables, params), f"functions idle={idle} bp={backpressure}")
    await tb.finish()
    return tb


@cocotb.test()
async def every_function_all_codes_with_stalls(dut):
    """Every function, random scales, all 256 inputs, swaps between packets, idle + bp."""
    await run_functions(dut, idle=0.2, backpressure=0.3)


@cocotb.test()
async def params_reload_between_streams(dut):
    """New per-channel parameters between two streams (random, full-range accumulators)."""
    rng = np.random.default_rng(SEED + 3)
    tb = PipelineTB(dut, idle=0.1, backpressure=0.2)
    await tb.reset()
    tb.out.start()
    table = build_lut("identity", 1.0, 1.0)
    await tb.load_table(table)
    lo, hi = -(1 << (ACC_WIDTH - 1)), 1 << (ACC_WIDTH - 1)
    sent = 0
    for _round in range(3):
        params = (rng.integers(-2**31, 2**31, CHANNELS), rng.integers(1, 2**31, CHANNELS),
                  rng.integers(1, 64, CHANNELS))
        await tb.load_params(*params)
        beats = [([int(a) for a in rng.integers(lo, hi, LANES)], int(rng.integers(CHANNELS)),
                  0) for _ in range(60)]
        beats[-1] = (beats[-1][0], beats[-1][1], 1)
        await tb.send_beats(beats)
        sent += len(beats)
        await tb.out.wait(sent)  # drain before the parameters change
        got = tb.out.take(len(beats))
        exp = expected(beats, [table] * len(beats), params)
        for n, (((vals, last), _), (ev, el)) in enumerate(zip(got, exp)):
            assert vals == ev and last == el, (
                f"seed={SEED} reload round {_round} beat {n}: {beats[n]} expected {ev}, "
                f"got {vals}")
    await tb.finish()


@cocotb.test()
async def throughput_and_swap_without_stall(dut):
    """1200 beats, continuous input, no back-pressure, a table swap every 300 beats.

    Table ``p + 1`` is loaded (256 write cycles) while packet ``p`` (300 beats) streams, and
    its swap is strobed before packet ``p`` ends, so the swap happens at the packet boundary.
    """
    rng = np.random.default_rng(SEED + 5)
    tb = PipelineTB(dut)
    await tb.reset()
    params = random_params(rng)
    await tb.load_params(*params)
    tb.out.start()
    tables = [build_lut(f, 0.05, 0.03) for f in ("gelu", "sigmoid", "tanh", "silu")]
    await tb.load_table(tables[0])
    beats, tabs = [], []
    for t in tables:
        pk = [([int(a) for a in rng.integers(-2**12, 2**12, LANES)],
               int(rng.integers(CHANNELS)), int(k == 299)) for k in range(300)]
        beats += pk
        tabs += [t] * len(pk)

    async def loader():
        for p in range(1, len(tables)):
            await tb.load_table(tables[p])

    cocotb.start_soon(loader())
    await tb.send_beats(beats)
    await tb.out.wait(len(beats))
    got = check(tb, expected(beats, tabs, params), "throughput")
    acc = np.array(tb.accepted)
    outc = np.array([c for _, c in got])
    span_in = int(acc[-1] - acc[0] + 1)
    span_out = int(outc[-1] - outc[0] + 1)
    latency = int(outc[0] - acc[0])
    assert latency == LATENCY, f"seed={SEED}: latency expected {LATENCY}, got {latency}"
    assert span_in == len(beats) and span_out == len(beats), (
        f"seed={SEED}: {len(beats)} beats took {span_in} input / {span_out} output cycles")
    await tb.finish()
    out = P.get("bench_json")
    if out:
        with open(out, "w") as fh:
            json.dump({"beats": len(beats), "lanes": LANES, "cycles_in": span_in,
                       "cycles_out": span_out, "latency": latency,
                       "values_per_cycle": len(beats) * LANES / span_out}, fh)


@cocotb.test()
async def interpolated_mode_edges_and_reload(dut):
    """PWL mode: segment boundaries, extremes, int16 saturation of the requantizer, two tables
    (reloaded between streams), saturation counters, idle cycles and back-pressure."""
    rng = np.random.default_rng(SEED + 11)
    tb = PipelineTB(dut, idle=0.2, backpressure=0.3)
    await tb.reset()
    dut.mode.value = 1
    params = random_params(rng)
    params[1][1:] = rng.integers(2**30, 2**31, CHANNELS - 1)  # others: wide, some saturating
    params[2][1:] = rng.integers(24, 34, CHANNELS - 1)
    await tb.load_params(*params)
    tb.out.start()
    ow = 16 - (SEGMENTS.bit_length() - 1)
    starts = np.arange(SEGMENTS) * (1 << ow) - 32768
    xs = np.concatenate([starts, starts - 1, starts + 1, starts + (1 << ow) - 1,
                         [-32768, 32767, 0, -1]])
    xs = xs[(xs >= -32768) & (xs <= 32767)]
    bias, mult, shift = params
    sent = 0
    for func in [str(f) for f in rng.choice(list(FUNCTIONS), 2, replace=False)]:
        hi = (1 << (OUT_WIDTH - 1)) - 1
        table = build_pwl(func, float(rng.uniform(2, 10)) / 32768,
                          float(rng.uniform(0.5, 5)) / hi, segments=SEGMENTS,
                          out_width=OUT_WIDTH)
        await tb.load_pwl(table)
        vals = np.concatenate([rng.permutation(xs), rng.integers(-32768, 32768, 40)])
        vals = np.concatenate([vals, np.zeros((-len(vals)) % LANES, dtype=np.int64)])
        beats = [([2 * int(v) for v in vals[k:k + LANES]], 0, 0)
                 for k in range(0, len(vals), LANES)]
        for _ in range(30):  # other channels: random accumulators, int16 saturation
            beats.append(([int(a) for a in rng.integers(-2**22, 2**22, LANES)],
                          int(rng.integers(1, CHANNELS)) if CHANNELS > 1 else 0, 0))
        beats[-1] = (beats[-1][0], beats[-1][1], 1)
        await tb.send_beats(beats)
        sent += len(beats)
        await tb.out.wait(sent)
        exp, n_under, n_over = [], 0, 0
        for accs, ch, last in beats:
            y16 = requantize_to(np.array(accs), bias[ch], mult[ch], shift[ch],
                                acc_width=ACC_WIDTH, out_width=16)
            y, u, o = pwl_apply(y16, table, counts=True)
            exp.append(([int(v) for v in y], last))
            n_under, n_over = n_under + u, n_over + o
        got = tb.out.take(len(beats))
        for n, (((v, last), _), (ev, el)) in enumerate(zip(got, exp)):
            assert v == ev and last == el, (
                f"seed={SEED} pwl {func} beat {n} acc={beats[n][0]} ch={beats[n][1]}: "
                f"expected {ev} last={el}, got {v} last={last}")
        await RisingEdge(dut.clk)
        counts = (int(dut.pwl_underflows.value), int(dut.pwl_overflows.value))
        assert counts == (n_under, n_over), (
            f"seed={SEED} pwl {func}: counters expected {(n_under, n_over)}, got {counts}")
    dut.mode.value = 0
    await tb.finish()


@cocotb.test()
async def interpolated_mode_latency(dut):
    """PWL mode latency without stalls equals ``pwl_latency``."""
    rng = np.random.default_rng(SEED + 13)
    tb = PipelineTB(dut)
    await tb.reset()
    dut.mode.value = 1
    await tb.load_params(*random_params(rng))
    await tb.load_pwl(build_pwl("tanh", 4 / 32768, 1.2 / ((1 << (OUT_WIDTH - 1)) - 1),
                                segments=SEGMENTS, out_width=OUT_WIDTH))
    tb.out.start()
    beats = [([2 * int(v) for v in rng.integers(-32768, 32768, LANES)], 0, int(k == 99))
             for k in range(100)]
    await tb.send_beats(beats)
    await tb.out.wait(len(beats))
    outc = [c for _, c in tb.out.take()]
    assert outc[0] - tb.accepted[0] == PWL_LATENCY, (
        f"seed={SEED}: pwl latency expected {PWL_LATENCY}, got {outc[0] - tb.accepted[0]}")
    assert outc[-1] - outc[0] + 1 == len(beats), f"seed={SEED}: pwl mode stalled"
    dut.mode.value = 0
    await tb.finish()
