"""The sequencer's descriptor prefetch: the state of the read of descriptor ``i + 1`` while
layer ``i`` waits (docs/accelerator.md, "Descriptor prefetch")."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DescPrefetch"]

PF_IDLE, PF_ISSUE, PF_STREAM, PF_CHECK, PF_READY, PF_FAILED = range(6)


class DescPrefetch(wiring.Component):
    """The prefetch's state machine: issue the read, stream it, let the `DescChecker` check
    it, then hold the outcome (``ready`` or ``failed`` with the read's status) until the
    sequencer ``take``s it.

    The read itself uses the sequencer's registers (the read address and length, the
    descriptor register, the word counter, the DescChecker's start), which the sequencer's own
    fetch shares: the block tells it when to load them (``issue``), when the read command is
    offered (``issuing``) and when the read's words and status are taken (``streaming``).  It
    moves only while ``window`` is high (the sequencer's read port is idle: WAIT, LAYER_DONE,
    NEXT); ``request`` starts a prefetch from idle.  `HeaderPrefetch` runs the same state
    machine for the next tile's image header (its check always passes).  No latency of its
    own: every output is a decode of the state register, which changes on the clock edge
    after its inputs.

    Parameters
    ----------
    addr_width : int
        Bus address width (of ``status_addr`` and ``addr``).

    Members
    -------
    window, request : In(1)
        The read port is the prefetch's; start one (from idle).
    cmd_ready : In(1)
        The DMA took the read command (``issuing``).
    status_valid : In(1); status_code : In(8); status_addr : In(addr_width)
        The read's status (while ``streaming``).
    checked : In(1)
        The DescChecker's verdict on the read descriptor is valid.
    take, clear : In(1)
        The sequencer took the outcome (ready or failed); an abort.  Both return to idle.
    issue : Out(1)
        Leaving idle this cycle (load the read address and length).
    issuing, streaming : Out(1)
        The read command is offered; the read's words and status are taken.
    idle, ready, failed : Out(1)
        No prefetch; the descriptor is read and checked; the read failed.
    code : Out(8); addr : Out(addr_width)
        A failing read's status.

    Raises
    ------
    TypeError
        ``addr_width`` not a positive int.
    """

    def __init__(self, *, addr_width: int):
        if not isinstance(addr_width, int) or isinstance(addr_width, bool) or addr_width < 1:
            raise TypeError(f"addr_width must be a positive integer, not {addr_width!r}")
        super().__init__({
            "window": In(1), "request": In(1), "cmd_ready": In(1),
            "status_valid": In(1), "status_code": In(8), "status_addr": In(addr_width),
            "checked": In(1), "take": In(1), "clear": In(1),
            "issue": Out(1), "issuing": Out(1), "streaming": Out(1),
            "idle": Out(1), "ready": Out(1), "failed": Out(1),
            "code": Out(8), "addr": Out(addr_width),
        })

    def elaborate(self, platform):
        m = Module()
        pf = Signal(range(6), name="pf_state")
        m.d.comb += [self.idle.eq(pf == PF_IDLE), self.ready.eq(pf == PF_READY),
                     self.failed.eq(pf == PF_FAILED),
                     self.issue.eq(self.window & (pf == PF_IDLE) & self.request),
                     self.issuing.eq(self.window & (pf == PF_ISSUE)),
                     self.streaming.eq(self.window & (pf == PF_STREAM))]
        with m.If(self.take | self.clear):
            m.d.sync += pf.eq(PF_IDLE)
        with m.If(self.window):
            with m.Switch(pf):
                with m.Case(PF_IDLE):
                    with m.If(self.request):
                        m.d.sync += pf.eq(PF_ISSUE)
                with m.Case(PF_ISSUE):
                    with m.If(self.cmd_ready):
                        m.d.sync += pf.eq(PF_STREAM)
                with m.Case(PF_STREAM):
                    with m.If(self.status_valid):
                        with m.If(self.status_code != 0):
                            m.d.sync += [pf.eq(PF_FAILED), self.code.eq(self.status_code),
                                         self.addr.eq(self.status_addr)]
                        with m.Else():
                            m.d.sync += pf.eq(PF_CHECK)
                with m.Case(PF_CHECK):
                    with m.If(self.checked):
                        m.d.sync += pf.eq(PF_READY)
        return m
