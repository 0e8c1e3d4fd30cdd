"""Interpolated (piecewise-linear) int16 activation (docs/spec.md section 1.2)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from sparsemac.hw.post.requantizer import (
    _check_int,
    _StallPipeline,
    requant_out_layout,
    sat_signed,
)

__all__ = ["PwlActivation", "pwl_write_signature"]

BASE_WIDTH, SLOPE_WIDTH, SHIFT_WIDTH = 32, 18, 5
COUNTER_WIDTH = 32


def pwl_write_signature(segments: int) -> wiring.Signature:
    """Write port of the segment table (one segment per cycle while ``en``)."""
    return wiring.Signature({
        "en": Out(1),
        "addr": Out(unsigned(max(1, (segments - 1).bit_length()))),
        "base": Out(signed(BASE_WIDTH)),
        "slope": Out(signed(SLOPE_WIDTH)),
        "shift": Out(unsigned(SHIFT_WIDTH)),
    })


class PwlActivation(wiring.Component):
    """Piecewise-linear activation of ``lanes`` int16 values per cycle, with saturation counters.

    Bit-exact with ``golden.lut.pwl_apply`` (spec section 1.2): with ``ow = 16 - log2(segments)``,
    ``u = x ^ 0x8000``, segment ``s = u >> ow``, offset ``off = u & (2**ow - 1)``,
    ``acc = base[s] + slope[s] * off``, ``r = (acc + (1 << (shift[s] - 1))) >> shift[s]``,
    ``y = clamp(r)`` to ``out_width`` bits.  ``underflows`` / ``overflows`` count the values
    with ``r`` below / above the output range (32 bits, wrapping; ``clear_counters`` zeroes
    them, and wins over a count in the same cycle).  A beat's counts appear one cycle after
    the beat enters the output register.

    Micro-architecture: every lane reads its own copy of the table (``segments`` x 55 bits) in
    the accept cycle; then the 18 x ``ow`` product (one MULT18), the base add, a barrel shift
    by ``shift - 1``, a clamp, and ``y = sat((u + 1) >> 1)`` are one register stage each.

    Throughput: one beat (``lanes`` values) per cycle.  Latency: ``latency`` (6) cycles.
    Stall behaviour: the pipeline advances when its output is empty or taken
    (``i.ready = ~o.valid | o.ready``).  The table has one bank: write it while no beat is in
    flight (between layers); ``shift`` must be 1..31 (0 gives unspecified results).

    Parameters
    ----------
    lanes : int
        Values per beat (1..64).
    segments : int
        Segments of the table, a power of two (4..256): the config's ``pwl_segments``.
    out_width : int
        8 or 16.

    Members
    -------
    i : In(stream.Signature(requant_out_layout(lanes, 16)))
        int16 inputs and ``last``.
    o : Out(stream.Signature(requant_out_layout(lanes, out_width)))
        Results and ``last``.
    wr : In(pwl_write_signature(segments))
        Segment table writes.
    underflows, overflows : Out(32)
        Saturation counters.
    clear_counters : In(1)
        Zero both counters.

    Raises
    ------
    TypeError, ValueError
        For impossible parameters.
    """

    latency = 6

    def __init__(self, *, lanes: int = 4, segments: int = 32, out_width: int = 8):
        _check_int("lanes", lanes, 1, 64)
        if isinstance(segments, bool) or not isinstance(segments, int):
            raise TypeError(f"segments must be an integer, not {segments!r}")
        if not (4 <= segments <= 256 and segments & (segments - 1) == 0):
            raise ValueError(
                f"segments must be a power of two between 4 and 256, not {segments!r}")
        if isinstance(out_width, bool) or not isinstance(out_width, int):
            raise TypeError(f"out_width must be an integer, not {out_width!r}")
        if out_width not in (8, 16):
            raise ValueError(f"out_width must be 8 or 16, not {out_width!r}")
        self.lanes = lanes
        self.segments = segments
        self.out_width = out_width
        self.offset_width = 16 - (segments.bit_length() - 1)
        super().__init__({
            "i": In(stream.Signature(requant_out_layout(lanes, 16))),
            "o": Out(stream.Signature(requant_out_layout(lanes, out_width))),
            "wr": In(pwl_write_signature(segments)),
            "underflows": Out(COUNTER_WIDTH),
            "overflows": Out(COUNTER_WIDTH),
            "clear_counters": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        lanes, ow, w = self.lanes, self.offset_width, self.out_width
        entry = data.StructLayout({"base": signed(BASE_WIDTH), "slope": signed(SLOPE_WIDTH),
                                   "shift": unsigned(SHIFT_WIDTH)})
        pipe = _StallPipeline(m, self.i, self.o)
        en, reg = pipe.en, pipe.reg

        # stage 1: accept, table read (one copy per lane), offset
        valid = reg(self.i.valid, 1, "v_rd", control=True)
        last = reg(self.i.payload.last, 1, "last_rd")
        entries, offs = [], []
        for j in range(lanes):
            mem = memory.Memory(shape=entry, depth=self.segments, init=[])
            m.submodules[f"table_{j}"] = mem
            wp, rp = mem.write_port(), mem.read_port()
            u = self.i.payload.data[j].as_unsigned() ^ 0x8000
            m.d.comb += [
                wp.en.eq(self.wr.en), wp.addr.eq(self.wr.addr),
                wp.data.base.eq(self.wr.base), wp.data.slope.eq(self.wr.slope),
                wp.data.shift.eq(self.wr.shift),
                rp.en.eq(en), rp.addr.eq(u[ow:16]),
            ]
            entries.append(rp.data)
            offs.append(reg(u[0:ow], unsigned(ow), f"off_{j}"))
        # stage 2: product (one DSP), base and shift registered
        valid, last = reg(valid, 1, "v_mul", control=True), reg(last, 1, "last_mul")
        prods, bases, shs = [], [], []
        for j, (e, off) in enumerate(zip(entries, offs)):
            p = e.slope * off
            prods.append(reg(p, p.shape(), f"prod_{j}"))
            bases.append(reg(e.base, signed(BASE_WIDTH), f"base_{j}"))
            shs.append(reg(e.shift - 1, unsigned(SHIFT_WIDTH), f"shm1_{j}"))
        # stage 3: acc = base + slope * off
        valid, last = reg(valid, 1, "v_acc", control=True), reg(last, 1, "last_acc")
        accs = []
        for j, (b, p) in enumerate(zip(bases, prods)):
            a = b + p
            accs.append(reg(a, a.shape(), f"acc_{j}"))
        shs = [reg(s, unsigned(SHIFT_WIDTH), f"shm1_acc_{j}") for j, s in enumerate(shs)]
        # stage 4: u = acc >> (shift - 1)
        valid, last = reg(valid, 1, "v_sh", control=True), reg(last, 1, "last_sh")
        us = [reg(a >> s, a.shape(), f"u_{j}") for j, (a, s) in enumerate(zip(accs, shs))]
        # stage 5: clamp u to w + 2 bits, [-2**(w+1), 2**(w+1) - 1]: keeps the result and
        # the saturation flags exact (r of the bounds is already outside the output range)
        valid, last = reg(valid, 1, "v_cl", control=True), reg(last, 1, "last_cl")
        ucs = [reg(sat_signed(u, w + 2), signed(w + 3), f"uc_{j}") for j, u in enumerate(us)]
        # stage 6: r = (u + 1) >> 1, saturate, count
        ymax, ymin = (1 << (w - 1)) - 1, -(1 << (w - 1))
        under, over = [], []
        with m.If(en):
            pipe.advance(valid, last)
            for j, uc in enumerate(ucs):
                r = pipe.round_half_up(uc, f"r_{j}")
                uf, of = Signal(name=f"under_{j}"), Signal(name=f"over_{j}")
                # registered flags, counted in the next cycle (one beat counted once: the flags
                # are 0 in cycles where the pipeline does not advance)
                m.d.sync += [uf.eq(valid & (r < ymin)), of.eq(valid & (r > ymax))]
                under.append(uf)
                over.append(of)
                m.d.sync += self.o.payload.data[j].eq(Mux(r > ymax, ymax,
                                                          Mux(r < ymin, ymin, r)))
        with m.Else():
            m.d.sync += [f.eq(0) for f in under + over]
        n_under, n_over = _popcount(under), _popcount(over)
        m.d.sync += [self.underflows.eq(self.underflows + n_under),
                     self.overflows.eq(self.overflows + n_over)]
        with m.If(self.clear_counters):
            m.d.sync += [self.underflows.eq(0), self.overflows.eq(0)]
        return m


def _popcount(bits):
    total = bits[0]
    for b in bits[1:]:
        total = total + b
    return total
