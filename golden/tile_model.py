"""Cycle model of the compute tile (hw/tile.py, docs/tile.md): pure NumPy, no hardware import.

The model follows the micro-architecture record by record: per lane, the segment fetcher walks
the row's memory words (set-up 2 cycles, 3 for ``block``; one cycle per word while the 4-deep
FIFO has room; a fetched word is registered once (stage e) before its candidates are formed;
empty words are dropped, non-empty words and end-of-row tokens enter the FIFO), and the
scanner emits one pair per cycle per candidate of a word plus one cycle per end token, through
one output register (the pick, then the pair's arithmetic).
The recurrence below is the exact timing of those two stages (FIFO occupancy included); only
the result drain is assumed never to back-pressure the lanes.  ``cfg`` is duck-typed:
``rows``, ``cols``, ``axi_data_width``, ``mul_pipeline``.
"""

from __future__ import annotations

import numpy as np

from .formats import HEADER_BYTES, PackedWeights

__all__ = ["tile_cycles", "lane_records", "lane_tokens", "lane_token_iter", "group_gated",
           "gather_gate", "weight_waits", "compute_tail", "FIFO_DEPTH", "WORD_TO_ISSUE"]

FIFO_DEPTH = 4
_SETUP = {"dense": 2, "nm": 2, "bitmap": 2, "block": 3}
# calibration against the RTL: cycles from the start pulse to the first ROW0 cycle, and from
# the last end token to the tile leaving COMPUTE (fetch + MAC latency + result FIFO + pop)
_START = 1
_TAIL = 4
_LOAD_EXTRA = 2
#: The header's last word written -> the lanes may start (their operands are registered).
_HEADER_SETTLE = 2
#: A weight word written in cycle t -> the first cycle a fetch of it may issue (the tile's
#: word count, the lane's registered limit).
WORD_TO_ISSUE = 2
# calibration against the RTL: the im2col gather's first entry readable ``cols + this``
# cycles after the start pulse (`gather_gate`)
_GATHER_FIRST = 5


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


def _row_ks(pw: PackedWeights, m: int, K: int, cache: dict) -> np.ndarray:
    """K index of every pair of row ``m``, in issue order (dense, nm, block; bitmap without
    zero-activation skipping: the mask bits)."""
    fmt = pw.fmt
    if fmt == "dense":
        return np.arange(K, dtype=np.int64)
    if fmt == "nm":
        if "nm" not in cache:     # group g's stored index i is k = g * M + i
            cache["nm"] = ((np.arange(pw.ngroups, dtype=np.int64)[:, None] * pw.param_b
                            + pw.indices.astype(np.int64)), pw.values != 0)
        ks, nz = cache["nm"]
        return ks[m][nz[m]]
    if fmt == "block":
        b = pw.param_a
        if "blk" not in cache:
            cache["blk"] = (pw.blk_ptr.astype(np.int64), pw.blk_col.astype(np.int64),
                            pw.values)
        ptr, col, vals = cache["blk"]
        br, rib = divmod(m, b)
        out = [col[j] * b + np.flatnonzero(vals[j][rib]) for j in range(ptr[br], ptr[br + 1])]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
    if "bm" not in cache:
        cache["bm"] = np.unpackbits(pw.mask_bytes, axis=-1, bitorder="little").reshape(
            pw.shape[0], -1)
    return np.flatnonzero(cache["bm"][m][:K])


def gather_gate(cfg) -> int:
    """Cycles from the start of the lanes (and of the im2col gather) to the first cycle a pair
    may read activation entry 0: the gather unit's set-up (one cycle per column), its two
    pipeline stages and the buffer write (hw/tile/im2col_address.py, hw/tile/tile.py).  Entry
    ``e`` is readable ``e`` cycles later."""
    return int(cfg.cols) + _GATHER_FIRST


def compute_tail(cfg) -> int:
    """Cycles from a lane's last end token to the tile leaving COMPUTE (the pair register,
    the fetch, the MAC pipeline, the result FIFO and its pop)."""
    return int(getattr(cfg, "mul_pipeline", 2)) + 2 + _TAIL


def weight_waits(pw: PackedWeights) -> bool:
    """A bitmap layer's lanes start once its whole weight image is in (a value's address is
    known only from its row's mask); the other formats start with the header and fetch each
    word once it is in (`lane_token_iter`'s ``wavail``)."""
    return pw.fmt == "bitmap"


def group_gated(pw: PackedWeights, act_skip: bool) -> bool:
    """Bitmap skipping zero activations reads a column group's activation flag words when a
    row of that group starts fetching: the lanes start with the im2col gather (or with the
    matmul entries still arriving) like every format, and a row of group ``cg`` fetches its
    first word once the group's last entry is in (the lane decoder's ``cg_avail``, since
    session 24; before, such a layer waited for the whole gather)."""
    return pw.fmt == "bitmap" and act_skip


def lane_records(pw: PackedWeights, X, cfg, act_skip: bool = False, *, with_k: bool = False):
    """Per lane, a list of rows ``(setup_cycles, candidates per word, cg, ks per word, need,
    ptr)`` in issue order.

    ``with_k``: each row carries its column group and the K index of every pair per word, for
    the gather gating of `lane_tokens` (else both are None).  ``need``: per fetched word, the
    image word (bus words from the header on) that must be in the weight buffer before the
    fetch issues (dense and block: the value word; nm: its index word); ``ptr``: the pointer
    word the row's set-up reads (block), else -1.  Bitmap rows need nothing: a bitmap layer
    starts once its whole image is in."""
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
    cache: dict = {}
    fmt = pw.fmt
    if fmt == "block":
        b = pw.param_a
        bptr = pw.blk_ptr.astype(np.int64)
    if fmt == "bitmap":
        g = pw.param_a
        ng = _cdiv(K, g)
        bits = np.unpackbits(pw.mask_bytes, axis=-1, bitorder="little").reshape(M, ng * g)
    none = np.zeros(0, dtype=np.int64)
    for m in range(M):
        for cg in range(ncg):
            ptr = -1
            if fmt == "dense":
                s = pw.sec_a + m * K
                counts = _word_counts(np.ones(K, dtype=bool), s, wb)
                need = s // wb + np.arange(counts.size)
            elif fmt == "nm":
                n_, mm = pw.param_a, pw.param_b
                length = _cdiv(K, mm) * n_
                s = pw.sec_a + m * length
                counts = _word_counts(nzimg[s:s + length], s, wb)
                need = (s + pw.sec_b - pw.sec_a) // wb + np.arange(counts.size)
            elif fmt == "bitmap":
                row = bits[m].astype(bool)
                if act_skip:
                    row = row.copy()
                    row[:K] &= xnz[cg]
                s = pw.sec_b * 8 + m * ng * g
                counts = _word_counts(row, s, 8 * wb)
                need = np.full(counts.size, -1, dtype=np.int64)
            else:
                br, rib = divmod(m, b)
                parts, needs = [], []
                for j in range(bptr[br], bptr[br + 1]):
                    s = pw.sec_c + j * b * b + rib * b
                    parts.append(_word_counts(nzimg[s:s + b], s, wb))
                    needs.append(s // wb + np.arange(parts[-1].size))
                counts = np.concatenate(parts) if parts else none
                need = np.concatenate(needs) if needs else none
                ptr = (pw.sec_a + 4 * br + 4) // wb
            if with_k:
                ks = _row_ks(pw, m, K, cache)
                if fmt == "bitmap" and act_skip:
                    ks = ks[xnz[cg][ks]]
                words = np.split(ks, np.cumsum(counts)[:-1]) if counts.size else []
                per_lane[m % rows].append((_SETUP[fmt], counts, cg, words, need, ptr))
            else:
                per_lane[m % rows].append((_SETUP[fmt], counts, None, None, need, ptr))
    return per_lane


def lane_tokens(items, start: int, gate: tuple[int, int] | None = None,
                wavail=None) -> list[int]:
    """Per row item of a lane, the cycle its end token leaves the scanner (see the module
    docstring); the last one is the lane's finish (`_lane_finish`).

    ``gate = (first, K)``: the items come from ``lane_records(..., with_k=True)`` and the im2col
    gather runs alongside: activation entry ``cg * K + k`` can be read from cycle
    ``first + cg * K + k`` on, so a pair waits in the pair register until then and the
    scanner behind it stalls.  ``gate = (first, K, True)`` (`group_gated`): also a row of
    group ``cg`` fetches its first word from cycle ``first + (cg + 1) * K`` on (its flag
    words are in).  ``wavail``: the weight image is still arriving; ``wavail(w)``
    is the first cycle the fetcher may issue a read of image word ``w`` (`lane_records`'
    ``need`` and ``ptr``); None: the image is in."""
    return list(lane_token_iter(items, start, gate, wavail))


def lane_token_iter(items, start: int, gate=None, wavail=None, fired=None):
    """`lane_tokens` as a generator, for a replay that learns the weight words' arrival as it
    goes: ``wavail(w)`` may return None (not known yet: the word is not in), and the
    generator then yields None and asks again when resumed; every token it yields is final.

    ``fired``: a list ``[None, 0]``; the replay sets ``fired[0]``, before it resumes the
    generator after a token, to the cycle that token really left the pair register (later
    than yielded when the lane's results back up: the tile's ``pending`` limit,
    hw/tile/tile.py); the scanner behind it stalls until then, and the later tokens catch up
    as far as their own pairs allow (not one shift for all).  ``fired[1]`` sums the stalls."""
    take: list[int] = []
    f_prev = -(1 << 60)
    e_push = -(1 << 60)     # the cycle the fetched-word register (stage e) last emptied
    t_row = start

    def when(w):            # generator helper: the word's issue cycle, waiting until known
        while True:
            a = wavail(w)
            if a is not None:
                return a
            yield None

    for item in items:
        setup, counts = item[0], item[1]
        need = item[4] if wavail is not None and len(item) > 4 else None
        if gate is not None:
            words = item[3]
            g0 = gate[0] + item[2] * gate[1]
        if need is not None and item[5] >= 0:      # the row set-up's pointer words
            a = yield from when(int(item[5]))
            t_row = max(t_row, a)
        i = t_row + setup
        if gate is not None and len(gate) > 2 and gate[2]:
            i = max(i, g0 + gate[1])        # the group's flag words are in
        for w, c in enumerate(counts.tolist()):
            if need is not None and need[w] >= 0:   # the word must be in the buffer
                a = yield from when(int(need[w]))
                i = max(i, a)
            # issued at i; its data stage d moves into e when e is free; e pushes into the
            # FIFO when it has room (every word, even a dropped one, waits for room)
            r = len(take)
            dt = max(i + 1, e_push)
            pe = dt + 1
            if r >= FIFO_DEPTH:
                pe = max(pe, take[r - FIFO_DEPTH] + 1)
            e_push = pe
            i = dt
            if c == 0:
                continue
            es = max(f_prev + 1, pe + 2)
            take.append(es - 1)
            if gate is None:
                f_prev = es + c - 1
            else:
                # a pair picked at s is in the decoder's output register at s + 1 and in the
                # tile's pair register at s + 2: it fires at max(s + 2, its entry), the next
                # one a cycle after it at the earliest
                e = es + 1
                for k in words[w].tolist():
                    e = max(e + 1, g0 + k)
                f_prev = e - 2
        r = len(take)
        dt = max(i + 1, e_push)
        pe = dt + 1
        if r >= FIFO_DEPTH:
            pe = max(pe, take[r - FIFO_DEPTH] + 1)
        e_push = pe
        es = max(f_prev + 1, pe + 2)
        take.append(es - 1)
        f_prev = es
        t_row = dt + 1
        yield f_prev + 1      # the token leaves the decoder's output register
        if fired is not None and fired[0] is not None and fired[0] - 1 > f_prev:
            fired[1] += fired[0] - 1 - f_prev       # the stall, summed (``fired[1]``)
            f_prev = fired[0] - 1


def _lane_finish(items, start: int, gate=None, wavail=None) -> int:
    """Cycle of the lane's last emitted token (see the module docstring)."""
    ends = lane_tokens(items, start, gate, wavail)
    return ends[-1] if ends else -(1 << 60)


def tile_cycles(pw: PackedWeights, X, cfg, *, act_skip: bool = False,
                image_bytes: int | None = None, cg0: int = 0) -> dict:
    """Predicted cycles of ``Y = W @ X`` on one tile.

    For conv2d, ``X`` is the im2col matrix and ``image_bytes`` the input tensor size: the
    image is loaded raw (a bus word per beat), then the im2col generator writes one
    activation entry per cycle while the lanes already run (a pair waits for its entry,
    `lane_tokens` with a gate; bitmap skipping zero activations: a row waits for its column
    group's entries, `group_gated`).  ``cg0``: the tile computes a column slice
    starting at column group ``cg0`` (``X`` holds the slice's columns): the gather first
    steps over ``cg0`` groups, one cycle each.

    Returns
    -------
    dict
        ``cycles`` (compute: start of the lanes to the tile leaving COMPUTE),
        ``load_cycles`` (command to compute start), ``total_cycles``, ``pairs`` (MAC cycles
        issued per lane, summed), ``lane_cycles`` (per-lane finish).
    """
    X = np.asarray(X)
    K, N = X.shape
    cols = int(cfg.cols)
    wb = int(cfg.axi_data_width) // 8
    ncg = _cdiv(N, cols)
    conv = image_bytes is not None
    grouped = group_gated(pw, act_skip)
    # the load: a weight word and an activation entry (a conv2d image word) per cycle, side by
    # side; the lanes start once the header is in (+ 2 cycles) and the activations (or the
    # image) are, and a bitmap layer once its whole image is in
    words = _cdiv(pw.nbytes, wb)
    acts = ncg * K if not conv else _cdiv(image_bytes, wb)
    # a matmul's lanes run while its entries arrive
    ld = _cdiv(HEADER_BYTES, wb) + _HEADER_SETTLE
    if conv:
        ld = max(ld, acts)
    if weight_waits(pw):
        ld = max(ld, words)
    load = ld + _LOAD_EXTRA
    if conv:
        gate = (gather_gate(cfg) + cg0, K, grouped)
    else:       # entry e is written in load cycle e, a pair may read it a cycle later
        gate = (1 - ld, K, grouped)
    lanes = lane_records(pw, X, cfg, act_skip, with_k=gate is not None)
    # weight word w is written in load cycle w: its fetch may issue WORD_TO_ISSUE cycles later
    wavail = None if weight_waits(pw) else (lambda w: w + WORD_TO_ISSUE + _LOAD_EXTRA - load)
    fin = [(_lane_finish(items, _START, gate, wavail) if items else 0) for items in lanes]
    compute = max(fin) + compute_tail(cfg)
    if conv:                            # COMPUTE also waits for the end of the gather
        compute = max(compute, gather_gate(cfg) + cg0 + ncg * K)
    # ... and for the whole weight image and every matmul entry
    compute = max(compute, words + _LOAD_EXTRA - load, (acts - ld) if not conv else 0)
    pairs = int(sum(int(it[1].sum()) for items in lanes for it in items))
    return {"cycles": int(compute), "load_cycles": int(load),
            "total_cycles": int(compute + load), "pairs": pairs, "lane_cycles": fin}
