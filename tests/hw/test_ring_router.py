"""amaranth.sim tests of one RingRouter: routing, multicast fan-out, credits, arbitration."""

import pytest
from amaranth.sim import Simulator
from sparsemac.hw.ring import RingRouter
from sparsemac.hw.ring.layouts import FlitType


def flit(**kw):
    base = {"payload": 0, "type": FlitType.DATA, "src": 0, "dest": 0, "mcast": 0, "mask": 0}
    base.update(kw)
    return base


def run(dut, bench, cycles_limit=None):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


async def send_link(ctx, dut, vc, **kw):
    """Drive one flit on ring_in for one cycle."""
    ctx.set(dut.ring_in.valid, 1)
    ctx.set(dut.ring_in.vc, vc)
    ctx.set(dut.ring_in.flit, flit(**kw))
    await ctx.tick()
    ctx.set(dut.ring_in.valid, 0)


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"node": 0, "nodes": 0}, ValueError, "nodes must be between 1 and 16, not 0"),
    ({"node": 0, "nodes": 17}, ValueError, "nodes must be between 1 and 16, not 17"),
    ({"node": 3, "nodes": 3}, ValueError, "node must be between 0 and 2, not 3"),
    ({"node": 0, "nodes": 2, "fifo_depth": 0}, ValueError,
     "fifo_depth must be between 1 and 64, not 0"),
    ({"node": 0, "nodes": 2, "payload_width": 0}, ValueError,
     "payload_width must be between 1 and 512, not 0"),
    ({"node": 0, "nodes": 2, "inject_yield": -1}, ValueError,
     "inject_yield must be between 0 and 63, not -1"),
    ({"node": 0, "nodes": 2, "inject_yield": 64}, ValueError,
     "inject_yield must be between 0 and 63, not 64"),
    ({"node": 0, "nodes": 2.0}, TypeError, "nodes must be an integer, not 2.0"),
    ({"node": True, "nodes": 2}, TypeError, "node must be an integer, not True"),
])
def test_parameter_errors(kwargs, exc, msg):
    with pytest.raises(exc) as info:
        RingRouter(**kwargs)
    assert str(info.value) == msg


@pytest.mark.parametrize("node,nodes", [(0, 4), (3, 4), (1, 3)])
def test_inject_unicast_and_credit_backpressure(node, nodes):
    depth = 3
    dut = RingRouter(node=node, nodes=nodes, payload_width=16, fifo_depth=depth)
    dest = (node + 1) % nodes
    want_vc = 1 if node == nodes - 1 else 0
    seen = []

    async def bench(ctx):
        ctx.set(dut.eject.ready, 1)
        for i in range(depth + 3):
            ctx.set(dut.inject.valid, 1)
            ctx.set(dut.inject.payload, flit(payload=100 + i, dest=dest, src=7 % nodes,
                                             type=FlitType.ACTS))
            ready = ctx.get(dut.inject.ready)
            await ctx.tick()
            if ctx.get(dut.ring_out.valid):
                f = ctx.get(dut.ring_out.flit)
                seen.append((f.payload, f.src, f.mask, f.type, ctx.get(dut.ring_out.vc)))
            # no credit comes back: after `depth` flits the router must stop
            assert ready == (i < depth), f"cycle {i}: inject.ready={ready}, depth={depth}"
        # return one credit: exactly one more flit may go
        ctx.set(dut.ring_out.credit, 1 << want_vc)
        await ctx.tick()
        ctx.set(dut.ring_out.credit, 0)
        assert ctx.get(dut.inject.ready) == 1
        await ctx.tick()
        f = ctx.get(dut.ring_out.flit)
        # the payload driven last
        assert ctx.get(dut.ring_out.valid) == 1 and f.payload == 100 + depth + 2
        await ctx.tick()
        assert ctx.get(dut.ring_out.valid) == 0 and ctx.get(dut.inject.ready) == 0

    run(dut, bench)
    expected = [(100 + i, node, 1 << dest, FlitType.ACTS, want_vc) for i in range(depth)]
    assert seen == expected, f"expected {expected}, got {seen}"


def test_eject_local_and_pass_through():
    dut = RingRouter(node=1, nodes=4, payload_width=8, fifo_depth=2)

    async def bench(ctx):
        ctx.set(dut.eject.ready, 1)
        await send_link(ctx, dut, 0, payload=5, src=0, dest=1, mask=0b0010)
        # head visible now: ejected this cycle, credit next cycle, nothing forwarded
        assert ctx.get(dut.eject.valid) == 1
        assert ctx.get(dut.eject.payload).payload == 5
        assert ctx.get(dut.ring_out.valid) == 0
        await ctx.tick()
        assert ctx.get(dut.ring_in.credit) == 0b01
        assert ctx.get(dut.ring_out.valid) == 0
        await send_link(ctx, dut, 0, payload=6, src=0, dest=3, mask=0b1000)
        assert ctx.get(dut.eject.valid) == 0
        await ctx.tick()
        assert ctx.get(dut.ring_out.valid) == 1
        f = ctx.get(dut.ring_out.flit)
        assert (f.payload, f.mask, ctx.get(dut.ring_out.vc)) == (6, 0b1000, 0)
        assert ctx.get(dut.ring_in.credit) == 0b01

    run(dut, bench)


@pytest.mark.parametrize("stall_cycles", [0, 1, 5])
def test_multicast_fan_out_under_eject_stall(stall_cycles):
    """A multicast head is ejected when the port accepts, forwarded with or after that (never
    before: one buffer per flit), and its entry freed once."""
    dut = RingRouter(node=2, nodes=4, payload_width=8, fifo_depth=2)
    credits = []

    async def bench(ctx):
        ctx.set(dut.eject.ready, 0)
        await send_link(ctx, dut, 1, payload=9, src=3, mcast=1, mask=0b0111)
        fwd = None
        assert ctx.get(dut.ring_out.valid) == 0
        for t in range(stall_cycles):
            assert ctx.get(dut.eject.valid) == 1, f"cycle {t}: eject must be offered"
            await ctx.tick()
            credits.append(ctx.get(dut.ring_in.credit))
            assert ctx.get(dut.ring_out.valid) == 0, f"cycle {t}: forwarded before delivered"
        ctx.set(dut.eject.ready, 1)
        assert ctx.get(dut.eject.valid) == 1
        assert ctx.get(dut.eject.payload).payload == 9
        await ctx.tick()
        for _ in range(3):
            credits.append(ctx.get(dut.ring_in.credit))
            if ctx.get(dut.ring_out.valid):
                assert fwd is None, "flit forwarded twice"
                fwd = ctx.get(dut.ring_out.flit)
            assert ctx.get(dut.eject.valid) == 0, "flit ejected twice"
            await ctx.tick()
        assert fwd is not None, "multicast flit never forwarded"
        assert (fwd.payload, fwd.mask, fwd.src) == (9, 0b0011, 3)

    run(dut, bench)
    assert credits.count(0b10) == 1 and sum(c != 0 for c in credits) == 1, credits


def test_multicast_to_self_only_is_consumed():
    dut = RingRouter(node=0, nodes=3, payload_width=8, fifo_depth=2)

    async def bench(ctx):
        ctx.set(dut.eject.ready, 1)
        await send_link(ctx, dut, 1, payload=1, src=0, mcast=1, mask=0b001)
        assert ctx.get(dut.eject.valid) == 1
        await ctx.tick()
        assert ctx.get(dut.ring_out.valid) == 0
        assert ctx.get(dut.eject.valid) == 0

    run(dut, bench)


def test_misaddressed_injection_is_discarded():
    dut = RingRouter(node=0, nodes=3, payload_width=8, fifo_depth=2)

    async def bench(ctx):
        for f in (flit(dest=3), flit(mcast=1, mask=0)):
            ctx.set(dut.inject.valid, 1)
            ctx.set(dut.inject.payload, f)
            assert ctx.get(dut.inject.ready) == 1 and ctx.get(dut.discard) == 1
            await ctx.tick()
            assert ctx.get(dut.ring_out.valid) == 0
        ctx.set(dut.inject.valid, 0)
        assert ctx.get(dut.discard) == 0

    run(dut, bench)


def test_round_robin_with_ring_traffic():
    """Saturating ring traffic on both channels cannot starve injection (and vice versa)."""
    # node 1 of 4: inject and channel-0 forwarding share output channel 0
    dut = RingRouter(node=1, nodes=4, payload_width=8, fifo_depth=4)
    # keep both input FIFOs fed with pass-through flits, alternating channels
    order = ["inj" if x == "inj" else f"vc{x[0]}"
             for x in _link_order(dut, lambda k: FlitType.DATA, 60, vcs=lambda k: k % 2)]
    steady = order[10:]
    assert len(steady) >= 30, order
    # channels alternate on the link; inject and channel-0 forwarding alternate on channel 0
    assert all(steady[k] != "vc1" or steady[k + 1] != "vc1" for k in range(len(steady) - 1)), \
        f"channel 1 took the link twice in a row: {order}"
    same = [x for x in steady if x != "vc1"]
    assert all(same[k] != same[k + 1] for k in range(len(same) - 1)), \
        f"inject / channel-0 forwarding not alternating: {order}"
    assert steady.count("vc1") >= len(steady) // 4, f"channel 1 starved: {order}"


def test_injection_bound_with_scarce_credits():
    """With channel-0 credits scarce and both channels saturated, a waiting injection is
    preceded by at most one forwarded flit of its own output channel (docs/ring.md, 4)."""
    dut = RingRouter(node=0, nodes=3, payload_width=8, fifo_depth=2)
    order = []

    async def bench(ctx):
        ctx.set(dut.eject.ready, 1)
        ctx.set(dut.inject.valid, 1)
        ctx.set(dut.inject.payload, flit(payload=0xEE, dest=2))
        seq = 0
        owed0 = 0
        for t in range(120):
            v = seq % 2
            ring_ok = ctx.get(dut.fifos[v].w_rdy)
            ctx.set(dut.ring_in.valid, ring_ok)
            ctx.set(dut.ring_in.vc, v)
            ctx.set(dut.ring_in.flit, flit(payload=seq % 200, dest=2, mask=0b100))
            credit = 0
            if ctx.get(dut.ring_out.valid):
                if ctx.get(dut.ring_out.vc):
                    credit |= 2  # channel 1 credits come straight back
                else:
                    owed0 += 1
            if owed0 and t % 5 == 0:  # channel 0 credits trickle back
                owed0 -= 1
                credit |= 1
            ctx.set(dut.ring_out.credit, credit)
            await ctx.tick()
            if ring_ok:
                seq += 1
            if ctx.get(dut.ring_out.valid):
                f = ctx.get(dut.ring_out.flit)
                order.append("inj" if f.payload == 0xEE else f"vc{ctx.get(dut.ring_out.vc)}")

    run(dut, bench)
    same = [x for x in order if x != "vc1"]
    assert same.count("vc0") >= 8, order
    assert same.count("inj") >= 8, order
    for k in range(len(same) - 1):
        assert same[k:k + 2] != ["vc0", "vc0"], f"injection passed over twice: {order}"
        assert same[k:k + 2] != ["inj", "inj"], f"channel-0 forwarding passed over: {order}"
    assert order.count("vc1") > len(order) // 3, f"channel 1 starved: {order}"


def _link_order(dut, types, cycles, vcs=lambda k: 0):
    """Drive node 1 of 4 with an always-valid injection and pass-through traffic (flit ``k``
    of type ``types(k)`` on channel ``vcs(k)``), every credit returned at once; the link's
    order: ``"inj"`` or ``(vc, type)`` of each forwarded flit."""
    order = []

    async def bench(ctx):
        ctx.set(dut.eject.ready, 1)
        ctx.set(dut.inject.valid, 1)
        ctx.set(dut.inject.payload, flit(payload=0xEE, dest=2, type=FlitType.RESULT))
        seq = 0
        for _ in range(cycles):
            v = vcs(seq)
            ring_ok = ctx.get(dut.fifos[v].w_rdy)
            ctx.set(dut.ring_in.valid, ring_ok)
            ctx.set(dut.ring_in.vc, v)
            ctx.set(dut.ring_in.flit, flit(payload=seq % 200, dest=3, mask=0b1000,
                                           type=types(seq)))
            # downstream returns every credit immediately
            if ctx.get(dut.ring_out.valid):
                ctx.set(dut.ring_out.credit, 1 << ctx.get(dut.ring_out.vc))
            else:
                ctx.set(dut.ring_out.credit, 0)
            await ctx.tick()
            if ring_ok:
                seq += 1
            if ctx.get(dut.ring_out.valid):
                f = ctx.get(dut.ring_out.flit)
                order.append("inj" if f.payload == 0xEE
                             else (ctx.get(dut.ring_out.vc), f.type))

    run(dut, bench)
    return order


def _runs_between_injections(order):
    runs, k = [], None
    for x in order:
        if x == "inj":
            if k is not None:
                runs.append(k)
            k = 0
        elif k is not None:
            k += 1
    return runs


@pytest.mark.parametrize("y", [0, 1, 5, 63])
def test_injection_yields_to_an_acts_stream(y):
    """A waiting injection lets exactly ``inject_yield`` forwarded ACTS flits go first, then
    takes the link (0: round-robin, one forward between injections)."""
    dut = RingRouter(node=1, nodes=4, payload_width=8, fifo_depth=4, inject_yield=y)
    order = _link_order(dut, lambda k: FlitType.ACTS, 40 + 3 * (y + 1))
    runs = _runs_between_injections(order)
    assert len(runs) >= 2, order
    assert set(runs) == {max(y, 1)}, f"forwards between injections {runs}: {order}"


def test_injection_does_not_yield_to_other_flit_types():
    """DATA / RESULT / CTRL pass-through traffic keeps the round-robin: one forward between
    injections, whatever ``inject_yield``."""
    dut = RingRouter(node=1, nodes=4, payload_width=8, fifo_depth=4, inject_yield=7)
    kinds = (FlitType.DATA, FlitType.RESULT, FlitType.CTRL)
    order = _link_order(dut, lambda k: kinds[k % 3], 50)
    runs = _runs_between_injections(order)
    assert len(runs) >= 10 and set(runs) == {1}, order


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_injection_wait_bound_with_mixed_traffic(seed):
    """Random flit types: a waiting injection goes after at most ``inject_yield + 1`` forwards
    and never before ``inject_yield`` forwards while ACTS flits come (docs/ring.md, 4)."""
    import random
    y = 4
    rng = random.Random(seed)
    print(f"seed {seed}")
    types = [rng.choice([FlitType.ACTS, FlitType.ACTS, FlitType.DATA]) for _ in range(400)]
    dut = RingRouter(node=1, nodes=4, payload_width=8, fifo_depth=4, inject_yield=y)
    order = _link_order(dut, lambda k: types[k], 150)
    runs = _runs_between_injections(order)
    assert len(runs) >= 10, order
    assert max(runs) <= y + 1, f"an injection waited {max(runs)} forwards: {order}"
    assert max(runs) >= y, order
