"""Memory hub side of the results: RESULT flits -> byte-exact DMA writes (docs/accelerator.md)."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import dma_cmd_layout, dma_status_layout, dma_write_data_layout
from .config import AcceleratorConfig
from .ring.layouts import FlitType, flit_layout
from .tile_node import DONE_MARKER, result_data_bytes

__all__ = ["ResultWriter"]


class ResultWriter(wiring.Component):
    """Write each RESULT flit's bytes to ``out_base + m * row_bytes + eoff`` through a DmaWriter.

    A flit carries ``m`` (16 bits), ``eoff`` (byte offset in the output row, 16 bits) and
    ``result_data_bytes(cfg)`` bytes; only ``min(that, row_bytes - eoff)`` bytes are written
    (strobes), so nothing outside ``Y[m, :]`` changes.  Flits with ``m >= m_total`` or
    ``eoff >= row_bytes`` are dropped (never written): the output buffer bounds hold whatever a
    tile sends.  A flit with ``m = DONE_MARKER`` counts one finished node in ``markers``.

    One DMA command per flit (``ceil((addr % beat + bytes) / beat)`` beats), the next flit is
    taken after its write response.  A failing write latches ``error_code``/``error_addr``
    (sticky until ``clear``); later flits are then dropped.

    Members
    -------
    flits : In(stream(flit))
    wcmd, wdata : Out(stream) to the DmaWriter; wstatus : In(stream)
    out_base : In(addr_width)
    row_bytes, m_total : In(32)
    lg_esize : In(2)
        log2 of the output element size (0: int8, 2: int32, 3: int64); a flit's bytes end at
        its ``cols``-element segment of the row.
    clear : In(1)
    markers : Out(8)
    error_code : Out(8); error_addr : Out(addr_width)
    busy, stall : Out(1)
    """

    def __init__(self, cfg: AcceleratorConfig, *, tag_width: int = 4):
        if not isinstance(cfg, AcceleratorConfig):
            raise TypeError(f"cfg must be an AcceleratorConfig, not {cfg!r}")
        self.cfg = cfg
        aw = cfg.axi_addr_width
        self.tag_width = tag_width
        super().__init__({
            "flits": In(stream.Signature(flit_layout(cfg.tiles + 1, cfg.ring_payload_width))),
            "wcmd": Out(stream.Signature(dma_cmd_layout(aw, tag_width))),
            "wdata": Out(stream.Signature(dma_write_data_layout(cfg.axi_data_width))),
            "wstatus": In(stream.Signature(dma_status_layout(aw, tag_width))),
            "out_base": In(aw), "row_bytes": In(32), "m_total": In(32), "lg_esize": In(2),
            "clear": In(1), "markers": Out(8),
            "error_code": Out(8), "error_addr": Out(aw),
            "busy": Out(1), "stall": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        aw, beat = cfg.axi_addr_width, cfg.axi_bytes
        lg_beat = (beat - 1).bit_length()
        dbytes = result_data_bytes(cfg)
        span = -(-(dbytes + beat - 1) // beat) * beat      # bytes of the widest command
        fl = self.flits.payload
        f_m, f_eoff = fl.payload[:16], fl.payload[16:32]
        f_data = fl.payload[32:32 + 8 * dbytes]
        r_m, r_eoff = Signal(16), Signal(16)
        r_data = Signal(8 * dbytes)
        addr, nbytes = Signal(aw), Signal(range(dbytes + 1))
        lo, nbeats, bi = Signal(lg_beat), Signal(range(span // beat + 1)), Signal(range(span))
        wide = Signal(8 * span)
        strb = Signal(span)
        m.d.comb += [
            wide.eq(r_data << (lo * 8)),
            strb.eq((((Const(1, span + 1) << nbytes) - 1) << lo)[:span]),
            self.wcmd.payload.addr.eq(addr & ~(beat - 1)),
            self.wcmd.payload.length.eq(nbeats << lg_beat),
            self.wcmd.payload.tag.eq(0),
            self.wdata.payload.data.eq((wide >> (bi * 8 * beat))[:8 * beat]),
            self.wdata.payload.strb.eq((strb >> (bi * beat))[:beat]),
        ]
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.flits.ready.eq(1)
                with m.If(self.flits.valid):
                    with m.If((fl.type == FlitType.RESULT) & (f_m == DONE_MARKER)):
                        m.d.sync += self.markers.eq(self.markers + 1)
                    with m.Elif((fl.type == FlitType.RESULT) & (f_m < self.m_total)
                                & (f_eoff < self.row_bytes) & (self.error_code == 0)):
                        m.d.sync += [r_m.eq(f_m), r_eoff.eq(f_eoff), r_data.eq(f_data)]
                        m.next = "CALC"
            with m.State("CALC"):
                m.d.comb += self.busy.eq(1)
                a = Signal(aw)
                left = Signal(32)
                n = Signal(range(dbytes + 1))
                # a flit never carries bytes of the next tile-row segment (cols values)
                el = Signal(16)
                seg_end = Signal(24)
                left_seg = Signal(24)
                m.d.comb += [el.eq(r_eoff >> self.lg_esize),
                             seg_end.eq(((el // cfg.cols + 1) * cfg.cols) << self.lg_esize),
                             left_seg.eq(seg_end - r_eoff)]
                m.d.comb += [a.eq(self.out_base + r_m * self.row_bytes + r_eoff),
                             left.eq(Mux(self.row_bytes - r_eoff < left_seg,
                                         self.row_bytes - r_eoff, left_seg)),
                             n.eq(Mux(left < dbytes, left, dbytes))]
                m.d.sync += [addr.eq(a), nbytes.eq(n), lo.eq(a[:lg_beat]),
                             nbeats.eq((a[:lg_beat] + n + beat - 1) >> lg_beat), bi.eq(0)]
                m.next = "CMD"
            with m.State("CMD"):
                m.d.comb += [self.busy.eq(1), self.wcmd.valid.eq(1)]
                m.d.comb += self.stall.eq(~self.wcmd.ready)
                with m.If(self.wcmd.ready):
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += [self.busy.eq(1), self.wdata.valid.eq(1),
                             self.stall.eq(~self.wdata.ready)]
                with m.If(self.wdata.ready):
                    m.d.sync += bi.eq(bi + 1)
                    with m.If(bi + 1 == nbeats):
                        m.next = "STATUS"
            with m.State("STATUS"):
                m.d.comb += [self.busy.eq(1), self.wstatus.ready.eq(1),
                             self.stall.eq(~self.wstatus.valid)]
                with m.If(self.wstatus.valid):
                    with m.If(self.wstatus.payload.code != 0):
                        m.d.sync += [self.error_code.eq(self.wstatus.payload.code),
                                     self.error_addr.eq(self.wstatus.payload.addr)]
                    m.next = "IDLE"
        with m.If(self.clear):
            m.d.sync += [self.markers.eq(0), self.error_code.eq(0), self.error_addr.eq(0)]
        return m
