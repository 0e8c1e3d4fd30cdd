"""What the DMA reader and writer share: parameters, ports, the command FSM and burst issue.

Not a block of its own: :class:`DmaReader` and :class:`DmaWriter` derive from
:class:`DmaEngine`, which validates the AXI parameters once and declares the ports both have
(``cmd``, ``status``, ``m_axi``, the window, ``abort``, ``busy``); each adds its ``data``
stream and its own ``elaborate``.  The logic both run is written once here, as helpers their
``elaborate`` calls: the command FSM with its checks, watchdog and abort
(:meth:`DmaEngine._command_fsm`, :meth:`DmaEngine._watchdog`), the address channel and its
bursts (:meth:`DmaEngine._address_channel`, :meth:`DmaEngine._issue_burst`) and the byte
address / beats-left cursors that walk a command (:meth:`DmaEngine._advance`).
"""

from __future__ import annotations

from typing import NamedTuple

from amaranth.hdl import Const, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out
from sparsemac.golden.descriptors import ErrorCode
from sparsemac.hw.mem.axi import (
    ERROR_CODE_WIDTH,
    AxiBurst,
    BurstStep,
    burst_step,
    check_dma_params,
    dma_cmd_layout,
    dma_status_layout,
)

__all__ = ["DmaEngine"]


class _State(enum.Enum):
    """Command FSM of both engines: accept, check against the window, run, report.

    (The generated Verilog names the enum, ``enum_base_type = "_State"``: renaming it changes
    the bytes of every top with a DMA.)"""

    IDLE = 0
    CHECK = 1
    RUN = 2
    STATUS = 3
    ABORT = 4


class _CommandRegs(NamedTuple):
    """Registers of the command FSM (:meth:`DmaEngine._command_registers`)."""

    state: Signal
    cur_id: Signal          # AXI ID in use; the watchdog moves to the next one
    tag: Signal
    start: Signal           # command address
    length: Signal          # command length in bytes
    err: Signal             # ErrorCode of the command (0 = OK so far)
    err_addr: Signal        # faulting byte address
    wd: Signal              # watchdog counter


class DmaEngine(wiring.Component):
    """Base of the two AXI4 DMA engines (see their docstrings for the behaviour).

    Owns the parameters (defaults, validation), the ports both engines have and the helpers
    their ``elaborate`` share.  A subclass supplies its ``data`` and ``m_axi`` members
    (:meth:`_data_member`, :meth:`_axi_member`).

    Parameters
    ----------
    data_width, addr_width, id_width : int
        AXI widths.
    max_burst : int
        Longest burst in beats (power of two, 1..256).
    max_outstanding : int
        Bursts in flight (1..16).
    watchdog_cycles : int
        Stall limit in cycles (4..2**30).
    tag_width : int
        Width of the command tag (1..32).

    Members
    -------
    cmd : In(stream(dma_cmd_layout))
    data : the engine's data stream
    status : Out(stream(dma_status_layout))
    m_axi : the engine's AXI4 half (read or write)
    window_base, window_limit : In(addr_width)
        Allowed byte range ``[base, limit)``; sampled when a command is checked.
    abort : In(1)
    busy : Out(1)
        A command or a drain is in progress.

    Raises
    ------
    TypeError, ValueError
        A parameter is out of range (message names it; :func:`~sparsemac.hw.mem.axi.
        check_dma_params` checks them).
    """

    def __init__(self, *, data_width: int = 64, addr_width: int = 32, id_width: int = 4,
                 max_burst: int = 16, max_outstanding: int = 4, watchdog_cycles: int = 65536,
                 tag_width: int = 8):
        check_dma_params(data_width=data_width, addr_width=addr_width, id_width=id_width,
                         max_burst=max_burst, max_outstanding=max_outstanding,
                         watchdog_cycles=watchdog_cycles, tag_width=tag_width)
        self.data_width = data_width
        self.addr_width = addr_width
        self.id_width = id_width
        self.max_burst = max_burst
        self.max_outstanding = max_outstanding
        self.watchdog_cycles = watchdog_cycles
        self.tag_width = tag_width
        super().__init__({
            "cmd": In(stream.Signature(dma_cmd_layout(addr_width, tag_width))),
            "data": self._data_member(),
            "status": Out(stream.Signature(dma_status_layout(addr_width, tag_width))),
            "m_axi": self._axi_member(),
            "window_base": In(addr_width),
            "window_limit": In(addr_width),
            "abort": In(1),
            "busy": Out(1),
            **self._extra_members(),
        })

    def _extra_members(self) -> dict:
        """Members a subclass adds to the signature (its parameters are set)."""
        return {}

    def _data_member(self):
        """The ``data`` member of the signature (the parameters are set and checked)."""
        raise NotImplementedError

    #: ``axi4_read_signature`` or ``axi4_write_signature`` (set by the subclass).
    _axi_signature = None

    def _axi_member(self):
        """The ``m_axi`` member of the signature: the subclass's half of an AXI4 master."""
        return Out(self._axi_signature(data_width=self.data_width, addr_width=self.addr_width,
                                       id_width=self.id_width))

    @property
    def beat_bytes(self) -> int:
        """Bytes per AXI beat."""
        return self.data_width // 8

    @property
    def _beat_shift(self) -> int:
        """log2 of :attr:`beat_bytes` (``AxSIZE``; a byte address >> it is a beat index)."""
        return (self.beat_bytes - 1).bit_length()

    @property
    def _beats_width(self) -> int:
        """Bits of a beats-left counter (a whole window of beats, plus one)."""
        return self.addr_width - self._beat_shift + 1

    def _command_registers(self) -> _CommandRegs:
        """New registers of the command FSM, named as in the Verilog."""
        aw = self.addr_width
        return _CommandRegs(
            state=Signal(_State, name="state"), cur_id=Signal(self.id_width, name="cur_id"),
            tag=Signal(self.tag_width, name="tag"), start=Signal(aw, name="start"),
            length=Signal(aw, name="length"), err=Signal(ERROR_CODE_WIDTH, name="err"),
            err_addr=Signal(aw, name="err_addr"),
            wd=Signal(range(self.watchdog_cycles + 1), name="wd"))

    def _cursor(self, name: str) -> tuple[Signal, Signal]:
        """A new cursor ``(<name>_addr, <name>_left)``: next byte address, beats still to go."""
        return (Signal(self.addr_width, name=f"{name}_addr"),
                Signal(self._beats_width, name=f"{name}_left"))

    def _advance(self, cursor, beats) -> list:
        """Statements moving ``cursor`` past ``beats`` beats (the one rule for every cursor):
        a :class:`~sparsemac.hw.mem.axi.BurstStep` from :meth:`_burst_beats` (its next
        cursor, computed beside the burst), or a count of beats."""
        addr, left = cursor
        if isinstance(beats, BurstStep):
            return [addr.eq(beats.addr), left.eq(beats.left)]
        return [addr.eq(addr + (beats << self._beat_shift)), left.eq(left - beats)]

    def _burst_beats(self, m, cursor) -> BurstStep:
        """The next burst at ``cursor`` (``max_burst``, the beats left and the 4 KiB
        boundary; :func:`~sparsemac.hw.mem.axi.burst_step` owns the arithmetic): its
        ``beats`` and the cursor after it."""
        addr, left = cursor
        return burst_step(m, addr, left, self.max_burst, self.beat_bytes)

    def _address_channel(self, m, prefix: str, cur_id):
        """Registers ``<prefix>valid``, ``<prefix>addr``, ``<prefix>len`` of the AR (``prefix``
        ``"ar"``) or AW (``"aw"``) channel, driving ``m_axi``: INCR bursts of full-width beats,
        ``AxCACHE = 0b0011`` (normal, non-cacheable, bufferable), ``AxPROT = 0``.

        Returns ``(valid, addr, len)``.
        """
        axi = self.m_axi
        valid = Signal(name=f"{prefix}valid")
        addr = Signal(self.addr_width, name=f"{prefix}addr")
        len_ = Signal(8, name=f"{prefix}len")
        m.d.comb += [
            getattr(axi, f"{prefix}id").eq(cur_id), getattr(axi, f"{prefix}addr").eq(addr),
            getattr(axi, f"{prefix}len").eq(len_), getattr(axi, f"{prefix}size").eq(
                self._beat_shift),
            getattr(axi, f"{prefix}burst").eq(AxiBurst.INCR),
            getattr(axi, f"{prefix}cache").eq(0b0011), getattr(axi, f"{prefix}prot").eq(0),
            getattr(axi, f"{prefix}valid").eq(valid),
        ]
        return valid, addr, len_

    def _issue_burst(self, m, channel, ready, load, cursor, beats, *, issued=None) -> None:
        """Load the address ``channel`` (from :meth:`_address_channel`) with the next burst of
        ``cursor`` (``beats``, a :class:`BurstStep`) while ``load``, and advance the cursor;
        else drop ``valid`` once the slave takes the address (``ready``).  ``issued``, if
        given, is driven 1 (``comb``) in the cycles that load a burst."""
        valid, addr, len_ = channel
        with m.If(load):
            m.d.sync += [addr.eq(cursor[0]), len_.eq(beats.len), valid.eq(1),
                         *self._advance(cursor, beats)]
            if issued is not None:
                m.d.comb += issued.eq(1)
        with m.Elif(valid & ready):
            m.d.sync += valid.eq(0)

    @staticmethod
    def _resp_error(resp):
        """The ErrorCode of a failing ``RRESP``/``BRESP`` (``resp[1]`` set): DECERR or SLVERR."""
        return Mux(resp[0], ErrorCode.AXI_DECERR, ErrorCode.AXI_SLVERR)

    def _watchdog(self, m, wd, stalled) -> Signal:
        """Count the consecutive cycles with ``stalled`` in ``wd``; the returned ``timeout``
        is high in the ``watchdog_cycles``-th (the owner of the watchdog rule)."""
        timeout = Signal(name="timeout")
        with m.If(stalled):
            m.d.sync += wd.eq(wd + 1)
            m.d.comb += timeout.eq(wd == self.watchdog_cycles - 1)
        with m.Else():
            m.d.sync += wd.eq(0)
        return timeout

    def _command_fsm(self, m, regs: _CommandRegs, *, cursors, accept, done, quiet, timeout,
                     forget, stuck_addr, refuse=None) -> None:
        """The command FSM both engines run; call it last in ``elaborate`` (its watchdog and
        abort take priority over the engine's own assignments).

        IDLE accepts a command and loads every cursor with it (plus the engine's ``accept``
        statements), and so does STATUS in the cycle its status is taken; CHECK rejects it with
        ``BAD_LENGTH``, ``MISALIGNED`` or ``OUT_OF_WINDOW`` (in that order, ``err_addr`` = the
        command address) or starts it; RUN lasts until ``done``; STATUS holds the status until
        taken; ABORT waits for ``quiet``. ``refuse`` (``(code, address)``, code 0 = none), if
        given, rejects a command before those checks. On ``timeout`` (:meth:`_watchdog`) the
        engine's ``forget`` statements run, the next AXI ID is taken and a running command
        reports ``WATCHDOG`` at ``stuck_addr`` (unless it has an error already); ``abort`` moves
        to ABORT from any state.
        """
        state, cur_id, tag, start, length, err, err_addr, wd = regs
        sh = self._beat_shift
        # a command is taken in IDLE, and in STATUS in the cycle its status is taken (back to
        # back commands: no IDLE cycle between them)
        status_taken = (state == _State.STATUS) & self.status.ready
        m.d.comb += [
            self.cmd.ready.eq(((state == _State.IDLE) | status_taken) & ~self.abort),
            self.status.valid.eq(state == _State.STATUS),
            self.status.payload.tag.eq(tag),
            self.status.payload.code.eq(err),
            self.status.payload.addr.eq(err_addr),
        ]
        misaligned = (start | length)[:sh].any() if sh else Const(0)
        end = Signal(self.addr_width + 1, name="end")
        m.d.comb += end.eq(start + length)
        p = self.cmd.payload
        take_cmd = [start.eq(p.addr), length.eq(p.length), tag.eq(p.tag), *accept, err.eq(0),
                    state.eq(_State.CHECK)]
        for addr, left in cursors:
            take_cmd += [addr.eq(p.addr), left.eq(p.length >> sh)]
        with m.Switch(state):
            with m.Case(_State.IDLE):
                with m.If(self.cmd.valid & self.cmd.ready):
                    m.d.sync += take_cmd
            with m.Case(_State.CHECK):
                m.d.sync += [state.eq(_State.RUN), err_addr.eq(start)]
                first = m.If if refuse is None else m.Elif
                if refuse is not None:
                    with m.If(refuse[0] != 0):
                        m.d.sync += [err.eq(refuse[0]), err_addr.eq(refuse[1]),
                                     state.eq(_State.STATUS)]
                with first(length == 0):
                    m.d.sync += [err.eq(ErrorCode.BAD_LENGTH), state.eq(_State.STATUS)]
                with m.Elif(misaligned):
                    m.d.sync += [err.eq(ErrorCode.MISALIGNED), state.eq(_State.STATUS)]
                with m.Elif((start < self.window_base) | (end > self.window_limit)):
                    m.d.sync += [err.eq(ErrorCode.OUT_OF_WINDOW), state.eq(_State.STATUS)]
            with m.Case(_State.RUN):
                with m.If(done):
                    m.d.sync += state.eq(_State.STATUS)
            with m.Case(_State.STATUS):
                with m.If(self.cmd.valid & self.cmd.ready):
                    m.d.sync += take_cmd
                with m.Elif(self.status.ready):
                    m.d.sync += state.eq(_State.IDLE)
            with m.Case(_State.ABORT):
                with m.If(quiet):
                    m.d.sync += state.eq(_State.IDLE)

        with m.If(timeout):
            m.d.sync += [*forget, cur_id.eq(cur_id + 1), wd.eq(0)]
            with m.If(state == _State.RUN):
                m.d.sync += state.eq(_State.STATUS)
                with m.If(err == 0):
                    m.d.sync += [err.eq(ErrorCode.WATCHDOG), err_addr.eq(stuck_addr)]
            with m.Else():
                m.d.sync += state.eq(_State.IDLE)
        with m.If(self.abort):
            m.d.sync += state.eq(_State.ABORT)
