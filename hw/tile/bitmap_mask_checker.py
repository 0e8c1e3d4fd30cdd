"""The mask section of a bitmap weight image in hardware (docs/spec.md section 3, codes 8
``BAD_PAD`` and 9 ``BAD_MASK_COUNT``).

`BitmapMaskChecker` is a sub-block of `ImageChecker`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib.wiring import In, Out
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.tile.row_scan import RowScan, named, popcount
from sparsemac.hw.tile.section_checker import SectionChecker

__all__ = ["BitmapMaskChecker"]


class BitmapMaskChecker(SectionChecker):
    """Checks the per-row masks (section B) of a bitmap image as they stream past.

    Rules: mask bits at or past ``K`` are 0 (``bad_pad``); the popcount of each row's mask
    equals its ``row_ptr`` difference (``bad_cnt``: the running sum of the popcounts is
    compared with ``row_ptr[r + 1]``, presented on ``count`` by the pointer memory of
    `PtrSectionChecker`, at each row end, which then asks for the next pointer with
    ``consume``).

    Latency: flags are set the cycle after the transfer of the word that breaks a rule.
    Throughput: one word per cycle, except that a word holding a second row end is held one
    cycle per extra row end (``stall``, from the row scan `RowScan`; it depends only on the
    state, never on ``word``).

    Parameters
    ----------
    cfg : AcceleratorConfig
        ``axi_data_width`` (word), ``out_buf_depth`` (rows).

    Members
    -------
    word, go, active, clear : In
        As `SectionChecker` (``active``: mask section).
    init : In(1)
        Start of a body: row 0 starts at the section's first byte.
    row_bytes : In(18)
        Mask bytes per row (``ceil(K/G) * G / 8``).
    rows : In(out_buf_depth.bit_length())
        ``M``.
    pad_from : In(17)
        ``row_bytes - floor(K/8)``: bytes from the first byte holding padding to the row end.
    pad_bits : In(8)
        Bits at or past ``K`` of byte ``floor(K/8)`` of a row.
    count : In(32)
        ``row_ptr`` of the end of the current row.
    consume : Out(1)
        A row ends this cycle: ``count`` is used.
    stall : Out(1)
        Hold the presented word this cycle.
    bad_pad, bad_cnt : Out(1)
        Sticky rule flags.
    """

    @staticmethod
    def members(cfg: AcceleratorConfig) -> dict:
        return {
            "go": In(1), "active": In(1), "init": In(1),
            "row_bytes": In(18), "rows": In(cfg.out_buf_depth.bit_length()),
            "pad_from": In(17), "pad_bits": In(8), "count": In(32),
            "consume": Out(1), "stall": Out(1), "bad_pad": Out(1), "bad_cnt": Out(1),
        }

    def elaborate(self, platform):
        m = Module()
        wb = self.cfg.axi_bytes
        rw = self.cfg.out_buf_depth.bit_length()
        byte = self.word_bytes()
        hi = self.pad_bits
        sb = RowScan(m, "sb", wb=wb, rw=rw, active=self.active, rb=self.row_bytes,
                     rows=self.rows, go=self.go, init=self.init,
                     offsets={"pq": (self.pad_from, -1)})
        m.d.comb += self.stall.eq(sb.stall)
        bm_go = Signal()
        m.d.comb += bm_go.eq(self.go & sb.live)
        s_sum = Signal(40)
        pops = [named(m, popcount(b, 8), 4, f"bm_pop{j}") for j, b in enumerate(byte)]
        pc_r = sum((Mux(sb.in_r[j], pops[j], 0) for j in range(wb)), Const(0, 9))
        pc_n = sum((Mux(sb.in_n[j], pops[j], 0) for j in range(wb)), Const(0, 9))
        th_r = sb.cut_r["pq"]
        th_n = sb.cut_n["pq"]
        pad_lane = []
        for j in range(wb):
            bad_r = ((j > th_r) & (byte[j] != 0)) | ((j == th_r) & ((byte[j] & hi) != 0))
            bad_n = ((j > th_n) & (byte[j] != 0)) | ((j == th_n) & ((byte[j] & hi) != 0))
            pad_lane.append((sb.in_r[j] & bad_r) | (sb.in_n[j] & bad_n))
        with m.If(self.init):
            m.d.sync += s_sum.eq(0)
        with m.Elif(bm_go):
            m.d.sync += s_sum.eq(s_sum + pc_r + pc_n)
            with m.If(Cat(*pad_lane).any()):
                m.d.sync += self.bad_pad.eq(1)
            with m.If(sb.ends & (s_sum + pc_r != self.count)):
                m.d.sync += self.bad_cnt.eq(1)
        m.d.comb += self.consume.eq(bm_go & sb.ends)

        self.clear_flags(m, self.bad_pad, self.bad_cnt)
        return m
