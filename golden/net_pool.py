"""Cycle model of a pool descriptor (max, average, global average pool) on the whole
accelerator (docs/accelerator.md "Pooling"), with the phases and keys of
`golden.net_cycles.descriptor_cycles`.

The sequencer fetches and checks the descriptor (`pool_checker_cycles`: the DescChecker's op
list for a pool), starts the tiles with their channel shares (two cycles each), multicasts
the input image (read once), passes the empty BODIES loop and waits.  Each tile loads the
whole image, then gathers its own channels' windows (``ceil(OH*OW / cols) * rows * KH*KW``
entries, one per cycle, `golden.tile_model.gather_gate` after the load) and its
`PoolReducer` reads them back behind the gather (`pool_tokens`: a window's result after its
last entry, the average's division `pool_divide_beats` cycles); the results, ring and
ResultWriter are replayed cycle by cycle by `golden.net_tail._tail` as for every layer.
Pure Python (no hardware import).
"""

from __future__ import annotations

from types import SimpleNamespace

from .descriptors import DESC_BYTES, Opcode
from .net_cycles import (
    _DIV_STEPS,
    _SHIFT_DIVISORS,
    PREFETCH_START,
    _read,
    _report,
    _result_buf,
    _result_flits,
)
from .net_replay import _ACTS, _TOKEN_FIRE, _cdiv, _Node
from .net_tail import _tail
from .tile_model import gather_gate
from .tiling import tile_row_split

__all__ = ["pool_descriptor_cycles", "pool_checker_cycles", "pool_tokens", "POOL_OPCODES",
           "pool_divider_lanes", "pool_divide_beats"]

POOL_OPCODES = (Opcode.MAXPOOL2D, Opcode.AVGPOOL2D, Opcode.GLOBAL_AVGPOOL)
#: the PoolReducer's reciprocal: a 26-step divider from the gather's start
_RECIP_CYCLES = 27


def pool_divider_lanes(cols: int) -> int:
    """Columns the PoolReducer divides per cycle (hw/tile/pool_reducer.py, one 16 x 26-bit
    product each): the fewest that divide ``cols`` and finish a row in at most 4 cycles, so a
    window of 6 or more entries (2x3 and up) never waits for the division."""
    return next(d for d in range(1, cols + 1) if cols % d == 0 and cols // d <= 4)


def pool_divide_beats(cols: int) -> int:
    """Cycles the PoolReducer divides one average row in: one for the first group's
    reciprocals (registered), ``cols / pool_divider_lanes`` groups of products, registered,
    and one more for the last group's quotients."""
    return cols // pool_divider_lanes(cols) + 2


def _geometry(d):
    """``(kh, kw, oh, ow)`` of pool descriptor ``d`` (a global pool: one ``H x W`` window)."""
    if d.opcode == Opcode.GLOBAL_AVGPOOL:
        return d.h, d.w, 1, 1
    oh = (d.h + 2 * d.pad_h - d.kh) // d.stride_h + 1
    ow = (d.w + 2 * d.pad_w - d.kw) // d.stride_w + 1
    return d.kh, d.kw, oh, ow


def pool_checker_cycles(d, cfg) -> int:
    """Cycles of the DescChecker on pool descriptor ``d`` (hw/hub/desc_checker.py's op list:
    one LOAD cycle per op, a product ``2 + bits(b)``, a quotient ``2 + 24`` (a stride of 1, 2,
    4 or 8: 1); the window
    geometry is skipped for a global pool, the flag words for every pool)."""
    cols, tiles = int(cfg.cols), int(cfg.tiles)
    glob = d.opcode == Opcode.GLOBAL_AVGPOOL
    kh, kw, oh, ow = _geometry(d)

    def mul(b, when=True):
        return 2 + int(b).bit_length() if when else 1

    def div(when=True, by=None):
        return 2 + _DIV_STEPS if when and by not in _SHIFT_DIVISORS else 1

    ncg = _cdiv(d.n & 0xFFFF, cols)
    c = 1 + 1
    c += mul((d.kh - 1) & 0xFF, not glob) + mul((d.kw - 1) & 0xFF, not glob)
    c += 2 + div(not glob, d.stride_h) + div(not glob, d.stride_w) + 1
    c += mul(kh) + mul(kw) + mul(ow, not glob)             # KK, oh * ow
    c += mul(d.h) + mul(d.w) + mul(d.n & 0xFFFF)           # C*H*W, m * n
    c += 1 if cols & (cols - 1) == 0 else div()           # ncg
    c += 1 + 1 + 1 + 1                                     # chunk, *cols, *tiles, groups
    c += mul(ncg)                                          # ncg * KK
    if tiles & (tiles - 1):
        c += div()                                         # ceil(C / tiles)
    c += mul(_cdiv(d.m, tiles))                            # * pool_rows
    c += 1                                                 # flag words: skipped
    c += 3                                                 # ends, rules, code
    return c


def pool_tokens(windows: int, kk: int, *, gate: int, avg: bool, bpr: int) -> list[int]:
    """Cycles (from the tile's LOAD exit) at which each window's result enters lane 0's
    result FIFO (hw/tile/pool_reducer.py): entry ``e`` is written at ``gate + e``; the reducer
    reads one entry per cycle once it is written and its reciprocal is ready; a window's last
    entry only when the hold register is free from the cycle after on (the window before
    moves on in that cycle at the latest) and no other last entry is on its way; the result
    then takes three cycles into the hold register (the read, a register, the accumulate) and
    one (max) or ``bpr`` (average, `pool_divide_beats`) into the output register, which the
    FIFO takes a cycle later."""
    out = []
    t = -1
    hold_free = 0
    e = 0
    for _ in range(windows):
        for j in range(kk):
            r = max(t + 1, gate + e + 1, _RECIP_CYCLES)
            if j == kk - 1:
                r = max(r, hold_free)
            t, e = r, e + 1
        o_at = t + 3 + (bpr if avg else 1)
        hold_free = max(t + 3, o_at - 1)
        out.append(o_at + 1)
    return out


def pool_descriptor_cycles(d, cfg, *, first: bool = False, prev_wait: int | None = None) -> dict:
    """Cycles of pool descriptor ``d`` on the accelerator ``cfg``, phase by phase (the keys of
    `golden.net_cycles.descriptor_cycles`; ``headers`` are the channel shares' two cycles per
    started tile)."""
    rows_, cols, tiles = int(cfg.rows), int(cfg.cols), int(cfg.tiles)
    beat = int(cfg.axi_data_width) // 8
    payload = int(getattr(cfg, "ring_payload_width", 64))
    depth = int(getattr(cfg, "ring_fifo_depth", 4))
    outstanding = int(getattr(cfg, "max_outstanding", 4))
    dbytes = (payload - 32) // 8
    kh, kw, oh, ow = _geometry(d)
    kk, n = kh * kw, oh * ow
    ncg = _cdiv(n, cols)
    avg = d.opcode != Opcode.MAXPOOL2D
    ph = {}
    fetch = _read(_cdiv(DESC_BYTES, beat)) + pool_checker_cycles(d, cfg)
    if prev_wait is None or first:
        ph["fetch_check"] = (2 if first else 0) + 2 + fetch + 1
    else:
        ph["fetch_check"] = 2 + max(0, fetch + PREFETCH_START - prev_wait)
    shares = tile_row_split(d.m, tiles)
    ph["headers"] = 2 * len(shares)
    gate = gather_gate(SimpleNamespace(cols=cols))
    nodes = []
    for t, (c0, c1) in enumerate(shares):
        rows = c1 - c0
        toks = pool_tokens(ncg * rows, kk, gate=gate, avg=avg, bpr=pool_divide_beats(cols))
        flits = [_result_flits(c0 + w % rows, w // rows, n, cols, 1, dbytes)
                 for w in range(len(toks))]
        nd = _Node(t, [([x - _TOKEN_FIRE for x in toks], flits)], 0, 1, 0, _result_buf(cfg))
        nd.compute = toks[-1] + 1
        nodes.append(nd)
    act_words = _cdiv(d.c * d.h * d.w, beat)
    mcast = sum(1 << (t + 1) for t in range(len(shares)))
    program = [("tables", 1, None, 0, None),
               ("acts", 2, "dma", act_words, (mcast, _ACTS, 0, 0)),
               ("bodies", len(shares) + 1, None, 0, None)]
    lines = min(16, max(2, rows_ * tiles))
    limit = 64 * (act_words + 1000 + sum(nd.compute for nd in nodes)
                  + 8 * _cdiv(d.m * n, beat))
    starts, end, info = _tail(program, nodes, tiles=tiles, depth=depth, beat=beat,
                              lines=lines, cols=cols, lut_words=0, quant_words=0,
                              act_words=act_words, image_entries=act_words, limit=limit,
                              outstanding=outstanding)
    out = _report(ph, starts, end, info, nodes, [0] * len(nodes))
    for t in out["tiles"]:
        t["loaded"] = 0
    return out
