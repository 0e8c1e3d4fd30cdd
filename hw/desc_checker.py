"""Combinational descriptor validation (docs/spec.md section 8, golden.validate_descriptor)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from golden.descriptors import DESC_MAGIC, ErrorCode

from .config import FORMATS, AcceleratorConfig
from .tile import DIM_WIDTH

__all__ = ["DescChecker", "descriptor_layout", "MAX_GEO", "nz_depth"]

#: Largest conv kernel / stride / padding / dilation the tile's 4-bit geometry fields hold.
MAX_GEO = 15


def nz_depth(cfg: AcceleratorConfig) -> int:
    """Words of the tile's activation non-zero flag buffer (``Tile.nz_depth``)."""
    return max(2, cfg.act_buf_depth // 8)


def descriptor_layout() -> data.StructLayout:
    """The 64-byte descriptor as a 512-bit little-endian struct (docs/spec.md section 8)."""
    return data.StructLayout({
        "magic": 32, "opcode": 8, "format": 8, "param_a": 8, "param_b": 8, "flags": 16,
        "reserved0": 16, "weights": 32, "acts": 32, "out": 32, "quant": 32, "lut": 32,
        "m": 32, "k": 32, "n": 32, "c": 16, "h": 16, "w": 16, "kh": 8, "kw": 8,
        "stride_h": 8, "stride_w": 8, "pad_h": 8, "pad_w": 8, "dil_h": 8, "dil_w": 8,
        "reserved1": 16, "reserved2": 32,
    })


class DescChecker(wiring.Component):
    """The error code of one descriptor, in the order of ``golden.validate_descriptor``.

    Purely combinational.  Beyond the golden rules it reports the hardware limits: shapes that
    do not fit the tile's 16-bit dimensions or 4-bit conv geometry (``BAD_SHAPE``), the
    ``ACCUMULATE`` flag (not supported: ``BAD_FLAGS``), an ``nm`` N that is not a power of
    two (``BAD_PARAM``).  ``act_fits`` tells whether the layer's activations fit the tile's
    buffers (the sequencer reports ``BAD_SHAPE`` after ``code``'s checks when not):
    ``ceil(act_bytes / cols)`` image entries and ``ceil(n / cols) * k`` im2col entries at most
    ``act_buf_depth``, ``ceil(n / cols) * ceil(k / axi_data_width)`` flag words at most
    `nz_depth` (beyond them the tile would wrap its load counters and hang).  A matmul is checked
    as itself and described to the tiles as the 1x1 conv of a ``K x 1 x N`` image
    (``oh = 1``, ``ow = n``).

    Members
    -------
    desc : In(descriptor_layout())
    window_bytes : In(64)
        ``MEM_LIMIT - MEM_BASE``.
    code : Out(8)
        ``ErrorCode`` (0 = runnable).
    oh, ow : Out(DIM_WIDTH)
        Output height / width the tiles run (conv), ``1`` / ``n`` for a matmul.
    act_bytes, out_bytes : Out(64)
        Sizes of the activation and output buffers.
    act_fits : Out(1)
        The activations fit the tile buffers (meaningful once ``code`` is 0).
    """

    def __init__(self, cfg: AcceleratorConfig):
        if not isinstance(cfg, AcceleratorConfig):
            raise TypeError(f"cfg must be an AcceleratorConfig, not {cfg!r}")
        self.cfg = cfg
        super().__init__({
            "desc": In(descriptor_layout()), "window_bytes": In(64), "code": Out(8),
            "oh": Out(DIM_WIDTH), "ow": Out(DIM_WIDTH),
            "act_bytes": Out(64), "out_bytes": Out(64), "act_fits": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, d = self.cfg, self.desc
        E = ErrorCode
        conv = d.opcode == 1
        fl = d.flags
        requant, lut = fl[0], fl[1]
        built = [f in cfg.formats for f in FORMATS]
        fmt_built = Signal()
        for code, ok in enumerate(built):
            with m.If(d.format == code):
                m.d.comb += fmt_built.eq(int(ok))
        a, b = d.param_a, d.param_b
        pow2_b = Signal()
        for v in (2, 4, 8, 16, 32):
            if v <= cfg.nm_max_m:
                with m.If(b == v):
                    m.d.comb += pow2_b.eq(1)
        params_ok = Signal()
        with m.Switch(d.format):
            with m.Case(0):
                m.d.comb += params_ok.eq((a == 0) & (b == 0))
            with m.Case(1):
                m.d.comb += params_ok.eq((a == cfg.group_size) & (b == 0))
            with m.Case(2):
                m.d.comb += params_ok.eq((a == cfg.block_size) & (b == 0))
            with m.Case(3):
                m.d.comb += params_ok.eq(pow2_b & (a >= 1) & (a <= b) & ((a & (a - 1)) == 0))
        any_conv = Signal()
        m.d.comb += any_conv.eq((d.c | d.h | d.w | d.kh | d.kw | d.stride_h | d.stride_w
                                 | d.pad_h | d.pad_w | d.dil_h | d.dil_w).any())
        flags_bad = ((fl & ~0xB).any() | d.reserved0.any() | d.reserved1.any() | d.reserved2.any()
                     | (lut & ~requant) | (lut & (not cfg.lut_enabled)) | (~conv & any_conv))

        # shapes
        dim_max = (1 << DIM_WIDTH) - 1
        mkn_ok = ((d.m >= 1) & (d.k >= 1) & (d.n >= 1) & (d.m <= dim_max) & (d.k <= dim_max)
                  & (d.n <= dim_max))
        num_h, num_w = Signal(signed(24)), Signal(signed(24))
        m.d.comb += [num_h.eq(d.h + 2 * d.pad_h - d.dil_h * (d.kh - 1) - 1),
                     num_w.eq(d.w + 2 * d.pad_w - d.dil_w * (d.kw - 1) - 1)]
        geo_ok = ((d.c >= 1) & (d.h >= 1) & (d.w >= 1) & (d.kh >= 1) & (d.kw >= 1)
                  & (d.stride_h >= 1) & (d.stride_w >= 1) & (d.dil_h >= 1) & (d.dil_w >= 1))
        geo_small = ((d.kh <= MAX_GEO) & (d.kw <= MAX_GEO) & (d.stride_h <= MAX_GEO)
                     & (d.stride_w <= MAX_GEO) & (d.pad_h <= MAX_GEO) & (d.pad_w <= MAX_GEO)
                     & (d.dil_h <= MAX_GEO) & (d.dil_w <= MAX_GEO))
        oh, ow = Signal(24), Signal(24)
        with m.If(geo_ok & (num_h >= 0) & (num_w >= 0)):
            m.d.comb += [oh.eq(num_h.as_unsigned() // d.stride_h + 1),
                         ow.eq(num_w.as_unsigned() // d.stride_w + 1)]
        conv_ok = (geo_ok & (oh >= 1) & (ow >= 1) & (d.k == d.c * d.kh * d.kw)
                   & (d.n == oh * ow) & geo_small)
        m.d.comb += [self.oh.eq(Mux(conv, oh, 1)), self.ow.eq(Mux(conv, ow, d.n))]

        # buffers
        beat = cfg.axi_bytes
        m.d.comb += [self.act_bytes.eq(Mux(conv, d.c * d.h * d.w, d.k * d.n)),
                     self.out_bytes.eq(d.m * d.n * Mux(requant, 1, 4))]

        # tile activation buffers (every layer runs as a conv: image, im2col entries, flags);
        # only meaningful once mkn_ok holds (16-bit m, k, n), which the check also needs
        cols, W = cfg.cols, cfg.axi_data_width
        k16, n16 = d.k[:DIM_WIDTH], d.n[:DIM_WIDTH]
        ncg, img_beats = Signal(DIM_WIDTH + 1), Signal(49)
        m.d.comb += [ncg.eq((n16 + cols - 1) // cols),
                     img_beats.eq((self.act_bytes[:48] + cols - 1) // cols)]
        m.d.comb += self.act_fits.eq((ncg * k16 <= cfg.act_buf_depth)
                                     & (img_beats <= cfg.act_buf_depth)
                                     & (ncg * ((k16 + W - 1) // W) <= nz_depth(cfg)))
        shape_ok = mkn_ok & (~conv | conv_ok)
        used = [(d.weights, 1, 32), (d.acts, 1, self.act_bytes), (d.out, 1, self.out_bytes),
                (d.quant, requant, d.m * 16), (d.lut, lut, 256)]
        misaligned = Signal()
        outside = Signal()
        for off, en, size in used:
            with m.If(en & (off[:max(1, (beat - 1).bit_length())] != 0 if beat > 1 else 0)):
                m.d.comb += misaligned.eq(1)
            end = Signal(66)
            m.d.comb += end.eq(off + size)
            with m.If(en & (end > self.window_bytes)):
                m.d.comb += outside.eq(1)

        with m.If(d.magic != DESC_MAGIC):
            m.d.comb += self.code.eq(E.BAD_DESC_MAGIC)
        with m.Elif(d.opcode > 1):
            m.d.comb += self.code.eq(E.BAD_OPCODE)
        with m.Elif(d.format > 3):
            m.d.comb += self.code.eq(E.BAD_FORMAT)
        with m.Elif(~fmt_built):
            m.d.comb += self.code.eq(E.FORMAT_UNSUPPORTED)
        with m.Elif(~params_ok):
            m.d.comb += self.code.eq(E.BAD_PARAM)
        with m.Elif(flags_bad):
            m.d.comb += self.code.eq(E.BAD_FLAGS)
        with m.Elif(~shape_ok):
            m.d.comb += self.code.eq(E.BAD_SHAPE)
        with m.Elif(misaligned):
            m.d.comb += self.code.eq(E.MISALIGNED)
        with m.Elif(outside):
            m.d.comb += self.code.eq(E.OUT_OF_WINDOW)
        return m
