"""bench/ops_report.py without a simulation: its cases on the model engine (every case compiles
with the hardware's limits and is bit-exact; the one that does not fit the default build is
listed with the model engine's reason) and the report's table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from sparsemac.hw.config import AcceleratorConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_ops_report",
                                                  ROOT / "bench" / "ops_report.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_cases_on_the_model_engine(bench):
    cfg = AcceleratorConfig.preset("default")
    rows, skipped = bench.measure(cfg, 1, engine="model", only="16x8x8", log=lambda m: None)
    ops = {r["op"] for r in rows}
    assert {"conv2d 3x3", "pointwise 1x1", "depthwise 3x3", "depthwise 3x3/2",
            "residual add"} <= ops, ops
    assert not skipped, skipped
    for r in rows:
        assert r["mismatches"] == 0 and r["model_error"] == 0, r
        assert r["roofline"] >= 1 and r["over_roofline"] == r["cycles"] / r["roofline"], r
    add = next(r for r in rows if r["op"] == "residual add")
    assert add["as"] == "matmul" and add["k"] == 32, add      # R + C rows, R = C = 16
    text = bench.report(rows, skipped, cfg, seed=1, engine="model", commit="abc1234",
                        wall=6.0, argv=" --engine model")
    table = [ln for ln in text.splitlines() if ln.startswith("| ") and " cycles |" not in ln
             and "% |" in ln]
    assert len(table) == len(rows), table
    assert "design `abc1234`" in text and "`python bench/ops_report.py --engine model`" in text


def test_a_case_the_tile_buffers_refuse_is_listed(bench):
    cfg = AcceleratorConfig.preset("default")
    rows, skipped = bench.measure(cfg, 1, engine="model", only="64x8x8 +", log=lambda m: None)
    assert rows == [] and len(skipped) == 1, (rows, skipped)
    assert skipped[0]["reason"].startswith("BAD_SHAPE"), skipped
    assert "act_entries 2048 > 1024" in skipped[0]["reason"], skipped
