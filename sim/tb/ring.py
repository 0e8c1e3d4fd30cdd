"""cocotb testbench of a whole Ring: random traffic, eject stalls, scoreboard, latency stats.

Parameters (``SPARSEMAC_PARAMS``, set by tests/sim/test_ring.py or sim/bench_ring.py through
``run_cocotb(..., params=...)``): ``nodes``, ``payload_width`` (default 32), ``depth`` (the
FIFO depth, default 4), ``cycles`` and, for ``ring_bench``, ``injection``, ``stall``,
``pattern`` (uniform, hotspot, multicast) and ``json`` (result file).  The run's seed
(``SPARSEMAC_SEED``) seeds everything.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict, deque

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge
from sparsemac.hw.ring.layouts import flit_layout

from .base import TB, params_from_env, run_seed

WATCHDOG = 1024  # cycles without any delivery or injection while flits are outstanding
PATTERNS = ("uniform", "hotspot", "multicast")


class Codec:
    """Pack / unpack flits with the hardware's own layout (field offsets)."""

    def __init__(self, nodes, payload_width):
        lay = flit_layout(nodes, payload_width)
        self.fields = {name: (f.offset, f.width) for name, f in lay}

    def pack(self, **kw):
        word = 0
        for name, v in kw.items():
            off, w = self.fields[name]
            word |= (int(v) & ((1 << w) - 1)) << off
        return word

    def unpack(self, word, name):
        off, w = self.fields[name]
        return (word >> off) & ((1 << w) - 1)


class RingTB(TB):
    """The ring's :class:`sim.tb.base.TB`: every ``inject`` port is a source that holds a flit
    (``valid`` and payload) until it is taken, every ``eject`` port a sink whose ``ready`` is
    low with a per-node probability; one generator (``rng``) decides injections, destinations
    and stalls cycle by cycle, and a scoreboard checks every delivery."""

    settle_cycles = 0

    def __init__(self, dut, *, nodes: int, **kw):
        super().__init__(dut, **kw)
        self.nodes = nodes

    def quiet_inputs(self):
        return [getattr(self.dut, f"inject__{i}__valid") for i in range(self.nodes)]

    async def run_traffic(self, *, nodes, payload_width, cycles, injection, stall, pattern,
                          hot=0):
        """Drive every node for ``cycles`` cycles, then drain; returns the statistics dict.

        ``stall`` is one probability or a list (one per node) that ``eject.ready`` is low in a
        cycle.  Every flit's payload is a unique id in its low ``id_bits`` (enough for every
        flit of the run) and random bits above it (a generator of its own, so the traffic is
        the same as without them); a scoreboard per (source, destination) checks order,
        duplicates and losses by the id, and every payload bit of every delivered flit.
        """
        dut, rng = self.dut, self.rng
        codec = Codec(nodes, payload_width)
        id_bits = min(payload_width, 62, max(1, (nodes * max(cycles, 1)).bit_length()))
        id_mask = (1 << id_bits) - 1
        fill_bits = payload_width - id_bits
        fill_rng = random.Random(repr(rng.getstate()[1][:4]))  # derived; draws nothing from rng
        sent = {}  # uid -> the whole payload word it was injected with
        stalls = stall if isinstance(stall, list) else [stall] * nodes
        inj_v = [getattr(dut, f"inject__{i}__valid") for i in range(nodes)]
        inj_p = [getattr(dut, f"inject__{i}__payload") for i in range(nodes)]
        inj_r = [getattr(dut, f"inject__{i}__ready") for i in range(nodes)]
        ej_v = [getattr(dut, f"eject__{i}__valid") for i in range(nodes)]
        ej_p = [getattr(dut, f"eject__{i}__payload") for i in range(nodes)]
        ej_r = [getattr(dut, f"eject__{i}__ready") for i in range(nodes)]
        for i in range(nodes):
            ej_r[i].value = 1
        await self.reset()

        expect = defaultdict(deque)  # (src, dst) -> deque of uids in injection order
        done = defaultdict(set)  # (src, dst) -> uids already delivered
        created = {}  # uid -> (cycle created, remaining deliveries)
        pending = [None] * nodes  # (uid, word, dests, type)
        st = dict(injected=0, delivered=0, expected=0, duplicates=0, misordered=0, unexpected=0,
                  lost=0, hops=0, lat_sum=0, lat_max=0, stalled=False, errors=[])
        uid = 0
        idle = 0
        cycle = 0
        ready_now = [1] * nodes
        mask_all = (1 << nodes) - 1
        while True:
            generating = cycle < cycles
            # -- drive this cycle's inputs ------------------------------------------------------
            for s in range(nodes):
                if pending[s] is None and generating and rng.random() < injection:
                    typ = rng.randrange(4)
                    payload = uid | (fill_rng.getrandbits(fill_bits) << id_bits if fill_bits
                                     else 0)
                    sent[uid] = payload
                    if pattern == "multicast" and rng.random() < 0.3:
                        mask = mask_all if rng.random() < 0.3 else rng.randrange(1, mask_all + 1)
                        word = codec.pack(payload=payload, type=typ, mcast=1, mask=mask,
                                          dest=rng.randrange(nodes))
                        dests = [d for d in range(nodes) if mask >> d & 1]
                    else:
                        if pattern == "hotspot" and rng.random() < 0.5:
                            d = hot
                        else:
                            d = rng.randrange(nodes)
                        word = codec.pack(payload=payload, type=typ, dest=d, mcast=0,
                                          mask=rng.randrange(mask_all + 1))
                        dests = [d]
                    pending[s] = (uid, word, dests, typ)
                    created[uid] = [cycle, len(dests)]
                    uid = (uid + 1) & id_mask
                    inj_v[s].value = 1
                    inj_p[s].value = word
                elif pending[s] is None:
                    inj_v[s].value = 0
            for d in range(nodes):
                if stalls[d] > 0:
                    r = int(rng.random() >= stalls[d])
                    if r != ready_now[d]:
                        ej_r[d].value = r
                        ready_now[d] = r
            await ReadOnly()
            # -- sample this cycle's handshakes ------------------------------------------------
            took = [s for s in range(nodes) if pending[s] is not None and inj_r[s].value]
            got = [(d, int(ej_p[d].value)) for d in range(nodes) if ready_now[d] and ej_v[d].value]
            await RisingEdge(dut.clk)
            cycle += 1
            for s in took:
                u, _, dests, typ = pending[s]
                created[u].append(cycle - 1)  # accepted in this cycle
                for d in dests:
                    expect[s, d].append((u, typ))
                st["injected"] += 1
                st["expected"] += len(dests)
                if cycle <= cycles:
                    st["hops"] += max((d - s) % nodes or nodes for d in dests)
                pending[s] = None
            for d, word in got:
                s = codec.unpack(word, "src")
                payload = codec.unpack(word, "payload")
                u = payload & id_mask
                typ = codec.unpack(word, "type")
                q = expect[s, d]
                if q and q[0][0] == u:
                    _, want_typ = q.popleft()
                    if typ != want_typ:
                        st["errors"].append(f"cycle {cycle}: flit {u} {s}->{d} type {typ}, "
                                            f"expected {want_typ}")
                    if payload != sent[u]:
                        st["errors"].append(f"cycle {cycle}: flit {u} {s}->{d} payload "
                                            f"{payload:#x}, expected {sent[u]:#x}")
                    st["delivered"] += 1
                    done[s, d].add(u)
                    lat = cycle - 1 - created[u][0]
                    st["lat_sum"] += lat
                    if lat > st["lat_max"]:
                        st["lat_max"] = lat
                        st["worst"] = dict(src=s, dst=d, created=created[u][0],
                                           accepted=created[u][2], delivered=cycle - 1)
                    created[u][1] -= 1
                    if created[u][1] == 0:
                        del created[u]
                        del sent[u]
                elif u in done[s, d]:
                    st["duplicates"] += 1
                    st["errors"].append(f"cycle {cycle}: duplicate flit {u} {s}->{d}")
                elif any(x[0] == u for x in q):
                    st["misordered"] += 1
                    st["errors"].append(f"cycle {cycle}: flit {u} {s}->{d} overtook {q[0][0]}")
                else:
                    st["unexpected"] += 1
                    st["errors"].append(f"cycle {cycle}: unexpected flit {u} {s}->{d}")
            outstanding = st["expected"] - st["delivered"] - st["duplicates"]
            idle = 0 if (took or got or outstanding <= 0) else idle + 1
            if idle >= WATCHDOG:
                st["stalled"] = True
                st["errors"].append(f"cycle {cycle}: no progress for {WATCHDOG} cycles with "
                                    f"{outstanding} deliveries outstanding")
                break
            if not generating and outstanding <= 0 and all(p is None for p in pending):
                break
        st["lost"] = sum(len(q) for q in expect.values())
        for i in range(nodes):
            inj_v[i].value = 0
        st["sim_cycles"] = cycle
        st["drain_cycles"] = cycle - cycles
        st["mean_latency"] = st["lat_sum"] / st["delivered"] if st["delivered"] else 0.0
        st["link_throughput"] = st["hops"] / (nodes * cycles) if cycles else 0.0
        st["accept_rate"] = st["injected"] / (nodes * cycles) if cycles else 0.0
        return st


def params():
    """(nodes, payload width, seed, bench parameters) of this run (``SPARSEMAC_PARAMS``)."""
    p = params_from_env(payload_width=32, depth=4)
    return int(p["nodes"]), int(p["payload_width"]), run_seed(), p


def check(st, seed, what):
    assert not st["errors"] and st["lost"] == 0, (
        f"seed={seed} {what}: expected 0 errors/0 lost, got lost={st['lost']}, "
        f"errors={st['errors'][:5]}")
    assert st["delivered"] == st["expected"] > 0, (
        f"seed={seed} {what}: expected {st['expected']} deliveries, got {st['delivered']}")


@cocotb.test()
async def ring_traffic(dut):
    """All-to-all, hotspot and multicast at 100% injection with random stalls 0..90%."""
    nodes, pw, seed, p = params()
    cycles = int(p.get("cycles", 1500))
    tb = RingTB(dut, nodes=nodes, seed=seed)
    rng = tb.rng
    scenarios = [("uniform", 0.0), ("uniform", None), ("hotspot", None),
                 ("multicast", None), ("multicast", 0.0)]
    for pattern, stall in scenarios:
        stalls = [rng.choice([0.0, 0.3, 0.6, 0.9]) if stall is None else stall
                  for _ in range(nodes)]
        st = await tb.run_traffic(nodes=nodes, payload_width=pw, cycles=cycles,
                                  injection=1.0, stall=stalls, pattern=pattern,
                                  hot=rng.randrange(nodes))
        dut._log.info(f"{pattern} stalls={stalls}: injected={st['injected']} "
                      f"delivered={st['delivered']} max_lat={st['lat_max']} "
                      f"link={st['link_throughput']:.2f}")
        check(st, seed, f"{pattern} stalls={stalls}")


@cocotb.test()
async def ring_saturation_full_links(dut):
    """Unstalled nearest-neighbour-or-further uniform traffic keeps the links busy."""
    nodes, pw, seed, p = params()
    tb = RingTB(dut, nodes=nodes, seed=seed, salt=1)
    st = await tb.run_traffic(nodes=nodes, payload_width=pw, cycles=800, injection=1.0,
                              stall=0.0, pattern="uniform")
    check(st, seed, "saturation")
    if nodes > 1:
        # uniform traffic at saturation: with fifo_depth >= 4 (a full credit loop) every link
        # carries well over a third of a flit per cycle; shallower FIFOs scale that down
        depth = int(p["depth"])
        floor = 0.35 * min(1.0, depth / 4)
        assert st["link_throughput"] > floor, (
            f"seed={seed}: expected link throughput > {floor:.3f}, "
            f"got {st['link_throughput']:.3f}")


@cocotb.test()
async def ring_bench(dut):
    """Measurement run for ``sparsemac bench ring``: writes the statistics as JSON."""
    nodes, pw, seed, p = params()
    cycles, injection = int(p["cycles"]), float(p["injection"])
    stall, pattern = float(p["stall"]), p["pattern"]
    tb = RingTB(dut, nodes=nodes, seed=seed)
    st = await tb.run_traffic(nodes=nodes, payload_width=pw, cycles=cycles,
                              injection=injection, stall=stall, pattern=pattern)
    st.update(nodes=nodes, cycles=cycles, injection=injection, stall=stall, pattern=pattern,
              seed=seed, errors=st["errors"][:20])
    with open(p["json"], "w") as fh:
        json.dump(st, fh, indent=1)
