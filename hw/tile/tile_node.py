"""A compute tile on the ring: Tile + OutputPipeline + ring port (docs/accelerator.md)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.mem.byte_gearbox import ByteGearbox
from sparsemac.hw.post.output_pipeline import OutputPipeline
from sparsemac.hw.ring.layouts import FlitType, flit_layout
from sparsemac.hw.tile.im2col_address import conv_geometry_layout
from sparsemac.hw.tile.image_checker import ImageChecker
from sparsemac.hw.tile.tile import DIM_WIDTH, Tile, TileOp

__all__ = ["TileNode", "layer_layout", "DONE_MARKER", "result_data_bytes", "QUANT_BYTES"]

#: ``m`` field of the end-of-layer marker flit a node sends after its last result.
DONE_MARKER = 0xFFFF
#: Bytes of one bias/requant record in memory (docs/spec.md section 8).
QUANT_BYTES = 16


def result_data_bytes(cfg: AcceleratorConfig) -> int:
    """Result bytes carried by one RESULT flit (payload = ``m`` 16 | ``eoff`` 16 | data)."""
    return (cfg.ring_payload_width - 32) // 8


def layer_layout() -> data.StructLayout:
    """What the sequencer broadcasts to every node for the running layer (stable while it runs).

    ``op``, ``fmt``, ``k``, ``n``, ``geo``: the tile command (every matmul / conv layer runs as
    a conv2d: any ``op`` but the pools is ``CONV2D``; a matmul is the 1x1 conv of a
    ``K x 1 x N`` image; a pool is ``MAXPOOL`` / ``AVGPOOL`` of the node's ``rows`` channels
    ``row_base, row_base + tiles, ...`` (interleaved over the tiles); ``exclude_pad``: an
    average pool divides each window by its real positions, docs/spec.md section 8.2).
    ``requant``: outputs go through the OutputPipeline (int8), else raw values of
    ``2**lg_esize`` bytes (a pool: its int8 results, ``lg_esize = 0``).  ``act_beats``,
    ``quant_beats``, ``lut_beats``: bus words of each multicast stream.  ``pool_uni``: a
    pool whose channel planes are whole bus words; the sequencer sends each word only to the
    tile that pools its channel, so a node's tile gets its own ``rows`` channels back to back
    (`golden.net_pool.pool_unicast`; else the image is multicast and each tile keeps it all).
    """
    return data.StructLayout({
        "op": TileOp, "fmt": 2, "k": DIM_WIDTH, "n": DIM_WIDTH,
        "geo": conv_geometry_layout(DIM_WIDTH),
        "requant": 1, "lg_esize": 2, "act_beats": 32, "quant_beats": 32, "lut_beats": 16,
        "exclude_pad": 1, "pool_uni": 1,
    })


class TileNode(wiring.Component):
    """One ring node holding a `Tile`, its `OutputPipeline` and the stream adapters.

    From the ring (``flits_in``): ``DATA`` flits are weight-image words (to ``Tile.weights``
    through an `ImageChecker`, which checks the image body's sparse metadata on the way),
    ``ACTS`` flits the input image's bus words (straight into ``Tile.image``), ``CTRL`` flits first
    ``lut_beats`` words of activation table (a word per cycle into the pipeline's shadow table, then
    a swap) and then the ``QUANT_BYTES``-byte bias/requant records of every output row of the layer
    (the node keeps rows ``[row_base, row_base + rows)``).  Every flit is consumed as soon as its
    destination takes it, so a node never blocks the ring for long.

    To the ring (``flits_out``, unicast to node 0): one ``RESULT`` flit per
    ``result_data_bytes`` of an output row segment ``Y[m, cg*cols : ...]`` (payload ``m`` |
    byte offset in the row | bytes; segments past ``n`` are not sent), then after the tile
    finished and every result left, one marker flit with ``m = DONE_MARKER``.  The hub writes
    the bytes; the marker tells it the node's results are all written (per-pair ring order).

    ``start`` (one cycle) latches ``rows``/``row_base`` and the column groups ``cg0``/``cgs``
    (``Tile``'s command: ``0``/``0`` = every group), issues the tile command and restarts the
    image checker; ``done`` is high while the node is idle.  ``error`` is the tile's error flag
    of the last layer.  ``image_done`` goes high once the layer's weight image has passed the
    checker, with ``image_code`` its `FormatErrorCode` (0 = consistent; docs/spec.md section 3),
    both held until the next ``start``.

    Parameters
    ----------
    cfg : AcceleratorConfig
    node : int
        Ring node index (``1..tiles``; node 0 is the memory hub).
    """

    def __init__(self, cfg: AcceleratorConfig, *, node: int):
        AcceleratorConfig.require(cfg, "cfg")
        if cfg.ring_payload_width < 64:
            raise ValueError(f"ring_payload_width must be at least 64 for the accelerator, "
                             f"not {cfg.ring_payload_width!r}")
        self.cfg = cfg
        self.node = node
        self.nodes = cfg.tiles + 1
        self.tile = Tile(cfg)
        self.checker = ImageChecker(cfg)
        # the activation table arrives a bus word per CTRL flit and is written a word per cycle
        self.pipe = OutputPipeline(cfg, max_channels=cfg.out_buf_depth, pwl=False,
                                   lut_write_bytes=min(cfg.axi_bytes, 64))
        self.esize_max = 4 if cfg.acc_width <= 32 else 8
        fl = flit_layout(self.nodes, cfg.ring_payload_width)
        super().__init__({
            "flits_in": In(stream.Signature(fl)),
            "flits_out": Out(stream.Signature(fl)),
            "layer": In(layer_layout()),
            "start": In(1), "rows": In(DIM_WIDTH), "row_base": In(DIM_WIDTH),
            "cg0": In(DIM_WIDTH), "cgs": In(DIM_WIDTH),
            "done": Out(1), "error": Out(1), "image_done": Out(1), "image_code": Out(8),
            "computing": Out(1), "mac_active": Out(1), "pool_active": Out(1),
            "stall": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, tile, pipe = self.cfg, self.tile, self.pipe
        cols, lanes, beat = cfg.cols, cfg.out_lanes, cfg.axi_bytes
        bpr = cols // lanes
        m.submodules.tile, m.submodules.pipe = tile, pipe
        m.submodules.checker = chk = self.checker
        # a pool layer has no weight image: nothing to check
        pool_layer = Signal()
        m.d.comb += [pool_layer.eq((self.layer.op == TileOp.MAXPOOL)
                                   | (self.layer.op == TileOp.AVGPOOL)),
                     self.image_done.eq(chk.done | pool_layer),
                     self.pool_active.eq(pool_layer & tile.computing),
                     self.image_code.eq(Mux(pool_layer, 0, chk.code))]
        m.submodules.q_gb = q_gb = ByteGearbox(in_bytes=beat, out_bytes=QUANT_BYTES)
        lay = self.layer
        rows, row_base = Signal(DIM_WIDTH), Signal(DIM_WIDTH)
        cg0, cgs = Signal(DIM_WIDTH), Signal(DIM_WIDTH)
        q_cnt, lut_cnt = Signal(32), Signal(16)
        q_idx = Signal(DIM_WIDTH + 1)
        m.d.comb += [self.computing.eq(tile.computing), self.mac_active.eq(tile.mac.valid.any())]

        # ---------------- node control ----------------
        done_flit = Signal()
        row_valid = Signal()
        rs_valid, rs_ready = Signal(), Signal()     # the result buffer's output
        inflight = Signal(range(64))
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.done.eq(1)
                with m.If(self.start):
                    m.d.sync += [rows.eq(self.rows), row_base.eq(self.row_base),
                                 cg0.eq(self.cg0), cgs.eq(self.cgs),
                                 q_cnt.eq(0), lut_cnt.eq(0), q_idx.eq(0),
                                 self.error.eq(0)]
                    m.d.comb += [q_gb.clear.eq(1),
                                 chk.start.eq(1)]
                    m.next = "CMD"
            with m.State("CMD"):
                c = tile.cmd.payload
                m.d.comb += [tile.cmd.valid.eq(1), c.op.eq(Mux(pool_layer, lay.op, TileOp.CONV2D)),
                             c.fmt.eq(lay.fmt),
                             c.act_skip.eq(1), c.m.eq(rows), c.k.eq(lay.k), c.n.eq(lay.n),
                             c.geo.eq(lay.geo), c.cg0.eq(cg0), c.cgs.eq(cgs),
                             c.exclude_pad.eq(lay.exclude_pad)]
                # a pool's channels: row_base, row_base + tiles, ... of the whole image, or
                # (`pool_uni`: only its own planes arrive) the `rows` channels it was sent
                with m.If(pool_layer & lay.pool_uni):
                    m.d.comb += [c.geo.c.eq(rows), c.c0.eq(0), c.cgap.eq(0)]
                with m.Else():
                    m.d.comb += [c.c0.eq(row_base),
                                 c.cgap.eq(Mux(pool_layer, cfg.tiles - 1, 0))]
                with m.If(tile.cmd.ready):
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(tile.error):
                    m.d.sync += self.error.eq(1)
                with m.If(~tile.busy & ~rs_valid & (inflight == 0) & ~row_valid):
                    m.next = "MARK"
            with m.State("MARK"):
                m.d.comb += done_flit.eq(1)
                with m.If(self.flits_out.ready):
                    m.next = "IDLE"

        # ---------------- flits from the ring ----------------
        fi = self.flits_in
        ftype = fi.payload.type
        word = fi.payload.payload[:8 * beat]
        is_lut = lut_cnt < lay.lut_beats
        lut_wr = Signal()                   # a table word is taken this cycle
        # weight words: ring -> 2-word FIFO -> ImageChecker (may hold a word for a cycle)
        # -> Tile.weights.  The FIFO's ready and valid are registers, so the ring's arbitration
        # and the checker's handshake-driven body checks are never in one path (that was the
        # whole accelerator's critical path on the ECP5); one cycle of latency, full rate.
        m.submodules.weight_slice = wslice = SyncFIFO(width=8 * beat, depth=2)
        wiring.connect(m, chk.o, tile.weights)
        m.d.comb += [
            wslice.w_data.eq(word),
            chk.i.valid.eq(wslice.r_rdy), chk.i.payload.eq(wslice.r_data),
            wslice.r_en.eq(chk.i.ready),
            q_gb.i.payload.data.eq(word), q_gb.i.payload.last.eq(q_cnt + 1 >= lay.quant_beats),
        ]
        with m.Switch(ftype):
            with m.Case(FlitType.DATA):
                m.d.comb += [wslice.w_en.eq(fi.valid), fi.ready.eq(wslice.w_rdy)]
            with m.Case(FlitType.ACTS):
                # the image straight into the tile, a bus word per cycle
                m.d.comb += [tile.image.valid.eq(fi.valid), fi.ready.eq(tile.image.ready)]
            with m.Case(FlitType.CTRL):
                with m.If(is_lut):
                    m.d.comb += [fi.ready.eq(1), lut_wr.eq(fi.valid)]
                    with m.If(fi.valid):
                        m.d.sync += lut_cnt.eq(lut_cnt + 1)
                with m.Else():
                    m.d.comb += [q_gb.i.valid.eq(fi.valid), fi.ready.eq(q_gb.i.ready)]
                    with m.If(fi.valid & q_gb.i.ready):
                        m.d.sync += q_cnt.eq(q_cnt + 1)
            with m.Default():
                m.d.comb += fi.ready.eq(1)      # nothing else is addressed to a tile: drop

        # activations: every layer runs as a conv2d, its input image a bus word per ACTS flit
        # (tile.acts, the matmul entries, is not used)
        m.d.comb += tile.image.payload.eq(word)
        # activation table: one bus word (beat entries) per CTRL flit straight into the shadow
        # table, then swap to it one cycle after the last write (a write in the swap cycle
        # would land in the bank that becomes the shadow)
        m.d.comb += [pipe.lut_wr.en.eq(lut_wr),
                     pipe.lut_wr.addr.eq((lut_cnt << (beat.bit_length() - 1))[:8]),
                     pipe.lut_wr.data.eq(word)]
        swap = Signal()
        m.d.sync += swap.eq(lut_wr & (lut_cnt + 1 == lay.lut_beats))
        m.d.comb += pipe.lut_swap.eq(swap)
        # requant records: keep this node's rows
        rec = q_gb.o.payload
        local = Signal(DIM_WIDTH + 1)
        m.d.comb += [q_gb.o.ready.eq(1), local.eq(q_idx - row_base),
                     pipe.params.en.eq(q_gb.o.valid & (q_idx >= row_base) & (local < rows)),
                     pipe.params.addr.eq(local), pipe.params.bias.eq(rec[0:32]),
                     pipe.params.mult.eq(rec[32:64]), pipe.params.shift.eq(rec[64:70])]
        with m.If(q_gb.o.valid):
            m.d.sync += q_idx.eq(q_idx + 1)
        # the tables are in: every record word taken and written (the gearbox empty), so a
        # result may enter the output pipeline (a LATE_TABLES layer's records arrive after the
        # bodies, while the tile computes; otherwise before the activations).  Registered: it
        # rises a cycle after the last record's write; a start clears it.
        tables_in = Signal()
        m.d.sync += tables_in.eq(~self.start & (q_cnt == lay.quant_beats) & ~q_gb.o.valid)

        # ---------------- results: tile -> buffer -> (OutputPipeline) -> row register ----------
        # the result buffer (``result_buf_depth`` entries, a SyncFIFO: a result written in
        # one cycle is readable in the next) lets the lanes run on while results cannot leave
        # (the records of a LATE_TABLES layer not in yet, the ring or the writes behind)
        res = Signal.like(tile.results.payload)
        if cfg.result_buf_depth:
            m.submodules.result_buf = rbuf = SyncFIFO(width=len(res.as_value()),
                                                      depth=cfg.result_buf_depth)
            m.d.comb += [rbuf.w_en.eq(tile.results.valid), tile.results.ready.eq(rbuf.w_rdy),
                         rbuf.w_data.eq(tile.results.payload.as_value()),
                         rs_valid.eq(rbuf.r_rdy), res.as_value().eq(rbuf.r_data),
                         rbuf.r_en.eq(rs_ready)]
        else:
            m.d.comb += [rs_valid.eq(tile.results.valid), tile.results.ready.eq(rs_ready),
                         res.eq(tile.results.payload)]
        es = self.esize_max
        row = Signal(8 * cols * es)
        row_m, row_cg = Signal(DIM_WIDTH), Signal(DIM_WIDTH)
        tags = SyncFIFO(width=2 * DIM_WIDTH, depth=16)
        m.submodules.tags = tags
        sb = Signal(range(max(2, bpr)))
        ob = Signal(range(max(2, bpr)))
        with m.If(lay.requant):
            pi = pipe.i.payload
            m.d.comb += [pipe.i.valid.eq(rs_valid & tags.w_rdy & tables_in),
                         pi.channel.eq(res.m), pi.last.eq(1)]
            for b in range(bpr):
                with m.If(sb == b):
                    for j in range(lanes):
                        m.d.comb += pi.data[j].eq(res.acc[b * lanes + j])
            with m.If(pipe.i.valid & pipe.i.ready):
                m.d.sync += sb.eq(Mux(sb == bpr - 1, 0, sb + 1))
                with m.If(sb == bpr - 1):
                    m.d.comb += [rs_ready.eq(1), tags.w_en.eq(1)]
        with m.Else():
            m.d.comb += rs_ready.eq(~row_valid)
            with m.If(rs_valid & ~row_valid):
                # (a pool's i-th channel is row_base + i * tiles: interleaved over the tiles)
                m.d.sync += [row_valid.eq(1),
                             row_m.eq(row_base + Mux(pool_layer, res.m * cfg.tiles, res.m)),
                             row_cg.eq(res.cg)]
                ext = [Signal(signed(8 * es), name=f"ext{c}") for c in range(cols)]
                m.d.comb += [e.eq(res.acc[c]) for c, e in enumerate(ext)]
                # int8 values (a pool) packed a byte per column, else es bytes per column
                m.d.sync += row.eq(Mux(lay.lg_esize == 0, Cat(*[a[:8] for a in res.acc]),
                                       Cat(*ext)))
        m.d.comb += tags.w_data.eq(Cat(res.m, res.cg))
        with m.If(tags.w_en & ~(pipe.o.valid & pipe.o.ready & (ob == bpr - 1))):
            m.d.sync += inflight.eq(inflight + 1)
        with m.Elif(~tags.w_en & pipe.o.valid & pipe.o.ready & (ob == bpr - 1)):
            m.d.sync += inflight.eq(inflight - 1)
        m.d.comb += pipe.o.ready.eq(~row_valid)
        with m.If(pipe.o.valid & pipe.o.ready):
            for b in range(bpr):
                with m.If(ob == b):
                    for j in range(lanes):
                        k = b * lanes + j
                        m.d.sync += row[8 * k:8 * k + 8].eq(pipe.o.payload.data[j])
            m.d.sync += ob.eq(Mux(ob == bpr - 1, 0, ob + 1))
            with m.If(ob == bpr - 1):
                m.d.comb += tags.r_en.eq(1)
                m.d.sync += [row_valid.eq(1), row_m.eq(row_base + tags.r_data[:DIM_WIDTH]),
                             row_cg.eq(tags.r_data[DIM_WIDTH:])]

        # ---------------- packer: row register -> RESULT flits ----------------
        dbytes = result_data_bytes(cfg)
        lg_es = Mux(lay.requant, 0, lay.lg_esize)
        j = Signal(DIM_WIDTH)
        col0 = Signal(DIM_WIDTH + 8)
        left = Signal(DIM_WIDTH + 8)
        nb = Signal(DIM_WIDTH + 8)
        m.d.comb += [col0.eq(row_cg * cols), left.eq(lay.n - col0),
                     nb.eq(Mux(left < cols, left, cols) << lg_es)]
        boff = Signal(DIM_WIDTH + 8)
        m.d.comb += boff.eq(j * dbytes)
        fo = self.flits_out
        fp = fo.payload
        # One assignment of the whole flit: Verilator does not evaluate an `always @*` block
        # with only constants (what Yosys emits for constant-only partial assignments).
        pl = Signal(cfg.ring_payload_width)
        m.d.comb += [fo.payload.as_value().eq(Cat(pl, Const(FlitType.RESULT.value, 2),
                                                  Const(0, len(fp.src)), Const(0, len(fp.dest)),
                                                  Const(0, 1), Const(0, len(fp.mask)))),
                     self.stall.eq(fo.valid & ~fo.ready)]
        with m.If(done_flit):
            m.d.comb += [fo.valid.eq(1), pl.eq(Cat(Const(DONE_MARKER, 16), Const(0, 16)))]
        with m.Elif(row_valid):
            # flit j carries bytes [j * dbytes, (j + 1) * dbytes) of the row: a chunk select
            # (a mux of whole chunks, not a barrel shifter), the row padded with zeros to whole
            # chunks
            nchunk = -(-len(row) // (8 * dbytes))
            padded = Cat(row, Const(0, nchunk * 8 * dbytes - len(row)))
            m.d.comb += [fo.valid.eq(1),
                         pl.eq(Cat(row_m, ((col0 << lg_es) + boff)[:16],
                                   padded.word_select(j[:max(1, (nchunk - 1).bit_length())],
                                                      8 * dbytes)))]
            with m.If(fo.ready):
                with m.If(boff + dbytes >= nb):
                    m.d.sync += [row_valid.eq(0), j.eq(0)]
                with m.Else():
                    m.d.sync += j.eq(j + 1)
        return m
