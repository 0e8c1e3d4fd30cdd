"""The accelerator top on Verilator (tests/sim/cocotb_accelerator.py): one build per config."""

import json

import pytest
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.top.accelerator import Accelerator
from sparsemac.sim.runner import run_cocotb

TINY = AcceleratorConfig.preset("tiny").replace(watchdog_cycles=4096)
CONFIGS = {
    "t1": TINY,
    "t2": TINY.replace(tiles=2, axi_data_width=32, name="tiny2"),
    "t4": TINY.replace(tiles=4, rows=1, cols=4, out_lanes=2, axi_data_width=128,
                       ring_payload_width=128, name="tiny4"),
}


def _run(cfg, seed, testcase=None, nets=2):
    run_cocotb(Accelerator(cfg), toplevel="accelerator",
               test_module="tests.sim.cocotb_accelerator", testcase=testcase, seed=seed,
               env={"SPARSEMAC_CFG": json.dumps(cfg.to_dict()), "SPARSEMAC_NETS": str(nets)},
               tag=cfg.name)


@pytest.mark.parametrize("key", ["t1", "t2", "t4"])
def test_accelerator(key, seed):
    _run(CONFIGS[key], seed)


def test_rejects_narrow_ring():
    with pytest.raises(ValueError, match="ring_payload_width must be at least 64 for the "
                                         "accelerator, not 32"):
        Accelerator(TINY.replace(ring_payload_width=32, axi_data_width=32))
    with pytest.raises(TypeError, match="config must be an AcceleratorConfig, not 3"):
        Accelerator(3)


@pytest.mark.slow
@pytest.mark.parametrize("tiles", [2, 8])
def test_accelerator_default_array(tiles, seed):
    """The default 4x4 array (and 8 tiles of it), more networks per run."""
    cfg = AcceleratorConfig.preset("default").replace(tiles=tiles, watchdog_cycles=8192,
                                                      name=f"default{tiles}")
    _run(cfg, seed, nets=4)
