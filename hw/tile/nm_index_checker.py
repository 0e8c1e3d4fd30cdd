"""The index section of an nm weight image in hardware (docs/spec.md section 3, code 10
``BAD_INDEX``).

`NmIndexChecker` is a sub-block of `ImageChecker`.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib.wiring import In, Out
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.tile.row_scan import clamp
from sparsemac.hw.tile.section_checker import SectionChecker

__all__ = ["NmIndexChecker"]


class NmIndexChecker(SectionChecker):
    """Checks the u8 indices (section B) of an N:M image as they stream past.

    Rules (``bad_idx``): every index is below ``M`` and the indices strictly increase within
    each group of ``N``.  Only the section's ``section_bytes`` bytes from ``section`` on are
    looked at (the rest of its last word is alignment).

    Latency: ``bad_idx`` is set the cycle after the word that breaks a rule is taken.  The
    bytes left in the section are loaded by ``load`` (one cycle, before the section) and
    stepped with the transfers, and so is the slot of lane 0 in its group (``pos`` steps by
    ``wb`` with each transfer).  Throughput: one word per cycle, never holds the stream.

    Parameters
    ----------
    cfg : AcceleratorConfig
        ``axi_data_width`` (word), ``out_buf_depth`` (rows: width of ``section_bytes``).

    Members
    -------
    word, go, xfer, active, clear : In
        As `SectionChecker` (``active``: index section).
    pos : In(34)
        Byte offset of ``word`` in the image.
    section : In(32)
        Byte offset of the index section (``sec_b``).
    section_bytes : In(out_buf_depth.bit_length() + 18)
        Index bytes (``M * ceil(K/M') * N``).
    load : In(1)
        Load the bytes left from ``pos``, ``section`` (both steady from the cycle before)
        and ``section_bytes``.
    group_m, group_n : In(6)
        ``M`` and ``N`` of N:M.
    bad_idx : Out(1)
        Sticky: an index out of range or out of order in its group.
    """

    @staticmethod
    def members(cfg: AcceleratorConfig) -> dict:
        return {
            "go": In(1), "xfer": In(1), "active": In(1),
            "pos": In(34), "section": In(32),
            "section_bytes": In(cfg.out_buf_depth.bit_length() + 18), "load": In(1),
            "group_m": In(6), "group_n": In(6),
            "bad_idx": Out(1),
        }

    def elaborate(self, platform):
        m = Module()
        wb = self.cfg.axi_bytes
        byte = self.word_bytes()
        go, xfer, nb_act = self.go, self.xfer, self.active
        mn, nn, bad_idx = self.group_m, self.group_n, self.bad_idx
        # (pos - sec_b) mod 64: slot of lane 0 in its group; a register loaded by `load`, then
        # stepped with pos; lane j starts a group when (noff + j) mod N == 0
        noff = Signal(6, name="nm_noff")
        with m.If(self.load):
            m.d.sync += noff.eq(self.pos[:6] - self.section[:6])
        with m.Elif(xfer):
            m.d.sync += noff.eq(noff + wb)
        ilast = Signal(8)
        # index bytes left from the presented word on (section_bytes + section - pos) and the
        # lanes below the last slot (that, clamped to [0, wb]), both registers: loaded by
        # `load`, then stepped with pos
        left = Signal(signed(43), name="nm_left")
        vlim = Signal(range(wb + 1), name="nm_vlim")
        base = Signal(signed(36), name="nm_base")   # section - pos, a cycle behind
        m.d.sync += base.eq(self.section - self.pos)
        with m.If(self.load):
            m.d.sync += left.eq(self.section_bytes + base)
        with m.Elif(xfer):
            m.d.sync += left.eq(left - wb)
        v_stay = clamp(m, left, 0, wb, "nm_vlim_stay")
        v_step = clamp(m, left - wb, 0, wb, "nm_vlim_step")
        m.d.sync += vlim.eq(Mux(xfer, v_step, v_stay))
        for j in range(wb):
            valid = nb_act & (vlim > j)
            first = ((noff + j)[:6] & (nn - 1)[:6]) == 0
            prev = byte[j - 1] if j else ilast
            with m.If(go & valid & (byte[j] >= mn)):
                m.d.sync += bad_idx.eq(1)
            with m.If(go & valid & ~first & (byte[j] <= prev)):
                m.d.sync += bad_idx.eq(1)
        with m.If(xfer & nb_act):
            m.d.sync += ilast.eq(byte[-1])

        self.clear_flags(m, bad_idx)
        return m
