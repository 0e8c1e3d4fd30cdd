"""Array of ``rows x cols`` int8 processing elements, one lane per row (docs/tile.md)."""

from __future__ import annotations

from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from sparsemac.hw.tile.pe import ProcessingElement

__all__ = ["MacArray"]


class MacArray(wiring.Component):
    """``rows`` lanes of ``cols`` multiply-accumulate PEs (output stationary).

    Lane ``r`` multiplies one weight ``w[r]`` with a vector ``x[r]`` of ``cols`` activations per
    cycle and accumulates into its ``cols`` accumulators.  Lanes are independent: each has its
    own ``valid`` and ``clear`` (the zero-skipping front end feeds every lane its own effectual
    pairs, so the lanes never wait for each other).  Latency: a pair presented at cycle ``t``
    is in ``acc`` at cycle ``t + latency``; throughput one pair per lane per cycle, no stalls.

    Parameters
    ----------
    rows, cols : int
        Array shape (1..64 each).
    acc_width : int
        Accumulator width (16..64), two's-complement wrap (docs/spec.md section 1).
    mul_pipeline : int
        Register stages after each multiplier (0..3).

    Members
    -------
    w : In(ArrayLayout(signed(8), rows))
        Weight of each lane.
    x : In(ArrayLayout(ArrayLayout(signed(8), cols), rows))
        Activation vector of each lane.
    valid, clear : In(rows)
        Per lane: accumulate this pair; this pair starts a new sum.
    acc : Out(ArrayLayout(ArrayLayout(signed(acc_width), cols), rows))
        Accumulators.

    Raises
    ------
    TypeError, ValueError
        For impossible parameters.
    """

    def __init__(self, *, rows: int, cols: int, acc_width: int = 32, mul_pipeline: int = 2):
        for name, v, lo, hi in (("rows", rows, 1, 64), ("cols", cols, 1, 64),
                                ("acc_width", acc_width, 16, 64),
                                ("mul_pipeline", mul_pipeline, 0, 3)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if not lo <= v <= hi:
                raise ValueError(f"{name} must be between {lo} and {hi}, not {v!r}")
        self.rows, self.cols = rows, cols
        self.acc_width, self.mul_pipeline = acc_width, mul_pipeline
        super().__init__({
            "w": In(data.ArrayLayout(signed(8), rows)),
            "x": In(data.ArrayLayout(data.ArrayLayout(signed(8), cols), rows)),
            "valid": In(rows),
            "clear": In(rows),
            "acc": Out(data.ArrayLayout(data.ArrayLayout(signed(acc_width), cols), rows)),
        })

    @property
    def latency(self) -> int:
        """Cycles from a pair at the inputs to its effect on ``acc``."""
        return self.mul_pipeline + 1

    def elaborate(self, platform):
        m = Module()
        for r in range(self.rows):
            for c in range(self.cols):
                pe = ProcessingElement(data_width=8, acc_width=self.acc_width,
                                       mul_pipeline=self.mul_pipeline)
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [pe.w.eq(self.w[r]), pe.x.eq(self.x[r][c]),
                             pe.valid.eq(self.valid[r]), pe.clear.eq(self.clear[r]),
                             self.acc[r][c].eq(pe.acc)]
        return m
