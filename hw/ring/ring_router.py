"""One router of the unidirectional ring (docs/ring.md)."""

from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .layouts import MAX_NODES, VIRTUAL_CHANNELS, FlitType, flit_layout, link_signature

__all__ = ["RingRouter", "MAX_INJECT_YIELD"]

#: Largest ``inject_yield``: the most forwarded ACTS flits an injection lets go first in a row.
MAX_INJECT_YIELD = 63

# requesters of the ring output link, in round-robin order
_FWD0, _FWD1, _INJ = 0, 1, 2


def _check_int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value!r}")


def accept_ring_params(component, *, nodes, payload_width, fifo_depth, inject_yield=0,
                       node=None) -> None:
    """Check the ring parameters and set them, and the flit ``layout``, on ``component``.

    The one owner of the parameter rules of :class:`RingRouter` and :class:`~.ring.Ring`
    (``node`` is a router's own).  A rejected component is marked as used, so that it does
    not warn as an unused elaboratable when it is collected.

    Raises
    ------
    TypeError, ValueError
        ``"<name> must be ..., not <value!r>"``.
    """
    try:
        _check_int("nodes", nodes, 1, MAX_NODES)
        if node is not None:
            _check_int("node", node, 0, nodes - 1)
        _check_int("payload_width", payload_width, 1, 512)
        _check_int("fifo_depth", fifo_depth, 1, 64)
        _check_int("inject_yield", inject_yield, 0, MAX_INJECT_YIELD)
    except (TypeError, ValueError):
        component._MustUse__silence = True  # a rejected component is not "unused"
        raise
    component.nodes = nodes
    component.payload_width = payload_width
    component.fifo_depth = fifo_depth
    component.inject_yield = inject_yield
    component.layout = flit_layout(nodes, payload_width)


class RingRouter(wiring.Component):
    """Router of node ``node`` on a unidirectional ring of ``nodes`` nodes.

    Deadlock freedom: dateline with two virtual channels.  A flit travels on virtual channel 0
    until it leaves node ``nodes - 1`` (the dateline), and on channel 1 after that; a flit visits
    each node at most once, so channel 1 never crosses the dateline again and the channel
    dependency graph is acyclic (docs/ring.md, section 2).  Each channel has its own input FIFO
    of ``fifo_depth`` entries and its own credit counter.

    Routing: every flit carries a destination set (``mask``; a unicast flit's set is its
    ``dest``).  The head of an input FIFO is delivered on ``eject`` if its own node is in the
    set, and forwarded (with its own bit cleared) if other nodes remain.  A multicast flit is
    forwarded in the cycle its local copy is taken or later, never before, and its entry is
    freed when it is forwarded, so every flit is in exactly one buffer at any time (no copy
    needs a second buffer).  Injected flits get ``src = node`` and a
    destination set limited to existing nodes; a flit addressing no existing node is accepted and
    dropped with a ``discard`` pulse.  A flit addressed to its own source goes once round the
    ring.

    Latency and throughput: the output link is registered, so a flit that is not blocked spends
    2 cycles per hop (1 in the link register, 1 in the next FIFO); an injected flit first appears
    on ``ring_out`` the cycle after ``inject`` accepts it.  The credit loop is 4 cycles, so
    ``fifo_depth >= 4`` sustains one flit per cycle per channel.

    Arbitration (no starvation): requesters of the output link (forward traffic of channel 0,
    of channel 1, and ``inject``) are first arbitrated round-robin per output channel among
    those sharing its credits (``inject`` shares with channel-0 forwarding, and at the dateline
    node all three share channel 1), then the link alternates between channels that hold a
    credit.  So a valid ``inject`` waits for at most one other flit of its output channel (two
    at the dateline node) and then takes the next credit of that channel.  ``eject`` is shared
    round-robin by the two channel heads and its choice is held until taken (stream rules).

    Parameters
    ----------
    node : int
        This router's node number, ``0 <= node < nodes``.
    nodes : int
        Nodes on the ring (1..16).
    payload_width : int
        Payload bits of a flit (1..512).
    fifo_depth : int
        Entries of each input FIFO per virtual channel (1..64).
    inject_yield : int
        Forwarded ACTS flits a waiting injection lets go first in a row (0..63; 0: plain
        round-robin).

    Members
    -------
    inject : In(stream.Signature(flit_layout))
        Local injection.
    eject : Out(stream.Signature(flit_layout))
        Local delivery; the flit's ``mask`` still contains this node.
    ring_in : In(link_signature)
        Link from the previous node.
    ring_out : Out(link_signature)
        Link to the next node.
    discard : Out(1)
        Pulses when an injected flit addressed no existing node and was dropped.

    Observation signals (not ports; for proofs and testbenches): ``levels[v]`` (FIFO
    occupancy), ``fifos[v]`` (the input FIFOs), ``rest[v]`` (destinations of head ``v`` beyond
    this node), ``credits[v]`` (credits held for the next node's FIFO ``v``), ``sent[v]``,
    ``popped[v]``, ``consumed[v]`` (a popped flit that left the ring here), ``inj_yield``
    (the injection lets a forwarded ACTS flit go first this cycle), ``passed`` (forwards it
    let go first in a row).

    Raises
    ------
    TypeError, ValueError
        For a parameter of the wrong type or out of range.
    """

    def __init__(self, *, node: int, nodes: int, payload_width: int = 64, fifo_depth: int = 4,
                 inject_yield: int = 0):
        accept_ring_params(self, node=node, nodes=nodes, payload_width=payload_width,
                           fifo_depth=fifo_depth, inject_yield=inject_yield)
        self.node = node
        link = link_signature(nodes, payload_width)
        super().__init__({
            "inject": In(stream.Signature(self.layout)),
            "eject": Out(stream.Signature(self.layout)),
            "ring_in": In(link),
            "ring_out": Out(link),
            "discard": Out(1),
        })
        # observation points for formal proofs and testbenches (not ports)
        self.levels = [Signal(range(fifo_depth + 1), name=f"level{v}")
                       for v in range(VIRTUAL_CHANNELS)]
        self.fifos = [SyncFIFO(width=self.layout.size, depth=fifo_depth)
                      for _ in range(VIRTUAL_CHANNELS)]
        self.rest = [Signal(nodes, name=f"rest{v}") for v in range(VIRTUAL_CHANNELS)]
        self.credits = [Signal(range(fifo_depth + 1), init=fifo_depth, name=f"credits{v}")
                        for v in range(VIRTUAL_CHANNELS)]
        self.sent = [Signal(name=f"sent{v}") for v in range(VIRTUAL_CHANNELS)]
        self.popped = [Signal(name=f"popped{v}") for v in range(VIRTUAL_CHANNELS)]
        self.consumed = [Signal(name=f"consumed{v}") for v in range(VIRTUAL_CHANNELS)]
        self.inj_yield = Signal()
        self.passed = Signal(range(inject_yield + 1))

    @property
    def is_dateline(self) -> bool:
        """Traffic leaving this node crosses the dateline (it is the last node)."""
        return self.node == self.nodes - 1

    #: Cycles per hop of an unblocked flit (the router's latency).
    latency = 2

    def elaborate(self, platform):
        m = Module()
        nodes, node = self.nodes, self.node
        all_nodes = (1 << nodes) - 1
        self_bit = 1 << node
        # output channel of channel-0 traffic and injections; channel-1 traffic stays on 1
        vc_low = 1 if self.is_dateline else 0

        # -- input FIFOs, one per virtual channel ---------------------------------------------
        heads, want_eject, want_fwd, rest = [], [], [], []
        sel = Signal()  # channel offered on eject
        done_local = [Signal(name=f"done_local{v}") for v in range(VIRTUAL_CHANNELS)]
        for v, fifo in enumerate(self.fifos):
            m.submodules[f"fifo{v}"] = fifo
            m.d.comb += self.levels[v].eq(fifo.level)
            m.d.comb += [
                fifo.w_en.eq(self.ring_in.valid & (self.ring_in.vc == v)),
                fifo.w_data.eq(self.ring_in.flit.as_value()),
            ]
            head = self.layout(fifo.r_data)
            r = self.rest[v]
            m.d.comb += r.eq(head.mask & ~Const(self_bit, nodes))
            we, wf = Signal(name=f"want_eject{v}"), Signal(name=f"want_fwd{v}")
            m.d.comb += [
                we.eq(fifo.r_rdy & head.mask[node] & ~done_local[v]),
                # forward only once this node's copy is delivered (now or before): the flit
                # is in exactly one buffer at any time
                wf.eq(fifo.r_rdy & (r != 0) & (~head.mask[node] | done_local[v]
                                                | (self.eject.ready & (sel == v)))),
            ]
            heads.append(head)
            rest.append(r)
            want_eject.append(we)
            want_fwd.append(wf)

        # -- injection: stamp source, limit the destination set to existing nodes --------------
        inj = self.inject.payload
        inj_mask = Signal(nodes)
        onehot = (Const(1, 1) << inj.dest)
        m.d.comb += inj_mask.eq(Mux(inj.mcast, inj.mask & all_nodes, onehot[:nodes]))
        want_inj = Signal()
        m.d.comb += want_inj.eq(self.inject.valid & (inj_mask != 0))

        # -- output link arbitration ------------------------------------------------------------
        # Two levels, so that requesters sharing a credit pool are arbitrated among themselves:
        # per output channel a round-robin over the requesters that use it (fwd0 and inject
        # share a channel), then a round-robin over the channels that hold a credit.
        out_vc = [vc_low, 1, vc_low]
        # streams first: the injection stays out while a forward of its output channel holds
        # an ACTS flit, up to inject_yield granted forwards in a row
        if self.inject_yield:
            acts_fwd = Signal()
            m.d.comb += acts_fwd.eq(reduce(operator.or_, [
                want_fwd[v] & (heads[v].type == FlitType.ACTS)
                for v in range(VIRTUAL_CHANNELS) if out_vc[v] == vc_low]))
            m.d.comb += self.inj_yield.eq(want_inj & acts_fwd
                                          & (self.passed != self.inject_yield))
        wants = [want_fwd[0], want_fwd[1], want_inj & ~self.inj_yield]
        grant = [Signal(name=f"grant{i}") for i in range(3)]
        cand = [Signal(name=f"cand{i}") for i in range(3)]
        chan_req = [Signal(name=f"chan_req{v}") for v in range(VIRTUAL_CHANNELS)]
        for v in range(VIRTUAL_CHANNELS):
            members = [i for i in range(3) if out_vc[i] == v]
            if not members:
                continue
            k = len(members)
            ptr = Signal(range(k), name=f"rr{v}")
            for p in range(k):
                order = [members[(p + j) % k] for j in range(k)]
                with m.If(ptr == p):
                    with m.If(wants[order[0]]):
                        m.d.comb += cand[order[0]].eq(1)
                    for j in range(1, k):
                        with m.Elif(wants[order[j]]):
                            m.d.comb += cand[order[j]].eq(1)
            m.d.comb += chan_req[v].eq(reduce(operator.or_, [wants[i] for i in members])
                                       & (self.credits[v] != 0))
            for j, i in enumerate(members):
                with m.If(grant[i]):
                    m.d.sync += ptr.eq((j + 1) % k)
        link_prio = Signal()  # channel that wins when both hold a credit
        chan_grant = [Signal(name=f"chan_grant{v}") for v in range(VIRTUAL_CHANNELS)]
        with m.If(chan_req[0] & chan_req[1]):
            m.d.comb += chan_grant[0].eq(link_prio == 0)
            m.d.comb += chan_grant[1].eq(link_prio == 1)
        with m.Else():
            m.d.comb += [chan_grant[0].eq(chan_req[0]), chan_grant[1].eq(chan_req[1])]
        for v in range(VIRTUAL_CHANNELS):
            with m.If(chan_grant[v]):
                m.d.sync += link_prio.eq(1 - v)
        for i in range(3):
            m.d.comb += grant[i].eq(cand[i] & chan_grant[out_vc[i]])
        if self.inject_yield:
            with m.If(~want_inj | grant[_INJ]):
                m.d.sync += self.passed.eq(0)
            with m.Elif(self.inj_yield & chan_grant[vc_low]):
                m.d.sync += self.passed.eq(self.passed + 1)

        # registered link output
        m.d.sync += self.ring_out.valid.eq(grant[_FWD0] | grant[_FWD1] | grant[_INJ])
        with m.If(grant[_INJ]):
            m.d.sync += [
                self.ring_out.vc.eq(vc_low),
                self.ring_out.flit.eq(inj),
                self.ring_out.flit.src.eq(node),
                self.ring_out.flit.mask.eq(inj_mask),
            ]
        for v, g in ((0, grant[_FWD0]), (1, grant[_FWD1])):
            with m.If(g):
                m.d.sync += [
                    self.ring_out.vc.eq(out_vc[v]),
                    self.ring_out.flit.eq(heads[v]),
                    self.ring_out.flit.mask.eq(rest[v]),
                ]
        m.d.comb += [
            self.inject.ready.eq(grant[_INJ] | (self.inject.valid & (inj_mask == 0))),
            self.discard.eq(self.inject.valid & (inj_mask == 0)),
        ]

        # credits for the next node's FIFOs
        for v in range(VIRTUAL_CHANNELS):
            users = [grant[i] for i in range(3) if out_vc[i] == v]
            if users:
                m.d.comb += self.sent[v].eq(reduce(operator.or_, users))
            m.d.sync += self.credits[v].eq(self.credits[v] + self.ring_out.credit[v]
                                           - self.sent[v])

        # -- ejection: round-robin over the channel heads, choice held until taken --------------
        ej_prio = Signal()
        locked = Signal()
        locked_sel = Signal()
        with m.If(locked):
            m.d.comb += sel.eq(locked_sel)
        with m.Elif(ej_prio):
            m.d.comb += sel.eq(Mux(want_eject[1], 1, 0))
        with m.Else():
            m.d.comb += sel.eq(Mux(want_eject[0], 0, 1))
        m.d.comb += [
            self.eject.valid.eq(Mux(sel, want_eject[1], want_eject[0])),
            self.eject.payload.eq(Mux(sel, heads[1].as_value(), heads[0].as_value())),
        ]
        with m.If(self.eject.valid & ~self.eject.ready):
            m.d.sync += [locked.eq(1), locked_sel.eq(sel)]
        with m.If(self.eject.valid & self.eject.ready):
            m.d.sync += [locked.eq(0), ej_prio.eq(~sel)]

        # -- retire channel heads -------------------------------------------------------------
        fwd_grant = [grant[_FWD0], grant[_FWD1]]
        for v, fifo in enumerate(self.fifos):
            eject_now = self.eject.valid & self.eject.ready & (sel == v)
            local_ok = ~heads[v].mask[node] | done_local[v] | eject_now
            fwd_ok = (rest[v] == 0) | fwd_grant[v]
            m.d.comb += [
                fifo.r_en.eq(fifo.r_rdy & local_ok & fwd_ok),
                self.popped[v].eq(fifo.r_en),
                # the flit leaves the ring here (it was not forwarded in any cycle)
                self.consumed[v].eq(fifo.r_en & (rest[v] == 0)),
            ]
            with m.If(fifo.r_en):
                m.d.sync += done_local[v].eq(0)
            with m.Elif(eject_now):
                m.d.sync += done_local[v].eq(1)
            # a freed entry returns a credit to the previous node one cycle later
            m.d.sync += self.ring_in.credit[v].eq(fifo.r_en)
        return m
