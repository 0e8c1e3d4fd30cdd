"""How a layer is spread over the compute tiles (docs/spec.md section 8.1), and whether one
tile's share fits that tile's buffers (docs/accelerator.md).

One source for the rules that the compiler (`sparsemac.host.compiler`), the testbench driver
(`sparsemac.sim.accel_driver`) and the cycle estimates (`sparsemac.flow.cycles`) share with the
hardware.  Pure Python: never imports ``hw`` or Amaranth.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["pool_channel_split", "tile_row_split", "tile_col_split", "TILE_BUFFER_CHECKS",
           "nz_flag_depth",
           "tile_buffer_use", "tile_buffer_limits", "tile_buffer_shortfall", "tile_buffer_minimum",
           "BufferShortfall", "POOL_BUFFER_CHECKS", "pool_buffer_use", "pool_buffer_shortfall",
           "pool_buffer_fits"]


def tile_row_split(m: int, tiles: int) -> list[tuple[int, int]]:
    """The output rows ``[r0, r1)`` of ``W[M, K]`` each tile computes, tile 0 first.

    Tile ``t`` gets rows ``[t * c, min(M, (t + 1) * c))`` with ``c = ceil(M / tiles)``, as the
    hardware loads one weight image per tile back to back.  Tiles past the last row get no
    slice, so fewer than ``tiles`` pairs come back when ``M`` is not a multiple of ``c``
    (``M = 10, tiles = 4``: ``c = 3``, slices of 3, 3, 3 and 1 rows; ``M = 5, tiles = 4``:
    ``c = 2``, three slices of 2, 2 and 1).  This is not ``numpy.array_split``, which would
    balance the slices (3, 3, 2, 2).

    ``m`` must be at least 1 and ``tiles`` at least 1 (`ValueError` otherwise).
    """
    if isinstance(m, bool) or isinstance(tiles, bool) or int(m) != m or int(tiles) != tiles:
        raise ValueError(f"m and tiles must be ints, not {m!r} and {tiles!r}")
    m, tiles = int(m), int(tiles)
    if m < 1 or tiles < 1:
        raise ValueError(f"m and tiles must be at least 1, not m={m}, tiles={tiles}")
    c = -(-m // tiles)
    return [(r, min(m, r + c)) for r in range(0, m, c)]


def pool_channel_split(c: int, tiles: int) -> list[tuple[int, int]]:
    """The channels ``(first, count)`` each tile pools, tile 0 first: channel ``i`` goes to
    tile ``i % tiles``, so tile ``t`` pools ``t, t + tiles, t + 2 * tiles, ...`` (``count =
    ceil((C - t) / tiles)``), and each tile's next channel streams in while it pools the one
    before (the image arrives channel after channel, multicast to every tile).  Only the
    first ``min(C, tiles)`` tiles get channels (``C = 6, tiles = 4``: ``(0, 2), (1, 2),
    (2, 1), (3, 1)``; ``C = 3, tiles = 4``: three tiles of one channel).

    ``c`` and ``tiles`` must be ints of at least 1 (`ValueError` otherwise)."""
    if isinstance(c, bool) or isinstance(tiles, bool) or int(c) != c or int(tiles) != tiles:
        raise ValueError(f"c and tiles must be ints, not {c!r} and {tiles!r}")
    c, tiles = int(c), int(tiles)
    if c < 1 or tiles < 1:
        raise ValueError(f"c and tiles must be at least 1, not c={c}, tiles={tiles}")
    return [(t, -(-(c - t) // tiles)) for t in range(min(c, tiles))]


def tile_col_split(n: int, cols: int, col_split: int, tiles: int) -> list[tuple[int, int]]:
    """The column groups ``(cg0, groups)`` each tile computes when a layer's columns are split
    across tiles (descriptor field ``col_split``, docs/spec.md section 8.1), tile 0 first.

    Column group ``g`` is the columns ``[g * cols, (g + 1) * cols)`` of ``Y[M, N]``; tile ``t``
    computes groups ``[t * c, min(G, (t + 1) * c))`` with ``c = col_split / cols`` and
    ``G = ceil(n / cols)``; tiles past the last group get no slice (``n = 10, cols = 2,
    col_split = 4, tiles = 4``: ``[(0, 2), (2, 2), (4, 1)]``).  Every tile holds the whole
    weight image (all ``M`` rows) and the whole input.

    ``col_split`` must be a positive multiple of ``cols`` with ``col_split * tiles >= n``
    (`ValueError` otherwise: the descriptor checker's BAD_SHAPE).
    """
    for name, v in (("n", n), ("cols", cols), ("col_split", col_split), ("tiles", tiles)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive int, not {v!r}")
    n, cols, col_split, tiles = int(n), int(cols), int(col_split), int(tiles)
    if col_split % cols or col_split * tiles < n:
        raise ValueError(f"col_split must be a multiple of cols ({cols}) with col_split * "
                         f"tiles >= n ({n} over {tiles} tiles), not {col_split}")
    c, groups = col_split // cols, -(-n // cols)
    return [(g, min(c, groups - g)) for g in range(0, groups, c)]


# ---- does a layer fit one tile's buffers -------------------------------------------------------

#: The tile-buffer limits a layer can exceed, in the order `tile_buffer_shortfall` checks them:
#: ``{check: (AcceleratorConfig parameter, what is counted)}``.
TILE_BUFFER_CHECKS = {
    "weight_words": ("weight_buf_depth", "bus words of the tile's weight image"),
    "act_entries": ("act_buf_depth", "activation entries: ceil(N / cols) column groups x K"),
    "flag_words": ("act_buf_depth", "zero-flag words: ceil(N / cols) x ceil(K / axi_data_width)"),
    "image_entries": ("act_buf_depth", "conv2d input image entries: ceil(C*H*W / cols)"),
    "rows": ("out_buf_depth", "output rows of the tile's slice"),
}


def nz_flag_depth(act_buf_depth: int) -> int:
    """Words of a tile's activation zero-flag buffer: ``max(2, act_buf_depth // 8)``."""
    return max(2, int(act_buf_depth) // 8)


def tile_buffer_use(cfg, *, k: int, n: int, weight_bytes: int = 0, rows: int = 0,
                    image_bytes: int = 0) -> dict[str, int]:
    """What one tile's share of ``W[rows, K] @ X[K, N]`` takes of each limit in
    `TILE_BUFFER_CHECKS` (``{check: entries}``, same order).

    ``weight_bytes`` is the tile's weight image (``ceil(bytes / axi_bytes)`` bus words),
    ``image_bytes`` the conv2d input tensor (``0`` for a matmul, whose activations are the
    im2col entries themselves).  ``cfg`` is duck-typed: ``cols``, ``axi_data_width``.
    """
    cols, bus = int(cfg.cols), int(cfg.axi_data_width)
    ncg = -(-int(n) // cols)
    return {
        "weight_words": -(-int(weight_bytes) // (bus // 8)),
        "act_entries": ncg * int(k),
        "flag_words": ncg * -(-int(k) // bus),
        "image_entries": -(-int(image_bytes) // cols),
        "rows": int(rows),
    }


def tile_buffer_limits(cfg) -> dict[str, int]:
    """``{check: capacity}`` of one tile of ``cfg`` for each limit in `TILE_BUFFER_CHECKS`
    (``weight_buf_depth``, ``act_buf_depth``, `nz_flag_depth`, ``act_buf_depth``,
    ``out_buf_depth``)."""
    act = int(cfg.act_buf_depth)
    return {"weight_words": int(cfg.weight_buf_depth), "act_entries": act,
            "flag_words": nz_flag_depth(act), "image_entries": act,
            "rows": int(cfg.out_buf_depth)}


@dataclass(frozen=True)
class BufferShortfall:
    """One tile-buffer limit a layer exceeds: ``check`` (a key of `TILE_BUFFER_CHECKS`),
    ``parameter`` (the configuration parameter to raise), ``used`` and ``capacity`` (in that
    check's entries) and a one-line ``message``."""

    check: str
    parameter: str
    used: int
    capacity: int

    @property
    def message(self) -> str:
        what = TILE_BUFFER_CHECKS[self.check][1]
        return (f"{what}: {self.used} > {self.capacity} ({self.parameter}): raise "
                f"{self.parameter}")


def tile_buffer_shortfall(cfg, *, k: int, n: int, weight_bytes: int = 0, rows: int = 0,
                          image_bytes: int = 0,
                          checks=tuple(TILE_BUFFER_CHECKS)) -> BufferShortfall | None:
    """The first limit of ``checks`` (in `TILE_BUFFER_CHECKS` order) that one tile's share of
    the layer exceeds (see `tile_buffer_use`), or ``None`` when it fits.  The hardware refuses
    such a layer (``BAD_SHAPE`` / ``BAD_SIZE``) or, on a bare tile, raises ``overflow``."""
    use = tile_buffer_use(cfg, k=k, n=n, weight_bytes=weight_bytes, rows=rows,
                          image_bytes=image_bytes)
    cap = tile_buffer_limits(cfg)
    for check in TILE_BUFFER_CHECKS:
        if check in checks and use[check] > cap[check]:
            return BufferShortfall(check, TILE_BUFFER_CHECKS[check][0], use[check], cap[check])
    return None


def tile_buffer_minimum(cfg, *, k: int, n: int, weight_bytes: int = 0, rows: int = 0,
                        image_bytes: int = 0) -> dict[str, int]:
    """The smallest ``act_buf_depth``, ``weight_buf_depth`` and ``out_buf_depth`` (in that
    order) that fit one tile's share of the layer (`tile_buffer_use`): every check of a
    parameter passes at that value.  ``act_buf_depth`` must hold the im2col entries, the image
    entries and, past the two-word minimum of `nz_flag_depth`, eight per flag word."""
    use = tile_buffer_use(cfg, k=k, n=n, weight_bytes=weight_bytes, rows=rows,
                          image_bytes=image_bytes)
    flags = 8 * use["flag_words"] if use["flag_words"] > nz_flag_depth(0) else 0
    return {"act_buf_depth": max(use["act_entries"], use["image_entries"], flags),
            "weight_buf_depth": use["weight_words"], "out_buf_depth": use["rows"]}


# ---- does a pool fit one tile's buffers --------------------------------------------------------

#: The tile-buffer limits a pool can exceed, in `TILE_BUFFER_CHECKS` order (a pool has no
#: weight image and no zero-flag words).
POOL_BUFFER_CHECKS = ("act_entries", "image_entries", "rows")


def pool_buffer_use(cfg, *, c: int, h: int, w: int, kh: int, kw: int, sh: int = 1,
                    sw: int = 1, ph: int = 0, pw: int = 0) -> dict[str, int]:
    """What one tile's share of an int8 pool (docs/spec.md sections 2.3 and 8.2) takes of each
    limit of `POOL_BUFFER_CHECKS` (``{check: entries}``, same order).

    The tiles split the ``C`` channels interleaved (`pool_channel_split`: the busiest tile
    pools ``rows = ceil(C / tiles)`` of them, one output row each); each channel's windows are
    gathered like a conv's im2col, ``ceil(OH*OW / cols)`` column groups of ``KH*KW`` entries,
    so a tile holds ``ceil(OH*OW / cols) * rows * KH*KW`` activation entries; the input image
    goes whole to every tile (``C*H*W`` int8, ``ceil(C*H*W / cols)`` entries), unless a plane
    ``H*W`` is a whole number of bus words (``axi_data_width / 8`` bytes): then each tile gets
    only its own planes (`golden.net_pool.pool_unicast`, session 26), ``rows*H*W`` bytes.
    ``OH = (H + 2*ph - KH) // sh + 1`` (``OW`` alike).  A global average pool is the one
    window ``(kh, kw) = (h, w)``, stride 1, no padding.  ``cfg`` is duck-typed: ``cols``,
    ``tiles``, ``axi_data_width``.

    Raises
    ------
    ValueError
        A size, kernel or stride below 1, a padding below 0, or a kernel larger than the
        padded input.
    """
    geo = dict(c=c, h=h, w=w, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw)
    for name, v in geo.items():
        lo = 0 if name in ("ph", "pw") else 1
        if isinstance(v, bool) or int(v) != v or v < lo:
            raise ValueError(f"{name} must be an int of at least {lo}, not {v!r}")
    c, h, w, kh, kw, sh, sw, ph, pw = (int(v) for v in geo.values())
    if h + 2 * ph < kh or w + 2 * pw < kw:
        raise ValueError(f"kernel {(kh, kw)} must fit the padded input "
                         f"{(h + 2 * ph, w + 2 * pw)}")
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    rows = max(r1 - r0 for r0, r1 in tile_row_split(c, int(cfg.tiles)))
    planes = (h * w) % (int(cfg.axi_data_width) // 8) == 0      # sent plane by plane
    use = tile_buffer_use(cfg, k=rows * kh * kw, n=oh * ow, rows=rows,
                          image_bytes=(rows if planes else c) * h * w)
    return {check: use[check] for check in POOL_BUFFER_CHECKS}


def pool_buffer_shortfall(cfg, **geometry) -> BufferShortfall | None:
    """The first limit of `POOL_BUFFER_CHECKS` that one tile's share of the pool exceeds
    (`pool_buffer_use`, same keyword arguments), or ``None`` when it fits.  The hardware
    refuses such a pool with ``BAD_SHAPE`` after the descriptor's field checks (the
    DescChecker's ``act_fits``)."""
    use, cap = pool_buffer_use(cfg, **geometry), tile_buffer_limits(cfg)
    for check in POOL_BUFFER_CHECKS:
        if use[check] > cap[check]:
            return BufferShortfall(check, TILE_BUFFER_CHECKS[check][0], use[check], cap[check])
    return None


def pool_buffer_fits(cfg, **geometry) -> bool:
    """Whether one tile's share of the pool fits the tile's buffers (`pool_buffer_shortfall`
    is ``None``): ``C*H*W <= act_buf_depth * cols`` (``rows*H*W`` when ``H*W`` is a whole
    number of bus words), ``ceil(OH*OW / cols) * rows * KH*KW <= act_buf_depth`` and
    ``rows = ceil(C / tiles) <= out_buf_depth``."""
    return pool_buffer_shortfall(cfg, **geometry) is None
