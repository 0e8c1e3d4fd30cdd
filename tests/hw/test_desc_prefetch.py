"""DescPrefetch under amaranth.sim, cycle for cycle against a naive model of its state machine
(random window, request, command ready, status, verdict, take and clear)."""

import random

import pytest
from amaranth.sim import Simulator
from sparsemac.hw.hub.desc_prefetch import DescPrefetch

IDLE, ISSUE, STREAM, CHECK, READY, FAILED = range(6)


def _next(state, code, addr, i):
    """One clock of the model: ``i`` the cycle's inputs; returns (state, code, addr)."""
    # take / clear return to idle; a transition of the window (a later statement) wins
    nxt = IDLE if (i["take"] or i["clear"]) else state
    if i["window"]:
        if state == IDLE and i["request"]:
            nxt = ISSUE
        elif state == ISSUE and i["cmd_ready"]:
            nxt = STREAM
        elif state == STREAM and i["status_valid"]:
            if i["status_code"]:
                nxt, code, addr = FAILED, i["status_code"], i["status_addr"]
            else:
                nxt = CHECK
        elif state == CHECK and i["checked"]:
            nxt = READY
    return nxt, code, addr


@pytest.mark.parametrize("p_window", [1.0, 0.6])
def test_desc_prefetch_matches_model(p_window, seed):
    rng = random.Random(seed)
    dut = DescPrefetch(addr_width=12)
    seen = set()

    async def bench(ctx):
        state, code, addr = IDLE, 0, 0
        for cyc in range(2000):
            i = {"window": rng.random() < p_window, "request": rng.random() < 0.5,
                 "cmd_ready": rng.random() < 0.5, "status_valid": rng.random() < 0.3,
                 "status_code": rng.choice([0, 0, 0, 32, 33]),
                 "status_addr": rng.randrange(1 << 12), "checked": rng.random() < 0.3,
                 # the sequencer takes an outcome only (NEXT), and aborts rarely
                 "take": state in (READY, FAILED) and rng.random() < 0.5,
                 "clear": rng.random() < 0.02}
            for k, v in i.items():
                ctx.set(getattr(dut, k), int(v))
            w = i["window"]
            want = {"idle": state == IDLE, "ready": state == READY, "failed": state == FAILED,
                    "issue": w and state == IDLE and i["request"],
                    "issuing": w and state == ISSUE, "streaming": w and state == STREAM,
                    "code": code, "addr": addr}
            got = {k: ctx.get(getattr(dut, k)) for k in want}
            assert got == {k: int(v) for k, v in want.items()}, (
                f"seed {seed}, cycle {cyc}, state {state}, inputs {i}: got {got}, "
                f"expected {want}")
            seen.add(state)
            state, code, addr = _next(state, code, addr, i)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {IDLE, ISSUE, STREAM, CHECK, READY, FAILED}, f"seed {seed}: states {seen}"


def test_desc_prefetch_rejects_bad_width():
    for bad in (0, 3.0, None):
        with pytest.raises(TypeError, match=f"addr_width must be a positive integer, not "
                                            f"{bad!r}"):
            DescPrefetch(addr_width=bad)
