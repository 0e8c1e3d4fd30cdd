"""The second simulator: a small subset of the cocotb benches on Icarus Verilog, each compared
cycle for cycle with the same run (same seed) on Verilator (docs/verification.md, "Second
simulator").

The cycles compared are every cocotb test's simulated time (``sim_time_duration`` in the
results XML) over the bench clock period: the benches wait on the DUT's handshakes, so one
cycle of difference in any handshake shows.  Icarus comes from the OS: without ``iverilog``
these tests skip with the reason.  The Verilator runs use the same hardware as
test_toolchain_smoke.py, test_csr.py, test_tile.py and test_accelerator.py, so they reuse those
builds.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.tile.pe import ProcessingElement
from sparsemac.hw.tile.tile import Tile
from sparsemac.hw.top.accelerator import Accelerator
from sparsemac.hw.top.csr_bank import CsrBank
from sparsemac.sim.runner import SIMULATORS, run_cocotb, simulator_choice, to_verilog
from sparsemac.sim.tb.base import CLK_NS
from sparsemac.sim.toolchain import icarus_version

from tests.sim.test_accelerator import CONFIGS as ACCEL_CONFIGS
from tests.sim.test_tile import SHAPES as TILE_SHAPES

NO_ICARUS = ("iverilog/vvp not on PATH: Icarus Verilog comes from the OS "
             "(Debian: apt-get install iverilog), not from the project's venv")


def _pe():
    pe = ProcessingElement(acc_width=32, mul_pipeline=2)
    return pe, dict(toplevel="pe", test_module="tests.sim.cocotb_pe",
                    params={"acc_width": 32, "latency": pe.latency})


def _csr():
    cfg = AcceleratorConfig.preset("tiny")
    return CsrBank(cfg), dict(toplevel="csr_bank", test_module="tests.sim.cocotb_csr", cfg=cfg)


def _tile():
    cfg = AcceleratorConfig(**TILE_SHAPES["2x2"])
    return Tile(cfg), dict(toplevel="tile", test_module="tests.sim.cocotb_tile", cfg=cfg,
                           params={"cases": 1}, testcase="matmul_conv_all_formats")


def _accelerator():
    cfg = ACCEL_CONFIGS["t1"]
    return Accelerator(cfg), dict(toplevel="accelerator",
                                  test_module="tests.sim.cocotb_accelerator", cfg=cfg,
                                  params={"nets": 1}, testcase="matmul_dense_and_nm")


BENCHES = {"pe": _pe, "csr_bank": _csr, "tile_2x2": _tile, "accelerator_t1": _accelerator}


def _cycles(test_dir) -> dict[str, int]:
    """``{cocotb test: cycles}`` of one run, from its results XML."""
    out = {}
    for case in ET.parse(test_dir / "results.xml").getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        out[case.get("name")] = round(float(props["sim_time_duration"]) / CLK_NS)
    return out


@pytest.mark.parametrize("bench", [pytest.param(b, marks=pytest.mark.slow) if b == "tile_2x2"
                                   else b for b in BENCHES])
def test_icarus_matches_verilator_cycles(bench, seed):
    version = icarus_version()
    if version is None:
        pytest.fail(NO_ICARUS)
    component, kw = BENCHES[bench]()
    verilog = to_verilog(component, kw["toplevel"])
    cycles, secs = {}, {}
    for sim in SIMULATORS:
        t0 = time.monotonic()
        test_dir = run_cocotb(component, verilog=verilog, seed=seed, simulator=sim,
                              coverage=False, tag=f"cmp-{bench}", **kw)
        secs[sim] = time.monotonic() - t0
        cycles[sim] = _cycles(test_dir)
    print(f"[sparsemac] {bench} (seed={seed}, {version}): "
          + "; ".join(f"{sim} {cycles[sim]} in {secs[sim]:.1f} s" for sim in SIMULATORS))
    assert cycles["verilator"], f"{bench}: no cocotb test ran (seed={seed})"
    assert cycles["icarus"] == cycles["verilator"], (
        f"{bench} (seed={seed}): cycles per cocotb test differ: expected Verilator's "
        f"{cycles['verilator']}, Icarus gave {cycles['icarus']}")


def test_simulator_choice(monkeypatch):
    monkeypatch.delenv("SPARSEMAC_SIM", raising=False)
    assert simulator_choice() == "verilator"
    monkeypatch.setenv("SPARSEMAC_SIM", "icarus")
    assert simulator_choice() == "icarus"
    assert simulator_choice("verilator") == "verilator"
    with pytest.raises(ValueError, match=r"^simulator \(SPARSEMAC_SIM\) must be one of "
                                         r"verilator, icarus, not 'vcs'$"):
        simulator_choice("vcs")


def test_icarus_has_no_coverage():
    with pytest.raises(ValueError, match="^coverage needs simulator 'verilator', not 'icarus'$"):
        run_cocotb(None, verilog="module t; endmodule\n", toplevel="t",
                   test_module="tests.sim.cocotb_pe", simulator="icarus", coverage=True)
