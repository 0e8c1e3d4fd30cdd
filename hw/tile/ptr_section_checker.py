"""The pointer section of a weight image in hardware: bitmap ``row_ptr``, block ``blk_ptr``
(docs/spec.md section 3, code 7 ``BAD_PTR``).

`PtrSectionChecker` is a sub-block of `ImageChecker`.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.tile.row_scan import clamp, log2
from sparsemac.hw.tile.section_checker import SectionChecker

__all__ = ["PtrSectionChecker"]


class PtrSectionChecker(SectionChecker):
    """Checks the u32 pointer section (section A) of a bitmap or block image and keeps it.

    Rules (``BAD_PTR``): entry 0 is 0, entries are non-decreasing, entry ``intervals`` (the
    number of stored values / blocks) is at most ``capacity``.  Entries past ``intervals``
    are not looked at.  The words of the section are written into a small memory, from
    which ``entry`` / ``next_entry`` present pointer ``p`` / ``p + 1``, ``p`` starting at 1
    (``init``) and stepping with ``consume``.

    Latency: ``bad_ptr`` is set the cycle after the transfer of the word that breaks a
    rule; ``nnz`` / ``last_row`` the cycle after the word holding them; ``entry`` follows
    ``init`` / ``consume`` by one cycle (a synchronous read, transparent for the section's
    writes).  Throughput: one word per cycle, never holds the stream.

    Parameters
    ----------
    cfg : AcceleratorConfig
        ``axi_data_width`` (word), ``out_buf_depth`` and ``block_size`` (entries kept).

    Members
    -------
    word, xfer, active, clear : In
        As `SectionChecker` (``active``: pointer section).
    offset : In(34)
        Byte offset of ``word`` in the section (``pos - sec_a``).
    intervals : In(out_buf_depth.bit_length())
        Pointer intervals: bitmap rows, block block rows.
    capacity : In(32)
        Largest allowed last entry.
    init : In(1)
        Start of a body: the next pointer presented is entry 1.
    consume : In(1)
        The body checks are done with ``entry``: present the next one.
    entry, next_entry : Out(32)
        Pointer entries ``p`` and ``p + 1`` (as far as written).
    nnz : Out(32)
        Entry ``intervals``: stored values (bitmap) or blocks (block).
    last_row : Out(32)
        Entry ``intervals - 1``: the first block of the last block row.
    bad_ptr : Out(1)
        Sticky: a rule broke since ``clear``.
    """

    @staticmethod
    def members(cfg: AcceleratorConfig) -> dict:
        return {
            "xfer": In(1), "active": In(1), "offset": In(34),
            "intervals": In(cfg.out_buf_depth.bit_length()), "capacity": In(32),
            "init": In(1), "consume": In(1),
            "entry": Out(32), "next_entry": Out(32), "nnz": Out(32), "last_row": Out(32),
            "bad_ptr": Out(1),
        }

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        W, wb = cfg.axi_data_width, cfg.axi_bytes
        lg_wb = log2(wb)
        obd, B = cfg.out_buf_depth, cfg.block_size
        rw = obd.bit_length()
        E = wb // 4                     # u32 pointers per word
        lgE = log2(E)
        word, xfer, act, aoff = self.word, self.xfer, self.active, self.offset
        bad_ptr = self.bad_ptr

        p_entries = max(obd + 1, -(-obd // B) + 1) + 2
        pd = max(2, -(-p_entries // E))
        pmem = Memory(shape=W, depth=pd, init=[])
        m.submodules.ptr_mem = pmem
        pw = pmem.write_port()
        pr1 = pmem.read_port(transparent_for=(pw,))
        pr2 = pmem.read_port(transparent_for=(pw,))
        j0 = Signal(34)
        m.d.comb += j0.eq(aoff >> 2)
        plast = Signal(32)
        vals = [word[32 * e:32 * e + 32] for e in range(E)]
        dj = clamp(m, self.intervals - j0, -2, E + 1, "ptr_dj")    # lane of entry np
        for e in range(E):
            v = vals[e]
            prev = vals[e - 1] if e else plast
            ok = act & (dj >= e)
            first = (j0 == 0) if e == 0 else Const(0)
            with m.If(xfer & ok):
                with m.If(first & (v != 0)):
                    m.d.sync += bad_ptr.eq(1)
                with m.If(~first & (v < prev)):
                    m.d.sync += bad_ptr.eq(1)
                with m.If(dj == e):
                    m.d.sync += self.nnz.eq(v)
                    with m.If(v > self.capacity):
                        m.d.sync += bad_ptr.eq(1)
                with m.If(dj == e + 1):
                    m.d.sync += self.last_row.eq(v)
        with m.If(xfer & act):
            m.d.sync += plast.eq(vals[-1])
        m.d.comb += [pw.addr.eq(aoff >> lg_wb), pw.data.eq(word),
                     pw.en.eq(xfer & act & ((aoff >> lg_wb) < pd))]
        # sequential read of entries pidx (entry) and pidx + 1 (next_entry)
        pidx = Signal(rw + 2)           # next pointer entry the body checks need
        ent1, ent2 = Signal(rw + 3), Signal(rw + 3)
        m.d.comb += [ent1.eq(Mux(self.consume, pidx + 1, pidx)), ent2.eq(ent1 + 1),
                     pr1.addr.eq(ent1 >> lgE), pr2.addr.eq(ent2 >> lgE)]
        sel1, sel2 = Signal(max(1, lgE)), Signal(max(1, lgE))
        if lgE:
            m.d.sync += [sel1.eq(ent1[:lgE]), sel2.eq(ent2[:lgE])]
        m.d.comb += [self.entry.eq(pr1.data.word_select(sel1, 32) if lgE else pr1.data),
                     self.next_entry.eq(pr2.data.word_select(sel2, 32) if lgE else pr2.data)]
        with m.If(self.init):
            m.d.sync += pidx.eq(1)
        with m.Elif(self.consume):
            m.d.sync += pidx.eq(pidx + 1)

        self.clear_flags(m, bad_ptr)
        return m
