"""The accelerator top: memory hub + tiles on the ring, AXI4 master, AXI4-Lite registers."""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, ClockSignal, DomainRenamer, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.hub.beat_writer import BeatWriter
from sparsemac.hw.hub.dma_reader import DmaReader
from sparsemac.hw.hub.result_writer import ResultWriter
from sparsemac.hw.hub.sequencer import Sequencer
from sparsemac.hw.mem.axi import axi4_lite_signature, axi4_signature
from sparsemac.hw.mem.register_slice import RegisterSlice
from sparsemac.hw.mem.skid_buffer import SkidBuffer
from sparsemac.hw.ring import Ring
from sparsemac.hw.tile.tile_node import TileNode
from sparsemac.hw.top.csr_bank import CsrBank

__all__ = ["Accelerator"]

TAG_WIDTH = 4


class Accelerator(wiring.Component):
    """``tiles`` compute tiles and one memory hub on a ring (docs/accelerator.md).

    Node 0 of the ring is the memory hub: `CsrBank` (AXI4-Lite registers, docs/registers.md),
    `Sequencer` (descriptor queue), `DmaReader` + `BeatWriter` (one AXI4 master port) and
    `ResultWriter`.  Nodes ``1..tiles`` are `TileNode` s (Tile + OutputPipeline).  A layer's
    output rows are split across the tiles (one weight image per tile, docs/spec.md section
    8.1); weights are unicast, activations, requant records and the activation table are read
    once and multicast; results come back as RESULT flits and are written byte-exact.

    Parameters
    ----------
    config : AcceleratorConfig
        Needs ``ring_payload_width >= 64`` (a result flit carries a 32-bit tag).
    reset_buffer : callable, optional
        ``reset_buffer(module, signal, name) -> signal``: drives the data plane's reset (a
        register, thousands of loads) through a buffer the target provides, for example an
        FPGA's global network (``flow.clocking.ecp5_global_buffer``).  Default: the register
        drives the loads directly.

    Members
    -------
    m_axi : Out(axi4_signature)
        Data master (Verilog ``m_axi__*``; cocotbext-axi prefix ``m_axi_``).
    s_axil : In(axi4_lite_signature(addr_width=12))
        Control registers (prefix ``s_axil_``).
    irq : Out(1)
        ``OR(IRQ_STATUS & IRQ_ENABLE)``, registered.

    Raises
    ------
    TypeError, ValueError
        ``config`` is not an AcceleratorConfig, or its ring payload is narrower than 64 bits;
        ``reset_buffer`` is not callable.
    """

    def __init__(self, config: AcceleratorConfig, *, reset_buffer=None):
        AcceleratorConfig.require(config, "config")
        if reset_buffer is not None and not callable(reset_buffer):
            raise TypeError(f"reset_buffer must be callable (module, signal, name) -> signal "
                            f"or None, not {reset_buffer!r}")
        self.reset_buffer = reset_buffer
        if config.ring_payload_width < 64:
            raise ValueError(f"ring_payload_width must be at least 64 for the accelerator, "
                             f"not {config.ring_payload_width!r}")
        self.cfg = cfg = config
        super().__init__({
            "m_axi": Out(axi4_signature(data_width=cfg.axi_data_width,
                                        addr_width=cfg.axi_addr_width, id_width=cfg.axi_id_width)),
            "s_axil": In(axi4_lite_signature(addr_width=12)),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        beat = cfg.axi_bytes
        dma_kw = dict(data_width=cfg.axi_data_width, addr_width=cfg.axi_addr_width,
                      id_width=cfg.axi_id_width, max_burst=cfg.axi_max_burst,
                      max_outstanding=cfg.max_outstanding, watchdog_cycles=cfg.watchdog_cycles,
                      tag_width=TAG_WIDTH)
        m.submodules.csr = csr = CsrBank(cfg)
        m.submodules.rd = rd = DmaReader(**dma_kw)
        m.submodules.wr = wr = BeatWriter(
            data_width=cfg.axi_data_width, addr_width=cfg.axi_addr_width,
            id_width=cfg.axi_id_width, max_outstanding=cfg.max_outstanding,
            watchdog_cycles=cfg.watchdog_cycles)
        m.submodules.seq = seq = Sequencer(cfg, tag_width=TAG_WIDTH)
        rw = ResultWriter(cfg)
        ring = Ring.from_config(cfg, nodes=cfg.tiles + 1)
        nodes = [TileNode(cfg, node=t + 1) for t in range(cfg.tiles)]
        # The data plane (ring, tile nodes, ResultWriter, ring skid buffers) runs in its own
        # clock domain `plane`: the same clock, and one reset, the register `plane_reset` =
        # (sync reset or the sequencer's plane reset) one cycle late (`PLANE_RESET_DELAY` = 1,
        # which the sequencer waits out; a board reset reaches the plane a cycle late and
        # leaves it a cycle late).  One flip-flop then drives every reset pin of the plane (no
        # OR of two resets in front of thousands of loads), optionally through `reset_buffer`.
        plane = Signal(name="plane_reset", init=1)
        m.d.sync += plane.eq(seq.plane_reset)
        plane_rst = plane if self.reset_buffer is None else \
            self.reset_buffer(m, plane, "plane_reset")
        m.domains.plane = cd_plane = ClockDomain("plane", local=True)
        m.d.comb += [cd_plane.clk.eq(ClockSignal("sync")), cd_plane.rst.eq(plane_rst)]
        in_plane = DomainRenamer({"sync": "plane"})
        m.submodules.results = in_plane(rw)
        m.submodules.ring = in_plane(ring)
        for t, node in enumerate(nodes):
            m.submodules[f"tile{t}"] = in_plane(node)

        # -- AXI4: reader on AR/R, writer on AW/W/B --------------------------------------------
        wiring.connect(m, wiring.flipped(self.s_axil), csr.s_axil)
        for blk in (rd, wr):
            for name, member in blk.m_axi.signature.members.items():
                if member.flow == Out:
                    m.d.comb += getattr(self.m_axi, name).eq(getattr(blk.m_axi, name))
                else:
                    m.d.comb += getattr(blk.m_axi, name).eq(getattr(self.m_axi, name))
        aw = cfg.axi_addr_width
        mem_base = Cat(csr.mem_base_lo.addr, csr.mem_base_hi.addr)[:aw]
        mem_limit = Cat(csr.mem_limit_lo.addr, csr.mem_limit_hi.addr)[:aw]
        for blk in (rd, wr):
            m.d.comb += [blk.window_base.eq(mem_base), blk.window_limit.eq(mem_limit)]
        # the DMAs' aborts from registers: the sequencer's state decode is not in front of
        # every DMA enable; the DMAs see an abort a cycle late, inside the sequencer's
        # ABORT / ABORT_HOLD pair, and the plane's outputs are masked (`live`) from ABORT_HOLD
        rd_abort = Signal(name="rd_abort_q")
        wr_abort = Signal(name="wr_abort_q")
        m.d.sync += [rd_abort.eq(seq.rd_abort), wr_abort.eq(seq.wr_abort)]
        m.d.comb += [rd.abort.eq(rd_abort), wr.cancel.eq(wr_abort),
                     seq.rd_busy.eq(rd.busy), seq.wr_busy.eq(wr.busy)]
        wiring.connect(m, seq.rcmd, rd.cmd)
        wiring.connect(m, rd.data, seq.rdata)
        wiring.connect(m, rd.status, seq.rstatus)
        # The plane leaves a board reset a cycle after the `sync` domain: in that cycle its
        # registers still hold the state of the interrupted job (they clear at its end), so
        # every plane output the `sync` domain acts on is masked while `plane_reset` is high
        # (`live`): no stale write reaches the fresh BeatWriter, no counter counts.
        live = Signal(name="plane_live")
        m.d.comb += live.eq(~plane)
        # the ResultWriter's beats reach the BeatWriter through a skid buffer (no latency,
        # ready from a register; in the plane, so an abort empties it): the BeatWriter's
        # readiness (AXI ready, outstanding writes) and the ResultWriter's wide enables behind
        # its handshake are not one path; a beat in the skid counts as busy
        m.submodules.wbeat_skid = sk = in_plane(
            SkidBuffer(rw.wbeat.signature.members["payload"].shape))
        wiring.connect(m, rw.wbeat, sk.i)
        m.d.comb += [wr.beats.valid.eq(sk.o.valid & live), wr.beats.payload.eq(sk.o.payload),
                     sk.o.ready.eq(wr.beats.ready & live),
                     rw.wbusy.eq(wr.busy | sk.o.valid), rw.werror.eq(wr.error),
                     rw.werror_addr.eq(wr.error_addr)]

        # -- ring ------------------------------------------------------------------------------
        # every ring port gets a stage: a skid buffer (no latency, ready from a register) on
        # the inject side, a register slice (one cycle, valid, payload and ready from
        # registers) on the eject side, so that a router's arbitration (FIFO head -> channel
        # choice -> eject valid) and a consumer's wide register enables are never one path;
        # reset with the data plane
        def stage(name, src, dst, cls):
            sk = cls(ring.layout)
            m.submodules[name] = in_plane(sk)
            wiring.connect(m, src, sk.i)
            wiring.connect(m, sk.o, dst)

        stage("inject_skid0", seq.inject, ring.inject[0], SkidBuffer)
        stage("eject_slice0", ring.eject[0], rw.flits, RegisterSlice)
        # a node's start and its share, registered: the sequencer's header decision (the
        # header checker's verdict, the share's sums) and the node's clears of its checkers
        # and gearboxes (thousands of reset and enable pins) are not one path; the node starts
        # a cycle later, long before the header's flits reach it over the ring
        start_q = Signal(cfg.tiles, name="node_start_q")
        rows_q = Signal.like(seq.node_rows, name="node_rows_q")
        row_base_q = Signal.like(seq.node_row_base, name="node_row_base_q")
        cg0_q = Signal.like(seq.node_cg0, name="node_cg0_q")
        cgs_q = Signal.like(seq.node_cgs, name="node_cgs_q")
        m.d.sync += [start_q.eq(seq.node_start), rows_q.eq(seq.node_rows),
                     row_base_q.eq(seq.node_row_base), cg0_q.eq(seq.node_cg0),
                     cgs_q.eq(seq.node_cgs)]
        moving = [seq.inject.valid & seq.inject.ready, rw.flits.valid & rw.flits.ready]
        for t, node in enumerate(nodes):
            stage(f"inject_skid{t + 1}", node.flits_out, ring.inject[t + 1], SkidBuffer)
            stage(f"eject_slice{t + 1}", ring.eject[t + 1], node.flits_in, RegisterSlice)
            m.d.comb += [node.layer.eq(seq.layer), node.start.eq(start_q[t]),
                         node.rows.eq(rows_q), node.row_base.eq(row_base_q),
                         node.cg0.eq(cg0_q), node.cgs.eq(cgs_q),
                         seq.node_done[t].eq(node.done & live),
                         seq.node_error[t].eq(node.error & live),
                         seq.node_image_done[t].eq(node.image_done & live),
                         seq.node_image_code[t].eq(node.image_code)]
            moving += [node.flits_in.valid & node.flits_in.ready,
                       node.flits_out.valid & node.flits_out.ready]
        mac_active = Cat(*[n.mac_active for n in nodes]).any() & live
        pool_active = Cat(*[n.pool_active for n in nodes]).any() & live
        m.d.comb += [rw.out_base.eq(seq.out_base), rw.row_bytes.eq(seq.row_bytes),
                     rw.m_total.eq(seq.m_total), rw.lg_esize.eq(seq.lg_esize),
                     rw.clear.eq(seq.rw_clear),
                     seq.rw_markers.eq(rw.markers), seq.rw_error_code.eq(rw.error_code),
                     seq.rw_error_addr.eq(rw.error_addr), seq.rw_busy.eq(rw.busy & live),
                     seq.progress.eq(Cat(*moving).any() | mac_active | rw.busy)]

        # -- registers -------------------------------------------------------------------------
        m.d.comb += [
            seq.start.eq(csr.control.start), seq.soft_reset.eq(csr.control.soft_reset),
            seq.desc_base.eq(Cat(csr.desc_base_lo.addr, csr.desc_base_hi.addr)[:aw]),
            seq.desc_count.eq(csr.desc_count.count),
            seq.mem_base.eq(mem_base), seq.mem_limit.eq(mem_limit),
            csr.status.busy.eq(seq.busy), csr.status.done.eq(seq.done),
            csr.status.error.eq(seq.error), csr.status.error_code.eq(seq.error_code),
            csr.status.desc_index.eq(seq.desc_index),
            csr.error_addr_lo.addr.eq(seq.error_addr[:32]),
            csr.error_desc.index.eq(seq.desc_index),
            csr.irq_status_set.done.eq(seq.irq_done), csr.irq_status_set.error.eq(seq.irq_error),
            csr.irq_status_set.desc_done.eq(seq.irq_desc),
            self.irq.eq(csr.irq),
        ]
        if aw > 32:
            m.d.comb += csr.error_addr_hi.addr.eq(seq.error_addr[32:])
        axi = self.m_axi
        strb_bits = [axi.wstrb[i] for i in range(beat)]
        popcount = sum(strb_bits[1:], strb_bits[0])
        ring_stall = (seq.inject.valid & ~seq.inject.ready) | \
            (Cat(*[n.stall for n in nodes]).any() & live)
        m.d.comb += [
            csr.busy_cycles_inc.eq(seq.busy),
            csr.mac_active_cycles_inc.eq(mac_active),
            csr.pool_active_cycles_inc.eq(pool_active),
            csr.stall_read_cycles_inc.eq(seq.stall_read),
            csr.stall_write_cycles_inc.eq(rw.stall & live),
            csr.stall_ring_cycles_inc.eq(ring_stall),
            csr.stall_desc_cycles_inc.eq(seq.stall_desc),
            csr.bytes_read_inc.eq((axi.rvalid & axi.rready) * beat),
            csr.bytes_written_inc.eq(popcount * (axi.wvalid & axi.wready)),
        ]
        return m
