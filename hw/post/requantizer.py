"""Fused bias + requantization of accumulator lanes (docs/spec.md section 1)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Requantizer", "sat_signed", "requant_in_layout", "requant_out_layout",
           "requant_param_signature"]

#: Width of the pieces the wide multiply is split into: an unsigned 17-bit piece (or a signed
#: top piece of up to 18 bits) fits the signed 18x18 DSP multiplier of ECP5 (MULT18X18D).
_PIECE = 17
BIAS_WIDTH = 32
MULT_WIDTH = 31  # 1 <= mult <= 2**31 - 1
SHIFT_WIDTH = 6  # 1 <= shift <= 63


def _check_int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value!r}")


class _StallPipeline:
    """The pipeline rule of :class:`Requantizer` and ``PwlActivation`` (its one owner).

    Every stage register advances together, in the cycles the output register is free
    (``en = ~o.valid | o.ready``, which is also ``i.ready``): no bubble is removed and none is
    added, so the latency is the number of stages.  Stage registers are declared with
    :meth:`reg` and loaded by :meth:`advance`.
    """

    def __init__(self, m, i, o):
        self.m, self.o = m, o
        self.en = Signal(name="en")  # the whole pipeline advances
        m.d.comb += [self.en.eq(~o.valid | o.ready), i.ready.eq(self.en)]
        self._stmts = []

    def reg(self, expr, shape, name: str, *, control: bool = False):
        """A new stage register ``name`` that takes ``expr`` when the pipeline advances.

        Only ``control`` registers (the stage valid bits) are reset: data registers are
        qualified by their stage's valid bit, so leaving them out of the reset keeps the
        data-plane reset's fan-out small (docs/flow.md)."""
        r = Signal(shape, name=name, reset_less=not control)
        self._stmts.append(r.eq(expr))
        return r

    def advance(self, valid, last) -> None:
        """Load every stage register and the output's ``valid`` and ``last`` (call it under
        ``m.If(en)``; the caller loads the output data)."""
        self.m.d.sync += self._stmts
        self.m.d.sync += [self.o.valid.eq(valid), self.o.payload.last.eq(last)]

    def round_half_up(self, u, name: str):
        """``(u + 1) >> 1`` as a new ``comb`` signal ``name`` of ``u``'s shape (the last step
        before saturation, docs/spec.md section 1)."""
        r = Signal(u.shape(), name=name)
        self.m.d.comb += r.eq((u + 1) >> 1)
        return r


def requant_in_layout(lanes: int, acc_width: int, channel_width: int) -> data.StructLayout:
    """Input beat: ``lanes`` accumulators of one output channel, its index, end of packet."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(acc_width), lanes),
        "channel": unsigned(channel_width),
        "last": unsigned(1),
    })


def requant_out_layout(lanes: int, out_width: int) -> data.StructLayout:
    """Output beat: ``lanes`` saturated values and the end-of-packet flag."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(out_width), lanes),
        "last": unsigned(1),
    })


def requant_param_signature(channel_width: int) -> wiring.Signature:
    """Write port of the per-channel parameter table (one channel per cycle while ``en``)."""
    return wiring.Signature({
        "en": Out(1),
        "addr": Out(unsigned(channel_width)),
        "bias": Out(signed(BIAS_WIDTH)),
        "mult": Out(unsigned(MULT_WIDTH)),
        "shift": Out(unsigned(SHIFT_WIDTH)),
    })


class Requantizer(wiring.Component):
    """Per-channel bias, multiply, round half up, shift and saturate, ``lanes`` values per cycle.

    Implements ``y = sat(((wrap(acc + bias[c], acc_width) * mult[c]) + (1 << (shift[c] - 1)))
    >> shift[c])`` exactly (docs/spec.md section 1, ``golden.quant.requantize``), saturating to
    ``out_width`` bits (8 is the spec's int8; 16 feeds the interpolated activation, section 1.2).

    Micro-architecture: one beat carries ``lanes`` accumulators of one channel ``c``; the
    parameters of ``c`` are read from a ``max_channels``-deep table in the accept cycle.  The
    ``acc_width x 31``-bit product is split into 17-bit pieces (one MULT18X18 each, registered),
    summed by a registered adder tree (one pairwise level per cycle), then
    ``u = t >> (shift - 1)`` is taken by a two-stage barrel shifter, clamped to
    ``[-2**out_width, 2**out_width - 1]``, and ``y = sat((u + 1) >> 1)`` (equal to the spec rule).

    Throughput is one beat (``lanes`` values) per cycle.  Stall behaviour: the whole pipeline
    advances when the output register is empty or taken (``i.ready = ~o.valid | o.ready``), so
    back-pressure freezes it without losing or duplicating beats.  The beat accepted at cycle
    ``t`` is presented on ``o`` at cycle ``t + latency`` when the output is never stalled.

    Parameter table: ``params`` writes one channel per cycle.  Parameters of a channel must not
    change while beats of that channel are in flight (reload between layers).  ``mult`` must be
    1..2**31-1 and ``shift`` 1..63 (spec section 1); other values give unspecified results.

    Parameters
    ----------
    lanes : int
        Values per beat (1..64), the config's ``out_lanes``.
    acc_width : int
        Accumulator width in bits (8..64).
    max_channels : int
        Depth of the parameter table (1..65536).
    out_width : int
        Saturation width of the result (8..32).

    Members
    -------
    i : In(stream.Signature(requant_in_layout(...)))
        Accumulator beats.
    o : Out(stream.Signature(requant_out_layout(...)))
        Requantized beats.
    params : In(requant_param_signature(...))
        Parameter table write port.

    Raises
    ------
    TypeError, ValueError
        For impossible parameters.
    """

    def __init__(self, *, lanes: int = 4, acc_width: int = 32, max_channels: int = 64,
                 out_width: int = 8):
        _check_int("lanes", lanes, 1, 64)
        _check_int("acc_width", acc_width, 8, 64)
        _check_int("max_channels", max_channels, 1, 1 << 16)
        _check_int("out_width", out_width, 8, 32)
        self.lanes = lanes
        self.acc_width = acc_width
        self.max_channels = max_channels
        self.out_width = out_width
        self.channel_width = max(1, (max_channels - 1).bit_length())
        super().__init__({
            "i": In(stream.Signature(requant_in_layout(lanes, acc_width, self.channel_width))),
            "o": Out(stream.Signature(requant_out_layout(lanes, out_width))),
            "params": In(requant_param_signature(self.channel_width)),
        })

    # -- derived ----------------------------------------------------------------------------
    @property
    def _acc_pieces(self) -> list[tuple[int, int]]:
        """(lo, hi) bit ranges of the accumulator pieces; the last one is signed."""
        w = max(self.acc_width, 2)
        bounds = list(range(0, w, _PIECE))
        if w - bounds[-1] < 2 and len(bounds) > 1:  # avoid a 1-bit signed top piece
            bounds.pop()
        return [(lo, hi) for lo, hi in zip(bounds, [*bounds[1:], w])]

    @property
    def _adder_levels(self) -> int:
        n = len(self._acc_pieces) * 2  # two pieces of the 31-bit multiplier
        levels = 0
        while n > 1:
            n = (n + 1) // 2
            levels += 1
        return levels

    @property
    def latency(self) -> int:
        """Cycles from an accepted input beat to its output beat (without back-pressure).

        1 (parameter read) + 1 (bias add) + 1 (partial products) + adder levels
        + 2 (barrel shift) + 1 (clamp) + 1 (round and saturate): 9 for ``acc_width <= 35``.
        """
        return 6 + self._adder_levels + 1

    def elaborate(self, platform):
        m = Module()
        lanes, aw, ow = self.lanes, self.acc_width, self.out_width
        param_layout = data.StructLayout({
            "bias": signed(BIAS_WIDTH), "mult": unsigned(MULT_WIDTH),
            "shift": unsigned(SHIFT_WIDTH)})
        m.submodules.table = table = memory.Memory(shape=param_layout, depth=self.max_channels,
                                                   init=[])
        wr = table.write_port()
        rd = table.read_port()
        m.d.comb += [
            wr.en.eq(self.params.en),
            wr.addr.eq(self.params.addr),
            wr.data.bias.eq(self.params.bias),
            wr.data.mult.eq(self.params.mult),
            wr.data.shift.eq(self.params.shift),
        ]

        pipe = _StallPipeline(m, self.i, self.o)
        en, reg = pipe.en, pipe.reg
        m.d.comb += [rd.addr.eq(self.i.payload.channel), rd.en.eq(en)]

        # stage 1: accept; parameters are read in the same cycle
        valid = reg(self.i.valid, 1, "v_acc", control=True)
        last = reg(self.i.payload.last, 1, "last_acc")
        accs = [reg(self.i.payload.data[j], signed(aw), f"acc_{j}") for j in range(lanes)]
        p = rd.data
        # stage 2: s = wrap(acc + bias, acc_width)
        valid, last = reg(valid, 1, "v_s", control=True), reg(last, 1, "last_s")
        mult = reg(p.mult, unsigned(MULT_WIDTH), "mult_s")
        sh1 = reg(p.shift - 1, unsigned(SHIFT_WIDTH), "shm1_s")
        ss = [reg((a + p.bias)[:aw].as_signed(), signed(aw), f"s_{j}")
              for j, a in enumerate(accs)]
        # stage 3: partial products (one DSP each)
        valid, last = reg(valid, 1, "v_pp", control=True), reg(last, 1, "last_pp")
        sh1 = reg(sh1, unsigned(SHIFT_WIDTH), "shm1_pp")
        m_pieces = [(mult[0:_PIECE], 0), (mult[_PIECE:MULT_WIDTH], _PIECE)]
        a_pieces = self._acc_pieces
        lane_terms = []
        for j, s in enumerate(ss):
            terms = []
            for k, (lo, hi) in enumerate(a_pieces):
                piece = s[lo:hi].as_signed() if k == len(a_pieces) - 1 else s[lo:hi]
                for q, (mp, moff) in enumerate(m_pieces):
                    prod = piece * mp
                    terms.append((reg(prod, prod.shape(), f"pp_{j}_{k}_{q}"), lo + moff))
            lane_terms.append(sorted(terms, key=lambda t: t[1]))
        # adder tree: one pairwise level per stage
        for level in range(self._adder_levels):
            valid = reg(valid, 1, f"v_add{level}", control=True)
            last = reg(last, 1, f"last_add{level}")
            sh1 = reg(sh1, unsigned(SHIFT_WIDTH), f"shm1_add{level}")
            new_lane_terms = []
            for j, terms in enumerate(lane_terms):
                nxt = []
                for n in range(0, len(terms), 2):
                    if n + 1 == len(terms):
                        (a, oa), = terms[n:]
                        nxt.append((reg(a, a.shape(), f"sum{level}_{j}_{n}"), oa))
                        continue
                    (a, oa), (b, ob) = terms[n], terms[n + 1]
                    e = a + (b << (ob - oa))
                    nxt.append((reg(e, e.shape(), f"sum{level}_{j}_{n}"), oa))
                new_lane_terms.append(nxt)
            lane_terms = new_lane_terms
        ts = []
        for (t, off), in lane_terms:
            assert off == 0
            ts.append(t)
        # barrel shift u = t >> (shift - 1), coarse (multiples of 8) then fine
        valid, last = reg(valid, 1, "v_sh0", control=True), reg(last, 1, "last_sh0")
        fine = reg(sh1[0:3], unsigned(3), "shm1_fine")
        us = [reg(t >> (sh1[3:6] << 3), t.shape(), f"u0_{j}") for j, t in enumerate(ts)]
        valid, last = reg(valid, 1, "v_sh1", control=True), reg(last, 1, "last_sh1")
        us = [reg(u >> fine, u.shape(), f"u_{j}") for j, u in enumerate(us)]
        # clamp u to ow + 1 bits, [-2**ow, 2**ow - 1]: keeps the rounded, saturated result
        valid, last = reg(valid, 1, "v_cl", control=True), reg(last, 1, "last_cl")
        ucs = [reg(sat_signed(u, ow + 1), signed(ow + 2), f"uc_{j}") for j, u in enumerate(us)]
        # round half up and saturate: y = sat((u + 1) >> 1)
        ymax, ymin = (1 << (ow - 1)) - 1, -(1 << (ow - 1))
        with m.If(en):
            pipe.advance(valid, last)
            for j, uc in enumerate(ucs):
                r = pipe.round_half_up(uc, f"r_{j}")
                m.d.sync += self.o.payload.data[j].eq(_clamp(r, ymin, ymax))
        return m


def _clamp(v, lo: int, hi: int):
    """``min(max(v, lo), hi)`` of a signed value (as a mux)."""
    return Mux(v > hi, hi, Mux(v < lo, lo, v))


def sat_signed(v, width: int):
    """Saturate the signed value ``v`` to ``width`` bits without a wide comparator: it fits iff
    its bits from ``width - 1`` up are all equal (an AND / OR reduction)."""
    n = v.shape().width
    if n <= width:
        return v
    top = v[width - 1:]
    fits = top.all() | ~top.any()
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    return Mux(fits, v[:width].as_signed(), Mux(v[n - 1], lo, hi))
