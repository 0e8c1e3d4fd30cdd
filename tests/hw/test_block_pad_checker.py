"""BlockPadChecker (hw/tile/block_pad_checker.py) in amaranth.sim against golden.

Block images packed by ``golden.pack_weights`` (shapes with and without padding rows and
columns), valid or with a padding value set: ``bad_pad`` must be set exactly when
``golden.parse_weights`` reports ``BAD_PAD``.  The ``blk_col`` words are presented first with
``last_col`` as `BlockIndexChecker` gives it, then the values.  Seeds are printed by the
``seed`` fixture.
"""

from __future__ import annotations

import numpy as np
import pytest
from sparsemac.golden.formats import FormatErrorCode
from sparsemac.hw.tile.block_pad_checker import BlockPadChecker

from tests.hw.test_block_index_checker import block_view, last_col_bits
from tests.hw.test_image_checker import _cfg, corrupt, expected_code, pack, random_matrix
from tests.hw.test_section_checker import SectionBench

C = FormatErrorCode


def fits(img, cfg) -> bool:
    """The image fits the tile's weight buffer.  A longer one is refused by the hub's header
    check (``BAD_SIZE``) before its body streams, so the checker never sees one: its
    column-bit memory holds the blocks of ``weight_buf_depth`` words."""
    return len(img) <= cfg.weight_buf_depth * cfg.axi_bytes


def _images(cfg, rng, count, **shape):
    imgs = []
    while len(imgs) < count:
        W, kw = random_matrix(rng, "block", cfg, **shape)
        img = pack(W, "block", kw)
        if not fits(img, cfg):
            continue
        cls = "valid" if rng.random() < 0.3 else "pad"
        img = img if cls == "valid" else corrupt(img, "block", cls, rng)
        if img is not None:
            imgs.append((cls, img))
    return imgs


def _check(cfg, rng, seed, imgs, **kw):
    dut = BlockPadChecker(cfg)
    F, B = cfg.axi_bytes // 2, cfg.block_size
    fails, codes = [], set()

    def job(cls, img):
        h, ptrs, cols, nbr, nbc = block_view(img)
        M, K = h["rows"], h["cols"]
        exp = expected_code(bytes(img))
        codes.add(exp)

        def inputs(pos, taken):
            in_b = h["sec_b"] <= pos < h["sec_c"]
            return dict(active=int(h["sec_c"] <= pos < h["total"]),
                        offset=(pos - h["sec_c"]) % (1 << 34),
                        last_col=last_col_bits(pos, h, cols, ptrs[nbr], nbc, F) if in_b else 0,
                        last_col_offset=(pos - h["sec_b"]) % (1 << 34), nnz=ptrs[nbr],
                        last_row=ptrs[nbr - 1], row_valid=M % B, col_valid=K % B,
                        row_pad=int(M % B != 0), col_pad=int(K % B != 0))

        def observe(ctx, pos, xfer):
            ctx.set(dut.last_col_en, int(xfer and h["sec_b"] <= pos < h["sec_c"]))

        def finish(ctx):
            got = ctx.get(dut.bad_pad)
            if got != (exp == C.BAD_PAD):
                fails.append(f"{cls}: golden {C(exp).name}, bad_pad {got}: {bytes(img).hex()}")
        return img, inputs, observe, None, finish

    SectionBench(dut, cfg, rng, **kw).run([job(cls, img) for cls, img in imgs])
    assert not fails, f"seed {seed}: {len(fails)} of {len(imgs)} wrong:\n" + "\n".join(fails[:5])
    return codes


@pytest.mark.parametrize("width", [32, 64, 128])
def test_matches_golden(width, rng, seed):
    cfg = _cfg(width)
    codes = _check(cfg, rng, seed, _images(cfg, rng, 30))
    assert {0, C.BAD_PAD} <= codes, f"seed {seed}: codes seen {sorted(codes)}"


@pytest.mark.parametrize("width", [32, 128])
def test_padding_only_at_edges(width, rng, seed):
    """M and K multiples of B: no padding, any values pass; M, K = 1: only padding."""
    cfg = _cfg(width)
    B = cfg.block_size
    imgs = []
    for m, k in ((B, 2 * B), (1, 1), (1, B + 1), (B + 1, 1)):
        W, kw = random_matrix(rng, "block", cfg, m=m, k=k)
        img = pack(W, "block", kw)
        imgs.append(("valid", img))
        bad = corrupt(img, "block", "pad", rng)
        if bad is not None:
            imgs.append(("pad", bad))
    _check(cfg, rng, seed, imgs, gap=0, stall=0)


@pytest.mark.parametrize("width", [32, 64, 128])
def test_last_block_of_a_full_buffer(width, rng, seed):
    """The largest fully stored block image that fits the weight buffer (its last stored block
    is the last the column-bit memory holds): padding set in that block's padded column is
    ``BAD_PAD``, the clean image passes."""
    cfg = _cfg(width)
    B, cap = cfg.block_size, cfg.weight_buf_depth * cfg.axi_bytes
    M = cfg.out_buf_depth
    best = None
    for K in range(B + 1, 4096, B):        # K % B == 1: every last-column block has padding
        W = rng.integers(1, 128, size=(M, K)).astype(np.int8)
        img = pack(W, "block", dict(group_size=cfg.group_size, block_size=B))
        if not fits(img, cfg):
            break
        best = img
    assert best is not None and len(best) > cap - 4 * B * B * -(-M // B), (width, len(best))
    h, ptrs, cols, nbr, nbc = block_view(best)
    last = ptrs[nbr] - 1
    assert cols[last] == nbc - 1
    bad = bytearray(best)
    bad[h["sec_c"] + last * B * B + B - 1] = 0x5A   # row 0, last column: past K
    assert expected_code(bytes(bad)) == C.BAD_PAD and expected_code(bytes(best)) == 0
    _check(cfg, rng, seed, [("valid", best), ("pad", bad)])
