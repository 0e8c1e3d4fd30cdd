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
* (a separate proof, also k-induction, unbounded) the dateline VC invariant behind the
  deadlock-freedom argument (docs/ring.md): every flit that crosses the dateline (leaves the
  last node) travels on channel 1, and at the last node no channel-1 flit still needs
  forwarding, so channel 1 never crosses the dateline again.  It depends on FIFO contents, so
  the FIFOs are observed entry by entry (``_ObservedFIFO``: the same ``SyncFIFO`` with extra
  read ports) and supporting invariants make it inductive: each channel-1 FIFO's level agrees
  with its pointers, every held channel-1 flit at node ``j`` has no destination below ``j``,
  and neither has a channel-1 flit on the link into node ``j``.  With them the proof is
  1-inductive; without them induction fails at any depth (a FIFO entry not yet at the head
  may hold anything).

The design (RTLIL) and the ``.sby`` file written by the test are kept in ``build/formal/``.
A mutant with one credit too many must fail the flow-control proof; a router that forgets to
clear its own bit when it forwards, and one that sends dateline traffic on channel 0
(bench/mutate.py's DATELINE-VC), must give a counterexample to the dateline properties alone
(BMC from reset), so the properties are not vacuous.
"""

from __future__ import annotations

import pytest
from amaranth.hdl import Assert, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from sparsemac.hw.ring import Ring, RingRouter
from sparsemac.hw.ring import ring_router as ring_router_module

from tests.formal.sby import mutated, run_sby


class FormalRing(wiring.Component):
    """A Ring with its ports free and the flow-control properties asserted (with ``dateline``
    instead: the dateline properties, and with ``support`` their supporting invariants; the
    routers must then have `_ObservedFIFO` s, see `_observed_ring`)."""

    def __init__(self, ring: Ring, *, dateline: bool = False, support: bool = True):
        self.ring = ring
        self.dateline, self.support = dateline, support
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
        if self.dateline:  # a proof of its own (routers with observed FIFOs)
            self._dateline(m, rs, depth, support=self.support)
            return m
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

    @staticmethod
    def _dateline(m, rs, depth, *, support):
        """The dateline VC invariant and (``support``) what makes it inductive (routers with
        observed FIFOs)."""
        n = len(rs)
        for j, r in enumerate(rs if support else ()):
            fifo = r.fifos[1]
            prod, cons, level = fifo.produce, fifo.consume, fifo.level
            # the FIFO's level agrees with its pointers (entries [consume, produce) are held)
            used = Mux(prod >= cons, prod - cons, prod + depth - cons)
            m.d.comb += Assert((prod < depth) & (cons < depth)
                               & ((level == used) | ((used == 0) & (level == depth))),
                               f"router {j} fifo 1: level and pointers disagree")
            if j > 0:
                # every held channel-1 flit at node j has no destination below j
                for i, entry in enumerate(fifo.entries):
                    held = Mux(i >= cons, i - cons, i + depth - cons) < level
                    mask = r.layout(entry).mask
                    m.d.comb += Assert(~held | (mask[:j] == 0),
                                       f"router {j} fifo 1 entry {i}: destination below {j}")
            if j + 1 < n:
                # neither has a channel-1 flit on the link into node j + 1
                out = r.ring_out
                m.d.comb += Assert(~(out.valid & (out.vc == 1)) | (out.flit.mask[:j + 1] == 0),
                                   f"link {j}->{j + 1}: channel-1 flit with a destination "
                                   f"below {j + 1}")
        last = rs[-1]
        m.d.comb += Assert(~last.ring_out.valid | (last.ring_out.vc == 1),
                           "a flit crosses the dateline on channel 0")
        m.d.comb += Assert(~last.fifos[1].r_rdy | (last.rest[1] == 0),
                           "a channel-1 flit would cross the dateline again")


class _ObservedFIFO(SyncFIFO):
    """``SyncFIFO`` that also shows its pointers and every entry (extra combinational read
    ports on its storage; the FIFO itself is unchanged)."""

    def __init__(self, *, width, depth):
        super().__init__(width=width, depth=depth)
        self.produce = Signal(range(depth), name="obs_produce")
        self.consume = Signal(range(depth), name="obs_consume")
        self.entries = [Signal(width, name=f"obs_entry{i}") for i in range(depth)]

    def elaborate(self, platform):
        m = super().elaborate(platform)
        storage = m.submodules.storage
        (w_port,), (r_port,) = storage.write_ports, storage.read_ports
        m.d.comb += [self.produce.eq(w_port.addr), self.consume.eq(r_port.addr)]
        for i, entry in enumerate(self.entries):
            port = storage.read_port(domain="comb")
            m.d.comb += [port.addr.eq(i), entry.eq(port.data)]
        return m


def _observed_router(cls=RingRouter):
    """``cls`` whose input FIFOs are `_ObservedFIFO` s."""

    class Observed(cls):
        def __init__(self, **kw):
            super().__init__(**kw)
            for fifo in self.fifos:                # replaced before use: never elaborated
                fifo._MustUse__silence = True
            self.fifos = [_ObservedFIFO(width=self.layout.size, depth=self.fifo_depth)
                          for _ in self.fifos]

    Observed.__name__ = cls.__name__
    return Observed


def _observed_ring(nodes, fifo_depth, router=RingRouter) -> Ring:
    ring = Ring(nodes=nodes, payload_width=1, fifo_depth=fifo_depth)
    ring._routers = [_observed_router(router)(node=i, nodes=nodes, payload_width=1,
                                              fifo_depth=fifo_depth) for i in range(nodes)]
    return ring


#: k-induction depth of the dateline proof (with its supporting invariants it is 1-inductive;
#: 3 costs no more)
DATELINE_DEPTH = 3
#: BMC depth of the dateline mutants (their counterexamples are at most 5 cycles long)
DATELINE_MUTANT_DEPTH = 10


def prove(formal_env, ring: Ring, name: str, depth: int = 6, mode: str = "prove",
          dateline: bool = False, support: bool = True) -> tuple[bool, str]:
    return run_sby(formal_env, FormalRing(ring, dateline=dateline, support=support), name,
                   depth=depth, mode=mode)


@pytest.mark.parametrize("nodes,fifo_depth", [(1, 2), (2, 2), (3, 1)])
def test_ring_flow_control_proof(formal_env, nodes, fifo_depth):
    ok, out = prove(formal_env, Ring(nodes=nodes, payload_width=1, fifo_depth=fifo_depth),
                    f"ring_n{nodes}_d{fifo_depth}")
    assert ok, "expected the proof to PASS, got:\n" + "\n".join(out.splitlines()[-30:])


@pytest.mark.parametrize("nodes,fifo_depth", [(2, 2), (3, 1)])
def test_ring_flow_control_proof_streams_first(formal_env, nodes, fifo_depth):
    """The same proof with forwarded ACTS flits first (``inject_yield`` 2; the free traffic's
    flit types drive the yield counter to its bound and back)."""
    ok, out = prove(formal_env, Ring(nodes=nodes, payload_width=1, fifo_depth=fifo_depth,
                                     inject_yield=2),
                    f"ring_yield_n{nodes}_d{fifo_depth}")
    assert ok, "expected the proof to PASS, got:\n" + "\n".join(out.splitlines()[-30:])


@pytest.mark.parametrize("nodes,fifo_depth", [(1, 2), (2, 2), (3, 1), (3, 2)])
def test_dateline_invariant_proof(formal_env, nodes, fifo_depth):
    """k-induction (unbounded): in every reachable state no channel-1 flit at the last node
    still needs forwarding (the invariant the deadlock argument rests on)."""
    ok, out = prove(formal_env, _observed_ring(nodes, fifo_depth),
                    f"dateline_n{nodes}_d{fifo_depth}", depth=DATELINE_DEPTH, dateline=True)
    assert ok, "expected the proof to PASS, got:\n" + "\n".join(out.splitlines()[-30:])


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


DATELINE_MUTANTS = {
    # forwards a flit without clearing its own bit: a multicast flit reaches the last node on
    # channel 1 still addressed beyond it
    "own_bit": ("self.ring_out.flit.mask.eq(rest[v]),",
                "self.ring_out.flit.mask.eq(heads[v].mask),"),
    # bench/mutate.py DATELINE-VC: traffic leaving the last node stays on channel 0
    "vc": ("vc_low = 1 if self.is_dateline else 0", "vc_low = 0"),
}


@pytest.mark.parametrize("kind", DATELINE_MUTANTS)
def test_dateline_mutants_fail(formal_env, kind):
    """BMC from reset of the dateline properties alone (no supporting invariants), so the
    counterexample is against them."""
    router = mutated(ring_router_module, *DATELINE_MUTANTS[kind]).RingRouter
    ok, out = prove(formal_env, _observed_ring(2, 2, router), f"dateline_mutant_{kind}",
                    depth=DATELINE_MUTANT_DEPTH, mode="bmc", dateline=True, support=False)
    assert not ok and "DONE (FAIL" in out, (
        f"no counterexample for the {kind} mutant within {DATELINE_MUTANT_DEPTH} cycles:\n"
        + out[-2000:])
