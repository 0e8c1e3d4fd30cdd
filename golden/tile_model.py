"""Cycle model of the compute tile (hw/tile.py, docs/tile.md): pure NumPy, no hardware import.

The model follows the micro-architecture record by record: per lane, the segment fetcher walks
the row's memory words (set-up 2 cycles, 3 for ``block``; one cycle per word while the 4-deep
FIFO has room; empty words are dropped, non-empty words and end-of-row tokens enter the FIFO),
and the scanner emits one pair per cycle per candidate of a word plus one cycle per end token.
The recurrence below is the exact timing of those two stages (FIFO occupancy included); only
the result drain is assumed never to back-pressure the lanes.  ``cfg`` is duck-typed:
``rows``, ``cols``, ``axi_data_width``, ``mul_pipeline``.
"""

from __future__ import annotations

import numpy as np

from .formats import PackedWeights

__all__ = ["tile_cycles", "lane_records", "FIFO_DEPTH"]

FIFO_DEPTH = 4
_SETUP = {"dense": 2, "nm": 2, "bitmap": 2, "block": 3}
# calibration against the RTL: cycles from the start pulse to the first ROW0 cycle, and from
# the last end token to the tile leaving COMPUTE (fetch + MAC latency + result FIFO + pop)
_START = 1
_TAIL = 4
_LOAD_EXTRA = 2


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _word_counts(flags: np.ndarray, start: int, unit: int) -> np.ndarray:
    """Per memory word, the candidates of the unit range ``[start, start + len(flags))``."""
    if flags.size == 0:
        return np.zeros(0, dtype=np.int64)
    first = start // unit
    bounds = np.arange(first + 1, (start + flags.size - 1) // unit + 1) * unit - start
    idx = np.concatenate([[0], bounds]).astype(np.int64)
    return np.add.reduceat(flags.astype(np.int64), idx)


def lane_records(pw: PackedWeights, X, cfg, act_skip: bool = False):
    """Per lane, a list of rows ``(setup_cycles, candidates per word)`` in issue order."""
    M, K = pw.shape
    X = np.asarray(X)
    N = X.shape[1]
    rows, cols, wb = int(cfg.rows), int(cfg.cols), int(cfg.axi_data_width) // 8
    ncg = _cdiv(N, cols)
    img = pw.image
    nzimg = img != 0
    xnz = np.zeros((K, ncg * cols), dtype=bool)
    xnz[:, :N] = X != 0
    xnz = xnz.reshape(K, ncg, cols).any(axis=2).T  # (ncg, K): entry non-zero
    per_lane = [[] for _ in range(rows)]
    fmt = pw.fmt
    if fmt == "block":
        b = pw.param_a
        ptr = pw.blk_ptr.astype(np.int64)
    if fmt == "bitmap":
        g = pw.param_a
        ng = _cdiv(K, g)
        bits = np.unpackbits(pw.mask_bytes, axis=-1, bitorder="little").reshape(M, ng * g)
    for m in range(M):
        for cg in range(ncg):
            if fmt == "dense":
                s = pw.sec_a + m * K
                counts = _word_counts(np.ones(K, dtype=bool), s, wb)
            elif fmt == "nm":
                n_, mm = pw.param_a, pw.param_b
                length = _cdiv(K, mm) * n_
                s = pw.sec_a + m * length
                counts = _word_counts(nzimg[s:s + length], s, wb)
            elif fmt == "bitmap":
                row = bits[m].astype(bool)
                if act_skip:
                    row = row.copy()
                    row[:K] &= xnz[cg]
                s = pw.sec_b * 8 + m * ng * g
                counts = _word_counts(row, s, 8 * wb)
            else:
                br, rib = divmod(m, b)
                parts = []
                for j in range(ptr[br], ptr[br + 1]):
                    s = pw.sec_c + j * b * b + rib * b
                    parts.append(_word_counts(nzimg[s:s + b], s, wb))
                counts = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            per_lane[m % rows].append((_SETUP[fmt], counts))
    return per_lane


def lane_tokens(items, start: int) -> list[int]:
    """Per row item of a lane, the cycle its end token leaves the scanner (see the module
    docstring); the last one is the lane's finish (`_lane_finish`)."""
    take: list[int] = []
    f_prev = -(1 << 60)
    t_row = start
    out = []
    for setup, counts in items:
        i = t_row + setup
        for c in counts.tolist():
            r = len(take)
            p = i + 1
            if r >= FIFO_DEPTH:     # every word, even a dropped one, waits for FIFO room
                p = max(p, take[r - FIFO_DEPTH] + 1)
            if c == 0:
                i = p
                continue
            es = max(f_prev + 1, p + 2)
            take.append(es - 1)
            f_prev = es + c - 1
            i = p
        r = len(take)
        p = i + 1
        if r >= FIFO_DEPTH:
            p = max(p, take[r - FIFO_DEPTH] + 1)
        es = max(f_prev + 1, p + 2)
        take.append(es - 1)
        f_prev = es
        t_row = p + 1
        out.append(f_prev)
    return out


def _lane_finish(items, start: int) -> int:
    """Cycle of the lane's last emitted token (see the module docstring)."""
    ends = lane_tokens(items, start)
    return ends[-1] if ends else -(1 << 60)


def tile_cycles(pw: PackedWeights, X, cfg, *, act_skip: bool = False,
                image_bytes: int | None = None) -> dict:
    """Predicted cycles of ``Y = W @ X`` on one tile.

    For conv2d, ``X`` is the im2col matrix and ``image_bytes`` the input tensor size: the
    image is loaded raw (``cols`` bytes per beat), then the im2col generator writes one
    activation entry per cycle before the lanes start.

    Returns
    -------
    dict
        ``cycles`` (compute: start of the lanes to the tile leaving COMPUTE),
        ``load_cycles`` (command to compute start), ``total_cycles``, ``pairs`` (MAC cycles
        issued per lane, summed), ``lane_cycles`` (per-lane finish).
    """
    X = np.asarray(X)
    K, N = X.shape
    wb = int(cfg.axi_data_width) // 8
    ncg = _cdiv(N, int(cfg.cols))
    if image_bytes is None:
        load = max(_cdiv(pw.nbytes, wb), ncg * K) + _LOAD_EXTRA
    else:
        # + the im2col unit's set-up (one cycle per column) and its two pipeline stages
        # (hw/im2col_address.py)
        load = max(_cdiv(pw.nbytes, wb), _cdiv(image_bytes, int(cfg.cols))) + ncg * K \
            + _LOAD_EXTRA + 4 + int(cfg.cols)
    lanes = lane_records(pw, X, cfg, act_skip)
    fin = [(_lane_finish(items, _START) if items else 0) for items in lanes]
    lat = int(getattr(cfg, "mul_pipeline", 2)) + 2   # pair register + fetch + MAC pipeline
    compute = max(fin) + lat + _TAIL
    pairs = int(sum(int(c.sum()) for items in lanes for _, c in items))
    return {"cycles": int(compute), "load_cycles": int(load),
            "total_cycles": int(compute + load), "pairs": pairs, "lane_cycles": fin}
