"""AccelSelfTest (flow/selftest.py) on Verilator: the board configs pass, a wrong byte fails."""

from __future__ import annotations

import json

import pytest
from sparsemac.flow.boards import board_config
from sparsemac.flow.selftest import AccelSelfTest, compile_selftest, selftest_network
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.sim.runner import run_cocotb


def _run(dut, tmp_path, seed, max_cycles=200_000, wrong_byte=0) -> dict:
    out = tmp_path / f"selftest{wrong_byte}.json"
    run_cocotb(dut, toplevel="accel_selftest", test_module="tests.flow.cocotb_selftest",
               env={"SPARSEMAC_MAX_CYCLES": str(max_cycles), "SPARSEMAC_SELFTEST_OUT": str(out),
                    "SPARSEMAC_WRONG_BYTE": str(wrong_byte)}, seed=seed, tag=tmp_path.name)
    return json.loads(out.read_text())


def _tiny():
    return AcceleratorConfig.preset("tiny").replace(axi_data_width=32, formats=("dense", "nm"),
                                                     lut_enabled=False)


def test_selftest_passes_and_fails_on_a_wrong_byte(tmp_path, seed):
    """One build: the run passes; with ``wrong_byte`` (bit 0 of expected byte 0 flipped at
    run time) the same run fails with one mismatching word."""
    cfg = _tiny()
    dut = AccelSelfTest(cfg)
    good = _run(dut, tmp_path, seed)
    where = f"config {cfg.name} seed={seed}"
    assert good["done"] == 1 and good["ok"] == 1 and good["fail"] == 0, f"{good}; {where}"
    assert good["status"] & 0b111 == 0b010 and good["mismatches"] == 0, good
    assert 0 < good["cycles"] < good["cycles_to_done"], good
    bad = _run(dut, tmp_path, seed, wrong_byte=1)
    assert bad["done"] == 1 and bad["ok"] == 0 and bad["fail"] == 1, f"{bad}; {where}"
    assert bad["mismatches"] == 1 and bad["status"] & 0b111 == 0b010, bad


@pytest.mark.slow
@pytest.mark.parametrize("make_cfg", [_tiny, lambda: board_config("icebreaker"),
                                      lambda: board_config("ulx3s-85f")],
                         ids=["tiny-nm-32bit", "icebreaker", "ulx3s-85f"])
def test_selftest_passes_and_a_wrong_rom_byte_fails(make_cfg, tmp_path, seed):
    """Each board's config passes; a ROM built with one wrong byte (a random one) fails."""
    cfg = make_cfg()
    good = _run(AccelSelfTest(cfg), tmp_path, seed)
    where = f"config {cfg.name} seed={seed}"
    assert good["done"] == 1 and good["ok"] == 1 and good["fail"] == 0, f"{good}; {where}"
    assert good["status"] & 0b111 == 0b010 and good["mismatches"] == 0, good
    assert 0 < good["cycles"] < good["cycles_to_done"], good
    n = compile_selftest(cfg).out_bytes
    bad = _run(AccelSelfTest(cfg, corrupt=(seed % n)), tmp_path, seed)
    assert bad["done"] == 1 and bad["ok"] == 0 and bad["fail"] == 1, f"{bad}; {where}"
    assert bad["mismatches"] == 1 and bad["status"] & 0b111 == 0b010, bad


@pytest.mark.slow
def test_selftest_reports_an_accelerator_error(tmp_path, seed):
    """A layer the accelerator refuses (descriptor error) must light ``fail``, not ``ok``:
    the image is compiled for a build with more buffer space than the hardware has."""
    cfg = _tiny()
    net = selftest_network(cfg, m=2 * cfg.out_buf_depth)     # more rows than the output buffer
    big = cfg.replace(out_buf_depth=2 * cfg.out_buf_depth,
                      weight_buf_depth=4 * cfg.weight_buf_depth)
    dut = AccelSelfTest(big, network=net)
    dut.cfg = cfg                                           # ... but build the small hardware
    res = _run(dut, tmp_path, seed)
    assert res["done"] == 1 and res["fail"] == 1 and res["ok"] == 0, res
    assert res["status"] & 0b100, f"STATUS {res['status']:#x} has no error bit; seed={seed}"


def test_compile_selftest_layer_and_errors():
    cfg = _tiny()
    t = compile_selftest(cfg)
    assert t.fmt == "nm" and t.shape == (4, 32, 4)
    assert t.sram_depth * cfg.axi_bytes >= len(t.image) and t.limit - t.base == \
        t.sram_depth * cfg.axi_bytes
    assert len(t.expected_words) == -(-t.out_bytes // cfg.axi_bytes)
    with pytest.raises(ValueError, match="corrupt must be a byte index between 0 and 15, not 16"):
        compile_selftest(cfg, corrupt=16)
    with pytest.raises(ValueError, match="timeout_cycles must be a positive integer, not 0"):
        AccelSelfTest(cfg, timeout_cycles=0)
