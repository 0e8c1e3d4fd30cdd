"""Board builds: configs, the Yosys script rewrite, the fit check and real builds."""

from __future__ import annotations

import pytest
from sparsemac.flow.boards import (
    BOARDS,
    BoardTop,
    _split_script,
    _use_classic_abc,
    board_config,
    build_board,
    format_board_report,
)
from sparsemac.flow.selftest import AccelSelfTest
from sparsemac.flow.tile_selftest import TileSelfTest


@pytest.mark.parametrize("board", list(BOARDS))
def test_board_configs_compile_a_sparse_selftest(board):
    cfg = board_config(board)
    core = BoardTop(BOARDS[board], cfg).core
    assert isinstance(core, {"ecp5": AccelSelfTest, "ice40": TileSelfTest}[BOARDS[board].target])
    t = core.test
    assert t.fmt != "dense" and t.fmt in cfg.formats, t.fmt
    if isinstance(core, AccelSelfTest):
        assert t.sram_depth * cfg.axi_bytes >= len(t.image)
    else:
        assert len(t.words) <= cfg.weight_buf_depth and len(t.acts) <= cfg.act_buf_depth
    assert cfg.macs <= {"ecp5": 156, "ice40": 8}[BOARDS[board].target]   # DSPs of the device
    d = core.describe()
    assert d["format"] == t.fmt and d["mkn"] == list(t.shape), d
    report = {"board": board, "target": "t", "device": "d", "config": cfg.to_dict(),
              "self_test": d, "result": "does not fit (a test)", "seconds": 1}
    text = format_board_report(report)
    assert d["summary"] in text and "**does not fit (a test)**" in text, text


def test_unknown_board_is_an_error():
    with pytest.raises(ValueError, match="board must be one of ulx3s-85f, icebreaker, not 'x'"):
        board_config("x")
    with pytest.raises(ValueError, match="abc must be one of abc9, abc, auto, not 'yes'"):
        build_board("icebreaker", "/nonexistent", abc="yes")


def test_build_script_split_and_classic_abc(tmp_path):
    sh = ('#!/bin/sh\nset -e\n: ${YOSYS:=yosys}\n"$YOSYS" -q -l t.rpt t.ys\n'
          '"$NEXTPNR_ICE40" --json t.json --asc t.asc\n"$ICEPACK" t.asc t.bin\n')
    synth, rest = _split_script(sh)
    assert synth.splitlines()[-1] == '"$YOSYS" -q -l t.rpt t.ys' and "NEXTPNR" not in synth
    assert "$YOSYS\"" not in rest and rest.count(": ${YOSYS:=yosys}") == 1
    assert rest.splitlines()[-2:] == ['"$NEXTPNR_ICE40" --json t.json --asc t.asc',
                                      '"$ICEPACK" t.asc t.bin']
    ys = tmp_path / "t.ys"
    ys.write_text("read_rtlil t.il\n    synth_ecp5  -top t\nwrite_json t.json\n")
    _use_classic_abc(ys, "ecp5")
    assert ys.read_text().splitlines() == [
        "read_rtlil t.il", "synth_ecp5  -top t -run :map_luts",
        "techmap -map +/lattice/latches_map.v", "abc -lut 4:7 -dress", "clean",
        "synth_ecp5  -top t -run map_cells:", "write_json t.json"]


@pytest.mark.slow
@pytest.mark.flow
def test_board_that_does_not_fit_is_not_placed(tmp_path):
    """A 4x4 array needs 16 multipliers: the iCEBreaker's UP5K has 8 SB_MAC16."""
    cfg = board_config("icebreaker").replace(rows=4, cols=4, out_lanes=4)
    rep = build_board("icebreaker", tmp_path / "out", cfg, write_constraints=False)
    assert rep["result"].startswith("does not fit icebreaker (ice40 up5k): "), rep["result"]
    assert f"DSP {rep['area']['DSP']} > 8" in rep["result"] and rep["area"]["DSP"] > 8
    assert not (tmp_path / "out" / "build" / "sparsemac_icebreaker.asc").exists()
    assert (tmp_path / "out" / "report.md").read_text().count("does not fit") == 1


@pytest.mark.flow
@pytest.mark.parametrize("board", [
    pytest.param("icebreaker"),                                # about 45 s: in every run
    pytest.param("ulx3s-85f", marks=pytest.mark.slow)])        # about 10 min
def test_board_build(board, tmp_path):
    cfg = board_config(board)
    rep = build_board(board, tmp_path, cfg, write_constraints=False)
    assert rep["result"] == "ok", rep["result"]
    assert not rep["fit_problems"]
    assert rep["area"]["BRAM"] > 0, rep["area"]          # the SRAM and the tile buffers
    assert rep["fmax_mhz"] and rep["timing"]["meets_board_clock"], rep
    bit = tmp_path / rep["bitstream"]
    assert bit.stat().st_size > 10_000, bit
    text = (tmp_path / "report.md").read_text()
    assert f"Fmax {rep['fmax_mhz']} MHz" in text and rep["self_test"]["summary"] in text, text
    if BOARDS[board].target == "ice40":
        lc = rep["pnr_utilization"]["ICESTORM_LC"]
        assert lc["used"] <= lc["available"] and "Logic cells after packing" in text, lc


def test_ulx3s_top_with_a_pll_core_clock(tmp_path):
    """``clock_mhz``: the ULX3S top runs its core from an EHXPLLL, the constraints file
    names the core clock's frequency, and boards without a PLL model refuse it."""
    import importlib

    board = BOARDS["ulx3s-85f"]
    cfg = board_config("ulx3s-85f").replace(rows=2, cols=2, out_lanes=2,
                                            formats=("dense", "nm"))
    top = BoardTop(board, cfg, clock_mhz=100.0)
    assert top.clock_mhz == 100.0 and top.pll.clkfb_div * 25 // top.pll.clki_div == 100
    mod, cls = board.platform.split(":")
    plan = getattr(importlib.import_module(mod), cls)().prepare(top, name="t")
    files = plan.files
    il = files["t.il"]
    assert "EHXPLLL" in il and "rst_sync" in il
    # the core's reset and the data plane's reset each drive their loads from a global buffer
    assert il.count("cell \\DCCA ") == 2, il.count("cell \\DCCA ")
    assert "core_reset_global" in il and "plane_reset_global" in il
    lpf = files["t.lpf"]
    assert "FREQUENCY NET" in lpf and "100000000" in lpf.replace(".0", ""), lpf
    assert BoardTop(board, cfg).clock_mhz == 25.0 and BoardTop(board, cfg).pll is None
    with pytest.raises(ValueError, match="clock_mhz needs a PLL model for ice40"):
        BoardTop(BOARDS["icebreaker"], board_config("icebreaker"), clock_mhz=24.0)


def test_placement_tries_the_next_seed(tmp_path, monkeypatch):
    """`_place`: a seed that finds no legal placement or outlasts its time hands over to the
    next one (the seed that placed and the failed ones are reported); any other failure, or the
    last seed failing, raises with the seeds tried."""
    import sparsemac.flow.boards as boards

    script = "nextpnr --seed 1 --log x.tim\n"
    outcomes = {}
    seen = []

    def fake_step(text, build_dir, step, top_name, name, timeout=None):
        seed = int(text.split("--seed ")[1].split()[0])
        seen.append((seed, timeout))
        what = outcomes.get(seed, "ok")
        (build_dir / "pnr.log").write_text(
            "ERROR: Unable to find legal placement for all cells\n" if what == "legal" else
            "ERROR: something else\n" if what == "other" else "ok\n")
        if what == "timeout":
            raise boards.SynthError(f"board build {name} timed out in pnr after {timeout} s")
        if what != "ok":
            raise boards.SynthError(f"board build {name} failed in pnr (exit 1)")

    monkeypatch.setattr(boards, "_run_step", fake_step)
    outcomes.update({1: "legal", 2: "timeout"})
    assert boards._place(script, tmp_path, "top", "icebreaker", "ice40") == (
        3, [{"seed": 1, "why": "no legal placement"}, {"seed": 2, "why": "timed out"}])
    assert seen == [(1, 120), (2, 120), (3, 120)]
    seen.clear()
    assert boards._place(script, tmp_path, "top", "ulx3s-85f", "ecp5") == (
        3, [{"seed": 1, "why": "no legal placement"}, {"seed": 2, "why": "timed out"}])
    assert seen == [(1, None), (2, None), (3, None)]    # an ECP5 attempt is not timed out
    outcomes.update({1: "other"})
    with pytest.raises(boards.SynthError, match=r"failed in pnr \(exit 1\) \(placer seeds "
                                                r"tried: 1\)$"):
        boards._place(script, tmp_path, "top", "icebreaker", "ice40")
    outcomes.update({1: "legal", 2: "legal", 3: "legal"})
    with pytest.raises(boards.SynthError, match=r"\(placer seeds tried: 1, 2, 3\)$"):
        boards._place(script, tmp_path, "top", "icebreaker", "ice40")


def test_a_step_that_outlasts_its_time_is_stopped(tmp_path):
    """`_run_step` with a timeout stops the tool the script started (its process group), not
    only the shell, and says so in one line."""
    import os
    import time

    from sparsemac.flow.boards import SynthError, _run_step

    t0 = time.monotonic()
    with pytest.raises(SynthError, match=r"board build b timed out in pnr after 0.5 s"):
        _run_step("sleep 30 & echo $! > child.pid; wait\n", tmp_path, "pnr", "top", "b",
                  timeout=0.5)
    assert time.monotonic() - t0 < 10
    pid = int((tmp_path / "child.pid").read_text())
    # (without the process group kill the sleep would still be running: state S)
    time.sleep(0.2)
    stat = f"/proc/{pid}/stat"      # gone, or a zombie nobody reaped yet: not running
    assert not os.path.exists(stat) or open(stat).read().rsplit(")", 1)[1].split()[0] == "Z"
