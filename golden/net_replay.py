"""The hub, the ring, the tile nodes and the ResultWriter replayed cycle by cycle: the part of the
network cycle model (`golden.net_cycles`) that runs from a descriptor's tables to its end.

Pure Python (no hardware import).  Each class follows one hardware block with the block's own
rules: `_Router` the ring routers' credits and round-robin arbitration (hw/ring/ring_router.py),
`_Node` a tile node's result side (hw/tile/tile.py, hw/tile/tile_node.py), `_Writer` the
ResultWriter's line buffers and posted writes (hw/hub/result_writer.py, hw/hub/dma_writer.py),
`_Gearbox` a byte gearbox (hw/mem/byte_gearbox.py); `_tail` runs them together on the
sequencer's program of streams.  The timing constants below were measured on the RTL
(docs/reports/network_model.md).
"""

from __future__ import annotations

from collections import deque

#: Cycles from a DMA read command accepted (the sequencer's RD_ISSUE) to its first beat
#: (DmaReader accept + check + AR, then the memory).
READ_LATENCY = 4
#: Cycles from a read's last beat to the sequencer leaving RD_STREAM (DmaReader status).
READ_TAIL = 2
#: Posted single-beat writes (hw/hub/result_writer.py -> a skid buffer -> hw/hub/beat_writer.py):
#: the BeatWriter takes a beat per cycle while fewer than ``max_outstanding`` writes wait for
#: their response; a write's B response is taken ``WRITE_RESPONSE`` cycles after its beat
#: (AW and W registered, the memory's handshake, its B a cycle later); ``busy`` falls the
#: cycle after the last response (the end marker waits for it).
WRITE_RESPONSE = 3
#: ``HeaderChecker.latency`` (hw/tile/header_checker.py): HSTART to the decision in HCHECK.
HEADER_CHECK_LATENCY = 4
#: Cycles of a ring hop of an unblocked flit (``RingRouter.latency``).
HOP_CYCLES = 2
#: A tile's last weight word ejected -> the tile leaves LOAD (2-word slice, checker, loader).
LOAD_DELAY = 3
#: A lane's end token (the cycle `golden.tile_model` counts) -> it leaves the pair register
#: (where it waits while two of the lane's results are pending).
_TOKEN_FIRE = 1
#: ... -> its result in the lane's result FIFO: fetch stage, the MAC pipeline
#: (``mul_pipeline + 1``), the FIFO write.
_FIRE_TO_FIFO_EXTRA = 2


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


# ---- the tail of a descriptor: bodies, compute, write-back (cycle by cycle) ---------------------

#: The requantizer's accumulator pieces (hw/post/requantizer.py ``_PIECE``).
_REQUANT_PIECE = 17


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


_DATA, _RESULT, _MARK, _CTRL, _ACTS = range(5)


class _Router:
    """One ring router (hw/ring/ring_router.py): two input FIFOs (one per virtual channel),
    credits for the next router's FIFOs, round-robin per output channel among its requesters
    (channel-0 forwarding and injection share one; at the dateline node all three share
    channel 1), then alternation between the channels that hold a credit; a registered link;
    ejection alternates between the channel heads and holds its choice until taken.  With
    ``inject_yield`` > 0 a waiting injection stays out while a forward of its output channel
    holds an ACTS flit, up to ``inject_yield`` granted forwards in a row (``passed``)."""

    __slots__ = ("node", "fifo", "credits", "rr", "prio", "out_vc", "members", "ej_prio",
                 "locked", "lsel", "done", "inject_yield", "passed")

    def __init__(self, node: int, nodes: int, depth: int, inject_yield: int = 0):
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
        self.inject_yield = inject_yield
        self.passed = 0                          # forwards the injection let go first


def _take(ln):
    """The head of lane ``ln``'s result FIFO, popped (one result fewer pending)."""
    ln[3] -= 1
    return ln[4].popleft()[1]


class _Node:
    """A tile node's result side (hw/tile/tile.py, hw/tile/tile_node.py).

    Each lane issues its end tokens at the cycles of `golden.tile_model` (the token time plus
    ``mul_pipeline + 3`` into its result FIFO) unless two of its results wait (then the lane
    stalls: every later token of that lane moves one cycle); a fixed-priority arbiter (lane 0 first;
    a result offered and not taken stays offered; hw/tile/result_arbiter.py) reads a result from
    its FIFO the cycle after it was written (a ``SyncFIFO``) and hands one result per cycle to the
    output pipeline or, for raw int32 results, straight to the row register.  The output pipeline
    (hw/post/output_pipeline.py) is the requantizer (``_requant_latency - 1`` stages) and the
    activation table (one stage), each advancing as a whole while its output is empty or taken,
    with a skid buffer behind each (``mid_skid``, ``out_skid``: no latency, ready while empty), so
    a result the next stage does not take waits in the skid and the stage goes on: two more
    results held in the tile than in two bare pipelines, which in a write-back bound layer lets
    the lanes run further ahead of the ring (the digits CNN's conv1, 2:4: results reach the
    ResultWriter in the RTL's order only with them).  The packer sends the row register's flits
    one per cycle and takes the next row segment a cycle after the last one left; after the
    tile's last result the end marker follows."""

    __slots__ = ("tile", "lanes", "pipe", "bpr", "row", "ri", "row_at", "free_at", "cs",
                 "compute", "marked", "marker_at", "stalls", "sb", "left", "t2f",
                 "held", "comp_min", "comp_tail", "wdone", "wwait", "taken", "skid", "tab_at",
                 "rbuf", "rbuf_depth", "acts_at")

    def __init__(self, tile, lanes, pipe_len, bpr, t2f, rbuf: int = 0):
        self.tile = tile
        self.t2f = t2f
        # per lane: [token offsets, next index, shift, pending, result FIFO, flits per row,
        # token generator]: the offsets are a list, or a generator (`lane_token_iter` on a
        # weight image still arriving) that fills the list as the replay learns the arrivals
        self.lanes = []
        for lane in lanes:
            offs, flits = lane[0], lane[1]
            gen = None if isinstance(offs, list) else offs
            cell = lane[2] if len(lane) > 2 else None
            self.lanes.append([[] if gen is not None else offs, 0, 0, 0, deque(), flits, gen,
                               cell])
        self.left = sum(len(lane[1]) for lane in lanes)      # results not yet in a row
        self.pipe = ((deque([None] * (pipe_len - 1)), [None]) if pipe_len else None)
        self.skid = [None, None]                 # the output pipeline's middle and output skid
        self.bpr = bpr
        self.sb = 0
        self.row = None
        self.ri = 0
        self.row_at = self.free_at = 0
        self.cs = None                           # compute start (set when the body is in)
        self.compute = 0
        # with token generators: compute is known once they are exhausted, as
        # max(last token + comp_tail, comp_min, the whole image in: wdone - cs)
        self.comp_min = self.comp_tail = 0
        self.wdone = None
        self.wwait = True       # the lanes start once the whole weight image is in (bitmap)
        self.taken = []         # the cycle each body word left the node's weight FIFO
        self.acts_at = []       # the cycle the tile took each image word (pools read it)
        self.marked = False
        self.marker_at = None
        self.stalls = 0
        self.held = None                         # lane whose result was offered, not taken
        # from this cycle on the output pipeline takes results (hw/tile/tile_node.py
        # ``tables_in``: the requant records are in; None: not yet)
        self.tab_at = -(1 << 30)
        # the node's result buffer (hw/tile/tile_node.py ``result_buf``, ``rbuf`` entries, 0:
        # none): (cycle written, result); readable the cycle after it was written
        self.rbuf_depth = rbuf
        self.rbuf: deque = deque()

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

    def _pull(self, ln) -> None:
        """Extend a lane's token list from its generator while the next one is known."""
        if ln[6] is not None and ln[1] == len(ln[0]):
            try:
                x = next(ln[6])
            except StopIteration:
                ln[6] = None
                self._settle()
                return
            if x is not None:
                ln[0].append(x)

    def _settle(self) -> None:
        """Every generator is exhausted: the compute phase's length is known."""
        if (self.wwait or self.cs is None or self.wdone is None
                or any(ln[6] is not None for ln in self.lanes)):
            return
        # (the lanes' compute: their last tokens less what they stalled for their results)
        last = max((ln[0][-1] - (ln[7][1] if ln[7] is not None else 0)
                    for ln in self.lanes if ln[0]), default=0)
        self.compute = max(last + self.comp_tail, self.comp_min, self.wdone - self.cs)

    def blocked(self) -> bool:
        """A lane waits for a weight word that is not known to be in yet."""
        return any(ln[6] is not None and ln[1] == len(ln[0]) for ln in self.lanes)

    def step(self, c):
        if self.cs is None or self.marked:
            return
        base = self.cs + _TOKEN_FIRE
        for ln in self.lanes:                    # end tokens leave the pair register
            self._pull(ln)
            offs, j = ln[0], ln[1]
            if j < len(offs) and base + offs[j] + ln[2] <= c:
                if ln[3] >= 2:                   # two results wait: the lane stalls
                    if ln[7] is None:
                        ln[2] += 1               # (a token list: every later token moves)
                    self.stalls += 1
                else:
                    ln[3] += 1
                    ln[4].append((c + self.t2f, ln[5][j]))
                    ln[1] = j + 1
                    if ln[7] is not None:        # the generator's scanner learns the cycle
                        ln[7][0] = c - base
        row_free = self.row is None and c >= self.free_at
        pick = self.held                         # an offered result stays offered
        if pick is None:
            for ln in self.lanes:                # fixed priority, lane 0 first
                if ln[4] and ln[4][0][0] < c:
                    pick = ln
                    break
        popped = False
        rb = self.rbuf
        if self.rbuf_depth:
            # the arbiter writes the buffer while it has room (counted at the start of the
            # cycle); the consumers below read its head (written in an earlier cycle)
            room = len(rb) < self.rbuf_depth
            head = rb[0][1] if rb and rb[0][0] < c else None
        if self.pipe is None:                    # raw results: straight to the row register
            if self.rbuf_depth:
                if head is not None and row_free:
                    self._load(rb.popleft()[1], c)
            elif pick is not None and row_free:
                self._load(_take(pick), c)
                popped = True
        else:
            # requantizer then activation table: two pipelines, each frozen while its own
            # output waits, with a skid buffer (hw/post/output_pipeline.py ``mid_skid``,
            # ``out_skid``: no latency, ready = "skid empty") behind each: a stage's output
            # that is not taken waits in its skid and the stage goes on (one more result each)
            req, lut = self.pipe
            skid = self.skid
            out = skid[1] if skid[1] is not None else lut[0]
            take = out is not None and row_free
            if take:
                self._load(out, c)
            if skid[1] is not None:              # the output skid, full: drained when taken
                if take:
                    skid[1] = None
                lut_en = lut[0] is None
            else:                                # empty: the table's output passes or waits
                if lut[0] is not None and not take:
                    skid[1] = lut[0]
                lut_en = True
            mid = skid[0] if skid[0] is not None else req[-1]
            if skid[0] is not None:              # the middle skid, full
                if lut_en:
                    skid[0] = None
                req_en = req[-1] is None
            else:
                if req[-1] is not None and not lut_en:
                    skid[0] = req[-1]
                req_en = True
            if lut_en:
                lut[0] = mid
            if req_en:
                new = None
                src = head if self.rbuf_depth else pick
                if src is not None and self.tab_at is not None and c >= self.tab_at:
                    self.sb += 1
                    if self.sb == self.bpr:      # the last beat of the result: pop it
                        self.sb = 0
                        if self.rbuf_depth:
                            new = rb.popleft()[1]
                        else:
                            new = _take(pick)
                            popped = True
                req.pop()
                req.appendleft(new)
        if self.rbuf_depth and pick is not None and room:
            rb.append((c, _take(pick)))
            popped = True
        self.held = pick if pick is not None and not popped else None
        if (self.marker_at is None and self.left == 0 and self.row is None
                and self.compute is not None and c >= self.cs + self.compute):
            self.marker_at = c + 1               # RUN -> MARK: the marker flit

    def next_event(self, c):
        if self.cs is None or self.marked:
            return None
        for ln in self.lanes:
            self._pull(ln)
        if self.blocked() or self.compute is None:
            return c
        if self.left == 0 and self.row is None:      # the end marker is next
            return max(c, self.marker_at if self.marker_at is not None
                       else self.cs + self.compute)
        if (self.row is not None or self.rbuf or any(ln[4] for ln in self.lanes)
                or (self.pipe is not None
                    and (self.pipe[1][0] is not None or any(self.pipe[0])
                         or self.skid != [None, None]))):
            return c
        nxt = [self.cs + _TOKEN_FIRE + ln[0][ln[1]] + ln[2]
               for ln in self.lanes if ln[1] < len(ln[0])]
        return max(c, min(nxt)) if nxt else c


class _Writer:
    """hw/hub/result_writer.py: the intake pipeline (a two-entry queue taking a flit per cycle
    while it has room, a row stage, an address stage handing on a beat per cycle, a merge
    stage merging one beat per cycle: ``r``, ``parts``, ``m``), ``lines``
    one-beat line buffers (merge on a hit; a free line; else evict, when the write buffer is
    free, the lowest full line or else the round-robin victim; else wait), a line written as
    soon as it is full if the write buffer is free, one write buffer, posted single-beat writes
    (a beat per cycle, ``outstanding`` responses due at most, `WRITE_RESPONSE`); a marker
    at the queue's head waits for the merges before it, flushes every line, then counts once
    the last write is answered."""

    __slots__ = ("beat", "lines", "outstanding", "tag", "cnt", "victim", "queue", "r", "parts",
                 "bi", "m", "flushing", "wb_at", "writes", "markers", "bw_at", "landed_at",
                 "skid_at", "flight")

    def __init__(self, lines: int, beat: int, outstanding: int = 4):
        self.beat, self.lines, self.outstanding = beat, lines, outstanding
        self.tag = [None] * lines
        self.cnt = [0] * lines
        self.victim = 0
        self.queue = deque()                     # taken flits: (address, bytes) or None (marker)
        self.r = None                            # the row stage's flit: (address, bytes)
        self.parts = None                        # the address stage's flit: (tag, bytes) per beat
        self.bi = 0
        self.m = None                            # the merge stage's beat: (tag, bytes)
        self.flushing = False
        self.wb_at = 0                           # the write buffer is free from this cycle
        self.bw_at = 0                           # the BeatWriter takes a beat from this one
        self.landed_at = 0                       # every write answered from this cycle
        self.skid_at = 0                         # the skid buffer has room from this cycle
        self.flight = []                         # the cycles the responses due are taken
        self.writes = 0
        self.markers = 0

    def ready(self) -> bool:
        """The queue has room (its level at the start of the cycle)."""
        return len(self.queue) < 2

    def idle(self) -> bool:
        return (not self.queue and self.r is None and self.parts is None and self.m is None
                and not self.flushing)

    def take(self, flit):
        self.queue.append(None if flit[1] == _MARK else (flit[2], flit[3]))

    def _push(self, c):
        """The write buffer loaded in cycle ``c``: its beat is offered from ``c + 1`` and leaves
        the buffer once the skid buffer has room (``skid_at``), which frees the buffer; the
        BeatWriter takes it (through the empty skid, or from it) once it took the previous
        one (``bw_at``) and fewer than ``outstanding`` responses are due."""
        self.writes += 1
        t1 = max(c + 1, self.skid_at)
        t2 = max(t1, self.bw_at)
        due = [f for f in self.flight if f >= t2]
        if len(due) >= self.outstanding:
            t2 = due[len(due) - self.outstanding] + 1
        self.flight = [f for f in due if f >= t2] + [t2 + WRITE_RESPONSE]
        if t2 > t1:                             # it waited in the skid
            self.skid_at = t2 + 1
        self.wb_at = t1
        self.bw_at = t2 + 1
        self.landed_at = t2 + WRITE_RESPONSE + 1

    def _merge(self, c) -> bool:
        """One merge cycle of the merge stage's beat; True once it is merged."""
        tag, n = self.m
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
        elif free:                               # evict the lowest full line, else round robin
            self._push(c)
            full = [j for j in range(self.lines) if self.cnt[j] >= self.beat]
            i = full[0] if full else self.victim
            self.tag[i], self.cnt[i] = tag, n
            self.victim = (self.victim + 1) % self.lines
        else:
            return False                         # wait for the write buffer
        return True

    def step(self, c):
        flushing = self.flushing                 # start of the cycle
        r_v, g_v, m_v = self.r is not None, self.parts is not None, self.m is not None
        if flushing:
            free = c >= self.wb_at
            busy = [i for i in range(self.lines) if self.tag[i] is not None]
            if busy:
                if free:
                    self._push(c)
                    self.tag[busy[0]], self.cnt[busy[0]] = None, 0
            elif free and c >= self.landed_at:
                self.markers += 1
                self.flushing = False
        m_room = not m_v or self._merge(c)
        if m_room:
            self.m = None
        g_done = False
        if g_v and m_room:                       # the address stage hands a beat on
            self.m = self.parts[self.bi]
            self.bi += 1
            g_done = self.bi == len(self.parts)
            if g_done:
                self.parts = None
        r_go = r_v and (not g_v or g_done)
        if r_go:                                 # the row stage hands its flit on
            addr, n = self.r
            b = self.beat
            self.parts = [(tag, min(addr + n, (tag + 1) * b) - max(addr, tag * b))
                          for tag in range(addr // b, (addr + n - 1) // b + 1)]
            self.bi = 0
            self.r = None
        if self.queue and not flushing:
            head = self.queue[0]
            if head is None:
                if not (r_v or g_v or m_v):
                    self.queue.popleft()
                    self.flushing = True
            elif not r_v or r_go:
                self.r = self.queue.popleft()

    def busy(self, c):
        return not self.idle() or c < self.wb_at or c < self.landed_at


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
