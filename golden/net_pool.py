"""Cycle model of a pool descriptor (max, average, global average pool) on the whole
accelerator (docs/accelerator.md "Pooling"), with the phases and keys of
`golden.net_cycles.descriptor_cycles`.

The sequencer fetches and checks the descriptor (`pool_checker_cycles`: the DescChecker's op
list for a pool), starts the tiles with their channel shares (two cycles each; the channels
interleaved over the tiles, `golden.tiling.pool_channel_split`), multicasts the input image
(read once), passes the empty BODIES loop and waits.  Each tile pools its channels one after
the other, each as soon as its plane is in (the replay records the cycle the tile takes each
image word): the gather of its ``ceil(OH*OW / cols) * KH*KW`` entries, one per cycle
(`golden.tile_model.gather_gate` after its start), and the `PoolReducer` reading them back
behind it (`pool_channel_tokens`: a window's result after its last entry, the average's
division `pool_divide_beats` cycles); the results, ring and ResultWriter are replayed cycle
by cycle by `golden.net_tail._tail` as for every layer.
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
from .net_replay import _ACTS, _cdiv, _Node
from .net_tail import _tail
from .tile_model import gather_gate
from .tiling import pool_channel_split

__all__ = ["pool_descriptor_cycles", "pool_checker_cycles", "pool_channel_tokens", "plane_words",
           "POOL_OPCODES", "pool_divider_lanes", "pool_divide_beats"]

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
    c += mul(d.w) + mul(d.c) + mul(d.n & 0xFFFF)           # H*W, *C, m * n
    c += 1 if cols & (cols - 1) == 0 else div()           # ncg
    c += 1 + 1 + 1 + 1                                     # chunk, *cols, *tiles, groups
    c += mul(ncg)                                          # ncg * KK
    if tiles & (tiles - 1):
        c += div()                                         # ceil(C / tiles)
    c += 2 * mul(_cdiv(d.m, tiles))                        # * pool_rows: entries, planes
    c += 1                                                 # flag words: skipped
    c += 3                                                 # ends, rules, code
    return c


#: Tile cycles from the cycle a channel's last image word is taken to its gather's start (the
#: word count, then the `p_have` register), and from a gather's ``done`` to the next
#: channel's start at the earliest (P_NEXT, P_WAIT); a gather's ``done`` comes
#: `POOL_DONE_AFTER` cycles after its last entry is readable.
POOL_PLANE_TO_START = 2
POOL_DONE_TO_START = 2
POOL_DONE_AFTER = -1
#: `pool_channel_tokens` gives the cycle the tile offers a result (its ``results.valid``,
#: exact against the tile); the node replay (`golden.net_replay._Node`) takes a token as the
#: result's entry into a lane FIFO, offered a cycle later, then the node's result buffer:
#: the RTL injects a pool's RESULT flit 2 cycles after the tile offered it, the replay 4
#: (measured on the accelerator, session 26: tile offer -> ring inject, a max pool)
POOL_OFFER_TO_REPLAY = 2


def plane_words(channel: int, plane: int, beat: int) -> int:
    """Image words a tile must have taken before it pools ``channel`` (planes of ``plane``
    bytes, ``beat``-byte words): up to the word holding the plane's last byte (the tile's
    ``p_have``: ``words * beat >= (channel + 1) * plane``)."""
    return -(-(channel + 1) * plane // beat)


def pool_unicast(plane: int, beat: int) -> bool:
    """Whether a pool's image goes to the tiles plane by plane (the sequencer sends each bus
    word only to the tile that pools its channel; session 26): when every channel's plane of
    ``plane`` bytes is a whole number of ``beat``-byte bus words.  Else the image is
    multicast to every tile and each keeps the whole image (hw/hub/sequencer.py ACTS)."""
    return plane % beat == 0


def pool_channel_tokens(chans: int, ncg: int, kk: int, *, plane_in, gate: int, avg: bool,
                        bpr: int, recip_at: int = 0):
    """Cycles at which each window's result enters lane 0's result FIFO, channel after
    channel (hw/tile/tile.py P_NEXT .. P_RUN, hw/tile/pool_reducer.py), as a generator.

    ``plane_in(i)``: the cycle the tile took the last image word of its ``i``-th channel's
    plane, or None while that is not known yet (the generator then yields None: the replay
    asks again a cycle later).  Channel ``i``'s gather starts at ``S_i = max(plane_in(i) +
    POOL_PLANE_TO_START, D_{i-1} + POOL_DONE_TO_START)``; its ``ncg * kk`` entries are
    readable from ``S_i + gate + j + 1`` on and its ``done`` is at ``D_i = S_i + gate + ncg *
    kk + POOL_DONE_AFTER``.  The reducer reads one entry per cycle once it is readable and
    the reciprocal is ready (``recip_at``), a window's last entry only when the hold
    register is free from the cycle after on and no other last entry is on its way; a
    result takes three cycles into the hold register and one (max) or ``bpr`` (average)
    into the output register, which the FIFO takes a cycle later."""
    t = -(1 << 40)
    hold_free = -(1 << 40)
    done = None
    n = ncg * kk
    for i in range(chans):
        p = plane_in(i)
        while p is None:
            yield None
            p = plane_in(i)
        s = p + POOL_PLANE_TO_START
        if done is not None:
            s = max(s, done + POOL_DONE_TO_START)
        done = s + gate + n + POOL_DONE_AFTER
        j = 0
        for _ in range(ncg):
            for e in range(kk):
                r = max(t + 1, s + gate + j + 1, recip_at + _RECIP_CYCLES)
                if e == kk - 1:
                    r = max(r, hold_free)
                t, j = r, j + 1
            o_at = t + 3 + (bpr if avg else 1)
            hold_free = max(t + 3, o_at - 1)
            yield o_at + 1


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
    shares = pool_channel_split(d.m, tiles)
    ph["headers"] = 2 * len(shares)
    gate = gather_gate(SimpleNamespace(cols=cols))
    plane = d.h * d.w
    uni = pool_unicast(plane, beat)
    pw = plane // beat
    nodes = []
    for t, (c0, count) in enumerate(shares):
        # channel i of the tile: c0 + i * tiles, pooled once its plane's last word is in
        # (the replay records the cycle the tile takes each image word: `acts_at`)
        box: list = []

        def plane_in(i, _box=box, _c0=c0):
            # the tile's own channels back to back (plane by plane), or the whole image
            need = (i + 1) * pw if uni else plane_words(_c0 + i * tiles, plane, beat)
            at = _box[0].acts_at
            return at[need - 1] if len(at) >= need else None

        # the reducer (and its reciprocal divider) starts in the tile's LOAD once the channel
        # sums are done: the tile was started 2 cycles per tile before the replay, its LOAD
        # 4 cycles later, the sums take max(c0, tiles) cycles
        recip_at = -2 * (len(shares) - t) + 4 + (1 if uni else max(c0, tiles))
        toks = pool_channel_tokens(count, ncg, kk, plane_in=plane_in, gate=gate, avg=avg,
                                   bpr=pool_divide_beats(cols), recip_at=recip_at)
        toks = (None if x is None else x - POOL_OFFER_TO_REPLAY for x in toks)
        flits = [_result_flits(c0 + (w // ncg) * tiles, w % ncg, n, cols, 1, dbytes)
                 for w in range(count * ncg)]
        nd = _Node(t, [(toks, flits)], 0, 1, 0, _result_buf(cfg))
        box.append(nd)
        # the tokens are the results' FIFO cycles in the replay's time (compute start 0):
        # a result fires a cycle after it enters the FIFO; the tile leaves its last pool
        # state two cycles after the last result entered it
        nd.cs, nd.wwait, nd.wdone = 0, False, -(1 << 40)
        nd.compute, nd.comp_tail = None, 2
        nodes.append(nd)
    act_words = _cdiv(d.c * d.h * d.w, beat)
    mcast = sum(1 << (t + 1) for t in range(len(shares)))
    flit = (mcast, _ACTS, 0, 0)
    node_words = act_words
    if uni:     # word w to the tile of its channel w // pw
        flit = [(1 << ((w // pw) % tiles + 1), _ACTS, 0, 0) for w in range(act_words)]
        node_words = [count * pw for _, count in shares]
    program = [("tables", 1, None, 0, None),
               ("acts", 2, "dma", act_words, flit),
               ("bodies", len(shares) + 1, None, 0, None)]
    lines = min(16, max(2, rows_ * tiles))
    limit = 64 * (act_words + 1000 + 16 * d.m * ncg * kk + 8 * _cdiv(d.m * n, beat))
    starts, end, info = _tail(program, nodes, tiles=tiles, depth=depth, beat=beat,
                              lines=lines, cols=cols, lut_words=0, quant_words=0,
                              act_words=node_words, image_entries=node_words, limit=limit,
                              outstanding=outstanding,
                              inject_yield=int(getattr(cfg, "ring_inject_yield", 0)))
    out = _report(ph, starts, end, info, nodes)
    for t in out["tiles"]:
        t["loaded"] = 0
    return out
