"""Mutation check: plant single-line bugs in hw/ and make sure the regression catches each one.

Each mutant is one exact text replacement in one source file (it must match exactly once, or
the mutant is reported ``stale``: the code moved and the list needs updating).  For each
mutant a private copy of the package is made in a temporary folder (the installed-wheel
layout, ``sparsemac/hw/...``), the replacement applied there, and the tests named by the
mutant run against that copy (``PYTHONPATH``; the checkout is never modified, so mutation runs
and normal work can share a machine).  A mutant is *caught* when at least one of its tests
fails, *survived* otherwise.  Verilator builds are shared with the regression
(``build/sim``, keyed by the Verilog's hash), so only the mutated design is rebuilt.

Run ``make mutate`` (all mutants) or ``python bench/mutate.py --only W1C-CLEAR-WINS``; the
report goes to ``docs/reports/mutation.md``.  Not part of ``make test``: it runs the
simulation tests once per mutant (about a minute per amaranth-only mutant, several for one
that needs the accelerator's Verilator build).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    id: str
    kind: str            #: the bug class (the audit's twelve and more)
    file: str            #: path in the checkout
    find: str            #: exact text, must occur once
    replace: str
    tests: tuple[str, ...]  #: pytest node ids / paths that must catch it
    why: str = ""        #: what the bug would do on silicon


ACC = "tests/sim/test_accelerator.py"
MUTANTS: list[Mutant] = [
    Mutant("WINDOW-INCLUSIVE-END", "window arithmetic", "hw/hub/desc_checker.py",
           "ends.append(end.eq(off + size))", "ends.append(end.eq(off + size - 1))",
           ("tests/hw/test_desc_checker.py",),
           "a buffer may end 1 byte past MEM_LIMIT and the job is accepted"),
    Mutant("W1C-CLEAR-WINS", "W1C", "hw/top/csr_bank.py",
           "m.d.sync += q.eq(((q & ~clears[r.name])\n"
           "                                  | getattr(self, f\"{r.port}_set\").as_value())"
           " & _mask(r))",
           "m.d.sync += q.eq(((q | getattr(self, f\"{r.port}_set\").as_value())\n"
           "                                  & ~clears[r.name]) & _mask(r))",
           ("tests/formal/test_csr_formal.py", "tests/hw/test_csr_bank.py"),
           "a done event in the cycle software clears IRQ_STATUS is lost with its interrupt"),
    Mutant("PLANE-RESET-NO-SETTLE", "reset sequencing", "hw/hub/sequencer.py",
           '''                with m.If(~self.rd_busy & ~self.wr_busy):
                    m.next = "SETTLE"''',
           '''                with m.If(~self.rd_busy & ~self.wr_busy):
                    m.next = "IDLE"''',
           ("tests/hw/test_sequencer.py",),
           "the sequencer is idle while the registered plane reset still holds the tiles: a "
           "start in that cycle is lost"),
    Mutant("PLANE-RESET-NO-HOLD", "reset sequencing", "hw/hub/sequencer.py",
           'm.next = "ABORT_HOLD"', 'm.next = "DRAIN"',
           ("tests/hw/test_sequencer.py",),
           "the DMAs stop being aborted while the plane still runs: a write command the "
           "ResultWriter presents in that cycle starts a burst nobody feeds"),
    Mutant("NM-DUPLICATE-INDEX", "N:M duplicate index", "hw/tile/nm_index_checker.py",
           "with m.If(go & valid & ~first & (byte[j] <= prev)):",
           "with m.If(go & valid & ~first & (byte[j] < prev)):",
           ("tests/hw/test_image_checker.py", "tests/hw/test_nm_index_checker.py"),
           "an N:M group naming one column twice is accepted (a weight counted twice)"),
    Mutant("ROUND-HALF-DOWN", "rounding", "hw/post/requantizer.py",
           "self.m.d.comb += r.eq((u + 1) >> 1)", "self.m.d.comb += r.eq(u >> 1)",
           ("tests/hw/test_requantizer.py", "tests/hw/test_pwl_activation.py"),
           "requantized values round half down: off by one LSB on every tie"),
    Mutant("SATURATE-127", "saturation", "hw/post/requantizer.py",
           "ymax, ymin = (1 << (ow - 1)) - 1, -(1 << (ow - 1))",
           "ymax, ymin = (1 << (ow - 1)) - 2, -(1 << (ow - 1))",
           ("tests/hw/test_requantizer.py",),
           "the positive saturation bound is one LSB low (126 for int8)"),
    Mutant("4K-SPLIT", "4 KiB split", "hw/mem/axi.py",
           "m.d.comb += near.eq((hi.all() if len(hi) else 1) & a.any())",
           "m.d.comb += near.eq(0 & a.any())",
           ("tests/formal/test_dma_formal.py", "tests/hw/test_dma_reader.py",
            "tests/hw/test_dma_writer.py", "tests/hw/test_axi.py"),
           "bursts may cross a 4 KiB boundary (an AXI4 protocol violation)"),
    Mutant("IGNORED-SLVERR", "ignored SLVERR", "hw/hub/dma_reader.py",
           "with m.If(delivering & axi.rresp[1]):",
           "with m.If(delivering & axi.rresp[1] & axi.rresp[0]):",
           ("tests/hw/test_dma_reader.py",),
           "a read answered SLVERR is not reported (only DECERR is)"),
    Mutant("ERROR-BEAT-FORWARDED", "error beat forwarded", "hw/hub/dma_reader.py",
           "self.data.valid.eq(ours & delivering & ~axi.rresp[1]),",
           "self.data.valid.eq(ours & delivering),",
           ("tests/hw/test_dma_reader.py",),
           "the data of a failing read beat reaches the tiles"),
    Mutant("WRITER-STROBE-AFTER-ERROR", "write strobe", "hw/hub/dma_writer.py",
           "wstrb.eq(Mux(null, 0, self.data.payload.strb)),",
           "wstrb.eq(self.data.payload.strb),",
           ("tests/hw/test_dma_writer.py",),
           "after an error or abort the padding beats of a burst write memory"),
    Mutant("RESULT-STROBE-OFFSET", "write strobe", "hw/hub/result_writer.py",
           "strb.eq((((Const(1, span + 1) << r_n) - 1) << r_lo)[:span])",
           "strb.eq((((Const(1, span + 1) << r_n) - 1))[:span])",
           ("tests/hw/test_result_writer.py",),
           "a result row not starting on a beat boundary is written with the wrong strobes"),
    Mutant("DATELINE-VC", "dateline VC", "hw/ring/ring_router.py",
           "vc_low = 1 if self.is_dateline else 0", "vc_low = 0",
           ("tests/formal/test_ring_formal.py", "tests/hw/test_ring.py",
            "tests/hw/test_ring_router.py"),
           "flits cross the dateline on channel 0: the ring can deadlock"),
    Mutant("LANE-LAST-ELEMENT", "lane decoder last element", "hw/tile/lane_decoder.py",
           "last = cur.lo + 1 >= cur.hi", "last = cur.lo + 2 >= cur.hi",
           ("tests/hw/test_lane_decoder.py",),
           "the lane decoder ends a row one element early"),
    Mutant("LANE-PICK-STALE", "lane decoder pick ahead", "hw/tile/lane_decoder.py",
           "                    m.d.sync += jj.eq(jj_head)",
           "                    m.d.sync += jj.eq(jj)",
           ("tests/hw/test_lane_decoder.py",),
           "a new word's first pick is the previous word's leftover: wrong weight x activation"),
    Mutant("SLICE-SKID-LOST", "stream register slice", "hw/mem/register_slice.py",
           "m.d.sync += [s_valid.eq(1), s_data.eq(self.i.payload)]",
           "m.d.sync += [s_data.eq(self.i.payload)]",
           ("tests/hw/test_register_slice.py",),
           "a flit ejected while its consumer stalls is lost"),
    Mutant("PLANE-RESET-MISSES-BOARD-RESET", "reset sequencing", "hw/top/accelerator.py",
           'plane = Signal(name="plane_reset", init=1)',
           'plane = Signal(name="plane_reset", init=0)',
           (f"{ACC}::test_accelerator[t2]",),
           "a hard reset mid-job leaves the ring, the tiles and the ResultWriter running "
           "(the plane's reset register resets to 0)"),
    Mutant("PLANE-OUTPUT-UNMASKED", "reset sequencing", "hw/top/accelerator.py",
           "mac_active = Cat(*[n.mac_active for n in nodes]).any() & live",
           "mac_active = Cat(*[n.mac_active for n in nodes]).any()",
           (f"{ACC}::test_accelerator[t1]",),
           "the cycle the data plane leaves a board reset (a cycle after the registers) "
           "counts a stale MAC-active cycle"),
    Mutant("POOL-AVG-ROUNDING", "rounding", "hw/tile/pool_reducer.py",
           "(p[S:S + 8] + p[S - 1]) ^ 0x80)", "p[S:S + 8] ^ 0x80)",
           ("tests/hw/test_pool_reducer.py", "tests/hw/test_tile.py"),
           "an average pool truncates instead of rounding half up"),
    Mutant("POOL-PAD-BYTE", "padding", "hw/tile/tile.py",
           "m.d.sync += pad.eq(Mux((cmd.op == TileOp.MAXPOOL)\n"
           "                                   | ((cmd.op == TileOp.AVGPOOL) & cmd.exclude_pad),"
           " 0x80, 0))",
           "m.d.sync += pad.eq(0)",
           ("tests/hw/test_tile.py",),
           "a max pool's padding reads 0 instead of -128 (a window of negative values at the "
           "border pools to 0)"),
    Mutant("POOL-REAL-COUNT-KK", "divisor", "hw/tile/pool_reducer.py",
           "m.d.sync += recip[q].eq(Mux(excl, rp.data, rq))", "m.d.sync += recip[q].eq(rq)",
           ("tests/hw/test_pool_reducer.py", "tests/hw/test_tile.py"),
           "an average pool with count_include_pad 0 divides every window by KH*KW: the "
           "border values shrink toward 0"),
    Mutant("POOL-REAL-FLAGS-LOST", "divisor", "hw/tile/tile.py",
           "m.d.comb += e_data.real.eq(g_inb)", "m.d.comb += e_data.real.eq(-1)",
           ("tests/hw/test_tile.py",),
           "the gather's in-image flags do not reach the buffer: every position counts, the "
           "border windows of a count_include_pad 0 pool divide by KH*KW"),
    Mutant("POOL-REAL-PAD-SUMMED", "padding", "hw/tile/tile.py",
           "| ((cmd.op == TileOp.AVGPOOL) & cmd.exclude_pad), 0x80, 0))",
           ", 0x80, 0))",
           ("tests/hw/test_tile.py",),
           "a count_include_pad 0 pool's padding reads 0 (offset 128) and adds to the sum it "
           "does not count: border values pulled toward 0"),
    Mutant("POOL-RECIP-READ-UNHELD", "pipeline hold", "hw/tile/pool_reducer.py",
           "m.d.comb += [rp.en.eq(loading | dividing),", "m.d.comb += [rp.en.eq(1),",
           ("tests/hw/test_pool_reducer.py",),
           "while a window waits for the output register, the reciprocal port moves on to "
           "the next lane group: the first group divides by another column's count"),
    Mutant("POOL-CHANNEL-BASE", "window arithmetic", "hw/tile/tile.py",
           "with m.If(p_set < cmd.c0):", "with m.If(p_set <= cmd.c0):",
           ("tests/hw/test_tile.py",),
           "a tile pools the channels one past its share"),
    Mutant("POOL-REAL-FLAG-INVERTED", "flag decode", "hw/hub/layer_setup.py",
           "& ~desc.flags[Flags.INCLUDE_PAD.bit_length() - 1]),",
           "& desc.flags[Flags.INCLUDE_PAD.bit_length() - 1]),",
           (f"{ACC}::test_accelerator[t2]",),
           "the tiles divide a padded average pool by the other divisor than its INCLUDE_PAD "
           "flag says (ONNX's pools get PyTorch's border values and back)"),
    Mutant("POOL-SHARE-LAST", "bounds compare", "hw/hub/sequencer.py",
           "| ((chk.pool_rows == 1) & (t + 1 >= p_full)))]",
           "| ((chk.pool_rows == 1) & (t + 1 > p_full)))]",
           (f"{ACC}::test_accelerator[t2]",),
           "a pool of fewer channels than tiles starts one more tile with no channels"),
    Mutant("BLOCK-DUPLICATE-COLUMN", "bounds compare", "hw/tile/block_index_checker.py",
           "with m.If(go & proc & ~brk & nonfirst & (cols[f] <= prev)):",
           "with m.If(go & proc & ~brk & nonfirst & (cols[f] < prev)):",
           ("tests/hw/test_image_checker.py", "tests/hw/test_block_index_checker.py"),
           "a block row naming one block column twice is accepted"),
    Mutant("ACT-FITS-BOUND", "bounds compare", "hw/hub/desc_checker.py",
           "act_fits = ((im2col <= cfg.act_buf_depth)",
           "act_fits = ((im2col < cfg.act_buf_depth)",
           ("tests/hw/test_desc_checker.py", "tests/hw/test_sequencer.py"),
           "a conv layer whose im2col rows exactly fill the activation buffer is refused"),
    Mutant("RESULT-NOT-HELD", "stream protocol", "hw/tile/result_arbiter.py",
           "m.d.sync += chosen.eq(Mux(self.results.valid & ~self.results.ready, chosen, prio))",
           "m.d.sync += chosen.eq(prio)",
           ("tests/hw/test_result_arbiter.py", "tests/hw/test_tile.py",
            "tests/hw/test_tile_node.py"),
           "a result offered and not taken is replaced by a higher-priority lane's (out_lanes < "
           "cols takes a row's beats from two results)"),
    Mutant("GATHER-GATE-EARLY", "bounds compare", "hw/tile/tile.py",
           "gathered.eq(p.aaddr < a_addr)", "gathered.eq(p.aaddr <= a_addr)",
           ("tests/hw/test_tile.py",),
           "a conv pair reads its activation entry in the cycle the gather writes it"),
    Mutant("MARKER-BEFORE-RESPONSES", "posted writes", "hw/hub/result_writer.py",
           "with m.Elif(~wb_valid & ~self.wbusy):", "with m.Elif(~wb_valid):",
           ("tests/hw/test_result_writer.py",),
           "the end marker counts while posted writes still wait for their responses"),
    Mutant("POSTED-ERROR-ADDR", "posted writes", "hw/hub/dma_writer.py",
           "perr.eq(self._resp_error(axi.bresp)), perr_addr.eq(b_addr)]",
           "perr.eq(self._resp_error(axi.bresp)), perr_addr.eq(aw_addr)]",
           ("tests/hw/test_dma_writer.py",),
           "a failing posted write reports the address of the last announced burst"),
    Mutant("RING-PAYLOAD-BIT-STUCK", "data path", "hw/ring/ring_router.py",
           "self.eject.payload.eq(Mux(sel, heads[1].as_value(), heads[0].as_value())),",
           "self.eject.payload.eq(Mux(sel, heads[1].as_value(), heads[0].as_value()) "
           "& ~(1 << 24)),",
           ("tests/sim/test_ring.py",),
           "bit 24 of every ejected flit stuck at 0 (the ring bench's flit ids stay below 2^14: "
           "caught since its payloads carry random bits above the id)"),
    Mutant("RING-YIELD-UNBOUNDED", "arbitration", "hw/ring/ring_router.py",
           "& (self.passed != self.inject_yield))", ")",
           ("tests/hw/test_ring_router.py",),
           "a tile's results wait as long as activations stream past it (starved on a long "
           "stream: the injection wait bound is gone)"),
    Mutant("RING-YIELD-ANY-TYPE", "arbitration", "hw/ring/ring_router.py",
           "want_fwd[v] & (heads[v].type == FlitType.ACTS)", "want_fwd[v]",
           ("tests/hw/test_ring_router.py",),
           "injections yield to every forwarded flit, results to results: the round-robin's "
           "fairness for other traffic is lost"),
    Mutant("RING-YIELD-COUNT-KEPT", "arbitration", "hw/ring/ring_router.py",
           "with m.If(~want_inj | grant[_INJ]):", "with m.If(~want_inj):",
           ("tests/hw/test_ring_router.py",),
           "the yield counter is not cleared when the injection goes, so a busy tile yields "
           "only once and its results cut the activation stream again"),
    Mutant("OUT-ADDR-TRUNCATED", "address width", "hw/hub/layer_setup.py",
           "self.out_base.eq(self.mem_base + desc.out),",
           "self.out_base.eq((self.mem_base + desc.out)[:24]),",
           (f"{ACC}::test_accelerator[t1]",),
           "output buffers above 16 MiB written 16 MiB lower (the accelerator bench's windows "
           "sat below 16 KiB: caught since large_layers_high_windows places them at 0xAAA../"
           "0x555..)"),
    Mutant("REQUANT-MULT-TRUNCATED", "data path", "hw/tile/tile_node.py",
           "pipe.params.mult.eq(rec[32:64])",
           "pipe.params.mult.eq(rec[32:56])",
           (f"{ACC}::test_accelerator[t1]",),
           "requantization multipliers cut to 24 bits on their way into the tile (the "
           "accelerator bench's multipliers stayed below 2^22: caught since they take 21..31 "
           "bits)"),
    Mutant("HEADER-ROWS-PAST-M", "bounds compare", "hw/hub/sequencer.py",
           "(rows_sum + hb.rows > desc.m)", "(rows_sum + hb.rows > desc.m + 1)",
           (f"{ACC}::test_accelerator[t1]",),
           "an image header with one row more than the descriptor's M is accepted (survived "
           "the bench before random_header_fields' directed cases)"),
    Mutant("HEADER-COLS-ONE-SIDED", "bounds compare", "hw/hub/sequencer.py",
           "h_shape.eq((hb.cols != desc.k) |", "h_shape.eq((hb.cols > desc.k) |",
           (f"{ACC}::test_accelerator[t1]",),
           "an image header with fewer columns than the descriptor's K is accepted (survived "
           "the bench before random_header_fields)"),
    Mutant("HEADER-PARAM-B-IGNORED", "header vs descriptor", "hw/hub/sequencer.py",
           "h_param.eq((hb.param_a != desc.param_a) | (hb.param_b != desc.param_b)),",
           "h_param.eq((hb.param_a != desc.param_a)),",
           (f"{ACC}::test_accelerator[t1]",),
           "an N:M image whose M differs from the descriptor's is decoded with the wrong group "
           "size (survived the bench before random_header_fields' directed cases)"),
    Mutant("WEIGHT-BUF-BOUND", "bounds compare", "hw/hub/sequencer.py",
           "h_size.eq(hb.total > cfg.weight_buf_depth * beat),",
           "h_size.eq(hb.total >= cfg.weight_buf_depth * beat),",
           (f"{ACC}::test_accelerator[t1]",),
           "an image exactly as large as the weight buffer is refused with BAD_SIZE (survived "
           "the bench before weight_image_buffer_bound)"),
    Mutant("HEADER-SEC-C-PAST-TOTAL", "bounds compare", "hw/tile/header_checker.py",
           " | (h.sec_b > h.sec_c) | (h.sec_c > h.total)),", " | (h.sec_b > h.sec_c)),",
           ("tests/hw/test_header_checker.py",),
           "a section offset past the image's end is accepted"),
    Mutant("HEADER-ROOM-B", "bounds compare", "hw/tile/header_checker.py",
           "& (prod > room_b)))", "& (prod > room_b + 32)))",
           ("tests/hw/test_header_checker.py",),
           "section B may be 32 bytes short of its rows' data (bitmap masks, N:M indices)"),
    Mutant("PUSH-LOST-AS-WORD-LEAVES", "write buffer", "hw/hub/result_writer.py",
           "        with m.If(push):                  # after the take: a push as the beat leaves "
           "wins\n",
           "        with m.If(push & ~wb_taken):      # after the take: a push as the beat leaves "
           "wins\n",
           ("tests/hw/test_result_writer.py",),
           "a line completed in the cycle the BeatWriter takes the previous beat is dropped"),
    Mutant("MARKER-OVERTAKES-MERGE", "write ordering", "hw/hub/result_writer.py",
           "with m.If(queue.r_rdy & q.mark & ~r_v & ~g_v & ~m_v & ~flushing):",
           "with m.If(queue.r_rdy & q.mark & ~flushing):",
           ("tests/hw/test_result_writer.py",),
           "a marker flushes the lines while the flit before it still merges: the layer ends "
           "before its last result is written"),
    Mutant("BEAT-TAG-NOT-ADVANCED", "write combining", "hw/hub/result_writer.py",
           "bi.eq(bi + 1), p_tag.eq(p_tag + 1), g_last",
           "bi.eq(bi + 1), p_tag.eq(p_tag), g_last",
           ("tests/hw/test_result_writer.py",),
           "the second beat of a flit that crosses a beat boundary merges into the first beat's "
           "line"),
    Mutant("FREE-LINE-NOT-ONE-HOT", "write combining", "hw/hub/result_writer.py",
           "m.d.comb += free_oh.eq(~lv & (lv + 1))", "m.d.comb += free_oh.eq(~lv)",
           ("tests/hw/test_result_writer.py",),
           "a new beat opens every free line: later beats hit two lines with the same tag"),
    Mutant("EVICT-IGNORES-FULL-LINE", "write combining", "hw/hub/result_writer.py",
           "evict_oh.eq(Mux(full.any(), full_first, 1 << victim))",
           "evict_oh.eq(1 << victim)",
           ("tests/hw/test_result_writer.py",),
           "a line completed while the write buffer was busy is not the one evicted: a partial "
           "line is written early and again later (extra write commands)"),
    Mutant("DMA-STATUS-WORD-NOT-TAKEN", "posted writes", "hw/hub/dma_writer.py",
           "last_word = (w_pending == 0) & w_take & (w_in_burst == 1) & ~w_start",
           "last_word = (w_pending == 0) & (w_in_burst == 1) & ~w_start",
           ("tests/hw/test_dma_writer.py",),
           "a posted command reports its status before its last word was taken"),
    Mutant("PREFETCH-IRQ-OF-NEXT", "descriptor prefetch", "hw/hub/sequencer.py",
           "self.irq_desc.eq(layer_irq)", "self.irq_desc.eq(desc.flags[3])",
           (ACC + "::test_accelerator[t1]",),
           "IRQ_STATUS.desc_done follows the prefetched descriptor's IRQ flag"),
    Mutant("PREFETCH-ERROR-LOST", "descriptor prefetch", "hw/hub/sequencer.py",
           "                with m.Elif(pf.failed):\n"
           "                    m.d.comb += pf.take.eq(1)\n"
           "                    fail(pf.code, A_PF)\n",
           "                with m.Elif(pf.failed):\n"
           "                    m.d.comb += pf.take.eq(1)\n"
           "                    m.next = \"CHECK\"\n",
           (ACC + "::test_accelerator[t1]",),
           "a bus error on a prefetched descriptor is ignored and the garbage descriptor checked"),
    Mutant("SLICE-RESULT-CG-FROM-0", "column split", "hw/tile/tile.py",
           "m.d.sync += [res_m.eq(r), res_cg.eq(cg_first)]",
           "m.d.sync += [res_m.eq(r), res_cg.eq(0)]",
           ("tests/hw/test_tile.py",),
           "a tile computing a column share tags its results with the first share's columns: "
           "every tile of a column split writes over tile 0's outputs"),
    Mutant("IM2COL-WRAP-AHEAD", "im2col wrap look-ahead", "hw/tile/im2col_address.py",
           "Mux(wrap, ahead >= (g.ow << 1), ahead >= g.ow)",
           "Mux(wrap, ahead >= g.ow, ahead >= g.ow)",
           ("tests/hw/test_im2col_address.py",),
           "after a group that wrapped to the next output row, a column's next wrap is "
           "predicted against OW instead of 2*OW: the gather reads the wrong input pixels"),
    Mutant("IM2COL-NO-SKIP", "column split", "hw/tile/im2col_address.py",
           "first_skip = self.cg_first != 0", "first_skip = False",
           ("tests/hw/test_im2col_address.py", "tests/hw/test_tile.py"),
           "the gather of a column share starts at the layer's first pixel: wrong activations "
           "for every tile but the first"),
    Mutant("POOL-HOLD-FREE-LATE", "pipeline timing", "hw/tile/pool_reducer.py",
           "~w_last | ((~hold_valid | hold_moves) & ~(rv & r_last) & ~(rv2 & r_last2)))",
           "~w_last | (~hold_valid & ~(rv & r_last) & ~(rv2 & r_last2)))",
           ("tests/hw/test_tile.py",),
           "a window's last entry waits until the hold register is empty instead of emptying: "
           "a cycle more per window, the pool's cycles off the model"),
    Mutant("POOL-RECIP-GROUP-EARLY", "pipeline timing", "hw/tile/pool_reducer.py",
           "m.d.sync += [h.eq(hold[i * lanes + q]) for q, h in enumerate(hold_q)]",
           "m.d.sync += [h.eq(hold[min(i + 1, bpr - 1) * lanes + q]) "
           "for q, h in enumerate(hold_q)]",
           ("tests/hw/test_pool_reducer.py", "tests/hw/test_tile.py"),
           "the registered hold values run a lane group ahead of their reciprocals: columns "
           "divided by another column's count, the last group twice"),
    Mutant("TILE-W-LOADED-LATE", "load/compute overlap", "hw/tile/tile.py",
           "m.d.sync += w_loaded.eq(Mux(w_take, _loaded(wcount + 1), _loaded(wcount)))",
           "m.d.sync += w_loaded.eq(_loaded(wcount))",
           ("tests/hw/test_tile.py",),
           "the registered 'image in' flag a cycle late: the tile takes one word past its "
           "image (the next layer's first word)"),
    Mutant("POOL-FIRST-UNALIGNED", "pipeline timing", "hw/tile/pool_reducer.py",
           "m.d.comb += nxt[j].eq(Mux(avg, Mux(r_first2, 0, accs[j]) + (x ^ 0x80),",
           "m.d.comb += nxt[j].eq(Mux(avg, Mux(r_first, 0, accs[j]) + (x ^ 0x80),",
           ("tests/hw/test_pool_reducer.py", "tests/hw/test_tile.py"),
           "the window-start flag one stage ahead of the registered entry: averages start "
           "one entry late"),
    Mutant("IM2COL-COORD-NARROW", "bounds compare", "hw/tile/im2col_address.py",
           "self.coord_width = max(addr_width, 10)",
           "self.coord_width = max(addr_width, 10) - 1",
           ("tests/hw/test_im2col_address.py",),
           "input coordinates one bit too narrow: a column past half the buffer's bytes wraps "
           "negative and reads as padding"),
    Mutant("IM2COL-LAST-PIXEL", "bounds compare", "hw/tile/im2col_address.py",
           "inpix.eq(pix_avail > j)", "inpix.eq(pix_avail >= j)",
           ("tests/hw/test_im2col_address.py", "tests/hw/test_tile.py"),
           "the first column past the last output pixel is gathered as a real pixel"),
    Mutant("EMPTY-ROW-NOT-ZEROED", "data path", "hw/tile/result_arbiter.py",
           "self.results.payload.acc.eq(Mux(head[-1], 0, entry.acc))",
           "self.results.payload.acc.eq(entry.acc)",
           ("tests/hw/test_result_arbiter.py", "tests/hw/test_tile.py"),
           "a row without effectual pairs leaves with the accumulators of the row before"),
    Mutant("SPLIT-COVER-OFF-BY-ONE", "bounds compare", "hw/hub/desc_checker.py",
           "split_bad.eq(split & ((chunk_cols != d.col_split) | (span < ncg)))",
           "split_bad.eq(split & ((chunk_cols != d.col_split) | (span + 1 < ncg)))",
           ("tests/hw/test_desc_checker.py",),
           "a column split that leaves the last column group to no tile is accepted: those "
           "outputs are never written"),
    Mutant("SPLIT-LAST-SHARE-FULL", "column split", "hw/hub/sequencer.py",
           "cg_share.eq(Mux(cg_left < chunk, cg_left, chunk))]",
           "cg_share.eq(chunk)]",
           ("tests/hw/test_sequencer.py",),
           "the last tile of a column split is given a full share past the layer's columns "
           "(its tile flags an error, the layer fails)"),
    Mutant("FETCH-BEFORE-WORD-IN", "load/compute overlap", "hw/tile/lane_decoder.py",
           "with m.If(a_go & w_ok):", "with m.If(a_go):",
           ("tests/hw/test_lane_decoder.py", "tests/hw/test_tile.py"),
           "a lane fetches a weight word the load has not written yet: the previous layer's "
           "weights are multiplied"),
    Mutant("NM-INDEX-WORD-NOT-WAITED", "load/compute overlap", "hw/tile/lane_decoder.py",
           "w_gap = Mux(is_nm, nm_gap, 0) if has_nm else Const(0, 1)",
           "w_gap = Const(0, 1)",
           ("tests/hw/test_lane_decoder.py", "tests/hw/test_tile.py"),
           "an N:M lane waits for its value word but not for the index word after it: stale "
           "indices pick the wrong activations"),
    Mutant("ROW-POINTER-NOT-WAITED", "load/compute overlap", "hw/tile/lane_decoder.py",
           "ptr_ok = ((((row_bits + 4) >> lg_wb) < w_lim) | ~(is_bm | is_blk)",
           "ptr_ok = ((1) | ~(is_bm | is_blk)",
           ("tests/hw/test_lane_decoder.py", "tests/hw/test_tile.py"),
           "a block row's set-up reads its blk_ptr entries before they are loaded"),
    Mutant("COMPUTE-ENDS-BEFORE-LOAD", "load/compute overlap", "hw/tile/tile.py",
           "with m.If(all_done & (a_cg == ncg) & w_loaded & a_loaded):",
           "with m.If(all_done & (a_cg == ncg) & a_loaded):",
           ("tests/hw/test_tile.py",),
           "the tile is idle while image words still arrive: the next layer's load counts "
           "them as its own"),
    Mutant("BITMAP-STARTS-EARLY", "load/compute overlap", "hw/tile/tile.py",
           "w_go = hdr_in[1] & (w_loaded | (h_fmt != FormatCode.BITMAP)) if has_bm \\",
           "w_go = hdr_in[1] & (w_loaded | (h_fmt != 9)) if has_bm \\",
           ("tests/hw/test_tile.py",),
           "a bitmap lane starts before its values are in: the tile reads them at the pair "
           "without a check"),
    Mutant("BITMAP-FLAGS-NOT-WAITED", "load/compute overlap", "hw/tile/lane_decoder.py",
           "| (cg < self.cg_avail))", "| (cg <= self.cg_avail))",
           ("tests/hw/test_lane_decoder.py", "tests/hw/test_tile.py"),
           "a bitmap row skipping zero activations fetches before its column group's flag "
           "words are in: stale flags drop or keep the wrong pairs"),
    Mutant("BEAT-OUTSTANDING-PLUS-ONE", "posted writes", "hw/hub/beat_writer.py",
           "can_issue.eq(aw_free & w_free & (b_out < mo)),",
           "can_issue.eq(aw_free & w_free & (b_out <= mo)),",
           ("tests/hw/test_beat_writer.py",),
           "one write more than max_outstanding waits for its response (the address FIFO "
           "overwrites its oldest entry)"),
    Mutant("BEAT-WINDOW-UNCHECKED", "window", "hw/hub/beat_writer.py",
           "m.d.comb += issue.eq(take & ok & ~outside)", "m.d.comb += issue.eq(take & ok)",
           ("tests/hw/test_beat_writer.py",),
           "a result beat outside the window is written (and reported)"),
    Mutant("BEAT-ERROR-ADDR-NEWEST", "posted writes", "hw/hub/beat_writer.py",
           "                         err_addr.eq(fifo[head])]",
           "                         err_addr.eq(fifo[tail])]",
           ("tests/hw/test_beat_writer.py",),
           "a failing response reports the address of the next write, not its own"),
    Mutant("TABLES-GATE-OPEN", "handshake", "hw/tile/tile_node.py",
           "pipe.i.valid.eq(rs_valid & tags.w_rdy & tables_in)",
           "pipe.i.valid.eq(rs_valid & tags.w_rdy)",
           ("tests/hw/test_tile_node.py::test_late_tables_hold_the_results",
            "tests/sim/test_net_cycles.py::test_outputs_bit_exact"),
           "a LATE_TABLES layer requantizes its first results with the previous layer's "
           "records and table"),
    Mutant("RESULT-BUF-MARKER-EARLY", "end of stream", "hw/tile/tile_node.py",
           "with m.If(~tile.busy & ~rs_valid & (inflight == 0) & ~row_valid):",
           "with m.If(~tile.busy & (inflight == 0) & ~row_valid):",
           ("tests/hw/test_tile_node.py",),
           "the end marker leaves while results still wait in the node's result buffer: the "
           "hub ends the layer before they are written"),
    Mutant("LATE-TABLES-WITHOUT-REQUANT", "flag decode", "hw/hub/desc_checker.py",
           "| ((lut | late) & ~requant) |", "| (lut & ~requant) |",
           ("tests/hw/test_desc_checker.py",),
           "LATE_TABLES without REQUANT is accepted (no tables to read late)"),
    Mutant("CHECK-DIV-SHIFT-ANY", "wrong arithmetic", "hw/hub/desc_checker.py",
           "m.d.comb += fast.eq(op[2].matches(1, 2, 4, 8))",
           "m.d.comb += fast.eq(op[2].matches(1, 2, 3, 4, 8))",
           ("tests/hw/test_desc_checker.py",),
           "a stride of 3 taken as a shift (its output size wrong, and 25 cycles short)"),
    Mutant("CHECK-DIV-SHIFT-BY", "off by one", "hw/hub/desc_checker.py",
           "Mux(op[2] == 8, 3, 0))))", "Mux(op[2] == 8, 2, 0))))",
           ("tests/hw/test_desc_checker.py",),
           "a stride of 8 divides by 4"),
    Mutant("POOL-PLANE-NOT-WAITED", "missing gate", "hw/tile/tile.py",
           """                            with m.If(p_have):\n""",
           """                            with m.If(1):\n""",
           ("tests/hw/test_tile.py::test_tile_pools",
            "tests/hw/test_tile.py::test_pool_token_times_match_the_cycle_model"),
           "a pool channel's gather starts before its plane is in (reads unloaded bytes)"),
    Mutant("POOL-HAVE-STALE", "pipeline hazard", "hw/tile/tile.py",
           'p_cend.eq(p_cend + p_step)]\n                                    m.next = "P_NEXT"',
           'p_cend.eq(p_cend + p_step)]\n                                    m.next = "P_WAIT"',
           ("tests/hw/test_tile.py::test_tile_pools",
            "tests/hw/test_tile.py::test_pool_token_times_match_the_cycle_model"),
           "the next pool channel waits on `p_have` of the channel before (one cycle stale)"),
    Mutant("POOL-CHANNELS-CONTIGUOUS", "wrong destination", "hw/tile/tile_node.py",
           "c.cgap.eq(Mux(pool_layer, cfg.tiles - 1, 0))", "c.cgap.eq(0)",
           ("tests/sim/test_accelerator.py::test_accelerator[t2]",),
           "a node pools contiguous channels while the sequencer and the result tags "
           "interleave them"),
    Mutant("POOL-PLANES-ONE-TILE", "wrong destination", "hw/hub/sequencer.py",
           "u_pt.eq(Mux(u_pt == T - 1, 0, u_pt + 1))]", "u_pt.eq(u_pt)]",
           (f"{ACC}::test_accelerator[t2]",),
           "a pool sent plane by plane sends every plane to the first tile"),
    Mutant("POOL-PLANES-OFF-BY-ONE", "off by one", "hw/hub/layer_setup.py",
           "self.plane_last.eq((plane >> lg_beat) - 1)", "self.plane_last.eq(plane >> lg_beat)",
           ("tests/hw/test_layer_setup.py",),
           "a plane sent plane by plane is one bus word longer than it is"),
    Mutant("POOL-PLANES-NODE-WHOLE-IMAGE", "wrong geometry", "hw/tile/tile_node.py",
           "m.d.comb += [c.geo.c.eq(rows), c.c0.eq(0), c.cgap.eq(0)]",
           "m.d.comb += [c.c0.eq(0), c.cgap.eq(0)]",
           (f"{ACC}::test_accelerator[t2]",),
           "a tile sent only its own planes still waits for the whole image"),
    Mutant("POOL-PLANES-FIT-WHOLE-IMAGE", "wrong bound", "hw/hub/desc_checker.py",
           "Mux(planes, pool_img, act_bytes) <= cfg.act_buf_depth * cols",
           "act_bytes <= cfg.act_buf_depth * cols",
           ("tests/hw/test_desc_checker_pools.py::test_act_fits_at_and_past_each_bound",),
           "a pool sent plane by plane must fit its whole image in every tile (refused)"),
    Mutant("TABLE-HELD-NOT-CLEARED", "missing reset", "hw/hub/sequencer.py",
           "idx.eq(0), held.eq(0)]", "idx.eq(0)]",
           ("tests/hw/test_sequencer.py::test_tables_the_tiles_hold_are_not_sent_again",),
           "a new run keeps the previous run's activation table (its first table not sent)"),
    Mutant("TABLE-HELD-ANY-TILES", "missing condition", "hw/hub/sequencer.py",
           "held.eq(all_started), held_ident.eq(0),", "held.eq(1), held_ident.eq(0),",
           ("tests/hw/test_sequencer.py::test_a_table_some_tiles_missed_is_sent_again",),
           "a table sent to some of the tiles is taken as held by all of them"),
    Mutant("TABLE-KEEP-ANY-ADDRESS", "missing compare", "hw/hub/sequencer.py",
           "Mux(desc.flags[1], ~held_ident & same, held_ident)",
           "Mux(desc.flags[1], ~held_ident, held_ident)",
           ("tests/hw/test_sequencer.py::test_tables_the_tiles_hold_are_not_sent_again",),
           "a LUT at another address is taken for the table the tiles hold"),
    Mutant("SPLIT-START-NO-GAP", "pipeline hazard", "hw/hub/sequencer.py",
           """                m.next = "S_GAP"\n""", """                m.next = "S_START"\n""",
           ("tests/hw/test_sequencer.py::test_column_split_dispatch",),
           "a column split starts its next tile before its share settles (stale cg0 / cgs)"),
    Mutant("SPLIT-HEADER-TO-ONE-TILE", "wrong destination", "hw/hub/sequencer.py",
           "m.d.sync += [f_mcast.eq(1), wi.eq(0)]", "m.d.sync += [f_mcast.eq(0), wi.eq(0)]",
           ("tests/hw/test_sequencer.py::test_column_split_dispatch",),
           "a column split's header goes to one tile instead of every started tile"),
    Mutant("HEADER-PREFETCH-BOUND", "off by one", "hw/hub/sequencer.py",
           "& (n_img + HEADER_BYTES <= self.mem_limit))",
           "& (n_img + HEADER_BYTES < self.mem_limit))",
           ("tests/hw/test_sequencer.py::test_header_prefetch_stays_in_the_window",),
           "a next tile's header ending exactly at mem_limit is not prefetched (read later, "
           "in W_HEADER: 7 cycles lost per tile)"),
    Mutant("HEADER-PREFETCH-NO-WINDOW", "window check", "hw/hub/sequencer.py",
           "& (n_img + HEADER_BYTES <= self.mem_limit))", ")",
           ("tests/hw/test_sequencer.py::test_header_prefetch_stays_in_the_window",),
           "the next tile's header is read past mem_limit before the image is refused"),
    Mutant("FIRST-HEADER-NOT-PREFETCHED", "missing overlap", "hw/hub/sequencer.py",
           "& (chk.code == 0))]", "& (chk.code == 0) & 0)]",
           ("tests/hw/test_sequencer.py::test_failing_header_read_stops_its_own_layer",),
           "a layer's first header is no longer read during the previous layer's wait "
           "(11 cycles lost per layer)"),
    Mutant("LAYER-SETUP-LUT-BEATS", "length", "hw/hub/layer_setup.py",
           "lay.lut_beats.eq(Mux(requant & ~self.table_kept, 256 // beat, 0)),",
           "lay.lut_beats.eq(Mux(requant & ~self.table_kept, 128 // beat, 0)),",
           ("tests/hw/test_layer_setup.py",),
           "the nodes count half the activation table's words: the records land in the table"),
    Mutant("BEAT-WRITER-WATCHDOG-EARLY", "off by one", "hw/hub/beat_writer.py",
           "wd_last.eq(wd == self.watchdog_cycles - 2)",
           "wd_last.eq(wd == self.watchdog_cycles - 3)",
           ("tests/hw/test_beat_writer.py",),
           "the write watchdog fires a cycle early"),
]


def _package_dirs() -> dict[str, str]:
    """``{"sparsemac.hw": "hw", ...}`` from pyproject's package-dir mapping."""
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["tool"]["setuptools"]["package-dir"]


def _shadow(tmp: Path, mutant: Mutant) -> Path:
    """A copy of the package (installed layout) under ``tmp/pkg`` and of the test tree under
    ``tmp/run``, with ``mutant`` applied.  Returns the run folder."""
    pkg = tmp / "pkg"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name, src in sorted(_package_dirs().items()):
        dst = pkg.joinpath(*name.split("."))
        dst.mkdir(parents=True, exist_ok=True)
        for f in (ROOT / src).iterdir():
            if f.is_file() and "__pycache__" not in f.parts:
                shutil.copy2(f, dst / f.name)
    run = tmp / "run"
    run.mkdir()
    shutil.copytree(ROOT / "tests", run / "tests", ignore=ignore)
    for extra in ("examples", "constraints", "configs", "pyproject.toml", "README.md", "docs"):
        if (ROOT / extra).exists():
            os.symlink(ROOT / extra, run / extra)
    # apply the mutation to the package copy
    target = _installed_path(pkg, mutant.file)
    text = target.read_text()
    n = text.count(mutant.find)
    if n != 1:
        raise LookupError(f"{mutant.id}: the text to mutate occurs {n} times in {mutant.file}")
    target.write_text(text.replace(mutant.find, mutant.replace))
    return run


def _installed_path(pkg: Path, file: str) -> Path:
    """Where checkout file ``hw/tile/pe.py`` lands in the installed layout."""
    best = None
    for name, src in _package_dirs().items():
        if file.startswith(src + "/") and "/" not in file[len(src) + 1:]:
            best = pkg.joinpath(*name.split("."), file[len(src) + 1:])
    if best is None:
        raise LookupError(f"{file} is not in a package of pyproject's package-dir")
    return best


def run_mutant(mutant: Mutant, *, jobs: int, seed: int | None) -> dict:
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"sparsemac-mutant-{mutant.id}-") as tmp:
        try:
            run = _shadow(Path(tmp), mutant)
        except LookupError as exc:
            return dict(id=mutant.id, result="stale", detail=str(exc), seconds=0.0)
        env = dict(os.environ, PYTHONPATH=str(Path(tmp) / "pkg"),
                   SPARSEMAC_BUILD=str(ROOT / "build" / "sim"))
        if seed is not None:
            env["SPARSEMAC_SEED"] = str(seed)
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
               "-m", "not slow", *(["-n", str(jobs)] if jobs > 1 else []), *mutant.tests]
        proc = subprocess.run(cmd, cwd=run, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    failed = [ln for ln in out.splitlines() if ln.startswith("FAILED")]
    if proc.returncode == 0:
        result = "survived"
    elif failed:             # a test failed (exit 1, or 2 when -x stops the xdist workers)
        result = "caught"
    else:
        result = "error"     # collection error, crash: the mutant broke the build, not a test
    return dict(id=mutant.id, result=result, seconds=time.monotonic() - start,
                detail=(failed[0][:160] if failed else out.strip().splitlines()[-1:][0]
                        if out.strip() else ""))


def _report(rows: list[dict], path: Path) -> None:
    caught = sum(r["result"] == "caught" for r in rows)
    by_id = {m.id: m for m in MUTANTS}
    lines = ["# Mutation check", "",
             "Planted single-line bugs in `hw/`, each run against the tests that should catch it",
             "(`make mutate`, `bench/mutate.py`; a mutant is caught when one of its tests fails).",
             "", f"Score: **{caught} / {len(rows)} caught**.", "",
             "| mutant | kind | file | result | tests | time | what the bug does |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        m = by_id[r["id"]]
        lines.append(f"| {m.id} | {m.kind} | `{m.file}` | {r['result']} | "
                     f"{', '.join(f'`{t}`' for t in m.tests)} | {r['seconds']:.0f} s | {m.why} |")
    surv = [r for r in rows if r["result"] != "caught"]
    lines += ["", "## Survivors and stale mutants", ""]
    lines += ([f"- {r['id']}: {r['result']} ({r['detail']})" for r in surv] or ["None."])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--only", action="append", default=[], metavar="ID",
                   help="run only this mutant (repeatable); --list shows the ids")
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    p.add_argument("--jobs", type=int, default=2, help="pytest-xdist workers per mutant")
    p.add_argument("--seed", type=int, default=None,
                   help="SPARSEMAC_SEED for every run (default: a random seed per test)")
    p.add_argument("--report", type=Path, default=ROOT / "docs" / "reports" / "mutation.md",
                   help="markdown report to write (skipped with --only)")
    a = p.parse_args(argv)
    if a.list:
        for m in MUTANTS:
            print(f"{m.id:28s} {m.kind:24s} {m.file}")
        return 0
    unknown = set(a.only) - {m.id for m in MUTANTS}
    if unknown:
        p.error(f"--only must be one of the mutant ids (see --list), not {sorted(unknown)}")
    todo = [m for m in MUTANTS if not a.only or m.id in a.only]
    rows = []
    for i, m in enumerate(todo, 1):
        print(f"[mutate {i}/{len(todo)}] {m.id} ({m.kind}, {m.file}) ...", flush=True)
        r = run_mutant(m, jobs=a.jobs, seed=a.seed)
        rows.append(r)
        print(f"[mutate {i}/{len(todo)}] {m.id}: {r['result']} in {r['seconds']:.0f} s "
              f"{r['detail']}", flush=True)
    if not a.only:
        _report(rows, a.report)
        print(f"[mutate] report: {a.report}")
    caught = sum(r["result"] == "caught" for r in rows)
    print(f"[mutate] {caught} / {len(rows)} caught")
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
