"""The accelerator on a preloaded on-chip memory: a simulation top for long benchmark runs.

`SramAccelTop` = :class:`hw.accelerator.Accelerator` + :class:`hw.axi_sram.AxiSram` holding a
job's memory image (descriptors, weights, activations, tables; placed at the job's base address),
with the accelerator's AXI4-Lite port and ``irq`` at the top.  Nothing runs in Python per clock
cycle (unlike cocotbext-axi's ``AxiRam``), so layers of millions of cycles simulate at Verilator
speed; ``bench/scaling.py`` uses it.  The memory answers every read 2 cycles after the address
and one beat per cycle (on-chip SRAM, not DRAM latency).

After the run the testbench reads the memory back through a debug read port (``dbg_*``: one
word per request, only while ``dbg_sel`` is high and the accelerator is idle).
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.mem.axi import connect_axi4_with_read_tap
from sparsemac.hw.mem.axi_sram import AxiSram
from sparsemac.hw.top.accelerator import Accelerator

__all__ = ["SramAccelTop", "sram_layout"]


def sram_layout(base: int, nbytes: int, beat: int) -> tuple[int, int]:
    """``(depth_words, offset)``: the smallest power-of-two memory in which ``nbytes`` starting at
    byte address ``base`` do not wrap (the AxiSram decodes ``address mod size``)."""
    size = beat
    while size < nbytes or (base % size) + nbytes > size:
        size *= 2
    return size // beat, base % size


class SramAccelTop(wiring.Component):
    """Accelerator + preloaded AxiSram (see the module docstring).

    Parameters
    ----------
    cfg : AcceleratorConfig
    base : int
        Byte address of ``image`` (the job's memory window base).
    image : bytes
        The memory window's initial contents.

    Members
    -------
    s_axil : the accelerator's AXI4-Lite slave (Verilog ``s_axil__*``)
    irq : Out(1)
    dbg_sel : In(1)
        Give the memory's read channel to the ``dbg_*`` port.
    dbg_addr : In(axi_addr_width); dbg_valid : In(1); dbg_ready : Out(1)
    dbg_rdata : Out(axi_data_width); dbg_rvalid : Out(1)
    """

    def __init__(self, cfg: AcceleratorConfig, *, base: int, image: bytes):
        if not isinstance(cfg, AcceleratorConfig):
            raise TypeError(f"cfg must be an AcceleratorConfig, not {cfg!r}")
        self.cfg = cfg
        self.acc = Accelerator(cfg)
        depth, off = sram_layout(base, len(image), cfg.axi_bytes)
        self.sram = AxiSram.for_config(cfg, depth=depth, init=bytes(off) + bytes(image))
        lite = self.acc.signature.members["s_axil"]
        super().__init__({
            "s_axil": lite, "irq": Out(1),
            "dbg_sel": In(1), "dbg_addr": In(cfg.axi_addr_width), "dbg_valid": In(1),
            "dbg_ready": Out(1), "dbg_rdata": Out(cfg.axi_data_width), "dbg_rvalid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.accel = acc = self.acc
        m.submodules.sram = sram = self.sram
        wiring.connect(m, wiring.flipped(self.s_axil), acc.s_axil)
        m.d.comb += self.irq.eq(acc.irq)
        m.d.comb += [self.dbg_rdata.eq(sram.s_axi.rdata),
                     self.dbg_rvalid.eq(sram.s_axi.rvalid & self.dbg_sel),
                     self.dbg_ready.eq(sram.s_axi.arready & self.dbg_sel)]
        connect_axi4_with_read_tap(m, acc.m_axi, sram.s_axi, tap=self.dbg_sel,
                                   araddr=self.dbg_addr, arvalid=self.dbg_valid, rready=1)
        return m
