"""ResultArbiter under amaranth.sim, cycle for cycle against a naive model: per-lane queues of
two, the lowest non-empty lane first, an offered result held until taken, FIFO 0 fed by the
pool input in pool mode, an entry written with its lane's ``zero`` bit leaving with ``acc`` 0."""

import random

import pytest
from amaranth.sim import Simulator
from sparsemac.hw.tile.result_arbiter import ResultArbiter
from sparsemac.hw.tile.tile import tile_result_layout


class _Model:
    """The arbiter as plain Python: ``step`` takes one cycle's inputs, returns its outputs."""

    def __init__(self, lanes: int):
        self.q = [[] for _ in range(lanes)]
        self.chosen = 0

    def outputs(self):
        q = self.q[self.chosen]
        return (bool(q), q[0] if q else None, bool(self.q[0]))

    def step(self, writes: dict, ready: bool, pool_mode: bool):
        valid, head, _ = self.outputs()
        taken = valid and ready
        popped = [taken and r == self.chosen and not pool_mode for r in range(len(self.q))]
        rdy = [len(q) < 2 for q in self.q]          # a full FIFO takes no write
        if taken:
            self.q[self.chosen].pop(0)
        for r, item in writes.items():
            if rdy[r]:
                self.q[r].append(item)
        nonempty = [r for r, q in enumerate(self.q) if q]
        prio = nonempty[0] if nonempty else 0
        self.chosen = self.chosen if valid and not ready else prio
        return popped


@pytest.mark.parametrize("lanes", [1, 3, 4])
@pytest.mark.parametrize("p_ready", [1.0, 0.4], ids=["no-backpressure", "backpressure"])
def test_result_arbiter_matches_model(lanes, p_ready, seed):
    rng = random.Random(seed)
    dut = ResultArbiter(lanes=lanes, layout=tile_result_layout(2, 16))
    model = _Model(lanes)
    cycles = 600

    async def bench(ctx):
        uid = 0
        for cyc in range(cycles):
            pool_mode = cyc >= cycles // 2      # second half: a pool into FIFO 0
            ctx.set(dut.pool_mode, pool_mode)
            writes = {}
            zero = 0
            for r in range(lanes):
                # the tile writes a lane's FIFO only when it has room (its pending counters)
                v = (not (pool_mode and r == 0)) and len(model.q[r]) < 2 and rng.random() < 0.3
                ctx.set(dut.lanes[r].valid, v)
                # random accumulators; the zero bit drawn on every cycle (also on cycles
                # without a write: it must only count with `valid`)
                acc = [rng.randrange(-2**15, 2**15) for _ in range(2)]
                z = rng.random() < 0.4
                zero |= z << r
                ctx.set(dut.lanes[r].payload.acc, acc)
                if v:
                    uid += 1
                    ctx.set(dut.lanes[r].payload.m, uid)
                    ctx.set(dut.lanes[r].payload.cg, r)
                    writes[r] = (uid, r, tuple([0, 0] if z else acc))
            ctx.set(dut.zero, zero)
            # the pool stream keeps its own rule: valid held until ready
            if pool_mode and (ctx.get(dut.pool.valid) or rng.random() < 0.5):
                if not ctx.get(dut.pool.valid):
                    uid += 1
                    ctx.set(dut.pool.payload.m, uid)
                    ctx.set(dut.pool.payload.cg, 99)
                    ctx.set(dut.pool.payload.acc, [uid % 100 - 50, 7])
                ctx.set(dut.pool.valid, 1)
                if ctx.get(dut.pool.ready):
                    # a pool's entry is never zeroed (lane 0's zero bit is not its)
                    writes[0] = (ctx.get(dut.pool.payload.m), 99,
                                 tuple(ctx.get(dut.pool.payload.acc)))
            else:
                ctx.set(dut.pool.valid, 0)
            ready = rng.random() < p_ready
            ctx.set(dut.results.ready, ready)
            valid, head, nonempty0 = model.outputs()
            what = f"seed {seed}, lanes {lanes}, cycle {cyc}"
            assert ctx.get(dut.results.valid) == valid, f"{what}: valid, expected {valid}"
            if valid:
                got = (ctx.get(dut.results.payload.m), ctx.get(dut.results.payload.cg),
                       tuple(ctx.get(dut.results.payload.acc)))
                assert got == head, f"{what}: result (m, cg, acc) {got}, expected {head}"
            assert ctx.get(dut.lane0_nonempty) == nonempty0, f"{what}: lane0_nonempty"
            popped = model.step(writes, ready, pool_mode)
            got_popped = [(ctx.get(dut.popped) >> r) & 1 for r in range(lanes)]
            assert got_popped == [int(p) for p in popped], (
                f"{what}: popped {got_popped}, expected {[int(p) for p in popped]}")
            await ctx.tick()
            if pool_mode and ctx.get(dut.pool.valid) and 0 in writes:
                ctx.set(dut.pool.valid, 0)      # taken: a new one may be offered next

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_result_arbiter_rejects_bad_lanes():
    for bad in (0, -1, 2.0, True):
        with pytest.raises(TypeError, match=f"lanes must be a positive integer, not {bad!r}"):
            ResultArbiter(lanes=bad, layout=tile_result_layout(2, 16))
    from amaranth.lib import data
    for bad in (data.StructLayout({"m": 16, "y": 8}), data.ArrayLayout(8, 2)):
        with pytest.raises(TypeError, match="layout must be a StructLayout with an 'acc' field"):
            ResultArbiter(lanes=2, layout=bad)
    assert ResultArbiter(lanes=2, layout=tile_result_layout(2, 16)).latency == 1
