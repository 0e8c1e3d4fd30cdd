"""The value section of a block weight image in hardware: padding (docs/spec.md section 3,
code 8 ``BAD_PAD``).

`BlockPadChecker` is a sub-block of `ImageChecker`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.tile.row_scan import log2
from sparsemac.hw.tile.section_checker import SectionChecker

__all__ = ["BlockPadChecker"]


class BlockPadChecker(SectionChecker):
    """Checks that the padding of the stored blocks (section C) of a block image is 0.

    Rule (``bad_pad``): a stored value of a block whose row is past ``M`` (blocks of the last
    block row, from ``last_row`` on, when ``M % B != 0``) or whose column is past ``K``
    (blocks in the last block column, when ``K % B != 0``) is 0.  Which blocks are in the last
    column is learnt from section B: one bit per stored block (``last_col`` of
    `BlockIndexChecker`, written with ``last_col_en``) is kept in a memory and read one word
    ahead.  Blocks at or past ``nnz`` are not looked at.

    Latency: ``bad_pad`` is set the cycle after the word that breaks the rule is taken.
    Throughput: one word per cycle, never holds the stream.

    Parameters
    ----------
    cfg : AcceleratorConfig
        ``axi_data_width`` (word), ``block_size`` (``B``), ``weight_buf_depth`` (image words:
        sizes the bit memory).

    Members
    -------
    word, xfer, active, clear : In
        As `SectionChecker` (``active``: value section).
    offset : In(34)
        Byte offset of ``word`` in the value section (``pos - sec_c``).
    last_col : In(axi_data_width // 16)
        Per ``blk_col`` lane of the presented word: the block is in the last block column.
    last_col_offset : In(34)
        Byte offset of the presented word in the ``blk_col`` section (``pos - sec_b``).
    last_col_en : In(1)
        Record ``last_col`` (a ``blk_col`` word is transferred).
    nnz : In(32)
        Stored blocks.
    last_row : In(32)
        First block of the last block row.
    row_valid, col_valid : In(max(1, log2(B)))
        ``M % B``, ``K % B``: rows / columns of a padded block that hold values.
    row_pad, col_pad : In(1)
        ``M % B != 0``, ``K % B != 0``.
    bad_pad : Out(1)
        Sticky rule flag.
    """

    @staticmethod
    def members(cfg: AcceleratorConfig) -> dict:
        lgB = log2(cfg.block_size)
        return {
            "xfer": In(1), "active": In(1), "offset": In(34),
            "last_col": In(cfg.axi_bytes // 2), "last_col_offset": In(34), "last_col_en": In(1),
            "nnz": In(32), "last_row": In(32),
            "row_valid": In(max(1, lgB)), "col_valid": In(max(1, lgB)),
            "row_pad": In(1), "col_pad": In(1),
            "bad_pad": Out(1),
        }

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        wb = cfg.axi_bytes
        lg_wb = log2(wb)
        B = cfg.block_size
        lgB = log2(B)
        BB, lgBB = B * B, 2 * lgB
        F = wb // 2
        lgF = log2(F)
        byte = self.word_bytes()
        nnz, plast_row = self.nnz, self.last_row
        rpad_on, cpad_on = self.row_pad, self.col_pad
        # one bit per stored block: its column is the last one (ceil(K/B) - 1)
        max_blocks = max(F, cfg.weight_buf_depth * wb // BB)
        cd = max(2, -(-max_blocks // F))
        cmem = Memory(shape=F, depth=cd, init=[])
        m.submodules.lastcol_mem = cmem
        cw = cmem.write_port()
        cr = cmem.read_port(transparent_for=(cw,))
        boff = self.last_col_offset
        m.d.comb += [cw.addr.eq(boff >> lg_wb), cw.data.eq(self.last_col),
                     cw.en.eq(self.last_col_en & ((boff >> lg_wb) < cd))]
        # values: read the bits of the next word's blocks one cycle ahead
        coff = self.offset
        coff_n = Signal(34)
        m.d.comb += coff_n.eq(Mux(self.xfer, coff + wb, coff))
        blk_n = Signal(34)
        m.d.comb += [blk_n.eq(coff_n >> lgBB), cr.addr.eq(blk_n >> lgF)]
        bsel = Signal(max(1, lgF))
        if lgF:
            m.d.sync += bsel.eq(blk_n[:lgF])
        cbits = Signal(F)
        m.d.comb += cbits.eq(cr.data >> bsel if lgF else cr.data)
        # rows / columns of a block at or past row_valid / col_valid (padding when applicable)
        rmask, cmask = Signal(B), Signal(B)
        m.d.comb += [rmask.eq(Const((1 << B) - 1, B) << self.row_valid),
                     cmask.eq(Const((1 << B) - 1, B) << self.col_valid)]
        bad_lanes = []
        if BB >= wb:
            blk = Signal(34)
            m.d.comb += blk.eq(coff >> lgBB)
            wo = coff[:lgBB]
            rowpad = rpad_on & (blk >= plast_row)
            colpad = cpad_on & cbits[0]
            for j in range(wb):
                # element of lane j in its block: wo (a multiple of wb) + j
                e = Cat(Const(j, lg_wb), wo[lg_wb:]) if lg_wb < lgBB else Const(j, lgBB)
                rr, cc = e[lgB:lgBB], e[:lgB]
                bad_lanes.append((blk < nnz) & (byte[j] != 0)
                                 & ((rowpad & rmask.bit_select(rr, 1))
                                    | (colpad & cmask.bit_select(cc, 1))))
        else:
            i0 = Signal(34)
            m.d.comb += i0.eq(coff >> lgBB)
            for bj in range(wb // BB):
                blk = i0 + bj
                rowpad = rpad_on & (blk >= plast_row)
                colpad = cpad_on & cbits[bj]
                for e in range(BB):
                    j = bj * BB + e
                    rr, cc = e >> lgB, e & (B - 1)
                    bad_lanes.append((blk < nnz) & (byte[j] != 0)
                                     & ((rowpad & rmask[rr]) | (colpad & cmask[cc])))
        with m.If(self.xfer & self.active & Cat(*bad_lanes).any()):
            m.d.sync += self.bad_pad.eq(1)

        self.clear_flags(m, self.bad_pad)
        return m
