"""Byte-stream width converter: ``in_bytes`` per input word -> ``out_bytes`` per output word."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ByteGearbox"]


class ByteGearbox(wiring.Component):
    """Repack a little-endian byte stream from ``in_bytes``-byte words into ``out_bytes``-byte
    words (byte ``j`` of the stream is bit ``8*j`` of the concatenation, in both views).

    ``i.payload.last`` ends a packet: after it the bytes still held are emitted as one final,
    zero-padded output word (only if any are left), and no new input is taken until then, so
    packets never merge.  ``clear`` drops everything held.

    Throughput: one output word per cycle while input keeps up; an input word is taken whenever
    ``in_bytes`` free bytes remain (the buffer holds ``in_bytes + out_bytes``).  Latency: one
    cycle (an output word is registered state).

    Parameters
    ----------
    in_bytes, out_bytes : int
        Word sizes (1..64).

    Members
    -------
    i : In(stream.Signature(StructLayout({"data": 8*in_bytes, "last": 1})))
    o : Out(stream.Signature(8 * out_bytes))
    clear : In(1)
    """

    def __init__(self, *, in_bytes: int, out_bytes: int):
        for name, v in (("in_bytes", in_bytes), ("out_bytes", out_bytes)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if not 1 <= v <= 64:
                raise ValueError(f"{name} must be between 1 and 64, not {v!r}")
        self.in_bytes, self.out_bytes = in_bytes, out_bytes
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"data": 8 * in_bytes, "last": 1}))),
            "o": Out(stream.Signature(8 * out_bytes)),
            "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        ib, ob = self.in_bytes, self.out_bytes
        cap = ib + ob
        buf = Signal(8 * cap)
        cnt = Signal(range(cap + 1))
        flushing = Signal()
        pop = Signal()
        push = Signal()
        m.d.comb += [
            self.o.valid.eq((cnt >= ob) | (flushing & (cnt != 0))),
            self.o.payload.eq(buf[:8 * ob]),
            pop.eq(self.o.valid & self.o.ready),
            self.i.ready.eq(~flushing & (cnt + ib <= cap)),
            push.eq(self.i.valid & self.i.ready),
        ]
        after_pop = Signal(range(cap + 1))
        shifted = Signal(8 * cap)
        m.d.comb += [after_pop.eq(cnt), shifted.eq(buf)]
        with m.If(pop):
            with m.If(cnt >= ob):
                m.d.comb += [after_pop.eq(cnt - ob), shifted.eq(buf >> (8 * ob))]
            with m.Else():
                m.d.comb += [after_pop.eq(0), shifted.eq(0)]
        # invariant: the bytes of `buf` at and above `cnt` are 0 (a shift brings in zeros, a
        # push fills `ib` bytes above the held ones), so no mask is needed before the OR (the
        # mask was a subtractor as wide as the buffer, 71 carry cells at 64-bit beats)
        with m.If(push):
            m.d.sync += [buf.eq(shifted | (self.i.payload.data << (after_pop * 8))),
                         cnt.eq(after_pop + ib)]
            with m.If(self.i.payload.last):
                m.d.sync += flushing.eq(1)
        with m.Else():
            m.d.sync += [buf.eq(shifted), cnt.eq(after_pop)]
            with m.If(flushing & (after_pop == 0)):
                m.d.sync += flushing.eq(0)
        with m.If(self.clear):
            m.d.sync += [cnt.eq(0), flushing.eq(0), buf.eq(0)]
        return m
