"""AXI4 write master: commands and strobed words in, bursts out (docs/dma.md)."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out
from sparsemac.golden.descriptors import ErrorCode
from sparsemac.hw.hub.dma_engine import DmaEngine, _State
from sparsemac.hw.mem.axi import ERROR_CODE_WIDTH, axi4_write_signature, dma_write_data_layout

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

    **Posted writes** (``posted=True``): a command's status comes as soon as its last word has been
    taken (its bursts announced), not after the B responses, and the next command may start while
    earlier bursts still wait for theirs (at most ``max_outstanding`` in all): back-to-back
    single-beat commands cost 7 cycles each instead of a full write round trip (15 against a slave
    answering 6 cycles late).  A failing ``BRESP`` (or the watchdog) then belongs to an earlier
    command: it is kept in ``posted_error`` / ``posted_error_addr`` (the start address of the
    failing burst, from a FIFO of the bursts in flight; sticky until ``abort``), stops new bursts
    and nulls the beats of announced ones as above, and every later command is refused with that
    code before any bus traffic.  ``busy`` stays high while a burst waits for its response, so
    ``~busy`` means every write has landed.

    Parameters and the members other than ``data`` and ``m_axi`` are those of
    :class:`~sparsemac.hw.hub.dma_engine.DmaEngine` (defaults and checks there).

    Members
    -------
    data : In(stream(dma_write_data_layout))
        Words to write, ``length // beat`` per command.
    m_axi : Out(axi4_write_signature)
    posted_error : Out(8); posted_error_addr : Out(addr_width)
        Only with ``posted``: the first failing response (0 = none) and its burst address.
    """

    _axi_signature = staticmethod(axi4_write_signature)

    def __init__(self, *, posted: bool = False, **kw):
        if not isinstance(posted, bool):
            raise TypeError(f"posted must be a bool, not {posted!r}")
        self.posted = posted
        super().__init__(**kw)

    def _extra_members(self) -> dict:
        if not self.posted:
            return {}
        return {"posted_error": Out(ERROR_CODE_WIDTH), "posted_error_addr": Out(self.addr_width)}

    def _data_member(self):
        return In(stream.Signature(dma_write_data_layout(self.data_width)))

    def elaborate(self, platform):
        m = Module()
        axi = self.m_axi
        mo = self.max_outstanding
        posted = self.posted
        regs = self._command_registers()
        state, cur_id, _, _, _, err, err_addr, wd = regs
        # AW side
        aw = self._cursor("aw")             # next burst to announce
        aw_addr, aw_left = aw
        b_out = Signal(range(mo + 1))       # bursts announced, B not yet received
        w_pending = Signal(range(mo + 1))   # bursts announced, W not yet started
        # W side
        w = self._cursor("w")               # next burst to send
        w_in_burst = Signal(range(self.max_burst + 1))
        wvalid = Signal()
        wdata = Signal(self.data_width)
        wstrb = Signal(self.beat_bytes)
        wlast = Signal()
        # B side: the command's cursor, or (posted) a FIFO of the bursts in flight
        if posted:
            perr = Signal(ERROR_CODE_WIDTH, name="perr")
            perr_addr = Signal(self.addr_width, name="perr_addr")
            m.d.comb += [self.posted_error.eq(perr), self.posted_error_addr.eq(perr_addr)]
            fifo = Array(Signal(self.addr_width, name=f"burst{i}_addr") for i in range(mo))
            head = Signal(range(mo), name="b_head")
            tail = Signal(range(mo), name="b_tail")
            b_addr = Signal(self.addr_width, name="b_addr")
            m.d.comb += b_addr.eq(fifo[head])
        else:
            b = self._cursor("b")           # next burst to be answered
            b_addr, _ = b

        awvalid, _, _ = aw_channel = self._address_channel(m, "aw", cur_id)
        m.d.comb += [
            axi.wdata.eq(wdata), axi.wstrb.eq(wstrb), axi.wlast.eq(wlast),
            axi.wvalid.eq(wvalid), axi.bready.eq(1),
            self.busy.eq((state != _State.IDLE) | ((b_out != 0) if posted else 0)),
        ]
        running = (state == _State.RUN) & (err == 0) & ~self.abort
        if posted:
            running = running & (perr == 0)
        draining = (state == _State.RUN) | (state == _State.ABORT)

        # -- AW -------------------------------------------------------------------------------
        aw_beats = self._burst_beats(m, aw)
        aw_load = Signal()
        m.d.comb += aw_load.eq(running & (aw_left != 0) & (b_out < mo) & (~awvalid | axi.awready))
        self._issue_burst(m, aw_channel, axi.awready, aw_load, aw, aw_beats)
        if posted:
            with m.If(aw_load):
                m.d.sync += [fifo[tail].eq(aw_addr),
                             tail.eq(Mux(tail == mo - 1, 0, tail + 1))]

        # -- W: a registered output stage; null beats (strobes 0) after an error or abort -----
        w_beats = self._burst_beats(m, w)
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
        # a burst's W starts once it is announced, or in the cycle its AW is loaded if every
        # earlier burst has started (then the W cursor is the AW cursor)
        w_start = Signal()
        m.d.comb += w_start.eq(draining & ((w_pending != 0) | aw_load)
                               & ((w_in_burst == 0) | (w_take & (w_in_burst == 1))))
        with m.If(w_start):
            m.d.sync += [w_in_burst.eq(w_beats.beats), *self._advance(w, w_beats)]
        with m.Elif(w_take):
            m.d.sync += w_in_burst.eq(w_in_burst - 1)
        m.d.sync += w_pending.eq(w_pending + aw_load - w_start)

        # -- B --------------------------------------------------------------------------------
        b_fire = axi.bvalid & (axi.bid == cur_id) & (b_out != 0)
        if posted:
            with m.If(b_fire):
                m.d.sync += head.eq(Mux(head == mo - 1, 0, head + 1))
                with m.If(axi.bresp[1] & (perr == 0)):
                    m.d.sync += [perr.eq(self._resp_error(axi.bresp)), perr_addr.eq(b_addr)]
        else:
            b_beats = self._burst_beats(m, b)
            with m.If(b_fire):
                m.d.sync += self._advance(b, b_beats)
                with m.If((state == _State.RUN) & (err == 0) & axi.bresp[1]):
                    m.d.sync += [err.eq(self._resp_error(axi.bresp)), err_addr.eq(b_addr)]
        m.d.sync += b_out.eq(b_out + aw_load - b_fire)

        # -- watchdog: no AW, W or B progress, and not for want of data -----------------------
        progress = (awvalid & axi.awready) | (wvalid & axi.wready) | axi.bvalid
        starved = ~wvalid & (w_in_burst != 0) & ~null & ~self.data.valid
        waiting = draining | (b_out != 0) if posted else draining
        timeout = self._watchdog(m, wd, waiting & (b_out != 0) & ~progress & ~starved)

        # -- control (DmaEngine._command_fsm) -------------------------------------------------
        quiet = (b_out == 0) & (w_pending == 0) & (w_in_burst == 0) & ~wvalid & ~awvalid
        w_quiet = (w_pending == 0) & (w_in_burst == 0)
        if posted:
            # the status once every word is taken; an error of an earlier burst is this
            # command's code, and refuses every later command
            # (or in the cycle the last word is taken: the status follows at once)
            stopped = (aw_left == 0) | (err != 0) | (perr != 0)
            last_word = (w_pending == 0) & w_take & (w_in_burst == 1) & ~w_start
            done = stopped & (w_quiet | last_word)
            with m.If((state == _State.RUN) & done & (err == 0) & (perr != 0)):
                m.d.sync += [err.eq(perr), err_addr.eq(perr_addr)]
            with m.If(timeout & (perr == 0)):
                m.d.sync += [perr.eq(ErrorCode.WATCHDOG), perr_addr.eq(b_addr)]
            forget_b = [head.eq(0), tail.eq(0)]
        else:
            done = ((aw_left == 0) | (err != 0)) & quiet
            forget_b = []
        self._command_fsm(
            m, regs, cursors=(aw, w) if posted else (aw, w, b), accept=[], done=done,
            quiet=quiet, timeout=timeout, stuck_addr=b_addr,
            refuse=(perr, perr_addr) if posted else None,
            forget=[awvalid.eq(0), wvalid.eq(0), b_out.eq(0), w_pending.eq(0),
                    w_in_burst.eq(0), *forget_b])
        if posted:
            with m.If(self.abort):
                m.d.sync += [perr.eq(0), perr_addr.eq(0)]
        return m
