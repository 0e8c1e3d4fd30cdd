"""ByteGearbox (hw/byte_gearbox.py) in amaranth.sim: byte order, flush on last, stalls."""

import pytest
from amaranth.sim import Simulator
from sparsemac.hw.mem.byte_gearbox import ByteGearbox


def _run(ib, ob, packets, rng, stall):
    dut = ByteGearbox(in_bytes=ib, out_bytes=ob)
    words = []       # (word, last)
    for pkt in packets:
        n = -(-len(pkt) // ib)
        padded = pkt + bytes(n * ib - len(pkt))
        for i in range(n):
            words.append((int.from_bytes(padded[i * ib:(i + 1) * ib], "little"), i == n - 1))
    got = []
    expected = []
    for pkt in packets:
        n = -(-len(pkt) // ib) * ib          # bytes actually sent (input words are whole)
        data = pkt + bytes(n - len(pkt))
        nout = -(-n // ob)
        data += bytes(nout * ob - n)
        expected += [int.from_bytes(data[i * ob:(i + 1) * ob], "little") for i in range(nout)]

    async def producer(ctx):
        for w, last in words:
            while rng.random() < stall:
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload.data, w)
            ctx.set(dut.i.payload.last, last)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        idle = 0
        while len(got) < len(expected) and idle < 200:
            ready = rng.random() >= stall
            ctx.set(dut.o.ready, ready)
            await ctx.delay(1e-9)
            if ready and ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
                idle = 0
            else:
                idle += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return got, expected


@pytest.mark.parametrize("ib,ob", [(8, 2), (8, 3), (4, 16), (16, 1), (32, 16), (4, 6), (8, 8)])
def test_repack(ib, ob, rng, seed):
    import random

    r = random.Random(seed)
    packets = [bytes(rng.integers(0, 256, size=int(rng.integers(1, 70)), dtype="uint8"))
               for _ in range(4)]
    for stall in (0.0, 0.4):
        got, exp = _run(ib, ob, packets, r, stall)
        assert got == exp, (f"in {ib} out {ob} stall {stall} seed {seed}: expected "
                            f"{[hex(x) for x in exp]} got {[hex(x) for x in got]}")


def test_params():
    with pytest.raises(ValueError, match="in_bytes must be between 1 and 64, not 0"):
        ByteGearbox(in_bytes=0, out_bytes=2)
    with pytest.raises(TypeError, match="out_bytes must be an integer, not 'x'"):
        ByteGearbox(in_bytes=4, out_bytes="x")
