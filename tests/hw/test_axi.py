"""AXI signatures flatten to the port names cocotbext-axi looks for."""

from __future__ import annotations

import pytest
from amaranth.hdl import Module, Signal
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


@pytest.mark.parametrize("max_burst,beat_bytes,left_width", [(1, 4, 20), (16, 8, 30),
                                                              (256, 4, 31), (64, 16, 29),
                                                              (256, 16, 29), (2, 8, 12)])
def test_burst_step_rule(max_burst, beat_bytes, left_width, seed):
    """``burst_step`` is min(max_burst, left, beats to the next 4 KiB boundary) beats and the
    cursor moved past them (address + beats x beat bytes, left - beats) at every bound:
    ``left`` at, just below and just above the limit, ``left`` with only high bits set (the
    split compare must not take it as small), addresses at, one beat before and one beat
    after a 4 KiB boundary, and random points (seed printed)."""
    import random

    from amaranth.sim import Simulator
    from sparsemac.hw.mem.axi import burst_step

    m = Module()
    addr, left = Signal(32), Signal(left_width)
    step = burst_step(m, addr, left, max_burst, beat_bytes)
    rng = random.Random(seed)
    kb = max_burst.bit_length()
    lefts = {0, 1, max_burst - 1, max_burst, max_burst + 1, 1 << kb, (1 << kb) + 1,
             (1 << kb) + max_burst - 1, (1 << left_width) - 1, 1 << (left_width - 1)}
    addrs = set()
    for page in (0, 0x1000, 0xFFFF_F000):
        for off in (0, beat_bytes, 4096 - beat_bytes, 4096 - max_burst * beat_bytes,
                    4096 - (max_burst - 1) * beat_bytes, 4096 - (max_burst + 1) * beat_bytes):
            addrs.add((page + off % 4096) & 0xFFFF_FFFF & ~(beat_bytes - 1))
    cases = [(a, n) for a in sorted(addrs) for n in sorted(lefts)]
    cases += [(rng.randrange(1 << 32) & ~(beat_bytes - 1), rng.randrange(1 << left_width))
              for _ in range(300)]
    bad = []

    async def bench(ctx):
        for a, n in cases:
            ctx.set(addr, a)
            ctx.set(left, n)
            b = min(max_burst, n, (4096 - a % 4096) // beat_bytes)
            want = (b, (a + b * beat_bytes) & 0xFFFF_FFFF, n - b, (b - 1) % 256)
            got = (ctx.get(step.beats), ctx.get(step.addr), ctx.get(step.left),
                   ctx.get(step.len))
            if got != want:
                bad.append((hex(a), n, got, want))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not bad, (f"(addr, left, got (beats, next addr, next left, len), want) {bad[:5]} "
                     f"(seed {seed})")
