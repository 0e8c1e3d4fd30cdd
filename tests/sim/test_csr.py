"""CsrBank (AXI4-Lite registers) on Verilator, driven by cocotbext-axi's AxiLiteMaster."""

import pytest
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.top.csr_bank import CsrBank
from sparsemac.sim.runner import run_cocotb


@pytest.mark.parametrize("preset", ["default", "tiny"])
def test_csr_bank_with_axil_master(preset):
    cfg = AcceleratorConfig.preset(preset)
    run_cocotb(CsrBank(cfg), toplevel="csr_bank", test_module="tests.sim.cocotb_csr",
               cfg=cfg, tag=preset)
