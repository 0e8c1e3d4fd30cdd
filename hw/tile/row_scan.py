"""Elaboration helpers of `ImageChecker` (hw/image_checker.py): the row scan that walks rows of
a section through the words of an image body, and small signal builders.  Not a block: these
functions add logic to the caller's module.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Mux, Signal, signed

__all__ = ["RowScan", "carry_run", "clamp", "highest", "log2", "named", "popcount"]


def log2(n: int) -> int:
    return n.bit_length() - 1


_POP4 = Array(Const(bin(v).count("1"), 3) for v in range(16))


def popcount(value, width):
    """The set bits of ``value[:width]``: a table per 4 bits (one LUT level), then a balanced
    tree of adds (a chain of ``width`` one-bit adds was a long carry path)."""
    parts = [_POP4[value[i:min(i + 4, width)]] for i in range(0, width, 4)]
    while len(parts) > 1:
        parts = [parts[i] + parts[i + 1] if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    return parts[0] if parts else Const(0, 1)


def named(m, value, width, name):
    """``value`` as a named signal (so the expression is built once, not at every use)."""
    sig = Signal(width, name=name)
    m.d.comb += sig.eq(value)
    return sig


def highest(m, vec, width, name):
    """Index of the highest set bit of ``vec`` (0 when none)."""
    j = Signal(range(max(2, width)), name=name)
    for i in range(width):
        with m.If(vec[i]):
            m.d.comb += j.eq(i)
    return j


def clamp(m, value, lo, hi, name):
    """``value`` clamped to ``[lo, hi]`` in a narrow signed signal (for per-lane compares)."""
    out = Signal(signed(max(lo.bit_length(), hi.bit_length()) + 2), name=name)
    m.d.comb += out.eq(Mux(value < lo, lo, Mux(value > hi, hi, value)))
    return out


class RowScan:
    """Walks rows of ``rb`` bytes through the words of one section, one row end per cycle.

    A word holding at most one row end is handled in one cycle: its lanes split into the part
    of the row that ends (``in_r``) and the start of the next row (``in_n``).  A word holding a
    second row end is held (``stall``) and finished the next cycle.  ``end_r`` / ``end_n`` are
    the lane just past the end of each row (may lie beyond the word).

    Everything the per-lane logic compares against is a register: ``end_r`` and ``end_n``
    themselves, whether they lie in this word, ``er`` (``end_r`` clamped to the word) and,
    for each ``offsets`` entry ``key: (offset, lo)``, ``cut_r[key]`` / ``cut_n[key]`` =
    ``end_r|n - offset`` clamped to ``[lo, wb]``.  Their next values are registers less a
    constant (the end after ``end_n`` is kept too), compared and clamped on their way into
    the registers (an add in front of the compares was the image checker's critical path on
    the ECP5).  ``rb``, ``rows`` and the offsets are steady from a cycle before ``init``.
    """

    def __init__(self, m, name, *, wb, rw, active, rb, rows, go, init, offsets=None):
        lg_wb = log2(wb)
        self.r = r = Signal(rw + 1, name=f"{name}_r")
        self.lp = lp = Signal(max(1, lg_wb), name=f"{name}_lp")
        live = Signal(name=f"{name}_live")
        self.end_r = end_r = Signal(signed(21), name=f"{name}_end_r")
        self.end_n = end_n = Signal(signed(21), name=f"{name}_end_n")
        r_in, n_in = Signal(name=f"{name}_r_in"), Signal(name=f"{name}_n_in")  # end <= wb
        rb_less_wb = Signal(signed(20), name=f"{name}_rb_less_wb")
        self.ends = ends = Signal(name=f"{name}_ends")
        self.stall = stall = Signal(name=f"{name}_stall")
        self.next_row = next_row = Signal(name=f"{name}_next_row")
        # r < rows and r + 1 < rows as registers (stall feeds the stream's handshake)
        r_lt, r1_lt = Signal(name=f"{name}_r_lt"), Signal(name=f"{name}_r1_lt")
        m.d.comb += [live.eq(active & r_lt),
                     ends.eq(live & r_in),
                     next_row.eq(ends & r1_lt),
                     stall.eq(next_row & n_in)]
        self.live = live
        self.er = er = Signal(range(wb + 1), name=f"{name}_er")
        self.in_r = [Signal(name=f"{name}_in_r{i}") for i in range(wb)]
        self.in_n = [Signal(name=f"{name}_in_n{i}") for i in range(wb)]
        for i in range(wb):
            from_lp = (lp <= i) if i < wb - 1 else Const(1)   # lp < wb always
            m.d.comb += [self.in_r[i].eq(live & from_lp & (er > i)),
                         self.in_n[i].eq(next_row & ~stall & (er <= i))]
        # a row of rb bytes starts at lane lp of the current word: it ends at end_r, the next
        # one at end_r + rb = end_n and the one after at end_n + rb = end_nn.  Tracks:
        # (end_r, end_n, end_nn) and one per offset (the same ends less the offset).  Every
        # candidate next value of end_r / end_n is one of the three registers less 0 or wb,
        # and what the per-lane logic needs of it (r_in / n_in, er and the cuts: compares
        # with the constants lo + d and wb + d, d the 0 or wb taken off) is kept in flag
        # registers beside each of the three, so the clamps are a narrow subtract and two
        # muxes from registers.  The flags' next values are compares of the registers with
        # constants or with registers (c - rb, c + wb - rb: end_nn's add moved to the other
        # side); the init values and their flags are registers computed every cycle from rb
        # (3 rb a cycle later) and the offset: rb steady from two cycles before init, the
        # offsets and rows from one.
        self.cut_r, self.cut_n = {}, {}
        tracks = [(end_r, end_n, 0, None)]
        for key, (off, lo) in (offsets or {}).items():
            tracks.append((Signal(signed(21), name=f"{name}_{key}_end_r"),
                           Signal(signed(21), name=f"{name}_{key}_end_n"), off, (key, lo)))
        with m.If(init):
            m.d.sync += [r.eq(0), lp.eq(0), rb_less_wb.eq(rb - wb),
                         r_lt.eq(rows > 0), r1_lt.eq(rows > 1)]
        with m.Elif(go & live & ends):
            m.d.sync += [r.eq(r + 1), lp.eq(Mux(stall, er, 0)),
                         r_lt.eq(r1_lt), r1_lt.eq(r + 2 < rows)]
        with m.Elif(go & live):
            m.d.sync += lp.eq(0)
        rb3 = Signal(signed(22), name=f"{name}_rb3")
        m.d.sync += rb3.eq(rb + (rb << 1))
        # Every candidate next value is computed (and compared / clamped) from registers in
        # parallel; the control (go, live, ends, stall) only selects among finished results,
        # so the handshake never sits in front of an adder or a compare.
        updates = {c: [] for c in ("init", "stall", "next", "cont")}
        for t, (tr_, tn_, off, cut) in enumerate(tracks):
            lo = 0 if cut is None else cut[1]
            tnn = Signal(signed(21), name=f"{name}_t{t}_end_nn")
            regs = {"r": tr_, "n": tn_, "nn": tnn}
            # flag (kind, d) of a register X: X < lo + d ("lt") or X > wb + d ("gt")
            keys = [(kind, d) for kind in ("lt", "gt") for d in (0, wb)]

            def const(kind, d, lo=lo):
                return (lo if kind == "lt" else wb) + d

            def cmp(x, kind, c):
                return x < c if kind == "lt" else x > c

            flags = {x: {k: Signal(name=f"{name}_t{t}_{x}_{k[0]}{k[1]}") for k in keys}
                     for x in regs}
            i_val = {x: Signal(signed(21), name=f"{name}_t{t}_init_{x}") for x in regs}
            i_flag = {x: {k: Signal(name=f"{name}_t{t}_init_{x}_{k[0]}{k[1]}") for k in keys}
                      for x in regs}
            i_src = {"r": rb - off, "n": (rb << 1) - off, "nn": rb3 - off}
            thr_rb = {k: Signal(signed(21), name=f"{name}_t{t}_thr_rb_{k[0]}{k[1]}")
                      for k in keys}
            thr_rbw = {k: Signal(signed(21), name=f"{name}_t{t}_thr_rbw_{k[0]}{k[1]}")
                       for k in keys}
            for x in regs:
                m.d.sync += i_val[x].eq(i_src[x])
                m.d.sync += [i_flag[x][k].eq(cmp(i_src[x], k[0], const(*k))) for k in keys]
            m.d.sync += [thr_rb[k].eq(const(*k) - rb) for k in keys]
            m.d.sync += [thr_rbw[k].eq(const(*k) + wb - rb) for k in keys]

            def cmps(x, thr, label, t=t, keys=keys, regs=regs):
                """Flags of the register ``x`` against ``thr[key]`` (named, built once)."""
                return {k: named(m, cmp(regs[x], k[0], thr[k]), 1,
                                 f"{name}_t{t}_{x}_{label}_{k[0]}{k[1]}") for k in keys}
            less_wb = {k: const(*k) + wb for k in keys}
            f_r_wb, f_n_wb, f_nn_wb = (cmps(x, less_wb, "wb") for x in ("r", "n", "nn"))
            f_nn_rb, f_nn_rbw = cmps("nn", thr_rb, "rb"), cmps("nn", thr_rbw, "rbw")
            # per case: the next (end_r, end_n) as (value, its flags, d), the next end_nn
            # and the next flags of the three
            values = {
                "init": ((i_val["r"], i_flag["r"], 0), (i_val["n"], i_flag["n"], 0),
                         i_val["nn"], i_flag),
                "stall": ((tn_, flags["n"], 0), (tnn, flags["nn"], 0), tnn + rb,
                          {"r": flags["n"], "n": flags["nn"], "nn": f_nn_rb}),
                "next": ((tn_, flags["n"], wb), (tnn, flags["nn"], wb), tnn + rb_less_wb,
                         {"r": f_n_wb, "n": f_nn_wb, "nn": f_nn_rbw}),
                "cont": ((tr_, flags["r"], wb), (tn_, flags["n"], wb), tnn - wb,
                         {"r": f_r_wb, "n": f_n_wb, "nn": f_nn_wb}),
            }
            if cut is not None:
                key = cut[0]
                self.cut_r[key] = c_r = Signal(signed(max(lo.bit_length(), wb.bit_length()) + 2),
                                               name=f"{name}_{key}_cut_r")
                self.cut_n[key] = c_n = Signal(c_r.shape(), name=f"{name}_{key}_cut_n")
            for c, ((vr, fr, dr), (vn, fn, dn), vnn, nflags) in values.items():
                nx_r = named(m, vr - dr, signed(21), f"{name}_t{t}_{c}_r")
                nx_n = named(m, vn - dn, signed(21), f"{name}_t{t}_{c}_n")
                upd = [tr_.eq(nx_r), tn_.eq(nx_n), tnn.eq(vnn)]
                upd += [flags[x][k].eq(nflags[x][k]) for x in regs for k in keys]
                if cut is None:
                    upd += [r_in.eq(~fr[("gt", dr)]), n_in.eq(~fn[("gt", dn)]),
                            er.eq(_clamp_flags(m, vr, dr, fr, 0, wb, f"{name}_{c}_er"))]
                else:
                    upd += [c_r.eq(_clamp_flags(m, vr, dr, fr, lo, wb,
                                                f"{name}_{key}_{c}_cut_r")),
                            c_n.eq(_clamp_flags(m, vn, dn, fn, lo, wb,
                                                f"{name}_{key}_{c}_cut_n"))]
                updates[c] += upd
        with m.If(init):
            m.d.sync += updates["init"]
        with m.Elif(go & live & ends & stall):
            m.d.sync += updates["stall"]
        with m.Elif(go & live & ends):
            m.d.sync += updates["next"]
        with m.Elif(go & live):
            m.d.sync += updates["cont"]


def _clamp_flags(m, value, d, flags, lo, hi, name):
    """``value - d`` (``d`` a constant) clamped to ``[lo, hi]``, with its compares with the
    constants ``lo + d`` and ``hi + d`` given (``flags[("lt", d)]``, ``flags[("gt", d)]``):
    two muxes and a subtract only as wide as the result."""
    out = Signal(signed(max(lo.bit_length(), hi.bit_length()) + 2), name=name)
    w = len(out)
    m.d.comb += out.eq(Mux(flags[("lt", d)], lo, Mux(flags[("gt", d)], hi, value[:w] - d)))
    return out


def carry_run(m, reg, *, reset, go, seg, cont, nxt):
    """A count carried across words of a row: cleared by ``reset``; on ``go`` it becomes
    ``cont`` while the row goes on (``~seg.ends``), 0 when the word is held for another row end
    (``seg.stall``), else ``nxt`` (what the next row has so far)."""
    with m.If(reset):
        m.d.sync += reg.eq(0)
    with m.Elif(go):
        with m.If(~seg.ends):
            m.d.sync += reg.eq(cont)
        with m.Elif(seg.stall):
            m.d.sync += reg.eq(0)
        with m.Else():
            m.d.sync += reg.eq(nxt)
