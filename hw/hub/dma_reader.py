"""AXI4 read master: commands in, bus words out (docs/dma.md)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream
from amaranth.lib.wiring import Out
from sparsemac.hw.hub.dma_engine import DmaEngine, _State
from sparsemac.hw.mem.axi import axi4_read_signature, dma_read_data_layout

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

    Parameters and the members other than ``data`` and ``m_axi`` are those of
    :class:`~sparsemac.hw.hub.dma_engine.DmaEngine` (defaults and checks there).

    Members
    -------
    data : Out(stream(dma_read_data_layout))
        The words read, in address order; ``last`` on the command's final word.
    m_axi : Out(axi4_read_signature)
    """

    _axi_signature = staticmethod(axi4_read_signature)

    def _data_member(self):
        return Out(stream.Signature(dma_read_data_layout(self.data_width, self.tag_width)))

    def elaborate(self, platform):
        m = Module()
        axi = self.m_axi
        regs = self._command_registers()
        state, cur_id, tag, _, _, err, err_addr, wd = regs
        out_cnt = Signal(range(self.max_outstanding + 1))
        ar = self._cursor("ar")         # next burst to request
        rx = self._cursor("rx")         # next beat expected
        _, ar_left = ar
        rx_addr, rx_left = rx
        arvalid, _, _ = ar_channel = self._address_channel(m, "ar", cur_id)
        m.d.comb += self.busy.eq(state != _State.IDLE)

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
            m.d.sync += self._advance(rx, 1)
            m.d.comb += out_dec.eq(axi.rlast)
            with m.If(delivering & axi.rresp[1]):
                m.d.sync += [err.eq(self._resp_error(axi.rresp)), err_addr.eq(rx_addr)]

        # -- AR channel -----------------------------------------------------------------------
        beats = self._burst_beats(m, ar)
        want = delivering & (ar_left != 0) & (out_cnt < self.max_outstanding)
        out_inc = Signal()
        self._issue_burst(m, ar_channel, axi.arready, want & (~arvalid | axi.arready), ar, beats,
                          issued=out_inc)
        m.d.sync += out_cnt.eq(out_cnt + out_inc - out_dec)

        # -- watchdog: a burst is outstanding and the slave shows no sign of life -------------
        stuck = (out_cnt != 0) & ~axi.rvalid & ~(arvalid & axi.arready)
        timeout = self._watchdog(m, wd, stuck & ((state == _State.RUN) | (state == _State.ABORT)))

        # -- control (DmaEngine._command_fsm) -------------------------------------------------
        self._command_fsm(
            m, regs, cursors=(ar, rx), accept=[err_addr.eq(0)],
            done=((ar_left == 0) | (err != 0)) & (out_cnt == 0),
            quiet=(out_cnt == 0) & ~arvalid, timeout=timeout,
            forget=[arvalid.eq(0), out_cnt.eq(0)], stuck_addr=rx_addr)
        return m
