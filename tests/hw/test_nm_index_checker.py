"""NmIndexChecker (hw/tile/nm_index_checker.py) in amaranth.sim against golden.

N:M images packed by ``golden.pack_weights``, valid or with an index out of range, out of
order in its group, random bytes in the index section, or a padding value broken (not this
checker's rule): ``bad_idx`` must be set exactly when ``golden.parse_weights`` reports
``BAD_INDEX``.  The bytes past the section (alignment) are random: they must not count.
Seeds are printed by the ``seed`` fixture.
"""

from __future__ import annotations

import pytest
from sparsemac.golden.formats import FormatErrorCode
from sparsemac.hw.tile.nm_index_checker import NmIndexChecker

from tests.hw.test_image_checker import _cfg, _hdr, corrupt, expected_code, pack, random_matrix
from tests.hw.test_section_checker import SectionBench

C = FormatErrorCode


def nm_view(img):
    """Header, N, M and the bytes per row of a section of an N:M image."""
    h = _hdr(img)
    n, m = h["a"], h["b"]
    return h, n, m, -(-h["cols"] // m) * n


def _images(cfg, rng, count, **shape):
    imgs = []
    while len(imgs) < count:
        W, kw = random_matrix(rng, "nm", cfg, **shape)
        img = pack(W, "nm", kw)
        cls = str(rng.choice(["valid", "index_range", "index_order", "pad", "random"]))
        h, n, m, rb = nm_view(img)
        if cls == "random":
            off = int(rng.integers(h["sec_b"], h["sec_b"] + h["rows"] * rb))
            img[off] = int(rng.integers(0, 256))
        elif cls != "valid":
            img = corrupt(img, "nm", cls, rng)
        if img is not None:
            end = h["sec_b"] + h["rows"] * rb        # alignment bytes: anything
            img[end:h["sec_c"]] = bytes(int(v) for v in rng.integers(0, 256, h["sec_c"] - end))
            imgs.append((cls, img))
    return imgs


def _check(cfg, rng, seed, imgs, **kw):
    dut = NmIndexChecker(cfg)
    fails, codes = [], set()

    def job(cls, img):
        h, n, m, rb = nm_view(img)
        exp = expected_code(bytes(img))
        codes.add(exp)

        def inputs(pos, taken):
            return dict(active=int(h["sec_b"] <= pos < h["sec_c"]), pos=pos,
                        section=h["sec_b"], section_bytes=h["rows"] * rb, group_m=m, group_n=n)

        def finish(ctx):
            got = ctx.get(dut.bad_idx)
            if got != (exp == C.BAD_INDEX):
                fails.append(f"{cls}: golden {C(exp).name}, bad_idx {got}: {bytes(img).hex()}")
        return img, inputs, None, {"load": 1}, finish

    SectionBench(dut, cfg, rng, **kw).run([job(cls, img) for cls, img in imgs])
    assert not fails, f"seed {seed}: {len(fails)} of {len(imgs)} wrong:\n" + "\n".join(fails[:5])
    return codes


@pytest.mark.parametrize("width", [32, 64, 128])
def test_matches_golden(width, rng, seed):
    cfg = _cfg(width)
    codes = _check(cfg, rng, seed, _images(cfg, rng, 30))
    assert {0, C.BAD_INDEX} <= codes, f"seed {seed}: codes seen {sorted(codes)}"


@pytest.mark.parametrize("width", [32, 128])
def test_index_at_m(width, rng, seed):
    """An index equal to M is out of range, M - 1 is not (the boundary of the range rule)."""
    cfg = _cfg(width)
    imgs = []
    while len(imgs) < 6:
        W, kw = random_matrix(rng, "nm", cfg, m=int(rng.integers(1, 5)))
        img = pack(W, "nm", kw)
        h, n, m, rb = nm_view(img)
        g = int(rng.integers(0, h["rows"] * rb // n))
        last = h["sec_b"] + g * n + n - 1          # the last slot of a group: M - 1 keeps order
        for v in (m - 1, m):
            bad = bytearray(img)
            bad[last] = v
            imgs.append((f"index {v}", bad))
    _check(cfg, rng, seed, imgs, gap=0, stall=0)
