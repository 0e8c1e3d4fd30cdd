"""Max / average pooling of a tile's gathered im2col entries (docs/spec.md section 2.3)."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["PoolReducer", "pool_result_layout", "recip_table", "AVG_SHIFT", "MAX_WINDOW"]

#: ``S`` of the division rule (docs/spec.md section 2.3): exact for windows of up to 256
AVG_SHIFT = 25
#: largest window ``KH * KW`` the tile pools (kernel fields are 4 bits: 15 x 15)
MAX_WINDOW = 225


def recip_table() -> list[int]:
    """The reciprocal table of the count-real average: ``R[c] = ceil(2**AVG_SHIFT / c)`` for
    the counts ``c = 1 .. MAX_WINDOW`` (golden's ``avg_recip``), ``R[0] = 0`` (a column past
    the output, which has no real position: its result is -128 and never written)."""
    return [0] + [-(-(1 << AVG_SHIFT) // c) for c in range(1, MAX_WINDOW + 1)]


def pool_result_layout(cols: int, dim_width: int = 16):
    """One pooled row segment: channel ``m`` (the tile's own index), column group ``cg`` and the
    ``cols`` int8 results."""
    return data.StructLayout({"m": dim_width, "cg": dim_width,
                              "y": data.ArrayLayout(signed(8), cols)})


class PoolReducer(wiring.Component):
    """Reduces the im2col entries of a pooling layer to int8 results, one window per ``kk``
    entries.

    The tile's gather writes entry ``(ch, cg, k)`` (``k = r*KW + s``: channel after channel,
    in each its column groups, in each the window position) into its activation buffer, one
    per cycle, padding
    positions as ``pad`` bytes (-128 for max and for an average of the real positions, 0 for
    an average counting padding, spec 2.3), and beside each byte its ``real`` flag (the
    position is inside the image).  The reducer reads the entries back in the same order,
    behind the gather (``avail`` = entries written so far), registers each entry read (the
    block RAM's unregistered output reaches no adder: it was the placed 64-MAC build's
    critical path), and for every column keeps the
    window's maximum or its offset sum ``u = sum(x ^ 0x80)`` (16 bits: at most ``255 * 225``;
    a -128 padding byte adds 0) and its count of real entries (8 bits).  A finished window
    goes to a hold register; an average is divided there, ``lanes`` columns per cycle
    (``cols / lanes + 2`` cycles: the reciprocals and the products are registered):
    ``y = ((u * R + 2**24) >> 25) - 128``, which is golden's ``avg_divide`` for windows of up
    to 256.  ``R = ceil(2**25 / kk)`` with ``exclude_pad`` low (computed once per layer by a
    26-step restoring divider, while the image loads); with it high, each column's
    ``R[count]`` from `recip_table` (a constant table, one synchronous read port per lane:
    the first lane group's reads are issued as the window enters the hold register, the next
    group's in each division cycle, so both modes take the same cycles).  A maximum is the
    result as it is.  Results leave on ``o`` (channel after channel, in each its column
    groups in order), each row segment held until taken; the reader reads a window's last entry only
    when the hold register is free from the next cycle on (it lands there three cycles after
    its read), so a window's result leaves one cycle later than without the entry register
    and windows follow each other as fast as before (`golden.net_pool.pool_channel_tokens`).

    Members
    -------
    start : In(1)
        Pulse: begin a layer (``avg``, ``kk``, ``chans``, ``ncg`` held until ``done``).
    avg : In(1)
        0: maximum, 1: average.
    exclude_pad : In(1)
        An average divides each window by its count of real entries (``count_include_pad``
        0, spec 2.3; padding bytes must read -128), else by ``kk``.
    kk : In(8)
        Window size ``KH * KW`` (1..225).
    chans : In(16)
        Channels this tile pools (``>= 1``).
    ncg : In(16)
        Column groups (``>= 1``).
    avail : In(addr_width + 1)
        Entries the gather has written.
    raddr : Out(addr_width); rdata : In(8 * cols); rdata_real : In(cols)
        The activation buffer's read port (data one cycle after the address): the entry's
        bytes and their ``real`` flags.
    o : Out(stream.Signature(pool_result_layout(cols)))
    busy : Out(1)
        From ``start`` until the last result was taken.
    """

    def __init__(self, *, cols: int, lanes: int, addr_width: int, dim_width: int = 16):
        if cols % lanes:
            raise ValueError(f"lanes must divide cols ({cols}), not {lanes!r}")
        self.cols, self.lanes, self.aw, self.dw = cols, lanes, addr_width, dim_width
        super().__init__({
            "start": In(1), "avg": In(1), "exclude_pad": In(1), "kk": In(8),
            "chans": In(dim_width), "ncg": In(dim_width), "avail": In(addr_width + 1),
            "raddr": Out(addr_width), "rdata": In(8 * cols), "rdata_real": In(cols),
            "o": Out(stream.Signature(pool_result_layout(cols, dim_width))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cols, lanes, dw = self.cols, self.lanes, self.dw
        bpr = cols // lanes
        S = AVG_SHIFT

        # ---- R = ceil(2**S / kk): restoring division of 2**S + kk - 1, one bit per cycle ----
        rq = Signal(S + 1)                 # quotient (R <= 2**S)
        rrem = Signal(9)
        rnum = Signal(S + 1)
        rcnt = Signal(range(S + 2))
        r_ready = Signal()
        with m.If(self.start):
            m.d.sync += [rnum.eq((1 << S) + self.kk - 1), rrem.eq(0), rq.eq(0),
                         rcnt.eq(S + 1), r_ready.eq(0)]
        with m.Elif(rcnt != 0):
            r2 = Cat(rnum[S], rrem)
            with m.If(r2 >= self.kk):
                m.d.sync += [rrem.eq(r2 - self.kk), rq.eq(Cat(1, rq[:S]))]
            with m.Else():
                m.d.sync += [rrem.eq(r2), rq.eq(Cat(0, rq[:S]))]
            m.d.sync += [rnum.eq(rnum << 1), rcnt.eq(rcnt - 1)]
            with m.If(rcnt == 1):
                m.d.sync += r_ready.eq(1)

        # ---- reader: entries in order, behind the gather --------------------------------------
        running = Signal()
        addr = Signal(self.aw + 1)
        e = Signal(8)                                   # position in the window
        ch_r, cg_r = Signal(dw), Signal(dw)             # window being read
        rv, r_first, r_last = Signal(), Signal(), Signal()
        # the entry read a cycle before goes through a register first (`x_q`): the block
        # RAM's output reaches no adder (it was the 64-MAC build's critical path, 19.9 ns)
        rv2, r_first2, r_last2 = Signal(), Signal(), Signal()
        hold_valid = Signal()
        hold_moves = Signal()                           # the hold register empties this cycle
        w_last = e + 1 == self.kk
        # a window's last entry lands in the hold register at the end of the cycle after
        # next: it is read only when the hold register is free from the next cycle on and no
        # other window's last entry is on its way
        can = running & (addr < self.avail) & r_ready & (
            ~w_last | ((~hold_valid | hold_moves) & ~(rv & r_last) & ~(rv2 & r_last2)))
        m.d.comb += self.raddr.eq(addr)
        m.d.sync += [rv.eq(can), r_first.eq(e == 0), r_last.eq(w_last),
                     rv2.eq(rv), r_first2.eq(r_first), r_last2.eq(r_last)]
        x_q = Signal(8 * cols, name="x_q", reset_less=True)
        real_q = Signal(cols, name="real_q", reset_less=True)
        m.d.sync += [x_q.eq(self.rdata), real_q.eq(self.rdata_real)]
        with m.If(self.start):
            m.d.sync += [running.eq(1), addr.eq(0), e.eq(0), ch_r.eq(0), cg_r.eq(0)]
        with m.Elif(can):
            m.d.sync += addr.eq(addr + 1)
            with m.If(w_last):
                m.d.sync += e.eq(0)
                with m.If(cg_r + 1 == self.ncg):
                    m.d.sync += cg_r.eq(0)
                    with m.If(ch_r + 1 == self.chans):
                        m.d.sync += running.eq(0)       # the layer's last entry
                    with m.Else():
                        m.d.sync += ch_r.eq(ch_r + 1)
                with m.Else():
                    m.d.sync += cg_r.eq(cg_r + 1)
            with m.Else():
                m.d.sync += e.eq(e + 1)

        # ---- accumulate: per column the window's max or offset sum, and its real count -------
        avg = Signal()                                  # the layer's mode, from ``start``
        excl = Signal()                                 # ... and its divisor
        accs = [Signal(16, name=f"acc{j}") for j in range(cols)]
        nxt = [Signal(16, name=f"nxt{j}") for j in range(cols)]
        cnts = [Signal(8, name=f"cnt{j}") for j in range(cols)]         # real entries
        nxt_cnt = [Signal(8, name=f"nxt_cnt{j}") for j in range(cols)]
        for j in range(cols):
            x = x_q[8 * j:8 * j + 8]
            mx = Signal(signed(8), name=f"max{j}")
            m.d.comb += mx.eq(Mux(r_first2 | (x.as_signed() > accs[j][:8].as_signed()), x,
                                  accs[j][:8]))
            m.d.comb += nxt[j].eq(Mux(avg, Mux(r_first2, 0, accs[j]) + (x ^ 0x80),
                                      mx.as_unsigned()))
            m.d.comb += nxt_cnt[j].eq(Mux(r_first2, 0, cnts[j]) + real_q[j])
        ch_a, cg_a = Signal(dw), Signal(dw)             # window being accumulated
        hold = [Signal(16, name=f"hold{j}") for j in range(cols)]
        hold_cnt = [Signal(8, name=f"hold_cnt{j}") for j in range(cols)]
        hold_m, hold_cg = Signal(dw), Signal(dw)
        with m.If(self.start):
            m.d.sync += [ch_a.eq(0), cg_a.eq(0)]
        with m.If(rv2):
            m.d.sync += [a.eq(n) for a, n in zip(accs, nxt)]
            m.d.sync += [c.eq(n) for c, n in zip(cnts, nxt_cnt)]
            with m.If(r_last2):
                m.d.sync += [h.eq(n) for h, n in zip(hold, nxt)]
                m.d.sync += [h.eq(n) for h, n in zip(hold_cnt, nxt_cnt)]
                m.d.sync += [hold_valid.eq(1), hold_m.eq(ch_a), hold_cg.eq(cg_a)]
                with m.If(cg_a + 1 == self.ncg):
                    m.d.sync += [cg_a.eq(0), ch_a.eq(ch_a + 1)]
                with m.Else():
                    m.d.sync += cg_a.eq(cg_a + 1)

        # ---- divide (average) or pass (max), lanes columns per cycle, into the output ---------
        # An average takes bpr + 2 cycles: in cycle b < bpr lane group b's reciprocals and hold
        # values go into registers (``recip_q``: the table's block RAM output reaches no
        # multiplier; ``hold_q``: nor does the choice of the group), in cycle
        # 0 < b <= bpr group b - 1's products ``hold * R`` (the multiplier between registers,
        # nothing after it), in cycle b > 1 group b - 2's rounded quotients into ``y``.
        o_valid = Signal()
        ys = [Signal(signed(8), name=f"y{j}") for j in range(cols)]
        prods = [Signal(16 + S, name=f"prod{i}") for i in range(lanes)]
        b = Signal(range(bpr + 2))
        # the count-real reciprocals: lane q of group b reads R[hold_cnt[b*lanes + q]] one cycle
        # ahead (group 0 as the window enters the hold register, group b + 1 in division
        # cycle b); the port holds its data while the division waits for the output register;
        # its data goes through ``recip_q`` first (unregistered block RAM output into the
        # multiplier: the placed 64-MAC build's critical path, 19.45 ns)
        # (a block RAM: with 4 read ports Yosys built the table in logic, 3.6k LUTs at 4x16)
        m.submodules.recips = recips = Memory(shape=S + 1, depth=MAX_WINDOW + 1,
                                              init=recip_table(), attrs={"rom_style": "block"})
        recip = [Signal(S + 1, name=f"recip_q{q}") for q in range(lanes)]
        # ... and beside them the group's hold values (``hold_q``), chosen by ``b`` a cycle
        # before the product: the multiplier's inputs are registers only
        hold_q = [Signal(16, name=f"hold_q{q}") for q in range(lanes)]
        loading = rv2 & r_last2                         # a window enters the hold register
        dividing = hold_valid & ~o_valid & avg          # a division cycle (b) runs
        for q in range(lanes):
            rp = recips.read_port()
            ahead = hold_cnt[q]                         # (bpr == 1: only group 0)
            for i in range(1, bpr):                     # group b + 1 during cycle b
                ahead = Mux(b == i - 1, hold_cnt[i * lanes + q], ahead)
            m.d.comb += [rp.en.eq(loading | dividing),
                         rp.addr.eq(Mux(loading, nxt_cnt[q], ahead))]
            m.d.sync += recip[q].eq(Mux(excl, rp.data, rq))
        m.d.comb += [self.o.valid.eq(o_valid), self.o.payload.y.eq(Cat(*ys))]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += o_valid.eq(0)
        m.d.comb += hold_moves.eq(hold_valid & ~o_valid & (~avg | (b == bpr + 1)))
        with m.If(hold_valid & ~o_valid):
            with m.If(~avg):
                m.d.sync += [y.eq(h[:8]) for y, h in zip(ys, hold)]
                m.d.sync += [o_valid.eq(1), hold_valid.eq(0), self.o.payload.m.eq(hold_m),
                             self.o.payload.cg.eq(hold_cg)]
            with m.Else():
                for i in range(bpr + 2):
                    with m.If(b == i):
                        if i < bpr:
                            m.d.sync += [h.eq(hold[i * lanes + q]) for q, h in enumerate(hold_q)]
                        if 0 < i <= bpr:
                            m.d.sync += [p.eq(hq * rc) for p, hq, rc in zip(prods, hold_q, recip)]
                        if i > 1:   # round half up: bit S-1 of the product carries in
                            m.d.sync += [ys[(i - 2) * lanes + q].eq(
                                (p[S:S + 8] + p[S - 1]) ^ 0x80) for q, p in enumerate(prods)]
                with m.If(b == bpr + 1):
                    m.d.sync += [b.eq(0), o_valid.eq(1), hold_valid.eq(0),
                                 self.o.payload.m.eq(hold_m), self.o.payload.cg.eq(hold_cg)]
                with m.Else():
                    m.d.sync += b.eq(b + 1)
        with m.If(self.start):
            m.d.sync += [hold_valid.eq(0), o_valid.eq(0), b.eq(0), avg.eq(self.avg),
                         excl.eq(self.exclude_pad)]
        m.d.comb += self.busy.eq(running | rv | rv2 | hold_valid | o_valid | (rcnt != 0))
        return m
