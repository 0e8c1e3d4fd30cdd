"""A register slice: a stream stage whose outputs (``valid``, ``payload``) and ``ready`` towards
the producer all come from registers."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisterSlice"]


class RegisterSlice(wiring.Component):
    """Cuts every combinational path through a stream at the cost of one cycle.

    A beat taken in one cycle is offered from the output register in the next.  ``i.ready`` is
    the register "skid empty": a beat taken while the output register is held by a stalled
    consumer waits in the one-entry skid register and goes out next.  One beat per cycle,
    order kept, no bubble; unlike `SkidBuffer` (no latency, ``o.valid`` and ``o.payload``
    follow ``i`` in the same cycle) the consumer's logic starts at a register, so a long
    producer path (a ring router's arbitration) and a long consumer path (a wide register's
    enable) are never added up in one cycle.

    Parameters
    ----------
    shape : shape-castable
        Payload of both streams.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    """

    def __init__(self, shape):
        self.shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    @property
    def latency(self) -> int:
        """Cycles a beat spends here when the consumer is ready."""
        return 1

    def elaborate(self, platform):
        m = Module()
        o_valid = Signal()
        o_data = Signal.like(self.i.payload, reset_less=True)   # qualified by o_valid
        s_valid = Signal()
        s_data = Signal.like(self.i.payload, reset_less=True)   # qualified by s_valid
        m.d.comb += [self.o.valid.eq(o_valid), self.o.payload.eq(o_data),
                     self.i.ready.eq(~s_valid)]
        take = self.i.valid & ~s_valid
        with m.If(~o_valid | self.o.ready):          # the output register is free this cycle
            with m.If(s_valid):
                m.d.sync += [o_data.eq(s_data), s_valid.eq(0)]
            with m.Else():
                m.d.sync += [o_valid.eq(take), o_data.eq(self.i.payload)]
        with m.Elif(take):                           # held: the beat waits in the skid
            m.d.sync += [s_valid.eq(1), s_data.eq(self.i.payload)]
        return m
