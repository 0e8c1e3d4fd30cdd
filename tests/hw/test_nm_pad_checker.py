"""NmPadChecker (hw/tile/nm_pad_checker.py) in amaranth.sim against golden.

N:M images packed by ``golden.pack_weights`` with ``K % M != 0`` (the rule's case) and without,
valid or with a value set in a slot past ``K``: ``bad_pad`` must be set exactly when
``golden.parse_weights`` reports ``BAD_PAD``.  Short rows (several row ends per word) make the
checker hold words.  Seeds are printed by the ``seed`` fixture.
"""

from __future__ import annotations

import pytest
from sparsemac.golden.formats import FormatErrorCode
from sparsemac.hw.tile.nm_pad_checker import NmPadChecker

from tests.hw.test_image_checker import _cfg, corrupt, expected_code, pack, random_matrix
from tests.hw.test_nm_index_checker import nm_view
from tests.hw.test_section_checker import run_checked

C = FormatErrorCode


def _images(cfg, rng, count, **shape):
    imgs = []
    while len(imgs) < count:
        W, kw = random_matrix(rng, "nm", cfg, **shape)
        img = pack(W, "nm", kw)
        cls = "valid" if rng.random() < 0.3 else "pad"
        img = img if cls == "valid" else corrupt(img, "nm", cls, rng)
        if img is not None:
            imgs.append((cls, img))
    return imgs


def _check(cfg, rng, seed, imgs, **kw):
    dut = NmPadChecker(cfg)
    fails, codes = [], set()

    def job(cls, img):
        h, n, m, rb = nm_view(img)
        K = h["cols"]
        on = K % m != 0
        exp = expected_code(bytes(img))
        codes.add(exp)

        def inputs(pos, taken):
            return dict(values=int(on and h["sec_a"] <= pos < h["sec_b"]),
                        indices=int(on and h["sec_b"] <= pos < h["sec_c"]),
                        row_bytes=rb, rows=h["rows"], group_n=n, krem=(K - 1) % m + 1)

        def finish(ctx):
            got = ctx.get(dut.bad_pad)
            if got != (exp == C.BAD_PAD):
                fails.append(f"{cls}: golden {C(exp).name}, bad_pad {got}: {bytes(img).hex()}")
        return img, inputs, None, {"init": 1}, finish

    bench = run_checked(dut, cfg, rng, seed, [job(cls, img) for cls, img in imgs], fails, **kw)
    return codes, bench


@pytest.mark.parametrize("width", [32, 64, 128])
def test_matches_golden(width, rng, seed):
    cfg = _cfg(width)
    codes, _ = _check(cfg, rng, seed, _images(cfg, rng, 30))
    assert {0, C.BAD_PAD} <= codes, f"seed {seed}: codes seen {sorted(codes)}"


@pytest.mark.parametrize("width", [64, 128])
def test_short_rows_hold(width, rng, seed):
    """Rows shorter than a word: several row ends per word, each its own cycle."""
    cfg = _cfg(width)
    imgs = _images(cfg, rng, 12, m=cfg.out_buf_depth, k=int(rng.integers(1, 4)))
    _, bench = _check(cfg, rng, seed, imgs, gap=0, stall=0)
    assert bench.held > 0, f"seed {seed}: no word was held"
