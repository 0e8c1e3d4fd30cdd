"""Board builds: the self-test core against the golden model, the fit check, real builds."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from flow.boards import BOARDS, board_config, build_board
from flow.selftest import SelfTestCore, expected_checksum, lfsr_sequence


def _run_selftest(dut, cycles):
    res = {}

    async def tb(ctx):
        for _ in range(cycles + dut.mul_pipeline + 8):
            await ctx.tick()
        res.update(done=ctx.get(dut.done), ok=ctx.get(dut.ok), chk=ctx.get(dut.checksum))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return res


def test_lfsr_is_maximal_galois():
    s = lfsr_sequence(3, seed=1)
    assert s == [1, 0x80200003, (0x80200003 >> 1) ^ 0x80200003]
    assert len(set(lfsr_sequence(5000))) == 5000


def test_selftest_core_passes_with_golden_checksum_and_fails_otherwise(seed, rng):
    rows, cols = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    acc_width, pipe = int(rng.choice([20, 24, 32])), int(rng.integers(0, 4))
    cycles = int(rng.integers(20, 200))
    exp = expected_checksum(rows, cols, acc_width, cycles)
    good = _run_selftest(SelfTestCore(rows=rows, cols=cols, acc_width=acc_width,
                                      mul_pipeline=pipe, cycles=cycles), cycles)
    where = f"rows={rows} cols={cols} acc_width={acc_width} mul_pipeline={pipe} seed={seed}"
    assert good == {"done": 1, "ok": 1, "chk": exp}, f"expected chk {exp}, got {good}; {where}"
    bad = _run_selftest(SelfTestCore(rows=rows, cols=cols, acc_width=acc_width,
                                     mul_pipeline=pipe, cycles=cycles, expected=exp ^ 1), cycles)
    assert bad["done"] == 1 and bad["ok"] == 0, f"a wrong constant passed: {bad}; {where}"


@pytest.mark.flow
def test_board_that_does_not_fit_is_not_built(tmp_path, monkeypatch):
    """A 4x4 array needs 16 SB_MAC16: the iCEBreaker's UP5K has 8."""
    monkeypatch.setenv("SPARSEMAC_CACHE", str(tmp_path / "cache"))
    cfg = board_config("icebreaker").replace(rows=4, cols=4, out_lanes=4)
    rep = build_board("icebreaker", tmp_path / "out", cfg, write_constraints=False)
    assert rep["result"] == "does not fit icebreaker (ice40 up5k): DSP 16 > 8", rep["result"]
    assert not (tmp_path / "out" / "build").exists()
    assert (tmp_path / "out" / "report.md").read_text().count("does not fit") == 1


@pytest.mark.slow
@pytest.mark.flow
@pytest.mark.parametrize("board", list(BOARDS))
def test_board_build(board, tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEMAC_CACHE", str(tmp_path / "cache"))
    cfg = board_config(board)
    rep = build_board(board, tmp_path, cfg, cycles=300, write_constraints=False)
    assert rep["result"] == "ok"
    assert rep["area"]["DSP"] == cfg.rows * cfg.cols, rep["area"]
    assert not rep["device_fit_problems"]
    assert rep["fmax_mhz"] and rep["fmax_mhz"] > rep["board_clock_mhz"], rep
    bit = tmp_path / rep["bitstream"]
    assert bit.stat().st_size > 10_000, bit
