"""Cycle model of one descriptor on the whole accelerator (docs/host.md "Cycles").

Pure Python/NumPy (no hardware import).  The accelerator top (hw/top/accelerator.py) runs a
descriptor in phases, one after the other, on one sequencer (hw/hub/sequencer.py); the model
follows the same steps with the same rules:

1. **fetch and checks** (closed form): the 64-byte descriptor in one DMA read, then the
   DescChecker, a serial shift-and-add multiplier and a 24-step divider, counted op by op
   (`checker_cycles`); for every tile slice its 32-byte image header read, checked
   (``HeaderChecker.latency``) and sent to the tile.
2. **tables** (``REQUANT``): the activation table (256 bytes, read, or the identity table
   generated a word per cycle) and the ``M`` requant records, multicast on the ring; every
   node writes the table a bus word per cycle into its shadow table (``256 / beat`` cycles).
3. **activations**: read once, multicast, a bus word per cycle into each tile's image buffer.
4. **bodies**: the weight images' bodies **tile after tile** on the one AXI read port (one
   DMA command each); a tile starts its im2col gather (``ceil(N / cols) * K`` entries, one
   per cycle: every layer runs as a conv) and its lanes once its own body is in, and
   computes while later bodies stream; a pair waits for its gathered entry (bitmap skipping
   zero activations waits for the whole gather); compute is `golden.tile_model` per tile (its
   exact lane recurrence, token by token, gated by the gather).
5. **write-back**: each result row segment leaves its node as RESULT flits
   (``ring_payload_width / 8 - 4`` bytes each), crosses the ring to the hub, where the
   ResultWriter merges it into one-beat lines written by **posted single-beat AXI writes**
   (a new command every `WRITE_CYCLES`, the responses overlapping); the layer ends when every
   node's end marker has flushed the lines and the last response is in.

From the tables on, the hub's streams, the ring, the nodes (gearboxes, lanes, output pipeline,
packer) and the ResultWriter are replayed cycle by cycle (`_tail`) with the hardware's rules:
the routers' credits and round-robin arbitration (hw/ring/ring_router.py), so multicast streams
go at the slowest node's pace, a body shares its links with the results of the tiles before it
and a tile's lanes stall when their results cannot leave; the ResultWriter's line buffers merge,
evict and flush as in hw/hub/result_writer.py.  The memory latencies (`READ_LATENCY`,
`READ_TAIL`, `WRITE_CYCLES`) are those of the RTL engine's memory (cocotbext-axi ``AxiRam``
without wait states), measured on the RTL with the other constants
(docs/reports/network_model.md: within 3 % per descriptor).

``cfg`` is duck-typed: ``rows``, ``cols``, ``tiles``, ``axi_data_width``; optional
``mul_pipeline`` (2), ``ring_payload_width`` (64), ``ring_fifo_depth`` (4), ``acc_width`` (32),
``out_lanes`` (``cols``).
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
    WRITE_CYCLES,
    WRITE_FREE,
    WRITE_LANDED,
    _cdiv,
    _Gearbox,
    _Node,
    _requant_latency,
    _Router,
    _Writer,
)
from .tile_model import gather_gate, gather_waits, lane_records, lane_tokens, tile_cycles
from .tiling import tile_col_split

__all__ = ["descriptor_cycles", "checker_cycles", "READ_LATENCY", "READ_TAIL", "WRITE_CYCLES",
           "WRITE_FREE", "WRITE_LANDED",
           "HEADER_CHECK_LATENCY", "HOP_CYCLES", "PHASES", "PREFETCH_START"]

#: The tile's im2col unit: set-up (one cycle per column) + two pipeline stages + handover.
IM2COL_EXTRA = 4
#: The sequencer's DescChecker: divider steps (hw/hub/desc_checker.py).
_DIV_STEPS = 24
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


def _read(beats: int) -> int:
    """Cycles of the sequencer's RD_STREAM state for a read of ``beats`` beats (bus rate)."""
    return READ_LATENCY + beats + READ_TAIL


def checker_cycles(d, cfg) -> int:
    """Cycles the sequencer waits for the DescChecker on descriptor ``d`` (its DCHECK state).

    One cycle from ``start`` to the first op, then each op of the checker's list (in
    hw/hub/desc_checker.py order) costs one LOAD cycle; a product ``a * b`` then runs its
    shift-and-add loop once per bit of ``b`` plus one cycle to store the result; a quotient 24
    steps plus one; the conv-geometry ops of a matmul are skipped (their LOAD cycle only).
    """
    conv = d.opcode == Opcode.CONV2D
    cols = _cfg(cfg, "cols")

    def mul(b, when=True):
        return 2 + int(b).bit_length() if when else 1

    def div(when=True):
        return 2 + _DIV_STEPS if when else 1

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
    c += div(conv) + div(conv)                              # / stride
    c += 1                                                  # oh, ow
    c += mul(d.kh, conv) + mul(d.kw, conv) + mul(ow, conv)  # c*kh, *kw, oh*ow
    c += mul(d.h if conv else n) + mul(d.w if conv else 1) + mul(n)  # act bytes, m*n
    c += 1 if cols & (cols - 1) == 0 else div()             # ncg
    c += mul(ncg) + mul(ncg)                                # im2col, flag words
    c += 3                                                  # ends, rules, code
    return c


def _tail(program, nodes, *, tiles, depth, beat, lines, cols, lut_words, quant_words,
          act_words, image_entries, limit):
    """Replay the descriptor from its LUT state (cycle 0) to its end.

    ``program``: the hub's streams in order, ``(phase, state cycles before the stream,
    source, words, flit)`` with source ``"dma"`` (a read: `READ_LATENCY` to the first beat,
    `READ_TAIL` after the last), ``"ident"`` (the identity table, a word per cycle) or None;
    ``nodes``: a `_Node` per slice (results, ``im2col``, ``compute``).  Returns the cycle each
    phase started, the end, and details.
    """
    n_all = tiles + 1
    routers = [_Router(i, n_all, depth) for i in range(n_all)]
    credit_ret: dict[int, list] = {}
    outs = [None] * n_all                        # link registers (vc, flit), set this cycle
    writer = _Writer(lines, beat)
    T = len(nodes)
    # per started node: table / records / activation gearboxes, image entries taken
    lut = [_Gearbox(beat, beat, lut_words) for _ in range(T)]
    quant = [_Gearbox(beat, QUANT_RECORD_BYTES, quant_words) for _ in range(T)]
    acts = [_Gearbox(beat, beat, act_words) for _ in range(T)]     # a word per cycle
    entries = [0] * T
    acts_done = [None if act_words else 0 for _ in range(T)]
    data_seen = [0] * T
    data_need = [0] * T
    weights_done = [None] * T
    for _, _, _, words, flit in program:
        if flit is not None and flit[1] == _DATA:       # a body: to one tile, or multicast
            for t in range(T):
                if flit[0] >> (t + 1) & 1:
                    data_need[t] = words
    starts: dict[str, int] = {}
    seg = -1
    hub = {"at": 0, "left": 0, "src": None, "flit": None, "next": 0}

    def next_segment(c):
        nonlocal seg
        seg += 1
        if seg == len(program):
            starts["wait"] = c
            hub["src"] = None
            return
        ph, pre, src, words, flit = program[seg]
        if ph is not None:
            starts[ph] = c
        hub.update(src=src, left=words, flit=flit)
        if src == "dma":
            hub["at"] = c + pre + READ_LATENCY
        elif src == "ident":
            hub["at"] = c + pre
        else:
            hub["src"] = None
            hub["next"] = c + pre

    next_segment(0)
    c = 0
    end = None
    while end is None:
        if c > limit:
            raise RuntimeError(f"the descriptor model did not finish within {limit} cycles")
        while hub["src"] is None and "wait" not in starts and c >= hub["next"]:
            next_segment(hub["next"])
        for i, o in enumerate(outs):
            if o is not None:
                routers[(i + 1) % n_all].fifo[o[0]].append((c + 1, o[1]))
                outs[i] = None
        for r, v in credit_ret.pop(c, ()):
            routers[r].credits[v] += 1
        ready_ctrl = [(lut[t] if lut[t].words else quant[t]).ready() for t in range(T)]
        ready_acts = [acts[t].ready() for t in range(T)]
        for t in range(T):                       # gearbox outputs (start-of-cycle state)
            lut[t].pop()
            quant[t].pop()
            if acts_done[t] is None and acts[t].cnt and entries[t] < image_entries:
                if acts[t].pop():
                    entries[t] += 1
                    if entries[t] == image_entries:
                        acts_done[t] = c
        for t, nd in enumerate(nodes):          # LOAD ends: weights and image both in
            if nd.cs is None and weights_done[t] is not None and acts_done[t] is not None:
                nd.cs = max(weights_done[t] + LOAD_DELAY, acts_done[t] + 2) + nd.im2col
            nd.step(c)
        offers = [None] * n_all
        if hub["src"] is not None and hub["left"] and c >= hub["at"]:
            offers[0] = hub["flit"]
        for nd in nodes:
            offers[nd.tile + 1] = nd.offer(c)
        w_ready = writer.ready()
        taken = None
        for r in routers:
            f0, f1 = r.fifo
            h0 = f0[0][1] if f0 and f0[0][0] <= c else None
            h1 = f1[0][1] if f1 and f1[0][0] <= c else None
            heads = (h0, h1)
            node = r.node
            bit = 1 << node
            loc = (h0 is not None and h0[0] & bit, h1 is not None and h1[0] & bit)
            ej = (loc[0] and not r.done[0], loc[1] and not r.done[1])
            # ejection: round-robin over the channel heads, the choice held until taken
            if r.locked:
                sel = r.lsel
            elif r.ej_prio:
                sel = 1 if ej[1] else 0
            else:
                sel = 0 if ej[0] else 1
            now = [False, False]
            if ej[sel]:
                h = heads[sel]
                kind = h[1]
                if node == 0:
                    ready = w_ready and taken is None
                else:
                    t = node - 1
                    if kind == _CTRL:
                        ready = ready_ctrl[t]
                    elif kind == _ACTS:
                        ready = ready_acts[t]
                    else:
                        ready = True
                if ready:
                    now[sel] = True
                    r.locked, r.ej_prio = False, 1 - sel
                    if node == 0:
                        taken = h
                    else:
                        t = node - 1
                        if kind == _CTRL:
                            (lut[t] if lut[t].words else quant[t]).push()
                        elif kind == _ACTS:
                            acts[t].push()
                        elif kind == _DATA:
                            data_seen[t] += 1
                            if data_seen[t] == data_need[t]:
                                weights_done[t] = c
                else:
                    r.locked, r.lsel = True, sel
            rest = (h0[0] & ~bit if h0 is not None else 0, h1[0] & ~bit if h1 is not None else 0)
            inj = offers[node]
            wants = (bool(rest[0]) and (not loc[0] or r.done[0] or now[0]),
                     bool(rest[1]) and (not loc[1] or r.done[1] or now[1]),
                     inj is not None)
            cand = [False, False, False]
            req = [False, False]
            for v in (0, 1):
                mem = r.members[v]
                if not mem:
                    continue
                k, p = len(mem), r.rr[v]
                for j in range(k):
                    i = mem[(p + j) % k]
                    if wants[i]:
                        cand[i] = True
                        break
                req[v] = any(wants[i] for i in mem) and r.credits[v] > 0
            cg = ((r.prio == 0, r.prio == 1) if req[0] and req[1] else tuple(req))
            fwd = [False, False]
            for v in (0, 1):
                if not cg[v]:
                    continue
                for j, i in enumerate(r.members[v]):
                    if cand[i]:
                        r.rr[v] = (j + 1) % len(r.members[v])
                        r.credits[v] -= 1
                        r.prio = 1 - v
                        if i == 2:
                            outs[node] = (v, inj)
                            if node == 0:
                                hub["left"] -= 1
                                if hub["left"] == 0:
                                    tail = READ_TAIL + 1 if hub["src"] == "dma" else 1
                                    hub["src"], hub["next"] = None, c + tail
                            else:
                                nodes[node - 1].granted(c)
                        else:
                            h = heads[i]
                            outs[node] = (v, (rest[i],) + h[1:])
                            fwd[i] = True
                        break
            for v in (0, 1):                     # retire the heads
                h = heads[v]
                if h is None:
                    continue
                if (not loc[v] or r.done[v] or now[v]) and (not rest[v] or fwd[v]):
                    r.fifo[v].popleft()
                    r.done[v] = False
                    credit_ret.setdefault(c + 2, []).append(((node - 1) % n_all, v))
                elif now[v]:
                    r.done[v] = True
        for t in range(T):
            lut[t].settle()
            quant[t].settle()
        writer.step(c)
        if taken is not None:
            writer.take(taken)
        if ("wait" in starts and c >= starts["wait"] and writer.markers == T
                and not writer.busy(c)):
            end = c + 2                          # the sequencer sees the count next cycle
        c += 1
        # skip the cycles in which nothing can move
        if (hub["src"] is None and "wait" in starts and not any(outs) and not credit_ret
                and writer.idle() and not any(r.fifo[0] or r.fifo[1] for r in routers)):
            ev = [e for e in (nd.next_event(c) for nd in nodes) if e is not None]
            if writer.markers == T:
                ev.append(max(starts["wait"], writer.wb_at))
            if ev and min(ev) > c:
                c = min(ev)
    return starts, end, {"writes": writer.writes, "stalls": [nd.stalls for nd in nodes]}


def _result_flits(m: int, cg: int, n: int, cols: int, es: int, dbytes: int) -> list:
    """The RESULT flits of row segment ``Y[m, cg*cols:...]`` (byte address in the output
    buffer, bytes), as the node's packer cuts it."""
    nb = min(cols, n - cg * cols) * es
    base = m * n * es + cg * cols * es
    return [(1, _RESULT, base + o, min(dbytes, nb - o)) for o in range(0, nb, dbytes)]


def descriptor_cycles(d, slices, X, cfg, *, act_bytes: int | None = None,
                      first: bool = False, prev_wait: int | None = None) -> dict:
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
    acc = _cfg(cfg, "acc_width", 32)
    out_lanes = _cfg(cfg, "out_lanes", cols)
    if len(slices) > tiles:
        raise ValueError(f"slices must be at most cfg.tiles ({tiles}), not {len(slices)}")
    split = int(getattr(d, "col_split", 0))
    if split and len(slices) != 1:
        raise ValueError(f"a column split (col_split {split}) takes one image, not "
                         f"{len(slices)}")
    requant = bool(d.flags & Flags.REQUANT)
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
    if split:       # one header read, checked again and sent to every tile (W_NEXT -> HSTART)
        ph["headers"] = one + (len(shares) - 1) * (1 + HEADER_CHECK_LATENCY + hb + 1)
    else:
        ph["headers"] = len(slices) * one
    # 2.-4. tables, activations, bodies, compute, write-back: replayed cycle by cycle
    tcfg = SimpleNamespace(rows=rows, cols=cols, tiles=1, axi_data_width=width,
                           mul_pipeline=mp)
    pipe_len = _requant_latency(acc) if requant else 0
    bpr = _cdiv(cols, out_lanes) if requant else 1
    nodes, bodies = [], []
    row0 = 0
    im2cols = []
    for t, (pw, g0, g) in enumerate(shares):
        Xt = X[:, g0 * cols:(g0 + g) * cols]
        comp = tile_cycles(pw, Xt, tcfg, act_skip=True, image_bytes=act_bytes,
                           cg0=g0)["cycles"]
        # the lanes start with the im2col gather (a pair waits for its entry), except bitmap
        # skipping zero activations, which waits for the whole gather
        waits = gather_waits(pw, True)
        gate = None if waits else (gather_gate(tcfg) + g0, K)
        im2col = g0 + g * K + cols + IM2COL_EXTRA
        im2cols.append(im2col)
        lanes = []
        for lane, items in enumerate(lane_records(pw, Xt, tcfg, act_skip=True,
                                                  with_k=gate is not None)):
            toks = lane_tokens(items, 1, gate) if items else []
            flits = [_result_flits(row0 + lane + rows * (j // g), g0 + j % g, N, cols, es,
                                   dbytes) for j in range(len(toks))]
            lanes.append((toks, flits))
        nd = _Node(t, lanes, pipe_len, bpr, mp + _FIRE_TO_FIFO_EXTRA)
        nd.compute, nd.im2col = comp, (im2col if waits else 0)
        nodes.append(nd)
        if not split or t == 0:
            bodies.append(max(1, _cdiv(pw.nbytes - HEADER_BYTES, beat)))
        if not split:
            row0 += pw.shape[0]
    mcast = sum(1 << (t + 1) for t in range(len(shares)))
    lut_words = LUT_BYTES // beat if requant else 0
    quant_words = _cdiv(d.m * QUANT_RECORD_BYTES, beat) if requant else 0
    act_words = _cdiv(act_bytes, beat)
    program = []
    if requant:      # LUT state (+ RD_ISSUE), the table; QUANT, RD_ISSUE, the records
        program.append(("tables", 2, "dma", lut_words, (mcast, _CTRL, 0, 0))
                       if d.flags & Flags.LUT else
                       ("tables", 1, "ident", lut_words, (mcast, _CTRL, 0, 0)))
        program.append((None, 2, "dma", quant_words, (mcast, _CTRL, 0, 0)))
    else:
        program.append(("tables", 1, None, 0, None))
    program.append(("acts", 2, "dma", act_words, (mcast, _ACTS, 0, 0)))
    for t, bb in enumerate(bodies):     # tile after tile, or one multicast (column split)
        program.append(("bodies" if t == 0 else None, 2, "dma", bb,
                        (mcast if split else 1 << (t + 1), _DATA, t, 0)))
    program.append((None, 1, None, 0, None))     # BODIES once more, then WAIT
    lines = min(16, max(2, rows * tiles))
    limit = 64 * (sum(bodies) + act_words + 2 * LUT_BYTES + quant_words + 1000
                  + (max(im2cols) + max(nd.compute for nd in nodes)) * len(nodes)
                  + WRITE_CYCLES * _cdiv(d.m * N * es, beat) * 2)
    starts, end, info = _tail(program, nodes, tiles=tiles, depth=depth, beat=beat,
                              lines=lines, cols=cols, lut_words=lut_words,
                              quant_words=quant_words, act_words=act_words,
                              image_entries=act_words, limit=limit)
    ph["tables"] = starts["acts"] - starts["tables"]
    ph["acts"] = starts["bodies"] - starts["acts"]
    ph["bodies"] = starts["wait"] - starts["bodies"]
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
        tiles=[{"loaded": int(nd.cs - im2cols[i] - starts["bodies"]),
                "compute_start": int(nd.cs - starts["bodies"]),
                "compute_end": int(nd.cs + nd.compute - starts["bodies"])}
               for i, nd in enumerate(nodes)])
    return out
