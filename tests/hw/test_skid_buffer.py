"""SkidBuffer under amaranth.sim: order, no loss, no duplication, ready from a register,
full rate when nothing stalls."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator
from sparsemac.hw.mem.skid_buffer import SkidBuffer

from tests.hw.streams import run_stream_stage


def _run(n, p_valid, p_ready, prng):
    return run_stream_stage(SkidBuffer(16), n, p_valid, p_ready, prng)


@pytest.mark.parametrize("p_valid,p_ready", [(1.0, 1.0), (1.0, 0.5), (0.5, 0.5), (0.3, 0.9),
                                             (1.0, 0.1)])
def test_skid_buffer_keeps_every_beat_in_order(p_valid, p_ready, rng, seed):
    n = 200
    sent, got, trace = _run(n, p_valid, p_ready, rng)
    where = f"seed={seed} p_valid={p_valid} p_ready={p_ready}"
    assert got == sent and len(got) == n, f"{where}: {len(got)} of {n} beats, order or loss"
    if p_valid == 1.0 and p_ready == 1.0:
        assert len(trace) == n, f"{where}: {len(trace)} cycles for {n} beats at full rate"


def test_skid_buffer_ready_does_not_follow_the_consumer_in_the_same_cycle():
    """A stalled consumer with a beat offered: the skid catches it (ready stays high in that
    cycle), and only the next cycle's ready drops."""
    dut = SkidBuffer(8)

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, 0x5A)
        assert ctx.get(dut.i.ready) == 1          # empty: ready although o.ready is low
        await ctx.tick()
        assert ctx.get(dut.i.ready) == 0          # the beat sits in the skid register
        assert ctx.get(dut.o.valid) == 1 and ctx.get(dut.o.payload) == 0x5A
        ctx.set(dut.i.payload, 0x33)              # the next beat waits
        ctx.set(dut.o.ready, 1)                   # set and ...
        await ctx.tick()
        assert ctx.get(dut.i.ready) == 1          # ... emptied in exactly that cycle
        assert ctx.get(dut.o.payload) == 0x33     # the waiting beat passes straight through
        assert SkidBuffer(8).latency == 0

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
