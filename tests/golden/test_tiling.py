"""Row split across tiles (golden/tiling.py, docs/spec.md section 8.1) and its users."""

from types import SimpleNamespace

import numpy as np
import pytest
from sparsemac.golden.tiling import (
    POOL_BUFFER_CHECKS,
    TILE_BUFFER_CHECKS,
    nz_flag_depth,
    pool_buffer_fits,
    pool_buffer_shortfall,
    pool_buffer_use,
    pool_channel_split,
    tile_buffer_minimum,
    tile_buffer_shortfall,
    tile_buffer_use,
    tile_row_split,
)


def _direct(m, tiles):
    """The hardware rule written out: tile t gets [t*c, min(M, (t+1)*c)), c = ceil(M/tiles)."""
    c = -(-m // tiles)
    out = []
    for t in range(tiles):
        r0, r1 = t * c, min(m, (t + 1) * c)
        if r0 < r1:
            out.append((r0, r1))
    return out


@pytest.mark.parametrize("m, tiles", [
    (1, 1), (7, 1),                       # one tile: everything
    (1, 4), (3, 4),                       # M < tiles: one row each, the last tiles idle
    (4, 4), (8, 4),                       # M = tiles * k
    (5, 4), (9, 4), (13, 4), (10, 4),     # M = tiles * k + 1, and 10 / 4 (not array_split)
    (5, 3), (6, 4), (100, 7), (65535, 16),
])
def test_tile_row_split_matches_the_formula(m, tiles):
    got = tile_row_split(m, tiles)
    assert got == _direct(m, tiles)
    assert got[0][0] == 0 and got[-1][1] == m and len(got) <= tiles
    assert all(a[1] == b[0] for a, b in zip(got, got[1:], strict=False))   # contiguous


def test_tile_row_split_examples():
    assert tile_row_split(10, 4) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert tile_row_split(5, 4) == [(0, 2), (2, 4), (4, 5)]     # only three tiles get rows
    assert tile_row_split(3, 4) == [(0, 1), (1, 2), (2, 3)]
    assert tile_row_split(np.int64(4), 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]


@pytest.mark.parametrize("m, tiles", [(0, 4), (4, 0), (-1, 2), (2.5, 2), (True, 2)])
def test_tile_row_split_rejects(m, tiles):
    with pytest.raises(ValueError):
        tile_row_split(m, tiles)


@pytest.mark.parametrize("c,tiles", [(c, t) for c in (1, 2, 3, 4, 5, 6, 7, 8, 13, 64)
                                     for t in (1, 2, 3, 4, 8)])
def test_pool_channel_split_interleaves(c, tiles):
    """Every channel exactly once, channel ``i`` on tile ``i % tiles``, shares from ``ceil(C /
    tiles)`` down by at most one, no empty share (the sequencer's P_SHARE rule)."""
    got = pool_channel_split(c, tiles)
    owner = {}
    for t, (first, count) in enumerate(got):
        assert first == t and count >= 1
        for i in range(count):
            owner.setdefault(first + i * tiles, []).append(t)
    assert owner == {i: [i % tiles] for i in range(c)}
    full = c - (-(-c // tiles) - 1) * tiles     # the hardware's p_full
    assert [n for _, n in got] == [-(-c // tiles) if t < full else -(-c // tiles) - 1
                                   for t in range(len(got))]


def test_pool_channel_split_examples_and_errors():
    assert pool_channel_split(6, 4) == [(0, 2), (1, 2), (2, 1), (3, 1)]
    assert pool_channel_split(3, 4) == [(0, 1), (1, 1), (2, 1)]
    assert pool_channel_split(16, 4) == [(0, 4), (1, 4), (2, 4), (3, 4)]
    for bad in ((0, 4), (4, 0), (True, 4), (2.5, 4)):
        with pytest.raises(ValueError):
            pool_channel_split(*bad)


def test_array_split_differs_for_10_over_4():
    """Why the rule has one owner: numpy's balanced split is not the hardware's."""
    sizes = [len(p) for p in np.array_split(np.arange(10), 4)]
    assert sizes == [3, 3, 2, 2]
    assert [r1 - r0 for r0, r1 in tile_row_split(10, 4)] == [3, 3, 3, 1]


def test_flow_tile_model_splits_like_the_hardware(monkeypatch):
    """flow.cycles' tile_model source sees the hardware's slices (3, 3, 3, 1 rows for M = 10
    on 4 tiles), not numpy's balanced ones (3, 3, 2, 2)."""
    import sparsemac.golden.tile_model as tm
    from sparsemac.flow.cycles import tile_model_source
    from sparsemac.flow.spec import Workload
    from sparsemac.hw.config import AcceleratorConfig

    seen, real = [], tm.tile_cycles

    def spy(pw, X, cfg, **kw):
        seen.append(pw.shape[0])
        return real(pw, X, cfg, **kw)

    monkeypatch.setattr(tm, "tile_cycles", spy)
    cfg = AcceleratorConfig.preset("tiny").replace(tiles=4)
    wl = Workload("fc", "matmul", (("M", 10), ("K", 16), ("N", 4)), "dense", 0.0)
    tile_model_source(wl, cfg, seed=1)
    assert seen == [3, 3, 3, 1]


# ---- one tile's buffers ------------------------------------------------------------------------

def _cfg(**kw):
    base = dict(cols=2, axi_data_width=64, act_buf_depth=64, weight_buf_depth=32,
                out_buf_depth=8)
    return SimpleNamespace(**{**base, **kw})


def _fits_direct(cfg, k, n, wbytes, rows, img):
    """The rule as sim.accel_driver.layer_fits wrote it before it moved to golden."""
    ncg = -(-n // cfg.cols)
    words = -(-k // cfg.axi_data_width)
    return (ncg * k <= cfg.act_buf_depth and -(-img // cfg.cols) <= cfg.act_buf_depth
            and ncg * words <= max(2, cfg.act_buf_depth // 8)
            and wbytes <= cfg.weight_buf_depth * cfg.axi_data_width // 8
            and rows <= cfg.out_buf_depth)


def test_tile_buffer_shortfall_matches_the_direct_rule():
    rng = np.random.default_rng(7)
    for _ in range(3000):
        cfg = _cfg(cols=int(rng.choice([1, 2, 4, 8])), axi_data_width=int(rng.choice([32, 64])),
                   act_buf_depth=int(rng.choice([8, 16, 32, 64, 256])),
                   weight_buf_depth=int(rng.integers(1, 64)), out_buf_depth=int(rng.integers(1, 9)))
        k, n = int(rng.integers(1, 300)), int(rng.integers(1, 300))
        wb, rows = int(rng.integers(0, 3000)), int(rng.integers(1, 12))
        img = int(rng.integers(0, 700))
        short = tile_buffer_shortfall(cfg, k=k, n=n, weight_bytes=wb, rows=rows, image_bytes=img)
        assert (short is None) == _fits_direct(cfg, k, n, wb, rows, img), (vars(cfg), k, n)
        least = tile_buffer_minimum(cfg, k=k, n=n, weight_bytes=wb, rows=rows, image_bytes=img)
        fit = _cfg(**{**vars(cfg), **least})
        assert tile_buffer_shortfall(fit, k=k, n=n, weight_bytes=wb, rows=rows,
                                     image_bytes=img) is None, (vars(fit), k, n)
        for p, v in least.items():   # one below the minimum of a parameter fails on it
            if v > 0:
                s = tile_buffer_shortfall(_cfg(**{**vars(fit), p: v - 1}), k=k, n=n,
                                          weight_bytes=wb, rows=rows, image_bytes=img)
                assert s is not None and s.parameter == p, (p, v, vars(fit), k, n)


def test_tile_buffer_shortfall_order_and_message():
    cfg = _cfg()
    # everything too big: the weight image is reported first
    s = tile_buffer_shortfall(cfg, k=200, n=200, weight_bytes=10_000, rows=99, image_bytes=10**6)
    assert (s.check, s.parameter, s.used, s.capacity) == ("weight_words", "weight_buf_depth",
                                                           1250, 32)
    assert s.message.endswith("1250 > 32 (weight_buf_depth): raise weight_buf_depth")
    s = tile_buffer_shortfall(cfg, k=200, n=200, weight_bytes=10_000, checks=("flag_words",))
    assert (s.check, s.used, s.capacity) == ("flag_words", 400, 8)
    assert tile_buffer_shortfall(cfg, k=32, n=4, weight_bytes=256, rows=8) is None
    assert list(tile_buffer_use(cfg, k=1, n=1)) == list(TILE_BUFFER_CHECKS)


def test_nz_flag_depth_is_the_hardware_s():
    from sparsemac.hw.config import AcceleratorConfig
    from sparsemac.hw.hub.desc_checker import nz_depth
    from sparsemac.hw.tile.tile import Tile

    assert [nz_flag_depth(d) for d in (0, 8, 16, 24, 32, 256)] == [2, 2, 2, 3, 4, 32]
    for preset in ("tiny", "default"):
        cfg = AcceleratorConfig.preset(preset)
        assert Tile(cfg).nz_depth == nz_depth(cfg) == nz_flag_depth(cfg.act_buf_depth)


# ---- one tile's share of a pool ----------------------------------------------------------------

def _pool_direct(cfg, c, h, w, kh, kw, sh, sw, ph, pw):
    """A pool's use of one tile, counted out: the windows' top-left corners in the padded
    input, the channels each tile pools (channel ``ch`` on tile ``ch // ceil(C / tiles)``),
    and for each group of ``cols`` output pixels ``KH*KW`` entries per channel."""
    oh = len(range(-ph, h + ph - kh + 1, sh))
    ow = len(range(-pw, w + pw - kw + 1, sw))
    per = (c + cfg.tiles - 1) // cfg.tiles
    rows = max(sum(1 for ch in range(c) if ch // per == t) for t in range(cfg.tiles))
    entries = sum(rows * kh * kw for _ in range(0, oh * ow, cfg.cols))
    # planes of whole bus words go each to its own tile only: the tile holds its own channels
    held = rows if (h * w) % (cfg.axi_data_width // 8) == 0 else c
    image = (held * h * w + cfg.cols - 1) // cfg.cols
    return dict(act_entries=entries, image_entries=image, rows=rows)


def test_pool_buffer_use_counted_out(seed, rng):
    for _ in range(1500):
        cfg = _cfg(cols=int(rng.integers(1, 9)), tiles=int(rng.integers(1, 9)),
                   act_buf_depth=int(rng.choice([16, 32, 64, 256])),
                   out_buf_depth=int(rng.integers(1, 20)))
        c, h, w = int(rng.integers(1, 40)), int(rng.integers(1, 20)), int(rng.integers(1, 20))
        if rng.random() < 0.2:                                  # global: one H x W window
            geo = dict(kh=h, kw=w, sh=1, sw=1, ph=0, pw=0)
        else:
            kh, kw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
            geo = dict(kh=kh, kw=kw, sh=int(rng.integers(1, 17)), sw=int(rng.integers(1, 17)),
                       ph=int(rng.integers(0, kh)), pw=int(rng.integers(0, kw)))
        use = pool_buffer_use(cfg, c=c, h=h, w=w, **geo)
        want = _pool_direct(cfg, c, h, w, **geo)
        ctx = f"seed {seed}: {vars(cfg)} c={c} h={h} w={w} {geo}"
        assert use == want, f"{ctx}: {use} != {want}"
        fits = (want["image_entries"] <= cfg.act_buf_depth
                and want["act_entries"] <= cfg.act_buf_depth
                and want["rows"] <= cfg.out_buf_depth)
        assert pool_buffer_fits(cfg, c=c, h=h, w=w, **geo) == fits, ctx
        short = pool_buffer_shortfall(cfg, c=c, h=h, w=w, **geo)
        assert (short is None) == fits, ctx
        if short is not None:      # the first limit exceeded, in POOL_BUFFER_CHECKS order
            over = [k for k in POOL_BUFFER_CHECKS
                    if want[k] > {"rows": cfg.out_buf_depth}.get(k, cfg.act_buf_depth)]
            assert short.check == over[0] and short.used == want[over[0]], ctx


def test_pool_buffer_examples():
    cfg = _cfg(cols=4, tiles=4, act_buf_depth=64, out_buf_depth=16)
    # 3x3 / 2, pad 1 on 10 x 8 x 8: 4 x 4 outputs, 4 groups x 3 channels x 9 = 108 entries;
    # the 64-byte planes go to their own tiles: 3 x 64 / 4 = 48 image entries
    geo = dict(c=10, h=8, w=8, kh=3, kw=3, sh=2, sw=2, ph=1, pw=1)
    assert pool_buffer_use(cfg, **geo) == dict(act_entries=108, image_entries=48, rows=3)
    s = pool_buffer_shortfall(cfg, **geo)
    assert (s.check, s.parameter, s.used, s.capacity) == ("act_entries", "act_buf_depth", 108,
                                                          64)
    assert s.message.endswith("108 > 64 (act_buf_depth): raise act_buf_depth")
    assert not pool_buffer_fits(cfg, **geo)
    # a global pool of 8 x 7 x 7: one window of 49, two channels per tile
    assert pool_buffer_use(cfg, c=8, h=7, w=7, kh=7, kw=7) == dict(
        act_entries=98, image_entries=98, rows=2)
    # exactly at every bound: 64 entries, 64 image entries (256 bytes), 16 rows
    at = dict(c=64, h=1, w=4, kh=1, kw=4)
    assert pool_buffer_use(cfg, **at) == dict(act_entries=64, image_entries=64, rows=16)
    assert pool_buffer_fits(cfg, **at)
    assert not pool_buffer_fits(cfg, **{**at, "c": 65})      # 17 rows, 65 image entries
    assert list(pool_buffer_use(cfg, **at)) == list(POOL_BUFFER_CHECKS)
    # planes of whole bus words (8 bytes): a tile holds only its own channels.  A 1x1 / 2
    # pool of 64 x 4 x 4 (16-byte planes): 16 channels a tile, 16 * 16 / 4 = 64 image
    # entries, exactly the bound (multicast it would take 256); 65 channels: 17 a tile, 68
    cfg = _cfg(cols=4, tiles=4, act_buf_depth=64, out_buf_depth=17)
    at = dict(c=64, h=4, w=4, kh=1, kw=1, sh=2, sw=2)
    assert pool_buffer_use(cfg, **at) == dict(act_entries=16, image_entries=64, rows=16)
    assert pool_buffer_fits(cfg, **at)
    s = pool_buffer_shortfall(cfg, **{**at, "c": 65})
    assert (s.check, s.used, s.capacity) == ("image_entries", 68, 64)
    # a 3 x 5 plane (15 bytes) is multicast: the whole C*H*W in every tile
    assert pool_buffer_use(cfg, c=8, h=3, w=5, kh=3, kw=5)["image_entries"] == 30


@pytest.mark.parametrize("bad,match", [
    (dict(c=0), "c must be an int of at least 1, not 0"),
    (dict(kh=0), "kh must be an int of at least 1, not 0"),
    (dict(sw=0), "sw must be an int of at least 1, not 0"),
    (dict(ph=-1), "ph must be an int of at least 0, not -1"),
    (dict(h=True), "h must be an int of at least 1, not True"),
    (dict(kh=5, ph=0), r"kernel \(5, 2\) must fit the padded input \(4, 4\)"),
])
def test_pool_buffer_use_rejects(bad, match):
    geo = {**dict(c=2, h=4, w=4, kh=2, kw=2), **bad}
    with pytest.raises(ValueError, match=match):
        pool_buffer_use(_cfg(tiles=2), **geo)
