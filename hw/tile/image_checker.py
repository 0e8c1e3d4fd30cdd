"""Consistency checks of a weight image's body in hardware (docs/spec.md section 3, codes 7..10).

`ImageChecker` sits on the stream of weight-image words going into a tile and reports, at the
end of the image, the code ``golden.parse_weights`` would report (`golden.format_check`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from sparsemac.golden.formats import FormatCode, FormatErrorCode
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.tile.bitmap_mask_checker import BitmapMaskChecker
from sparsemac.hw.tile.block_index_checker import BlockIndexChecker
from sparsemac.hw.tile.block_pad_checker import BlockPadChecker
from sparsemac.hw.tile.header_checker import HeaderChecker, header_layout
from sparsemac.hw.tile.nm_index_checker import NmIndexChecker
from sparsemac.hw.tile.nm_pad_checker import NmPadChecker
from sparsemac.hw.tile.ptr_section_checker import PtrSectionChecker
from sparsemac.hw.tile.row_scan import log2, named

__all__ = ["ImageChecker"]

_HDR, _SETUP1, _SETUP2, _SETUP3, _SETUP4, _SETUP5, _BODY, _DONE = range(8)


def _drive(m, block, common, **ports):
    """Drive the named input ports of a body sub-block (``common``: word and clear)."""
    for name, value in dict(common, **ports).items():
        m.d.comb += getattr(block, name).eq(value)


class ImageChecker(wiring.Component):
    """Checks the body of one weight image as it streams into a tile (golden rules 7..10).

    A pass-through on the weight stream (``i`` -> ``o``, payload unchanged): it observes every
    word, header first, of the image started by ``start`` and, once the image's ``total`` bytes
    have passed, holds ``done`` with ``code`` = the `FormatErrorCode` ``golden.parse_weights``
    reports for the image (0 when valid).  Exact checks, one pass, in section order:

    * bitmap: ``row_ptr`` (``BAD_PTR``: starts at 0, non-decreasing, ``row_ptr[M] <= total -
      sec_c``; `PtrSectionChecker`, which keeps the pointers in a small memory), mask bits at
      or past ``K`` (``BAD_PAD``) and popcount of each row against its ``row_ptr`` difference
      (``BAD_MASK_COUNT``; `BitmapMaskChecker`);
    * block: ``blk_ptr`` (``BAD_PTR``, capacity of the ``blk_col`` and value sections;
      `PtrSectionChecker`), ``blk_col < ceil(K/B)`` and strictly increasing within a block row
      (``BAD_INDEX``; `BlockIndexChecker`), stored values past ``M`` (last block row) or ``K``
      (blocks in the last block column, one bit per stored block kept from section B) are 0
      (``BAD_PAD``; `BlockPadChecker`);
    * nm: indices ``< M`` and strictly increasing within each group (``BAD_INDEX``;
      `NmIndexChecker`); values of slots whose column is past ``K`` are 0 (``BAD_PAD``: the
      trailing zero values of each row's last group are kept per row and compared with the
      number of its indices past ``K``; `NmPadChecker`);
    * dense: nothing beyond the header.

    The ImageChecker itself is the composition: the stream pass-through, the header capture
    and the position of the presented word (which section it lies in), the set-up of the
    derived values (with `HeaderChecker` for codes 1..6) and the verdict.  The body rules are
    its sub-blocks (`SectionChecker` is their common boundary), built only for the formats in
    ``cfg.formats``; each keeps its own sticky rule flags and asks for a word to be held.

    When several rules break, the code is golden's (bitmap: PTR, PAD, MASK_COUNT; block: PTR,
    INDEX, PAD; nm: INDEX, PAD).  The header is re-checked as golden does (magic, format,
    parameters, shape, ``total``, section offsets and sizes: codes 1..6; the sequencer has
    already rejected such headers), plus the hardware limits ``rows <= out_buf_depth`` and
    ``cols < 2**16`` (``BAD_SHAPE``).  Words past ``total`` are passed without looking at them.

    Latency: ``done`` rises `latency` + 1 cycles after the transfer of the image's last
    word (the sub-blocks' flags of that word are in by then).

    Throughput: one word per cycle, except

    * for `setup_cycles` cycles after the header (a body word arriving then is held);
    * a word that holds a second row end of the bitmap masks, or (nm with ``K % M != 0``) of
      the nm values or indices, is held one more cycle per extra row end;
    * a word of ``blk_col`` holding a second block-row boundary is held one more cycle per
      extra boundary (an empty block row counts as a boundary).

    So rows of at least ``axi_data_width / 8`` bytes (and block rows of at least that many
    ``blk_col`` entries) never stall.  ``o.ready`` is never waited for by ``o.valid``; the
    hold depends only on the checker's state, never on the payload.  Every wait is bounded
    (by the rows and block rows of the image), whatever the bytes.

    Parameters
    ----------
    cfg : AcceleratorConfig
        ``axi_data_width`` (word), ``group_size``, ``block_size``, ``nm_max_m``, ``formats``
        (only built formats are checked), ``out_buf_depth`` (rows per slice, pointer memory),
        ``weight_buf_depth`` (image words: sizes the block-column bit memory).

    Members
    -------
    i : In(stream.Signature(axi_data_width))
    o : Out(stream.Signature(axi_data_width))
    start : In(1)
        Pulse: forget the last image, the next word on ``i`` is a header word.
    done : Out(1)
        The image has passed and ``code`` is final (until ``start``).
    code : Out(8)
        ``FormatErrorCode`` of the image, 0 when valid (meaningful with ``done``).

    Raises
    ------
    TypeError
        ``cfg`` is not an AcceleratorConfig.
    """

    def __init__(self, cfg: AcceleratorConfig):
        self.cfg = AcceleratorConfig.require(cfg, "cfg")
        self.wb = cfg.axi_bytes
        super().__init__({
            "i": In(stream.Signature(cfg.axi_data_width)),
            "o": Out(stream.Signature(cfg.axi_data_width)),
            "start": In(1), "done": Out(1), "code": Out(8),
        })

    #: Cycles after the last header word during which a body word is held.
    setup_cycles = 5

    @property
    def latency(self) -> int:
        """Cycles from the transfer of the image's last word to the verdict being taken (``done``
        follows a cycle later): the slowest built body checker's `latency` (3 with nm,
        `NmPadChecker`; else 1)."""
        return 3 if "nm" in self.cfg.formats else 1

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        W, wb = cfg.axi_data_width, cfg.axi_bytes
        B = cfg.block_size
        lgB = log2(B)
        lgBB = 2 * lgB
        obd = cfg.out_buf_depth
        rw = obd.bit_length()           # holds 0..out_buf_depth
        has_bm, has_blk, has_nm = (f in cfg.formats for f in ("bitmap", "block", "nm"))
        C = FormatErrorCode

        # ---------------- stream: pass-through, held while `may` is low ----------------
        i, o = self.i, self.o
        word = i.payload
        may, go, xfer = Signal(), Signal(), Signal()
        m.d.comb += [o.payload.eq(word), o.valid.eq(i.valid & may), i.ready.eq(o.ready & may),
                     go.eq(i.valid & o.ready), xfer.eq(go & may)]

        # ---------------- header and position ----------------
        state = Signal(range(8), init=_HDR)
        hdr = Signal(header_layout())
        pos = Signal(34)                # byte offset of the presented word in the image
        hdr_words = 32 // wb
        h_fmt, h_a, h_b, h_rows, h_cols = hdr.format, hdr.param_a, hdr.param_b, hdr.rows, hdr.cols
        sec_a, sec_b, sec_c, total = hdr.sec_a, hdr.sec_b, hdr.sec_c, hdr.total
        # pos >= 32, sec_a, sec_b, sec_c, total: registers, each the compare of the next pos
        # (pos + wb after a transfer) so no 34-bit compare sits in front of the body checks;
        # valid from the first set-up cycle (no transfer before the body)
        bounds = {"hdr": Const(32, 6), "a": sec_a, "b": sec_b, "c": sec_c, "t": total}
        ge = {k: Signal(name=f"pos_ge_{k}") for k in bounds}
        ge_next = {}
        for k, bound in bounds.items():
            # pos + wb >= bound as pos >= bound - wb, a register (the header is complete
            # from the first set-up cycle, its bounds less wb from the second)
            less_wb = Signal(signed(35), name=f"bound_{k}_less_wb")
            m.d.sync += less_wb.eq(bound - wb)
            ge_next[k] = named(m, Mux(xfer, pos >= less_wb, pos >= bound), 1,
                               f"pos_ge_{k}_next")
            m.d.sync += ge[k].eq(ge_next[k])
        ended = Signal()
        m.d.comb += ended.eq(ge["hdr"] & ge["t"])
        # the section of the presented word: in_x = (state == _BODY) & ~ended & (the word in
        # section x), as a register `in_body` (state == _BODY) and the rest registered from
        # the next ge values (the sub-blocks' handshake-driven updates start from them)
        in_body = Signal()
        ended_next = ge_next["hdr"] & ge_next["t"]
        in_next = {"a": ~ended_next & ge_next["a"] & ~ge_next["b"],
                   "b": ~ended_next & ge_next["b"] & ~ge_next["c"],
                   "c": ~ended_next & ge_next["c"] & ~ge_next["t"]}

        def in_section(x, when, tag):
            """The presented word lies in section ``x`` of the body and ``when`` (steady in
            the body: the header's format and rules), as ``in_body`` and a register."""
            reg = Signal(name=f"in_{x}_{tag}")
            m.d.sync += reg.eq(when & in_next[x])
            return in_body & reg
        with m.If(xfer):
            m.d.sync += pos.eq(pos + wb)
            with m.If(state == _HDR):
                for k in range(hdr_words):
                    with m.If(pos == k * wb):
                        m.d.sync += hdr.as_value()[k * W:(k + 1) * W].eq(word)
                with m.If(pos == 32 - wb):
                    m.d.sync += state.eq(_SETUP1)

        # ---------------- set-up: header rules, derived values ----------------
        # the header rules (codes 1..6) and the per-row factor and its product with the rows
        # are the HeaderChecker's, started in SETUP1 (the header is complete): its nm
        # logarithms are valid from SETUP2, row_bytes from SETUP3, sec_bytes from SETUP4,
        # code and fields_ok from SETUP5 (its latency), before the first body word
        m.submodules.header_checker = hc = HeaderChecker(cfg)
        assert hc.latency < self.setup_cycles
        m.d.comb += [hc.hdr.eq(hdr), hc.start.eq(state == _SETUP1)]
        is_bm, is_blk, is_nm = Signal(), Signal(), Signal()
        M = Signal(rw)
        K = Signal(16)
        mn, nn = Signal(6), Signal(6)
        pq = Signal(17)                 # bitmap: RB - floor(K/8)
        hi = Signal(8)                  # bitmap: bits at/after K of byte floor(K/8)
        nbr, nbc = Signal(rw), Signal(17)
        krem = Signal(6)
        pad_nm = Signal()
        np_ = Signal(rw)                # pointer intervals (bitmap M, block nbr)
        cap = Signal(32)
        rvalid, cvalid = Signal(max(1, lgB)), Signal(max(1, lgB))
        rpad_on, cpad_on = Signal(), Signal()
        setup_end = Signal()            # the last set-up cycle: derived values are registered
        m.d.comb += setup_end.eq(state == _SETUP5)

        with m.If(state == _SETUP1):
            m.d.sync += [is_bm.eq(h_fmt == FormatCode.BITMAP),
                         is_blk.eq(h_fmt == FormatCode.BLOCK), is_nm.eq(h_fmt == FormatCode.NM),
                         M.eq(h_rows[:rw]), K.eq(h_cols[:16]),
                         mn.eq(h_b[:6]), nn.eq(h_a[:6]), state.eq(_SETUP2)]
        # derived values: computed in SETUP2 / SETUP3 from registered header fields and
        # registered (the body's per-word checks then start from flip-flops, not from an
        # add-and-shift chain on K; that chain was the accelerator's critical path)
        d_nbr = Signal.like(nbr)
        m.d.comb += d_nbr.eq((M + B - 1) >> lgB)
        with m.If(state == _SETUP2):
            m.d.sync += [
                hi.eq(Const(0xFF, 8) << K[:3]),
                nbr.eq(d_nbr), nbc.eq((K + B - 1) >> lgB),
                krem.eq(((K - 1) & (mn - 1)) + 1), pad_nm.eq((K & (mn - 1)) != 0),
                np_.eq(Mux(is_blk, d_nbr, M)),
                rvalid.eq(M[:max(1, lgB)]), cvalid.eq(K[:max(1, lgB)]),
                rpad_on.eq((M & (B - 1)) != 0), cpad_on.eq((K & (B - 1)) != 0),
            ]
        with m.If(state == _SETUP3):            # bitmap: row_bytes = mask bytes per row
            m.d.sync += pq.eq(hc.row_bytes - (K >> 3))
        cap_bm = Signal(33)
        cap_b1, cap_b2 = Signal(33), Signal(33)
        m.d.comb += [cap_bm.eq(total - sec_c), cap_b1.eq((sec_c - sec_b) >> 1),
                     cap_b2.eq((total - sec_c) >> lgBB)]
        with m.If(state == _SETUP2):
            m.d.sync += [cap.eq(Mux(is_blk, Mux(cap_b1 < cap_b2, cap_b1, cap_b2), cap_bm)),
                         state.eq(_SETUP3)]
        with m.If(state == _SETUP3):
            m.d.sync += state.eq(_SETUP4)
        with m.If(state == _SETUP4):           # hc.sec_bytes is valid from here
            m.d.sync += state.eq(_SETUP5)
        with m.If(state == _SETUP5):
            m.d.sync += [state.eq(_BODY), in_body.eq(1)]
        checks = Signal()               # the body rules apply (header fine, format built)
        m.d.comb += checks.eq(hc.fields_ok)

        # ---------------- body checks: one sub-block per section rule set ----------------
        # sticky rule flags: each sub-block keeps its own, cleared by `start`
        bad_ptr, bad_pad, bad_cnt, bad_idx = [], [], [], []
        stalls, consume, blocks = [], [], []
        common = dict(word=word, clear=self.start)

        if has_bm or has_blk:
            m.submodules.ptr_section = ptr = PtrSectionChecker(cfg)
            blocks.append(ptr)
            ptr_fmt = Const(int(has_bm)) & is_bm | Const(int(has_blk)) & is_blk
            _drive(m, ptr, common, xfer=xfer, active=in_section("a", ptr_fmt & checks, "ptr"),
                   offset=pos - sec_a, intervals=np_, capacity=cap, init=setup_end)
            bad_ptr.append(ptr.bad_ptr)

        if has_bm:
            m.submodules.bitmap_mask = bm = BitmapMaskChecker(cfg)
            blocks.append(bm)
            _drive(m, bm, common, go=go, active=in_section("b", checks & is_bm, "bm"),
                   init=setup_end, row_bytes=hc.row_bytes, rows=M, pad_from=pq, pad_bits=hi,
                   count=ptr.entry)
            bad_pad.append(bm.bad_pad)
            bad_cnt.append(bm.bad_cnt)
            stalls.append(bm.stall)
            consume.append(bm.consume)

        if has_blk:
            m.submodules.block_index = bi = BlockIndexChecker(cfg)
            blocks.append(bi)
            bb_act = in_section("b", checks & is_blk, "blk")
            boff = pos - sec_b
            _drive(m, bi, common, go=go, xfer=xfer, active=bb_act, offset=boff,
                   init=setup_end, block_rows=nbr, block_cols=nbc, entry=ptr.entry,
                   next_entry=ptr.next_entry, nnz=ptr.nnz)
            m.submodules.block_pad = bp = BlockPadChecker(cfg)
            blocks.append(bp)
            _drive(m, bp, common, xfer=xfer, active=in_section("c", checks & is_blk, "blk"),
                   offset=pos - sec_c, last_col=bi.last_col, last_col_offset=boff,
                   last_col_en=xfer & bb_act, nnz=ptr.nnz, last_row=ptr.last_row,
                   row_valid=rvalid, col_valid=cvalid, row_pad=rpad_on, col_pad=cpad_on)
            bad_idx.append(bi.bad_idx)
            bad_pad.append(bp.bad_pad)
            stalls.append(bi.stall)
            consume.append(bi.consume)

        if has_bm or has_blk:
            m.d.comb += ptr.consume.eq(Cat(*consume).any())

        if has_nm:
            m.submodules.nm_index = ni = NmIndexChecker(cfg)
            blocks.append(ni)
            _drive(m, ni, common, go=go, xfer=xfer, active=in_section("b", checks & is_nm, "nm"),
                   pos=pos, section=sec_b, section_bytes=hc.sec_bytes, load=state == _SETUP4,
                   group_m=mn, group_n=nn)
            m.submodules.nm_pad = npc = NmPadChecker(cfg)
            blocks.append(npc)
            _drive(m, npc, common, go=go, values=in_section("a", checks & is_nm & pad_nm, "pad"),
                   indices=in_section("b", checks & is_nm & pad_nm, "pad"), init=setup_end,
                   row_bytes=hc.row_bytes, rows=M, group_n=nn, krem=krem)
            bad_idx.append(ni.bad_idx)
            bad_pad.append(npc.bad_pad)
            stalls.append(npc.stall)

        def any_of(flags):
            return Cat(*flags).any() if flags else Const(0)

        bad_ptr, bad_pad, bad_cnt, bad_idx = map(any_of, (bad_ptr, bad_pad, bad_cnt, bad_idx))
        stall = any_of(stalls)

        # ---------------- ready, end of image, verdict ----------------
        # the verdict waits for the slowest sub-block's flags: `latency` cycles after the
        # image's last word is taken (`ended` holds from the cycle after it)
        lat = self.latency
        assert lat == max((b.latency for b in blocks), default=1)
        tail = Signal(range(lat + 1))   # cycles since the image ended
        verdict = Signal()
        m.d.comb += verdict.eq((state == _BODY) & ended & (tail == lat - 1))
        with m.If((state == _BODY) & ended):
            m.d.sync += tail.eq(tail + 1)
        with m.Switch(state):
            with m.Case(_SETUP1, _SETUP2, _SETUP3, _SETUP4, _SETUP5):
                m.d.comb += may.eq(0)
            with m.Case(_BODY):
                m.d.comb += may.eq(~stall)
            with m.Default():
                m.d.comb += may.eq(1)
        with m.If(verdict):
            m.d.sync += [state.eq(_DONE), in_body.eq(0)]
            with m.If(hc.code != 0):
                m.d.sync += self.code.eq(hc.code)
            with m.Elif(is_bm & Const(int(has_bm))):
                m.d.sync += self.code.eq(Mux(bad_ptr, C.BAD_PTR, Mux(bad_pad, C.BAD_PAD,
                                             Mux(bad_cnt, C.BAD_MASK_COUNT, 0))))
            with m.Elif(is_blk & Const(int(has_blk))):
                m.d.sync += self.code.eq(Mux(bad_ptr, C.BAD_PTR, Mux(bad_idx, C.BAD_INDEX,
                                             Mux(bad_pad, C.BAD_PAD, 0))))
            with m.Elif(is_nm & Const(int(has_nm))):
                m.d.sync += self.code.eq(Mux(bad_idx, C.BAD_INDEX, Mux(bad_pad, C.BAD_PAD, 0)))
            with m.Else():
                m.d.sync += self.code.eq(0)
        m.d.comb += self.done.eq(state == _DONE)

        with m.If(self.start):
            m.d.sync += [state.eq(_HDR), pos.eq(0), hdr.eq(0), self.code.eq(0), tail.eq(0),
                         in_body.eq(0)]
        return m
