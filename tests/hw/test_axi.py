"""AXI signatures flatten to the port names cocotbext-axi looks for."""

from __future__ import annotations

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from cocotbext.axi import axi_channels, axil_channels
from sparsemac.hw.mem.axi import (
    axi4_lite_signature,
    axi4_read_signature,
    axi4_signature,
    axi4_write_signature,
    check_dma_params,
)
from sparsemac.hw.verilog import generate_verilog


def _names(channels):
    req = {s for c in channels for s in c._signals}
    opt = {s for c in channels for s in c._optional_signals}
    return req, opt


class _Holder(wiring.Component):
    def __init__(self, sig):
        super().__init__({"m_axi": Out(sig), "s_axil": In(axi4_lite_signature(addr_width=12))})

    def elaborate(self, platform):
        m = Module()
        for name, member in self.m_axi.signature.members.items():
            if member.flow == Out:
                m.d.comb += getattr(self.m_axi, name).eq(0)
        for name, member in self.s_axil.signature.members.items():
            if member.flow == Out:   # flipped view: the slave's outputs
                m.d.comb += getattr(self.s_axil, name).eq(0)
        return m


def test_axi4_members_match_cocotbext():
    a = axi_channels
    req, opt = _names([a.AxiAWBus, a.AxiWBus, a.AxiBBus, a.AxiARBus, a.AxiRBus])
    members = set(axi4_signature(data_width=64, addr_width=32, id_width=4).members)
    assert req <= members, req - members
    assert members <= req | opt, members - req - opt
    rd = set(axi4_read_signature(data_width=64, addr_width=32, id_width=4).members)
    wr = set(axi4_write_signature(data_width=64, addr_width=32, id_width=4).members)
    assert rd | wr == members and not rd & wr


def test_axi4_lite_members_match_cocotbext():
    a = axil_channels
    req, opt = _names([a.AxiLiteAWBus, a.AxiLiteWBus, a.AxiLiteBBus, a.AxiLiteARBus,
                       a.AxiLiteRBus])
    members = set(axi4_lite_signature(addr_width=12).members)
    assert req <= members and members <= req | opt


def test_verilog_port_names_use_double_underscore():
    v = generate_verilog(_Holder(axi4_signature(data_width=32, addr_width=32, id_width=2)),
                         name="holder")
    # cocotbext-axi: AxiBus.from_prefix(dut, "m_axi_") -> "m_axi_" + "_" + "arvalid"
    for port in ("m_axi__arvalid", "m_axi__rdata", "m_axi__wstrb", "s_axil__awaddr",
                 "s_axil__rresp"):
        assert f" {port};" in v, port


def test_parameter_checks():
    ok = dict(data_width=64, addr_width=32, id_width=4, max_burst=16, max_outstanding=4,
              watchdog_cycles=100, tag_width=8)
    check_dma_params(**ok)
    with pytest.raises(ValueError, match=r"^data_width must be a power of two between 8 and "
                                         r"1024, not 48$"):
        check_dma_params(**{**ok, "data_width": 48})
    with pytest.raises(ValueError, match=r"^addr_width must be between 12 and 64, not 8$"):
        check_dma_params(**{**ok, "addr_width": 8})
    with pytest.raises(ValueError, match=r"^data_width must be 32 or 64, not 128$"):
        axi4_lite_signature(data_width=128, addr_width=12)
