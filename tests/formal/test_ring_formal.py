"""Formal proofs (SymbiYosys, k-induction with boolector) of the ring routers' flow control.

The design is a whole small Ring whose inject/eject ports and reset are left free (any traffic,
any stall, resets at any time), with Amaranth ``Assert`` properties added around it:

* per link and virtual channel, credits are conserved:
  ``credits(sender) + flit on the link + level(receiver FIFO) + credit on its way back == depth``
  (so no credit is created or lost and no FIFO overflows or underflows);
* a FIFO is never written when full, never read when empty, and a flit is only sent with a
  credit in hand;
* no flit is created or dropped: a ghost count of accepted injections minus flits that left the
  ring equals the number of flits held in FIFOs and link registers;
* (bounded model check, as it depends on FIFO contents) at the dateline node no channel-1 flit
  still needs forwarding: the VC invariant behind the deadlock-freedom argument (docs/ring.md).

The design (RTLIL) and the ``.sby`` file written by the test are kept in ``build/formal/``.
A mutant with one credit too many must fail the proof, so the properties are not vacuous.
"""

from __future__ import annotations

import pytest
from amaranth.hdl import Assert, Module, Signal
from amaranth.lib import wiring
from sparsemac.hw.ring import Ring, RingRouter

from tests.formal.sby import run_sby


class FormalRing(wiring.Component):
    """A Ring with its ports free and the flow-control properties asserted."""

    def __init__(self, ring: Ring, *, dateline: bool = False):
        self.ring = ring
        self.dateline = dateline
        super().__init__(ring.signature)

    def elaborate(self, platform):
        m = Module()
        ring = self.ring
        m.submodules.ring = ring
        n, depth = ring.nodes, ring.fifo_depth
        for i in range(n):
            wiring.connect(m, wiring.flipped(self.inject[i]), ring.inject[i])
            wiring.connect(m, ring.eject[i], wiring.flipped(self.eject[i]))
        m.d.comb += self.discard.eq(ring.discard)
        rs = ring.routers
        for i, r in enumerate(rs):
            nxt = rs[(i + 1) % n]
            for v in range(2):
                on_link = r.ring_out.valid & (r.ring_out.vc == v)
                m.d.comb += Assert(
                    r.credits[v] + on_link + nxt.levels[v] + nxt.ring_in.credit[v] == depth,
                    f"credits conserved on link {i}->{(i + 1) % n} vc {v}")
                m.d.comb += Assert(~r.sent[v] | (r.credits[v] != 0),
                                   f"router {i} sends on vc {v} without a credit")
                fifo = r.fifos[v]
                m.d.comb += Assert(~fifo.w_en | fifo.w_rdy, f"router {i} fifo {v} overflow")
                m.d.comb += Assert(~fifo.r_en | fifo.r_rdy, f"router {i} fifo {v} underflow")
        if self.dateline:  # depends on FIFO contents: bounded check (not inductive alone)
            last = rs[-1]
            m.d.comb += Assert(~last.fifos[1].r_rdy | (last.rest[1] == 0),
                               "a channel-1 flit would cross the dateline again")
            return m
        # ghost flit count
        cap = n * (2 * depth + 1)
        ghost = Signal(range(4 * cap + 1))
        accepted = sum((ri.inject.valid & ri.inject.ready & ~ri.discard) for ri in rs)
        left = sum(ri.consumed[v] for ri in rs for v in range(2))
        m.d.sync += ghost.eq(ghost + accepted - left)
        held = sum(ri.levels[v] for ri in rs for v in range(2)) + sum(ri.ring_out.valid
                                                                       for ri in rs)
        m.d.comb += Assert(ghost == held, "flit created or dropped")
        return m




def prove(formal_env, ring: Ring, name: str, depth: int = 6, mode: str = "prove",
          dateline: bool = False) -> tuple[bool, str]:
    return run_sby(formal_env, FormalRing(ring, dateline=dateline), name, depth=depth,
                   mode=mode)


@pytest.mark.parametrize("nodes,fifo_depth", [(1, 2), (2, 2), (3, 1)])
def test_ring_flow_control_proof(formal_env, nodes, fifo_depth):
    ok, out = prove(formal_env, Ring(nodes=nodes, payload_width=1, fifo_depth=fifo_depth),
                    f"ring_n{nodes}_d{fifo_depth}")
    assert ok, "expected the proof to PASS, got:\n" + "\n".join(out.splitlines()[-30:])


@pytest.mark.parametrize("nodes,fifo_depth,depth", [(2, 2, 14), (3, 1, 14)])
def test_dateline_invariant_bounded(formal_env, nodes, fifo_depth, depth):
    """BMC: within ``depth`` cycles from reset no channel-1 flit at the last node still needs
    forwarding (the invariant the deadlock argument rests on; also checked by simulation)."""
    ok, out = prove(formal_env, Ring(nodes=nodes, payload_width=1, fifo_depth=fifo_depth),
                    f"dateline_n{nodes}_d{fifo_depth}", depth=depth, mode="bmc", dateline=True)
    assert ok, "expected the bounded check to PASS, got:\n" + "\n".join(out.splitlines()[-30:])


class _ExtraCreditRouter(RingRouter):
    """Mutant: starts with one credit more than the next FIFO has entries."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.credits = [Signal(range(self.fifo_depth + 2), init=self.fifo_depth + 1,
                               name=f"credits{v}") for v in range(2)]


def test_mutant_with_extra_credit_fails(formal_env):
    ring = Ring(nodes=2, payload_width=1, fifo_depth=2)
    ring._routers = [_ExtraCreditRouter(node=i, nodes=2, payload_width=1, fifo_depth=2)
                     for i in range(2)]
    ok, out = prove(formal_env, ring, "ring_mutant_extra_credit")
    assert not ok and "FAIL" in out, "expected the mutant's proof to FAIL, got:\n" + out[-2000:]
