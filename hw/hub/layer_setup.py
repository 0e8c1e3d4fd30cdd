"""The running layer's registers, loaded from the checked descriptor (docs/accelerator.md)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from sparsemac.golden.descriptors import Flags, Opcode
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.hub.desc_checker import descriptor_layout
from sparsemac.hw.tile.tile import DIM_WIDTH, TileOp
from sparsemac.hw.tile.tile_node import QUANT_BYTES, layer_layout

__all__ = ["LayerSetup"]


class LayerSetup(wiring.Component):
    """The sequencer's layer registers: on ``load`` (its CHECK state) the tile command every
    node gets (``layer``: op, format, ``k``, ``n``, the conv geometry, the output element size
    and the beats of each multicast stream) and the ResultWriter's view of the output
    (``out_base``, ``row_bytes``, ``m_total``, ``lg_esize``), from the descriptor and what the
    `DescChecker` derived from it (``oh``, ``ow``, ``act_bytes``, ``pool``).  They hold still
    until the next ``load``, while the descriptor register already holds the next descriptor
    (the prefetch).

    Every matmul / conv layer runs as a conv2d (a matmul is the 1x1 conv of a ``K x 1 x N``
    image); a pool (``pool``, builds with ``pool_enabled``) pools its ``C x H x W`` image (a
    global average pool: one ``H x W`` window), int8 results, no tables.

    Members
    -------
    load : In(1)
    desc : In(descriptor_layout())
    mem_base : In(axi_addr_width)
    oh, ow : In(16); act_bytes : In(64); pool : In(1)  -- the DescChecker's outputs
    layer : Out(layer_layout())
    out_base : Out(axi_addr_width); row_bytes, m_total : Out(32); lg_esize : Out(2)
    table_kept : In(1)
        The tiles hold this layer's activation table already (the sequencer's decision):
        no table words (``lut_beats`` 0), so the nodes keep and swap nothing.
    plane_last : Out(2 * DIM_WIDTH)
        A pool sent plane by plane (``layer.pool_uni``): bus words per channel plane, minus
        one (the sequencer's ACTS moves to the next tile after that many more).
    """

    def __init__(self, cfg: AcceleratorConfig):
        self.cfg = AcceleratorConfig.require(cfg, "cfg")
        aw = cfg.axi_addr_width
        super().__init__({
            "load": In(1), "desc": In(descriptor_layout()), "mem_base": In(aw),
            "oh": In(DIM_WIDTH), "ow": In(DIM_WIDTH), "act_bytes": In(64), "pool": In(1),
            "table_kept": In(1),
            "layer": Out(layer_layout()),
            "out_base": Out(aw), "row_bytes": Out(32), "m_total": Out(32), "lg_esize": Out(2),
            "plane_last": Out(2 * DIM_WIDTH),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, desc, lay = self.cfg, self.desc, self.layer
        beat = cfg.axi_bytes
        lg_beat = (beat - 1).bit_length()
        lg_es_raw = 2 if cfg.acc_width <= 32 else 3
        conv = desc.opcode == Opcode.CONV2D
        requant = desc.flags[0]
        lg_es = Mux(requant, 0, lg_es_raw)
        with m.If(self.load):
            m.d.sync += [
                lay.op.eq(TileOp.CONV2D), lay.exclude_pad.eq(0),
                lay.fmt.eq(desc.format), lay.k.eq(desc.k), lay.n.eq(desc.n),
                lay.geo.c.eq(Mux(conv, desc.c, desc.k)), lay.geo.h.eq(Mux(conv, desc.h, 1)),
                lay.geo.w.eq(Mux(conv, desc.w, desc.n)),
                lay.geo.oh.eq(self.oh), lay.geo.ow.eq(self.ow),
                lay.geo.kh.eq(Mux(conv, desc.kh, 1)), lay.geo.kw.eq(Mux(conv, desc.kw, 1)),
                lay.geo.sh.eq(Mux(conv, desc.stride_h, 1)),
                lay.geo.sw.eq(Mux(conv, desc.stride_w, 1)),
                lay.geo.ph.eq(Mux(conv, desc.pad_h, 0)),
                lay.geo.pw.eq(Mux(conv, desc.pad_w, 0)),
                lay.geo.dh.eq(Mux(conv, desc.dil_h, 1)),
                lay.geo.dw.eq(Mux(conv, desc.dil_w, 1)),
                lay.requant.eq(requant), lay.lg_esize.eq(lg_es_raw), lay.pool_uni.eq(0),
                lay.act_beats.eq((self.act_bytes + beat - 1) >> lg_beat),
                lay.quant_beats.eq(Mux(requant, (desc.m * QUANT_BYTES + beat - 1) >> lg_beat,
                                       0)),
                lay.lut_beats.eq(Mux(requant & ~self.table_kept, 256 // beat, 0)),
                self.out_base.eq(self.mem_base + desc.out),
                self.row_bytes.eq(desc.n << lg_es), self.m_total.eq(desc.m),
                self.lg_esize.eq(lg_es),
            ]
            if cfg.pool_enabled:
                # a pool (docs/accelerator.md "Pooling"): the tiles pool their own channels
                # of the multicast image; int8 results, no weights, tables or records; a
                # global average pool is one H x W window
                glob = desc.opcode == Opcode.GLOBAL_AVGPOOL
                # a channel plane of whole bus words goes to its own tile only
                # (golden.net_pool.pool_unicast): `h * w` is registered only through the
                # two results below
                plane = Signal(2 * DIM_WIDTH, name="pool_plane")
                m.d.comb += plane.eq(desc.h * desc.w)
                with m.If(self.pool):
                    m.d.sync += [
                        lay.op.eq(Mux(desc.opcode == Opcode.MAXPOOL2D, TileOp.MAXPOOL,
                                      TileOp.AVGPOOL)),
                        # an average of the real positions (count_include_pad 0)
                        lay.exclude_pad.eq(
                            (desc.opcode == Opcode.AVGPOOL2D)
                            & ~desc.flags[Flags.INCLUDE_PAD.bit_length() - 1]),
                        lay.geo.c.eq(desc.c), lay.geo.h.eq(desc.h), lay.geo.w.eq(desc.w),
                        lay.geo.kh.eq(Mux(glob, desc.h, desc.kh)),
                        lay.geo.kw.eq(Mux(glob, desc.w, desc.kw)),
                        lay.geo.sh.eq(Mux(glob, 1, desc.stride_h)),
                        lay.geo.sw.eq(Mux(glob, 1, desc.stride_w)),
                        lay.geo.ph.eq(Mux(glob, 0, desc.pad_h)),
                        lay.geo.pw.eq(Mux(glob, 0, desc.pad_w)),
                        lay.geo.dh.eq(1), lay.geo.dw.eq(1),
                        lay.requant.eq(0), lay.lg_esize.eq(0), lay.quant_beats.eq(0),
                        lay.lut_beats.eq(0),
                        self.row_bytes.eq(desc.n), self.lg_esize.eq(0),
                        lay.pool_uni.eq(plane[:lg_beat] == 0),
                        self.plane_last.eq((plane >> lg_beat) - 1),
                    ]
        return m
