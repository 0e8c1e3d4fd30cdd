"""Built-in self-test for board builds: an LFSR-driven MacArray checked against the golden model.

After reset the core feeds ``cycles`` pseudo-random (weight, activation) pairs into every lane of
a :class:`hw.mac_array.MacArray` (the first pair clears the sums), waits for the pipeline, folds
all ``rows * cols`` accumulators into one XOR checksum and compares it with a constant computed
here in Python at elaboration (:func:`expected_checksum`: the same LFSR sequence, the products
summed and wrapped at ``acc_width`` by ``golden.quant.wrap``).  ``ok`` lights the pass LED.

Stimulus: a 32-bit Galois LFSR (polynomial x^32 + x^22 + x^2 + x + 1, state ``s``) steps once
per cycle; lane ``r`` gets ``w = byte(s, r mod 4) ^ (31 r mod 256)`` and column ``c`` of lane ``r``
gets ``x = byte(s, (r + c + 1) mod 4) ^ ((59 (r * cols + c) + 85) mod 256)``, read as int8.
The stimulus reaches the array's (unregistered) multiplier inputs through shared logic, so on a
large array the board's critical path is this fan-out, not the array (docs/flow.md).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

__all__ = ["SelfTestCore", "lfsr_sequence", "stimulus", "expected_checksum"]

LFSR_TAPS = 0x80200003
LFSR_SEED = 0xACE1_2468


def lfsr_sequence(n: int, seed: int = LFSR_SEED) -> list[int]:
    """The first ``n`` LFSR states (state of cycle 0 first)."""
    s, out = seed, []
    for _ in range(n):
        out.append(s)
        s = (s >> 1) ^ (LFSR_TAPS if s & 1 else 0)
    return out


def _s8(b: int) -> int:
    return b - 256 if b & 0x80 else b


def _w_const(r: int) -> int:
    return (31 * r) & 0xFF


def _x_const(r: int, c: int, cols: int) -> int:
    return (59 * (r * cols + c) + 85) & 0xFF


def stimulus(state: int, rows: int, cols: int) -> tuple[list[int], list[list[int]]]:
    """``(w[rows], x[rows][cols])`` as int8 for one LFSR state (see the module docstring)."""
    byte = [(state >> (8 * i)) & 0xFF for i in range(4)]
    w = [_s8(byte[r % 4] ^ _w_const(r)) for r in range(rows)]
    x = [[_s8(byte[(r + c + 1) % 4] ^ _x_const(r, c, cols)) for c in range(cols)]
         for r in range(rows)]
    return w, x


def expected_checksum(rows: int, cols: int, acc_width: int, cycles: int) -> int:
    """XOR of every accumulator (as an unsigned ``acc_width``-bit word) after the test."""
    from golden.quant import wrap

    acc = np.zeros((rows, cols), dtype=object)
    for s in lfsr_sequence(cycles):
        w, x = stimulus(s, rows, cols)
        acc += np.array(w, dtype=object)[:, None] * np.array(x, dtype=object)
    acc = wrap(acc, acc_width)
    chk = 0
    for v in np.asarray(acc).ravel():
        chk ^= int(v) & ((1 << acc_width) - 1)
    return chk


class SelfTestCore(wiring.Component):
    """Drive a MacArray from an LFSR for ``cycles`` cycles and check its checksum.

    Latency: ``done`` rises ``cycles + array.latency + 3`` cycles after reset and stays high.

    Parameters
    ----------
    rows, cols, acc_width, mul_pipeline : int
        MacArray parameters (``hw.mac_array.MacArray``).
    cycles : int
        Pairs per lane (>= 1).
    expected : int, optional
        Checksum to compare with (default: :func:`expected_checksum`); tests pass a wrong one
        to see the check fail.

    Members
    -------
    done : Out(1)
        The check has been made.
    ok : Out(1)
        ``done`` and the checksum matched.
    checksum : Out(acc_width)
        The folded accumulators.
    """

    def __init__(self, *, rows: int, cols: int, acc_width: int = 32, mul_pipeline: int = 2,
                 cycles: int = 1000, expected: int | None = None):
        if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 1:
            raise ValueError(f"cycles must be a positive integer, not {cycles!r}")
        self.rows, self.cols, self.acc_width = rows, cols, acc_width
        self.mul_pipeline, self.cycles = mul_pipeline, cycles
        self.expected = (expected_checksum(rows, cols, acc_width, cycles) if expected is None
                         else expected)
        super().__init__({"done": Out(1), "ok": Out(1), "checksum": Out(acc_width)})

    def elaborate(self, platform):
        from hw.mac_array import MacArray

        m = Module()
        m.submodules.array = arr = MacArray(rows=self.rows, cols=self.cols,
                                            acc_width=self.acc_width,
                                            mul_pipeline=self.mul_pipeline)
        s = Signal(32, init=LFSR_SEED)
        count = Signal(range(self.cycles + arr.latency + 4))
        running = Signal()
        m.d.comb += running.eq(count < self.cycles)
        with m.If(running):
            m.d.sync += s.eq((s >> 1) ^ (s[0].replicate(32) & LFSR_TAPS))
        byte = [s[8 * i:8 * i + 8] for i in range(4)]
        for r in range(self.rows):
            m.d.comb += arr.w[r].eq((byte[r % 4] ^ _w_const(r)).as_signed())
            for c in range(self.cols):
                m.d.comb += arr.x[r][c].eq(
                    (byte[(r + c + 1) % 4] ^ _x_const(r, c, self.cols)).as_signed())
        m.d.comb += [arr.valid.eq(running.replicate(self.rows)),
                     arr.clear.eq((count == 0).replicate(self.rows))]
        fold = Const(0, self.acc_width)
        for r in range(self.rows):
            for c in range(self.cols):
                fold = fold ^ arr.acc[r][c].as_unsigned()
        chk = Signal(self.acc_width)
        m.d.sync += chk.eq(fold)  # registered: the XOR tree is off the accumulator path
        m.d.comb += self.checksum.eq(chk)
        last = self.cycles + arr.latency + 3
        with m.If(count < last):
            m.d.sync += count.eq(count + 1)
        with m.Else():
            m.d.sync += [self.done.eq(1), self.ok.eq(chk == self.expected)]
        return m
