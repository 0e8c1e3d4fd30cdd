"""Memory hub side of the results: RESULT flits -> byte-exact DMA writes (docs/accelerator.md)."""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.mem.axi import dma_cmd_layout, dma_status_layout, dma_write_data_layout
from sparsemac.hw.ring.layouts import FlitType, flit_layout
from sparsemac.hw.tile.tile_node import DONE_MARKER, result_data_bytes

__all__ = ["ResultWriter"]


class ResultWriter(wiring.Component):
    """Write each RESULT flit's bytes to ``out_base + m * row_bytes + eoff`` through a DmaWriter.

    A flit carries ``m`` (16 bits), ``eoff`` (byte offset in the output row, 16 bits) and
    ``result_data_bytes(cfg)`` bytes; only ``min(that, row_bytes - eoff)`` bytes are written
    (strobes), so nothing outside ``Y[m, :]`` changes.  Flits with ``m >= m_total`` or
    ``eoff >= row_bytes`` are dropped (never written): the output buffer bounds hold whatever a
    tile sends.  A flit with ``m = DONE_MARKER`` counts one finished node in ``markers``.

    Write combining: the bytes of a flit are merged into ``lines`` one-beat line buffers (tag =
    beat address, data, byte strobes). The intake is a pipeline that takes a flit per cycle: a
    two-entry queue (the flit, its bytes left in row and segment, markers in order), an address
    stage, then one merge cycle per beat the flit touches. A line is written (one single-beat
    DMA command, the strobes it collected) as soon as all its bytes are present, when it is
    evicted for a beat no line holds (the lowest full line first, else round robin), and at
    every marker flit: the marker is counted only after every line has been written and
    every write response came back (``wbusy`` low), so when the hub has seen one marker per
    node every result of the layer is in memory.
    Each lane of each tile writes its output row left to right, so with ``lines >= rows *
    tiles`` a beat is normally written once, full (``beat / bytes-per-flit`` times fewer write
    commands than one command per flit). Writes run in the background (one write buffer, posted:
    the buffer is free in the cycle the DmaWriter takes the word, the responses come later)
    while the next flits merge. A failing write (its status or ``werror``) latches
    ``error_code``/``error_addr`` (the first one, sticky until ``clear``); later flits, the
    write buffer and the lines still open are then dropped.

    Members
    -------
    flits : In(stream(flit))
    wcmd, wdata : Out(stream) to the DmaWriter; wstatus : In(stream)
    wbusy, werror, werror_addr : In
        The posted DmaWriter's ``busy``, ``posted_error`` and ``posted_error_addr``.
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
    tag_width : int
        DMA command tag width.
    lines : int, optional
        Line buffers (1..32; default ``rows * tiles`` clamped to 2..16).
    """

    def __init__(self, cfg: AcceleratorConfig, *, tag_width: int = 4, lines: int | None = None):
        AcceleratorConfig.require(cfg, "cfg")
        if lines is None:
            lines = min(16, max(2, cfg.rows * cfg.tiles))
        if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= 32:
            raise ValueError(f"lines must be between 1 and 32, not {lines!r}")
        self.cfg = cfg
        self.lines = lines
        aw = cfg.axi_addr_width
        self.tag_width = tag_width
        super().__init__({
            "flits": In(stream.Signature(flit_layout(cfg.tiles + 1, cfg.ring_payload_width))),
            "wcmd": Out(stream.Signature(dma_cmd_layout(aw, tag_width))),
            "wdata": Out(stream.Signature(dma_write_data_layout(cfg.axi_data_width))),
            "wstatus": In(stream.Signature(dma_status_layout(aw, tag_width))),
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
        ok = self.error_code == 0

        # -- line buffers and the write buffer -------------------------------------------------
        lv = Signal(L)
        ltag = [Signal(tw, name=f"line{i}_tag") for i in range(L)]
        ldata = [Signal(8 * beat, name=f"line{i}_data") for i in range(L)]
        lstrb = [Signal(beat, name=f"line{i}_strb") for i in range(L)]
        wb_valid, wb_tag = Signal(), Signal(tw)
        wb_data, wb_strb = Signal(8 * beat), Signal(beat)
        push = Signal()                   # load the write buffer this cycle (from push_*)
        push_tag, push_data, push_strb = Signal(tw), Signal(8 * beat), Signal(beat)
        # -- write FSM: write buffer -> one single-beat DMA command, posted -------------------
        # The DmaWriter is in posted mode: a command's status comes once its word is taken, so
        # the write buffer is free again as soon as the DmaWriter has the word (a new line may
        # be pushed in that very cycle) and the next line's command follows while earlier
        # writes wait for their responses.  Statuses are taken whenever they come; a failing
        # response arrives as ``werror`` (sticky in the DmaWriter until the sequencer aborts
        # it); ``wbusy`` low means every write landed.
        w_idle = Signal()
        wb_taken = Signal()               # the DmaWriter takes the buffer's word this cycle
        m.d.comb += [self.wcmd.payload.addr.eq(wb_tag << lg_beat),
                     self.wcmd.payload.length.eq(beat), self.wcmd.payload.tag.eq(0),
                     self.wdata.payload.data.eq(wb_data), self.wdata.payload.strb.eq(wb_strb),
                     self.wstatus.ready.eq(1)]
        with m.FSM(name="write"):
            with m.State("IDLE"):
                m.d.comb += w_idle.eq(1)
                with m.If(wb_valid & ok):
                    m.d.comb += [self.wcmd.valid.eq(1), self.stall.eq(~self.wcmd.ready)]
                    with m.If(self.wcmd.ready):
                        m.next = "DATA"
                with m.Elif(wb_valid):                   # an error: the line is dropped
                    m.d.sync += wb_valid.eq(0)
            with m.State("DATA"):
                m.d.comb += [self.wdata.valid.eq(1), self.stall.eq(~self.wdata.ready)]
                with m.If(self.wdata.ready):
                    m.d.comb += wb_taken.eq(1)
                    m.d.sync += wb_valid.eq(0)
                    m.next = "IDLE"
        with m.If(push):                  # after the write FSM: a push as the word leaves wins
            m.d.sync += [wb_valid.eq(1), wb_tag.eq(push_tag), wb_data.eq(push_data),
                         wb_strb.eq(push_strb)]
        with m.If(self.error_code == 0):
            with m.If(self.wstatus.valid & (self.wstatus.payload.code != 0)):
                m.d.sync += [self.error_code.eq(self.wstatus.payload.code),
                             self.error_addr.eq(self.wstatus.payload.addr)]
            with m.Elif(self.werror != 0):
                m.d.sync += [self.error_code.eq(self.werror),
                             self.error_addr.eq(self.werror_addr)]
        wb_free = Signal()
        m.d.comb += wb_free.eq(~wb_valid | wb_taken)

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
        m.submodules.queue = queue = SyncFIFO(width=entry.size, depth=2)
        q_in, q = entry(queue.w_data), entry(queue.r_data)
        is_mark = (fl.type == FlitType.RESULT) & (f_m == DONE_MARKER)
        keep = (fl.type == FlitType.RESULT) & (f_m < self.m_total) & (f_eoff < self.row_bytes) & ok
        m.d.comb += [self.flits.ready.eq(queue.w_rdy),
                     queue.w_en.eq(self.flits.valid & (is_mark | keep)),
                     q_in.m.eq(f_m), q_in.eoff.eq(f_eoff), q_in.data.eq(f_data),
                     q_in.row_left.eq(row_left), q_in.seg_left.eq(seg_left),
                     q_in.mark.eq(is_mark)]

        # stage 2: the flit's first byte address and byte count (registered), then one merge
        # per beat it touches (``bi``)
        g_v = Signal()
        g_data = Signal(8 * dbytes)
        addr, nbytes = Signal(aw), Signal(range(dbytes + 1))
        lo, nbeats, bi = Signal(lg_beat), Signal(range(span // beat + 1)), Signal(range(span))
        wide, strb = Signal(8 * span), Signal(span)
        m.d.comb += [wide.eq(g_data << (lo * 8)),
                     strb.eq((((Const(1, span + 1) << nbytes) - 1) << lo)[:span])]
        # the beat address of merge ``bi`` is a register (loaded with the flit's first beat,
        # counted up per merge): the line tag compares start at a flip-flop, not at an adder
        p_tag = Signal(tw)
        p_data, p_strb = Signal(8 * beat), Signal(beat)
        m.d.comb += [p_data.eq((wide >> (bi * 8 * beat))[:8 * beat]),
                     p_strb.eq((strb >> (bi * beat))[:beat])]
        # one-hot selections: the line holding the beat (tags are unique, so at most one), the
        # lowest free line; the hit line's bytes and strobes through an AND-OR mux
        hit = Signal(L)
        m.d.comb += [hit[i].eq(lv[i] & (ltag[i] == p_tag)) for i in range(L)]
        free_oh = Signal(L)
        m.d.comb += free_oh.eq(~lv & (lv + 1))
        hit_data, hit_strb = Signal(8 * beat), Signal(beat)
        m.d.comb += [hit_data.eq(functools.reduce(operator.or_, [
                         Mux(hit[i], ldata[i], 0) for i in range(L)])),
                     hit_strb.eq(functools.reduce(operator.or_, [
                         Mux(hit[i], lstrb[i], 0) for i in range(L)]))]
        hit_merged, hit_new_strb = Signal(8 * beat), Signal(beat)
        m.d.comb += [hit_merged.eq(Cat(*[Mux(p_strb[b], p_data[8 * b:8 * b + 8],
                                             hit_data[8 * b:8 * b + 8]) for b in range(beat)])),
                     hit_new_strb.eq(hit_strb | p_strb)]
        # the line written out when a beat finds neither its line nor a free one (evicted): the
        # lowest full line if any (it was complete while the write buffer was busy: writing it
        # costs no extra command), else round robin; while a marker flushes: the lowest valid
        # line.  One AND-OR mux reads the line out.
        victim = Signal(range(max(2, L)))
        full, full_first, evict_oh = Signal(L), Signal(L), Signal(L)
        m.d.comb += [full[i].eq(lv[i] & lstrb[i].all()) for i in range(L)]
        m.d.comb += [full_first.eq(full & (~full + 1)),
                     evict_oh.eq(Mux(full.any(), full_first, 1 << victim))]
        flushing = Signal()
        out_oh = Signal(L)
        m.d.comb += out_oh.eq(Mux(flushing, lv & (~lv + 1), evict_oh))
        out_tag, out_data, out_strb = Signal(tw), Signal(8 * beat), Signal(beat)
        for sig, regs in ((out_tag, ltag), (out_data, ldata), (out_strb, lstrb)):
            m.d.comb += sig.eq(functools.reduce(operator.or_, [
                Mux(out_oh[i], regs[i], 0) for i in range(L)]))

        done_part = Signal()              # stage 2 merged (or dropped) beat ``bi`` this cycle
        g_done = Signal()                 # ... and it was the flit's last
        with m.If(g_v):
            m.d.comb += self.busy.eq(1)
            with m.If(~ok):
                m.d.comb += done_part.eq(1)
            with m.Elif(hit.any()):
                with m.If(hit_new_strb.all() & wb_free):   # complete: write it now
                    m.d.comb += [push.eq(1), push_tag.eq(p_tag), push_data.eq(hit_merged),
                                 push_strb.eq(hit_new_strb)]
                    for i in range(L):
                        with m.If(hit[i]):
                            m.d.sync += lv[i].eq(0)
                with m.Else():
                    for i in range(L):
                        with m.If(hit[i]):
                            m.d.sync += [ldata[i].eq(hit_merged), lstrb[i].eq(hit_new_strb)]
                m.d.comb += done_part.eq(1)
            with m.Elif(~lv.all()):
                for i in range(L):
                    with m.If(free_oh[i]):
                        m.d.sync += [lv[i].eq(1), ltag[i].eq(p_tag), ldata[i].eq(p_data),
                                     lstrb[i].eq(p_strb)]
                m.d.comb += done_part.eq(1)
            with m.Elif(wb_free):                   # evict a line, take its place
                m.d.comb += [push.eq(1), push_tag.eq(out_tag), push_data.eq(out_data),
                             push_strb.eq(out_strb)]
                for i in range(L):
                    with m.If(out_oh[i]):
                        m.d.sync += [ltag[i].eq(p_tag), ldata[i].eq(p_data),
                                     lstrb[i].eq(p_strb)]
                m.d.sync += victim.eq(Mux(victim == L - 1, 0, victim + 1))
                m.d.comb += done_part.eq(1)
            with m.Else():
                m.d.comb += self.stall.eq(1)
            with m.If(done_part):
                m.d.sync += [bi.eq(bi + 1), p_tag.eq(p_tag + 1)]
                with m.If(bi + 1 >= nbeats):
                    m.d.comb += g_done.eq(1)
                    m.d.sync += g_v.eq(0)

        # the queue's head moves to stage 2 when stage 2 is empty or finishing
        g_room = ~g_v | g_done
        with m.If(queue.r_rdy & ~q.mark & g_room & ~flushing):
            a = Signal(aw)
            n = Signal(range(dbytes + 1))
            m.d.comb += [a.eq(self.out_base + q.m * self.row_bytes + q.eoff),
                         n.eq(Mux(q.row_left < q.seg_left, q.row_left, q.seg_left)),
                         queue.r_en.eq(1)]
            m.d.sync += [g_v.eq(1), g_data.eq(q.data), addr.eq(a), nbytes.eq(n),
                         lo.eq(a[:lg_beat]), p_tag.eq(a >> lg_beat),
                         nbeats.eq((a[:lg_beat] + n + beat - 1) >> lg_beat), bi.eq(0)]
        # a marker at the head, every flit before it merged: write every line, then count it
        with m.If(queue.r_rdy & q.mark & ~g_v & ~flushing):
            m.d.comb += queue.r_en.eq(1)
            m.d.sync += flushing.eq(1)
        with m.If(flushing):
            m.d.comb += self.busy.eq(1)
            with m.If(lv.any() & ok):
                with m.If(wb_free):
                    m.d.comb += [push.eq(1), push_tag.eq(out_tag), push_data.eq(out_data),
                                 push_strb.eq(out_strb)]
                    for i in range(L):
                        with m.If(out_oh[i]):
                            m.d.sync += lv[i].eq(0)
            with m.Elif(~wb_valid & w_idle & ~self.wbusy):   # every write has landed
                m.d.sync += [self.markers.eq(self.markers + 1), lv.eq(0), flushing.eq(0)]
        with m.If(queue.r_rdy | wb_valid | ~w_idle | self.wbusy):
            m.d.comb += self.busy.eq(1)
        with m.If(~ok):
            m.d.sync += lv.eq(0)
        with m.If(self.clear):
            m.d.sync += [self.markers.eq(0), self.error_code.eq(0), self.error_addr.eq(0),
                         lv.eq(0)]
        return m
