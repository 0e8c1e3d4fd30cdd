"""Formal proofs (SymbiYosys, k-induction: unbounded) of the DMA engines' bus rules.

The DMA reader and writer run with every input free: commands, the AXI slave's answers (any
ready, any response, any ID, early or missing ``last``), the consumer/producer, ``abort`` and
the reset, at any time.  Assumed: the memory window (``window_base``/``window_limit``, i.e.
``MEM_BASE``/``MEM_LIMIT``) does not change while the engine runs (it may change in a reset).
Proved for every reachable state:

* every AR/AW burst lies inside ``[window_base, window_limit)`` and never crosses a 4 KiB
  boundary (AXI4), its address aligned to the beat;
* AXI4 handshakes on the master ports: once ``AxVALID`` (``WVALID``) is high it stays high
  with the same payload until ``AxREADY`` (``WREADY``), except in the cycle the watchdog gives
  up on a dead slave (documented in docs/dma.md: the interconnect must then be reset) and in
  a reset.

Supporting invariants (proved too, they make the induction go through): the cursor of the
next burst stays inside the window while a command runs; in CHECK the cursor is the command.
Mutants (a window check one beat too lax, a burst that ignores the 4 KiB boundary, an AR given
up on abort) must give a real counterexample from reset (BMC), so the properties are not
vacuous.  Files in ``build/formal/dma_*``.
"""

from __future__ import annotations

import pytest
from amaranth.hdl import Assert, Assume, Module, Signal
from amaranth.lib import wiring
from sparsemac.hw.hub.dma_engine import _State
from sparsemac.hw.hub.dma_reader import DmaReader
from sparsemac.hw.hub.dma_writer import DmaWriter

from tests.formal.sby import run_sby

PARAMS = dict(data_width=32, addr_width=16, id_width=2, max_burst=256, max_outstanding=2,
              watchdog_cycles=4, tag_width=1)


def _observed(cls):
    """``cls`` that keeps handles on its internal registers for the harness."""

    class Observed(cls):
        def elaborate(self, platform):
            self.cursors, self.channels = {}, {}
            return super().elaborate(platform)

        def _command_registers(self):
            self.regs = super()._command_registers()
            return self.regs

        def _cursor(self, name):
            self.cursors[name] = super()._cursor(name)
            return self.cursors[name]

        def _address_channel(self, m, prefix, cur_id):
            self.channels[prefix] = super()._address_channel(m, prefix, cur_id)
            return self.channels[prefix]

        def _watchdog(self, m, wd, stalled):
            self.timeout = super()._watchdog(m, wd, stalled)
            return self.timeout

    Observed.__name__ = cls.__name__
    return Observed


class FormalDma(wiring.Component):
    """The engine with its ports free and the bus rules asserted."""

    def __init__(self, dut, prefix: str):
        self.dut, self.prefix = dut, prefix
        super().__init__(dut.signature)

    def elaborate(self, platform):
        m = Module()
        dut, p = self.dut, self.prefix
        m.submodules.dut = dut.elaborate(platform)     # now: its internals exist
        wiring.connect(m, wiring.flipped(self), dut)
        beat = dut.beat_bytes
        axi = dut.m_axi
        base, limit = dut.window_base, dut.window_limit
        # assumption: the window is constant (except across a reset)
        started = Signal()
        q_base, q_limit = Signal.like(base), Signal.like(limit)
        m.d.sync += [started.eq(1), q_base.eq(base), q_limit.eq(limit)]
        m.d.comb += Assume(~started | ((base == q_base) & (limit == q_limit)))

        valid, addr, len_ = (getattr(axi, f"{p}{n}") for n in ("valid", "addr", "len"))
        ready = getattr(axi, f"{p}ready")
        wide = dut.addr_width + 2
        burst_end = Signal(wide)
        m.d.comb += burst_end.eq(addr + ((len_ + 1) * beat))
        # (1) every burst inside the window, no 4 KiB crossing, aligned
        m.d.comb += Assert(~valid | ((addr >= base) & (burst_end <= limit)),
                           f"{p} burst outside the window")
        m.d.comb += Assert(~valid | ((addr & 0xFFF) + (len_ + 1) * beat <= 4096),
                           f"{p} burst crosses 4 KiB")
        m.d.comb += Assert(~valid | (addr[:(beat - 1).bit_length()] == 0), f"{p} unaligned")
        # (2) handshake: valid and payload held until ready (not across a watchdog timeout)
        q_pend, q_addr, q_len = Signal(), Signal.like(addr), Signal.like(len_)
        q_to = Signal()
        m.d.sync += [q_pend.eq(valid & ~ready), q_addr.eq(addr), q_len.eq(len_),
                     q_to.eq(dut.timeout)]
        m.d.comb += Assert(~q_pend | q_to | (valid & (addr == q_addr) & (len_ == q_len)),
                           f"{p}valid dropped or payload changed before {p}ready")
        if p == "aw":
            wq_pend, wq = Signal(), Signal(len(axi.wdata) + len(axi.wstrb) + 1)
            wbus = Signal.like(wq)
            m.d.comb += wbus.eq(axi.wdata | (axi.wstrb << len(axi.wdata))
                                | (axi.wlast << (len(axi.wdata) + len(axi.wstrb))))
            m.d.sync += [wq_pend.eq(axi.wvalid & ~axi.wready), wq.eq(wbus)]
            m.d.comb += Assert(~wq_pend | q_to | (axi.wvalid & (wbus == wq)),
                               "wvalid dropped or W payload changed before wready")
        # supporting invariants on the engine's cursor of the next burst
        c_addr, c_left = dut.cursors[p]
        regs = dut.regs
        c_end = Signal(wide)
        m.d.comb += c_end.eq(c_addr + (c_left * beat))
        running = regs.state == _State.RUN
        m.d.comb += Assert(~running | ((c_addr >= base) & (c_end <= limit)
                                       & (c_addr[:(beat - 1).bit_length()] == 0)),
                           f"{p} cursor outside the window while running")
        m.d.comb += Assert((regs.state != _State.CHECK)
                           | ((c_addr == regs.start) & (c_left == regs.length >> (beat - 1)
                                                        .bit_length())),
                           f"{p} cursor is not the command in CHECK")
        return m




def prove(formal_env, top, name: str, *, depth: int, mode: str = "prove") -> tuple[bool, str]:
    return run_sby(formal_env, top, name, depth=depth, mode=mode)


@pytest.mark.parametrize("engine,prefix,kw", [(DmaReader, "ar", {}), (DmaWriter, "aw", {}),
                                               (DmaWriter, "aw", {"posted": True})],
                         ids=["reader", "writer", "writer_posted"])
def test_dma_bus_rules_proof(formal_env, engine, prefix, kw):
    """Unbounded (k-induction): bursts inside the window, never across 4 KiB, aligned, and
    AXI valid/payload held until ready, for the reader, the writer and the posted writer
    (the accelerator's: commands overlap earlier responses)."""
    top = FormalDma(_observed(engine)(**PARAMS, **kw), prefix)
    ok, out = prove(formal_env, top, f"dma_{engine.__name__}{'_posted' if kw else ''}",
                    depth=4)
    assert ok, "expected the proof to PASS, got:\n" + "\n".join(out.splitlines()[-40:])


def _mutant(cls, kind: str):
    """``cls`` with one planted bug of ``kind``."""
    base = _observed(cls)

    class Mutant(base):
        def _command_fsm(self, m, regs, **kw):
            if kind != "window":
                return super()._command_fsm(m, regs, **kw)
            limit = self.window_limit          # the check lets a command end a beat past it
            self.window_limit = limit + self.beat_bytes
            try:
                return super()._command_fsm(m, regs, **kw)
            finally:
                self.window_limit = limit

        def _burst_beats(self, m, cursor):
            if kind != "4k":
                return super()._burst_beats(m, cursor)
            from amaranth.hdl import Mux, Signal
            from sparsemac.hw.mem.axi import BurstStep

            addr, left = cursor                # forgets the 4 KiB boundary
            beats = Signal(range(self.max_burst + 1))
            m.d.comb += beats.eq(Mux(left < self.max_burst, left, self.max_burst))
            return BurstStep(beats, addr + (beats << self._beat_shift), left - beats,
                             (beats - 1)[:8])

        def _issue_burst(self, m, channel, ready, load, cursor, beats, **kw):
            super()._issue_burst(m, channel, ready, load, cursor, beats, **kw)
            if kind == "handshake":            # gives up a pending address after a stall
                valid = channel[0]
                with m.If(valid & ~ready & self.abort):
                    m.d.sync += valid.eq(0)

    Mutant.__name__ = f"{cls.__name__}_{kind}"
    return Mutant


@pytest.mark.parametrize("kind", ["window", "4k", "handshake"])
def test_dma_mutants_fail(formal_env, kind):
    top = FormalDma(_mutant(DmaReader, kind)(**PARAMS), "ar")
    ok, out = prove(formal_env, top, f"dma_mutant_{kind}", depth=12, mode="bmc")
    assert not ok and "DONE (FAIL" in out, (f"no counterexample for the {kind} mutant within "
                                             f"12 cycles:\n" + out[-2000:])
