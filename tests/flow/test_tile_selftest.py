"""TileSelfTest (flow/tile_selftest.py): the job against independent references, and the
hardware on Verilator: it passes, and fails on a wrong value, a corrupt ROM or a tile error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sparsemac.flow.boards import board_config
from sparsemac.flow.tile_selftest import TileSelfTest, compile_tile_selftest
from sparsemac.golden.format_check import unpack_weights
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.sim.runner import run_cocotb


def _run(dut, tmp_path, seed, wrong=0, max_cycles=50_000) -> dict:
    out = tmp_path / f"tile_selftest{wrong}.json"
    run_cocotb(dut, toplevel="tile_selftest", test_module="tests.flow.cocotb_selftest",
               env={"SPARSEMAC_MAX_CYCLES": str(max_cycles), "SPARSEMAC_SELFTEST_OUT": str(out),
                    "SPARSEMAC_WRONG_BYTE": str(wrong)}, seed=seed, tag=tmp_path.name)
    return json.loads(out.read_text())


def _bytes_le(words, nbytes):
    return np.frombuffer(b"".join(w.to_bytes(nbytes, "little") for w in words), np.uint8)


@pytest.mark.parametrize("fmt", ["dense", "bitmap", "block", "nm"])
def test_job_matches_float64_reference(fmt, seed):
    """The ROM contents against float64 NumPy: the weight words decode to a matrix of the
    stated density whose product with the activation entries is the expected ROM."""
    cfg = AcceleratorConfig(rows=3, cols=2, out_lanes=1, act_buf_depth=64,
                            weight_buf_depth=256)
    t = compile_tile_selftest(cfg, fmt=fmt, seed=seed % 10_000)
    m, k, n = t.shape
    ncg = -(-n // cfg.cols)
    W = unpack_weights(_bytes_le(t.words, cfg.axi_bytes))[:m, :k]
    acts = _bytes_le(t.acts, cfg.cols).view(np.int8).reshape(ncg, k, cfg.cols)
    X = acts.transpose(1, 0, 2).reshape(k, ncg * cfg.cols).astype(np.float64)
    ref = W.astype(np.float64) @ X
    assert (m, k, n) == (6, 32, 4) and t.fmt == fmt, (t.shape, t.fmt)
    assert np.array_equal(ref, t.expected.astype(np.float64)), f"seed={seed} {fmt}"
    assert np.count_nonzero(W) / W.size == pytest.approx(t.density)
    assert (t.density > 0.9) if fmt == "dense" else (0.4 < t.density <= 0.5), t.density


def test_job_errors():
    cfg = board_config("icebreaker")
    with pytest.raises(ValueError, match="fmt must be one of the built formats dense, nm, "
                                         "not 'bitmap'"):
        compile_tile_selftest(cfg, fmt="bitmap")
    with pytest.raises(ValueError, match=r"ceil\(n / cols\) \* k must be at most act_buf_depth "
                                         r"= 32, not 34 \(n=8, k=17\)"):
        compile_tile_selftest(cfg, k=17)        # two column groups of 4: at k = 16 it fits
    compile_tile_selftest(cfg, k=16)
    with pytest.raises(ValueError, match="the weight image must fit weight_buf_depth = 64 "
                                         "words, not"):
        compile_tile_selftest(cfg, fmt="dense", m=40)
    with pytest.raises(ValueError, match="corrupt must be a value index between 0 and 15, "
                                         "not 16"):           # M=4 rows of N=4 values
        compile_tile_selftest(cfg, corrupt=16)
    with pytest.raises(ValueError, match="m must be between 1 and 32768, not -1"):
        compile_tile_selftest(cfg, m=-1)
    with pytest.raises(ValueError, match="timeout_cycles must be a positive integer, not 0"):
        TileSelfTest(cfg, timeout_cycles=0)


def test_tile_selftest_passes_and_fails(tmp_path, seed):
    """The iCEBreaker build on Verilator: the run passes; a wrong expected value (at run time)
    fails with one mismatch; a ROM with one corrupt value (random) fails with one mismatch."""
    cfg = board_config("icebreaker")
    job_seed = seed % 10_000
    where = f"seed={seed} (job seed {job_seed})"
    dut = TileSelfTest(cfg, seed=job_seed)
    n_results = dut.test.expected.size // cfg.cols
    good = _run(dut, tmp_path, seed)
    assert good["done"] == 1 and good["ok"] == 1 and good["fail"] == 0, f"{good}; {where}"
    assert good["mismatches"] == 0 and good["results"] == n_results, good
    assert good["tile_error"] == 0 and good["timed_out"] == 0, good
    assert 0 < good["cycles"] < good["cycles_to_done"], good
    bad = _run(dut, tmp_path, seed, wrong=1)
    assert bad["done"] == 1 and bad["ok"] == 0 and bad["fail"] == 1, f"{bad}; {where}"
    assert bad["mismatches"] == 1 and bad["results"] == n_results, bad
    corrupt = seed % dut.test.expected.size
    worse = _run(TileSelfTest(cfg, seed=job_seed, corrupt=corrupt), tmp_path, seed)
    assert worse["fail"] == 1 and worse["mismatches"] == 1, f"{worse}; corrupt={corrupt}; {where}"


@pytest.mark.slow
def test_tile_selftest_reports_a_tile_error(tmp_path, seed):
    """An image compiled for a bigger weight buffer than the tile has: the tile sets
    ``error`` (overflow), and the self-test must fail even if the values happen to match."""
    cfg = board_config("icebreaker")
    big = cfg.replace(weight_buf_depth=4 * cfg.weight_buf_depth)
    dut = TileSelfTest(big, fmt="dense", m=20, seed=seed % 10_000)   # 88 words > 64
    dut.cfg = cfg                                  # ... but build the small tile
    res = _run(dut, tmp_path, seed)
    assert res["done"] == 1 and res["fail"] == 1 and res["ok"] == 0, res
    assert res["tile_error"] == 1, f"{res}; seed={seed}"
