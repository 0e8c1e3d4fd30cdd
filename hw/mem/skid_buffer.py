"""A skid buffer: a stream stage whose ``ready`` towards the producer is a register."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Breaks a combinational ``ready`` chain without adding latency.

    A beat passes straight through (``o.payload = i.payload``, ``o.valid = i.valid``) while the
    one-entry skid register is empty.  ``i.ready`` is the register "skid empty", so it never
    depends on ``o.ready`` in the same cycle: a beat offered while the consumer is stalled is
    caught in the skid register, and the skid entry goes out first once the consumer takes.
    One beat per cycle, order kept, no bubble.

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
        """Cycles a beat spends here when the consumer is ready (none: it passes through)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        skid = Signal.like(self.i.payload)
        m.d.comb += [
            self.i.ready.eq(~full),
            self.o.valid.eq(full | self.i.valid),
            self.o.payload.eq(Mux(full, skid, self.i.payload)),
        ]
        with m.If(full):
            with m.If(self.o.ready):
                m.d.sync += full.eq(0)
        with m.Elif(self.i.valid & ~self.o.ready):
            m.d.sync += [full.eq(1), skid.eq(self.i.payload)]
        return m
