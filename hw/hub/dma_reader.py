"""AXI4 read master: commands in, bus words out (docs/dma.md)."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import stream
from amaranth.lib.wiring import Out
from sparsemac.golden.descriptors import ErrorCode
from sparsemac.hw.hub.dma_engine import DmaEngine, _State
from sparsemac.hw.mem.axi import (
    AxiBurst,
    axi4_read_signature,
    burst_beats,
    dma_read_data_layout,
)

__all__ = ["DmaReader"]



class DmaReader(DmaEngine):
    """AXI4 read master with bursts, outstanding reads, window check, watchdog and abort.

    A command ``(addr, length, tag)`` reads ``length`` bytes from ``addr``; both must be
    multiples of the bus width in bytes (``data_width // 8``) and ``length`` must be non-zero.
    The words come out of ``data`` in address order (the last one with ``last = 1``), then one
    entry on ``status`` closes the command (``code`` 0 = OK, else a ``hw.regmap.ErrorCode`` and
    the faulting byte address in ``addr``).  One command runs at a time; the next is accepted
    once the status has been taken.

    The command is checked before any bus traffic: ``length == 0`` -> ``BAD_LENGTH``; ``addr``
    or ``length`` not a multiple of the beat -> ``MISALIGNED``; ``[addr, addr + length)`` not
    inside ``[window_base, window_limit)`` -> ``OUT_OF_WINDOW`` (``addr`` = the command
    address).  Bursts are INCR, full width, at most ``max_burst`` beats, never crossing a 4 KiB
    boundary, with up to ``max_outstanding`` bursts in flight on one AXI ID.  An ``RRESP`` of
    SLVERR / DECERR stops new bursts, the rest of the command's beats are read and dropped,
    and the status reports ``AXI_SLVERR`` / ``AXI_DECERR`` with the address of the failing
    beat; words before it have been delivered.  ``watchdog_cycles`` consecutive cycles with a
    burst outstanding and neither an AR handshake nor ``rvalid`` end the command with
    ``WATCHDOG``: the DMA then drops ``arvalid``, forgets its outstanding bursts and moves to
    the next AXI ID, so late beats of the stuck bursts are recognised by ``rid`` and dropped
    (the interconnect should still be reset). A consumer that holds ``data.ready`` low never
    trips the watchdog.

    ``abort`` (one cycle is enough) is a synchronous soft reset: no word is delivered and no
    status is produced for the running command, a pending AR is held until accepted, and the
    reader drains every outstanding beat before it returns to idle (``busy`` = 0).  The
    watchdog also bounds the drain.

    Latency / throughput: ``data`` is combinationally connected to the R channel (zero added
    latency, one word per cycle when the slave and the consumer allow it). A command costs 2
    cycles before its first AR (accept, check) and one cycle for its status. ARs can issue on
    consecutive cycles.

    Parameters
    ----------
    data_width, addr_width, id_width, max_burst, max_outstanding, watchdog_cycles, tag_width
        As for :class:`~sparsemac.hw.hub.dma_engine.DmaEngine` (checked there).

    Members
    -------
    cmd : In(stream(dma_cmd_layout))
    data : Out(stream(dma_read_data_layout))
    status : Out(stream(dma_status_layout))
    m_axi : Out(axi4_read_signature)
    window_base, window_limit : In(addr_width)
        Allowed byte range ``[base, limit)``; sampled when a command is checked.
    abort : In(1)
    busy : Out(1)
        A command or a drain is in progress.

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
            data=Out(stream.Signature(dma_read_data_layout(data_width, tag_width))),
            m_axi=Out(axi4_read_signature(data_width=data_width, addr_width=addr_width,
                                          id_width=id_width)))

    def elaborate(self, platform):
        m = Module()
        aw = self.addr_width
        sh = (self.beat_bytes - 1).bit_length()
        beats_w = aw - sh + 1
        axi = self.m_axi

        state = Signal(_State)
        cur_id = Signal(self.id_width)
        out_cnt = Signal(range(self.max_outstanding + 1))
        arvalid = Signal()
        araddr = Signal(aw)
        arlen = Signal(8)
        tag = Signal(self.tag_width)
        start = Signal(aw)
        length = Signal(aw)
        ar_addr = Signal(aw)            # next burst address
        ar_left = Signal(beats_w)       # beats not requested yet
        rx_addr = Signal(aw)            # address of the next expected beat
        rx_left = Signal(beats_w)       # beats not received yet
        err = Signal(8)
        err_addr = Signal(aw)
        wd = Signal(range(self.watchdog_cycles + 1))

        m.d.comb += [
            axi.arid.eq(cur_id), axi.araddr.eq(araddr), axi.arlen.eq(arlen),
            axi.arsize.eq(sh), axi.arburst.eq(AxiBurst.INCR), axi.arcache.eq(0b0011),
            axi.arprot.eq(0), axi.arvalid.eq(arvalid),
            self.busy.eq(state != _State.IDLE),
        ]

        # -- R channel: deliver, drop or record an error --------------------------------------
        ours = axi.rvalid & (axi.rid == cur_id)
        delivering = (state == _State.RUN) & (err == 0) & ~self.abort
        m.d.comb += [
            self.data.valid.eq(ours & delivering & ~axi.rresp[1]),
            self.data.payload.data.eq(axi.rdata),
            self.data.payload.last.eq(rx_left == 1),
            self.data.payload.tag.eq(tag),
            axi.rready.eq(Mux(self.data.valid, self.data.ready, 1)),
        ]
        r_fire = ours & axi.rready
        out_dec = Signal()
        with m.If(r_fire):
            m.d.sync += [rx_addr.eq(rx_addr + self.beat_bytes), rx_left.eq(rx_left - 1)]
            m.d.comb += out_dec.eq(axi.rlast)
            with m.If(delivering & axi.rresp[1]):
                m.d.sync += [
                    err.eq(Mux(axi.rresp[0], ErrorCode.AXI_DECERR, ErrorCode.AXI_SLVERR)),
                    err_addr.eq(rx_addr),
                ]

        # -- AR channel -----------------------------------------------------------------------
        beats = burst_beats(m, ar_addr, ar_left, self.max_burst, self.beat_bytes)
        want = delivering & (ar_left != 0) & (out_cnt < self.max_outstanding)
        out_inc = Signal()
        with m.If(want & (~arvalid | axi.arready)):
            m.d.sync += [
                araddr.eq(ar_addr), arlen.eq(beats - 1), arvalid.eq(1),
                ar_addr.eq(ar_addr + (beats << sh)), ar_left.eq(ar_left - beats),
            ]
            m.d.comb += out_inc.eq(1)
        with m.Elif(arvalid & axi.arready):
            m.d.sync += arvalid.eq(0)
        m.d.sync += out_cnt.eq(out_cnt + out_inc - out_dec)

        # -- watchdog: a burst is outstanding and the slave shows no sign of life -------------
        stuck = (out_cnt != 0) & ~axi.rvalid & ~(arvalid & axi.arready)
        timeout = Signal()
        with m.If(stuck & ((state == _State.RUN) | (state == _State.ABORT))):
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
        with m.Switch(state):
            with m.Case(_State.IDLE):
                with m.If(self.cmd.valid & self.cmd.ready):
                    p = self.cmd.payload
                    m.d.sync += [
                        start.eq(p.addr), length.eq(p.length), tag.eq(p.tag),
                        ar_addr.eq(p.addr), ar_left.eq(p.length >> sh),
                        rx_addr.eq(p.addr), rx_left.eq(p.length >> sh),
                        err.eq(0), err_addr.eq(0), state.eq(_State.CHECK),
                    ]
            with m.Case(_State.CHECK):
                m.d.sync += state.eq(_State.RUN)
                with m.If(length == 0):
                    m.d.sync += [err.eq(ErrorCode.BAD_LENGTH), state.eq(_State.STATUS)]
                with m.Elif(misaligned):
                    m.d.sync += [err.eq(ErrorCode.MISALIGNED), state.eq(_State.STATUS)]
                with m.Elif((start < self.window_base) | (end > self.window_limit)):
                    m.d.sync += [err.eq(ErrorCode.OUT_OF_WINDOW), state.eq(_State.STATUS)]
                m.d.sync += err_addr.eq(start)
            with m.Case(_State.RUN):
                with m.If(((ar_left == 0) | (err != 0)) & (out_cnt == 0)):
                    m.d.sync += state.eq(_State.STATUS)
            with m.Case(_State.STATUS):
                with m.If(self.status.ready):
                    m.d.sync += state.eq(_State.IDLE)
            with m.Case(_State.ABORT):
                with m.If((out_cnt == 0) & ~arvalid):
                    m.d.sync += state.eq(_State.IDLE)

        with m.If(timeout):
            m.d.sync += [arvalid.eq(0), out_cnt.eq(0), cur_id.eq(cur_id + 1), wd.eq(0)]
            with m.If(state == _State.RUN):
                m.d.sync += state.eq(_State.STATUS)
                with m.If(err == 0):
                    m.d.sync += [err.eq(ErrorCode.WATCHDOG), err_addr.eq(rx_addr)]
            with m.Else():
                m.d.sync += state.eq(_State.IDLE)
        with m.If(self.abort):
            m.d.sync += state.eq(_State.ABORT)
        return m
