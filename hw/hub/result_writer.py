"""Memory hub side of the results: RESULT flits -> byte-exact DMA writes (docs/accelerator.md)."""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.mem.axi import dma_beat_layout
from sparsemac.hw.ring.layouts import FlitType, flit_layout
from sparsemac.hw.tile.tile_node import DONE_MARKER, result_data_bytes

__all__ = ["ResultWriter"]


class _FlopQueue(Elaboratable):
    """A two-entry first-in first-out queue in flip-flops, the head always in one register.

    The interface and timing of ``SyncFIFO(depth=2)`` (an entry written in one cycle can be
    read in the next; ``w_rdy`` is the registered room, not counting a read in the same
    cycle), but ``r_data`` is a flip-flop's output, not an asynchronous memory read.
    """

    def __init__(self, width: int):
        self.w_data, self.w_en, self.w_rdy = Signal(width), Signal(), Signal()
        self.r_data, self.r_en, self.r_rdy = Signal(width), Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        level = Signal(range(3))
        tail = Signal.like(self.w_data)           # the second entry
        write = self.w_en & self.w_rdy
        read = self.r_en & self.r_rdy
        m.d.comb += [self.w_rdy.eq(level != 2), self.r_rdy.eq(level != 0)]
        m.d.sync += level.eq(level + write - read)
        with m.If(read & (level == 2)):
            m.d.sync += self.r_data.eq(tail)
        with m.Elif(write & ((level == 0) | read)):
            m.d.sync += self.r_data.eq(self.w_data)
        with m.If(write & (level - read == 1)):
            m.d.sync += tail.eq(self.w_data)
        return m


class ResultWriter(wiring.Component):
    """Write each RESULT flit's bytes to ``out_base + m * row_bytes + eoff`` through a BeatWriter.

    A flit carries ``m`` (16 bits), ``eoff`` (byte offset in the output row, 16 bits) and
    ``result_data_bytes(cfg)`` bytes; only ``min(that, row_bytes - eoff)`` bytes are written
    (strobes), so nothing outside ``Y[m, :]`` changes.  Flits with ``m >= m_total`` or
    ``eoff >= row_bytes`` are dropped (never written): the output buffer bounds hold whatever a
    tile sends.  A flit with ``m = DONE_MARKER`` counts one finished node in ``markers``.

    Write combining: the bytes of a flit are merged into ``lines`` one-beat line buffers (tag =
    beat address, data, byte strobes). The intake is a pipeline that takes a flit per cycle and
    merges a beat per cycle, every stage starting at flip-flops:

    1. a two-entry queue in flip-flops (the flit, its bytes left in row and segment, markers in
       order; ``flits.ready`` is its registered room);
    2. the row stage: ``m * row_bytes`` as two registered partial products (one multiplier
       each), ``out_base + eoff`` and the first byte's offset in its beat;
    3. the address stage: the beat address (an adder), then one beat per cycle handed on (its
       tag a counter, its strobes a register loaded with the flit);
    4. the merge stage: one beat per cycle into the lines.  Which line it hits, whether it
       hits one and whether it fills each line are registers, computed while the beat was in
       the address stage against the lines as that cycle's merge leaves them (forwarded).

    Latency: a flit's first beat merges 4 cycles after the flit is taken (2 before the row
    and merge stages); a marker leaves the queue once stages 2-4 are empty.  Throughput: a
    flit per cycle, a beat per cycle.  A line is written (one single-beat
    write on ``wbeat``, the strobes it collected) as soon as all its bytes are present, when it is
    evicted for a beat no line holds (the lowest full line first, else round robin), and at
    every marker flit: the marker is counted only after every line has been written and
    every write response came back (``wbusy`` low), so when the hub has seen one marker per
    node every result of the layer is in memory.
    Each lane of each tile writes its output row left to right, so with ``lines >= rows *
    tiles`` a beat is normally written once, full (``beat / bytes-per-flit`` times fewer write
    writes than one write per flit). Writes run in the background (one write buffer, posted:
    the buffer is free in the cycle the BeatWriter takes its beat, up to one a cycle, the
    responses come later) while the next flits merge. A failing write (``werror``) latches
    ``error_code``/``error_addr`` (the first one, sticky until ``clear``); later flits, the
    write buffer and the lines still open are then dropped.

    Members
    -------
    flits : In(stream(flit))
    wbeat : Out(stream(dma_beat_layout))
        One single-beat write per line written, to the BeatWriter.
    wbusy, werror, werror_addr : In
        The BeatWriter's ``busy``, ``error`` and ``error_addr``.
    out_base : In(addr_width)
    row_bytes, m_total : In(32)
    lg_esize : In(2)
        log2 of the output element size (0: int8, 2: int32, 3: int64); a flit's bytes end at
        its ``cols``-element segment of the row.
    clear : In(1)
    markers : Out(8)
    error_code : Out(8); error_addr : Out(addr_width)
    busy, stall : Out(1)

    Parameters
    ----------
    cfg : AcceleratorConfig
    lines : int, optional
        Line buffers (1..32; default ``rows * tiles`` clamped to 2..16).
    """

    def __init__(self, cfg: AcceleratorConfig, *, lines: int | None = None):
        AcceleratorConfig.require(cfg, "cfg")
        if lines is None:
            lines = min(16, max(2, cfg.rows * cfg.tiles))
        if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= 32:
            raise ValueError(f"lines must be between 1 and 32, not {lines!r}")
        self.cfg = cfg
        self.lines = lines
        aw = cfg.axi_addr_width
        super().__init__({
            "flits": In(stream.Signature(flit_layout(cfg.tiles + 1, cfg.ring_payload_width))),
            "wbeat": Out(stream.Signature(dma_beat_layout(cfg.axi_data_width, aw))),
            "wbusy": In(1), "werror": In(8), "werror_addr": In(aw),
            "out_base": In(aw), "row_bytes": In(32), "m_total": In(32), "lg_esize": In(2),
            "clear": In(1), "markers": Out(8),
            "error_code": Out(8), "error_addr": Out(aw),
            "busy": Out(1), "stall": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, L = self.cfg, self.lines
        aw, beat = cfg.axi_addr_width, cfg.axi_bytes
        lg_beat = (beat - 1).bit_length()
        tw = aw - lg_beat
        dbytes = result_data_bytes(cfg)
        span = -(-(dbytes + beat - 1) // beat) * beat      # bytes a flit can touch, beat-aligned
        fl = self.flits.payload
        f_m, f_eoff = fl.payload[:16], fl.payload[16:32]
        f_data = fl.payload[32:32 + 8 * dbytes]
        ok = Signal(init=1, name="ok")   # error_code == 0, as a flip-flop of its own

        # -- line buffers and the write buffer -------------------------------------------------
        lv = Signal(L)
        ltag = [Signal(tw, name=f"line{i}_tag") for i in range(L)]
        ldata = [Signal(8 * beat, name=f"line{i}_data") for i in range(L)]
        lstrb = [Signal(beat, name=f"line{i}_strb") for i in range(L)]
        wb_valid, wb_tag = Signal(name="wb_valid"), Signal(tw, name="wb_tag")
        wb_data, wb_strb = Signal(8 * beat, name="wb_data"), Signal(beat, name="wb_strb")
        push = Signal()                   # load the write buffer this cycle (from push_*)
        push_tag = Signal(tw, name="push_tag")
        push_data, push_strb = Signal(8 * beat, name="push_data"), Signal(beat, name="push_strb")
        # -- the write buffer -> one single-beat posted write (hw/hub/beat_writer.py) ----------
        # The BeatWriter takes a beat per cycle and reports a failing write (its window check,
        # a response, its watchdog) as ``werror`` (sticky until the sequencer cancels it);
        # ``wbusy`` low means every write landed.  The buffer is free in the cycle its beat is
        # taken (a new line may be pushed in that very cycle).
        wb_taken = Signal()               # the beat leaves the buffer this cycle
        m.d.comb += [self.wbeat.payload.tag.eq(wb_tag), self.wbeat.payload.data.eq(wb_data),
                     self.wbeat.payload.strb.eq(wb_strb),
                     self.wbeat.valid.eq(wb_valid & ok),
                     wb_taken.eq(wb_valid & self.wbeat.ready),
                     self.stall.eq(wb_valid & ok & ~self.wbeat.ready)]
        # (after an error the line is dropped: apart from ``wb_taken``, which the merge stage
        # reads, so its enables do not wait on ``ok``: 4,786 instead of 5,994 LUT on the ECP5)
        with m.If(wb_taken | ~ok):
            m.d.sync += wb_valid.eq(0)
        with m.If(push):                  # after the take: a push as the beat leaves wins
            m.d.sync += wb_valid.eq(1)
        wb_free = Signal(name="wb_free")
        m.d.comb += wb_free.eq(~wb_valid | wb_taken)
        with m.If(wb_free):               # a free buffer loads what a push would write
            m.d.sync += [wb_tag.eq(push_tag), wb_data.eq(push_data), wb_strb.eq(push_strb)]
        with m.If((self.error_code == 0) & (self.werror != 0)):
            m.d.sync += [self.error_code.eq(self.werror), self.error_addr.eq(self.werror_addr),
                         ok.eq(0)]

        # -- intake, a pipeline of a flit per cycle: flits -> queue -> (address, bytes) -> merge
        # Bytes the flit may write, computed from the flit as it is taken (queued, clamped to
        # its data bytes, so the address stage only takes the smaller of two short numbers):
        # up to the end of the output row and up to the end of its ``cols``-element segment
        # (a flit never carries bytes of the next tile-row segment).
        def _at_most_dbytes(value, name):
            out = Signal(range(dbytes + 1), name=name)
            m.d.comb += out.eq(Mux(value < dbytes, value, dbytes))
            return out

        seg_bytes_left = Signal(24)
        if cfg.cols & (cfg.cols - 1) == 0:
            # cols a power of two: the segment is the aligned run of (cols << lg_esize) bytes
            # around eoff, so the bytes left are its complement's low bits + 1 (no carry chain
            # longer than the segment; the flit arrives late from the ring's eject arbiter)
            seg_mask = Signal(16)
            with m.Switch(self.lg_esize):
                for e in range(4):
                    with m.Case(e):
                        m.d.comb += seg_mask.eq((cfg.cols << e) - 1)
            m.d.comb += seg_bytes_left.eq((~f_eoff & seg_mask) + 1)
        else:
            el = Signal(16)
            seg_end = Signal(24)
            m.d.comb += [el.eq(f_eoff >> self.lg_esize),
                         seg_end.eq(((el // cfg.cols + 1) * cfg.cols) << self.lg_esize),
                         seg_bytes_left.eq(seg_end - f_eoff)]
        row_left = _at_most_dbytes(self.row_bytes - f_eoff, "row_left")
        seg_left = _at_most_dbytes(seg_bytes_left, "seg_left")

        # stage 1: a two-entry queue of taken flits (``ready`` is its registered room, so the
        # ring's eject arbiter sees no path through the merge logic); markers queue in order
        nb_w = len(row_left)
        entry = data.StructLayout({"m": 16, "eoff": 16, "data": 8 * dbytes,
                                   "row_left": nb_w, "seg_left": nb_w, "mark": 1})
        m.submodules.queue = queue = _FlopQueue(entry.size)
        q_in, q = entry(queue.w_data), entry(queue.r_data)
        is_mark = (fl.type == FlitType.RESULT) & (f_m == DONE_MARKER)
        keep = (fl.type == FlitType.RESULT) & (f_m < self.m_total) & (f_eoff < self.row_bytes) & ok
        m.d.comb += [self.flits.ready.eq(queue.w_rdy),
                     queue.w_en.eq(self.flits.valid & (is_mark | keep)),
                     q_in.m.eq(f_m), q_in.eoff.eq(f_eoff), q_in.data.eq(f_data),
                     q_in.row_left.eq(row_left), q_in.seg_left.eq(seg_left),
                     q_in.mark.eq(is_mark)]

        # stage 2 (address): the flit's first byte address and byte count (registered), then
        # one beat per cycle (``bi``) handed to stage 3: its beat address, bytes and strobes
        g_v = Signal()
        g_data = Signal(8 * dbytes)
        lo, bi = Signal(lg_beat, name="lo"), Signal(range(span), name="bi")
        nbeats = Signal(range(span // beat + 1), name="nbeats")
        wide = Signal(8 * span, name="wide")
        strb = Signal(span, name="strb")  # the flit's strobes, a register (loaded with it)
        m.d.comb += wide.eq(g_data << (lo * 8))
        # the beat address of beat ``bi`` is a register (loaded with the flit's first beat,
        # counted up per beat): the line tag compares start at a flip-flop, not at an adder
        p_tag = Signal(tw)
        p_data, p_strb = Signal(8 * beat, name="p_data"), Signal(beat, name="p_strb")
        m.d.comb += [p_data.eq((wide >> (bi * 8 * beat))[:8 * beat]),
                     p_strb.eq((strb >> (bi * beat))[:beat])]

        # stage 3 (merge): one beat (``m_*``) merged per cycle.  Which line holds the beat
        # (``hit``, one-hot: tags are unique) is a register, computed while the beat was in
        # stage 2 against the lines as stage 3's merge of that cycle leaves them (the line it
        # writes gets stage 3's beat address, or is written out): the merge starts at
        # flip-flops, not at a tag compare.
        m_v, m_tag = Signal(name="m_v"), Signal(tw, name="m_tag")
        m_data, m_strb = Signal(8 * beat, name="m_data"), Signal(beat, name="m_strb")
        hit = Signal(L)
        hit_any = Signal(name="hit_any")  # hit.any(), a flip-flop of its own
        free_oh = Signal(L)
        m.d.comb += free_oh.eq(~lv & (lv + 1))
        # the hit line's bytes and strobes through an AND-OR mux; whether the beat completes
        # a line is a register per line (``fills``, computed with ``hit``), so the decision
        # to write the line out starts at flip-flops
        hit_data, hit_strb = Signal(8 * beat, name="hit_data"), Signal(beat, name="hit_strb")
        m.d.comb += [hit_data.eq(functools.reduce(operator.or_, [
                         Mux(hit[i], ldata[i], 0) for i in range(L)])),
                     hit_strb.eq(functools.reduce(operator.or_, [
                         Mux(hit[i], lstrb[i], 0) for i in range(L)]))]
        fills = Signal(L, name="fills")   # line i | the beat's strobes = every byte
        fills_hit = Signal()
        m.d.comb += fills_hit.eq((hit & fills).any())
        hit_merged = Signal(8 * beat, name="hit_merged")
        hit_new_strb = Signal(beat, name="hit_new_strb")
        m.d.comb += [hit_merged.eq(Cat(*[Mux(m_strb[b], m_data[8 * b:8 * b + 8],
                                             hit_data[8 * b:8 * b + 8]) for b in range(beat)])),
                     hit_new_strb.eq(hit_strb | m_strb)]
        # the line written out when a beat finds neither its line nor a free one (evicted): the
        # lowest full line if any (it was complete while the write buffer was busy: writing it
        # costs no extra command), else round robin; while a marker flushes: the lowest valid
        # line.  One AND-OR mux reads the line out.
        victim = Signal(range(max(2, L)))
        # ``full``: a flip-flop per line, lv & all strobes, set and cleared with them
        full, full_first = Signal(L, name="full"), Signal(L, name="full_first")
        evict_oh = Signal(L, name="evict_oh")
        m.d.comb += [full_first.eq(full & (~full + 1)),
                     evict_oh.eq(Mux(full.any(), full_first, 1 << victim))]
        flushing = Signal()
        out_oh = Signal(L)
        m.d.comb += out_oh.eq(Mux(flushing, lv & (~lv + 1), evict_oh))
        out_tag = Signal(tw, name="out_tag")
        out_data, out_strb = Signal(8 * beat, name="out_data"), Signal(beat, name="out_strb")
        for sig, regs in ((out_tag, ltag), (out_data, ldata), (out_strb, lstrb)):
            m.d.comb += sig.eq(functools.reduce(operator.or_, [
                Mux(out_oh[i], regs[i], 0) for i in range(L)]))

        # what a push writes: the line stage 3's beat completes, else the line written out
        # (evicted, or flushed at a marker); chosen from flip-flops only
        take_hit = Signal()
        m.d.comb += [take_hit.eq(m_v & hit_any),
                     push_tag.eq(Mux(take_hit, m_tag, out_tag)),
                     push_data.eq(Mux(take_hit, hit_merged, out_data)),
                     push_strb.eq(Mux(take_hit, hit_new_strb, out_strb))]

        m_done = Signal()                 # stage 3 merged (or dropped) its beat this cycle
        complete = Signal()               # ... completing the line it hit, written out now
        wr_oh = Signal(L)                 # ... into this line (or out of it, when complete)
        with m.If(m_v):
            m.d.comb += self.busy.eq(1)
            with m.If(~ok):
                m.d.comb += m_done.eq(1)
            with m.Elif(hit_any):
                # merged into its line, which is written out (and freed) at once if the beat
                # completes it and the write buffer is free (the bytes of a freed line are
                # never read, so they are written either way)
                m.d.comb += [wr_oh.eq(hit), m_done.eq(1)]
                for i in range(L):
                    with m.If(hit[i]):
                        m.d.sync += [ldata[i].eq(hit_merged), lstrb[i].eq(hit_new_strb),
                                     full[i].eq(fills_hit)]
                with m.If(fills_hit & wb_free):   # complete: write it now
                    m.d.comb += [complete.eq(1), push.eq(1)]
                    for i in range(L):
                        with m.If(hit[i]):
                            m.d.sync += [lv[i].eq(0), full[i].eq(0)]
            with m.Elif(~lv.all()):
                m.d.comb += [wr_oh.eq(free_oh), m_done.eq(1)]
                for i in range(L):
                    with m.If(free_oh[i]):
                        m.d.sync += [lv[i].eq(1), ltag[i].eq(m_tag), ldata[i].eq(m_data),
                                     lstrb[i].eq(m_strb), full[i].eq(m_strb.all())]
            with m.Elif(wb_free):                   # evict a line, take its place
                m.d.comb += [wr_oh.eq(out_oh), m_done.eq(1), push.eq(1)]
                for i in range(L):
                    with m.If(out_oh[i]):
                        m.d.sync += [ltag[i].eq(m_tag), ldata[i].eq(m_data),
                                     lstrb[i].eq(m_strb), full[i].eq(m_strb.all())]
                m.d.sync += victim.eq(Mux(victim == L - 1, 0, victim + 1))
            with m.Else():
                m.d.comb += self.stall.eq(1)

        # the line stage 2's beat will hit in stage 3: the line stage 3 writes this cycle if
        # the beat addresses match (unless it is written out), else a valid line whose tag
        # matches (a line stage 3 writes has stage 3's beat address from the next cycle on)
        same = Signal()
        m.d.comb += same.eq(m_v & ok & (m_tag == p_tag) & ~complete)
        hit_next = Signal(L)
        cmp = Signal(L)                   # lines holding stage 2's beat now
        m.d.comb += [cmp[i].eq(lv[i] & (ltag[i] == p_tag)) for i in range(L)]
        # (a line stage 3 writes that holds stage 2's beat is the one it hits, or the one it
        # evicts: ``wmask`` without the free line, which holds nothing)
        wmask = Signal(L)
        m.d.comb += [wmask[i].eq(m_v & ok & (hit[i] | (~hit_any & lv.all() & evict_oh[i])))
                     for i in range(L)]
        hit_any_next = Signal()
        m.d.comb += [hit_next[i].eq(((cmp[i] & ~wmask[i]) | (wr_oh[i] & same))
                                    & ok & ~self.clear) for i in range(L)]
        m.d.comb += hit_any_next.eq(((cmp & ~wmask).any() | same) & ok & ~self.clear)
        # ... and whether stage 2's beat completes each line: the strobes stage 3 writes into
        # its line, else the line's own
        wr_fills = Signal()
        m.d.comb += wr_fills.eq((Mux(hit_any, hit_new_strb, m_strb) | p_strb).all())
        fills_next = Signal(L)
        m.d.comb += [fills_next[i].eq(Mux(wr_oh[i], wr_fills, (lstrb[i] | p_strb).all()))
                     for i in range(L)]

        # stage 2 hands a beat to stage 3 when stage 3 is empty or finishing
        m_room = ~m_v | m_done
        g_done = Signal()                 # stage 2 handed its flit's last beat on
        g_last = Signal()                 # beat ``bi`` is the flit's last (bi + 1 >= nbeats)
        with m.If(m_room):
            m.d.sync += m_v.eq(0)
        with m.If(g_v & m_room):
            m.d.comb += self.busy.eq(1)
            m.d.sync += [m_v.eq(1), m_tag.eq(p_tag), m_data.eq(p_data), m_strb.eq(p_strb),
                         hit.eq(hit_next), hit_any.eq(hit_any_next),
                         fills.eq(fills_next)]
            m.d.sync += [bi.eq(bi + 1), p_tag.eq(p_tag + 1), g_last.eq(bi + 2 >= nbeats)]
            with m.If(g_last):
                m.d.comb += g_done.eq(1)
                m.d.sync += g_v.eq(0)
        with m.Elif(g_v):
            m.d.comb += self.busy.eq(1)

        # stage 1b (row): the head's row offset ``m * row_bytes`` (a multiplier) and
        # ``out_base + eoff``, registered; stage 2 adds them
        r_v = Signal()
        # the product in two partial products of one multiplier each (no adder behind them)
        r_prod_lo, r_base = Signal(aw, name="r_prod_lo"), Signal(aw, name="r_base")
        r_prod_hi = Signal(max(1, aw - 18), name="r_prod_hi")
        r_data = Signal(8 * dbytes)
        r_n = Signal(range(dbytes + 1))
        r_lo = Signal(lg_beat)            # the first byte's offset in its beat
        g_room = ~g_v | g_done
        r_go = r_v & g_room               # stage 1b hands its flit to stage 2
        with m.If(r_go):
            a = Signal(aw)
            nb = Signal.like(nbeats)
            m.d.comb += [a.eq(r_base + r_prod_lo + (r_prod_hi << 18)),
                         nb.eq((r_lo + r_n + beat - 1) >> lg_beat)]
            m.d.sync += [g_v.eq(1), g_data.eq(r_data),
                         strb.eq((((Const(1, span + 1) << r_n) - 1) << r_lo)[:span]),
                         lo.eq(r_lo), p_tag.eq(a >> lg_beat),
                         nbeats.eq(nb), g_last.eq(nb <= 1), bi.eq(0), r_v.eq(0)]
        # the queue's head moves to stage 1b when stage 1b is empty or finishing
        with m.If(queue.r_rdy & ~q.mark & (~r_v | r_go) & ~flushing):
            m.d.comb += queue.r_en.eq(1)
            m.d.sync += [r_v.eq(1), r_prod_lo.eq(q.m * self.row_bytes[:18]),
                         r_prod_hi.eq(q.m * self.row_bytes[18:]),
                         # the low bits of the address, without the multipliers
                         r_lo.eq(self.out_base[:lg_beat] + q.eoff[:lg_beat] + sum(
                             Mux(self.row_bytes[j], q.m[:lg_beat - j] << j, 0)
                             for j in range(lg_beat))),
                         r_base.eq(self.out_base + q.eoff), r_data.eq(q.data),
                         r_n.eq(Mux(q.row_left < q.seg_left, q.row_left, q.seg_left))]
        # a marker at the head, every flit before it merged: write every line, then count it
        with m.If(queue.r_rdy & q.mark & ~r_v & ~g_v & ~m_v & ~flushing):
            m.d.comb += queue.r_en.eq(1)
            m.d.sync += flushing.eq(1)
        with m.If(flushing):
            m.d.comb += self.busy.eq(1)
            with m.If(lv.any() & ok):
                with m.If(wb_free):
                    m.d.comb += push.eq(1)
                    for i in range(L):
                        with m.If(out_oh[i]):
                            m.d.sync += [lv[i].eq(0), full[i].eq(0)]
            with m.Elif(~wb_valid & ~self.wbusy):   # every write has landed
                m.d.sync += [self.markers.eq(self.markers + 1), lv.eq(0), full.eq(0),
                             flushing.eq(0)]
        with m.If(queue.r_rdy | r_v | wb_valid | self.wbusy):
            m.d.comb += self.busy.eq(1)
        with m.If(~ok):
            m.d.sync += [lv.eq(0), full.eq(0)]
        with m.If(self.clear):
            m.d.sync += [self.markers.eq(0), self.error_code.eq(0), self.error_addr.eq(0), ok.eq(1),
                         lv.eq(0), full.eq(0)]
        return m
