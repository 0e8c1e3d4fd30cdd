"""Board clocks: an ECP5 PLL (EHXPLLL) that makes the core clock from the board's oscillator.

The ULX3S has a 25 MHz oscillator; the accelerator is built to run faster, so the board top
multiplies it with a PLL and places and routes the design against the PLL's output frequency
(nextpnr-ecp5 derives the output constraint from the oscillator's, and the platform also gets
an explicit constraint on the core clock net).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockSignal, Const, Elaboratable, Instance, Module, ResetSignal, Signal
from amaranth.lib.cdc import AsyncFFSynchronizer

__all__ = ["PllParams", "ecp5_pll_params", "Ecp5Pll", "ecp5_global_buffer"]


def ecp5_global_buffer(m: Module, signal, name: str):
    """``signal`` through an ECP5 DCCA onto a primary (global) net: a register's output that
    drives thousands of reset pins reaches them over the clock tree instead of general routing
    (nextpnr routes a DCCA's fabric loads, LSR and CE included, from the global wires).  Returns
    the buffered signal; ``name`` names the DCCA (``<name>_dcca``) and its output
    (``<name>_global``)."""
    out = Signal(name=f"{name}_global")
    m.submodules[f"{name}_dcca"] = Instance("DCCA", i_CLKI=signal, i_CE=Const(1, 1),
                                            o_CLKO=out)
    return out

# ECP5 sysCLOCK PLL limits (Lattice TN1263 / DS1044): phase detector, VCO and output ranges
_PFD = (3.125, 400.0)
_VCO = (400.0, 800.0)
_OUT = (3.125, 400.0)


@dataclass(frozen=True)
class PllParams:
    """Divider settings: ``f_out = f_in * clkfb_div / clki_div``, ``f_vco = f_out * clkop_div``."""

    clki_div: int
    clkfb_div: int
    clkop_div: int
    f_in_mhz: float
    f_out_mhz: float
    f_vco_mhz: float


def ecp5_pll_params(f_in_mhz: float, f_out_mhz: float) -> PllParams:
    """The divider settings whose output is closest to ``f_out_mhz`` (ties: the higher VCO).

    Raises ValueError (naming the parameter and the range) for an output the PLL cannot make.
    """
    if not _OUT[0] <= f_out_mhz <= _OUT[1]:
        raise ValueError(f"clock_mhz must be between {_OUT[0]} and {_OUT[1]} MHz for the ECP5 "
                         f"PLL, not {f_out_mhz!r}")
    best = None
    for ref in range(1, 129):
        pfd = f_in_mhz / ref
        if not _PFD[0] <= pfd <= _PFD[1]:
            continue
        for fb in range(1, 81):
            out = pfd * fb
            if not _OUT[0] <= out <= _OUT[1]:
                continue
            for od in range(1, 129):
                vco = out * od
                if not _VCO[0] <= vco <= _VCO[1]:
                    continue
                key = (abs(out - f_out_mhz), -vco)
                if best is None or key < best[0]:
                    best = (key, PllParams(ref, fb, od, f_in_mhz, round(out, 4), round(vco, 4)))
    if best is None:
        raise ValueError(f"clock_mhz {f_out_mhz!r} cannot be made from {f_in_mhz} MHz")
    return best[1]


class Ecp5Pll(Elaboratable):
    """Drives the clock of domain ``sync`` at ``params.f_out_mhz`` from the oscillator clock
    ``clk_in``, and its reset: held (and synchronously released) until the PLL locks, or while
    ``rst_in`` (asynchronous, a button) is high.  The reset is the last flip-flop of a
    two-stage synchronizer, through a global buffer (`ecp5_global_buffer`) when
    ``global_reset``.  The parent defines the domain (``ClockDomain("sync")``)."""

    def __init__(self, params: PllParams, clk_in, rst_in=None, *, global_reset: bool = False):
        self.params = params
        self.clk_in = clk_in
        self.rst_in = rst_in
        self.global_reset = global_reset
        self.locked = Signal()

    def elaborate(self, platform):
        m = Module()
        p = self.params
        clk = Signal(name="pll_clkop")   # the core clock net (constrained below)
        m.d.comb += ClockSignal("sync").eq(clk)
        m.submodules.pll = Instance(
            "EHXPLLL",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p.clki_div, p_CLKFB_DIV=p.clkfb_div, p_CLKOP_DIV=p.clkop_div,
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_CPHASE=p.clkop_div - 1, p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP",
            a_FREQUENCY_PIN_CLKI=str(p.f_in_mhz), a_FREQUENCY_PIN_CLKOP=str(p.f_out_mhz),
            i_RST=0, i_STDBY=0, i_CLKI=self.clk_in, o_CLKOP=clk, i_CLKFB=clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=self.locked)
        rst = ~self.locked if self.rst_in is None else (~self.locked | self.rst_in)
        rst_sync = Signal(name="core_reset", init=1)
        m.submodules.rst_sync = AsyncFFSynchronizer(rst, rst_sync, o_domain="sync")
        if self.global_reset:
            rst_sync = ecp5_global_buffer(m, rst_sync, "core_reset")
        m.d.comb += ResetSignal("sync").eq(rst_sync)
        if platform is not None:
            platform.add_clock_constraint(clk, p.f_out_mhz * 1e6)
        return m
