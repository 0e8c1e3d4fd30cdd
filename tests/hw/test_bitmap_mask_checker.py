"""BitmapMaskChecker (hw/tile/bitmap_mask_checker.py) in amaranth.sim against golden.

Bitmap images packed by ``golden.pack_weights``, valid or with a mask bit flipped inside ``K``
(count), set past ``K`` (padding) or a middle ``row_ptr`` moved: the flags must follow
``golden.parse_weights`` (``BAD_PAD`` -> ``bad_pad``; ``BAD_MASK_COUNT`` -> ``bad_cnt`` and
not ``bad_pad``; valid -> neither).  ``count`` is served from the image's ``row_ptr`` as the
pointer memory does (entry ``1 + consumed rows``), and every row end must be consumed.  The
word is held while ``stall``: a word never holds more than its row ends minus one.  Seeds are
printed by the ``seed`` fixture.
"""

from __future__ import annotations

import pytest
from sparsemac.golden.formats import FormatErrorCode
from sparsemac.hw.tile.bitmap_mask_checker import BitmapMaskChecker

from tests.hw.test_image_checker import (
    _cfg,
    _hdr,
    _u32,
    corrupt,
    expected_code,
    pack,
    random_matrix,
)
from tests.hw.test_section_checker import run_checked

C = FormatErrorCode


def _images(cfg, rng, count, **shape):
    imgs = []
    while len(imgs) < count:
        W, kw = random_matrix(rng, "bitmap", cfg, **shape)
        img = pack(W, "bitmap", kw)
        cls = str(rng.choice(["valid", "count", "pad", "ptr_mid"]))
        img = img if cls == "valid" else corrupt(img, "bitmap", cls, rng)
        if img is not None:
            imgs.append((cls, img))
    return imgs


def _check(cfg, rng, seed, imgs, **kw):
    dut = BitmapMaskChecker(cfg)
    fails, codes = [], set()

    def job(cls, img):
        h = _hdr(img)
        M, K, G = h["rows"], h["cols"], h["a"]
        rb = -(-K // G) * G // 8
        ptrs = [_u32(img, h["sec_a"] + 4 * j) for j in range(M + 1)]
        exp = expected_code(bytes(img))
        codes.add(exp)
        ends = {"rows": 0}

        def inputs(pos, taken):
            return dict(active=int(h["sec_b"] <= pos < h["sec_c"]), row_bytes=rb, rows=M,
                        pad_from=rb - K // 8, pad_bits=(0xFF << (K % 8)) & 0xFF,
                        count=ptrs[min(1 + ends["rows"], M)])

        def observe(ctx, pos, xfer):
            if ctx.get(dut.consume):
                ends["rows"] += 1

        def finish(ctx):
            got = (ctx.get(dut.bad_pad), ctx.get(dut.bad_cnt))
            ok = {0: got == (0, 0), C.BAD_PAD: got[0] == 1,
                  C.BAD_MASK_COUNT: got == (0, 1)}.get(exp, True)
            if not ok or ends["rows"] != M:
                fails.append(f"{cls}: golden {C(exp).name}, (bad_pad, bad_cnt) {got}, "
                             f"{ends['rows']} of {M} row ends: {bytes(img).hex()}")
        return img, inputs, observe, {"init": 1}, finish

    bench = run_checked(dut, cfg, rng, seed, [job(cls, img) for cls, img in imgs], fails, **kw)
    return codes, bench


@pytest.mark.parametrize("width", [32, 64, 128])
def test_matches_golden(width, rng, seed):
    cfg = _cfg(width)
    codes, _ = _check(cfg, rng, seed, _images(cfg, rng, 30))
    assert {0, C.BAD_MASK_COUNT} <= codes, f"seed {seed}: codes seen {sorted(codes)}"


@pytest.mark.parametrize("width", [32, 128])
def test_short_rows_hold(width, rng, seed):
    """Rows shorter than a word (K = 1..8): several row ends per word, each its own cycle."""
    cfg = _cfg(width)
    imgs = _images(cfg, rng, 12, m=cfg.out_buf_depth, k=int(rng.integers(1, 9)))
    _, bench = _check(cfg, rng, seed, imgs, gap=0, stall=0)
    assert bench.held > 0, f"seed {seed}: no word was held"


@pytest.mark.parametrize("width", [64])
def test_long_rows_never_hold(width, rng, seed):
    """Rows of at least a word never hold the stream."""
    cfg = _cfg(width)
    imgs = _images(cfg, rng, 8, k=int(rng.integers(cfg.axi_data_width, 200)))
    _, bench = _check(cfg, rng, seed, imgs)
    assert bench.held == 0, f"seed {seed}: {bench.held} held cycles"
