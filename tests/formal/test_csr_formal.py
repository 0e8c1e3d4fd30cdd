"""Formal proof (SymbiYosys, k-induction) of the CSR bank's write-1-to-clear rule.

The CsrBank of the default build with every input free (AXI4-Lite master, hardware set
pulses, reset).  For every bit of every ``w1c`` register (IRQ_STATUS), from one cycle to the
next:

* a set pulse sets the bit, also in the cycle a write of 1 clears it (set wins: a ``done``
  arriving while software clears IRQ_STATUS is not lost);
* a write of 1 (its byte strobe on) without a set clears the bit;
* otherwise the bit keeps its value;
* ``irq`` is the registered OR of status AND enable.

``bench/mutate.py`` plants the clear-wins bug (mutant W1C-CLEAR-WINS): this proof must fail
on it.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Cat, Module, Signal
from amaranth.lib import wiring
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.top.csr_bank import CsrBank

from tests.formal.sby import run_sby


class FormalCsr(wiring.Component):
    def __init__(self, dut: CsrBank):
        self.dut = dut
        super().__init__(dut.signature)

    def elaborate(self, platform):
        m = Module()
        dut = self.dut
        m.submodules.dut = dut
        wiring.connect(m, wiring.flipped(self), dut)
        a = dut.s_axil
        started = Signal()
        m.d.sync += started.eq(1)
        taken = a.awvalid & a.wvalid & a.awready
        irq_terms = []
        for r in (r for r in dut.regs if r.kind == "w1c"):
            status = getattr(dut, r.port).as_value()
            sets = getattr(dut, f"{r.port}_set").as_value()
            enable = getattr(dut, r.port.replace("status", "enable")).as_value()
            mask = Cat(*(a.wstrb[i].replicate(8) for i in range(4)))
            clears = Signal(32, name=f"{r.port}_clears")
            m.d.comb += clears.eq(Cat(taken & (a.awaddr[2:] == r.offset >> 2)).replicate(32)
                                  & a.wdata & mask)
            q_status, q_set, q_clr = Signal(32), Signal(32), Signal(32)
            m.d.sync += [q_status.eq(status), q_set.eq(sets), q_clr.eq(clears)]
            for f in r.fields:
                for b in range(f.lsb, f.lsb + f.width):
                    m.d.comb += Assert(~started | ~q_set[b] | status[b],
                                       f"{r.name}[{b}]: a set was lost")
                    m.d.comb += Assert(~started | q_set[b] | ~q_clr[b] | ~status[b],
                                       f"{r.name}[{b}]: a write of 1 did not clear")
                    m.d.comb += Assert(~started | q_set[b] | q_clr[b]
                                       | (status[b] == q_status[b]),
                                       f"{r.name}[{b}]: changed by itself")
            irq_terms.append((status & enable).any())
        q_irq = Signal()
        m.d.sync += q_irq.eq(Cat(*irq_terms).any())
        m.d.comb += Assert(~started | (dut.irq == q_irq), "irq is not OR(status & enable)")
        return m


def _prove(formal_env, dut, name, *, mode, depth):
    return run_sby(formal_env, FormalCsr(dut), name, mode=mode, depth=depth)


def test_w1c_rule_proof(formal_env):
    ok, out = _prove(formal_env, CsrBank(AcceleratorConfig()), "csr_w1c", mode="prove",
                     depth=3)
    assert ok, "expected the proof to PASS, got:\n" + "\n".join(out.splitlines()[-30:])
