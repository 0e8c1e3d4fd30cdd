"""Cycle model of one descriptor on the whole accelerator (docs/host.md "Cycles").

Pure Python/NumPy (no hardware import).  The accelerator top (hw/top/accelerator.py) runs a
descriptor in phases, one after the other, on one sequencer (hw/hub/sequencer.py); the model
follows the same steps with the same rules:

1. **fetch and checks** (closed form): the 64-byte descriptor in one DMA read, then the
   DescChecker, a serial shift-and-add multiplier and a 24-step divider, counted op by op
   (`checker_cycles`); for every tile slice its 32-byte image header read, checked
   (``HeaderChecker.latency``) and sent to the tile (the next tile's header is read while
   this one is checked and sent: the sequencer's ``HeaderPrefetch``).
2. **tables** (``REQUANT``): the activation table (256 bytes, read, or the identity table
   generated a word per cycle) and the ``M`` requant records, multicast on the ring; every
   node writes the table a bus word per cycle into its shadow table (``256 / beat`` cycles).
3. **activations**: read once, multicast, a bus word per cycle into each tile's image buffer.
4. **bodies**: the weight images' bodies **tile after tile** on the one AXI read port (one
   DMA command each); a tile starts its im2col gather (``ceil(N / cols) * K`` entries, one
   per cycle: every layer runs as a conv) and its lanes once the image is in, while the
   bodies still stream: a lane fetches a weight word once it is in the tile (the replay
   records when each body word leaves the node's FIFO, `_word_avail`), and a pair waits for
   its gathered entry; a bitmap tile starts once its own body is in (`weight_waits`), and
   with zero-activation skipping a row waits for its column group's entries (`group_gated`,
   since session 24; it waited for the whole gather before); compute is
   `golden.tile_model` per tile (its exact lane recurrence, token by token, gated by the
   gather and the weight words, `lane_token_iter`).
5. **write-back**: each result row segment leaves its node as RESULT flits
   (``ring_payload_width / 8 - 4`` bytes each), crosses the ring to the hub, where the
   ResultWriter merges it into one-beat lines written by **posted single-beat AXI writes**
   (hw/hub/beat_writer.py: a write per cycle, at most ``max_outstanding`` responses due,
   each `WRITE_RESPONSE` cycles after its beat); the layer ends when every
   node's end marker has flushed the lines and the last response is in.

From the tables on, the hub's streams, the ring, the nodes (gearboxes, lanes, output pipeline,
packer) and the ResultWriter are replayed cycle by cycle (`_tail`) with the hardware's rules:
the routers' credits and round-robin arbitration (hw/ring/ring_router.py), so multicast streams
go at the slowest node's pace, a body shares its links with the results of the tiles before it
and a tile's lanes stall when their results cannot leave; the ResultWriter's line buffers merge,
evict and flush as in hw/hub/result_writer.py.  The memory latencies (`READ_LATENCY`,
`READ_TAIL`, `WRITE_RESPONSE`) are those of the RTL engine's memory (cocotbext-axi ``AxiRam``
without wait states), measured on the RTL with the other constants
(docs/reports/network_model.md: within 3 % per descriptor).

``cfg`` is duck-typed: ``rows``, ``cols``, ``tiles``, ``axi_data_width``; optional
``mul_pipeline`` (2), ``ring_payload_width`` (64), ``ring_fifo_depth`` (4), ``acc_width`` (32),
``out_lanes`` (``cols``), ``max_outstanding`` (4), ``ring_inject_yield`` (0: the routers'
plain round-robin).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .descriptors import DESC_BYTES, LUT_BYTES, QUANT_RECORD_BYTES, Flags, Opcode
from .formats import HEADER_BYTES, PackedWeights

# the replayed blocks and the timing constants measured on the RTL (re-exported here)
from .net_replay import (  # noqa: F401
    _ACTS,
    _CTRL,
    _DATA,
    _FIRE_TO_FIFO_EXTRA,
    _MARK,
    _RESULT,
    HEADER_CHECK_LATENCY,
    HOP_CYCLES,
    LOAD_DELAY,
    READ_LATENCY,
    READ_TAIL,
    WRITE_RESPONSE,
    _cdiv,
    _Gearbox,
    _Node,
    _requant_latency,
    _Router,
    _Writer,
)
from .net_tail import _tail
from .tile_model import (
    WORD_TO_ISSUE,
    compute_tail,
    gather_gate,
    group_gated,
    lane_records,
    lane_token_iter,
    tile_cycles,
    weight_waits,
)
from .tiling import tile_col_split

__all__ = ["descriptor_cycles", "table_key", "tables_held_after", "checker_cycles",
           "READ_LATENCY", "READ_TAIL", "WRITE_RESPONSE", "HEADER_CHECK_LATENCY", "HOP_CYCLES",
           "PHASES", "PREFETCH_START"]

#: The sequencer's DescChecker: divider steps (hw/hub/desc_checker.py).
_DIV_STEPS = 24
#: Strides the DescChecker divides by with a shift, in one cycle.
_SHIFT_DIVISORS = (1, 2, 4, 8)
#: Phases reported by `descriptor_cycles`, in time order.
#: The prefetch (hw/hub/sequencer.py) starts in the first WAIT cycle and issues its read a
#: cycle later (as FETCH, RD_ISSUE); it also runs through LAYER_DONE: 2 - 1 cycles to add to
#: the fetch and checks before they are compared with the previous wait (on the RTL: 0.0 %
#: and -0.6 % on the two descriptors of tests/sim/test_net_cycles.py whose prefetch outlasts
#: the wait).
PREFETCH_START = 1
PHASES = ("fetch_check", "headers", "tables", "acts", "bodies", "wait", "done")


def _cfg(cfg, name: str, default=None) -> int:
    v = getattr(cfg, name, default)
    if v is None or isinstance(v, bool) or int(v) != v or v < 1:
        raise ValueError(f"cfg.{name} must be a positive int, not {v!r}")
    return int(v)


def _result_buf(cfg) -> int:
    """``cfg.result_buf_depth``: the tile node's result buffer (0: none; a duck-typed ``cfg``
    without the field has none)."""
    v = getattr(cfg, "result_buf_depth", 0)
    if v is None or isinstance(v, bool) or int(v) != v or v < 0:
        raise ValueError(f"cfg.result_buf_depth must be a non-negative int, not {v!r}")
    return int(v)


def _read(beats: int) -> int:
    """Cycles of the sequencer's RD_STREAM state for a read of ``beats`` beats (bus rate)."""
    return READ_LATENCY + beats + READ_TAIL


def checker_cycles(d, cfg) -> int:
    """Cycles the sequencer waits for the DescChecker on descriptor ``d`` (its DCHECK state).

    One cycle from ``start`` to the first op, then each op of the checker's list (in
    hw/hub/desc_checker.py order) costs one LOAD cycle; a product ``a * b`` then runs its
    shift-and-add loop once per bit of ``b`` plus one cycle to store the result; a quotient 24
    steps plus one, except a division by a stride of 1, 2, 4 or 8 (a shift, its LOAD cycle
    only); the conv-geometry ops of a matmul are skipped (their LOAD cycle only).
    """
    conv = d.opcode == Opcode.CONV2D
    cols = _cfg(cfg, "cols")

    def mul(b, when=True):
        return 2 + int(b).bit_length() if when else 1

    def div(when=True, by=None):
        return 2 + _DIV_STEPS if when and by not in _SHIFT_DIVISORS else 1

    n = d.n & 0xFFFF
    ncg = (n + cols - 1) // cols
    ow = 0
    if conv and d.stride_h and d.stride_w:
        num_h = d.h + 2 * d.pad_h - d.dil_h * (d.kh - 1) - 1
        num_w = d.w + 2 * d.pad_w - d.dil_w * (d.kw - 1) - 1
        ow = num_w // d.stride_w + 1 if num_h >= 0 and num_w >= 0 else 0
    c = 1 + 1                                               # start; window, geometry flags
    c += mul((d.kh - 1) & 0xFF, conv) + mul((d.kw - 1) & 0xFF, conv)
    c += 2                                                  # numerators, positive
    c += div(conv, d.stride_h) + div(conv, d.stride_w)      # / stride
    c += 1                                                  # oh, ow
    c += mul(d.kh, conv) + mul(d.kw, conv) + mul(ow, conv)  # c*kh, *kw, oh*ow
    c += mul(d.h if conv else n) + mul(d.w if conv else 1) + mul(n)  # act bytes, m*n
    c += 1 if cols & (cols - 1) == 0 else div()             # ncg
    c += mul(ncg) + mul(ncg)                                # im2col, flag words
    c += 3                                                  # ends, rules, code
    return c


def checker_holds(pw: PackedWeights, beat: int) -> list[int]:
    """Per body word of image ``pw`` (``beat`` bytes each, from byte ``HEADER_BYTES``), the
    cycles the tile's ImageChecker holds it (hw/tile/image_checker.py, throughput): its row
    scans (hw/tile/row_scan.py) finish one row end per cycle, so a word holding ``e > 1`` ends
    is held ``e - 1`` cycles.  The scanned rows: bitmap masks (section B, ``ngroups * G / 8``
    bytes a row, every row's end), nm values and indices when ``K % M != 0`` (sections A and
    B, ``ngroups * N`` bytes a row), block ``blk_col`` (section B, u16 entries: the end of
    every block row but the last counts in the word holding entry ``blk_ptr[r + 1]``, the
    next block row's first, hw/tile/block_index_checker.py; an empty block row too);
    dense holds nothing.  A row whose ``rb`` bytes are fewer than ``beat`` is what costs: the
    bitmap masks of ``K <= 32`` (4 bytes a row) hold every mask word one cycle."""
    ends: dict[int, int] = {}           # image word -> row ends the scans finish in it

    def rows(sec: int, rb: int, n: int):
        for r in range(n):
            w = (sec + (r + 1) * rb - 1) // beat
            ends[w] = ends.get(w, 0) + 1

    M = pw.shape[0]
    if pw.fmt == "bitmap":
        rows(pw.sec_b, pw.ngroups * pw.param_a // 8, M)
    elif pw.fmt == "nm" and pw.shape[1] % pw.param_b:
        for sec in (pw.sec_a, pw.sec_b):
            rows(sec, pw.ngroups * pw.param_a, M)
    elif pw.fmt == "block":
        ptr = pw.blk_ptr.astype(np.int64)
        for r in range(len(ptr) - 2):   # block rows 0 .. nbr - 2
            # the scan stands in the word of entry ptr[r + 1] (the block row ends before it)
            w = (pw.sec_b + 2 * int(ptr[r + 1])) // beat
            if pw.sec_b + 2 * int(ptr[r + 1]) < pw.sec_c:
                ends[w] = ends.get(w, 0) + 1
    first = HEADER_BYTES // beat
    words = max(1, _cdiv(pw.nbytes - HEADER_BYTES, beat))
    return [max(0, ends.get(first + i, 0) - 1) for i in range(words)]


#: A body word taken by the node's ImageChecker in cycle c is written into the tile's weight
#: buffer in c + 1; a lane may fetch it from c + 1 + `WORD_TO_ISSUE` on.
_TAKE_TO_ISSUE = 1 + WORD_TO_ISSUE


def _word_avail(box: list, hdr_words: int, lane: int):
    """The first cycle (relative to ``nd``'s compute start, in the lane's own time: without
    the cycles it has stalled so far for the write-back, which the replay adds to its tokens)
    lane ``lane`` of node ``nd`` may fetch image word ``w``; None while the word has not
    reached the tile (the replay fills ``nd.taken``).  A lane stalled for its results waits
    for a word during the stall, not after it.  ``box`` holds the node once it is built (the
    generators are made before it, and run only during the replay)."""
    def avail(w: int):
        nd = box[0]
        if w < hdr_words:               # the header: in long before the lanes start
            return -(1 << 40)
        j = w - hdr_words
        if j < len(nd.taken):
            return nd.taken[j] + _TAKE_TO_ISSUE - nd.cs - nd.lanes[lane][2]
        return None
    return avail


def _result_flits(m: int, cg: int, n: int, cols: int, es: int, dbytes: int) -> list:
    """The RESULT flits of row segment ``Y[m, cg*cols:...]`` (byte address in the output
    buffer, bytes), as the node's packer cuts it."""
    nb = min(cols, n - cg * cols) * es
    base = m * n * es + cg * cols * es
    return [(1, _RESULT, base + o, min(dbytes, nb - o)) for o in range(0, nb, dbytes)]


def table_key(d):
    """The activation table a descriptor's tiles use (``("lut", address)`` with LUT,
    ``("identity",)`` without, None without REQUANT or for a pool, which keep what the tiles
    hold): the sequencer sends no table when every tile holds that one
    (`tables_held_after`; hw/hub/sequencer.py, docs/spec.md section 8)."""
    if not d.flags & Flags.REQUANT or d.opcode in (Opcode.MAXPOOL2D, Opcode.AVGPOOL2D,
                                                   Opcode.GLOBAL_AVGPOOL):
        return None
    return ("lut", int(d.lut)) if d.flags & Flags.LUT else ("identity",)


def tables_held_after(held, d, tiles_started: int, tiles: int):
    """The table every tile holds after descriptor ``d`` (`table_key`; None: not one table
    for all), given ``held`` before it: a layer that sends its table (its key differs from
    ``held``) leaves it in every tile only when it started all ``tiles`` (a tile not started
    gets no table and keeps its own); a kept table, a raw layer and a pool change nothing."""
    key = table_key(d)
    if key is None or key == held:
        return held
    return key if tiles_started == tiles else None


def descriptor_cycles(d, slices, X, cfg, *, act_bytes: int | None = None,
                      first: bool = False, prev_wait: int | None = None,
                      table_held: bool = False) -> dict:
    """Cycles of descriptor ``d`` on the accelerator ``cfg``, phase by phase.

    Parameters
    ----------
    d : golden.descriptors.Descriptor
    slices : list of PackedWeights
        The per-tile weight images (docs/spec.md section 8.1), tile 0 first; with a column
        split (``d.col_split``) the one image every tile loads.
    X : array_like, shape (K, N)
        The matmul right-hand side (the im2col matrix of a conv2d).
    act_bytes : int, optional
        Activation bytes read (default ``X.size``; a conv2d reads its ``C*H*W`` input).
    first : bool
        The first descriptor of the table (the sequencer's two table-check cycles).
    prev_wait : int, optional
        The ``wait`` phase of the descriptor before this one in the table: the sequencer
        prefetches this descriptor (read and checks) while the previous layer waits, so only
        what does not fit in that wait is left (`PREFETCH_LEFT`).  None: fetched in its own
        time (the first descriptor).
    table_held : bool
        Every tile already holds this layer's activation table (`table_key`,
        `tables_held_after`: the same table address, or the identity table, as the last table
        sent, by a layer that started every tile): the sequencer sends none
        (docs/accelerator.md "Tables kept"); the records are still read.

    Returns
    -------
    dict
        ``cycles`` (the whole descriptor, first cycle of FETCH to LAYER_DONE), the phases of
        `PHASES` in time order (``fetch_check``, ``headers``, ``tables``, ``acts``,
        ``bodies``, ``wait``, ``done``; they add up to ``cycles``), the grouping
        ``fixed_cycles`` (fetch, checks, headers, tables, LAYER_DONE), ``load_cycles``
        (activations and bodies), ``compute_cycles`` (the last tile's im2col and compute
        left after the last body, without stalls), ``writeback_cycles`` (the rest of the
        wait: results the write-back has not written yet), ``writes`` (AXI write commands),
        ``stall_cycles`` (per tile, cycles its lanes waited for the write-back), ``tiles``
        (per slice: ``loaded``, ``compute_start``, ``compute_end`` relative to the first
        body).

    Raises
    ------
    TypeError
        ``slices`` is not a non-empty list of `PackedWeights`.
    ValueError
        ``X`` is not 2-D, a ``cfg`` field is missing or out of range, ``ring_payload_width``
        is below 64 (the accelerator's minimum), or there are more slices than tiles.
    """
    if not slices or not all(isinstance(pw, PackedWeights) for pw in slices):
        raise TypeError(f"slices must be a non-empty list of PackedWeights, not {slices!r}")
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (K, N), not shape {X.shape!r}")
    rows, cols, tiles = _cfg(cfg, "rows"), _cfg(cfg, "cols"), _cfg(cfg, "tiles")
    width = _cfg(cfg, "axi_data_width")
    if width % 8:
        raise ValueError(f"cfg.axi_data_width must be a multiple of 8, not {width!r}")
    beat = width // 8
    mp = int(getattr(cfg, "mul_pipeline", 2))
    payload = _cfg(cfg, "ring_payload_width", 64)
    if payload < 64:
        raise ValueError(f"cfg.ring_payload_width must be at least 64 for the accelerator, "
                         f"not {payload!r}")
    depth = _cfg(cfg, "ring_fifo_depth", 4)
    outstanding = _cfg(cfg, "max_outstanding", 4)
    rbuf = _result_buf(cfg)
    acc = _cfg(cfg, "acc_width", 32)
    out_lanes = _cfg(cfg, "out_lanes", cols)
    if len(slices) > tiles:
        raise ValueError(f"slices must be at most cfg.tiles ({tiles}), not {len(slices)}")
    split = int(getattr(d, "col_split", 0))
    if split and len(slices) != 1:
        raise ValueError(f"a column split (col_split {split}) takes one image, not "
                         f"{len(slices)}")
    requant = bool(d.flags & Flags.REQUANT)
    late = int(bool(requant and d.flags & Flags.LATE_TABLES))
    es = 1 if requant else (4 if acc <= 32 else 8)
    dbytes = (payload - 32) // 8
    K, N = X.shape
    act_bytes = int(X.size if act_bytes is None else act_bytes)
    ph = {}
    # 1. descriptor fetch and checks; headers; tables
    fetch = _read(_cdiv(DESC_BYTES, beat)) + checker_cycles(d, cfg)
    if prev_wait is None or first:
        ph["fetch_check"] = (2 if first else 0) + 2 + fetch + 1
    else:               # prefetched during the previous wait: NEXT, CHECK and what is left
        ph["fetch_check"] = 2 + max(0, fetch + PREFETCH_START - prev_wait)
    hb = _cdiv(HEADER_BYTES, beat)
    ncg = _cdiv(N, cols)
    # the tiles' shares: (image, first column group, groups)
    if split:
        shares = [(slices[0], g0, g) for g0, g in tile_col_split(N, cols, split, tiles)]
    else:
        shares = [(pw, 0, ncg) for pw in slices]
    one = 3 + _read(hb) + 1 + HEADER_CHECK_LATENCY + hb + 1
    if prev_wait is not None and not first:
        # the first header was read during the previous layer's wait, as soon as this
        # descriptor was prefetched and checked (ready 3 + read cycles later); W_HEADER takes
        # it (or waits for it) instead of reading it
        w_header = prev_wait + ph["fetch_check"] + 1
        ready = PREFETCH_START + fetch + 3 + _read(hb)
        one = 2 + max(0, ready - w_header) + 1 + HEADER_CHECK_LATENCY + hb + 1
    if split:
        # one header read and checked; the tiles started one after another (S_NEXT, then
        # S_GAP and S_START per further tile), then the header multicast to all (HSEND)
        ph["headers"] = one + (len(shares) - 1) * 2
    else:
        # tile t + 1's header is read while tile t's is checked and sent (the sequencer's
        # HeaderPrefetch): requested in the second HCHECK cycle, ready two cycles after its
        # read, taken in H_NEXT (after W_NEXT) or as soon as it is ready
        nxt = max(HEADER_CHECK_LATENCY + hb + 2, 5 + _read(hb)) + 1
        ph["headers"] = one + (len(slices) - 1) * nxt
    # 2.-4. tables, activations, bodies, compute, write-back: replayed cycle by cycle
    tcfg = SimpleNamespace(rows=rows, cols=cols, tiles=1, axi_data_width=width,
                           mul_pipeline=mp)
    pipe_len = _requant_latency(acc) if requant else 0
    bpr = _cdiv(cols, out_lanes) if requant else 1
    nodes, bodies, comps = [], [], []
    row0 = 0
    for t, (pw, g0, g) in enumerate(shares):
        Xt = X[:, g0 * cols:(g0 + g) * cols]
        comp = tile_cycles(pw, Xt, tcfg, act_skip=True, image_bytes=act_bytes,
                           cg0=g0)["cycles"]
        # the lanes start with the im2col gather (a pair waits for its entry; bitmap skipping
        # zero activations: a row waits for its column group's flag words, `group_gated`)
        gate = (gather_gate(tcfg) + g0, K, group_gated(pw, True))
        lanes = []
        # the lanes start with the image (not bitmap: `weight_waits`) and fetch each weight
        # word once it is in: their tokens are generated as the replay learns the arrivals
        overlap = not weight_waits(pw)
        box: list = []
        for lane, items in enumerate(lane_records(pw, Xt, tcfg, act_skip=True,
                                                  with_k=gate is not None)):
            # (`fired`: the cycle each token really fired, fed back to the scanner when the
            # lane's results back up)
            cell = [None, 0]
            if overlap:
                toks = lane_token_iter(items, 1, gate,
                                       _word_avail(box, _cdiv(HEADER_BYTES, beat), lane),
                                       fired=cell)
            else:
                toks = lane_token_iter(items, 1, gate, fired=cell) if items else []
            flits = [_result_flits(row0 + lane + rows * (j // g), g0 + j % g, N, cols, es,
                                   dbytes) for j in range(len(items))]
            lanes.append((toks, flits, cell))
        nd = _Node(t, lanes, pipe_len, bpr, mp + _FIRE_TO_FIFO_EXTRA, rbuf)
        box.append(nd)
        nd.compute = comp
        comps.append(comp)
        if overlap:
            nd.wwait, nd.compute = False, None
            nd.comp_tail = compute_tail(tcfg)
            nd.comp_min = gather_gate(tcfg) + g0 + g * K if gate is not None else 0
        nodes.append(nd)
        if not split or t == 0:
            bodies.append(max(1, _cdiv(pw.nbytes - HEADER_BYTES, beat)))
        if not split:
            row0 += pw.shape[0]
    mcast = sum(1 << (t + 1) for t in range(len(shares)))
    lut_words = LUT_BYTES // beat if requant else 0
    quant_words = _cdiv(d.m * QUANT_RECORD_BYTES, beat) if requant else 0
    act_words = _cdiv(act_bytes, beat)
    # the hub's streams (hw/hub/sequencer.py): the tables (LUT + RD_ISSUE and the table, or
    # LUT and the identity table a word per cycle; QUANT + RD_ISSUE and the records), the
    # activations (ACTS + RD_ISSUE), the bodies tile after tile (BODIES + RD_ISSUE each),
    # BODIES once more, then WAIT.  LATE_TABLES: the activations and bodies first, the tables
    # after them (BODIES once more, LUT, ...), WAIT right after the records.
    tables = []
    if requant and table_held:      # the table kept: the LUT state, then QUANT
        lut_words = 0
        tables = [("tables", 1 + late, None, 0, None),
                  (None, 2, "dma", quant_words, (mcast, _CTRL, 0, 0))]
    elif requant:
        lut_src = "dma" if d.flags & Flags.LUT else "ident"
        tables = [("tables", (2 if lut_src == "dma" else 1) + late, lut_src, lut_words,
                   (mcast, _CTRL, 0, 0)),
                  (None, 2, "dma", quant_words, (mcast, _CTRL, 0, 0))]
    elif not late:
        tables = [("tables", 1, None, 0, None)]
    program = [] if late else tables
    program.append(("acts", 2, "dma", act_words, (mcast, _ACTS, 0, 0)))
    for t, bb in enumerate(bodies):     # tile after tile, or one multicast (column split)
        program.append(("bodies" if t == 0 else None, 2, "dma", bb,
                        (mcast if split else 1 << (t + 1), _DATA, t, 0)))
    if late:
        program += tables
    else:
        program.append((None, 1, None, 0, None))     # BODIES once more, then WAIT
    lines = min(16, max(2, rows * tiles))
    limit = 64 * (sum(bodies) + act_words + 2 * LUT_BYTES + quant_words + 1000
                  + (ncg * K + cols + max(comps)) * len(nodes)
                  + (WRITE_RESPONSE + 1) * _cdiv(d.m * N * es, beat) * 2)
    holds = [checker_holds(pw, beat) for pw, _, _ in shares]
    starts, end, info = _tail(program, nodes, tiles=tiles, depth=depth, beat=beat,
                              lines=lines, cols=cols, lut_words=lut_words,
                              quant_words=quant_words, act_words=act_words,
                              image_entries=act_words, limit=limit, holds=holds,
                              outstanding=outstanding,
                              inject_yield=int(getattr(cfg, "ring_inject_yield", 0)))
    return _report(ph, starts, end, info, nodes)


def _report(ph: dict, starts: dict, end: int, info: dict, nodes) -> dict:
    """`descriptor_cycles`' result from the phases before the tables (``ph``) and the replay
    (`_tail`'s ``starts``, ``end``, ``info``): the phases, their grouping and the per-tile
    times."""
    if starts["tables"] < starts["acts"]:
        ph["tables"] = starts["acts"] - starts["tables"]
        ph["acts"] = starts["bodies"] - starts["acts"]
        ph["bodies"] = starts["wait"] - starts["bodies"]
    else:                   # LATE_TABLES: activations, bodies, then the tables
        ph["acts"] = starts["bodies"] - starts["acts"]
        ph["bodies"] = starts["tables"] - starts["bodies"]
        ph["tables"] = starts["wait"] - starts["tables"]
    ph["wait"] = end - starts["wait"]
    ph["done"] = 1
    total = sum(ph[k] for k in PHASES)
    free_end = max(nd.cs + nd.compute for nd in nodes)
    comp_left = min(ph["wait"], max(0, free_end - starts["wait"]))
    out = {"cycles": int(total), **{k: int(v) for k, v in ph.items()}}
    out.update(
        fixed_cycles=int(ph["fetch_check"] + ph["headers"] + ph["tables"] + ph["done"]),
        load_cycles=int(ph["acts"] + ph["bodies"]),
        compute_cycles=int(comp_left),
        writeback_cycles=int(ph["wait"] - comp_left),
        writes=int(info["writes"]), stall_cycles=[int(x) for x in info["stalls"]],
        tiles=[{"loaded": int(max(nd.cs,
                                  nd.wdone if nd.wdone is not None else -(1 << 40))
                              - starts["bodies"]),
                "compute_start": int(nd.cs - starts["bodies"]),
                "compute_end": int(nd.cs + nd.compute - starts["bodies"])}
               for nd in nodes])
    return out
