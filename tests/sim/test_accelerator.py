"""The accelerator top on Verilator (tests/sim/cocotb_accelerator.py): one build per config."""

import pytest
from sparsemac.flow.boards import board_config
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.top.accelerator import Accelerator
from sparsemac.sim.runner import run_cocotb


def cfg_key(cfg) -> str:
    """The Verilog cache key of a component built from ``cfg`` alone."""
    import json

    return json.dumps(cfg.to_dict(), sort_keys=True)

TINY = AcceleratorConfig.preset("tiny").replace(watchdog_cycles=4096)
CONFIGS = {
    "t1": TINY,
    # out_lanes < cols with two lanes: a row through the output pipeline in two beats
    "t2": TINY.replace(tiles=2, axi_data_width=32, out_lanes=1, name="tiny2"),
    "t4": TINY.replace(tiles=4, rows=1, cols=4, out_lanes=2, axi_data_width=128,
                       ring_payload_width=128, name="tiny4"),
    # the default build as the RTL engine runs it (the same Verilog, one Verilator build)
    "d4": AcceleratorConfig.preset("default"),
    # the ULX3S board build (flow/boards.py; the bench's watchdog, 4096 cycles, instead of the
    # board's 65536: the only difference in the Verilog)
    "u1": board_config("ulx3s-85f").replace(watchdog_cycles=4096, name="ulx3s"),
    # a ring of three tiles (not a power of two) and a build without bitmap and block:
    # descriptors of the missing formats end in FORMAT_UNSUPPORTED
    "n3": TINY.replace(tiles=3, formats=("dense", "nm"), name="tiny3nm"),
}


#: Per config: rounds of ``hard_resets_mid_job`` and injected networks of ``random_bus_errors``
#: (0 skips the test; docs/verification.md, "Resets and bus errors").
SOAK = {"t1": dict(hard_resets=3, error_nets=8), "t2": dict(hard_resets=3, error_nets=6),
        "t4": dict(hard_resets=2, error_nets=2), "d4": dict(hard_resets=1, error_nets=1),
        "u1": dict(hard_resets=1, error_nets=1), "n3": dict(hard_resets=1, error_nets=2)}
#: Largest M / K / N of the random networks' layers per config (the default build's buffers
#: take larger layers than the tiny ones).
MAX_DIM = {"t1": 12, "t2": 12, "t4": 12, "d4": 40, "u1": 24, "n3": 12}
#: The ``[soak]`` totals the bench writes, in the order they are printed.
SOAK_KEYS = ("hard_resets", "jobs", "layers", "errors_injected", "mismatches")


def _run(cfg, seed, testcase=None, nets=2, soak=None, stats=None, max_dim=12):
    params = {"nets": nets, "max_dim": max_dim, **(soak or dict(hard_resets=0, error_nets=0))}
    if stats is not None:
        params["stats"] = str(stats)
    try:
        run_cocotb(Accelerator(cfg), toplevel="accelerator",
                   test_module="tests.sim.cocotb_accelerator", testcase=testcase, seed=seed,
                   cfg=cfg, params=params, tag=cfg.name, cache_key=cfg_key(cfg))
    finally:
        _print_soak(stats)


def _print_soak(stats):
    """The bench's totals as ``[soak] key=value`` lines, one key a line (bench/soak.py sums
    them from the ``-s`` output; cocotb's own stdout goes to the simulator log)."""
    import json

    if stats is None or not stats.is_file():
        return
    totals = json.loads(stats.read_text())
    for key in (*SOAK_KEYS, *sorted(set(totals) - set(SOAK_KEYS))):
        if key in totals:
            print(f"[soak] {key}={totals[key]}")


#: In the slow set (``make test-all``) only: ``u1``, the ULX3S board's accelerator (1 tile of
#: 4x4), whose build cost about 200 s of the 30-minute regression for what ``t1`` (one tile)
#: and ``d4`` (4x4 tiles, the same formats) also run (session 28).  The board's self-test
#: (tests/flow/test_selftest.py) is in the slow set too; bench/board_builds.py places it.
SLOW_KEYS = {"u1"}


@pytest.mark.parametrize("key", [pytest.param(k, marks=pytest.mark.slow) if k in SLOW_KEYS
                                 else k for k in ["t1", "t2", "t4", "d4", "u1", "n3"]])
def test_accelerator(key, seed, tmp_path):
    _run(CONFIGS[key], seed, soak=SOAK[key], stats=tmp_path / "soak.json",
         max_dim=MAX_DIM[key])


def test_rejects_narrow_ring():
    with pytest.raises(ValueError, match="ring_payload_width must be at least 64 for the "
                                         "accelerator, not 32"):
        Accelerator(TINY.replace(ring_payload_width=32, axi_data_width=32))
    with pytest.raises(TypeError, match="config must be an AcceleratorConfig, not 3"):
        Accelerator(3)
    with pytest.raises(TypeError, match="reset_buffer must be callable"):
        Accelerator(TINY, reset_buffer="DCCA")


def test_reset_buffer_drives_the_data_planes_reset():
    """``reset_buffer`` gets the plane-reset register once, and what it returns is the reset of
    the data plane's clock domain (every ring, tile node and ResultWriter flip-flop): in the
    RTLIL the plane domain's reset is the buffer's output, not the register."""
    from amaranth.back import rtlil
    from amaranth.hdl import Signal

    calls = []

    def buf(m, sig, name):
        out = Signal(name=f"{name}_buffered")
        m.d.comb += out.eq(~~sig)
        calls.append((sig.name, name))
        return out

    text = rtlil.convert(Accelerator(TINY, reset_buffer=buf), name="top")
    assert calls == [("plane_reset", "plane_reset")], calls
    assert "plane_reset_buffered" in text
    # the plane domain's reset wire is connected to the buffer's output
    assert "connect \\plane_rst \\plane_reset_buffered" in text, [
        line for line in text.splitlines() if "plane_rst" in line][:5]


@pytest.mark.slow
@pytest.mark.parametrize("tiles", [2, 8])
def test_accelerator_default_array(tiles, seed):
    """The default 4x4 array (and 8 tiles of it), more networks per run."""
    cfg = AcceleratorConfig.preset("default").replace(tiles=tiles, watchdog_cycles=8192,
                                                      name=f"default{tiles}")
    _run(cfg, seed, nets=4)
