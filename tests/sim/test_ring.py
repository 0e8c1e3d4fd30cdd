"""Whole rings of 2, 3, 4 and 8 nodes on Verilator (cocotb): traffic, stalls, scoreboard."""

import pytest
from sparsemac.hw.ring import Ring
from sparsemac.sim.runner import run_cocotb

PAYLOAD = 32


def _run(nodes, *, fifo_depth=4, testcase=("ring_traffic", "ring_saturation_full_links"),
         cycles=1500, seed=None, inject_yield=0):
    ring = Ring(nodes=nodes, payload_width=PAYLOAD, fifo_depth=fifo_depth,
                inject_yield=inject_yield)
    run_cocotb(ring, toplevel="ring", test_module="sparsemac.sim.tb.ring",
               testcase=list(testcase), seed=seed,
               params={"nodes": nodes, "payload_width": PAYLOAD, "cycles": cycles,
                       "depth": fifo_depth},
               tag=f"n{nodes}-d{fifo_depth}-y{inject_yield}")


@pytest.mark.parametrize("nodes,cycles", [(2, 1500), (3, 1500), (4, 1200), (8, 800)])
def test_ring_traffic(nodes, cycles, seed):
    _run(nodes, cycles=cycles, seed=seed)


@pytest.mark.parametrize("nodes,inject_yield", [(4, 3), (8, 32)])
def test_ring_traffic_streams_first(nodes, inject_yield, seed):
    """The same scoreboard with forwarded ACTS flits first (a quarter of the random flits are
    ACTS): nothing lost, duplicated or reordered, no node starved (the no-progress watchdog)."""
    _run(nodes, cycles=1200, seed=seed, inject_yield=inject_yield)


@pytest.mark.slow
@pytest.mark.parametrize("nodes,fifo_depth", [(1, 1), (5, 2), (9, 1), (9, 4), (16, 3)])
def test_ring_traffic_more_shapes(nodes, fifo_depth, seed):
    _run(nodes, fifo_depth=fifo_depth, cycles=3000, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("nodes", [2, 3, 4, 8])
def test_ring_traffic_long(nodes, seed):
    _run(nodes, cycles=20000, seed=seed)


def test_bench_ring_cli(seed, capsys):
    """``sparsemac bench ring --json`` on the RTL: counts add up, light-load latency is 2/hop."""
    import json

    from sparsemac.cli.main import main

    rc = main(["bench", "ring", "--nodes", "3", "--cycles", "600", "--injection", "0.02",
               "--pattern", "uniform", "--seed", str(seed), "--json"])
    out = capsys.readouterr().out
    r = json.loads(out)
    assert rc == 0, f"seed={seed}: expected exit 0, got {rc}: {r}"
    assert r["delivered"] == r["expected"] == r["injected"] > 0, f"seed={seed}: {r}"
    assert (r["lost"], r["duplicates"], r["stalled"]) == (0, 0, False), f"seed={seed}: {r}"
    # uniform over 3 nodes (self = one full turn): mean hops 2 -> 4 cycles; light load adds
    # at most a little queueing
    assert 3.0 <= r["mean_latency"] <= 5.0, f"seed={seed}: mean latency {r['mean_latency']}"
    rc = main(["bench", "ring", "--nodes", "3", "--stall", "1.0"])
    err = capsys.readouterr().err
    assert rc == 2 and "--stall must be between 0 and 0.99, not 1.0" in err, err
