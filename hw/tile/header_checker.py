"""The intrinsic rules of a weight image header in hardware (docs/spec.md section 3, codes 1..6).

`HeaderChecker` holds the header rules once for the two places that check a header: the hub's
`Sequencer` (before it starts a tile) and the `ImageChecker` of every tile node (as the image
streams in).  `header_layout` is the 32-byte header as both capture it.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from sparsemac.golden.formats import ALIGN, HEADER_BYTES, MAGIC, FormatCode, FormatErrorCode
from sparsemac.hw.config import AcceleratorConfig

__all__ = ["HeaderChecker", "header_layout"]

#: Bits of a header ``cols`` the hardware keeps (``cols < 2**16``, the tile's dimension width).
_COLS_WIDTH = 16
_NM_MS = (2, 4, 8, 16, 32)          # golden NM_MS: allowed M of nm (up to cfg.nm_max_m)
_NM_NS = (1, 2, 4, 8, 16, 32)       # N of nm the hardware decodes (powers of two)


def header_layout() -> data.StructLayout:
    """The 32-byte weight image header (docs/spec.md section 3), little-endian field order."""
    return data.StructLayout({"magic": 32, "format": 8, "param_a": 8, "param_b": 8,
                              "reserved": 8, "rows": 32, "cols": 32, "sec_a": 32,
                              "sec_b": 32, "sec_c": 32, "total": 32})


class HeaderChecker(wiring.Component):
    """Checks a weight image header against golden's header rules and the hardware limits.

    ``code`` is the `FormatErrorCode` ``golden.parse_weights`` reports for an image with this
    header, as far as the header decides it (codes 1..6; 0 when the header passes), in golden's
    priority:

    1. ``BAD_MAGIC``: ``magic != MAGIC``;
    2. ``BAD_FORMAT``: ``format`` not one of `FormatCode`;
    3. ``BAD_PARAM``: ``reserved != 0``, or parameters other than the build's: dense ``(0, 0)``,
       bitmap ``(group_size, 0)``, block ``(block_size, 0)``, nm ``N:M`` with ``M`` a power of
       two in 2..``nm_max_m`` and ``N <= M`` a power of two (hardware limit: golden allows any
       ``G``, ``B`` and ``N``);
    4. ``BAD_SHAPE``: ``rows`` or ``cols`` is 0, or past the hardware limits ``rows <=
       out_buf_depth``, ``cols < 2**16``;
    5. ``BAD_SIZE``: ``total`` not a multiple of 32 or shorter than the header (``total`` is the
       image length, so golden's "total equals the image length" holds by construction);
    6. ``BAD_SECTION``: an offset not a multiple of 32 or outside ``[32, total]``, offsets out
       of order, an unused section not equal to ``total``, or a fixed-size section that does
       not fit before the next offset (dense ``M*K``; bitmap ``4(M+1)`` and ``M*ceil(K/G)*G/8``;
       block ``4(ceil(M/B)+1)``; nm ``M*ceil(K/M')*N`` twice).

    Latency: `latency` (4) cycles from ``start`` to ``done``, in registered steps: the field
    rules, the nm logarithms, the rounding add of the per-row factor and the pointer entries
    (step 1), golden's priority among the field rules and the per-row factor ``row_bytes``
    (its shifts; step 2), the product ``sec_bytes = rows * row_bytes`` (step
    3, the one multiplier), its compare with the offsets (step 4).  Every step is recomputed
    each cycle from the header, so the outputs hold while the header does.  Throughput: a new
    header every `latency` cycles.

    Parameters
    ----------
    cfg : AcceleratorConfig
        ``group_size``, ``block_size``, ``nm_max_m`` (the allowed parameters) and
        ``out_buf_depth`` (most rows of a slice).

    Members
    -------
    hdr : In(header_layout())
        The header; stable from ``start`` until the next ``start``.
    start : In(1)
        Pulse: check ``hdr``.
    done : Out(1)
        ``latency`` cycles after ``start`` until the next ``start``: ``code`` and
        ``fields_ok`` are final.
    code : Out(8)
        `FormatErrorCode` of the header, 0 when it passes (with ``done``).
    fields_ok : Out(1)
        Every rule but the section sizes holds (format, parameters, shape, ``total`` and
        offsets are valid), so the derived values below are exact (with ``done``).
    nm_lg_m, nm_lg_n : Out(3)
        ``log2`` of ``param_b`` (nm ``M``) and ``param_a`` (nm ``N``); valid from 1 cycle after
        ``start`` (0 for values that are not a power of two).
    row_bytes : Out(18)
        Bytes per row of the row-major section: dense ``K``, bitmap mask bytes
        ``ceil(K/G)*G/8``, nm slots ``ceil(K/M)*N``, block 0; valid from 2 cycles after
        ``start``.
    sec_bytes : Out(out_buf_depth.bit_length() + 18)
        ``rows * row_bytes``: the size of dense section A, bitmap section B, nm sections A and
        B; valid from 3 cycles after ``start``.

    Raises
    ------
    TypeError
        ``cfg`` is not an AcceleratorConfig (the build fixes ``group_size``, ``block_size``,
        ``nm_max_m`` and ``out_buf_depth``, which the rules compare with).
    """

    def __init__(self, cfg: AcceleratorConfig):
        self.cfg = AcceleratorConfig.require(cfg, "cfg")
        self._rows_width = cfg.out_buf_depth.bit_length()     # holds 0..out_buf_depth
        super().__init__({
            "hdr": In(header_layout()), "start": In(1),
            "done": Out(1), "code": Out(8), "fields_ok": Out(1),
            "nm_lg_m": Out(3), "nm_lg_n": Out(3),
            "row_bytes": Out(_COLS_WIDTH + 2),
            "sec_bytes": Out(self._rows_width + _COLS_WIDTH + 2),
        })

    @property
    def latency(self) -> int:
        """Cycles from ``start`` to ``done`` (and a final ``code``): 4."""
        return 4

    def elaborate(self, platform):
        cfg, h = self.cfg, self.hdr
        m = Module()
        C = FormatErrorCode
        G, B = cfg.group_size, cfg.block_size
        lgG, lgB = G.bit_length() - 1, B.bit_length() - 1
        rows = h.rows[:self._rows_width]
        k = h.cols[:_COLS_WIDTH]
        is_fmt = {f: h.format == f for f in FormatCode}

        # ---- step 1: one registered bit per field rule, the nm logarithms, the offsets' room
        lg_m, lg_n, m_ok, n_ok = Signal(3), Signal(3), Signal(), Signal()
        for v in _NM_MS:
            with m.If(h.param_b == v):
                m.d.comb += [lg_m.eq(v.bit_length() - 1), m_ok.eq(v <= cfg.nm_max_m)]
        for v in _NM_NS:
            with m.If(h.param_a == v):
                m.d.comb += [lg_n.eq(v.bit_length() - 1), n_ok.eq(1)]
        params_ok = Signal()
        with m.Switch(h.format):
            with m.Case(FormatCode.DENSE):
                m.d.comb += params_ok.eq((h.param_a == 0) & (h.param_b == 0))
            with m.Case(FormatCode.BITMAP):
                m.d.comb += params_ok.eq((h.param_a == G) & (h.param_b == 0))
            with m.Case(FormatCode.BLOCK):
                m.d.comb += params_ok.eq((h.param_a == B) & (h.param_b == 0))
            with m.Case(FormatCode.NM):
                m.d.comb += params_ok.eq(m_ok & n_ok & (h.param_a <= h.param_b))
        lg_align = ALIGN.bit_length() - 1
        secs = h.sec_a | h.sec_b | h.sec_c
        rules = {       # golden's order (FormatErrorCode)
            C.BAD_MAGIC: h.magic != MAGIC,
            C.BAD_FORMAT: h.format >= len(FormatCode),
            C.BAD_PARAM: (h.reserved != 0) | ~params_ok,
            C.BAD_SHAPE: ((h.rows == 0) | (h.cols == 0) | (h.rows > cfg.out_buf_depth)
                          | (h.cols >= 1 << _COLS_WIDTH)),
            C.BAD_SIZE: (h.total[:lg_align] != 0) | (h.total < HEADER_BYTES),
            C.BAD_SECTION: ((secs[:lg_align] != 0) | (h.sec_a < HEADER_BYTES)
                            | (h.sec_a > h.sec_b) | (h.sec_b > h.sec_c) | (h.sec_c > h.total)),
        }
        bad = {c: Signal(name=f"bad_{c.name.lower()}") for c in rules}
        unused_bad = Signal()       # an unused section does not equal total
        room_a, room_b = Signal(32), Signal(32)     # section sizes the offsets leave
        fmt = {f: Signal(name=f"is_{f.name.lower()}") for f in FormatCode}
        m.d.sync += [bad[c].eq(rule) for c, rule in rules.items()]
        m.d.sync += [fmt[f].eq(is_fmt[f]) for f in FormatCode]
        # the per-row factor's rounding add, so step 2 only shifts: ``K`` (dense), ``K + G - 1``
        # (bitmap), ``K + M' - 1`` (nm); and nm's one shift ``lg M' - lg N`` with the mask of
        # the low ``lg N`` bits it leaves (``ceil(K/M') * N`` = that shift of ``K + M' - 1``
        # with the mask cleared, as ``N <= M'``)
        k_up = Signal(_COLS_WIDTH + 1)
        nm_sh = Signal(3)
        nm_mask = Signal(_COLS_WIDTH + 1)
        with m.If(is_fmt[FormatCode.BITMAP]):
            m.d.sync += k_up.eq(k + G - 1)
        with m.Elif(is_fmt[FormatCode.NM]):
            m.d.sync += k_up.eq(k + h.param_b[:6] - 1)
        with m.Else():
            m.d.sync += k_up.eq(k)
        m.d.sync += [nm_sh.eq(lg_m - lg_n), nm_mask.eq(~((1 << lg_n) - 1))]
        # the pointer entries of section A: bitmap M + 1, block ceil(M/B) + 1
        ptrs = Signal(self._rows_width + 1)
        m.d.sync += ptrs.eq(Mux(is_fmt[FormatCode.BLOCK], (rows + 2 * B - 1) >> lgB, rows + 1))
        m.d.sync += [self.nm_lg_m.eq(lg_m), self.nm_lg_n.eq(lg_n),
                     unused_bad.eq((is_fmt[FormatCode.DENSE] & (h.sec_b != h.total))
                                   | ((is_fmt[FormatCode.DENSE] | is_fmt[FormatCode.NM])
                                      & (h.sec_c != h.total))),
                     room_a.eq(h.sec_b - h.sec_a), room_b.eq(h.sec_c - h.sec_b)]

        # ---- step 2: golden's priority among the field rules, the per-row factor, the small
        # fixed-size section A of bitmap (row_ptr) and block (blk_ptr)
        field_code = Signal(8)
        for c in reversed(rules):
            with m.If(bad[c]):
                m.d.comb += field_code.eq(c)
        pre_code = Signal(8)
        x = Signal.like(self.row_bytes)
        with m.If(fmt[FormatCode.DENSE]):
            m.d.comb += x.eq(k_up)
        with m.Elif(fmt[FormatCode.BITMAP]):
            m.d.comb += x.eq((k_up >> lgG) << (lgG - 3))
        with m.Elif(fmt[FormatCode.NM]):
            m.d.comb += x.eq((k_up >> nm_sh) & nm_mask)
        small_bad = Signal()        # unused sections or the pointer section A
        m.d.sync += [pre_code.eq(field_code), self.fields_ok.eq(~Cat(*bad.values()).any()),
                     self.row_bytes.eq(x),
                     small_bad.eq(unused_bad | ((fmt[FormatCode.BITMAP] | fmt[FormatCode.BLOCK])
                                                & ((ptrs << 2) > room_a)))]

        # ---- step 3: the product (one multiplier)
        m.d.sync += self.sec_bytes.eq(rows * self.row_bytes)

        # ---- step 4: the product against the offsets; the code
        prod, nm = self.sec_bytes, fmt[FormatCode.NM]
        size_bad = (small_bad | ((fmt[FormatCode.DENSE] | nm) & (prod > room_a))
                    | ((fmt[FormatCode.BITMAP] | nm) & (prod > room_b)))
        m.d.sync += self.code.eq(Mux(self.fields_ok, Mux(size_bad, C.BAD_SECTION, 0),
                                     pre_code))

        # ---- done: `latency` cycles after the last start
        pend = Signal(self.latency - 1)         # pend[i]: start was i + 1 cycles ago
        m.d.sync += pend.eq(Mux(self.start, 1, pend << 1))
        with m.If(self.start):
            m.d.sync += self.done.eq(0)
        with m.Elif(pend[-1]):
            m.d.sync += self.done.eq(1)
        return m
