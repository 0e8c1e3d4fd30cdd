"""The block-column section of a block weight image in hardware (docs/spec.md section 3,
code 10 ``BAD_INDEX``).

`BlockIndexChecker` is a sub-block of `ImageChecker`.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib.wiring import In, Out
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.tile.row_scan import clamp, log2
from sparsemac.hw.tile.section_checker import SectionChecker

__all__ = ["BlockIndexChecker"]


class BlockIndexChecker(SectionChecker):
    """Checks the u16 ``blk_col`` entries (section B) of a block image as they stream past.

    Rules (``bad_idx``): every stored block's column is below ``ceil(K/B)`` and the columns
    strictly increase within a block row.  Block rows are delimited by ``blk_ptr``, presented
    by `PtrSectionChecker` as ``entry`` / ``next_entry`` (the ends of the current and the next
    block row); ``consume`` asks for the next.  Entries at or past ``nnz`` are not looked at.
    ``last_col`` marks the lanes whose column is the last one (``ceil(K/B) - 1``), for the
    padding rule of the values (`BlockPadChecker`).

    Latency: ``bad_idx`` is set the cycle after the word that breaks a rule is taken.
    Throughput: one word per cycle, except that a word holding a second block-row boundary is
    held one cycle per extra boundary (``stall``; an empty block row counts as a boundary; it
    depends only on the state and the pointers, never on ``word``).

    Parameters
    ----------
    cfg : AcceleratorConfig
        ``axi_data_width`` (word), ``out_buf_depth`` (block rows).

    Members
    -------
    word, go, xfer, active, clear : In
        As `SectionChecker` (``active``: ``blk_col`` section).
    offset : In(34)
        Byte offset of ``word`` in the section (``pos - sec_b``).
    init : In(1)
        Start of a body: block row 0 starts at the section's first entry.
    block_rows : In(out_buf_depth.bit_length())
        ``ceil(M/B)``.
    block_cols : In(17)
        ``ceil(K/B)``.
    entry, next_entry : In(32)
        ``blk_ptr`` at the end of the current block row and of the next one.
    nnz : In(32)
        Stored blocks (the last ``blk_ptr``).
    consume : Out(1)
        A block row ends this cycle: ``entry`` is used.
    stall : Out(1)
        Hold the presented word this cycle.
    last_col : Out(axi_data_width // 16)
        Per lane: a stored block in the last block column.
    bad_idx : Out(1)
        Sticky: a block column out of range or out of order in its block row.
    """

    @staticmethod
    def members(cfg: AcceleratorConfig) -> dict:
        return {
            "go": In(1), "xfer": In(1), "active": In(1), "offset": In(34), "init": In(1),
            "block_rows": In(cfg.out_buf_depth.bit_length()), "block_cols": In(17),
            "entry": In(32), "next_entry": In(32), "nnz": In(32),
            "consume": Out(1), "stall": Out(1), "last_col": Out(cfg.axi_bytes // 2),
            "bad_idx": Out(1),
        }

    def elaborate(self, platform):
        m = Module()
        rw = self.cfg.out_buf_depth.bit_length()
        F = self.cfg.axi_bytes // 2     # u16 block columns per word
        lgF = log2(F)
        word, go, bb_act = self.word, self.go, self.active
        nbr, nbc, bad_idx = self.block_rows, self.block_cols, self.bad_idx
        br = Signal(rw + 1)
        blp = Signal(max(1, lgF))
        cj0 = Signal(33)
        m.d.comb += cj0.eq(self.offset >> 1)
        rel1, rel2 = Signal(signed(36)), Signal(signed(36))
        m.d.comb += [rel1.eq(self.entry - cj0), rel2.eq(self.next_entry - cj0)]
        has1, has2 = Signal(), Signal()
        bl1, stop = Signal(signed(36)), Signal(signed(36))
        m.d.comb += [has1.eq(bb_act & (br + 1 < nbr) & (rel1 < F)),
                     bl1.eq(Mux(rel1 < blp, blp, rel1)),
                     has2.eq(has1 & (br + 2 < nbr) & (rel2 < F)),
                     stop.eq(Mux(has2, Mux(rel2 < bl1, bl1, rel2), F))]
        m.d.comb += self.stall.eq(has2)
        cols = [word[16 * f:16 * f + 16] for f in range(F)]
        clast = Signal(16)
        nlim = clamp(m, self.nnz - cj0, 0, F, "blk_nlim")    # lanes below nnz
        bl1c = clamp(m, bl1, 0, F, "blk_bl1")
        stopc = clamp(m, stop, 0, F, "blk_stop")
        for f in range(F):
            valid = bb_act & (nlim > f)
            from_lp = (blp <= f) if f < F - 1 else Const(1)  # blp < F always
            proc = valid & from_lp & (stopc > f)
            prev = cols[f - 1] if f else clast
            brk = has1 & (bl1c == f)
            nonfirst = (cj0 != 0) if f == 0 else Const(1)
            with m.If(go & proc & (cols[f] >= nbc)):
                m.d.sync += bad_idx.eq(1)
            with m.If(go & proc & ~brk & nonfirst & (cols[f] <= prev)):
                m.d.sync += bad_idx.eq(1)
            m.d.comb += self.last_col[f].eq(valid & (cols[f] == nbc - 1))
        with m.If(self.init):
            m.d.sync += [br.eq(0), blp.eq(0)]
        with m.Elif(go & bb_act):
            with m.If(has1):
                m.d.sync += br.eq(br + 1)
                m.d.comb += self.consume.eq(1)
            m.d.sync += blp.eq(Mux(has2, stopc, 0))
        with m.If(self.xfer & bb_act):
            m.d.sync += clast.eq(cols[-1])

        self.clear_flags(m, bad_idx)
        return m
