"""Cycle-based Python AXI4 slave models for amaranth.sim tests of the DMA blocks.

A bench calls ``drive(ctx)`` for every model (sets all inputs of this cycle), then
``observe(ctx)`` (reads the settled outputs and records handshakes), then ``await ctx.tick()``:
one coroutine drives everything, so there are no races between testbench processes.

The slaves check the AXI rules the DMA must keep: INCR bursts, full-width beats, no 4 KiB
crossing, at most ``max_burst`` beats, stable AR/AW/W while valid and not ready, WLAST on the
burst's last beat.  Violations are collected in ``violations`` (tests assert it is empty).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

OKAY, SLVERR, DECERR = 0, 2, 3


@dataclass
class Burst:
    id: int
    addr: int
    beats: int
    visible: int          #: cycle arvalid/awvalid was first seen for it
    accepted: int         #: cycle of the handshake
    done: int = 0         #: beats moved
    resp: int = OKAY
    wdata: list = field(default_factory=list)


class _Base:
    def __init__(self, axi, rng, *, beat_bytes, max_burst, errors=(), p_addr=1.0, p_data=1.0,
                 latency=(0, 0)):
        self.axi = axi
        self.rng = rng
        self.bb = beat_bytes
        self.max_burst = max_burst
        self.errors = list(errors)   # (lo, hi, resp): beats inside [lo, hi) answer resp
        self.p_addr = p_addr
        self.p_data = p_data
        self.latency = latency
        self.dead = False            # never answers (arready/awready/wready 0, no R/B)
        self.cycle = 0
        self.violations: list[str] = []
        self.bursts: list[Burst] = []     # every accepted burst, in order
        self.max_in_flight = 0
        self._pending_seen = None         # (cycle first seen, address fields) of a waiting AR/AW

    def resp_for(self, addr: int) -> int:
        for lo, hi, resp in self.errors:
            if lo <= addr < hi:
                return resp
        return OKAY

    def _chance(self, p):
        return not self.dead and self.rng.random() < p

    def _check_addr(self, kind, addr, length, size, burst):
        beats = length + 1
        if burst != 1:
            self.violations.append(f"{kind} burst type {burst} is not INCR")
        if size != (self.bb - 1).bit_length():
            self.violations.append(f"{kind} size {size} is not full width")
        if addr % self.bb:
            self.violations.append(f"{kind} address 0x{addr:x} not beat aligned")
        if beats > self.max_burst:
            self.violations.append(f"{kind} of {beats} beats exceeds max_burst {self.max_burst}")
        if (addr & 0xFFF) + beats * self.bb > 0x1000:
            self.violations.append(f"{kind} 0x{addr:x}+{beats * self.bb} crosses 4 KiB")

    def _addr_channel(self, ctx, prefix, ready_now):
        """Record the address handshake; check stability while waiting."""
        g = lambda n: ctx.get(getattr(self.axi, prefix + n))  # noqa: E731
        if not g("valid"):
            if self._pending_seen is not None:
                self.violations.append(f"{prefix}valid dropped before {prefix}ready")
                self._pending_seen = None
            return None
        fields_ = (g("id"), g("addr"), g("len"), g("size"), g("burst"))
        if self._pending_seen is None:
            self._pending_seen = (self.cycle, fields_)
        elif self._pending_seen[1] != fields_:
            self.violations.append(f"{prefix} fields changed while waiting")
        if not ready_now:
            return None
        visible = self._pending_seen[0]
        self._pending_seen = None
        id_, addr, length, size, burst = fields_
        self._check_addr(prefix.upper(), addr, length, size, burst)
        b = Burst(id_, addr, length + 1, visible, self.cycle)
        self.bursts.append(b)
        return b


class AxiReadSlave(_Base):
    """AR/R slave over ``mem`` (a bytearray) with random stalls, latency and error regions."""

    def __init__(self, axi, mem, rng, **kw):
        super().__init__(axi, rng, **kw)
        self.mem = mem
        self.queue: deque[tuple[int, Burst]] = deque()   # (ready cycle, burst)
        self.beat = None      # presented beat (id, data, resp, last)
        self.arready = 0

    def drive(self, ctx):
        a = self.axi
        self.arready = int(self._chance(self.p_addr))
        ctx.set(a.arready, self.arready)
        if (self.beat is None and self.queue and self.queue[0][0] <= self.cycle
                and self._chance(self.p_data)):
            b = self.queue[0][1]
            addr = b.addr + b.done * self.bb
            resp = self.resp_for(addr)
            data = 0 if resp else int.from_bytes(self.mem[addr:addr + self.bb], "little")
            self.beat = (b.id, data, resp, int(b.done == b.beats - 1))
        if self.beat is not None:
            rid, data, resp, last = self.beat
            ctx.set(a.rid, rid)
            ctx.set(a.rdata, data)
            ctx.set(a.rresp, resp)
            ctx.set(a.rlast, last)
        ctx.set(a.rvalid, int(self.beat is not None))

    def observe(self, ctx):
        b = self._addr_channel(ctx, "ar", self.arready)
        if b is not None:
            self.queue.append((self.cycle + 1 + self.rng.integers(*self.latency, endpoint=True),
                               b))
        self.max_in_flight = max(self.max_in_flight, len(self.queue))
        if self.beat is not None and ctx.get(self.axi.rready):
            b = self.queue[0][1]
            b.done += 1
            self.beat = None
            if b.done == b.beats:
                self.queue.popleft()
        self.cycle += 1


class AxiWriteSlave(_Base):
    """AW/W/B slave writing into ``mem`` (honours WSTRB) with stalls, latency, error regions."""

    def __init__(self, axi, mem, rng, **kw):
        super().__init__(axi, rng, **kw)
        self.mem = mem
        self.wq: deque[Burst] = deque()     # bursts waiting for data
        self.bq: deque[tuple[int, Burst]] = deque()  # (ready cycle, burst) waiting for B
        self.b = None
        self.awready = 0
        self.wready = 0
        self.early_w: list = []             # W beats before their AW (AXI allows it)
        self.hold_b = False                 # accepts AW and W but sends no B response

    def reset(self):
        """Forget every burst in progress (an interconnect reset after a watchdog)."""
        self.wq.clear()
        self.bq.clear()
        self.early_w.clear()
        self.b = None
        self._pending_seen = None

    def drive(self, ctx):
        a = self.axi
        self.awready = int(self._chance(self.p_addr))
        self.wready = int(self._chance(self.p_data))
        ctx.set(a.awready, self.awready)
        ctx.set(a.wready, self.wready)
        if self.b is None and self.bq and self.bq[0][0] <= self.cycle and not self.hold_b \
                and self._chance(self.p_data):
            self.b = self.bq[0][1]
        if self.b is not None:
            ctx.set(a.bid, self.b.id)
            ctx.set(a.bresp, self.b.resp)
        ctx.set(a.bvalid, int(self.b is not None))

    def _w_beat(self, data, strb, last):
        wb = self.wq[0]
        addr = wb.addr + wb.done * self.bb
        if last != int(wb.done == wb.beats - 1):
            self.violations.append(f"WLAST={last} on beat {wb.done} of {wb.beats}")
        resp = self.resp_for(addr)
        if resp:
            wb.resp = resp
        else:
            raw = data.to_bytes(self.bb, "little")
            for i in range(self.bb):
                if strb >> i & 1:
                    self.mem[addr + i] = raw[i]
        wb.wdata.append((addr, strb))
        wb.done += 1
        if wb.done == wb.beats:
            self.wq.popleft()
            lat = self.rng.integers(*self.latency, endpoint=True)
            self.bq.append((self.cycle + 1 + lat, wb))

    def observe(self, ctx):
        a = self.axi
        b = self._addr_channel(ctx, "aw", self.awready)
        if b is not None:
            self.wq.append(b)
        if self.wready and ctx.get(a.wvalid):
            self.early_w.append((ctx.get(a.wdata), ctx.get(a.wstrb), ctx.get(a.wlast)))
        while self.early_w and self.wq:
            self._w_beat(*self.early_w.pop(0))
        self.max_in_flight = max(self.max_in_flight, len(self.wq) + len(self.bq))
        if self.b is not None and ctx.get(a.bready):
            self.bq.popleft()
            self.b = None
        self.cycle += 1
