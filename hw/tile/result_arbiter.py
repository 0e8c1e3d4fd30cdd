"""The tile's result side: one result FIFO per lane and the choice of the result that leaves
(docs/tile.md)."""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

__all__ = ["ResultArbiter"]


class ResultArbiter(wiring.Component):
    """Per-lane result FIFOs (two entries each) drained onto one stream by fixed priority.

    Lane ``r``'s results enter FIFO ``r`` (``lanes[r]``; in pool mode FIFO 0 takes ``pool``
    instead of ``lanes[0]``).  An entry written with ``zero[r]`` set (a row without effectual
    pairs: the MAC array's accumulators still hold the row before) leaves with its ``acc`` field
    0: the flag is one more FIFO bit and the zeroing sits in the output mux's last level,
    instead of an AND per accumulator bit in front of every FIFO (2,048 LUTs at 4x16). The
    result leaving on ``results`` is the head of the lowest numbered non-empty FIFO, and a
    result offered and not taken stays offered (a stream's payload is stable until ready: the
    tile node takes a row in ``cols / out_lanes`` beats, and a higher-priority lane ending
    meanwhile must not replace it).  The choice is a flip-flop found a cycle ahead from the
    FIFOs' next occupancy (cycle for cycle the same choice; the wide output mux is not behind
    the priority logic).

    Latency: a result written into an empty FIFO of the chosen lane is offered in the next
    cycle; throughput one result per cycle.  ``lanes[r].ready`` is FIFO ``r``'s ``w_rdy``:
    the tile keeps at most two results per lane in flight (its ``pending`` counters, fed by
    ``popped``), so a lane never finds its FIFO full.

    Parameters
    ----------
    lanes : int
        Lanes (the MAC array's rows, ``>= 1``).
    layout : data.StructLayout
        The result entry (``tile_result_layout(cols, acc_width)``); it has an ``acc`` field.

    Members
    -------
    lanes : In(stream.Signature(layout)).array(lanes)
        One result per row a lane ends (``valid`` for one cycle; written when ``ready``).
    zero : In(lanes)
        Bit ``r``: the result on ``lanes[r]`` leaves with ``acc`` = 0.
    pool : In(stream.Signature(layout))
        A pool's results (into FIFO 0 while ``pool_mode``; ``ready`` is FIFO 0's ``w_rdy``).
    pool_mode : In(1)
        FIFO 0 takes ``pool`` instead of ``lanes[0]``; ``popped`` stays 0.
    results : Out(stream.Signature(layout))
    popped : Out(lanes)
        Bit ``r``: lane ``r``'s result left on ``results`` this cycle (0 in pool mode).
    lane0_nonempty : Out(1)
        FIFO 0 holds a result (a pool is over once it is empty).

    Raises
    ------
    TypeError
        ``lanes`` not a positive int, or ``layout`` not a struct layout with an ``acc`` field.
    """

    def __init__(self, *, lanes: int, layout):
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
            raise TypeError(f"lanes must be a positive integer, not {lanes!r}")
        if not isinstance(layout, data.StructLayout) or "acc" not in dict(layout.members):
            raise TypeError(f"layout must be a StructLayout with an 'acc' field, not {layout!r}")
        self.n_lanes = lanes
        self.layout = layout
        super().__init__({
            "lanes": In(stream.Signature(layout)).array(lanes),
            "zero": In(lanes),
            "pool": In(stream.Signature(layout)),
            "pool_mode": In(1),
            "results": Out(stream.Signature(layout)),
            "popped": Out(lanes),
            "lane0_nonempty": Out(1),
        })

    @property
    def latency(self) -> int:
        """Cycles from a result written into an empty FIFO to it offered on ``results``."""
        return 1

    def elaborate(self, platform):
        m = Module()
        n = self.n_lanes
        fifos = []
        for r in range(n):
            fifo = SyncFIFO(width=self.layout.size + 1, depth=2)   # the entry, its zero flag
            m.submodules[f"res{r}"] = fifo
            fifos.append(fifo)
            lane = self.lanes[r]
            if r == 0:      # lane 0's FIFO also takes a pool's results
                po = self.pool
                m.d.comb += [po.ready.eq(fifo.w_rdy),
                             fifo.w_data.eq(Mux(self.pool_mode, Cat(po.payload, 0),
                                                Cat(lane.payload, self.zero[0]))),
                             fifo.w_en.eq(Mux(self.pool_mode, po.valid & fifo.w_rdy,
                                              lane.valid))]
            else:
                m.d.comb += [fifo.w_data.eq(Cat(lane.payload, self.zero[r])),
                             fifo.w_en.eq(lane.valid)]
            m.d.comb += lane.ready.eq(fifo.w_rdy)

        # the first lane whose FIFO holds an entry next; the choice held while offered, one-hot
        # (an AND-OR of the FIFOs' outputs, no decoder in front of the output mux: the FIFO
        # level update behind ``ready`` was a 64-MAC build's long path)
        chosen = Signal(n, name="res_chosen")          # none: no FIFO holds an entry
        prio = Signal(n, name="res_prio")
        for r in reversed(range(n)):
            f = fifos[r]
            with m.If(f.r_level + (f.w_en & f.w_rdy) - (f.r_en & f.r_rdy) != 0):
                m.d.comb += prio.eq(1 << r)
        head = Signal(self.layout.size + 1, name="res_head")
        m.d.comb += [self.results.valid.eq(functools.reduce(
                         operator.or_, [chosen[r] & fifos[r].r_rdy for r in range(n)])),
                     head.eq(functools.reduce(
                         operator.or_, [Mux(chosen[r], fifos[r].r_data, 0) for r in range(n)]))]
        entry = data.View(self.layout, head[:self.layout.size])
        m.d.comb += [self.results.payload.eq(entry),
                     self.results.payload.acc.eq(Mux(head[-1], 0, entry.acc))]
        m.d.sync += chosen.eq(Mux(self.results.valid & ~self.results.ready, chosen, prio))
        for r, f in enumerate(fifos):
            sel = self.results.valid & self.results.ready & chosen[r]
            m.d.comb += [f.r_en.eq(sel), self.popped[r].eq(sel & ~self.pool_mode)]
        m.d.comb += self.lane0_nonempty.eq(fifos[0].r_rdy)
        return m
