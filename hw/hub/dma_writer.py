"""AXI4 write master: commands and strobed words in, bursts out (docs/dma.md)."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out
from sparsemac.golden.descriptors import ErrorCode
from sparsemac.hw.hub.dma_engine import DmaEngine, _State
from sparsemac.hw.mem.axi import (
    AxiBurst,
    axi4_write_signature,
    burst_beats,
    dma_write_data_layout,
)

__all__ = ["DmaWriter"]



class DmaWriter(DmaEngine):
    """AXI4 write master with bursts, outstanding writes, window check, watchdog and abort.

    A command ``(addr, length, tag)`` writes the next ``length // beat`` words of ``data`` to
    ``addr`` (``beat = data_width // 8``; ``addr`` and ``length`` must be multiples of it and
    ``length`` non-zero); each word's ``strb`` selects the byte lanes written.  One entry on
    ``status`` closes the command once every burst has its write response (``code`` 0 = OK,
    else a ``hw.regmap.ErrorCode`` with the faulting byte address in ``addr``).  One command
    runs at a time.

    Command checks are those of ``DmaReader`` (``BAD_LENGTH``, ``MISALIGNED``,
    ``OUT_OF_WINDOW`` against ``[window_base, window_limit)``), done before any bus traffic; a
    rejected command consumes no word of ``data``.  Bursts are INCR, full width, at most
    ``max_burst`` beats, never crossing 4 KiB; up to ``max_outstanding`` bursts wait for their
    B response, all on one AXI ID.  An AW is issued as soon as the outstanding limit allows (it
    does not wait for the data); the W beats of a burst follow its AW in order.

    A ``BRESP`` of SLVERR / DECERR stops new bursts; the remaining beats of bursts already
    announced on AW are sent with ``WSTRB = 0`` (nothing written) and no further word is taken
    from ``data``; the status reports ``AXI_SLVERR`` / ``AXI_DECERR`` with the start address
    of the failing burst.  The words of the command not taken stay in the producer: the
    sequencer aborts it.  ``watchdog_cycles`` consecutive cycles with a burst outstanding and
    no AW, W or B progress (a producer that has no data does not count) end the command with
    ``WATCHDOG``: AWVALID/WVALID are dropped, the outstanding bursts are forgotten and the next
    AXI ID is used, so late B responses are recognised by ``bid`` and ignored.

    ``abort`` (one cycle) is a synchronous soft reset: no status for the running command, no
    further word taken, a pending AW held until accepted, the announced bursts completed with
    null beats (``WSTRB = 0``) and every B response drained before ``busy`` falls.

    Latency / throughput: W is registered (a word reaches WDATA one cycle after it is taken);
    one beat per cycle when the slave and the producer allow it.  A command costs 2 cycles
    before its first AW and one cycle for its status.

    Parameters
    ----------
    data_width, addr_width, id_width, max_burst, max_outstanding, watchdog_cycles, tag_width
        As for :class:`~sparsemac.hw.hub.dma_engine.DmaEngine` (checked there).

    Members
    -------
    cmd : In(stream(dma_cmd_layout))
    data : In(stream(dma_write_data_layout))
    status : Out(stream(dma_status_layout))
    m_axi : Out(axi4_write_signature)
    window_base, window_limit : In(addr_width)
    abort : In(1)
    busy : Out(1)

    Raises
    ------
    TypeError, ValueError
        A parameter is out of range (message names it).
    """

    def __init__(self, *, data_width: int = 64, addr_width: int = 32, id_width: int = 4,
                 max_burst: int = 16, max_outstanding: int = 4, watchdog_cycles: int = 65536,
                 tag_width: int = 8):
        super().__init__(
            data_width=data_width, addr_width=addr_width, id_width=id_width,
            max_burst=max_burst, max_outstanding=max_outstanding,
            watchdog_cycles=watchdog_cycles, tag_width=tag_width,
            data=In(stream.Signature(dma_write_data_layout(data_width))),
            m_axi=Out(axi4_write_signature(data_width=data_width, addr_width=addr_width,
                                           id_width=id_width)))

    def elaborate(self, platform):
        m = Module()
        aw = self.addr_width
        bb = self.beat_bytes
        sh = (bb - 1).bit_length()
        beats_w = aw - sh + 1
        axi = self.m_axi
        mo = self.max_outstanding

        state = Signal(_State)
        cur_id = Signal(self.id_width)
        tag = Signal(self.tag_width)
        start = Signal(aw)
        length = Signal(aw)
        err = Signal(8)
        err_addr = Signal(aw)
        wd = Signal(range(self.watchdog_cycles + 1))
        # AW side
        awvalid = Signal()
        awaddr = Signal(aw)
        awlen = Signal(8)
        aw_addr = Signal(aw)
        aw_left = Signal(beats_w)
        b_out = Signal(range(mo + 1))       # bursts announced, B not yet received
        w_pending = Signal(range(mo + 1))   # bursts announced, W not yet started
        # W side
        w_addr = Signal(aw)
        w_left = Signal(beats_w)
        w_in_burst = Signal(range(self.max_burst + 1))
        wvalid = Signal()
        wdata = Signal(self.data_width)
        wstrb = Signal(bb)
        wlast = Signal()
        # B side
        b_addr = Signal(aw)
        b_left = Signal(beats_w)

        m.d.comb += [
            axi.awid.eq(cur_id), axi.awaddr.eq(awaddr), axi.awlen.eq(awlen),
            axi.awsize.eq(sh), axi.awburst.eq(AxiBurst.INCR), axi.awcache.eq(0b0011),
            axi.awprot.eq(0), axi.awvalid.eq(awvalid),
            axi.wdata.eq(wdata), axi.wstrb.eq(wstrb), axi.wlast.eq(wlast),
            axi.wvalid.eq(wvalid), axi.bready.eq(1),
            self.busy.eq(state != _State.IDLE),
        ]
        running = (state == _State.RUN) & (err == 0) & ~self.abort
        draining = (state == _State.RUN) | (state == _State.ABORT)

        # -- AW -------------------------------------------------------------------------------
        aw_beats = burst_beats(m, aw_addr, aw_left, self.max_burst, bb)
        aw_load = Signal()
        m.d.comb += aw_load.eq(running & (aw_left != 0) & (b_out < mo) & (~awvalid | axi.awready))
        with m.If(aw_load):
            m.d.sync += [
                awaddr.eq(aw_addr), awlen.eq(aw_beats - 1), awvalid.eq(1),
                aw_addr.eq(aw_addr + (aw_beats << sh)), aw_left.eq(aw_left - aw_beats),
            ]
        with m.Elif(awvalid & axi.awready):
            m.d.sync += awvalid.eq(0)

        # -- W: a registered output stage; null beats (strobes 0) after an error or abort -----
        w_beats = burst_beats(m, w_addr, w_left, self.max_burst, bb)
        null = ~running
        w_can_load = ~wvalid | axi.wready
        beat_avail = draining & (w_in_burst != 0) & (null | self.data.valid)
        w_take = Signal()
        m.d.comb += [
            w_take.eq(w_can_load & beat_avail),
            self.data.ready.eq(w_can_load & (w_in_burst != 0) & ~null & draining),
        ]
        with m.If(w_take):
            m.d.sync += [
                wdata.eq(self.data.payload.data),
                wstrb.eq(Mux(null, 0, self.data.payload.strb)),
                wlast.eq(w_in_burst == 1), wvalid.eq(1),
            ]
        with m.Elif(w_can_load):
            m.d.sync += wvalid.eq(0)
        w_start = Signal()
        m.d.comb += w_start.eq(draining & (w_pending != 0)
                               & ((w_in_burst == 0) | (w_take & (w_in_burst == 1))))
        with m.If(w_start):
            m.d.sync += [
                w_in_burst.eq(w_beats), w_addr.eq(w_addr + (w_beats << sh)),
                w_left.eq(w_left - w_beats),
            ]
        with m.Elif(w_take):
            m.d.sync += w_in_burst.eq(w_in_burst - 1)
        m.d.sync += w_pending.eq(w_pending + aw_load - w_start)

        # -- B --------------------------------------------------------------------------------
        b_beats = burst_beats(m, b_addr, b_left, self.max_burst, bb)
        b_fire = axi.bvalid & (axi.bid == cur_id) & (b_out != 0)
        with m.If(b_fire):
            m.d.sync += [b_addr.eq(b_addr + (b_beats << sh)), b_left.eq(b_left - b_beats)]
            with m.If((state == _State.RUN) & (err == 0) & axi.bresp[1]):
                m.d.sync += [
                    err.eq(Mux(axi.bresp[0], ErrorCode.AXI_DECERR, ErrorCode.AXI_SLVERR)),
                    err_addr.eq(b_addr),
                ]
        m.d.sync += b_out.eq(b_out + aw_load - b_fire)

        # -- watchdog -------------------------------------------------------------------------
        progress = (awvalid & axi.awready) | (wvalid & axi.wready) | axi.bvalid
        starved = ~wvalid & (w_in_burst != 0) & ~null & ~self.data.valid
        timeout = Signal()
        with m.If(draining & (b_out != 0) & ~progress & ~starved):
            m.d.sync += wd.eq(wd + 1)
            m.d.comb += timeout.eq(wd == self.watchdog_cycles - 1)
        with m.Else():
            m.d.sync += wd.eq(0)

        # -- control --------------------------------------------------------------------------
        m.d.comb += [
            self.cmd.ready.eq((state == _State.IDLE) & ~self.abort),
            self.status.valid.eq(state == _State.STATUS),
            self.status.payload.tag.eq(tag),
            self.status.payload.code.eq(err),
            self.status.payload.addr.eq(err_addr),
        ]
        misaligned = (start | length)[:sh].any() if sh else Const(0)
        end = Signal(aw + 1)
        m.d.comb += end.eq(start + length)
        quiet = (b_out == 0) & (w_pending == 0) & (w_in_burst == 0) & ~wvalid & ~awvalid
        with m.Switch(state):
            with m.Case(_State.IDLE):
                with m.If(self.cmd.valid & self.cmd.ready):
                    p = self.cmd.payload
                    m.d.sync += [
                        start.eq(p.addr), length.eq(p.length), tag.eq(p.tag),
                        aw_addr.eq(p.addr), aw_left.eq(p.length >> sh),
                        w_addr.eq(p.addr), w_left.eq(p.length >> sh),
                        b_addr.eq(p.addr), b_left.eq(p.length >> sh),
                        err.eq(0), state.eq(_State.CHECK),
                    ]
            with m.Case(_State.CHECK):
                m.d.sync += [state.eq(_State.RUN), err_addr.eq(start)]
                with m.If(length == 0):
                    m.d.sync += [err.eq(ErrorCode.BAD_LENGTH), state.eq(_State.STATUS)]
                with m.Elif(misaligned):
                    m.d.sync += [err.eq(ErrorCode.MISALIGNED), state.eq(_State.STATUS)]
                with m.Elif((start < self.window_base) | (end > self.window_limit)):
                    m.d.sync += [err.eq(ErrorCode.OUT_OF_WINDOW), state.eq(_State.STATUS)]
            with m.Case(_State.RUN):
                with m.If(((aw_left == 0) | (err != 0)) & quiet):
                    m.d.sync += state.eq(_State.STATUS)
            with m.Case(_State.STATUS):
                with m.If(self.status.ready):
                    m.d.sync += state.eq(_State.IDLE)
            with m.Case(_State.ABORT):
                with m.If(quiet):
                    m.d.sync += state.eq(_State.IDLE)

        with m.If(timeout):
            m.d.sync += [awvalid.eq(0), wvalid.eq(0), b_out.eq(0), w_pending.eq(0),
                         w_in_burst.eq(0), cur_id.eq(cur_id + 1), wd.eq(0)]
            with m.If(state == _State.RUN):
                m.d.sync += state.eq(_State.STATUS)
                with m.If(err == 0):
                    m.d.sync += [err.eq(ErrorCode.WATCHDOG), err_addr.eq(b_addr)]
            with m.Else():
                m.d.sync += state.eq(_State.IDLE)
        with m.If(self.abort):
            m.d.sync += state.eq(_State.ABORT)
        return m
