"""The padding of an N:M weight image in hardware (docs/spec.md section 3, code 8
``BAD_PAD``).

`NmPadChecker` is a sub-block of `ImageChecker`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.tile.row_scan import RowScan, carry_run, highest, named, popcount
from sparsemac.hw.tile.section_checker import SectionChecker

__all__ = ["NmPadChecker"]


class NmPadChecker(SectionChecker):
    """Checks that the values of slots whose column is past ``K`` are 0 in an N:M image.

    Only when ``K % M != 0`` (``active``): then each row's last group has slots past ``K``,
    which are those whose index is at least ``K mod M`` (``krem``).  Section A (values)
    comes first: the trailing zero values of each row's last group are counted and kept per
    row in a small memory; in section B (indices) the indices of each row's last group at or
    past ``krem`` are counted and compared with the kept count (``bad_pad`` when more).
    Both sections are walked row by row by a `RowScan` each.

    Latency: ``bad_pad`` is set the cycle after the row end that breaks the rule.
    Throughput: one word per cycle, except that a word holding a second row end is held one
    cycle per extra row end (``stall``; it depends only on the state, never on ``word``).

    Parameters
    ----------
    cfg : AcceleratorConfig
        ``axi_data_width`` (word), ``out_buf_depth`` (rows: the count memory).

    Members
    -------
    word, go, clear : In
        As `SectionChecker`.
    values, indices : In(1)
        ``word`` lies in the value / index section and the rule applies.
    init : In(1)
        Start of a body: row 0 starts at each section's first byte.
    row_bytes : In(18)
        Bytes per row in either section (``ceil(K/M') * N``).
    rows : In(out_buf_depth.bit_length())
        ``M`` (rows of the matrix).
    group_n : In(6)
        ``N``: slots per group.
    krem : In(6)
        ``((K - 1) mod M') + 1``: slots of the last group that lie before ``K``.
    stall : Out(1)
        Hold the presented word this cycle.
    bad_pad : Out(1)
        Sticky rule flag.
    """

    @staticmethod
    def members(cfg: AcceleratorConfig) -> dict:
        return {
            "go": In(1), "values": In(1), "indices": In(1),
            "init": In(1), "row_bytes": In(18), "rows": In(cfg.out_buf_depth.bit_length()),
            "group_n": In(6), "krem": In(6),
            "stall": Out(1), "bad_pad": Out(1),
        }

    def elaborate(self, platform):
        m = Module()
        wb = self.cfg.axi_bytes
        obd = self.cfg.out_buf_depth
        rw = obd.bit_length()
        byte = self.word_bytes()
        go, init, nn = self.go, self.init, self.group_n
        scan = dict(wb=wb, rw=rw, rb=self.row_bytes, rows=self.rows, go=go, init=init,
                    offsets={"nn": (nn, 0)})
        sb = RowScan(m, "sb", active=self.indices, **scan)
        sa = RowScan(m, "sa", active=self.values, **scan)
        m.d.comb += self.stall.eq(sb.stall | sa.stall)
        # section A: trailing zero values of each row's last group
        tzmem = Memory(shape=6, depth=max(2, obd), init=[])
        m.submodules.tz_mem = tzmem
        tw = tzmem.write_port()
        tr = tzmem.read_port(transparent_for=(tw,))
        tz_run = Signal(7)
        nz = named(m, Cat(*[b != 0 for b in byte]), wb, "nm_nz")
        ta_r = sa.cut_r["nn"]
        ta_n = sa.cut_n["nn"]
        tail_r = named(m, Cat(*[sa.in_r[j] & (j >= ta_r) for j in range(wb)]), wb, "nm_tail_r")
        tail_n = named(m, Cat(*[sa.in_n[j] & (j >= ta_n) for j in range(wb)]), wb, "nm_tail_n")
        hi_r = highest(m, tail_r & nz, wb, "nm_hi_r")
        hi_n = highest(m, tail_n & nz, wb, "nm_hi_n")
        last_r = Signal(signed(21))
        m.d.comb += last_r.eq(Mux(sa.ends, sa.er - 1, wb - 1))
        tz_r, tz_n = Signal(signed(22)), Signal(signed(22))
        m.d.comb += [tz_r.eq(Mux((tail_r & nz).any(), last_r - hi_r,
                                 tz_run + popcount(tail_r, wb))),
                     tz_n.eq(Mux((tail_n & nz).any(), wb - 1 - hi_n, popcount(tail_n, wb)))]
        m.d.comb += [tw.addr.eq(sa.r), tw.data.eq(tz_r),
                     tw.en.eq(go & sa.live & sa.ends)]
        carry_run(m, tz_run, reset=init, go=go & sa.live, seg=sa, cont=tz_r, nxt=tz_n)
        # section B: indices past K of each row's last group
        past = named(m, Cat(*[byte[j] >= self.krem for j in range(wb)]), wb, "nm_past")
        cnt_run = Signal(7)
        tb_r = sb.cut_r["nn"]
        tb_n = sb.cut_n["nn"]
        btail_r = named(m, Cat(*[sb.in_r[j] & (j >= tb_r) for j in range(wb)]), wb,
                        "nm_btail_r")
        btail_n = named(m, Cat(*[sb.in_n[j] & (j >= tb_n) for j in range(wb)]), wb,
                        "nm_btail_n")
        c_r, c_n = Signal(8), Signal(8)
        m.d.comb += [c_r.eq(cnt_run + popcount(btail_r & past, wb)),
                     c_n.eq(popcount(btail_n & past, wb))]
        nm_go = Signal()
        m.d.comb += nm_go.eq(go & sb.live)
        t_idx = Signal(rw + 1)
        m.d.comb += [t_idx.eq(Mux(nm_go & sb.ends, sb.r + 1, sb.r)), tr.addr.eq(t_idx)]
        carry_run(m, cnt_run, reset=init, go=nm_go, seg=sb, cont=c_r, nxt=c_n)
        with m.If(~init & nm_go & sb.ends & (c_r > tr.data)):
            m.d.sync += self.bad_pad.eq(1)

        self.clear_flags(m, self.bad_pad)
        return m
