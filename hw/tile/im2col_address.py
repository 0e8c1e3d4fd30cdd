"""Implicit-im2col address generator of the tile (docs/spec.md section 2.2, docs/tile.md)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Im2colAddress", "conv_geometry_layout"]


def conv_geometry_layout(dim_width: int = 16):
    """Convolution geometry of a tile command: input ``C x H x W`` (one image, NCHW), kernel
    ``KH x KW``, output ``OH x OW``, stride / padding / dilation per axis."""
    return data.StructLayout({
        "c": dim_width, "h": dim_width, "w": dim_width, "oh": dim_width, "ow": dim_width,
        "kh": 4, "kw": 4, "sh": 4, "sw": 4, "ph": 4, "pw": 4, "dh": 4, "dw": 4})


class Im2colAddress(wiring.Component):
    """Byte addresses of one im2col entry ``X[k, cg*cols : cg*cols + cols]`` per cycle.

    Entries come in the activation buffer's order (column groups outer, ``k`` inner, ``k =
    ((c - c0)*KH + r)*KW + s``); column ``p = oh*OW + ow``.  For each of the ``cols`` columns the
    generator gives the input byte address ``c*H*W + ih*W + iw`` (from ``cbase = c0*H*W``) with
    ``ih = oh*sh - ph + r*dh``, ``iw = ow*sw - pw + s*dw``, and ``inb`` = the position is inside
    the image (and ``p < OH*OW``): padding positions are never fetched.  Latency: the address
    of step ``i`` is valid in the cycle ``valid`` is high for the ``i``-th time; one step per
    cycle after ``cols + 2`` set-up cycles (the columns' first positions are stepped one per
    cycle, no divider) and two pipeline stages (``ih``/``iw`` and the row's byte offset, then
    the address: one adder per column per stage), no stalls.  No multiplier per column: a
    column's base position and row offset advance by constants from group to group, and the
    few products of the geometry are registered once at start.

    Input coordinates are ``coord_width = max(addr_width, 10)``-bit signed numbers kept
    modulo ``2**coord_width`` (the 16-bit dimensions would need 22 bits).  That is exact for
    every image that fits the buffer (``C*H*W`` bytes, so ``H, W <= 2**(addr_width - 1) =
    2**(coord_width - 1)``) with the output size its geometry gives (the DescChecker derives
    ``OH``, ``OW``, docs/spec.md section 2.2): a real coordinate ``t`` lies in ``[-15, H +
    240)``; one inside the image (``0 <= t < H``) is held as itself, and one outside never
    wraps into ``[0, H)`` (``t < 0`` is itself, ``H <= t < H + 240 < 2**coord_width`` is
    either itself or negative).  An image larger than the buffer (the tile flags it, results
    undefined) may wrap: positions are then wrong, every address stays inside the buffer and
    the number of entries does not depend on them.

    Parameters
    ----------
    cols : int
        Columns per entry (the array's ``cols``).
    addr_width : int
        Byte address width of the image buffer.

    Members
    -------
    start : In(1)
        Pulse: begin (``geo``, ``k``, ``ncg``, ``cg_first`` held stable until ``done``).
    geo : In(conv_geometry_layout())
    k, ncg : In(16)
        ``C*KH*KW`` and the end of the column groups produced: ``ceil(OH*OW / cols)`` for the
        whole output, less for a tile computing a slice of the columns.
    cg_first : In(16)
        The first column group produced (``0``: from the first output pixel): the generator
        steps over the groups before it, one per cycle, without producing entries.
    cbase : In(addr_width)
        Byte address of the first channel's plane (``c0 * H * W``; 0 for a conv): ``k`` then
        counts from channel ``c0`` (a tile pooling its own channels ``c0 ..``).
    valid, done : Out(1)
        An entry's addresses are on ``addr``/``inb``; all entries were produced.
    addr : Out(ArrayLayout(addr_width, cols)); inb : Out(cols)
    """

    def __init__(self, *, cols: int, addr_width: int, dim_width: int = 16):
        self.cols, self.aw, self.dw = cols, addr_width, dim_width
        #: width of the signed input coordinates (module docstring)
        self.coord_width = max(addr_width, 10)
        super().__init__({
            "start": In(1), "geo": In(conv_geometry_layout(dim_width)),
            "k": In(dim_width), "ncg": In(dim_width), "cg_first": In(dim_width),
            "cbase": In(addr_width),
            "valid": Out(1), "done": Out(1),
            "addr": Out(data.ArrayLayout(addr_width, cols)), "inb": Out(cols),
        })

    def elaborate(self, platform):
        m = Module()
        g, cols, dw, aw = self.geo, self.cols, self.dw, self.aw
        # input coordinates (bh, bw, ih, iw and the group step's increments): signed, wide
        # enough for any image that fits the buffer (module docstring), modulo 2**cw
        sw_ = signed(self.coord_width)
        # No multiplier per column: each column keeps its base row/column in input
        # coordinates (bh = oh*sh - ph, bw = ow*sw - pw) and its row's byte offset
        # (rowb = bh*W, modulo 2**addr_width: an address is only used inside the image),
        # stepped by constants when the group advances; the constants come from the set-up
        # walk (position of column ``cols``) and from a few products of the geometry that are
        # registered once at start (shared by all columns).
        # every register below is loaded at start / in SETUP before it is used, or is
        # pipeline data qualified by v1 / v2: none is reset (only the FSM, `step` and the
        # valid bits are), which keeps the data-plane reset's fan-out small
        def _dreg(*args, **kw):
            return Signal(*args, reset_less=True, **kw)

        rmd = _dreg(dw)                               # cols = q*OW + rmd
        ow = [_dreg(dw, name=f"ow{j}") for j in range(cols)]
        bh = [_dreg(sw_, name=f"bh{j}") for j in range(cols)]
        bw = [_dreg(sw_, name=f"bw{j}") for j in range(cols)]
        rowb = [_dreg(aw, name=f"rowb{j}") for j in range(cols)]
        # output pixels from the current group's first column on (OH*OW - cg*cols): shared,
        # so a column's "inside the output" is a compare of `pix_avail` (0 .. cols) with its
        # own index, not a wide add and compare per column
        pix_left = _dreg(signed(2 * dw + 2), name="pix_left")
        pix_avail = Signal(range(cols + 1), name="pix_avail")
        cg, kk = _dreg(dw), _dreg(dw)
        r, s = _dreg(4), _dreg(4)
        rd, sd = _dreg(dw), _dreg(dw)  # r*dh, s*dw
        cb = _dreg(aw)                  # c*H*W
        crd = _dreg(aw)                 # cb + rd*W
        hw_, shw, dhw, phw = _dreg(aw), _dreg(aw), _dreg(aw), _dreg(aw)  # H*W, sh*W, ...
        rmd_ow = _dreg(signed(dw + 1))  # rmd - OW
        qsh, qsh1 = _dreg(sw_), _dreg(sw_)    # q*sh, q*sh + sh
        rsw, rsw1 = _dreg(sw_), _dreg(sw_)    # rmd*sw, rmd*sw - OW*sw
        qshw, qshw1 = _dreg(aw), _dreg(aw)    # q*sh*W, (q*sh + sh)*W
        osw = _dreg(sw_)                       # OW*sw
        rmd2 = _dreg(dw + 1)                   # 2*rmd
        # wrap[j]: column j's next group wraps (ow[j] + rmd >= OW), kept one group ahead so
        # the group step's selects come from flip-flops, not from a compare (set in PREP,
        # then from the current ow[j]: ow + 2*rmd against OW or, after a wrap, 2*OW)
        wrap_r = [_dreg(name=f"wrap{j}") for j in range(cols)]
        aheads = [Signal(dw + 2, name=f"ahead{j}") for j in range(cols)]   # ow + 2*rmd
        # the RUN state's decisions, registered one step ahead (cg >= ncg, cg < cg_first;
        # `ncg`, `cg_first` and `k` hold still from `start` on)
        at_end, skipping = _dreg(name="at_end"), _dreg(name="skipping")
        # the group step (RUN, not at_end, and skipping or at the group's last k) is decided
        # one cycle ahead as well, into one flip-flop per column (`grp[j]`: enable and select
        # of column j's ow/bh/bw/rowb/wrap registers) and one for the shared counters
        # (`grp_ctl`): no net reaches every column's flip-flops (one did at 4x16: FSM state ->
        # k_last/at_end -> the enable of ~1,200 flip-flops, 19.4 ns routed).  The copies hold
        # the same value; each one's decision after a group step is taken under its own
        # value (below), so the copies' inputs differ and Yosys cannot merge them into one
        # flip-flop (opt_merge merges flip-flops with identical inputs; a `keep` on the
        # signal stays on the wire and does not stop it).  Reset (0 outside RUN): they
        # enable registers in every state.
        grp_ctl = Signal(name="grp_ctl")
        grp = [Signal(name=f"grp{j}") for j in range(cols)]

        def decide_group(fires):
            m.d.sync += [g_.eq(fires) for g_ in (grp_ctl, *grp)]
        m.d.comb += [a.eq(o + rmd2) for a, o in zip(aheads, ow)]
        m.d.comb += pix_avail.eq(Mux(pix_left >= cols, cols,
                                     Mux(pix_left > 0, pix_left[:pix_avail.shape().width], 0)))
        # two pipeline stages after the stepping state: (ih, iw, row address, in-range) ->
        # (address, inb)
        step_valid = Signal()
        v1, v2 = Signal(), Signal()
        m.d.sync += [v1.eq(step_valid), v2.eq(v1)]
        m.d.comb += self.valid.eq(v2)
        for j in range(cols):
            ih = _dreg(sw_, name=f"ih{j}")
            iw = _dreg(sw_, name=f"iw{j}")
            ra = _dreg(aw, name=f"ra{j}")
            inpix = _dreg(name=f"inpix{j}")
            m.d.sync += [ih.eq(bh[j] + rd), iw.eq(bw[j] + sd), ra.eq(rowb[j] + crd),
                         inpix.eq(pix_avail > j)]
            m.d.sync += [
                self.addr[j].eq(ra + iw.as_unsigned()),
                self.inb[j].eq((ih >= 0) & (ih < g.h) & (iw >= 0) & (iw < g.w) & inpix),
            ]
        # set-up: the positions of columns 1 .. cols-1, and of column `cols` (q, rmd),
        # stepped one column per cycle (ow + 1, wrapping at OW): no divider
        step = Signal(range(cols + 1))
        s_ow = _dreg(dw)                            # position of column `step - 1`
        s_bh, s_bw = _dreg(sw_), _dreg(sw_)            # its base row / column
        s_rowb = _dreg(aw)
        n_ow = Signal(dw + 1)
        n_wrap = Signal()
        m.d.comb += [n_ow.eq(s_ow + 1), n_wrap.eq(n_ow >= g.ow)]
        with m.FSM():
            with m.State("IDLE"):
                # the first values load in every IDLE cycle (the inputs are valid in the
                # `start` cycle, and nothing reads these registers before SETUP): `start`
                # only picks the next state, so the tile's path to `start` (its LOAD exit)
                # ends at the FSM and does not reach these registers' enables
                m.d.sync += [ow[0].eq(0), bh[0].eq(-g.ph), bw[0].eq(-g.pw),
                             rowb[0].eq(-(g.ph * g.w)), s_ow.eq(0), s_bh.eq(-g.ph),
                             s_bw.eq(-g.pw), s_rowb.eq(-(g.ph * g.w)), step.eq(1),
                             pix_left.eq(g.oh * g.ow), hw_.eq(g.h * g.w), shw.eq(g.sh * g.w),
                             dhw.eq(g.dh * g.w), phw.eq(g.ph * g.w), osw.eq(g.ow * g.sw)]
                m.d.sync += [cg.eq(0), kk.eq(0), r.eq(0), s.eq(0),
                             rd.eq(0), sd.eq(0), cb.eq(self.cbase), crd.eq(self.cbase)]
                with m.If(self.start):
                    m.next = "SETUP"
            with m.State("SETUP"):
                now = Mux(n_wrap, 0, n_ow)
                nbh = Mux(n_wrap, s_bh + g.sh, s_bh)
                nbw = Mux(n_wrap, -g.pw, s_bw + g.sw)
                nrowb = Mux(n_wrap, s_rowb + shw, s_rowb)
                m.d.sync += [s_ow.eq(now), s_bh.eq(nbh), s_bw.eq(nbw), s_rowb.eq(nrowb),
                             step.eq(step + 1)]
                # columns 1 .. cols-1 as a shift chain: from the second step on, the
                # registered position (column step - 1) enters at column cols-1 and the ones
                # before move down one column, so after the last step column j holds column
                # j's position; the step's values reach one column's registers, not every
                # column's (a 23 ns net at 4x16 when they did), and from flip-flops (the
                # wrap compare fed the chain's input, 19.6 ns routed, when it did not)
                if cols > 1:
                    with m.If(step >= 2):
                        top = cols - 1
                        m.d.sync += [ow[top].eq(s_ow), bh[top].eq(s_bh), bw[top].eq(s_bw),
                                     rowb[top].eq(s_rowb)]
                        for j in range(1, top):
                            m.d.sync += [ow[j].eq(ow[j + 1]), bh[j].eq(bh[j + 1]),
                                         bw[j].eq(bw[j + 1]), rowb[j].eq(rowb[j + 1])]
                with m.If(step == cols):
                    m.d.sync += rmd.eq(now)
                    m.next = "PREP"
            with m.State("PREP"):
                # column `cols` (now in s_ow/s_bh/s_bw/s_rowb) sits q rows and rmd columns
                # past column 0: the group step's increments, from registers
                m.d.sync += [rmd_ow.eq(s_ow - g.ow),
                             qsh.eq(s_bh + g.ph), qsh1.eq(s_bh + g.ph + g.sh),
                             rsw.eq(s_bw + g.pw), rsw1.eq(s_bw + g.pw - osw),
                             qshw.eq(s_rowb + phw), qshw1.eq(s_rowb + phw + shw),
                             rmd2.eq(s_ow << 1)]
                for j in range(cols):
                    m.d.sync += wrap_r[j].eq(ow[j] + rmd >= g.ow)
                first_end = self.ncg == 0
                first_skip = self.cg_first != 0
                m.d.sync += [at_end.eq(first_end), skipping.eq(first_skip)]
                decide_group(~first_end & (first_skip | (self.k == 1)))
                m.next = "RUN"
            with m.State("RUN"):
                # the group step itself is below the FSM, enabled by its flip-flops alone
                with m.If(at_end):
                    m.next = "DRAIN"
                with m.Elif(~skipping):             # (skipping: a group of another tile)
                    m.d.comb += step_valid.eq(1)
                    with m.If(~grp_ctl):            # the next k of the column group
                        m.d.sync += kk.eq(kk + 1)
                        decide_group(kk + 2 == self.k)
                        with m.If(s + 1 == g.kw):
                            m.d.sync += [s.eq(0), sd.eq(0)]
                            with m.If(r + 1 == g.kh):
                                m.d.sync += [r.eq(0), rd.eq(0), cb.eq(cb + hw_),
                                             crd.eq(cb + hw_)]
                            with m.Else():
                                m.d.sync += [r.eq(r + 1), rd.eq(rd + g.dh), crd.eq(crd + dhw)]
                        with m.Else():
                            m.d.sync += [s.eq(s + 1), sd.eq(sd + g.dw)]
            with m.State("DRAIN"):                  # the last entries leave the pipeline
                with m.If(~v1 & ~v2):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        # the group step (next column group, or stepping over a group of another tile), in
        # RUN only (grp_ctl / grp[j] are 0 elsewhere): the shared counters on grp_ctl, each
        # column's registers on its own grp[j], and each copy's next decision under itself
        nxt_end, nxt_skip = cg + 1 >= self.ncg, cg + 1 < self.cg_first
        nxt_grp = ~nxt_end & (nxt_skip | (self.k == 1))
        with m.If(grp_ctl):
            m.d.sync += [kk.eq(0), r.eq(0), s.eq(0), rd.eq(0), sd.eq(0),
                         cb.eq(self.cbase), crd.eq(self.cbase), cg.eq(cg + 1),
                         pix_left.eq(pix_left - cols), at_end.eq(nxt_end), skipping.eq(nxt_skip),
                         grp_ctl.eq(nxt_grp)]
        for j in range(cols):
            wrap, ahead = wrap_r[j], aheads[j]
            with m.If(grp[j]):
                m.d.sync += grp[j].eq(nxt_grp)
                m.d.sync += wrap_r[j].eq(Mux(wrap, ahead >= (g.ow << 1), ahead >= g.ow))
                m.d.sync += [ow[j].eq(Mux(wrap, ow[j] + rmd_ow, ow[j] + rmd)),
                             bh[j].eq(bh[j] + Mux(wrap, qsh1, qsh)),
                             bw[j].eq(bw[j] + Mux(wrap, rsw1, rsw)),
                             rowb[j].eq(rowb[j] + Mux(wrap, qshw1, qshw))]
        return m
