"""amaranth.sim tests of BeatWriter (single-beat posted AXI4 writes, one per cycle) against the
Python AXI write slave of tests/hw/axi_models.py and a byte model of memory.

One coroutine drives everything each cycle (the slave's inputs, the ``beats`` producer, the
``cancel`` pulse), reads the settled outputs, records them (:class:`Cyc`) and ticks, so tests
can assert exact cycles.  Besides the slave's own AXI checks the bench checks AWLEN = 0,
WLAST = 1, W stable while waiting, AWVALID / WVALID never dropped before their handshake (the
watchdog's drop is recorded in ``drops`` and modelled as an interconnect reset of the slave),
and ``~busy`` only with no write of the current ID left in the slave.
"""

from __future__ import annotations

import gc
import warnings
from collections import deque
from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.hdl import Fragment, UnusedElaboratable
from amaranth.sim import Simulator
from sparsemac.hw.hub.beat_writer import BeatWriter
from sparsemac.hw.top.regmap import ErrorCode

from tests.hw.axi_models import DECERR, SLVERR, AxiWriteSlave

MEM = 1 << 14
CODE = {SLVERR: ErrorCode.AXI_SLVERR, DECERR: ErrorCode.AXI_DECERR}


@dataclass(slots=True)
class Cyc:
    """The settled inputs and outputs of one cycle."""

    cycle: int
    valid: int          #: beats.valid
    ready: int          #: beats.ready
    cancel: int
    busy: int
    error: int
    error_addr: int
    awvalid: int
    awready: int
    wvalid: int
    wready: int
    awid: int
    b: tuple | None     #: (bid, bresp, address) of the B response presented (bready is 1)
    in_flight: int      #: writes in the slave (AW taken, B not yet given)


class Bench:
    """Producer of ``beats`` (a proper stream source: valid holds until taken, raised with
    probability ``p_valid`` in an idle cycle), the AXI write slave and the per-cycle record."""

    def __init__(self, dut, mem, rng, *, window=None, p_valid=1.0, **slave_kw):
        self.dut = dut
        self.bb = dut.beat_bytes
        self.rng = rng
        self.slave = AxiWriteSlave(dut.m_axi, mem, rng, beat_bytes=self.bb, max_burst=1,
                                   **slave_kw)
        self.window = window or (0, len(mem))
        self.p_valid = p_valid
        self.queue: deque = deque()       # beats (tag, data, strb) still to offer
        self.offered = False
        self.taken: list = []             # ((tag, data, strb), cycle)
        self.trace: list[Cyc] = []
        self.problems: list[str] = []     # protocol problems the bench itself found
        self.drops: list[int] = []        # cycles AWVALID or WVALID fell before its handshake
        self._aw_wait = False
        self._w_wait = None

    @property
    def cycle(self) -> int:
        return len(self.trace)

    @property
    def last(self) -> Cyc:
        return self.trace[-1]

    def push(self, beats):
        self.queue.extend(beats)

    async def step(self, ctx, *, cancel=0):
        dut, s, a, g = self.dut, self.slave, self.dut.m_axi, ctx.get
        cyc = self.cycle
        ctx.set(dut.window_base, self.window[0])
        ctx.set(dut.window_limit, self.window[1])
        busy = g(dut.busy)
        if not busy:
            cur = g(a.awid)
            live = [b for b in s.wq if b.id == cur] + [b for _, b in s.bq if b.id == cur]
            if live or s.early_w:
                self.problems.append(f"cycle {cyc}: busy low with writes in flight")
        s.drive(ctx)
        self.offered = bool(self.queue) and (self.offered or self.rng.random() < self.p_valid)
        if self.offered:
            tag, data, strb = self.queue[0]
            ctx.set(dut.beats.payload.tag, tag)
            ctx.set(dut.beats.payload.data, data)
            ctx.set(dut.beats.payload.strb, strb)
        ctx.set(dut.beats.valid, int(self.offered))
        ctx.set(dut.cancel, cancel)
        rec = Cyc(cyc, int(self.offered), g(dut.beats.ready), cancel, busy, g(dut.error),
                  g(dut.error_addr), g(a.awvalid), s.awready, g(a.wvalid), s.wready, g(a.awid),
                  (g(a.bid), g(a.bresp), s.b.addr) if s.b is not None else None,
                  len(s.wq) + len(s.bq))
        if rec.awvalid and g(a.awlen) != 0:
            self.problems.append(f"cycle {cyc}: AWLEN {g(a.awlen)}")
        if not g(a.bready):
            self.problems.append(f"cycle {cyc}: BREADY low")
        w = (g(a.wdata), g(a.wstrb), g(a.wlast)) if rec.wvalid else None
        if w is not None and not w[2]:
            self.problems.append(f"cycle {cyc}: WLAST low")
        if self._w_wait is not None and w is not None and w != self._w_wait:
            self.problems.append(f"cycle {cyc}: W changed while waiting")
        if (self._w_wait is not None and w is None) or (self._aw_wait and not rec.awvalid):
            self.drops.append(cyc)
            s.reset()             # the interconnect reset a watchdog needs
        self._w_wait = w if rec.wvalid and not s.wready else None
        self._aw_wait = bool(rec.awvalid and not s.awready)
        if self.offered and rec.ready:
            self.taken.append((self.queue.popleft(), cyc))
            self.offered = False
        self.trace.append(rec)
        s.observe(ctx)
        await ctx.tick()

    async def idle(self, ctx, n):
        for _ in range(n):
            await self.step(ctx)

    def settled(self) -> bool:
        """Every beat taken, and ``busy`` low in a cycle after the last take."""
        return (not self.queue and not self.last.busy
                and (not self.taken or self.taken[-1][1] < self.last.cycle))

    async def run(self, ctx, until=None, *, max_cycles=5000):
        until = until or self.settled
        for _ in range(max_cycles):
            if self.trace and until():
                return
            await self.step(ctx)
        raise AssertionError(f"no progress in {max_cycles} cycles: {len(self.queue)} beats "
                             f"left, busy={self.last.busy}, error={self.last.error}")

    def first(self, pred, start=0) -> int | None:
        return next((r.cycle for r in self.trace[start:] if pred(r)), None)

    def written(self):
        """(address, strobe, id) of every write the slave took, in order."""
        return [(b.addr, s, b.id) for b in self.slave.bursts for _, s in b.wdata]

    def check_protocol(self, seed, *, drops=()):
        assert not self.slave.violations, f"seed={seed}: {self.slave.violations[:4]}"
        assert not self.problems, f"seed={seed}: {self.problems[:4]}"
        assert self.drops == list(drops), f"seed={seed}: valid dropped at {self.drops}"
        assert all(b.beats == 1 for b in self.slave.bursts), f"seed={seed}: a burst"


def simulate(dut, body):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(body)
    sim.run()


def make_beats(rng, tags, bb, *, partial=0.3):
    full = (1 << bb) - 1
    out = []
    for t in tags:
        data = int.from_bytes(rng.integers(0, 256, bb, dtype=np.uint8).tobytes(), "little")
        strb = int(rng.integers(0, full + 1)) if rng.random() < partial else full
        out.append((int(t), data, strb))
    return out


def apply(mem, beats, bb):
    """The naive model: each beat's strobed bytes at ``tag * bb``, in order."""
    for tag, data, strb in beats:
        raw = data.to_bytes(bb, "little")
        for j in range(bb):
            if strb >> j & 1:
                mem[tag * bb + j] = raw[j]


def assert_mem(mem, ref, seed):
    diff = [i for i in range(len(mem)) if mem[i] != ref[i]]
    assert not diff, (f"seed={seed}: {len(diff)} bytes differ, first at 0x{diff[0]:x}: "
                      f"expected 0x{ref[diff[0]]:02x}, got 0x{mem[diff[0]]:02x}")


def random_mem(rng):
    return bytearray(rng.integers(0, 256, MEM, dtype=np.uint8).tobytes())


# -- 1. random beats -------------------------------------------------------------------------

@pytest.mark.parametrize("data_width,max_outstanding,id_width,addr_width", [
    (32, 1, 1, 32), (64, 2, 4, 32), (128, 4, 3, 32), (8, 3, 2, 16), (64, 16, 16, 40)])
def test_random_beats(seed, rng, data_width, max_outstanding, id_width, addr_width):
    """Random beats inside a random window (repeated addresses included, so the order counts),
    random strobes, valid gaps and stalls on every channel: memory equals the byte model,
    one single-beat write per entry in order, never more than ``max_outstanding`` in
    flight, no error."""
    dut = BeatWriter(data_width=data_width, addr_width=addr_width, id_width=id_width,
                     max_outstanding=max_outstanding, watchdog_cycles=1000)
    bb = dut.beat_bytes
    lo = bb * int(rng.integers(0, MEM // bb // 4))
    hi = MEM - bb * int(rng.integers(0, MEM // bb // 4))
    tags = []
    for _ in range(320):
        if tags and rng.random() < 0.2:
            tags.append(tags[-int(rng.integers(1, min(len(tags), 6) + 1))])
        else:
            tags.append(int(rng.integers(lo // bb, hi // bb)))
    tags[:2] = [lo // bb, hi // bb - 1]                  # both ends of the window
    beats = make_beats(rng, tags, bb)
    mem = random_mem(rng)
    ref = bytearray(mem)
    bench = Bench(dut, mem, rng, window=(lo, hi), p_valid=0.7, p_addr=0.6, p_data=0.7,
                  latency=(0, 5))
    bench.push(beats)

    async def body(ctx):
        await bench.run(ctx, max_cycles=6000)
        await bench.idle(ctx, 3)

    simulate(dut, body)
    bench.check_protocol(seed)
    apply(ref, beats, bb)
    assert_mem(mem, ref, seed)
    assert bench.written() == [(t * bb, s, 0) for t, _, s in beats], f"seed={seed}"
    assert all(r.error == 0 for r in bench.trace), f"seed={seed}: error {bench.last.error}"
    assert bench.slave.max_in_flight <= max_outstanding, f"seed={seed}"
    if max_outstanding > 1:
        assert bench.slave.max_in_flight > 1, f"seed={seed}: writes never overlapped"
    assert not bench.slave.wq and not bench.slave.bq and not bench.last.busy


# -- 2. throughput ---------------------------------------------------------------------------

@pytest.mark.parametrize("latency", [0, 2, 5])
def test_throughput(seed, rng, latency):
    """An always-ready slave giving the B response ``latency + 1`` cycles after the AW / W
    handshake (so in cycle ``take + 2 + latency``; the slot is free again one cycle later): with
    ``max_outstanding >= latency + 3`` N back-to-back beats are taken in N cycles (ready high
    from the very first cycle) and ``busy`` falls in cycle ``N + 2 + latency``; with fewer
    slots, or with ``max_outstanding = 1``, entry ``i`` is taken in cycle
    ``(i // mo) * (latency + 3) + i % mo`` and at most ``mo`` writes are in flight."""
    n = 48
    for mo in sorted({latency + 3, latency + 2, 1}, reverse=True):
        dut = BeatWriter(max_outstanding=mo, watchdog_cycles=1000)
        mem = bytearray(MEM)
        beats = make_beats(rng, rng.permutation(MEM // 8)[:n], 8)
        bench = Bench(dut, mem, rng, latency=(latency, latency))
        bench.push(beats)

        async def body(ctx, bench=bench):
            await bench.run(ctx)

        simulate(dut, body)
        bench.check_protocol(seed)
        ref = bytearray(MEM)
        apply(ref, beats, 8)
        assert_mem(mem, ref, seed)
        got = [c for _, c in bench.taken]
        if mo >= latency + 3:
            assert got == list(range(n)), f"seed={seed}: mo={mo}: taken in cycles {got}"
            assert all(r.ready for r in bench.trace[:n]), f"seed={seed}: mo={mo}"
            busy_low = bench.first(lambda r: not r.busy, start=1)
            assert busy_low == n + 2 + latency, f"seed={seed}: mo={mo}: busy fell {busy_low}"
            assert bench.slave.max_in_flight == latency + 2, f"seed={seed}: mo={mo}"
        else:
            exp = [(i // mo) * (latency + 3) + i % mo for i in range(n)]
            assert got == exp, f"seed={seed}: mo={mo}: taken in cycles {got[:12]}, " \
                               f"expected {exp[:12]}"
            assert bench.slave.max_in_flight == mo, f"seed={seed}: mo={mo}"
        print(f"[beat_writer] latency {latency}, max_outstanding {mo}: {n} beats taken in "
              f"{got[-1] + 1} cycles")


# -- 3. window bounds ------------------------------------------------------------------------

@pytest.mark.parametrize("side,unaligned", [
    ("none", False), ("none", True), ("below", False), ("below", True), ("past", False),
    ("past", True), ("top", False)])
def test_window_bounds(seed, rng, side, unaligned):
    """The first beat at (or just above an unaligned) ``window_base`` and the last one ending
    at (or just below an unaligned) ``window_limit`` are written; the beat one below / one
    past (one straddling the bound when unaligned; ``top``: the last beat of the address
    space) sets OUT_OF_WINDOW with its byte address in the cycle after it is taken, is not
    written, and every later entry is taken in the cycle it is offered and dropped, while
    the writes in flight land; ``busy`` then falls."""
    dut = BeatWriter(max_outstanding=3, watchdog_cycles=1000)
    base, limit = 0x1000 + 3 * unaligned, 0x3000 + 5 * unaligned
    first, last = (base + 7) // 8, limit // 8 - 1            # beat addresses inside
    inside = [first, last] + [int(t) for t in rng.integers(first, last + 1, 12)]
    bad = {"none": None, "below": first - 1, "past": last + 1, "top": (1 << 29) - 1}[side]
    later = make_beats(rng, rng.integers(first, last + 1, 10), 8)
    beats = make_beats(rng, inside, 8) + ([] if bad is None else make_beats(rng, [bad], 8))
    mem = random_mem(rng)
    ref = bytearray(mem)
    bench = Bench(dut, mem, rng, window=(base, limit), p_addr=0.8, p_data=0.8, latency=(2, 6))
    bench.push(beats)
    seen = {}

    async def body(ctx):
        await bench.run(ctx, lambda: not bench.queue)
        seen["bad_taken"] = bench.taken[-1][1]
        bench.push(later)                      # offered in the cycles right after the error
        await bench.run(ctx)
        await bench.idle(ctx, 20)

    simulate(dut, body)
    bench.check_protocol(seed)
    good = beats[:len(inside)] + (later if bad is None else [])
    apply(ref, good, 8)
    assert_mem(mem, ref, seed)
    assert [w[0] for w in bench.written()] == [b[0] * 8 for b in good], f"seed={seed}"
    if bad is None:
        assert all(r.error == 0 for r in bench.trace), f"seed={seed}"
        return
    t = seen["bad_taken"]
    assert all(r.error == 0 for r in bench.trace[:t + 1]), f"seed={seed}: early error"
    assert all((r.error, r.error_addr) == (ErrorCode.OUT_OF_WINDOW, bad * 8)
               for r in bench.trace[t + 1:]), f"seed={seed}: {bench.last}"
    got = [c for _, c in bench.taken[len(beats):]]
    assert got == list(range(t + 1, t + 1 + len(later))), f"seed={seed}: dropped at {got}"
    assert all(r.ready for r in bench.trace[t + 1:]), f"seed={seed}: ready low after error"
    assert not bench.last.busy
    print(f"[beat_writer] {bench.trace[t].in_flight} writes in flight at the window error")


# -- 4. B response errors --------------------------------------------------------------------

@pytest.mark.parametrize("resp,mo", [(SLVERR, 4), (DECERR, 3)])
def test_bus_error_response(seed, rng, resp, mo):
    """Beats to distinct addresses, ``mo`` in flight, B after 5 cycles; beats k and k + 1
    (k past the FIFO's first wrap) answer ``resp``: error = its code, error_addr = beat k's
    address (the oldest in flight, not the newest) from the cycle after the response, kept
    though k + 1 fails too; every entry taken up to the response's cycle is written (except
    the failing ones), every later one dropped, each taken in the cycle it is offered even
    while the slave stalls AW and W (of the write taken in the response's cycle) for 12
    cycles; the error is sticky through idle cycles until ``cancel``, which clears it in the
    next cycle with one draining cycle; then a clean transfer works."""
    dut = BeatWriter(max_outstanding=mo, watchdog_cycles=1000)
    addrs = [int(a) for a in rng.permutation(MEM // 8)[:60]]
    # groups of mo beats every 8 cycles: beat k's response comes in the cycle a beat is taken
    k = mo * int(rng.integers(2, 4)) + int(rng.integers(1, mo))
    beats = make_beats(rng, addrs[:40], 8)
    clean = make_beats(rng, addrs[40:], 8)
    errs = [(addrs[k] * 8, addrs[k] * 8 + 8, resp), (addrs[k + 1] * 8, addrs[k + 1] * 8 + 8,
                                                   resp)]
    mem = random_mem(rng)
    ref = bytearray(mem)
    bench = Bench(dut, mem, rng, errors=errs, latency=(5, 5))
    bench.push(beats)
    seen = {}

    async def body(ctx):
        await bench.run(ctx, lambda: bench.last.b is not None and bench.last.b[1] != 0)
        bench.slave.p_addr = bench.slave.p_data = 0.0
        await bench.idle(ctx, 12)
        bench.slave.p_addr = bench.slave.p_data = 1.0
        await bench.run(ctx)
        await bench.idle(ctx, 30)
        seen["cancel"] = bench.cycle
        await bench.step(ctx, cancel=1)
        await bench.idle(ctx, 3)
        bench.slave.errors = []
        bench.push(clean)
        await bench.run(ctx)

    simulate(dut, body)
    bench.check_protocol(seed)
    fail = bench.first(lambda r: r.b is not None and r.b[1] != 0)
    assert bench.trace[fail].b[1] == resp
    # the writes in the FIFO: the slave's and the one whose AW is offered
    in_fifo = bench.trace[fail].in_flight + bench.trace[fail].awvalid
    assert in_fifo >= 2, f"seed={seed}: not several in flight"
    assert bench.trace[fail].ready and bench.trace[fail].valid
    assert all(r.awvalid and r.wvalid and not r.awready for r in bench.trace[fail + 1:fail + 13])
    err = bench.first(lambda r: r.error != 0)
    assert err == fail + 1, f"seed={seed}: error in cycle {err}, response in {fail}"
    c = seen["cancel"]
    assert all((r.error, r.error_addr) == (CODE[resp], addrs[k] * 8)
               for r in bench.trace[err:c + 1]), f"seed={seed}: {bench.trace[c]}"
    assert all(r.error == 0 and r.error_addr == 0 for r in bench.trace[c + 1:]), f"seed={seed}"
    n_issued = sum(1 for _, cyc in bench.taken[:len(beats)] if cyc < err)
    assert k + 1 < n_issued < len(beats), f"seed={seed}: {n_issued} written"
    # entries after the error: taken in the cycle offered, dropped
    assert [cyc for _, cyc in bench.taken[n_issued:len(beats)]] == \
        list(range(err, err + len(beats) - n_issued)), f"seed={seed}"
    tr = bench.trace
    assert (tr[c].ready, tr[c].busy, tr[c + 1].ready, tr[c + 1].busy, tr[c + 2].busy) == \
        (0, 0, 0, 1, 0), f"seed={seed}: cancel {tr[c:c + 3]}"
    issued = beats[:n_issued]
    apply(ref, [b for i, b in enumerate(issued) if i not in (k, k + 1)], 8)
    apply(ref, clean, 8)
    assert_mem(mem, ref, seed)
    assert [w[0] for w in bench.written()] == [b[0] * 8 for b in issued + clean], f"seed={seed}"


# -- 5. window error and failing response in the same cycle ---------------------------------

@pytest.mark.parametrize("offset,resp", [(-1, SLVERR), (0, SLVERR), (0, DECERR), (1, DECERR)])
def test_window_error_races_bus_error(seed, rng, offset, resp):
    """A write whose response fails, and a beat outside the window taken ``offset`` cycles
    after that response: in the same cycle (0) the response wins (it is the earlier write),
    as it does one cycle later; one cycle earlier the window error is first."""
    dut = BeatWriter(max_outstanding=4, watchdog_cycles=1000)
    bad_tag = 0x3000 // 8
    first = make_beats(rng, [0x100 // 8, 0x108 // 8], 8)
    bad = make_beats(rng, [bad_tag], 8)
    mem = random_mem(rng)
    ref = bytearray(mem)
    bench = Bench(dut, mem, rng, window=(0, 0x3000), errors=[(0x108, 0x110, resp)],
                  latency=(4, 4))
    bench.push(first)

    async def body(ctx):
        await bench.run(ctx, lambda: not bench.queue)
        bench.p_valid = 0.0
        await bench.run(ctx, lambda: bench.slave.bq and bench.slave.bq[-1][1].addr == 0x108)
        due = bench.slave.bq[-1][0]                    # the cycle its B is presented
        await bench.run(ctx, lambda: bench.cycle == due + offset)
        bench.push(bad)
        bench.p_valid = 1.0
        await bench.step(ctx)
        await bench.run(ctx)
        await bench.idle(ctx, 5)

    simulate(dut, body)
    bench.check_protocol(seed)
    t_bad = bench.taken[-1][1]
    t_b = bench.first(lambda r: r.b is not None and r.b[1] != 0)
    assert t_bad - t_b == offset, f"seed={seed}: beat taken {t_bad}, response {t_b}"
    exp = (ErrorCode.OUT_OF_WINDOW, 0x3000) if offset < 0 else (CODE[resp], 0x108)
    err = bench.first(lambda r: r.error != 0)
    assert err == min(t_bad, t_b) + 1, f"seed={seed}: error in cycle {err}"
    assert all((r.error, r.error_addr) == exp for r in bench.trace[err:]), \
        f"seed={seed}: expected {exp}, got {(bench.last.error, hex(bench.last.error_addr))}"
    apply(ref, first[:1], 8)
    assert_mem(mem, ref, seed)


def test_random_errors_and_cancels(seed, rng):
    """Rounds of random beats (a few outside a random window), random error regions, random
    stalls on every channel; after each round the error is checked against the round's
    trace (the earlier of the first failing response and the first refused beat, the
    response on a tie), then ``cancel`` (after the writes landed, or as soon as the error
    shows: the producer flushed, writes still in flight) and the next round.  Memory: a
    beat is written iff it is inside the window, taken no later than that event and
    answered OKAY."""
    mo = int(rng.integers(1, 7))
    dut = BeatWriter(max_outstanding=mo, watchdog_cycles=1000)
    mem = random_mem(rng)
    ref = bytearray(mem)
    bench = Bench(dut, mem, rng, p_valid=0.8, p_addr=0.7, p_data=0.7, latency=(0, 6))
    rounds = []

    async def body(ctx):
        for _ in range(16):
            lo = 8 * int(rng.integers(0, MEM // 32))
            hi = MEM - 8 * int(rng.integers(0, MEM // 32))
            bench.window = (lo, hi)
            kind = int(rng.integers(0, 4))    # bit 0: a refused beat, bit 1: error regions
            errs = []
            for _ in range(int(rng.integers(1, 3)) if kind & 2 else 0):
                a = 8 * int(rng.integers(lo // 8, hi // 8 - 4))
                errs.append((a, a + 8 * int(rng.integers(1, 4)),
                             int(rng.choice([SLVERR, DECERR]))))
            bench.slave.errors = errs
            tags = rng.integers(lo // 8, hi // 8, 60)
            for lo_e, _, _ in errs:           # a beat or two inside each error region
                tags[rng.integers(0, 60, 2)] = lo_e // 8
            if kind & 1:
                tags[int(rng.integers(0, 60))] = (int(rng.integers(0, lo // 8)) if lo and
                                                  rng.random() < 0.5 else
                                                  int(rng.integers(hi // 8, 1 << 29)))
            beats = make_beats(rng, tags, 8)
            start, n0 = bench.cycle, len(bench.taken)
            bench.push(beats)
            if rng.random() < 0.5:
                await bench.run(ctx, max_cycles=4000)
                await bench.idle(ctx, int(rng.integers(1, 6)))
            else:                             # cancel as soon as the error shows
                await bench.run(ctx, lambda: bench.last.error or bench.settled(),
                                max_cycles=4000)
                assert not bench.offered      # after an error every entry is taken at once
                bench.queue.clear()           # the producer is flushed
            rounds.append((start, n0, bench.cycle, (lo, hi), errs))
            await bench.step(ctx, cancel=1)
            await bench.run(ctx, lambda: not bench.last.busy)

    simulate(dut, body)
    bench.check_protocol(seed)
    tr = bench.trace
    expect_written = []
    kinds = [0, 0, 0]                   # rounds ending with a response error, refused, clean
    for i, (start, n0, end, (lo, hi), errs) in enumerate(rounds):
        n1 = rounds[i + 1][1] if i + 1 < len(rounds) else len(bench.taken)
        taken = bench.taken[n0:n1]
        tb = next(((r.cycle, r.b) for r in tr[start:end] if r.b is not None and r.b[1]), None)
        tt = next(((c, b) for b, c in taken if not lo <= b[0] * 8 <= hi - 8), None)
        if tb is not None and (tt is None or tb[0] <= tt[0]):
            t_err, exp = tb[0], (CODE[tb[1][1]], tb[1][2])
        elif tt is not None:
            t_err, exp = tt[0], (ErrorCode.OUT_OF_WINDOW, tt[1][0] * 8)
        else:
            t_err, exp = end, (0, 0)
        kinds[int(exp[0] == ErrorCode.OUT_OF_WINDOW) if exp[0] else 2] += 1
        got = [(r.error, r.error_addr) for r in tr[t_err + 1:end + 1]]
        assert all(g == exp for g in got), f"seed={seed}: round {i}: expected {exp}, got " \
                                           f"{sorted(set(got))}"
        assert all(r.error == 0 for r in tr[start:t_err + 1]), f"seed={seed}: round {i}"
        ok = [b for b, c in taken if c <= t_err and lo <= b[0] * 8 <= hi - 8]
        expect_written += ok
        for b in ok:
            if not any(e_lo <= b[0] * 8 < e_hi for e_lo, e_hi, _ in errs):
                apply(ref, [b], 8)
    print(f"[beat_writer] max_outstanding {mo}, {len(tr)} cycles: rounds ending with a bus "
          f"error, a window error, none: {kinds}")
    assert [w[:2] for w in bench.written()] == [(b[0] * 8, b[2]) for b in expect_written], \
        f"seed={seed}"
    assert_mem(mem, ref, seed)


# -- 6. watchdog -----------------------------------------------------------------------------

def test_watchdog_dead_slave(seed, rng):
    """A slave that never answers: AWVALID / WVALID stay up exactly ``watchdog_cycles`` cycles,
    then WATCHDOG with the stuck write's address, both dropped and ``busy`` low in the same
    cycle; later entries are dropped; after the interconnect reset and ``cancel`` the next
    writes go out with the next AXI ID."""
    wc = 8
    dut = BeatWriter(max_outstanding=4, watchdog_cycles=wc, id_width=3)
    beats = make_beats(rng, [0x40, 0x41, 0x42], 8)
    after = make_beats(rng, [0x50, 0x51], 8)
    mem = random_mem(rng)
    ref = bytearray(mem)
    bench = Bench(dut, mem, rng)
    bench.slave.dead = True
    bench.push(beats)
    seen = {}

    async def body(ctx):
        await bench.run(ctx)
        await bench.idle(ctx, 10)
        bench.slave.dead = False
        seen["cancel"] = bench.cycle
        await bench.step(ctx, cancel=1)
        bench.push(after)
        await bench.run(ctx)

    simulate(dut, body)
    bench.check_protocol(seed, drops=[wc + 1])
    tr = bench.trace
    assert [c for _, c in bench.taken[:3]] == [0, wc + 1, wc + 2], f"seed={seed}"
    assert all(r.awvalid and r.wvalid and r.busy and r.error == 0 for r in tr[1:wc + 1])
    r = tr[wc + 1]
    assert (r.awvalid, r.wvalid, r.busy, r.error, r.error_addr) == \
        (0, 0, 0, ErrorCode.WATCHDOG, 0x40 * 8), f"seed={seed}: {r}"
    c = seen["cancel"]
    assert c > wc + 10
    assert all((r.error, r.error_addr, r.busy) == (ErrorCode.WATCHDOG, 0x40 * 8, 0)
               for r in tr[wc + 1:c + 1]), f"seed={seed}: not sticky"
    assert all(r.awid == 0 for r in tr[:wc + 1]) and tr[wc + 1].awid == 1
    assert bench.written() == [(t * 8, s, 1) for t, _, s in after], f"seed={seed}"
    assert all(r.error == 0 for r in tr[c + 1:]), f"seed={seed}"
    apply(ref, after, 8)
    assert_mem(mem, ref, seed)


def test_watchdog_lost_responses_then_late_ones(seed, rng):
    """A slave that takes AW and W but holds every B response: WATCHDOG after exactly
    ``watchdog_cycles`` cycles without a handshake, at the oldest write's address, ``busy``
    low.  After ``cancel`` a new write (next ID) is offered; then the three held responses
    (old ID, all SLVERR) arrive before its own: they are ignored (no error, ``busy`` high
    until the new write's response)."""
    wc = 8
    dut = BeatWriter(max_outstanding=4, watchdog_cycles=wc, id_width=2)
    beats = make_beats(rng, [0x40, 0x41, 0x42], 8)
    new = make_beats(rng, [0x60], 8)
    mem = random_mem(rng)
    ref = bytearray(mem)
    bench = Bench(dut, mem, rng, errors=[(0x200, 0x218, SLVERR)])
    bench.slave.hold_b = True
    bench.push(beats)
    seen = {}

    async def body(ctx):
        await bench.run(ctx)
        await bench.idle(ctx, 5)
        seen["cancel"] = bench.cycle
        await bench.step(ctx, cancel=1)
        await bench.idle(ctx, 3)
        bench.push(new)
        await bench.run(ctx, lambda: bench.slave.bq and bench.slave.bq[-1][1].id == 1)
        bench.slave.hold_b = False
        await bench.run(ctx)
        await bench.idle(ctx, 3)

    simulate(dut, body)
    bench.check_protocol(seed)
    tr = bench.trace
    assert [c for _, c in bench.taken][:3] == [0, 1, 2], f"seed={seed}"
    h = 3                                           # the last AW / W handshake
    assert tr[h].awvalid and tr[h].awready
    err = bench.first(lambda r: r.error != 0)
    assert err == h + 1 + wc, f"seed={seed}: WATCHDOG in cycle {err}"
    assert (tr[err].error, tr[err].error_addr, tr[err].busy) == \
        (ErrorCode.WATCHDOG, 0x200, 0)
    assert all(r.busy for r in tr[1:err])
    c = seen["cancel"]
    assert all(r.error == 0 for r in tr[c + 1:]), f"seed={seed}: late responses not ignored"
    bs = [(r.cycle, r.b) for r in tr if r.b is not None]
    assert [b for _, b in bs] == [(0, SLVERR, 0x200), (0, SLVERR, 0x208), (0, SLVERR, 0x210),
                                  (1, 0, 0x300)], f"seed={seed}: {bs}"
    t_new = bench.taken[-1][1]
    assert all(r.busy for r in tr[t_new + 1:bs[-1][0] + 1]), f"seed={seed}: busy fell early"
    assert not tr[bs[-1][0] + 1].busy
    assert [(w[0], w[2]) for w in bench.written()] == \
        [(0x200, 0), (0x208, 0), (0x210, 0), (0x300, 1)]
    apply(ref, new, 8)
    assert_mem(mem, ref, seed)


def test_watchdog_cycle_takes_no_entry(seed, rng):
    """A beat offered in exactly the cycle the watchdog fires (only responses pending) is not
    taken in that cycle; from the next one the error is set and it is taken and dropped (not
    written); after ``cancel`` a new beat is written with the next ID."""
    wc = 8
    dut = BeatWriter(max_outstanding=4, watchdog_cycles=wc)
    first, late, new = (make_beats(rng, [t], 8) for t in (0x40, 0x41, 0x42))
    mem = random_mem(rng)
    ref = bytearray(mem)
    bench = Bench(dut, mem, rng)
    bench.slave.hold_b = True
    bench.push(first)
    seen = {}

    async def body(ctx):
        await bench.run(ctx, lambda: bench.taken)
        h = bench.taken[0][1] + 1                   # AW / W handshake
        while bench.cycle < h + wc:                 # no handshake since: timeout at h + wc
            await bench.step(ctx)
        bench.push(late)                            # offered in the watchdog's cycle
        seen["fire"] = bench.cycle
        await bench.idle(ctx, 3)
        await bench.step(ctx, cancel=1)
        bench.slave.hold_b = False
        bench.push(new)
        await bench.run(ctx)

    simulate(dut, body)
    bench.check_protocol(seed)
    tr, f = bench.trace, seen["fire"]
    assert tr[f].valid and not tr[f].ready, f"seed={seed}: an entry taken as the watchdog fired"
    assert tr[f + 1].error == ErrorCode.WATCHDOG and tr[f + 1].ready, f"seed={seed}: {tr[f + 1]}"
    assert [c for _, c in bench.taken][:2] == [h0 := bench.taken[0][1], f + 1], \
        f"seed={seed}: {bench.taken} (first at {h0})"
    assert [(w[0], w[2]) for w in bench.written()] == [(0x200, 0), (0x210, 1)], \
        f"seed={seed}: {bench.written()}"
    apply(ref, first + new, 8)
    assert_mem(mem, ref, seed)


def test_watchdog_after_an_error_keeps_the_first(seed, rng):
    """A write whose response never comes, then a beat outside the window (OUT_OF_WINDOW):
    the watchdog still forgets the write (``busy`` falls, next ID) but the first error and
    its address stay."""
    wc = 8
    dut = BeatWriter(max_outstanding=2, watchdog_cycles=wc)
    mem = random_mem(rng)
    ref = bytearray(mem)
    bench = Bench(dut, mem, rng, window=(0, 0x2000))
    bench.slave.hold_b = True
    bench.push(make_beats(rng, [0x20, 0x2000 // 8], 8))

    async def body(ctx):
        await bench.run(ctx)
        await bench.idle(ctx, 20)

    simulate(dut, body)
    bench.check_protocol(seed)
    tr = bench.trace
    assert [c for _, c in bench.taken] == [0, 1], f"seed={seed}"
    assert all((r.error, r.error_addr) == (ErrorCode.OUT_OF_WINDOW, 0x2000) for r in tr[2:])
    end = bench.first(lambda r: not r.busy, start=1)
    assert end == 1 + 1 + wc, f"seed={seed}: busy fell in cycle {end}"   # AW/W taken in 1
    assert (tr[end - 1].awid, tr[end].awid) == (0, 1)
    assert [w[0] for w in bench.written()] == [0x100]
    apply(ref, [bench.taken[0][0]], 8)
    assert_mem(mem, ref, seed)


def test_watchdog_id_wraps(seed, rng):
    """Every watchdog bumps the AXI ID, modulo 2 ** id_width."""
    dut = BeatWriter(max_outstanding=2, watchdog_cycles=4, id_width=2)
    mem = bytearray(MEM)
    bench = Bench(dut, mem, rng)
    ids = []

    async def body(ctx):
        for i in range(5):
            bench.slave.dead = True
            bench.push(make_beats(rng, [i], 8))
            await bench.run(ctx)
            ids.append(next(r.awid for r in reversed(bench.trace) if r.awvalid))
            assert bench.last.error == ErrorCode.WATCHDOG, f"seed={seed}: round {i}"
            bench.slave.dead = False
            await bench.step(ctx, cancel=1)
            await bench.idle(ctx, 2)
        bench.push(make_beats(rng, [9], 8))
        await bench.run(ctx)

    simulate(dut, body)
    bench.check_protocol(seed, drops=bench.drops)
    assert len(bench.drops) == 5
    assert ids == [0, 1, 2, 3, 0], ids
    assert [(w[0], w[2]) for w in bench.written()] == [(9 * 8, 1)]


# -- 7. cancel -------------------------------------------------------------------------------

@pytest.mark.parametrize("cancel_at", [5, 8])
def test_cancel_drains_failing_responses(seed, rng, cancel_at):
    """Back-to-back beats, 12 slots, every response 8 cycles after the take and failing:
    ``cancel`` in cycle 5 (before any response) or 8 (the first failing response's cycle):
    the beat offered with ``cancel`` is not taken, ``ready`` stays low and ``busy`` high until
    the last response is in (and one cycle more: the drain ends the cycle after the count of
    writes in flight reached 0), no error ever; then the held beat and the rest are
    written."""
    dut = BeatWriter(max_outstanding=12, watchdog_cycles=1000)
    beats = make_beats(rng, rng.permutation(MEM // 8)[:24], 8)
    mem = random_mem(rng)
    ref = bytearray(mem)
    bench = Bench(dut, mem, rng, errors=[(0, MEM, SLVERR)], latency=(6, 6))
    bench.push(beats)

    async def body(ctx):
        await bench.idle(ctx, cancel_at)
        await bench.step(ctx, cancel=1)
        bench.slave.errors = []        # responses of what is in flight are decided already
        await bench.run(ctx)

    simulate(dut, body)
    bench.check_protocol(seed)
    tr = bench.trace
    # the last response in cycle cancel_at + 7, the count of writes in flight 0 in the next
    # cycle, the drain over one cycle later
    assert [c for _, c in bench.taken[:cancel_at + 1]] == list(range(cancel_at)) + \
        [cancel_at + 9], f"seed={seed}: {bench.taken[cancel_at][1]}"
    assert tr[cancel_at].valid and not tr[cancel_at].ready
    assert all(r.busy and not r.ready for r in tr[cancel_at + 1:cancel_at + 9])
    assert [r.cycle for r in tr if r.b is not None and r.b[1] == SLVERR] == \
        list(range(8, cancel_at + 8))
    assert not tr[cancel_at + 9].busy and tr[cancel_at + 9].ready
    assert all(r.error == 0 for r in tr), f"seed={seed}: error after cancel"
    apply(ref, beats[cancel_at:], 8)
    assert_mem(mem, ref, seed)


def test_cancel_random_drain(seed, rng):
    """Random stalls on every channel, five ``cancel`` pulses while beats are offered and in
    flight: the beat offered with ``cancel`` is not taken, from then ``ready`` is low exactly
    while ``busy`` is high (and ``busy`` is high at least one cycle); no write is left in the
    slave when ``busy`` falls; nothing is lost (cancel without an error drops nothing)."""
    dut = BeatWriter(max_outstanding=4, watchdog_cycles=1000)
    beats = make_beats(rng, rng.integers(0, MEM // 8, 300), 8)
    mem = random_mem(rng)
    ref = bytearray(mem)
    bench = Bench(dut, mem, rng, p_valid=0.9, p_addr=0.6, p_data=0.6, latency=(1, 8))
    bench.push(beats)
    cancels = []

    async def body(ctx):
        for _ in range(5):
            await bench.idle(ctx, int(rng.integers(10, 60)))
            await bench.run(ctx, lambda: bench.offered or not bench.queue)
            cancels.append(bench.cycle)
            await bench.step(ctx, cancel=1)
            await bench.run(ctx, lambda: not bench.last.busy)
        await bench.run(ctx, max_cycles=8000)

    simulate(dut, body)
    bench.check_protocol(seed)
    tr = bench.trace
    for c in cancels:
        assert tr[c].cancel and not tr[c].ready, f"seed={seed}: taken with cancel at {c}"
        end = bench.first(lambda r: not r.busy, start=c + 1)
        assert end is not None and end > c + 1, f"seed={seed}: no drain after {c}"
        assert all(not r.ready for r in tr[c + 1:end]), f"seed={seed}: taken while draining"
        assert tr[end].ready, f"seed={seed}: drained at {end} but not ready"
    assert all(r.error == 0 for r in tr), f"seed={seed}"
    apply(ref, beats, 8)
    assert_mem(mem, ref, seed)
    assert bench.written() == [(t * 8, s, 0) for t, _, s in beats], f"seed={seed}"


def test_cancel_watchdog_forgets_without_error(seed, rng):
    """``cancel`` while the responses never come: ``busy`` stays high, the watchdog forgets
    the writes after ``watchdog_cycles`` cycles without a handshake *without* an error, the
    drain then ends (``busy`` low one cycle later) and the next write uses the next ID."""
    wc = 8
    dut = BeatWriter(max_outstanding=4, watchdog_cycles=wc)
    beats = make_beats(rng, [0x40, 0x41, 0x42], 8)
    new = make_beats(rng, [0x60], 8)
    mem = random_mem(rng)
    ref = bytearray(mem)
    bench = Bench(dut, mem, rng)
    bench.slave.hold_b = True
    bench.push(beats)

    async def body(ctx):
        await bench.idle(ctx, 5)
        await bench.step(ctx, cancel=1)
        await bench.run(ctx)
        bench.slave.hold_b = False         # the forgotten writes' responses come late
        bench.push(new)
        await bench.run(ctx)

    simulate(dut, body)
    bench.check_protocol(seed)
    tr = bench.trace
    end = bench.first(lambda r: not r.busy, start=1)
    assert end == 3 + wc + 2, f"seed={seed}: busy fell in cycle {end}"
    assert tr[end - 2].awid == 0 and tr[end - 1].awid == 1 and tr[end - 1].busy
    assert all(r.error == 0 for r in tr), f"seed={seed}: error {bench.last.error}"
    assert [(w[0], w[2]) for w in bench.written()] == \
        [(0x200, 0), (0x208, 0), (0x210, 0), (0x300, 1)]
    assert [r.b[0] for r in tr if r.b is not None] == [0, 0, 0, 1]
    apply(ref, beats + new, 8)
    assert_mem(mem, ref, seed)


# -- 8. parameters ---------------------------------------------------------------------------

@pytest.mark.parametrize("kw,exc,msg", [
    (dict(max_outstanding=0), ValueError, "max_outstanding must be between 1 and 16, not 0"),
    (dict(max_outstanding=17), ValueError, "max_outstanding must be between 1 and 16, not 17"),
    (dict(max_outstanding=2.0), TypeError, "max_outstanding must be an integer, not 2.0"),
    (dict(max_outstanding=True), TypeError, "max_outstanding must be an integer, not True"),
    (dict(watchdog_cycles=3), ValueError,
     "watchdog_cycles must be between 4 and 1073741824, not 3"),
    (dict(watchdog_cycles=(1 << 30) + 1), ValueError,
     "watchdog_cycles must be between 4 and 1073741824, not 1073741825"),
    (dict(watchdog_cycles="64"), TypeError, "watchdog_cycles must be an integer, not '64'"),
    (dict(data_width=48), ValueError,
     "data_width must be a power of two between 8 and 1024, not 48"),
    (dict(data_width=2048), ValueError,
     "data_width must be a power of two between 8 and 1024, not 2048"),
    (dict(data_width=None), TypeError, "data_width must be an integer, not None"),
    (dict(addr_width=11), ValueError, "addr_width must be between 12 and 64, not 11"),
    (dict(id_width=0), ValueError, "id_width must be between 1 and 16, not 0"),
    (dict(id_width=17), ValueError, "id_width must be between 1 and 16, not 17"),
])
def test_parameter_errors(kw, exc, msg):
    # the rejected object exists (amaranth's MustUse): collect it here, its "created but
    # never used" warning silenced, so that it does not fire in a later test under -W error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(exc) as info:
            BeatWriter(**kw)
        got = str(info.value)
        del info
        gc.collect()
    assert got == msg


@pytest.mark.parametrize("kw", [
    dict(max_outstanding=1, watchdog_cycles=4), dict(max_outstanding=16, watchdog_cycles=1 << 30),
    dict(data_width=1024, addr_width=64, id_width=16), dict(data_width=8, addr_width=12,
                                                           id_width=1)])
def test_parameter_bounds_elaborate(kw):
    dut = BeatWriter(**kw)
    Fragment.get(dut, None)
    assert len(dut.beats.payload.tag) == dut.addr_width - (dut.beat_bytes - 1).bit_length()
