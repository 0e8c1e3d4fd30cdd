"""amaranth.sim tests of a small Ring: latency, random unicast/multicast with a scoreboard."""

import random
from collections import defaultdict, deque

import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.ring import Ring
from sparsemac.hw.ring.layouts import FlitType


def flit(**kw):
    base = {"payload": 0, "type": FlitType.DATA, "src": 0, "dest": 0, "mcast": 0, "mask": 0}
    base.update(kw)
    return base


def test_parameter_errors_and_config():
    with pytest.raises(ValueError) as info:
        Ring(nodes=0)
    assert str(info.value) == "nodes must be between 1 and 16, not 0"
    with pytest.raises(TypeError) as info:
        Ring(nodes="4")
    assert str(info.value) == "nodes must be an integer, not '4'"
    with pytest.raises(ValueError) as info:
        Ring(nodes=4, fifo_depth=65)
    assert str(info.value) == "fifo_depth must be between 1 and 64, not 65"
    cfg = AcceleratorConfig(tiles=8, ring_payload_width=128, axi_data_width=64,
                            ring_fifo_depth=5)
    r = Ring.from_config(cfg, nodes=cfg.tiles + 1)
    assert (r.nodes, r.payload_width, r.fifo_depth) == (9, 128, 5)
    r8 = Ring.from_config(cfg)
    assert r8.nodes == 8
    for ring in (r, r8):  # elaborate: the routers really are built with these parameters
        Fragment.get(ring, None)
        assert [x.node for x in ring.routers] == list(range(ring.nodes))
        assert {(x.fifo_depth, x.payload_width) for x in ring.routers} == {(5, 128)}


@pytest.mark.parametrize("nodes", [1, 2, 4])
def test_unloaded_latency(nodes):
    dut = Ring(nodes=nodes, payload_width=8, fifo_depth=2)
    got = {}

    async def bench(ctx):
        for p in range(nodes):
            ctx.set(dut.eject[p].ready, 1)
        for s in range(nodes):
            for d in range(nodes):
                ctx.set(dut.inject[s].valid, 1)
                ctx.set(dut.inject[s].payload, flit(payload=s * 16 + d, dest=d))
                assert ctx.get(dut.inject[s].ready) == 1
                await ctx.tick()
                ctx.set(dut.inject[s].valid, 0)
                for t in range(1, 4 * nodes + 4):
                    if ctx.get(dut.eject[d].valid):
                        f = ctx.get(dut.eject[d].payload)
                        assert (f.payload, f.src) == (s * 16 + d, s)
                        got[s, d] = t
                        await ctx.tick()
                        break
                    await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for s in range(nodes):
        for d in range(nodes):
            hops = (d - s) % nodes or nodes
            assert got.get((s, d)) == 2 * hops, f"{s}->{d}: expected {2 * hops}, got {got}"
            assert dut.min_latency(s, d) == 2 * hops


@pytest.mark.parametrize("nodes,depth", [(3, 2), (4, 1), (2, 4)])
def test_random_traffic_scoreboard(nodes, depth, seed):
    rng = random.Random(seed)
    dut = Ring(nodes=nodes, payload_width=16, fifo_depth=depth)
    expect = defaultdict(deque)  # (src, dst) -> payloads in order
    delivered = [0]
    injected = [0]
    stall = [rng.choice([0.0, 0.5, 0.9]) for _ in range(nodes)]

    async def bench(ctx):
        pending = [None] * nodes
        uid = 0
        idle = 0
        for cycle in range(3000):
            active = cycle < 2000
            for s in range(nodes):
                if pending[s] is None and active and rng.random() < 0.8:
                    if rng.random() < 0.3:
                        mask = rng.randrange(1 << nodes)
                        pending[s] = flit(payload=uid, mcast=1, mask=mask,
                                          type=FlitType.ACTS)
                        dests = [d for d in range(nodes) if mask >> d & 1]
                    else:
                        d = rng.randrange(nodes)
                        pending[s] = flit(payload=uid, dest=d)
                        dests = [d]
                    pending[s]["_dests"] = dests
                    uid = (uid + 1) & 0xFFFF
                f = pending[s]
                ctx.set(dut.inject[s].valid, f is not None)
                if f is not None:
                    ctx.set(dut.inject[s].payload, {k: v for k, v in f.items() if k != "_dests"})
            for d in range(nodes):
                ctx.set(dut.eject[d].ready, rng.random() >= stall[d])
            # sample handshakes of this cycle
            took = [ctx.get(dut.inject[s].valid) and ctx.get(dut.inject[s].ready)
                    for s in range(nodes)]
            got = []
            for d in range(nodes):
                if ctx.get(dut.eject[d].valid) and ctx.get(dut.eject[d].ready):
                    got.append((d, ctx.get(dut.eject[d].payload)))
            for s in range(nodes):
                if took[s]:
                    for d in pending[s]["_dests"]:
                        expect[s, d].append(pending[s]["payload"])
                    injected[0] += 1
                    pending[s] = None
            for d, f in got:
                q = expect[f.src, d]
                assert q, f"seed={seed}: unexpected flit {f.payload} {f.src}->{d}"
                want = q.popleft()
                assert f.payload == want, (f"seed={seed}: {f.src}->{d} expected payload "
                                           f"{want}, got {f.payload}")
                delivered[0] += 1
            idle = 0 if got or not any(expect.values()) else idle + 1
            assert idle < 1024, f"seed={seed}: no progress for 1024 cycles"
            await ctx.tick()
        left = {k: list(v) for k, v in expect.items() if v}
        assert not left, f"seed={seed}: flits never delivered: {left}"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert injected[0] > 100 and delivered[0] > 100
