"""The tail of a descriptor on the whole accelerator, replayed cycle by cycle (`_tail`):
the hub's streams (tables, activations, bodies), the ring's routers, the tile nodes and the
ResultWriter stepped together with the hardware's rules (the blocks: golden/net_replay.py;
the descriptor's phases around it: golden/net_cycles.py)."""

from __future__ import annotations

from collections import deque

from .descriptors import QUANT_RECORD_BYTES
from .net_replay import (
    _ACTS,
    _CTRL,
    _DATA,
    LOAD_DELAY,
    READ_LATENCY,
    READ_TAIL,
    _Gearbox,
    _Router,
    _Writer,
)

__all__: list[str] = []


def _tail(program, nodes, *, tiles, depth, beat, lines, cols, lut_words, quant_words,
          act_words, image_entries, limit, holds=None, outstanding=4, inject_yield=0):
    """Replay the descriptor from its LUT state (cycle 0) to its end.

    ``program``: the hub's streams in order, ``(phase, state cycles before the stream,
    source, words, flit)`` with source ``"dma"`` (a read: `READ_LATENCY` to the first beat,
    `READ_TAIL` after the last), ``"ident"`` (the identity table, a word per cycle) or None,
    ``flit`` one for every word or a list of one per word; ``act_words`` / ``image_entries``
    one count or a list of one per node;
    ``nodes``: a `_Node` per slice (results, ``compute``); ``holds``: per node,
    the cycles its ImageChecker holds each body word (`golden.net_cycles.checker_holds`;
    None: none held).  A node takes a body word into its 2-word FIFO (hw/tile/tile_node.py
    ``weight_slice``: room counted at the start of the cycle, a word readable the cycle
    after it was written) while the FIFO has room; the checker takes the head after its
    holds, so a held word backs the body up onto the ring (a multicast body: every tile's
    holds at once).  The hub's ejection goes through the eject register slice
    (hw/top/accelerator.py ``eject_slice0``, hw/mem/register_slice.py: a flit ejected in one
    cycle is offered to the ResultWriter in the next; ready while its skid register is empty).
    ``inject_yield``: the routers' (hw/ring/ring_router.py: a waiting injection lets forwarded
    ACTS flits go first, up to that many in a row; 0: round-robin).
    Returns the cycle each phase started, the end, and details.
    """
    n_all = tiles + 1
    routers = [_Router(i, n_all, depth, inject_yield) for i in range(n_all)]
    credit_ret: dict[int, list] = {}
    outs = [None] * n_all                        # link registers (vc, flit), set this cycle
    writer = _Writer(lines, beat, outstanding)
    # the hub's eject register slice (hw/top/accelerator.py ``eject_slice0``, RegisterSlice):
    # its output register and its skid register
    sl = [None, None]
    T = len(nodes)
    # per started node: table / records / activation gearboxes, image entries taken
    lut = [_Gearbox(beat, beat, lut_words) for _ in range(T)]
    quant = [_Gearbox(beat, QUANT_RECORD_BYTES, quant_words) for _ in range(T)]
    # a node's image words: one count for all (a multicast image) or one per node (a pool's
    # planes sent each to its own tile, `golden.net_pool.pool_unicast`)
    if isinstance(act_words, int):
        act_words = [act_words] * T
    if isinstance(image_entries, int):
        image_entries = [image_entries] * T
    acts = [_Gearbox(beat, beat, act_words[t]) for t in range(T)]     # a word per cycle
    entries = [0] * T
    acts_done = [None if act_words[t] else 0 for t in range(T)]
    data_seen = [0] * T
    data_need = [0] * T
    weights_done = [None] * T
    # per node: the weight FIFO (readable from cycle, held cycles), the head's cycles held
    # so far, the words the checker took
    wq = [deque() for _ in range(T)]
    w_held = [0] * T
    w_taken = [0] * T
    holds = [h or () for h in holds] if holds is not None else [()] * T
    for _, _, _, words, flit in program:
        if flit is not None and flit[1] == _DATA:       # a body: to one tile, or multicast
            for t in range(T):
                if flit[0] >> (t + 1) & 1:
                    data_need[t] = words
    for t in range(T):          # a node's requant records: the pipeline waits for them
        nodes[t].tab_at = None if quant_words else -(1 << 30)
    for t in range(T):          # a node without a body (a pool): its weights are "in" at once
        if not data_need[t]:
            weights_done[t] = -(1 << 30)
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
        for t, nd in enumerate(nodes):          # the records in and written: the pipeline's
            q = quant[t]                         # gate opens a cycle later (a register)
            if (nd.tab_at is None and not q.words and q.cnt < q.ob
                    and not (q.flushing and q.cnt)):
                nd.tab_at = c + 1
        ready_acts = [acts[t].ready() for t in range(T)]
        for t in range(T):                       # gearbox outputs (start-of-cycle state)
            lut[t].pop()
            quant[t].pop()
            if acts_done[t] is None and acts[t].cnt and entries[t] < image_entries[t]:
                if acts[t].pop():
                    entries[t] += 1
                    nodes[t].acts_at.append(c)
                    if entries[t] == image_entries[t]:
                        acts_done[t] = c
        ready_data = [len(q) < 2 for q in wq]
        for t, q in enumerate(wq):              # the checker takes the FIFO's head
            if q and q[0][0] <= c:
                if w_held[t] < q[0][1]:
                    w_held[t] += 1               # a second row end in the word: held
                else:
                    q.popleft()
                    w_held[t] = 0
                    w_taken[t] += 1
                    nodes[t].taken.append(c)
                    if w_taken[t] == data_need[t]:   # (LOAD_DELAY counts from the ejection
                        weights_done[t] = c - 1      # of an unheld last word, a cycle earlier)
                        nodes[t].wdone = c - 1 + LOAD_DELAY
                        nodes[t]._settle()
        for t, nd in enumerate(nodes):          # LOAD ends: the image in (and the weights)
            if nd.cs is None and acts_done[t] is not None and not nd.wwait:
                nd.cs = acts_done[t] + 2
                nd._settle()
            if nd.cs is None and weights_done[t] is not None and acts_done[t] is not None:
                nd.cs = max(weights_done[t] + LOAD_DELAY, acts_done[t] + 2)
            nd.step(c)
        offers = [None] * n_all
        if hub["src"] is not None and hub["left"] and c >= hub["at"]:
            f = hub["flit"]
            # a list: one flit per word (a pool's planes, each to its own tile)
            offers[0] = f[len(f) - hub["left"]] if isinstance(f, list) else f
        for nd in nodes:
            offers[nd.tile + 1] = nd.offer(c)
        w_ready = writer.ready()
        sl_ready = sl[1] is None                 # the slice's ready: its skid is empty
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
                    ready = sl_ready and taken is None
                else:
                    t = node - 1
                    if kind == _CTRL:
                        ready = ready_ctrl[t]
                    elif kind == _ACTS:
                        ready = ready_acts[t]
                    elif kind == _DATA:
                        ready = ready_data[t]
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
                            w = data_seen[t]
                            wq[t].append((c + 1, holds[t][w] if w < len(holds[t]) else 0))
                            data_seen[t] += 1
                else:
                    r.locked, r.lsel = True, sel
            rest = (h0[0] & ~bit if h0 is not None else 0, h1[0] & ~bit if h1 is not None else 0)
            inj = offers[node]
            fw = (bool(rest[0]) and (not loc[0] or r.done[0] or now[0]),
                  bool(rest[1]) and (not loc[1] or r.done[1] or now[1]))
            # streams first: the injection stays out while a forward of its output channel
            # holds an ACTS flit, up to inject_yield granted forwards in a row
            yld = (inj is not None and r.passed != r.inject_yield
                   and any(fw[v] and heads[v][1] == _ACTS
                           for v in (0, 1) if r.out_vc[v] == r.out_vc[2]))
            wants = fw + (inj is not None and not yld,)
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
            inj_granted = False
            for v in (0, 1):
                if not cg[v]:
                    continue
                for j, i in enumerate(r.members[v]):
                    if cand[i]:
                        r.rr[v] = (j + 1) % len(r.members[v])
                        r.credits[v] -= 1
                        r.prio = 1 - v
                        if i == 2:
                            inj_granted = True
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
            if inj is None or inj_granted:
                r.passed = 0
            elif yld and cg[r.out_vc[2]]:
                r.passed += 1
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
        o_taken = sl[0] is not None and w_ready   # the writer takes the slice's output
        if o_taken:
            writer.take(sl[0])
        if sl[0] is None or o_taken:             # the output register is free: skid first
            sl[0], sl[1] = (sl[1], None) if sl[1] is not None else (taken, None)
        elif taken is not None:                  # held: the ejected flit waits in the skid
            sl[1] = taken
        if ("wait" in starts and c >= starts["wait"] and writer.markers == T
                and not writer.busy(c)):
            end = c + 2                          # the sequencer sees the count next cycle
        c += 1
        # skip the cycles in which nothing can move
        if (hub["src"] is None and "wait" in starts and not any(outs) and not credit_ret
                and writer.idle() and sl == [None, None]
                and not any(r.fifo[0] or r.fifo[1] for r in routers)
                and not any(wq)):
            ev = [e for e in (nd.next_event(c) for nd in nodes) if e is not None]
            if writer.markers == T:
                ev.append(max(starts["wait"], writer.wb_at))
            if ev and min(ev) > c:
                c = min(ev)
    return starts, end, {"writes": writer.writes, "stalls": [nd.stalls for nd in nodes]}
