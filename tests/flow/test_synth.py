"""``sparsemac synth``: Yosys area, nextpnr Fmax, the device fit check and the result cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sparsemac.flow.synth import check_fit, classify_cells, synth
from sparsemac.hw.config import AcceleratorConfig

ROOT = Path(__file__).resolve().parents[2]
TINY = AcceleratorConfig.preset("tiny")

pytestmark = pytest.mark.flow


def test_classify_and_fit_rules():
    a = classify_cells("ecp5", {"LUT4": 10, "CCU2C": 3, "TRELLIS_FF": 7, "MULT18X18D": 2,
                                "DP16KD": 1, "TRELLIS_DPR16X4": 1})
    assert a == {"LUT": 10 + 6 + 4, "FF": 7, "DSP": 2, "BRAM": 1, "CARRY": 3, "LUTRAM": 1}
    b = classify_cells("ice40", {"SB_LUT4": 5, "SB_DFFER": 2, "SB_DFF": 1, "SB_MAC16": 1,
                                 "SB_CARRY": 4, "SB_RAM40_4K": 2})
    assert b == {"LUT": 5, "FF": 3, "DSP": 1, "BRAM": 2, "CARRY": 4, "LUTRAM": 0}
    assert check_fit({"LUT": 9, "FF": 1, "DSP": 9, "BRAM": 0},
                     {"LUT": 10, "FF": 10, "DSP": 8, "BRAM": 30}) == ["DSP 9 > 8"]


def test_pe_generic_area_and_cache(tmp_path, monkeypatch):
    """FFs of a PE: acc_width + mul_pipeline stages of (product + valid + clear)."""
    monkeypatch.setenv("SPARSEMAC_CACHE", str(tmp_path))
    cfg = TINY.replace(acc_width=24, mul_pipeline=1)
    first = synth(cfg, "pe", target="generic")
    assert not first["cached"]
    expected_ff = cfg.acc_width + cfg.mul_pipeline * (2 * cfg.data_width + 2)
    assert first["area"]["FF"] == expected_ff, first["area"]
    assert first["area"]["LUT"] > 0 and first["fmax_mhz"] is None
    again = synth(cfg, "pe", target="generic")
    assert again["cached"] and again["area"] == first["area"]
    assert len(list((tmp_path / "synth").glob("*.json"))) == 1


def test_pe_ecp5_area_and_fmax(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEMAC_CACHE", str(tmp_path))
    res = synth(TINY, "pe", target="ecp5")
    assert res["area"]["DSP"] == 1, res["cells"]  # the int8 multiply maps onto one MULT18X18D
    assert res["area"]["FF"] == TINY.acc_width + TINY.mul_pipeline * 18, res["area"]
    assert res["pnr"] == "ok (out of context)" and res["fits"]
    assert res["fmax_mhz"] is not None and res["fmax_mhz"] > 50, res
    assert res["pnr_utilization"]["MULT18X18D"]["used"] == 1


def test_over_full_device_is_not_placed(tmp_path, monkeypatch):
    """3x3 MACs need 9 SB_MAC16; an iCE40 UP5K has 8: report it, never start nextpnr."""
    monkeypatch.setenv("SPARSEMAC_CACHE", str(tmp_path))
    cfg = TINY.replace(rows=3, cols=3, out_lanes=3)
    r = subprocess.run([sys.executable, "-m", "sparsemac", "synth", "--preset", "tiny", "--set",
                        "rows=3", "--set", "cols=3", "--set", "out_lanes=3", "--top",
                        "mac_array", "--target", "ice40", "--json"], cwd=ROOT,
                       capture_output=True, text=True,
                       env={**__import__("os").environ, "SPARSEMAC_CACHE": str(tmp_path)})
    assert r.returncode == 1, r.stderr
    res = json.loads(r.stdout)
    assert res["area"]["DSP"] == cfg.rows * cfg.cols
    assert not res["fits"] and res["fit_problems"] == ["DSP 9 > 8"]
    assert res["pnr"] == "not run: does not fit ice40 up5k (DSP 9 > 8)"
    assert res["fmax_mhz"] is None and "pnr" not in res["seconds"]


def test_cli_synth_errors(tmp_path):
    def run(*a):
        return subprocess.run([sys.executable, "-m", "sparsemac", "synth", *a], cwd=ROOT,
                              capture_output=True, text=True)

    r = run("--preset", "tiny", "--top", "pe", "--target", "vhdl")
    assert r.returncode == 2
    assert r.stderr.strip() == ("sparsemac synth: error: --target must be one of ecp5, ice40, "
                                "xilinx, generic, not 'vhdl'")
    r = run("--preset", "tiny", "--top", "pe", "--target", "ecp5", "--device", "99k")
    assert r.returncode == 2
    assert r.stderr.strip() == ("sparsemac synth: error: device must be one of 85k, 45k, 25k, "
                                "12k for ecp5, not '99k'")
