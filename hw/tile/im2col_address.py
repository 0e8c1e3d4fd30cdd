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
    (c*KH + r)*KW + s``); column ``p = oh*OW + ow``.  For each of the ``cols`` columns the
    generator gives the input byte address ``c*H*W + ih*W + iw`` with
    ``ih = oh*sh - ph + r*dh``, ``iw = ow*sw - pw + s*dw``, and ``inb`` = the position is inside
    the image (and ``p < OH*OW``): padding positions are never fetched.  Latency: the address
    of step ``i`` is valid in the cycle ``valid`` is high for the ``i``-th time; one step per
    cycle after ``cols + 1`` set-up cycles (the columns' first positions are stepped one per
    cycle, no divider) and two pipeline stages (``ih``/``iw``, then the address: no
    multiplier feeds another in one cycle), no stalls.

    Parameters
    ----------
    cols : int
        Columns per entry (the array's ``cols``).
    addr_width : int
        Byte address width of the image buffer.

    Members
    -------
    start : In(1)
        Pulse: begin (``geo``, ``k``, ``ncg`` held stable until ``done``).
    geo : In(conv_geometry_layout())
    k, ncg : In(16)
        ``C*KH*KW`` and the end of the column groups produced: ``ceil(OH*OW / cols)`` for the
        whole output, less for a tile computing a slice of the columns.
    cg_first : In(16)
        The first column group produced (``0``: from the first output pixel): the generator
        steps over the groups before it, one per cycle, without producing entries.
    valid, done : Out(1)
        An entry's addresses are on ``addr``/``inb``; all entries were produced.
    addr : Out(ArrayLayout(addr_width, cols)); inb : Out(cols)
    """

    def __init__(self, *, cols: int, addr_width: int, dim_width: int = 16):
        self.cols, self.aw, self.dw = cols, addr_width, dim_width
        super().__init__({
            "start": In(1), "geo": In(conv_geometry_layout(dim_width)),
            "k": In(dim_width), "ncg": In(dim_width), "cg_first": In(dim_width),
            "valid": Out(1), "done": Out(1),
            "addr": Out(data.ArrayLayout(addr_width, cols)), "inb": Out(cols),
        })

    def elaborate(self, platform):
        m = Module()
        g, cols, dw = self.geo, self.cols, self.dw
        sw_ = signed(dw + 2)
        q, rmd = Signal(dw), Signal(dw)  # cols = q*OW + rmd
        oh = [Signal(dw, name=f"oh{j}") for j in range(cols)]
        ow = [Signal(dw, name=f"ow{j}") for j in range(cols)]
        pcg = Signal(dw + 8)  # cg * cols
        cg, kk = Signal(dw), Signal(dw)
        c, r, s = Signal(dw), Signal(4), Signal(4)
        rd, sd = Signal(dw), Signal(dw)  # r*dh, s*dw
        cb = Signal(self.aw + 2)  # c*H*W
        npix = Signal(2 * dw)                       # OH * OW, registered at start
        # two pipeline stages after the stepping state: (ih, iw, in-range) -> (address, inb)
        step_valid = Signal()
        v1, v2 = Signal(), Signal()
        cb1 = Signal.like(cb)
        m.d.sync += [v1.eq(step_valid), v2.eq(v1), cb1.eq(cb)]
        m.d.comb += self.valid.eq(v2)
        for j in range(cols):
            ih = Signal(sw_, name=f"ih{j}")
            iw = Signal(sw_, name=f"iw{j}")
            inpix = Signal(name=f"inpix{j}")
            m.d.sync += [ih.eq(oh[j] * g.sh - g.ph + rd), iw.eq(ow[j] * g.sw - g.pw + sd),
                         inpix.eq(pcg + j < npix)]
            m.d.sync += [
                self.addr[j].eq(cb1 + ih.as_unsigned() * g.w + iw.as_unsigned()),
                self.inb[j].eq((ih >= 0) & (ih < g.h) & (iw >= 0) & (iw < g.w) & inpix),
            ]
        # set-up: the positions (oh, ow) of columns 1 .. cols-1, and (q, rmd) = position of
        # column `cols`, stepped one column per cycle (ow + 1, wrapping at OW): no divider
        step = Signal(range(cols + 1))
        s_oh, s_ow = Signal(dw), Signal(dw)             # position of column `step - 1`
        n_ow = Signal(dw + 1)
        n_wrap = Signal()
        m.d.comb += [n_ow.eq(s_ow + 1), n_wrap.eq(n_ow >= g.ow)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [oh[0].eq(0), ow[0].eq(0), s_oh.eq(0), s_ow.eq(0), step.eq(1),
                                 npix.eq(g.oh * g.ow)]
                    m.d.sync += [pcg.eq(0), cg.eq(0), kk.eq(0), c.eq(0), r.eq(0), s.eq(0),
                                 rd.eq(0), sd.eq(0), cb.eq(0)]
                    m.next = "SETUP"
            with m.State("SETUP"):
                noh = Mux(n_wrap, s_oh + 1, s_oh)
                now = Mux(n_wrap, 0, n_ow)
                m.d.sync += [s_oh.eq(noh), s_ow.eq(now), step.eq(step + 1)]
                for j in range(1, cols):
                    with m.If(step == j):
                        m.d.sync += [oh[j].eq(noh), ow[j].eq(now)]
                with m.If(step == cols):
                    m.d.sync += [q.eq(noh), rmd.eq(now)]
                    m.next = "RUN"
            with m.State("RUN"):
                def next_group():
                    m.d.sync += [kk.eq(0), c.eq(0), r.eq(0), s.eq(0), rd.eq(0), sd.eq(0),
                                 cb.eq(0), cg.eq(cg + 1), pcg.eq(pcg + cols)]
                    for j in range(cols):
                        wrap = ow[j] + rmd >= g.ow
                        m.d.sync += [ow[j].eq(ow[j] + rmd - (wrap * g.ow)),
                                     oh[j].eq(oh[j] + q + wrap)]
                with m.If(cg >= self.ncg):
                    m.next = "DRAIN"
                with m.Elif(cg < self.cg_first):    # a group of another tile: step over it
                    next_group()
                with m.Else():
                    m.d.comb += step_valid.eq(1)
                    with m.If(kk + 1 == self.k):  # next column group
                        next_group()
                    with m.Else():
                        m.d.sync += kk.eq(kk + 1)
                        with m.If(s + 1 == g.kw):
                            m.d.sync += [s.eq(0), sd.eq(0)]
                            with m.If(r + 1 == g.kh):
                                m.d.sync += [r.eq(0), rd.eq(0), c.eq(c + 1),
                                             cb.eq(cb + g.h * g.w)]
                            with m.Else():
                                m.d.sync += [r.eq(r + 1), rd.eq(rd + g.dh)]
                        with m.Else():
                            m.d.sync += [s.eq(s + 1), sd.eq(sd + g.dw)]
            with m.State("DRAIN"):                  # the last entries leave the pipeline
                with m.If(~v1 & ~v2):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        return m
