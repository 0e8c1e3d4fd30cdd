"""The padding of an N:M weight image in hardware (docs/spec.md section 3, code 8
``BAD_PAD``).

`NmPadChecker` is a sub-block of `ImageChecker`.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.tile.row_scan import RowScan, carry_run, highest, named, popcount
from sparsemac.hw.tile.section_checker import SectionChecker

__all__ = ["NmPadChecker"]


def _lanes(scan, wb):
    """The lanes of a `RowScan` word without its handshake: those of the row that goes on
    (``in_r`` when ``live``) and of the next row (``in_n`` when it starts in the word)."""
    lane_r = [((scan.lp <= j) if j < wb - 1 else 1) & (scan.er > j) for j in range(wb)]
    lane_n = [scan.er <= j for j in range(wb)]
    return lane_r, lane_n


def _control(m, scan, go, init, clear):
    """A `RowScan`'s step of the presented word, registered for the next cycle: ``go`` (the
    word was taken in the scan's section, not at ``init``), ``ends``, ``stall``, ``next``
    (the next row starts in the word) and ``row``."""
    c = SimpleNamespace(go=Signal(name=f"{scan.r.name}_q_go"), ends=Signal(), stall=Signal(),
                        next=Signal(), row=Signal.like(scan.r))
    m.d.sync += [c.go.eq(go & scan.live & ~init & ~clear), c.ends.eq(scan.ends),
                 c.stall.eq(scan.stall), c.next.eq(scan.next_row), c.row.eq(scan.r)]
    return c


def _delay(m, c, clear):
    """The registered control ``c`` of `_control`, a cycle later."""
    d = SimpleNamespace(go=Signal(name=f"{c.go.name}_d"), ends=Signal(), stall=Signal(),
                        next=Signal(), row=Signal.like(c.row))
    m.d.sync += [d.go.eq(c.go & ~clear), d.ends.eq(c.ends), d.stall.eq(c.stall),
                 d.next.eq(c.next), d.row.eq(c.row)]
    return d


class NmPadChecker(SectionChecker):
    """Checks that the values of slots whose column is past ``K`` are 0 in an N:M image.

    Only when ``K % M != 0`` (``active``): then each row's last group has slots past ``K``,
    which are those whose index is at least ``K mod M`` (``krem``).  Section A (values)
    comes first: the trailing zero values of each row's last group are counted and kept per
    row in a small memory; in section B (indices) the indices of each row's last group at or
    past ``krem`` are counted and compared with the kept count (``bad_pad`` when more).
    Both sections are walked row by row by a `RowScan` each.

    Latency: `latency` (3): ``bad_pad`` is set three cycles after the row end that breaks
    the rule (the word's indices past ``krem``, then their count are registered; then the
    row's count is compared with the kept count).
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

    @property
    def latency(self) -> int:
        """Cycles from the row end that breaks the rule to ``bad_pad``: 3."""
        return 3

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
        # three steps.  Step 1 (the word's cycle) registers what the word alone says, from
        # the row scan's registers and the word, without the handshake: the lanes of the row
        # going on (``in_r`` without ``live``) and of the next row (``in_n`` without its
        # control) past the group start, those of them holding a nonzero value, and the
        # control (taken, row end, held, next row, row).  Step 2: their highest nonzero lane
        # and their count.  Step 3 carries the run and writes the row's trailing zeros
        # (counts modulo 2**8: the run keeps 7 bits, the memory 6, the low bits of the exact
        # values).  The memory is read in section B's step 2, a cycle after its step 1,
        # which comes a word after section A at the earliest; the read is transparent.
        ta_r = sa.cut_r["nn"]
        ta_n = sa.cut_n["nn"]
        lane_r, lane_n = _lanes(sa, wb)
        tail_r = named(m, Cat(*[lane_r[j] & (j >= ta_r) for j in range(wb)]), wb, "nm_tail_r")
        tail_n = named(m, Cat(*[lane_n[j] & (j >= ta_n) for j in range(wb)]), wb, "nm_tail_n")
        a_tail_r, a_tail_n, a_nzt_r, a_nzt_n = (Signal(wb, name=f"nm_a_{x}")
                                                for x in ("tail_r", "tail_n", "nzt_r", "nzt_n"))
        a_er = Signal.like(sa.er)
        m.d.sync += [a_tail_r.eq(tail_r), a_tail_n.eq(tail_n), a_nzt_r.eq(tail_r & nz),
                     a_nzt_n.eq(tail_n & nz), a_er.eq(sa.er)]
        a1 = _control(m, sa, go, init, self.clear)
        hi_r = highest(m, a_nzt_r, wb, "nm_hi_r")
        hi_n = highest(m, a_nzt_n, wb, "nm_hi_n")
        a_any_r, a_last_r, a_pop_r, a_tz_n = Signal(), Signal(8), Signal(8), Signal(8)
        # er - 1: the row's last lane in the word (er = wb when the row goes on past it)
        m.d.sync += [a_any_r.eq(a_nzt_r.any()), a_last_r.eq(a_er - 1 - hi_r),
                     a_pop_r.eq(popcount(a_tail_r, wb)),
                     a_tz_n.eq(Mux(a_nzt_n.any(), wb - 1 - hi_n, popcount(a_tail_n, wb)))]
        a = _delay(m, a1, self.clear)
        tz_r, tz_n = Signal(8), Signal(8)
        m.d.comb += [tz_r.eq(Mux(a_any_r, a_last_r, tz_run + a_pop_r)),
                     tz_n.eq(Mux(a.next, a_tz_n, 0))]
        m.d.comb += [tw.addr.eq(a.row), tw.data.eq(tz_r), tw.en.eq(a.go & a.ends)]
        carry_run(m, tz_run, reset=init, go=a.go, seg=a, cont=tz_r, nxt=tz_n)
        # section B: indices past K of each row's last group, in three steps (step 1: the
        # word's indices at or past ``krem`` in the group tails and the control; step 2:
        # their counts; step 3: the run and, at a row end, its compare with the kept count,
        # which the memory presents then: it reads the row in step 2)
        past = named(m, Cat(*[byte[j] >= self.krem for j in range(wb)]), wb, "nm_past")
        cnt_run = Signal(7)
        tb_r = sb.cut_r["nn"]
        tb_n = sb.cut_n["nn"]
        blane_r, blane_n = _lanes(sb, wb)
        btail_r = named(m, Cat(*[blane_r[j] & (j >= tb_r) for j in range(wb)]), wb,
                        "nm_btail_r")
        btail_n = named(m, Cat(*[blane_n[j] & (j >= tb_n) for j in range(wb)]), wb,
                        "nm_btail_n")
        b_past_r, b_past_n = Signal(wb), Signal(wb)
        m.d.sync += [b_past_r.eq(btail_r & past), b_past_n.eq(btail_n & past)]
        b1 = _control(m, sb, go, init, self.clear)
        b_pop_r, b_pop_n = Signal(range(wb + 1)), Signal(range(wb + 1))
        m.d.sync += [b_pop_r.eq(popcount(b_past_r, wb)), b_pop_n.eq(popcount(b_past_n, wb))]
        b = _delay(m, b1, self.clear)
        m.d.comb += tr.addr.eq(b1.row)
        c_r, c_n = Signal(8), Signal(8)
        m.d.comb += [c_r.eq(cnt_run + b_pop_r), c_n.eq(Mux(b.next, b_pop_n, 0))]
        carry_run(m, cnt_run, reset=init, go=b.go, seg=b, cont=c_r, nxt=c_n)
        with m.If(b.go & b.ends & (c_r > tr.data)):
            m.d.sync += self.bad_pad.eq(1)

        self.clear_flags(m, self.bad_pad)
        return m
