"""SectionChecker (hw/tile/section_checker.py), the common boundary of the ImageChecker's body
checkers, and `SectionBench`, the testbench of that family (used by the six checkers' tests).

`SectionBench` streams a golden-packed image's words past a body checker as `ImageChecker`
presents them (header skipped, one word per offer, random producer gaps and consumer stalls,
the word held while the checker asks for it): the test gives the per-word inputs of the
checker (section flags, offsets, header-derived values) from the word's byte offset, the
bench drives the strobes (``go``, ``xfer``) the checker has.  Seeds are printed by the
``seed`` fixture.
"""

from __future__ import annotations

import pytest
from amaranth.hdl import Shape
from amaranth.sim import Simulator
from sparsemac.hw.tile.ptr_section_checker import PtrSectionChecker
from sparsemac.hw.tile.section_checker import SectionChecker

from tests.hw.test_image_checker import _cfg, _hdr, _words, pack, random_matrix


class SectionBench:
    """One body checker in amaranth.sim, fed the body words of images one after the other.

    ``inputs(pos, taken)`` returns the checker's inputs (other than ``word`` and the strobes)
    for the word at byte offset ``pos``, ``taken`` counting the words transferred so far;
    ``observe(ctx, pos, xfer)`` (optional) is called every cycle before the clock edge.
    ``setup`` (optional): inputs held for one cycle before the body (``init``, ``load``),
    with those of the first word (the header-derived values are steady from two cycles
    before, as in `ImageChecker`).
    """

    def __init__(self, dut, cfg, rng, *, gap=0.3, stall=0.3):
        self.dut, self.cfg, self.rng = dut, cfg, rng
        self.gap, self.stall = gap, stall
        names = set(dut.signature.members)
        self.has_go, self.has_xfer = "go" in names, "xfer" in names
        self.holds = "stall" in names
        self.cycles = self.held = 0

    def run(self, jobs):
        """``jobs``: list of (img, inputs, observe, setup, finish); ``finish(ctx)`` after the
        image (checks the flags)."""
        dut, wb = self.dut, self.cfg.axi_bytes

        async def bench(ctx):
            for img, inputs, observe, setup, finish in jobs:
                total = _hdr(img)["total"]
                ws = _words(img, wb)[32 // wb:]
                for name, value in inputs(32, 0).items():   # steady two cycles before init
                    ctx.set(getattr(dut, name), value)
                await ctx.tick()
                ctx.set(dut.clear, 1)
                await ctx.tick()
                ctx.set(dut.clear, 0)
                for name, value in dict(inputs(32, 0), **(setup or {})).items():
                    ctx.set(getattr(dut, name), value)
                await ctx.tick()
                for name in setup or {}:
                    ctx.set(getattr(dut, name), 0)
                k = 0
                while 32 + k * wb < total:
                    pos = 32 + k * wb
                    offer = self.gap == 0 or self.rng.random() >= self.gap
                    ready = self.stall == 0 or self.rng.random() >= self.stall
                    for name, value in inputs(pos, k).items():
                        ctx.set(getattr(dut, name), value)
                    ctx.set(dut.word, ws[k])
                    go = int(offer and ready)
                    if self.has_go:
                        ctx.set(dut.go, go)
                    held = go and self.holds and ctx.get(dut.stall)
                    xfer = int(go and not held)
                    if self.has_xfer:
                        ctx.set(dut.xfer, xfer)
                    if observe:
                        observe(ctx, pos, xfer)
                    self.cycles += 1
                    self.held += int(bool(held))
                    await ctx.tick()
                    k += xfer
                for name in ("go", "xfer"):
                    if name in dut.signature.members:
                        ctx.set(getattr(dut, name), 0)
                for _ in range(dut.latency):    # the flags of the last word
                    await ctx.tick()
                finish(ctx)

        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(bench)
        sim.run()


def run_checked(dut, cfg, rng, seed, jobs, fails, **kw) -> SectionBench:
    """Run ``jobs`` through ``dut`` on a `SectionBench` and fail with the first five entries the
    jobs appended to ``fails`` (and the seed)."""
    bench = SectionBench(dut, cfg, rng, **kw)
    bench.run(jobs)
    assert not fails, (f"seed {seed}: {len(fails)} of {len(jobs)} wrong:\n"
                       + "\n".join(fails[:5]))
    return bench


def test_rejects_bad_config():
    with pytest.raises(TypeError, match=r"^cfg must be an AcceleratorConfig, not 3$"):
        PtrSectionChecker(3)
    with pytest.raises(TypeError, match=r"^cfg must be an AcceleratorConfig, not 'tiny'$"):
        SectionChecker("tiny")


@pytest.mark.parametrize("width", [32, 128])
def test_common_members(width):
    """Every checker has ``word`` (the bus width) and ``clear``; ``word_bytes`` are its lanes."""
    cfg = _cfg(width)
    dut = PtrSectionChecker(cfg)
    assert Shape.cast(dut.signature.members["word"].shape).width == width
    assert dut.signature.members["clear"].flow.name == "In"
    assert len(dut.word_bytes()) == width // 8


def test_clear_wins(rng, seed):
    """``clear`` in the cycle of a broken rule leaves the flag clear; a later break sets it."""
    cfg = _cfg(32)
    W, kw = random_matrix(rng, "bitmap", cfg, m=3, k=20)
    img = pack(W, "bitmap", kw)
    dut = PtrSectionChecker(cfg)
    seen = []

    async def bench(ctx):
        ctx.set(dut.intervals, 3)
        ctx.set(dut.capacity, 1 << 31)
        ctx.set(dut.active, 1)
        ctx.set(dut.xfer, 1)
        ctx.set(dut.word, 5)            # entry 0 is not 0
        ctx.set(dut.clear, 1)
        await ctx.tick()
        seen.append(ctx.get(dut.bad_ptr))
        ctx.set(dut.clear, 0)
        await ctx.tick()
        seen.append(ctx.get(dut.bad_ptr))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [0, 1], f"seed {seed}: bad_ptr after clear+break, after break: {seen}"
    assert len(img) > 32
