"""RegisterSlice under amaranth.sim: order, no loss, no duplication, one cycle of latency, full
rate when nothing stalls, every output and ``i.ready`` from a register."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator
from sparsemac.hw.mem.register_slice import RegisterSlice

from tests.hw.streams import run_stream_stage


def _run(n, p_valid, p_ready, prng):
    return run_stream_stage(RegisterSlice(16), n, p_valid, p_ready, prng)


@pytest.mark.parametrize("p_valid,p_ready", [(1.0, 1.0), (1.0, 0.5), (0.5, 0.5), (0.3, 0.9),
                                             (1.0, 0.1), (0.9, 0.9)])
def test_register_slice_keeps_every_beat_in_order(p_valid, p_ready, rng, seed):
    n = 200
    sent, got, trace = _run(n, p_valid, p_ready, rng)
    where = f"seed={seed} p_valid={p_valid} p_ready={p_ready}"
    assert got == sent and len(got) == n, f"{where}: {len(got)} of {n} beats, order or loss"
    if p_valid == 1.0 and p_ready == 1.0:       # one cycle in, then a beat every cycle
        assert len(trace) == n + 1, f"{where}: {len(trace)} cycles for {n} beats at full rate"


def test_register_slice_outputs_do_not_follow_the_inputs_in_the_same_cycle():
    """Changing ``i.valid``, ``i.payload`` or ``o.ready`` changes no output before the clock
    edge; a stalled consumer: the next beat waits in the skid (ready drops a cycle later), and
    a consumer that takes in exactly the cycle the skid fills gets both beats in order."""
    dut = RegisterSlice(8)

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, 0x5A)
        assert ctx.get(dut.o.valid) == 0 and ctx.get(dut.i.ready) == 1
        await ctx.tick()
        assert ctx.get(dut.o.valid) == 1 and ctx.get(dut.o.payload) == 0x5A
        ctx.set(dut.i.payload, 0x33)              # the next beat, consumer still stalled
        ctx.set(dut.i.valid, 0)
        assert ctx.get(dut.o.payload) == 0x5A     # no combinational path from i to o
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.o.ready, 1)                   # taken in this cycle: 0x33 goes to o
        assert ctx.get(dut.i.ready) == 1          # ready does not follow o.ready
        await ctx.tick()
        assert ctx.get(dut.o.valid) == 1 and ctx.get(dut.o.payload) == 0x33
        ctx.set(dut.o.ready, 0)                   # stall with the next beat offered
        ctx.set(dut.i.payload, 0x44)
        await ctx.tick()
        assert ctx.get(dut.i.ready) == 0          # 0x44 sits in the skid register
        assert ctx.get(dut.o.payload) == 0x33
        ctx.set(dut.i.payload, 0x55)
        ctx.set(dut.o.ready, 1)                   # set and ...
        await ctx.tick()
        assert ctx.get(dut.o.payload) == 0x44     # ... the skid moves out in that cycle
        assert ctx.get(dut.i.ready) == 1          # ... and is empty again
        await ctx.tick()
        assert ctx.get(dut.o.payload) == 0x55
        ctx.set(dut.i.valid, 0)
        await ctx.tick()
        assert ctx.get(dut.o.valid) == 0
        assert RegisterSlice(8).latency == 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
