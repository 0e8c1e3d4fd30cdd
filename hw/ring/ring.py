"""A whole unidirectional ring of routers (docs/ring.md)."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .ring_router import RingRouter, accept_ring_params

__all__ = ["Ring"]


class Ring(wiring.Component):
    """``nodes`` :class:`RingRouter` s joined in a unidirectional ring, node ``i`` -> ``i + 1``.

    Guarantees (docs/ring.md, section 3): no flit is lost or duplicated; flits of one
    (source, destination) pair are delivered in injection order, unicast and multicast alike;
    no deadlock under any traffic and any ``eject`` stall pattern, as long as every ``eject``
    port eventually accepts; no node's injection is starved (round-robin: at most one flit of
    the same output channel leaves a router before its waiting injection).

    Latency: an unblocked flit from node ``s`` to ``d`` is on ``eject[d]`` ``2 * hops`` cycles
    after the cycle in which ``inject[s]`` accepted it, ``hops = (d - s) mod nodes`` (``nodes`` when
    ``d == s``).  Throughput: one flit per cycle per link with ``fifo_depth >= 4``.

    Parameters
    ----------
    nodes : int
        Routers on the ring (1..16).  The accelerator top uses one memory hub plus ``tiles``
        compute tiles.
    payload_width : int
        Payload bits of a flit (1..512; the config's ``ring_payload_width``).
    fifo_depth : int
        Entries per input FIFO and virtual channel (1..64; the config's ``ring_fifo_depth``).
    inject_yield : int
        Forwarded ACTS flits a waiting injection lets go first in a row (0..63; the config's
        ``ring_inject_yield``; 0: plain round-robin), :class:`RingRouter`.

    Members
    -------
    inject : In(stream.Signature(flit_layout)).array(nodes)
        Local injection port of each node.
    eject : Out(stream.Signature(flit_layout)).array(nodes)
        Local delivery port of each node.
    discard : Out(nodes)
        Bit ``i`` pulses when node ``i`` dropped an injected flit that addressed no node.

    Raises
    ------
    TypeError, ValueError
        For a parameter of the wrong type or out of range (messages name the parameter).
    """

    def __init__(self, *, nodes: int, payload_width: int = 64, fifo_depth: int = 4,
                 inject_yield: int = 0):
        # the router parameters are checked now; the routers themselves are built on demand
        accept_ring_params(self, nodes=nodes, payload_width=payload_width,
                           fifo_depth=fifo_depth, inject_yield=inject_yield)
        self._routers = None
        super().__init__({
            "inject": In(stream.Signature(self.layout)).array(nodes),
            "eject": Out(stream.Signature(self.layout)).array(nodes),
            "discard": Out(nodes),
        })

    @property
    def routers(self) -> list[RingRouter]:
        """The routers, node 0 first (built on first use)."""
        if self._routers is None:
            self._routers = [RingRouter(node=i, nodes=self.nodes,
                                        payload_width=self.payload_width,
                                        fifo_depth=self.fifo_depth,
                                        inject_yield=self.inject_yield)
                              for i in range(self.nodes)]
        return self._routers

    @classmethod
    def from_config(cls, config, *, nodes: int | None = None) -> Ring:
        """The ring of an :class:`~hw.config.AcceleratorConfig` (``nodes`` defaults to
        ``config.tiles``)."""
        return cls(nodes=config.tiles if nodes is None else nodes,
                   payload_width=config.ring_payload_width, fifo_depth=config.ring_fifo_depth,
                   inject_yield=config.ring_inject_yield)

    def min_latency(self, src: int, dst: int) -> int:
        """Cycles from ``inject[src]`` accepting a flit to it on ``eject[dst]``, unblocked."""
        hops = (dst - src) % self.nodes or self.nodes
        return RingRouter.latency * hops

    def elaborate(self, platform):
        m = Module()
        for i, r in enumerate(self.routers):
            m.submodules[f"router{i}"] = r
            wiring.connect(m, wiring.flipped(self.inject[i]), r.inject)
            wiring.connect(m, r.eject, wiring.flipped(self.eject[i]))
            m.d.comb += self.discard[i].eq(r.discard)
        for i, r in enumerate(self.routers):
            wiring.connect(m, r.ring_out, self.routers[(i + 1) % self.nodes].ring_in)
        return m
