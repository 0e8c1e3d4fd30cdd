"""BlockIndexChecker (hw/tile/block_index_checker.py) in amaranth.sim against golden.

Block images packed by ``golden.pack_weights``, valid or with a ``blk_col`` out of range, out
of order in its block row, or a padding value broken (which is not this checker's rule):
``bad_idx`` must be set exactly when ``golden.parse_weights`` reports ``BAD_INDEX``.
``entry``/``next_entry`` are served from the image's ``blk_ptr`` as the pointer memory does,
every block-row boundary must be consumed, and ``last_col`` of every transferred word is
compared with the columns.  Seeds are printed by the ``seed`` fixture.
"""

from __future__ import annotations

import pytest
from sparsemac.golden.formats import FormatErrorCode
from sparsemac.hw.tile.block_index_checker import BlockIndexChecker

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


def block_view(img):
    """Header, blk_ptr, blk_col and (block rows, block columns) of a block image."""
    h = _hdr(img)
    B = h["a"]
    nbr, nbc = -(-h["rows"] // B), -(-h["cols"] // B)
    ptrs = [_u32(img, h["sec_a"] + 4 * j) for j in range(nbr + 1)]
    cols = [int.from_bytes(img[h["sec_b"] + 2 * i:h["sec_b"] + 2 * i + 2], "little")
            for i in range((h["sec_c"] - h["sec_b"]) // 2)]
    return h, ptrs, cols, nbr, nbc


def last_col_bits(pos, h, cols, nnz, nbc, F):
    """Per lane of the blk_col word at ``pos``: a stored block in the last block column."""
    i0 = (pos - h["sec_b"]) // 2
    return sum(1 << f for f in range(F)
               if i0 + f < nnz and i0 + f < len(cols) and cols[i0 + f] == nbc - 1)


def _images(cfg, rng, count, **shape):
    imgs = []
    while len(imgs) < count:
        W, kw = random_matrix(rng, "block", cfg, **shape)
        img = pack(W, "block", kw)
        cls = str(rng.choice(["valid", "index_range", "index_order", "pad"]))
        img = img if cls == "valid" else corrupt(img, "block", cls, rng)
        if img is not None:
            imgs.append((cls, img))
    return imgs


def _check(cfg, rng, seed, imgs, **kw):
    dut = BlockIndexChecker(cfg)
    F = cfg.axi_bytes // 2
    fails, codes = [], set()

    def job(cls, img):
        h, ptrs, cols, nbr, nbc = block_view(img)
        exp = expected_code(bytes(img))
        codes.add(exp)
        seen = {"rows": 0, "lastcol": []}

        def inputs(pos, taken):
            p = 1 + seen["rows"]
            return dict(active=int(h["sec_b"] <= pos < h["sec_c"]),
                        offset=(pos - h["sec_b"]) % (1 << 34), block_rows=nbr, block_cols=nbc,
                        entry=ptrs[min(p, nbr)], next_entry=ptrs[min(p + 1, nbr)],
                        nnz=ptrs[nbr])

        def observe(ctx, pos, xfer):
            seen["rows"] += ctx.get(dut.consume)
            if xfer and h["sec_b"] <= pos < h["sec_c"]:
                want = last_col_bits(pos, h, cols, ptrs[nbr], nbc, F)
                if ctx.get(dut.last_col) != want:
                    seen["lastcol"].append((pos, ctx.get(dut.last_col), want))

        def finish(ctx):
            got = ctx.get(dut.bad_idx)
            # a boundary is consumed with the blk_col word that holds its entry
            rows = sum(ptrs[p] < len(cols) for p in range(1, nbr))
            if got != (exp == C.BAD_INDEX) or seen["rows"] != rows or seen["lastcol"]:
                fails.append(f"{cls}: golden {C(exp).name}, bad_idx {got}, {seen['rows']} of "
                             f"{rows} boundaries, last_col (pos, got, want) "
                             f"{seen['lastcol'][:3]}: {bytes(img).hex()}")
        return img, inputs, observe, {"init": 1}, finish

    bench = run_checked(dut, cfg, rng, seed, [job(cls, img) for cls, img in imgs], fails, **kw)
    return codes, bench


@pytest.mark.parametrize("width", [32, 64, 128])
def test_matches_golden(width, rng, seed):
    cfg = _cfg(width)
    codes, _ = _check(cfg, rng, seed, _images(cfg, rng, 30))
    assert {0, C.BAD_INDEX} <= codes, f"seed {seed}: codes seen {sorted(codes)}"


@pytest.mark.parametrize("width", [32, 128])
def test_short_block_rows_hold(width, rng, seed):
    """Block rows of few blocks (K <= B): several boundaries per word, each its own cycle."""
    cfg = _cfg(width)
    imgs = _images(cfg, rng, 20, m=cfg.out_buf_depth, k=int(rng.integers(1, cfg.block_size + 1)))
    _, bench = _check(cfg, rng, seed, imgs, gap=0, stall=0)
    assert bench.held > 0, f"seed {seed}: no word was held"
