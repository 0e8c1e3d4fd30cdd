"""PtrSectionChecker (hw/tile/ptr_section_checker.py) in amaranth.sim against golden.

Bitmap and block images packed by ``golden.pack_weights``, valid or with their pointer section
broken (first entry, order, last entry past the capacity, a middle entry moved) or random
bytes in it: ``bad_ptr`` must be set exactly when ``golden.parse_weights`` reports
``BAD_PTR``.  The kept pointers are then read back with random ``consume`` steps.  Seeds are
printed by the ``seed`` fixture.
"""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator
from sparsemac.golden.formats import FormatErrorCode
from sparsemac.hw.tile.ptr_section_checker import PtrSectionChecker

from tests.hw.test_image_checker import (
    _cfg,
    _hdr,
    _put32,
    _u32,
    corrupt,
    expected_code,
    pack,
    random_matrix,
)
from tests.hw.test_section_checker import SectionBench

C = FormatErrorCode


def ptr_inputs(cfg, img):
    """(inputs(pos, taken), pointers): the checker's section inputs as ImageChecker gives them."""
    h = _hdr(img)
    B = cfg.block_size
    blk = h["fmt"] == 2
    n = -(-h["rows"] // B) if blk else h["rows"]
    lgBB = 2 * (B.bit_length() - 1)
    cap = (min((h["sec_c"] - h["sec_b"]) >> 1, (h["total"] - h["sec_c"]) >> lgBB) if blk
           else h["total"] - h["sec_c"])

    def inputs(pos, taken):
        return dict(active=int(h["sec_a"] <= pos < h["sec_b"]),
                    offset=(pos - h["sec_a"]) % (1 << 34), intervals=n, capacity=cap)
    return inputs, [_u32(img, h["sec_a"] + 4 * j) for j in range(n + 1)]


def _images(cfg, rng, count):
    imgs = []
    while len(imgs) < count:
        fmt = str(rng.choice(["bitmap", "block"]))
        W, kw = random_matrix(rng, fmt, cfg)
        img = pack(W, fmt, kw)
        cls = str(rng.choice(["valid", "ptr0", "ptr", "ptr_mid", "random"]))
        if cls == "random":
            h = _hdr(img)
            off = int(rng.integers(h["sec_a"], h["sec_b"]))
            img[off] = int(rng.integers(0, 256))
        elif cls != "valid":
            img = corrupt(img, fmt, cls, rng)
        if img is not None:
            imgs.append((cls, img))
    return imgs


def _check(cfg, rng, seed, imgs, **kw):
    dut = PtrSectionChecker(cfg)
    fails, codes = [], set()

    def job(cls, img):
        inputs, ptrs = ptr_inputs(cfg, img)
        exp = expected_code(bytes(img))
        codes.add(exp)

        def finish(ctx):
            got = ctx.get(dut.bad_ptr)
            if got != (exp == C.BAD_PTR):
                fails.append(f"{cls}: golden {C(exp).name}, bad_ptr {got}: {bytes(img).hex()}")
            n = len(ptrs) - 1
            if exp != C.BAD_PTR and (ctx.get(dut.nnz), ctx.get(dut.last_row)) != (ptrs[n],
                                                                                  ptrs[n - 1]):
                fails.append(f"{cls}: nnz/last_row {ctx.get(dut.nnz)}/{ctx.get(dut.last_row)},"
                             f" expected {ptrs[n]}/{ptrs[n - 1]}")
        return img, inputs, None, {"init": 1}, finish

    SectionBench(dut, cfg, rng, **kw).run([job(cls, img) for cls, img in imgs])
    assert not fails, f"seed {seed}: {len(fails)} of {len(imgs)} wrong:\n" + "\n".join(fails[:5])
    return codes


@pytest.mark.parametrize("width", [32, 64, 128])
def test_matches_golden(width, rng, seed):
    codes = _check(_cfg(width), rng, seed, _images(_cfg(width), rng, 30))
    assert {0, C.BAD_PTR} <= codes, f"seed {seed}: codes seen {sorted(codes)}"


@pytest.mark.parametrize("width", [32, 128])
def test_directed(width, rng, seed):
    """Entry 0 not 0; a decrease; last entry one past the capacity; last entry at it."""
    cfg = _cfg(width)
    W, kw = random_matrix(rng, "bitmap", cfg, m=5, k=40)
    base = pack(W, "bitmap", kw)
    h = _hdr(base)
    cap = h["total"] - h["sec_c"]
    imgs = []
    for j, v in ((0, 1), (2, 0), (5, cap + 1), (5, cap)):
        img = bytearray(base)
        _put32(img, h["sec_a"] + 4 * j, v)
        if j == 2:
            _put32(img, h["sec_a"] + 4, 1)
        if j == 5:
            for i in range(1, 5):
                _put32(img, h["sec_a"] + 4 * i, 0)
        imgs.append((f"ptr[{j}]={v}", img))
    _check(cfg, rng, seed, imgs, gap=0, stall=0)


@pytest.mark.parametrize("width", [32, 128])
def test_reads_back(width, rng, seed):
    """After the section, ``entry``/``next_entry`` follow ``consume`` from entry 1 on."""
    cfg = _cfg(width)
    fmt = str(rng.choice(["bitmap", "block"]))
    W, kw = random_matrix(rng, fmt, cfg, m=int(rng.integers(2, cfg.out_buf_depth + 1)))
    img = pack(W, fmt, kw)
    inputs, ptrs = ptr_inputs(cfg, img)
    h = _hdr(img)
    dut = PtrSectionChecker(cfg)
    got, want = [], []

    async def bench(ctx):
        ctx.set(dut.init, 1)
        await ctx.tick()
        ctx.set(dut.init, 0)
        ctx.set(dut.xfer, 1)
        words = bytes(img) + bytes(cfg.axi_bytes)
        for pos in range(32, h["sec_b"], cfg.axi_bytes):
            for name, value in inputs(pos, 0).items():
                ctx.set(getattr(dut, name), value)
            ctx.set(dut.word, int.from_bytes(words[pos:pos + cfg.axi_bytes], "little"))
            await ctx.tick()
        ctx.set(dut.xfer, 0)
        ctx.set(dut.active, 0)
        p = 1
        while p + 1 < len(ptrs):
            got.append((ctx.get(dut.entry), ctx.get(dut.next_entry)))
            want.append((ptrs[p], ptrs[p + 1]))
            step = int(rng.random() < 0.6)
            ctx.set(dut.consume, step)
            await ctx.tick()
            p += step

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == want, f"seed {seed}: {fmt} read back {got}, expected {want}"
