"""Descriptor validation (docs/spec.md section 8, golden.validate_descriptor)."""

from __future__ import annotations

from contextlib import contextmanager

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from sparsemac.golden.desc_rules import HW_FLAGS
from sparsemac.golden.descriptors import DESC_MAGIC, ErrorCode, Flags, Opcode
from sparsemac.golden.formats import FORMAT_CODES, FormatCode
from sparsemac.golden.tiling import nz_flag_depth
from sparsemac.hw.config import FORMATS, AcceleratorConfig
from sparsemac.hw.tile.tile import DIM_WIDTH

__all__ = ["DescChecker", "descriptor_layout", "MAX_GEO", "nz_depth"]

#: Largest conv / pool kernel, stride, padding, dilation the tile's 4-bit geometry fields hold
#: (and a global average pool's ``H`` and ``W``: the tile pools it as one ``H x W`` window).
MAX_GEO = 15


def _opcode_max(cfg: AcceleratorConfig) -> int:
    """The largest opcode ``cfg`` builds (``cfg.ops``, opcodes 0..this one); every larger one
    is BAD_OPCODE."""
    codes = {int(Opcode[name.upper()]) for name in cfg.ops}
    assert codes == set(range(max(codes) + 1)), cfg.ops
    return max(codes)


class _Jumped:
    """The ``when`` of an op that costs no cycle while ``cond`` is low: the op before it
    moves the op counter past it (the pool-only ops; a plain ``when`` costs its LOAD cycle)."""

    __slots__ = ("cond",)

    def __init__(self, cond: Value):
        self.cond = cond


def nz_depth(cfg: AcceleratorConfig) -> int:
    """Words of the tile's activation non-zero flag buffer (``Tile.nz_depth``,
    `sparsemac.golden.tiling.nz_flag_depth`)."""
    return nz_flag_depth(cfg.act_buf_depth)


def descriptor_layout() -> data.StructLayout:
    """The 64-byte descriptor as a 512-bit little-endian struct (docs/spec.md section 8)."""
    return data.StructLayout({
        "magic": 32, "opcode": 8, "format": 8, "param_a": 8, "param_b": 8, "flags": 16,
        "reserved0": 16, "weights": 32, "acts": 32, "out": 32, "quant": 32, "lut": 32,
        "m": 32, "k": 32, "n": 32, "c": 16, "h": 16, "w": 16, "kh": 8, "kw": 8,
        "stride_h": 8, "stride_w": 8, "pad_h": 8, "pad_w": 8, "dil_h": 8, "dil_w": 8,
        "col_split": 16, "reserved2": 32,
    })


class DescChecker(wiring.Component):
    """The error code of one descriptor, in the order of ``golden.validate_descriptor``.

    Sequential: a ``start`` pulse begins a check of ``desc`` (which must then hold still), and
    ``valid`` rises when ``code`` and the sizes are ready (it stays high until the next
    ``start``).  The products and quotients (output size, buffer sizes, im2col size, the conv
    arithmetic) run one after another on a shift-and-add multiplier that stops when its
    multiplier operand runs out of ones, and a 24-step restoring divider: no DSP, no
    combinational multiply or divide on any path, one 56-bit adder.  A division by a stride
    of 1, 2, 4 or 8 is a shift, written in the op's one LOAD cycle (26 cycles for any other
    stride).  A check takes ``sum(bits)`` cycles or so plus 26 per other stride (about 30-70
    for a real layer, 450 at most); it always ends, whatever the descriptor holds.

    Beyond the golden rules it reports the hardware limits
    (`sparsemac.golden.desc_rules.hardware_descriptor_code`): shapes that do not fit the tile's
    16-bit dimensions or 4-bit conv / pool geometry, a global average pool with ``H`` or ``W``
    above `MAX_GEO` (``BAD_SHAPE``), the ``ACCUMULATE`` flag (not supported, ``BAD_FLAGS``),
    an ``nm`` N that is not a power of two (``BAD_PARAM``).  A padded average pool runs with
    ``INCLUDE_PAD`` set or clear (the tile divides by ``KH*KW`` or by each window's count of
    real positions, docs/spec.md section 8.2).  ``act_fits`` tells whether the layer's
    activations fit the tile's buffers (the sequencer reports ``BAD_SHAPE`` after ``code``'s
    checks when not):
    ``ceil(act_bytes / cols)`` image entries and ``ceil(n / cols) * k`` im2col entries at most
    ``act_buf_depth``, ``ceil(n / cols) * ceil(k / axi_data_width)`` flag words at most
    `nz_depth` (beyond them the tile would wrap its load counters and hang).  A matmul is checked
    as itself and described to the tiles as the 1x1 conv of a ``K x 1 x N`` image
    (``oh = 1``, ``ow = n``).

    The pools (opcodes 2..4 of docs/spec.md section 8.2, built when ``cfg.pool_enabled``) split
    their ``C`` channels across the tiles (``pool_rows = ceil(C / tiles)`` per tile,
    `sparsemac.golden.tiling.tile_row_split`) and gather each channel's windows like a conv's
    im2col (``KK = KH*KW`` entries per output pixel; a global pool is the one window
    ``H x W``, ``oh = ow = 1``); their ``act_fits`` is
    `sparsemac.golden.tiling.pool_buffer_fits`: ``C*H*W <= act_buf_depth * cols``,
    ``ncg * pool_rows * KK <= act_buf_depth`` and ``pool_rows <= out_buf_depth``.  The
    pool-only ops cost a matmul or conv2d no cycle: their checks take exactly what they took
    before the pools.

    Members
    -------
    desc : In(descriptor_layout())
    window_bytes : In(64)
        ``MEM_LIMIT - MEM_BASE``.
    start : In(1)
        Begin a check (``desc`` and ``window_bytes`` are read from the next cycle on).
    busy, valid : Out(1)
        A check is running / the outputs below belong to the last check.
    code : Out(8)
        ``ErrorCode`` (0 = runnable).
    oh, ow : Out(DIM_WIDTH)
        Output height / width the tiles run (conv2d, maxpool2d, avgpool2d), ``1`` / ``n`` for
        a matmul, ``1`` / ``1`` for a global average pool.
    act_bytes, out_bytes : Out(64)
        Sizes of the activation and output buffers (meaningful once ``code`` is 0).
    act_fits : Out(1)
        The activations fit the tile buffers (meaningful once ``code`` is 0; with a column
        split, the im2col entries and flag words of one tile's share of the column groups).
    ncg : Out(17)
        Column groups of the layer, ``ceil(n / cols)``.
    cg_chunk : Out(17)
        Column groups per tile of a column split (``col_split / cols``), 0 without one.
    pool : Out(1)
        The opcode is a pool (maxpool2d, avgpool2d, global_avgpool) this build runs
        (meaningful once ``code`` is 0).
    pool_rows : Out(17)
        A pool's channels per tile, ``ceil(m / tiles)`` (meaningful once ``code`` is 0; 0
        when ``pool`` is low).
    """

    def __init__(self, cfg: AcceleratorConfig):
        self.cfg = AcceleratorConfig.require(cfg, "cfg")
        super().__init__({
            "desc": In(descriptor_layout()), "window_bytes": In(64), "start": In(1),
            "busy": Out(1), "valid": Out(1), "code": Out(8),
            "oh": Out(DIM_WIDTH), "ow": Out(DIM_WIDTH),
            "act_bytes": Out(64), "out_bytes": Out(64), "act_fits": Out(1),
            "ncg": Out(DIM_WIDTH + 1), "cg_chunk": Out(DIM_WIDTH + 1),
            "pool": Out(1), "pool_rows": Out(DIM_WIDTH + 1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, d = self.cfg, self.desc
        E = ErrorCode
        fl = d.flags
        requant, lut = fl[0], fl[1]
        dim_max = (1 << DIM_WIDTH) - 1
        cols, W = cfg.cols, cfg.axi_data_width
        beat = cfg.axi_bytes
        k16, n16, m16 = d.k[:DIM_WIDTH], d.n[:DIM_WIDTH], d.m[:DIM_WIDTH]
        lg_w = W.bit_length() - 1

        # ---- the descriptor's derived operands, registered every cycle: the descriptor holds
        # still from the cycle after `start` on, and the first op that reads these is op 1
        # (two cycles after `start`), so the op muxes see registers only
        conv, split = Signal(), Signal()
        mm, pool, glob, avg = Signal(), Signal(), Signal(), Signal()    # opcodes (pools: 0
        pool2d = Signal()                               # maxpool2d, avgpool2d    when not built)
        win, img = Signal(), Signal()       # runs the window geometry; reads a C x H x W image
        kh1, kw1 = Signal(8), Signal(8)                 # kh - 1, kw - 1
        act_a, act_b, act_c = Signal(16), Signal(16), Signal(16)
        ck_c, ck_h, ck_w = Signal(16), Signal(16), Signal(16)  # KK = ck_c * ck_h * ck_w
        k_words = Signal(DIM_WIDTH)                     # ceil(k / W)
        ncg_num = Signal(DIM_WIDTH + 1)
        tiles = cfg.tiles
        pool_rows = Signal(DIM_WIDTH + 1)               # ceil(m / tiles)
        rows_num = Signal(DIM_WIDTH + 1)                # m + tiles - 1
        pools = cfg.pool_enabled
        windowed = (Opcode.CONV2D,) + ((Opcode.MAXPOOL2D, Opcode.AVGPOOL2D) if pools else ())
        imaged = windowed + ((Opcode.GLOBAL_AVGPOOL,) if pools else ())
        m.d.sync += [mm.eq(d.opcode == Opcode.MATMUL), conv.eq(d.opcode == Opcode.CONV2D),
                     split.eq(d.col_split != 0),
                     win.eq(d.opcode.matches(*windowed)),
                     img.eq(d.opcode.matches(*imaged)),
                     kh1.eq(d.kh - 1), kw1.eq(d.kw - 1),
                     k_words.eq((k16 + W - 1) >> lg_w),
                     ncg_num.eq(n16 + cols - 1), rows_num.eq(m16 + tiles - 1)]
        if pools:
            m.d.sync += [pool.eq(d.opcode.matches(Opcode.MAXPOOL2D, Opcode.AVGPOOL2D,
                                                  Opcode.GLOBAL_AVGPOOL)),
                         pool2d.eq(d.opcode.matches(Opcode.MAXPOOL2D, Opcode.AVGPOOL2D)),
                         avg.eq(d.opcode == Opcode.AVGPOOL2D),
                         glob.eq(d.opcode == Opcode.GLOBAL_AVGPOOL)]
        # the input's bytes: a conv's C * H * W, a matmul's K * N; a pool's H * W first (its
        # plane, `act_part`: whole bus words -> sent plane by plane, each tile holds only its
        # own `pool_rows` planes), then * C
        m.d.sync += [act_a.eq(Mux(pool, d.h, Mux(img, d.c, k16))),
                     act_b.eq(Mux(pool, d.w, Mux(img, d.h, n16))),
                     act_c.eq(Mux(pool, d.c, Mux(img, d.w, 1))),
                     ck_c.eq(Mux(pool, 1, d.c)), ck_h.eq(Mux(glob, d.h, d.kh)),
                     ck_w.eq(Mux(glob, d.w, d.kw))]
        if tiles & (tiles - 1) == 0:
            m.d.sync += pool_rows.eq(rows_num >> (tiles.bit_length() - 1))

        # ---- the serial arithmetic: results kept in named registers -------------------------
        PW = 56                                     # product width (32 x 24 bits)
        window = Signal(64)
        p_dh, p_dw = Signal(16), Signal(16)         # dil * (k - 1)
        num_h, num_w = Signal(signed(24)), Signal(signed(24))
        q_h, q_w = Signal(24), Signal(24)           # num // stride
        oh, ow = Signal(24), Signal(24)
        ckh, ckk = Signal(PW), Signal(PW)           # c * kh, c * kh * kw
        ohow = Signal(PW)                           # oh * ow
        act_part, act_bytes = Signal(PW), Signal(PW)
        mn = Signal(PW)                             # m * n
        ncg = Signal(DIM_WIDTH + 1)                 # ceil(n / cols)
        chunk = Signal(DIM_WIDTH + 1)               # column split: col_split / cols
        chunk_cols, span = Signal(PW), Signal(PW)   # chunk * cols, chunk * tiles
        grp = Signal(DIM_WIDTH + 1)                 # column groups of the largest tile share
        im2col, flagw = Signal(PW), Signal(PW)      # grp * k, grp * ceil(k / W)
        pool_ent = Signal(PW)                       # im2col * pool_rows (a pool's entries)
        pool_img = Signal(PW)                       # H * W * pool_rows (a tile's own planes)
        geo_ok, pos = Signal(), Signal()

        # ops run in order: ("mul", a, b, dst[, when]) | ("div", numerator, denominator,
        # dst[, when]) | ("set", [assignments]); the multiplier loops over b's bits (keep b
        # small); an op whose `when` is false (conv-only arithmetic of a matmul) is skipped in
        # its LOAD cycle, one whose `when` is `_Jumped` and false costs no cycle at all
        ops = [
            ("set", [window.eq(self.window_bytes),
                     geo_ok.eq((d.c >= 1) & (d.h >= 1) & (d.w >= 1) & (d.kh >= 1) & (d.kw >= 1)
                               & (d.stride_h >= 1) & (d.stride_w >= 1) & (d.dil_h >= 1)
                               & (d.dil_w >= 1))]),
            ("mul", d.dil_h, kh1, p_dh, win),
            ("mul", d.dil_w, kw1, p_dw, win),
            ("set", [num_h.eq(d.h + 2 * d.pad_h - p_dh - 1),
                     num_w.eq(d.w + 2 * d.pad_w - p_dw - 1)]),
            ("set", [pos.eq(geo_ok & (num_h >= 0) & (num_w >= 0))]),
            ("div", num_h.as_unsigned(), d.stride_h, q_h, win),
            ("div", num_w.as_unsigned(), d.stride_w, q_w, win),
            ("set", [oh.eq(Mux(pos, q_h + 1, 0)), ow.eq(Mux(pos, q_w + 1, 0))]),
            ("mul", ck_c, ck_h, ckh, img),           # conv c*kh*kw; pool kh*kw; global h*w
            ("mul", ckh[:32], ck_w, ckk, img),
            ("mul", oh, ow, ohow, win),
            ("mul", act_a, act_b, act_part),
            ("mul", act_part[:32], act_c, act_bytes),
            ("mul", m16, n16, mn),
        ]
        if cols & (cols - 1) == 0:
            ops.append(("set", [ncg.eq(ncg_num >> (cols.bit_length() - 1))]))
        else:
            ops.append(("div", ncg_num, cols, ncg))
        # column split (section 8.1): col_split / cols groups per tile, a multiple of cols,
        # and the tiles cover every group
        if cols & (cols - 1) == 0:
            ops.append(("set", [chunk.eq(d.col_split >> (cols.bit_length() - 1))]))
        else:
            ops.append(("div", d.col_split, cols, chunk, split))
        ops += [
            ("mul", chunk, cols, chunk_cols, split),
            ("mul", chunk, cfg.tiles, span, split),
            ("set", [grp.eq(Mux(split & (chunk < ncg), chunk, ncg))]),
            ("mul", k16, grp, im2col),
        ]
        if pools and tiles & (tiles - 1):   # else `pool_rows` is registered (a shift)
            ops.append(("div", rows_num, tiles, pool_rows, _Jumped(pool)))
        if pools:
            ops.append(("mul", im2col, pool_rows, pool_ent, _Jumped(pool)))  # ncg*rows*KK
            ops.append(("mul", act_part[:32], pool_rows, pool_img, _Jumped(pool)))
        ops.append(("mul", k_words, grp, flagw, ~pool))

        # multiplier: macc += ma while mb has ones (ma shifts left, mb right)
        ma, mb, macc = Signal(PW), Signal(24), Signal(PW)
        # divider: restoring, 24 steps, quotient bits shift into dn from the bottom
        DW = 24
        dn, dd, rem, dcnt = Signal(DW), Signal(8), Signal(9), Signal(range(DW + 1))
        pc = Signal(range(len(ops) + 1))

        # ---- the rules (from the registers above and the descriptor) -----------------------
        fmt_built = Signal()
        for name in FORMATS:
            with m.If(d.format == FORMAT_CODES[name]):
                m.d.comb += fmt_built.eq(int(name in cfg.formats))
        a, b = d.param_a, d.param_b
        pow2_b = Signal()
        for v in (2, 4, 8, 16, 32):
            if v <= cfg.nm_max_m:
                with m.If(b == v):
                    m.d.comb += pow2_b.eq(1)
        params_ok = Signal()
        with m.Switch(d.format):
            with m.Case(FormatCode.DENSE):
                m.d.comb += params_ok.eq((a == 0) & (b == 0))
            with m.Case(FormatCode.BITMAP):
                m.d.comb += params_ok.eq((a == cfg.group_size) & (b == 0))
            with m.Case(FormatCode.BLOCK):
                m.d.comb += params_ok.eq((a == cfg.block_size) & (b == 0))
            with m.Case(FormatCode.NM):
                m.d.comb += params_ok.eq(pow2_b & (a >= 1) & (a <= b) & ((a & (a - 1)) == 0))
        any_conv = Signal()
        m.d.comb += any_conv.eq((d.c | d.h | d.w | d.kh | d.kw | d.stride_h | d.stride_w
                                 | d.pad_h | d.pad_w | d.dil_h | d.dil_w).any())
        any_geo = Signal()
        m.d.comb += any_geo.eq((d.kh | d.kw | d.stride_h | d.stride_w | d.pad_h | d.pad_w
                                | d.dil_h | d.dil_w).any())
        include_pad = fl[Flags.INCLUDE_PAD.bit_length() - 1]
        late = fl[Flags.LATE_TABLES.bit_length() - 1]
        flags_bad = ((fl & ~HW_FLAGS).any() | (include_pad & ~avg)
                     | d.reserved0.any() | d.reserved2.any()
                     | ((lut | late) & ~requant) | (lut & (not cfg.lut_enabled)) | (mm & any_conv)
                     # pools: no requantization, no table, no weights, no column split; a
                     # global pool has no window geometry (INCLUDE_PAD is avgpool2d's, with
                     # or without padding: the tile divides by KH*KW or the real count)
                     | (pool & (requant | lut | split
                                | (d.weights | d.quant | d.lut).any()))
                     | (glob & any_geo))
        # the wide compares below are registered every cycle (`mkn_ok`, `conv_ok`, `split_bad`,
        # `fits`): their operands are written at least one op before the rules op reads them
        # (the last, `flagw`, by the op before the ends)
        mkn_ok, conv_ok, split_bad, fits = (
            Signal(name=n) for n in ("mkn_ok", "conv_ok", "split_bad", "fits"))
        pool_ok, glob_ok = Signal(), Signal()
        m.d.sync += mkn_ok.eq((d.m >= 1) & (d.k >= 1) & (d.n >= 1) & (d.m <= dim_max)
                              & (d.k <= dim_max) & (d.n <= dim_max))
        geo_small = ((d.kh <= MAX_GEO) & (d.kw <= MAX_GEO) & (d.stride_h <= MAX_GEO)
                     & (d.stride_w <= MAX_GEO) & (d.pad_h <= MAX_GEO) & (d.pad_w <= MAX_GEO)
                     & (d.dil_h <= MAX_GEO) & (d.dil_w <= MAX_GEO))
        m.d.sync += conv_ok.eq(geo_ok & (oh >= 1) & (ow >= 1) & (d.k == ckk) & (d.n == ohow)
                               & geo_small)
        # pools (conv_ok with k == KH*KW): padding below the kernel, no dilation, m == C; a
        # global pool is the one H x W window (k == H*W, n == 1)
        m.d.sync += [pool_ok.eq((d.pad_h < d.kh) & (d.pad_w < d.kw) & (d.dil_h == 1)
                                & (d.dil_w == 1) & (d.m == d.c)),
                     glob_ok.eq((d.c >= 1) & (d.h >= 1) & (d.w >= 1) & (d.h <= MAX_GEO)
                                & (d.w <= MAX_GEO) & (d.k == ckk) & (d.n == 1) & (d.m == d.c))]
        shape_ok = (mkn_ok & (~conv | conv_ok) & (~pool2d | (conv_ok & pool_ok))
                    & (~glob | glob_ok))
        out_bytes = Mux(requant | pool, mn, mn << 2)        # int8 with REQUANT and for pools
        m.d.sync += split_bad.eq(split & ((chunk_cols != d.col_split) | (span < ncg)))
        # only meaningful once mkn_ok holds (16-bit m, k, n), which `code` checks first
        image_fits = act_bytes <= cfg.act_buf_depth * cols         # ceil(act / cols) <= depth
        act_fits = ((im2col <= cfg.act_buf_depth) & image_fits & (flagw <= nz_depth(cfg)))
        # a pool of planes of whole bus words: each tile holds its own planes only
        # (golden.tiling.pool_buffer_use); else the whole image
        planes = act_part[:max(1, (beat - 1).bit_length())] == 0
        pool_image_fits = Mux(planes, pool_img, act_bytes) <= cfg.act_buf_depth * cols
        pool_fits = ((pool_ent <= cfg.act_buf_depth) & pool_image_fits
                     & (pool_rows <= cfg.out_buf_depth))
        m.d.sync += fits.eq(Mux(pool, pool_fits, act_fits))
        lg_beat = max(1, (beat - 1).bit_length())
        # (pools read no weights, requant records or table: golden's buffer_sizes)
        used = [(d.weights, ~pool, 32), (d.acts, 1, act_bytes), (d.out, 1, out_bytes),
                (d.quant, requant & ~pool, m16 << 4), (d.lut, lut & ~pool, 256)]
        misaligned, outside, any_over = Signal(), Signal(), Signal()
        # buffer ends and their compares with the window, registered every cycle (the sizes
        # are written at least six ops before the ends op); the ends op registers whether any
        # used buffer ends outside the window, the rules op takes that
        ends = []
        for i, (off, en, size) in enumerate(used):
            if beat > 1:
                with m.If(en & (off[:lg_beat] != 0)):
                    m.d.comb += misaligned.eq(1)
            end, over = Signal(66, name=f"end{i}"), Signal(name=f"over{i}")
            ends.append(end.eq(off + size))
            m.d.sync += over.eq(end > window)
            with m.If(en & over):
                m.d.comb += any_over.eq(1)
        m.d.sync += ends
        ops.append(("set", [outside.eq(any_over)]))
        # the priority (golden order), from registered rule bits
        r_magic, r_opcode, r_format, r_built, r_params, r_flags = (
            Signal(name=n) for n in ("r_magic", "r_opcode", "r_format", "r_built", "r_params",
                                     "r_flags"))
        r_shape, r_misaligned, r_outside = Signal(), Signal(), Signal()
        ops += [
            ("set", [r_magic.eq(d.magic != DESC_MAGIC),
                     r_opcode.eq(d.opcode > _opcode_max(cfg)),
                     # a pool has no weight image: format 0 (dense, always built),
                     # parameters 0 (the dense rule)
                     r_format.eq(Mux(pool, d.format != FormatCode.DENSE,
                                     d.format > max(FormatCode))),
                     r_built.eq(~fmt_built),
                     r_params.eq(~params_ok),
                     r_flags.eq(flags_bad),
                     r_shape.eq(~shape_ok | split_bad),
                     r_misaligned.eq(misaligned), r_outside.eq(outside),
                     self.act_fits.eq(fits), self.act_bytes.eq(act_bytes),
                     self.out_bytes.eq(out_bytes),
                     # a matmul's ow is n; so is a global pool's (n == 1)
                     self.oh.eq(Mux(win, oh, 1)), self.ow.eq(Mux(win, ow, d.n)),
                     self.ncg.eq(ncg), self.cg_chunk.eq(Mux(split, chunk, 0)),
                     self.pool.eq(pool), self.pool_rows.eq(Mux(pool, pool_rows, 0))]),
        ]
        code = Signal(8)
        rules = [(r_magic, E.BAD_DESC_MAGIC), (r_opcode, E.BAD_OPCODE), (r_format, E.BAD_FORMAT),
                 (r_built, E.FORMAT_UNSUPPORTED), (r_params, E.BAD_PARAM),
                 (r_flags, E.BAD_FLAGS), (r_shape, E.BAD_SHAPE), (r_misaligned, E.MISALIGNED),
                 (r_outside, E.OUT_OF_WINDOW)]
        for i, (bad, err) in enumerate(rules):          # the first broken rule wins
            with (m.If if i == 0 else m.Elif)(bad):
                m.d.comb += code.eq(err)
        ops.append(("set", [self.code.eq(code)]))

        # ---- the sequencer of the ops -------------------------------------------------------
        last = len(ops) - 1

        def jumped(i):
            return len(ops[i]) > 4 and isinstance(ops[i][4], _Jumped)

        assert not jumped(0) and not jumped(last)

        def next_pc(i):
            """The op after op ``i``: ``i + 1``, past the `_Jumped` ops whose ``cond`` is low."""
            j = i + 1
            return Mux(ops[j][4].cond, j, next_pc(j)) if jumped(j) else j

        def restart():
            """``start`` in any state begins a new check (the last assignment wins)."""
            with m.If(self.start):
                m.d.sync += [pc.eq(0), self.valid.eq(0)]
                m.next = "LOAD"

        def write_result(kind, value):
            """Last step of a ``kind`` op: its result into the op's register, next op."""
            m.d.sync += pc.eq(pc + 1)
            with m.Switch(pc):
                for i, op in enumerate(ops):
                    if op[0] == kind:
                        with m.Case(i):
                            m.d.sync += [op[3].eq(value), pc.eq(next_pc(i))]
            m.next = "LOAD"

        @contextmanager
        def iterating(state, kind, done, result):
            """FSM state ``state`` of a multi-cycle ``kind`` op (the one rule for both): busy;
            once ``done``, ``result`` is written (``write_result``), else the body runs one
            step; ``start`` restarts."""
            with m.State(state):
                m.d.comb += self.busy.eq(1)
                with m.If(done):
                    write_result(kind, result)
                with m.Else():
                    yield
                restart()

        with m.FSM(name="check"):
            with m.State("IDLE"):
                restart()
            with m.State("LOAD"):
                m.d.comb += self.busy.eq(1)
                with m.Switch(pc):
                    for i, op in enumerate(ops):
                        with m.Case(i):
                            if op[0] == "set":
                                m.d.sync += op[1]
                                m.d.sync += pc.eq(next_pc(i) if i < last else i + 1)
                                if i == last:
                                    m.d.sync += self.valid.eq(1)
                                    m.next = "IDLE"
                                continue
                            if op[0] == "mul":
                                m.d.sync += [ma.eq(op[1]), mb.eq(op[2]), macc.eq(0)]
                                m.next = "MUL"
                            elif isinstance(op[2], int):    # a build constant (cols, tiles)
                                m.d.sync += [dn.eq(op[1]), dd.eq(op[2]), rem.eq(0),
                                             dcnt.eq(DW)]
                                m.next = "DIV"
                            else:
                                # a power-of-two divisor up to 8 (the usual strides 1, 2,
                                # 4, 8) is a shift, written in this LOAD cycle; any other
                                # runs the restoring division
                                sh = Signal(range(4), name=f"div_shift{i}")
                                m.d.comb += sh.eq(Mux(op[2] == 2, 1, Mux(op[2] == 4, 2,
                                                                         Mux(op[2] == 8, 3, 0))))
                                fast = Signal(name=f"div_fast{i}")
                                m.d.comb += fast.eq(op[2].matches(1, 2, 4, 8))
                                with m.If(fast):
                                    m.d.sync += [op[3].eq(op[1][:DW] >> sh),
                                                 pc.eq(next_pc(i))]
                                with m.Else():
                                    m.d.sync += [dn.eq(op[1]), dd.eq(op[2]), rem.eq(0),
                                                 dcnt.eq(DW)]
                                    m.next = "DIV"
                            if len(op) > 4:         # skipped: straight to the next op
                                when = op[4].cond if jumped(i) else op[4]
                                with m.If(~when):
                                    m.d.sync += pc.eq(next_pc(i))
                                    m.next = "LOAD"
                restart()
            with iterating("MUL", "mul", mb == 0, macc):      # shift-and-add
                with m.If(mb[0]):
                    m.d.sync += macc.eq(macc + ma)
                m.d.sync += [ma.eq(ma << 1), mb.eq(mb >> 1)]
            with iterating("DIV", "div", dcnt == 0, dn):       # restoring division
                r2 = Cat(dn[DW - 1], rem)
                with m.If(r2 >= dd):
                    m.d.sync += [rem.eq(r2 - dd), dn.eq(Cat(1, dn[:DW - 1]))]
                with m.Else():
                    m.d.sync += [rem.eq(r2), dn.eq(Cat(0, dn[:DW - 1]))]
                m.d.sync += dcnt.eq(dcnt - 1)
        return m
