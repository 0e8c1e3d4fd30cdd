"""amaranth.sim tests of hw.activation_lut.ActivationLut: tables, double-buffer swap, stalls."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsemac.golden.lut import FUNCTIONS, build_lut
from sparsemac.golden.quant import apply_lut
from sparsemac.hw.post.activation_lut import ActivationLut


def run_lut_packets(dut, packets, tables, *, seed, stall, backpressure):
    """Stream ``packets`` (lists of beats of int8 lanes); packet ``p`` must use ``tables[p]``.

    Table ``p`` is written into the shadow bank while packet ``p - 1`` streams (table 0 before
    anything), then ``swap`` is strobed once packet ``p - 1`` has begun; the next table's writes
    start once ``swap_pending`` is 0 (the documented protocol).  The producer never waits for
    a swap to present beats.
    Returns (outputs as lists of ints, output cycles, input cycles).
    """
    prng = random.Random(seed)
    crng = random.Random(seed + 1)
    beats = [(b, p, int(k == len(pk) - 1)) for p, pk in enumerate(packets)
             for k, b in enumerate(pk)]
    starts = np.cumsum([0] + [len(pk) for pk in packets])  # first beat of each packet
    out, lasts, out_cycles, in_cycles = [], [], [], []

    def table_writes(p):
        """Table ``p`` as writes of ``write_bytes`` entries (entry a + i in byte i)."""
        wb = dut.write_bytes
        raw = np.asarray(tables[p], dtype=np.int8).view(np.uint8)
        if wb == 1:
            return [(p, a, int(np.int8(v))) for a, v in enumerate(raw)]
        return [(p, a, int.from_bytes(raw[a:a + wb].tobytes(), "little"))
                for a in range(0, 256, wb)]

    async def producer(ctx):
        writes = table_writes(0)
        swap_for = 0          # table whose swap is still to be strobed
        queued = None         # writes of the next table, waiting for swap_pending == 0
        n = 0                 # next beat to present
        cycle = 0
        while n < len(beats) or writes or swap_for < len(tables):
            if queued is not None and not ctx.get(dut.swap_pending):
                writes, queued = queued, None  # protocol: load only when no swap is pending
            if writes:
                _, a, v = writes.pop(0)
                ctx.set(dut.wr.en, 1)
                ctx.set(dut.wr.addr, a)
                ctx.set(dut.wr.data, v)
            else:
                ctx.set(dut.wr.en, 0)
            swap = 0
            # table p (p >= 1) is for the packet after p - 1: strobe its swap only once a beat
            # of packet p - 1 was accepted (between packets a swap takes effect at once)
            if (not writes and queued is None and swap_for < len(tables)
                    and ctx.get(dut.wr.en) == 0
                    and (swap_for == 0 or n > starts[swap_for - 1])):
                swap = 1
                swap_for += 1
                if swap_for < len(tables):
                    queued = table_writes(swap_for)
            ctx.set(dut.swap, swap)
            # a beat of packet p may go once table p's swap was strobed (now or earlier)
            present = (n < len(beats) and beats[n][1] < swap_for
                       and not (stall and prng.random() < stall))
            ctx.set(dut.i.valid, int(present))
            if present:
                ctx.set(dut.i.payload, {"data": beats[n][0], "last": beats[n][2]})
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            if present and ready:
                in_cycles.append(cycle)
                n += 1
            cycle += 1
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.wr.en, 0)
        ctx.set(dut.swap, 0)

    async def consumer(ctx):
        cycle = 0
        while len(out) < len(beats) and cycle < 40 * len(beats) + 3000:
            rdy = not (backpressure and crng.random() < backpressure)
            ctx.set(dut.o.ready, int(rdy))
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and rdy:
                out.append([payload.data[j] for j in range(dut.lanes)])
                lasts.append(payload.last)
                out_cycles.append(cycle)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    assert len(out) == len(beats), f"seed={seed}: got {len(out)} of {len(beats)} beats"
    for n, ((b, p, last), got, got_last) in enumerate(zip(beats, out, lasts)):
        exp = [int(v) for v in apply_lut(np.array(b), tables[p])]
        assert got == exp and got_last == last, (
            f"seed={seed} beat {n} (packet {p}): in={b} expected {exp} last={last}, "
            f"got {got} last={got_last}")
    return out, out_cycles, in_cycles


def _tables(rng, count):
    names = list(FUNCTIONS)
    tabs = []
    for _ in range(count):
        f = names[int(rng.integers(len(names)))]
        tabs.append(build_lut(f, float(rng.uniform(0.01, 0.2)), float(rng.uniform(0.01, 0.1))))
    tabs.append(rng.integers(-128, 128, 256).astype(np.int8))  # arbitrary contents
    return tabs


@pytest.mark.parametrize("lanes,stall,bp,wbytes", [(4, 0.3, 0.3, 1), (1, 0.5, 0.5, 1),
                                                   (3, 0.1, 0.6, 1), (4, 0.3, 0.3, 8),
                                                   (2, 0.5, 0.2, 2), (3, 0.2, 0.5, 64)])
def test_lut_tables_and_swaps_under_stalls(seed, rng, lanes, stall, bp, wbytes):
    """Every table (every entry read at least once in packet 0) bit-exact through the double
    buffer, tables written one entry or a bus word (``write_bytes``) per cycle."""
    tables = _tables(rng, 3)
    packets = []
    for p in range(len(tables)):
        nb = int(rng.integers(1, 30))
        pk = [[int(v) for v in rng.integers(-128, 128, lanes)] for _ in range(nb)]
        if p == 0:  # all 256 inputs once
            allv = list(range(-128, 128))
            pk += [allv[k:k + lanes] + [0] * (lanes - len(allv[k:k + lanes]))
                   for k in range(0, 256, lanes)]
        packets.append(pk)
    run_lut_packets(ActivationLut(lanes=lanes, write_bytes=wbytes), packets, tables, seed=seed,
                    stall=stall, backpressure=bp)


def test_lut_swap_does_not_stall(seed, rng):
    """Two long packets with a table swap between them: one beat per cycle throughout."""
    lanes = 2
    tables = _tables(rng, 1)
    packets = [[[int(v) for v in rng.integers(-128, 128, lanes)] for _ in range(300)]
               for _ in range(2)]
    dut = ActivationLut(lanes=lanes)
    _, out_cycles, in_cycles = run_lut_packets(dut, packets, tables, seed=seed, stall=0,
                                               backpressure=0)
    # table 1 was loaded during packet 0 (256 cycles < 300 beats), so packet 1 follows at once
    gaps = np.diff(in_cycles)
    assert np.all(gaps == 1), f"seed={seed}: input stalled at beats {np.nonzero(gaps != 1)}"
    assert np.all(np.diff(out_cycles) == 1), f"seed={seed}: output gaps {np.diff(out_cycles)}"
    assert out_cycles[0] - in_cycles[0] == dut.latency


@pytest.mark.parametrize("kw,exc,msg", [
    (dict(lanes=0), ValueError, "lanes must be between 1 and 64, not 0"),
    (dict(lanes=65), ValueError, "lanes must be between 1 and 64, not 65"),
    (dict(lanes="4"), TypeError, "lanes must be an integer, not '4'"),
    (dict(write_bytes=0), ValueError, "write_bytes must be between 1 and 64, not 0"),
    (dict(write_bytes=128), ValueError, "write_bytes must be between 1 and 64, not 128"),
    (dict(write_bytes=12), ValueError, "write_bytes must be a power of two, not 12"),
    (dict(write_bytes=True), TypeError, "write_bytes must be an integer, not True"),
])
def test_lut_rejects_impossible_parameters(kw, exc, msg):
    with pytest.raises(exc, match=f"^{msg}$"):
        ActivationLut(**kw)
