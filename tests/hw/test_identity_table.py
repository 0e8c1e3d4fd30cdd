"""IdentityTable (hw/hub/identity_table.py) in amaranth.sim against golden.build_lut."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsemac.golden.lut import build_lut
from sparsemac.hw.hub.identity_table import IdentityTable


def expected_words(wb):
    """golden's identity table as little-endian ``wb``-byte words."""
    raw = build_lut("identity", 1.0, 1.0).astype(np.int8).tobytes()
    return [int.from_bytes(raw[i:i + wb], "little") for i in range(0, 256, wb)]


def run(wb, *, seed, stall, restart_after=None):
    """Start, take words with random back-pressure until ``last`` (or restart once after
    ``restart_after`` words); returns the words taken and the cycles ``valid`` was high
    after ``last`` was taken (must be none)."""
    dut = IdentityTable(word_bytes=wb)
    prng = random.Random(seed)
    got, late = [], []

    async def bench(ctx):
        restarted = restart_after is None
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(20 * 256):
            ready = int(prng.random() >= stall)
            ctx.set(dut.words.ready, ready)
            valid = ctx.get(dut.words.valid)
            assert valid, f"seed {seed}: valid dropped before the last word"
            if ready:
                got.append(ctx.get(dut.words.payload.data.as_value()))
                if ctx.get(dut.words.payload.last):
                    break
                if not restarted and len(got) == restart_after:
                    restarted = True
                    got.clear()
                    ctx.set(dut.start, 1)
                    await ctx.tick()
                    ctx.set(dut.start, 0)
                    continue
            await ctx.tick()
        await ctx.tick()
        for _ in range(5):
            late.append(ctx.get(dut.words.valid))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got, late


@pytest.mark.parametrize("wb", [1, 4, 8, 16, 32, 256])
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_words_match_golden(wb, stall, seed):
    """Every word in order, ``last`` on the final one, then ``valid`` low; with and without
    back-pressure."""
    got, late = run(wb, seed=seed, stall=stall)
    exp = expected_words(wb)
    assert got == exp, f"seed {seed}: {len(got)} words, first difference at " \
        f"{next((i for i, (g, e) in enumerate(zip(got, exp)) if g != e), None)}"
    assert late == [0] * 5, f"seed {seed}: valid after the last word: {late}"


def test_restart_begins_at_word_zero(seed):
    """A ``start`` in the middle of the table starts over at word 0."""
    got, _ = run(8, seed=seed, stall=0.3, restart_after=5)
    assert got == expected_words(8), f"seed {seed}"


def test_rejects_bad_word_bytes():
    with pytest.raises(TypeError, match=r"word_bytes must be an int, not '8'"):
        IdentityTable(word_bytes="8")
    with pytest.raises(ValueError, match=r"word_bytes must be a power of two in 1..256, not 12"):
        IdentityTable(word_bytes=12)
    with pytest.raises(ValueError, match=r"word_bytes must be a power of two in 1..256, not 512"):
        IdentityTable(word_bytes=512)
