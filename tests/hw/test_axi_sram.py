"""AxiSram (hw/axi_sram.py) in amaranth.sim against a byte-array model: bursts, random stalls."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator
from sparsemac.hw.mem.axi_sram import AxiSram


class SramModel:
    """The naive oracle: a byte array, word address = (addr // beat) mod depth."""

    def __init__(self, depth: int, beat: int, init: bytes):
        self.depth, self.beat = depth, beat
        self.mem = bytearray(init) + bytearray(depth * beat - len(init))

    def _off(self, addr: int, i: int) -> int:
        return ((addr // self.beat + i) % self.depth) * self.beat

    def read(self, addr: int, beats: int) -> list[int]:
        return [int.from_bytes(self.mem[self._off(addr, i):self._off(addr, i) + self.beat],
                               "little") for i in range(beats)]

    def write(self, addr: int, words: list[tuple[int, int]]) -> None:
        for i, (data, strb) in enumerate(words):
            o = self._off(addr, i)
            for b in range(self.beat):
                if strb >> b & 1:
                    self.mem[o + b] = data >> 8 * b & 0xFF


def _run(dut: AxiSram, reads, writes, rng: random.Random, stall: float, *, reads_after=()):
    """Issue ``writes`` [(addr, id, [(data, strb)])] and ``reads`` [(addr, id, beats)] at the
    same time on both channels with random valid/ready gaps, then ``reads_after`` once every
    write is answered.  Returns the R bursts [(id, [words])], the B ids and the violations."""
    axi = dut.s_axi
    got_r, got_b, errors = [], [], []
    state = {"writes_done": False, "reads_done": False, "cycle": 0}
    limit = 200_000

    async def ar_driver(ctx):
        for batch, wait in ((reads, False), (reads_after, True)):
            if wait:
                while not state["writes_done"]:
                    await ctx.tick()
            for addr, aid, beats in batch:
                while rng.random() < stall:
                    await ctx.tick()
                ctx.set(axi.araddr, addr)
                ctx.set(axi.arid, aid)
                ctx.set(axi.arlen, beats - 1)
                ctx.set(axi.arburst, 1)
                ctx.set(axi.arvalid, 1)
                await ctx.tick().until(axi.arready)
                ctx.set(axi.arvalid, 0)

    async def r_consumer(ctx):
        want = len(reads) + len(reads_after)
        cur, held = [], None
        while len(got_r) < want and state["cycle"] < limit:
            ready = rng.random() >= stall
            ctx.set(axi.rready, ready)
            await ctx.delay(1e-9)
            valid = ctx.get(axi.rvalid)
            beat = (ctx.get(axi.rdata), ctx.get(axi.rlast), ctx.get(axi.rid), ctx.get(axi.rresp))
            if held is not None and (not valid or beat != held):
                errors.append(f"R beat changed while stalled: {held} -> {valid} {beat}")
            held = None
            if valid and ready:
                cur.append(beat)
                if beat[1]:
                    got_r.append((beat[2], [b[0] for b in cur], [b[3] for b in cur],
                                  [b[2] for b in cur]))
                    cur = []
            elif valid:
                held = beat
            await ctx.tick()
            state["cycle"] += 1
        state["reads_done"] = True

    async def aw_driver(ctx):
        for addr, aid, words in writes:
            while rng.random() < stall:
                await ctx.tick()
            ctx.set(axi.awaddr, addr)
            ctx.set(axi.awid, aid)
            ctx.set(axi.awlen, len(words) - 1)
            ctx.set(axi.awburst, 1)
            ctx.set(axi.awvalid, 1)
            await ctx.tick().until(axi.awready)
            ctx.set(axi.awvalid, 0)

    async def w_driver(ctx):
        for _, _, words in writes:
            for i, (data, strb) in enumerate(words):
                while rng.random() < stall:
                    await ctx.tick()
                ctx.set(axi.wdata, data)
                ctx.set(axi.wstrb, strb)
                ctx.set(axi.wlast, i == len(words) - 1)
                ctx.set(axi.wvalid, 1)
                await ctx.tick().until(axi.wready)
                ctx.set(axi.wvalid, 0)

    async def b_consumer(ctx):
        n = 0
        while len(got_b) < len(writes) and n < limit:
            ready = rng.random() >= stall
            ctx.set(axi.bready, ready)
            await ctx.delay(1e-9)
            if ctx.get(axi.bvalid) and ready:
                got_b.append((ctx.get(axi.bid), ctx.get(axi.bresp)))
            await ctx.tick()
            n += 1
        state["writes_done"] = True

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in (ar_driver, r_consumer, aw_driver, w_driver, b_consumer):
        sim.add_testbench(tb)
    sim.run()
    return got_r, got_b, errors


def _rand_words(rng, beats, beat, full=False):
    return [(rng.getrandbits(8 * beat), (1 << beat) - 1 if full else rng.getrandbits(beat))
            for _ in range(beats)]


@pytest.mark.parametrize("data_width,depth,id_width,stall", [
    (32, 64, 4, 0.0), (32, 64, 4, 0.4), (64, 128, 1, 0.3), (128, 16, 8, 0.5), (8, 32, 2, 0.3),
    (32, 1, 3, 0.3),
])
def test_bursts_against_model(data_width, depth, id_width, stall, seed):
    rng = random.Random(seed)
    beat = data_width // 8
    init = bytes(rng.getrandbits(8) for _ in range(rng.randrange(depth * beat + 1)))
    model = SramModel(depth, beat, init)
    dut = AxiSram(data_width=data_width, addr_width=32, id_width=id_width, depth=depth,
                  init=init)
    size = depth * beat
    half = max(1, depth // 2)
    # concurrent phase: reads of the low half, writes to the high half (disjoint when depth > 1)
    reads = []
    for _ in range(8):
        beats = rng.randint(1, half)
        start = rng.randrange(half - beats + 1) if depth > 1 else 0
        reads.append((start * beat + rng.randrange(beat) + rng.randrange(4) * size * 4096,
                      rng.getrandbits(id_width), beats))
    writes = []
    for _ in range(8 if depth > 1 else 0):
        beats = rng.randint(1, depth - half)
        start = half + rng.randrange(depth - half - beats + 1)
        writes.append((start * beat, rng.getrandbits(id_width), _rand_words(rng, beats, beat)))
    exp_r = [(aid, model.read(addr, beats)) for addr, aid, beats in reads]
    for addr, _, words in writes:
        model.write(addr, words)
    # after the writes: every word once, from a random start (wraps around the end), long bursts
    start = rng.randrange(depth)
    after = [(start * beat, rng.getrandbits(id_width), depth)]
    if depth >= 4:
        after.append((0, 0, min(256, 2 * depth)))     # runs past the end: the memory repeats
    exp_r += [(aid, model.read(addr, beats)) for addr, aid, beats in after]
    got_r, got_b, errors = _run(dut, reads, writes, rng, stall, reads_after=after)
    where = f"data_width={data_width} depth={depth} stall={stall} seed={seed}"
    assert not errors, f"{errors[:3]}; {where}"
    assert len(got_r) == len(exp_r), f"{len(got_r)} R bursts, expected {len(exp_r)}; {where}"
    for i, ((_aid, words, resps, ids), (eid, ewords)) in enumerate(zip(got_r, exp_r)):
        assert len(words) == len(ewords), f"burst {i}: {len(words)} beats (rlast), expected " \
                                          f"{len(ewords)}; {where}"
        assert words == ewords, f"burst {i}: got {[hex(w) for w in words[:4]]}, expected " \
                                f"{[hex(w) for w in ewords[:4]]}; {where}"
        assert set(ids) == {eid} and set(resps) == {0}, f"burst {i}: ids {ids} resps {resps}"
    assert got_b == [(aid, 0) for _, aid, _ in writes], f"B: {got_b}; {where}"


def test_write_then_read_back_full_strobes(seed):
    """A 256-beat write (the longest AXI4 burst) followed by its read-back."""
    rng = random.Random(seed)
    dut = AxiSram(data_width=32, addr_width=16, id_width=2, depth=256)
    words = _rand_words(rng, 256, 4, full=True)
    got_r, got_b, errors = _run(dut, [], [(0, 1, words)], rng, 0.2,
                                reads_after=[(0, 2, 256)])
    assert not errors and got_b == [(1, 0)], (errors, got_b)
    assert got_r[0][1] == [w for w, _ in words], f"seed={seed}"


def test_back_to_back_throughput():
    """No stalls: one R beat per cycle within a burst, first beat ``latency`` after AR."""
    dut = AxiSram(data_width=32, addr_width=32, id_width=1, depth=16, init=list(range(16)))
    axi = dut.s_axi
    seen = []

    async def tb(ctx):
        ctx.set(axi.rready, 1)
        ctx.set(axi.arvalid, 1)
        ctx.set(axi.arlen, 7)
        ctx.set(axi.araddr, 4 * 3)
        await ctx.tick()                         # AR handshake on this edge
        ctx.set(axi.arvalid, 0)
        for cyc in range(1, 14):
            if ctx.get(axi.rvalid):
                seen.append((cyc, ctx.get(axi.rdata), ctx.get(axi.rlast)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    lat = dut.latency
    assert seen == [(lat + i, 3 + i, int(i == 7)) for i in range(8)], seen


@pytest.mark.parametrize("kw,exc,msg", [
    (dict(depth=48), ValueError, "depth must be a power of two between 1 and 1048576, not 48"),
    (dict(depth=True), TypeError, "depth must be an integer, not True"),
    (dict(depth=4, init=bytes(17)), ValueError,
     "init must hold at most 16 bytes (depth 4 x 4-byte words), not 17"),
    (dict(depth=4, init=[1 << 32]), ValueError,
     "init words must be integers between 0 and 2**32 - 1, not 4294967296"),
    (dict(depth=4, data_width=24), ValueError,
     "data_width must be a power of two between 8 and 1024, not 24"),
    (dict(depth=1 << 12, addr_width=12), ValueError,
     "depth must be at most 1024 (the 12-bit address space), not 4096"),
])
def test_parameter_errors(kw, exc, msg):
    args = dict(data_width=32, addr_width=32, id_width=2) | kw
    with pytest.raises(exc) as e:
        AxiSram(**args)
    assert str(e.value) == msg
