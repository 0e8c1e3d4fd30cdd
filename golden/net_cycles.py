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
3. **activations**: read once, multicast, ``cols`` bytes per cycle into each tile.
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

from collections import deque
from types import SimpleNamespace

import numpy as np

from .descriptors import DESC_BYTES, LUT_BYTES, QUANT_RECORD_BYTES, Flags, Opcode
from .formats import HEADER_BYTES, PackedWeights
from .tile_model import gather_gate, gather_waits, lane_records, lane_tokens, tile_cycles

__all__ = ["descriptor_cycles", "checker_cycles", "READ_LATENCY", "READ_TAIL", "WRITE_CYCLES",
           "WRITE_FREE", "WRITE_LANDED",
           "HEADER_CHECK_LATENCY", "HOP_CYCLES", "PHASES"]

#: Cycles from a DMA read command accepted (the sequencer's RD_ISSUE) to its first beat
#: (DmaReader accept + check + AR, then the memory).
READ_LATENCY = 4
#: Cycles from a read's last beat to the sequencer leaving RD_STREAM (DmaReader status).
READ_TAIL = 2
#: Posted single-beat writes (hw/hub/result_writer.py, DmaWriter ``posted``), counted from the
#: cycle the DmaWriter accepts the command (one cycle after the push at the earliest):
#: the write buffer is free again ``WRITE_FREE`` cycles later (the word taken), the DmaWriter
#: takes the next command ``WRITE_CYCLES`` later (check, AW, W, status) and the write's
#: response is in ``WRITE_LANDED`` later (the marker waits for the last one).
WRITE_FREE = 5
WRITE_CYCLES = 7
WRITE_LANDED = 9
#: ``HeaderChecker.latency`` (hw/tile/header_checker.py): HSTART to the decision in HCHECK.
HEADER_CHECK_LATENCY = 4
#: Cycles of a ring hop of an unblocked flit (``RingRouter.latency``).
HOP_CYCLES = 2
#: A tile's last weight word ejected -> the tile leaves LOAD (2-word slice, checker, loader).
LOAD_DELAY = 3
#: The tile's im2col unit: set-up (one cycle per column) + two pipeline stages + handover.
IM2COL_EXTRA = 4
#: A lane's end token (the cycle `golden.tile_model` counts) -> it leaves the pair register
#: (where it waits while two of the lane's results are pending).
_TOKEN_FIRE = 1
#: ... -> its result in the lane's result FIFO: fetch stage, the MAC pipeline
#: (``mul_pipeline + 1``), the FIFO write.
_FIRE_TO_FIFO_EXTRA = 2
#: The sequencer's DescChecker: divider steps (hw/hub/desc_checker.py).
_DIV_STEPS = 24
#: The requantizer's accumulator pieces (hw/post/requantizer.py ``_PIECE``).
_REQUANT_PIECE = 17
#: Phases reported by `descriptor_cycles`, in time order.
PHASES = ("fetch_check", "headers", "tables", "acts", "bodies", "wait", "done")


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


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


def _requant_latency(acc_width: int) -> int:
    """``OutputPipeline.latency`` in LUT mode: Requantizer (6 + adder levels + 1) + 1."""
    w = max(acc_width, 2)
    bounds = list(range(0, w, _REQUANT_PIECE))
    if w - bounds[-1] < 2 and len(bounds) > 1:
        bounds.pop()
    n, levels = 2 * len(bounds), 0
    while n > 1:
        n, levels = (n + 1) // 2, levels + 1
    return 6 + levels + 1 + 1


# ---- the tail of a descriptor: bodies, compute, write-back (cycle by cycle) ---------------------

_DATA, _RESULT, _MARK, _CTRL, _ACTS = range(5)


class _Router:
    """One ring router (hw/ring/ring_router.py): two input FIFOs (one per virtual channel),
    credits for the next router's FIFOs, round-robin per output channel among its requesters
    (channel-0 forwarding and injection share one; at the dateline node all three share
    channel 1), then alternation between the channels that hold a credit; a registered link;
    ejection alternates between the channel heads and holds its choice until taken."""

    __slots__ = ("node", "fifo", "credits", "rr", "prio", "out_vc", "members", "ej_prio",
                 "locked", "lsel", "done")

    def __init__(self, node: int, nodes: int, depth: int):
        self.node = node
        self.fifo = (deque(), deque())           # entries (readable from cycle, flit)
        self.credits = [depth, depth]
        low = 1 if node == nodes - 1 else 0
        self.out_vc = (low, 1, low)              # forward channel 0, forward 1, inject
        self.members = tuple(tuple(i for i in range(3) if self.out_vc[i] == v)
                             for v in range(2))
        self.rr = [0, 0]
        self.prio = 0
        self.ej_prio = 0
        self.locked = False
        self.lsel = 0
        self.done = [False, False]               # a head's local copy was delivered


class _Node:
    """A tile node's result side (hw/tile/tile.py, hw/tile/tile_node.py).

    Each lane issues its end tokens at the cycles of `golden.tile_model` (the token time plus
    ``mul_pipeline + 3`` into its result FIFO) unless two of its results wait (then the lane
    stalls: every later token of that lane moves one cycle); a fixed-priority arbiter (lane 0 first;
    a result offered and not taken stays offered) hands one result per cycle to the output pipeline
    (``_requant_latency`` stages that freeze while its output waits) or, for raw int32 results,
    straight to the row register; the packer sends the row register's flits one per cycle and takes
    the next row segment a cycle after the last one left; after the tile's last result the end
    marker follows."""

    __slots__ = ("tile", "lanes", "pipe", "bpr", "row", "ri", "row_at", "free_at", "cs",
                 "compute", "im2col", "marked", "marker_at", "stalls", "sb", "left", "t2f",
                 "held")

    def __init__(self, tile, lanes, pipe_len, bpr, t2f):
        self.tile = tile
        self.t2f = t2f
        # per lane: [token offsets, next index, shift, pending, result FIFO, flits per row]
        self.lanes = [[offs, 0, 0, 0, deque(), flits] for offs, flits in lanes]
        self.left = sum(len(offs) for offs, _ in lanes)      # results not yet in a row
        self.pipe = ((deque([None] * (pipe_len - 1)), [None]) if pipe_len else None)
        self.bpr = bpr
        self.sb = 0
        self.row = None
        self.ri = 0
        self.row_at = self.free_at = 0
        self.cs = None                           # compute start (set when the body is in)
        self.compute = self.im2col = 0
        self.marked = False
        self.marker_at = None
        self.stalls = 0
        self.held = None                         # lane whose result was offered, not taken

    def offer(self, c):
        if self.row is not None and c >= self.row_at:
            return self.row[self.ri]
        if self.marker_at is not None and not self.marked and c >= self.marker_at:
            return (1, _MARK, self.tile, 0)
        return None

    def granted(self, c):
        if self.row is not None:
            self.ri += 1
            if self.ri == len(self.row):
                self.row = None
                self.free_at = c + 1
        else:
            self.marked = True

    def _load(self, flits, c):
        self.row, self.ri, self.row_at = flits, 0, c + 1
        self.left -= 1

    def step(self, c):
        if self.cs is None or self.marked:
            return
        base = self.cs + _TOKEN_FIRE
        for ln in self.lanes:                    # end tokens leave the pair register
            offs, j = ln[0], ln[1]
            if j < len(offs) and base + offs[j] + ln[2] <= c:
                if ln[3] >= 2:
                    ln[2] += 1                   # two results wait: the lane stalls
                    self.stalls += 1
                else:
                    ln[3] += 1
                    ln[4].append((c + self.t2f, ln[5][j]))
                    ln[1] = j + 1
        row_free = self.row is None and c >= self.free_at
        pick = self.held                         # an offered result stays offered
        if pick is None:
            for ln in self.lanes:                # fixed priority, lane 0 first
                if ln[4] and ln[4][0][0] <= c:
                    pick = ln
                    break
        popped = False
        if self.pipe is None:                    # raw results: straight to the row register
            if pick is not None and row_free:
                self._load(pick[4].popleft()[1], c)
                pick[3] -= 1
                popped = True
        else:
            # requantizer then activation table: two pipelines, each frozen while its own
            # output waits (a bubble in front of a frozen stage still moves)
            req, lut = self.pipe
            take = lut[0] is not None and row_free
            if take:
                self._load(lut[0], c)
            lut_en = lut[0] is None or take
            req_en = req[-1] is None or lut_en
            if lut_en:
                lut[0] = req[-1]
            if req_en:
                new = None
                if pick is not None:
                    self.sb += 1
                    if self.sb == self.bpr:      # the last beat of the result: pop it
                        self.sb = 0
                        new = pick[4].popleft()[1]
                        pick[3] -= 1
                        popped = True
                req.pop()
                req.appendleft(new)
        self.held = pick if pick is not None and not popped else None
        if (self.marker_at is None and self.left == 0 and self.row is None
                and c >= self.cs + self.compute):
            self.marker_at = c + 1               # RUN -> MARK: the marker flit

    def next_event(self, c):
        if self.cs is None or self.marked:
            return None
        if self.left == 0 and self.row is None:      # the end marker is next
            return max(c, self.marker_at if self.marker_at is not None
                       else self.cs + self.compute)
        if (self.row is not None or any(ln[4] for ln in self.lanes)
                or (self.pipe is not None
                    and (self.pipe[1][0] is not None or any(self.pipe[0])))):
            return c
        nxt = [self.cs + _TOKEN_FIRE + ln[0][ln[1]] + ln[2]
               for ln in self.lanes if ln[1] < len(ln[0])]
        return max(c, min(nxt)) if nxt else c


class _Writer:
    """hw/hub/result_writer.py: intake (IDLE takes a flit, CALC, one MERGE cycle per beat the
    flit touches), ``lines`` one-beat line buffers (merge on a hit; a free line; else evict
    the round-robin victim when the write buffer is free, else wait), a line written as soon
    as it is full if the write buffer is free, one write buffer, posted single-beat writes
    (`WRITE_FREE`, `WRITE_CYCLES`, `WRITE_LANDED`); a marker flushes every line, then counts
    once the last write is answered."""

    __slots__ = ("beat", "lines", "tag", "cnt", "victim", "state", "parts", "bi", "wb_at",
                 "writes", "markers", "dma_at", "landed_at")

    def __init__(self, lines: int, beat: int):
        self.beat, self.lines = beat, lines
        self.tag = [None] * lines
        self.cnt = [0] * lines
        self.victim = 0
        self.state = 0                           # 0 IDLE, 1 CALC, 2 MERGE, 3 FLUSH
        self.parts = []
        self.bi = 0
        self.wb_at = 0                           # the write buffer is free from this cycle
        self.dma_at = 0                          # the DmaWriter takes a command from this one
        self.landed_at = 0                       # every write answered from this cycle
        self.writes = 0
        self.markers = 0

    def take(self, flit):
        if flit[1] == _MARK:
            self.state = 3
            return
        addr, n = flit[2], flit[3]
        b = self.beat
        self.parts = [(tag, min(addr + n, (tag + 1) * b) - max(addr, tag * b))
                      for tag in range(addr // b, (addr + n - 1) // b + 1)]
        self.state, self.bi = 1, 0

    def _push(self, c):
        self.writes += 1
        accept = max(c + 1, self.dma_at)
        self.wb_at = accept + WRITE_FREE
        self.dma_at = accept + WRITE_CYCLES
        self.landed_at = accept + WRITE_LANDED

    def step(self, c):
        if self.state == 1:
            self.state = 2
        elif self.state == 2:
            tag, n = self.parts[self.bi]
            free = c >= self.wb_at
            if tag in self.tag:
                i = self.tag.index(tag)
                if self.cnt[i] + n >= self.beat and free:
                    self._push(c)
                    self.tag[i], self.cnt[i] = None, 0
                else:
                    self.cnt[i] += n
            elif None in self.tag:
                i = self.tag.index(None)
                self.tag[i], self.cnt[i] = tag, n
            elif free:
                self._push(c)
                self.tag[self.victim], self.cnt[self.victim] = tag, n
                self.victim = (self.victim + 1) % self.lines
            else:
                return                           # wait for the write buffer
            self.bi += 1
            if self.bi == len(self.parts):
                self.state = 0
        elif self.state == 3:
            free = c >= self.wb_at
            busy = [i for i in range(self.lines) if self.tag[i] is not None]
            if busy:
                if free:
                    self._push(c)
                    self.tag[busy[0]], self.cnt[busy[0]] = None, 0
            elif free and c >= self.landed_at:
                self.markers += 1
                self.state = 0

    def busy(self, c):
        return self.state != 0 or c < self.wb_at or c < self.landed_at


class _Gearbox:
    """hw/mem/byte_gearbox.py, counting bytes: takes a word while ``in + held <= in + out``
    and not flushing, emits ``out`` bytes per cycle (the rest after the packet's last word)."""

    __slots__ = ("ib", "ob", "cnt", "flushing", "words")

    def __init__(self, ib: int, ob: int, words: int):
        self.ib, self.ob, self.cnt, self.flushing, self.words = ib, ob, 0, False, words

    def ready(self) -> bool:
        return not self.flushing and self.cnt <= self.ob

    def pop(self) -> bool:
        """One output word if there is one (the consumer is always ready)."""
        if self.cnt >= self.ob:
            self.cnt -= self.ob
            return True
        if self.flushing and self.cnt:
            self.cnt = 0
            return True
        return False

    def push(self):
        self.cnt += self.ib
        self.words -= 1
        if self.words == 0:
            self.flushing = True

    def settle(self):
        if self.flushing and self.cnt == 0:
            self.flushing = False


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
    acts = [_Gearbox(beat, cols, act_words) for _ in range(T)]
    entries = [0] * T
    acts_done = [None if act_words else 0 for _ in range(T)]
    data_seen = [0] * T
    data_need = [0] * T
    weights_done = [None] * T
    for _, _, _, words, flit in program:
        if flit is not None and flit[1] == _DATA:
            data_need[flit[2]] = words
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
        w_ready = writer.state == 0
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
                and writer.state == 0 and not any(r.fifo[0] or r.fifo[1] for r in routers)):
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
                      first: bool = False) -> dict:
    """Cycles of descriptor ``d`` on the accelerator ``cfg``, phase by phase.

    Parameters
    ----------
    d : golden.descriptors.Descriptor
    slices : list of PackedWeights
        The per-tile weight images (docs/spec.md section 8.1), tile 0 first.
    X : array_like, shape (K, N)
        The matmul right-hand side (the im2col matrix of a conv2d).
    act_bytes : int, optional
        Activation bytes read (default ``X.size``; a conv2d reads its ``C*H*W`` input).
    first : bool
        The first descriptor of the table (the sequencer's two table-check cycles).

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
    requant = bool(d.flags & Flags.REQUANT)
    es = 1 if requant else (4 if acc <= 32 else 8)
    dbytes = (payload - 32) // 8
    K, N = X.shape
    act_bytes = int(X.size if act_bytes is None else act_bytes)
    ph = {}
    # 1. descriptor fetch and checks; headers; tables
    ph["fetch_check"] = (2 if first else 0) + 2 + _read(_cdiv(DESC_BYTES, beat)) \
        + checker_cycles(d, cfg) + 1
    hb = _cdiv(HEADER_BYTES, beat)
    ph["headers"] = len(slices) * (3 + _read(hb) + 1 + HEADER_CHECK_LATENCY + hb + 1)
    # 2.-4. tables, activations, bodies, compute, write-back: replayed cycle by cycle
    tcfg = SimpleNamespace(rows=rows, cols=cols, tiles=1, axi_data_width=width,
                           mul_pipeline=mp)
    ncg = _cdiv(N, cols)
    im2col = ncg * K + cols + IM2COL_EXTRA
    pipe_len = _requant_latency(acc) if requant else 0
    bpr = _cdiv(cols, out_lanes) if requant else 1
    nodes, bodies = [], []
    row0 = 0
    for t, pw in enumerate(slices):
        comp = tile_cycles(pw, X, tcfg, act_skip=True, image_bytes=act_bytes)["cycles"]
        # the lanes start with the im2col gather (a pair waits for its entry), except bitmap
        # skipping zero activations, which waits for the whole gather
        waits = gather_waits(pw, True)
        gate = None if waits else (gather_gate(tcfg), K)
        lanes = []
        for lane, items in enumerate(lane_records(pw, X, tcfg, act_skip=True,
                                                  with_k=gate is not None)):
            toks = lane_tokens(items, 1, gate) if items else []
            flits = [_result_flits(row0 + lane + rows * (j // ncg), j % ncg, N, cols, es,
                                   dbytes) for j in range(len(toks))]
            lanes.append((toks, flits))
        nd = _Node(t, lanes, pipe_len, bpr, mp + _FIRE_TO_FIFO_EXTRA)
        nd.compute, nd.im2col = comp, (im2col if waits else 0)
        nodes.append(nd)
        bodies.append(max(1, _cdiv(pw.nbytes - HEADER_BYTES, beat)))
        row0 += pw.shape[0]
    mcast = sum(1 << (t + 1) for t in range(len(slices)))
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
    for t, bb in enumerate(bodies):
        program.append(("bodies" if t == 0 else None, 2, "dma", bb,
                        (1 << (t + 1), _DATA, t, 0)))
    program.append((None, 1, None, 0, None))     # BODIES once more, then WAIT
    lines = min(16, max(2, rows * tiles))
    limit = 64 * (sum(bodies) + act_words + 2 * LUT_BYTES + quant_words + 1000
                  + (im2col + max(nd.compute for nd in nodes)) * len(nodes)
                  + WRITE_CYCLES * _cdiv(d.m * N * es, beat) * 2)
    starts, end, info = _tail(program, nodes, tiles=tiles, depth=depth, beat=beat,
                              lines=lines, cols=cols, lut_words=lut_words,
                              quant_words=quant_words, act_words=act_words,
                              image_entries=_cdiv(act_bytes, cols), limit=limit)
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
        tiles=[{"loaded": int(nd.cs - im2col - starts["bodies"]),
                "compute_start": int(nd.cs - starts["bodies"]),
                "compute_end": int(nd.cs + nd.compute - starts["bodies"])} for nd in nodes])
    return out
