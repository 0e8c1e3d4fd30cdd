"""DmaReader + DmaWriter on one AXI4 port, on Verilator, against cocotbext-axi's AxiRam.

The cocotb module tests/sim/cocotb_dma.py holds the tests (random transfers with random
backpressure on all five channels, SLVERR/DECERR injection, window violations, watchdog, abort
mid-burst); this file builds the small wrapper once per parameter set.
"""

import pytest
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from sparsemac.hw.hub.dma_reader import DmaReader
from sparsemac.hw.hub.dma_writer import DmaWriter
from sparsemac.hw.mem.axi import axi4_signature
from sparsemac.sim.runner import run_cocotb


class DmaPair(wiring.Component):
    """Test wrapper: a reader and a writer sharing one full AXI4 master port ``m_axi``."""

    def __init__(self, **kw):
        self.rd = DmaReader(**kw)
        self.wr = DmaWriter(**kw)
        members = {"m_axi": Out(axi4_signature(data_width=kw["data_width"],
                                               addr_width=kw["addr_width"],
                                               id_width=kw["id_width"])),
                   "window_base": In(kw["addr_width"]), "window_limit": In(kw["addr_width"])}
        for pre, blk in (("rd", self.rd), ("wr", self.wr)):
            for name in ("cmd", "data", "status", "abort", "busy"):
                members[f"{pre}_{name}"] = blk.signature.members[name]
        super().__init__(members)

    def elaborate(self, platform):
        from amaranth.hdl import Module

        m = Module()
        m.submodules.rd = self.rd
        m.submodules.wr = self.wr
        for pre, blk in (("rd", self.rd), ("wr", self.wr)):
            for name in ("cmd", "data", "status"):
                ours = getattr(self, f"{pre}_{name}")
                if blk.signature.members[name].flow == Out:
                    wiring.connect(m, wiring.flipped(ours), blk.__dict__[name])
                else:
                    wiring.connect(m, blk.__dict__[name], wiring.flipped(ours))
            m.d.comb += [blk.abort.eq(getattr(self, f"{pre}_abort")),
                         getattr(self, f"{pre}_busy").eq(blk.busy),
                         blk.window_base.eq(self.window_base),
                         blk.window_limit.eq(self.window_limit)]
        for name in self.rd.m_axi.signature.members:
            sig = self.rd.m_axi.signature.members[name]
            if sig.flow == Out:
                m.d.comb += getattr(self.m_axi, name).eq(getattr(self.rd.m_axi, name))
            else:
                m.d.comb += getattr(self.rd.m_axi, name).eq(getattr(self.m_axi, name))
        for name in self.wr.m_axi.signature.members:
            sig = self.wr.m_axi.signature.members[name]
            if sig.flow == Out:
                m.d.comb += getattr(self.m_axi, name).eq(getattr(self.wr.m_axi, name))
            else:
                m.d.comb += getattr(self.wr.m_axi, name).eq(getattr(self.m_axi, name))
        return m


PARAMS = {
    "default": dict(data_width=64, addr_width=32, id_width=4, max_burst=16, max_outstanding=4,
                    watchdog_cycles=300, tag_width=8),
    "narrow": dict(data_width=32, addr_width=32, id_width=2, max_burst=4, max_outstanding=1,
                   watchdog_cycles=300, tag_width=8),
}


@pytest.mark.parametrize("name", ["default", "narrow"])
def test_dma_on_axi_ram(name):
    kw = PARAMS[name]
    run_cocotb(DmaPair(**kw), toplevel="dma_pair", test_module="tests.sim.cocotb_dma",
               params=kw, tag=name)
