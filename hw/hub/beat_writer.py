"""AXI4 write master for single-beat posted writes, one per cycle (docs/dma.md)."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from sparsemac.golden.descriptors import ErrorCode
from sparsemac.hw.mem.axi import (
    ERROR_CODE_WIDTH,
    AxiBurst,
    _check_int,
    axi4_write_signature,
    check_axi_params,
    dma_beat_layout,
)

__all__ = ["BeatWriter"]


class BeatWriter(wiring.Component):
    """Write one bus word per ``beats`` entry to its beat address, posted, a write per cycle.

    Each entry ``(tag, data, strb)`` becomes one AXI4 write of one beat (``AWLEN = 0``, full
    width, INCR, ``WLAST = 1``) at byte address ``tag * beat`` (``beat = data_width // 8``),
    the byte lanes ``strb`` selects written.  The ResultWriter's line buffers only ever write
    one beat at a time; this block is the DmaWriter's posted mode without the command FSM
    (accept, check, run, status: 4 cycles a single-beat command), so a write costs one cycle.

    Latency / throughput: an entry is taken in the cycle both ``AWVALID`` and ``WVALID`` are
    free (low, or taken by the slave) and fewer than ``max_outstanding`` writes wait for their
    B response; AW and W are registers loaded together in that cycle (on the bus the next).
    So one write per cycle while the slave takes AW and W every cycle and each B response
    comes at most ``max_outstanding - 1`` cycles after its beat was taken (a write's slot is
    free the cycle after its response).

    Checks: a beat outside the window (``tag * beat < window_base`` or ``tag * beat + beat >
    window_limit``) is not written and sets ``error`` = ``OUT_OF_WINDOW``, ``error_addr`` = its
    byte address.  A B response SLVERR / DECERR sets ``AXI_SLVERR`` / ``AXI_DECERR`` with the
    failing write's address (from a FIFO of the writes in flight).  ``watchdog_cycles``
    consecutive cycles with a write pending (AW or W not taken, or a B response due) and no
    AW, W or B handshake set ``WATCHDOG`` (address: the oldest write in flight); AWVALID and
    WVALID are dropped, the writes in flight forgotten and the next AXI ID used, so late B
    responses are recognised by ``bid`` and ignored.  The first error is kept (sticky until
    ``cancel``); from then on every entry is taken and dropped (nothing more is written,
    nothing waits), while a write already on the bus completes.

    ``cancel`` (one cycle: the sequencer's abort) clears ``error`` and drains: no entry is
    taken until the AW and W already offered are taken and every B response came back (or
    the watchdog forgets them, without an error), and one cycle more; ``busy`` stays high
    until then.  No entry is taken in the cycle the watchdog fires.

    Parameters
    ----------
    data_width, addr_width, id_width : int
        AXI widths (``check_axi_params``).
    max_outstanding : int
        Writes waiting for their B response (1..16).
    watchdog_cycles : int
        Stall limit in cycles (4..2**30).

    Members
    -------
    beats : In(stream(dma_beat_layout))
    m_axi : Out(axi4_write_signature)
    window_base, window_limit : In(addr_width)
        Allowed byte range ``[base, limit)``, read as each entry is taken.
    cancel : In(1)
    busy : Out(1)
        A write offered or in flight, or a cancel draining: ``~busy`` means every write landed.
    error : Out(8); error_addr : Out(addr_width)
        The first error (0 = none) and its byte address.

    Raises
    ------
    TypeError, ValueError
        A parameter is out of range (the message names it).
    """

    def __init__(self, *, data_width: int = 64, addr_width: int = 32, id_width: int = 4,
                 max_outstanding: int = 4, watchdog_cycles: int = 65536):
        check_axi_params(data_width=data_width, addr_width=addr_width, id_width=id_width)
        _check_int("max_outstanding", max_outstanding, 1, 16)
        _check_int("watchdog_cycles", watchdog_cycles, 4, 1 << 30)
        self.data_width = data_width
        self.addr_width = addr_width
        self.id_width = id_width
        self.max_outstanding = max_outstanding
        self.watchdog_cycles = watchdog_cycles
        super().__init__({
            "beats": In(stream.Signature(dma_beat_layout(data_width, addr_width))),
            "m_axi": Out(axi4_write_signature(data_width=data_width, addr_width=addr_width,
                                              id_width=id_width)),
            "window_base": In(addr_width),
            "window_limit": In(addr_width),
            "cancel": In(1),
            "busy": Out(1),
            "error": Out(ERROR_CODE_WIDTH),
            "error_addr": Out(addr_width),
        })

    @property
    def beat_bytes(self) -> int:
        return self.data_width // 8

    def elaborate(self, platform):
        m = Module()
        axi = self.m_axi
        mo = self.max_outstanding
        aw = self.addr_width
        lg_beat = (self.beat_bytes - 1).bit_length()

        cur_id = Signal(self.id_width, name="cur_id")
        awvalid, awaddr = Signal(name="awvalid"), Signal(aw, name="awaddr")
        wvalid = Signal(name="wvalid")
        wdata, wstrb = Signal(self.data_width, name="wdata"), Signal(self.beat_bytes, name="wstrb")
        b_out = Signal(range(mo + 1), name="b_out")       # writes waiting for their response
        fifo = Array(Signal(aw, name=f"write{i}_addr") for i in range(mo))
        head = Signal(range(mo), name="b_head")
        tail = Signal(range(mo), name="b_tail")
        err, err_addr = Signal(ERROR_CODE_WIDTH, name="err"), Signal(aw, name="err_addr")
        draining = Signal(name="draining")
        wd = Signal(range(self.watchdog_cycles), name="watchdog")
        m.d.comb += [
            axi.awid.eq(cur_id), axi.awaddr.eq(awaddr), axi.awlen.eq(0),
            axi.awsize.eq(lg_beat), axi.awburst.eq(AxiBurst.INCR),
            axi.awcache.eq(0b0011), axi.awprot.eq(0), axi.awvalid.eq(awvalid),
            axi.wdata.eq(wdata), axi.wstrb.eq(wstrb), axi.wlast.eq(1), axi.wvalid.eq(wvalid),
            axi.bready.eq(1),
            self.error.eq(err), self.error_addr.eq(err_addr),
            self.busy.eq(awvalid | wvalid | (b_out != 0) | draining),
        ]

        # -- intake: the beat's byte address and its window check -----------------------------
        p = self.beats.payload
        start = Signal(aw, name="start")
        end = Signal(aw + 1, name="end")
        m.d.comb += [start.eq(Cat(Const(0, lg_beat), p.tag)), end.eq(start + self.beat_bytes)]
        outside = Signal(name="outside")
        m.d.comb += outside.eq((start < self.window_base) | (end > self.window_limit))
        aw_free = ~awvalid | axi.awready
        w_free = ~wvalid | axi.wready
        ok = err == 0
        can_issue = Signal(name="can_issue")
        timeout = Signal(name="timeout")
        m.d.comb += [
            can_issue.eq(aw_free & w_free & (b_out < mo)),
            # after an error every entry is taken and dropped; none as the watchdog fires
            self.beats.ready.eq(~draining & ~self.cancel & ~timeout & (can_issue | ~ok)),
        ]
        take = self.beats.valid & self.beats.ready
        issue = Signal(name="issue")
        m.d.comb += issue.eq(take & ok & ~outside)

        # -- AW and W: registers loaded together ----------------------------------------------
        # the address, data and strobes load with every beat taken while AW and W are free
        # (their valid bits only with a write issued): so their ~90 enables do not wait for
        # the window compare and the error state (the 64-MAC board's slow net, session 23);
        # a beat taken and dropped leaves values no valid bit shows
        with m.If(take & can_issue):
            m.d.sync += [awaddr.eq(start), wdata.eq(p.data), wstrb.eq(p.strb)]
        with m.If(issue):
            m.d.sync += [awvalid.eq(1), wvalid.eq(1),
                         fifo[tail].eq(start), tail.eq(Mux(tail == mo - 1, 0, tail + 1))]
        with m.Else():
            with m.If(axi.awready):
                m.d.sync += awvalid.eq(0)
            with m.If(axi.wready):
                m.d.sync += wvalid.eq(0)

        # -- B: responses of this ID, in order ------------------------------------------------
        b_fire = axi.bvalid & (axi.bid == cur_id) & (b_out != 0)
        m.d.sync += b_out.eq(b_out + issue - b_fire)
        with m.If(b_fire):
            m.d.sync += head.eq(Mux(head == mo - 1, 0, head + 1))
        # the first error: a failing response (an earlier write) before a refused beat
        with m.If(b_fire & axi.bresp[1] & ok & ~draining):
            m.d.sync += [err.eq(Mux(axi.bresp[0], ErrorCode.AXI_DECERR, ErrorCode.AXI_SLVERR)),
                         err_addr.eq(fifo[head])]
        with m.Elif(take & ok & outside):
            m.d.sync += [err.eq(ErrorCode.OUT_OF_WINDOW), err_addr.eq(start)]

        # -- watchdog: a write pending and no handshake ---------------------------------------
        pending = awvalid | wvalid | (b_out != 0)
        progress = (awvalid & axi.awready) | (wvalid & axi.wready) | axi.bvalid
        # `wd_last`: the counter is at its last value (a flip-flop set with the step into it, so
        # no counter compare sits in front of `ready`)
        wd_last = Signal(name="watchdog_last")
        with m.If(pending & ~progress):
            m.d.sync += [wd.eq(wd + 1), wd_last.eq(wd == self.watchdog_cycles - 2)]
            m.d.comb += timeout.eq(wd_last)
        with m.Else():
            m.d.sync += [wd.eq(0), wd_last.eq(0)]
        with m.If(timeout):
            m.d.sync += [awvalid.eq(0), wvalid.eq(0), b_out.eq(0), head.eq(0), tail.eq(0),
                         cur_id.eq(cur_id + 1), wd.eq(0), wd_last.eq(0)]
            with m.If(ok & ~draining):
                m.d.sync += [err.eq(ErrorCode.WATCHDOG), err_addr.eq(fifo[head])]

        # -- cancel: clear the error, drain what is on the bus ---------------------------------
        with m.If(draining & ~pending):
            m.d.sync += draining.eq(0)
        with m.If(self.cancel):
            m.d.sync += [draining.eq(1), err.eq(0), err_addr.eq(0)]
        return m
