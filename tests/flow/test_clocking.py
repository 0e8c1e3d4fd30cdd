"""Board clocks (flow/clocking.py) and critical-path summaries (flow/timing.py)."""

from __future__ import annotations

import pytest
from amaranth.back import rtlil
from amaranth.hdl import ClockDomain, Module, Signal
from sparsemac.flow.clocking import Ecp5Pll, ecp5_pll_params
from sparsemac.flow.timing import critical_paths, format_path


@pytest.mark.parametrize("f_out", [3.125, 25.0, 48.0, 62.5, 100.0, 133.0, 150.0, 400.0])
def test_pll_dividers_make_the_clock_within_limits(f_out):
    p = ecp5_pll_params(25.0, f_out)
    # the datasheet's relations and ranges, recomputed here
    out = 25.0 * p.clkfb_div / p.clki_div
    assert out == pytest.approx(p.f_out_mhz), p
    # no legal setting is closer (brute force over the datasheet ranges)
    best = min(abs(25.0 * fb / ref - f_out) for ref in range(1, 129) for fb in range(1, 81)
               if 3.125 <= 25.0 / ref <= 400.0 and 3.125 <= 25.0 * fb / ref <= 400.0
               and any(400.0 <= 25.0 * fb / ref * od <= 800.0 for od in range(1, 129)))
    assert abs(out - f_out) == pytest.approx(best), p
    assert 3.125 <= 25.0 / p.clki_div <= 400.0, p
    assert 400.0 <= out * p.clkop_div <= 800.0, p
    assert 1 <= p.clki_div <= 128 and 1 <= p.clkfb_div <= 80 and 1 <= p.clkop_div <= 128


def test_pll_100mhz_is_exact():
    p = ecp5_pll_params(25.0, 100.0)
    assert (p.f_out_mhz, p.f_vco_mhz) == (100.0, 800.0)


@pytest.mark.parametrize("f_out", [3.1, 400.5, 0.0, -5.0])
def test_pll_refuses_clocks_outside_the_output_range(f_out):
    with pytest.raises(ValueError, match=r"clock_mhz must be between 3.125 and 400.0 MHz for "
                                         r"the ECP5 PLL, not "):
        ecp5_pll_params(25.0, f_out)


def test_pll_elaborates_an_ehxplll_and_a_reset_synchronizer():
    m = Module()
    m.domains.sync = ClockDomain("sync")
    clk = Signal()
    m.submodules.pll = pll = Ecp5Pll(ecp5_pll_params(25.0, 100.0), clk)
    led = Signal()
    m.d.sync += led.eq(~led)
    text = rtlil.convert(m, ports=[clk, led, pll.locked])
    assert "EHXPLLL" in text and "CLKFB_DIV" in text and "ResetSynchronizer" not in text
    assert "rst_sync" in text


def _seg(kind, delay, net=None, cell="c", port="Z"):
    s = {"type": kind, "delay": delay, "from": {"cell": cell, "port": "A"},
         "to": {"cell": cell, "port": port}}
    if net is not None:
        s["net"] = net
    return s


def test_critical_path_summary():
    path = [_seg("clk-to-q", 0.5, cell="core.a_TRELLIS_FF_Q"),
            _seg("routing", 1.0, net="core.a[3]"),
            _seg("logic", 0.4, cell="core.x_LUT4_Z"),
            _seg("routing", 0.7, net="core.b_LUT4_Z_D_PFUMX_Z"),
            _seg("logic", 0.3, cell="core.y_CCU2C_S0", port="FCO"),
            _seg("routing", 0.0, net="$abc$123$auto"),
            _seg("logic", 0.2, cell="core.y_CCU2C_S1", port="S1"),
            _seg("routing", 0.9, net="core.a[4]"),
            _seg("setup", 0.1, cell="core.z_TRELLIS_FF_Q")]
    rep = {"critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": path}]}
    (p,) = critical_paths(rep)
    assert p["delay_ns"] == pytest.approx(4.1) and p["fmax_mhz"] == pytest.approx(243.9, 0.01)
    assert p["logic_ns"] == pytest.approx(1.5) and p["routing_ns"] == pytest.approx(2.6)
    assert (p["logic_cells"], p["carry_cells"]) == (1, 2)
    # bus bits -> the bus, packing suffixes cut, internal nets dropped, each name once
    assert p["through"] == ["core.a", "core.b"] and p["start"] == "core.a"
    assert p["end"] == "core.z"
    assert format_path(p).startswith("4.1 ns (logic 1.5, routing 2.6; 1 logic cells, 2 carry)")


def test_critical_path_long_lists_are_elided():
    path = [_seg("clk-to-q", 0.5)]
    for i in range(30):
        path += [_seg("routing", 0.1, net=f"n{i}"), _seg("logic", 0.1, cell=f"l{i}")]
    (p,) = critical_paths({"critical_paths": [{"from": "a", "to": "b", "path": path}]},
                          limit_nets=6)
    assert p["through"] == ["n0", "n1", "n2", "...", "n27", "n28", "n29"]
    assert critical_paths({}) == []
