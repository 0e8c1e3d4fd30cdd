"""The identity activation table, generated in the hub (docs/accelerator.md, step 3)."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["IdentityTable"]

_LUT_BYTES = 256


class IdentityTable(wiring.Component):
    """Streams the identity activation table, ``word_bytes`` bytes per word.

    The table a layer with ``REQUANT`` and without ``LUT`` gets: entry ``i`` (the table index
    of the int8 input ``i ^ 0x80``) holds that input, so byte ``i`` is ``i ^ 0x80``
    (``golden.build_lut("identity", 1.0, 1.0)``), little-endian in ``256 / word_bytes``
    words.  After ``start`` the words stand on ``words`` one after another, one per cycle
    while ``words.ready`` is high (``valid`` does not wait for ``ready``); ``last`` marks the
    final word, after which ``valid`` drops until the next ``start``.

    Parameters
    ----------
    word_bytes : int
        Bytes per word, a power of two in 1..256.

    Members
    -------
    start : In(1)
        Pulse: (re)start at word 0 (``valid`` from the next cycle).
    words : Out(stream.Signature(StructLayout({"data": ArrayLayout(8, word_bytes), "last": 1})))

    Raises
    ------
    TypeError
        ``word_bytes`` is not an int.
    ValueError
        ``word_bytes`` is not a power of two in 1..256.
    """

    def __init__(self, *, word_bytes: int):
        if not isinstance(word_bytes, int) or isinstance(word_bytes, bool):
            raise TypeError(f"word_bytes must be an int, not {word_bytes!r}")
        if not (1 <= word_bytes <= _LUT_BYTES and word_bytes & (word_bytes - 1) == 0):
            raise ValueError(f"word_bytes must be a power of two in 1..{_LUT_BYTES}, not "
                             f"{word_bytes!r}")
        self.word_bytes = word_bytes
        super().__init__({
            "start": In(1),
            "words": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(8, word_bytes), "last": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        wb = self.word_bytes
        n_words = _LUT_BYTES // wb
        lg_wb = (wb - 1).bit_length()
        idx = Signal(range(n_words + 1))
        running = Signal()
        w = self.words
        for j in range(wb):
            m.d.comb += w.payload.data[j].eq(((idx << lg_wb) + j) ^ 0x80)
        m.d.comb += [w.valid.eq(running), w.payload.last.eq(idx == n_words - 1)]
        with m.If(self.start):
            m.d.sync += [idx.eq(0), running.eq(1)]
        with m.Elif(w.valid & w.ready):
            m.d.sync += idx.eq(idx + 1)
            with m.If(w.payload.last):
                m.d.sync += running.eq(0)
        return m
