"""``sparsemac sweep``: spec checking with line numbers, cycle source, resume after a kill,
the Dask executor on a LocalCluster, reports."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sparsemac.flow.spec import SpecError, Workload, load_spec
from sparsemac.flow.sweep import run_sweep
from sparsemac.hw.config import AcceleratorConfig

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
name: t
base: {preset: tiny}
grid:
  rows: [1, 2]
top: pe
synth: {target: generic}
cycles: roofline
workloads:
  - {name: fc, op: matmul, M: 16, K: 32, N: 4, format: [dense, bitmap], sparsity: 0.5}
  - {name: cv, op: conv2d, C: 2, H: 5, W: 5, O: 4, R: 3, S: 3, padding: 1, format: nm, nm: "2:4"}
"""


def _spec(tmp_path, text, name="s.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_good_spec_expands(tmp_path):
    spec = load_spec(_spec(tmp_path, GOOD))
    assert [c.rows for c in spec.configs] == [1, 2]
    assert [(w.name, w.format) for w in spec.workloads] == [("fc", "dense"), ("fc", "bitmap"),
                                                            ("cv", "nm")]
    assert spec.workloads[2].nm == (2, 4) and spec.workloads[2].sparsity == 0.5
    assert spec.n_points == 6


def test_grid_over_formats_skips_unbuilt_formats(tmp_path):
    """A grid may vary ``formats``: a workload runs only on the configs that build its format,
    and a format no config builds is a spec error."""
    text = GOOD.replace("rows: [1, 2]", "formats: [[dense], [dense, bitmap]]").replace(
        "format: nm, nm: \"2:4\"", "format: dense")
    spec = load_spec(_spec(tmp_path, text))
    assert [c.formats for c in spec.configs] == [("dense",), ("dense", "bitmap")]
    assert spec.n_points == 2 * 2 + 1        # fc dense + cv dense on both, fc bitmap on one
    res = run_sweep(spec, tmp_path / "out", progress=False, log=lambda *a: None)
    got = sorted((json.loads(r["params"])["formats"].__len__(), r["workload"], r["format"])
                 for r in res["rows"])
    assert got == [(1, "cv", "dense"), (1, "fc", "dense"), (2, "cv", "dense"),
                   (2, "fc", "bitmap"), (2, "fc", "dense")], got
    bad = _spec(tmp_path, text.replace("formats: [[dense], [dense, bitmap]]",
                                       "formats: [[dense], [dense, block]]"), "bad.yaml")
    with pytest.raises(SpecError, match="format 'bitmap' is not built into any config"):
        load_spec(bad)


@pytest.mark.parametrize("edit, line, message", [
    (("cycles: roofline", "cycles: roofline\nbogus: 1"), 8, "unknown key 'bogus'"),
    (("rows: [1, 2]", "rows: [1, 200]"), 4,
     "config point {'rows': 200}: rows must be between 1 and 64, not 200"),
    (("format: [dense, bitmap]", "format: [dense, bitmapp]"), 9,
     "format must be one of dense, bitmap, block, nm, not 'bitmapp'"),
    (('nm: "2:4"', 'nm: "3:5"'), 10, "nm must have M a power of two in 2..32"),
    (("K: 32", "K: -1"), 9, "K must be an integer >= 1, not -1"),
    (("top: pe", "top: nope"), 5, "top must be one of pe, mac_array"),
    (("synth: {target: generic}", "synth: {target: generic, fmax: true}"), 6,
     "fmax needs place and route: target ecp5 or ice40, not 'generic'"),
    (("cycles: roofline", "cycles: roofline\ncycles: auto"), 8, "duplicate key 'cycles'"),
    (("sparsity: 0.5", "sparsity: [0.5, 1.5]"), 9, "sparsity must be a number in [0, 1)"),
    (("cycles: roofline", "cycles: roofline\nrtl_sample: 2"), 8,
     "rtl_sample compares the RTL with the tile model: it needs cycles auto, tile_model or "
     "network, not roofline"),
    (("cycles: roofline", "cycles: roofline\nclock: fast"), 8,
     "clock must be one of auto, placed, none or {estimate_mhz: MHZ, note: TEXT}, not 'fast'"),
    (("cycles: roofline", "cycles: roofline\nclock: placed"), 8,
     "clock: placed needs place and route of every point: synth {target: ecp5 or ice40, "
     "fmax: true}"),
    (("cycles: roofline", "cycles: roofline\nclock: {estimate_mhz: 0, note: board}"), 8,
     "clock estimate_mhz must be a number of MHz in (0, 1000], not 0"),
    (("cycles: roofline", "cycles: roofline\nclock: {estimate_mhz: true, note: board}"), 8,
     "clock estimate_mhz must be a number of MHz in (0, 1000], not True"),
    (("cycles: roofline", "cycles: roofline\nclock: {estimate_mhz: 40}"), 8,
     "clock estimate needs a note: where the estimate comes from"),
    (("cycles: roofline", "cycles: roofline\nclock: {estimate_mhz: 40, note: ' '}"), 8,
     "clock estimate needs a note"),
    (("cycles: roofline", "cycles: roofline\nclock:\n  estimate_mhz: 40\n  note: b\n  mhz: 3"),
     11, "unknown clock key 'mhz'; known: estimate_mhz, note"),
    (("cycles: roofline", "cycles: auto\nrtl_sample: -1"), 8,
     "rtl_sample must be an integer between 0 and 64, not -1"),
    (("  rows: [1, 2]", "  rows: [1, 2\n"), 6, "not valid YAML: expected ',' or ']', but got "
     "':' (while parsing a flow sequence on line 4)"),
])
def test_spec_errors_name_file_and_line(tmp_path, edit, line, message):
    p = _spec(tmp_path, GOOD.replace(*edit))
    with pytest.raises(SpecError) as exc:
        load_spec(p)
    assert str(exc.value).startswith(f"{p}:{line}: "), str(exc.value)
    assert message in str(exc.value), str(exc.value)


@pytest.mark.parametrize("edit, line, message", [
    (("R: 3, S: 3, padding: 1", "R: 9, S: 3, padding: 1"), 10,
     "R must fit the padded input 7 x 7 (dilated kernel 9 x 3), not [9, 3]"),
    (('nm: "2:4"', 'nm: "2-4"'), 10, "nm must be 'N:M' or [N, M], not '2-4'"),
    (('nm: "2:4"', 'nm: "5:4"'), 10, "nm must have 1 <= N <= M, not '5:4'"),
])
def test_workloads_are_checked_by_the_network_schema(tmp_path, edit, line, message):
    """A workload is a layer of sparsemac.host.network: its checks, on the spec's line and
    key names."""
    p = _spec(tmp_path, GOOD.replace(*edit))
    with pytest.raises(SpecError) as exc:
        load_spec(p)
    assert str(exc.value) == f"{p}:{line}: {message}"


def test_workload_layer_is_a_layer_spec(tmp_path):
    spec = load_spec(_spec(tmp_path, GOOD))
    fc, cv = spec.workloads[1], spec.workloads[2]
    assert (fc.layer.op, fc.layer.fmt, fc.layer.density, fc.layer.mkn) == (
        "matmul", "bitmap", 0.5, (16, 32, 4))
    assert (cv.layer.fmt, cv.layer.nm, cv.layer.in_shape, cv.layer.out_shape, cv.layer.padding) \
        == ("nm", (2, 4), (2, 5, 5), (4, 5, 5), (1, 1))
    assert cv.label == "cv/nm/2:4" and cv.sparsity == 0.5


def test_cli_bad_spec_fails_before_any_work(tmp_path):
    p = _spec(tmp_path, GOOD.replace("M: 16", "M: 0"))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "sparsemac", "sweep", str(p), "-o", str(out)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2, r
    assert r.stderr.strip() == f"sparsemac sweep: error: {p}:9: M must be an integer >= 1, not 0"
    assert not out.exists(), "a bad spec must fail before anything is written"


def test_roofline_cycles_match_independent_count():
    """bitmap at 75 % sparsity: nnz = round(0.25 * M * K) exactly (unstructured pruning)."""
    from sparsemac.flow.cycles import roofline_source

    cfg = AcceleratorConfig.preset("tiny")
    m, k, n = 16, 64, 8
    for fmt, sp in (("bitmap", 0.75), ("dense", 0.75)):
        wl = Workload("fc", "matmul", (("M", m), ("K", k), ("N", n)), fmt, sp)
        c = roofline_source(wl, cfg, seed=3)
        nnz = round((1 - sp) * m * k)
        assert c["dense_macs"] == m * k * n
        assert c["effectual_macs"] == nnz * n, (fmt, c)
        work = (nnz if fmt == "bitmap" else m * k) * n
        assert c["cycles"] >= math.ceil(work / cfg.macs), (fmt, c)
        assert c["cycles"] >= math.ceil(c["weight_bytes"] / cfg.axi_bytes), (fmt, c)
        if fmt == "dense":
            assert c["cycles"] == c["dense_roofline_cycles"]


def _db_rows(db: Path) -> dict[str, tuple]:
    try:
        con = sqlite3.connect(db)
        try:
            return {r[0]: r[1:] for r in con.execute("SELECT key, run_id, computed_at FROM points")}
        finally:
            con.close()
    except sqlite3.OperationalError:
        return {}


def test_sweep_resumes_after_kill(tmp_path):
    """Kill a sweep mid-run; the rerun keeps every finished point and computes only the rest."""
    widths = [20, 22, 24, 26, 28, 30, 34, 36]
    p = _spec(tmp_path, f"""\
        name: kill
        base: {{preset: tiny}}
        grid:
          acc_width: {widths}
        top: pe
        synth: {{target: generic}}
        cycles: roofline
        workloads:
          - {{name: fc, op: matmul, M: 8, K: 16, N: 2, format: bitmap, sparsity: 0.5}}
        """)
    out = tmp_path / "out"
    env = {**os.environ, "SPARSEMAC_CACHE": str(tmp_path / "cache")}  # real synthesis each
    cmd = [sys.executable, "-m", "sparsemac", "sweep", str(p), "-o", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    db = out / "results.sqlite"
    deadline = time.monotonic() + 300
    while len(_db_rows(db)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    before = _db_rows(db)
    assert 2 <= len(before) < len(widths), (
        f"the kill should land mid-sweep: {len(before)} of {len(widths)} points were done")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    after = _db_rows(db)
    assert len(after) == len(widths)
    for key, val in before.items():
        assert after[key] == val, f"finished point {key[:12]} was recomputed: {val} -> {after[key]}"
    assert f"{len(widths)} points: {len(widths) - len(before)} computed, {len(before)} reused" \
        in r.stdout, r.stdout
    rows = list(__import__("csv").DictReader(open(out / "results.csv")))
    assert sorted(int(json.loads(x["params"])["acc_width"]) for x in rows) == widths


def test_dask_local_cluster_matches_local(tmp_path, monkeypatch):
    """The same sweep on a Dask LocalCluster (threads) gives the same rows as the local run."""
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("SPARSEMAC_CACHE", str(tmp_path / "cache"))
    spec = load_spec(_spec(tmp_path, GOOD))
    local = run_sweep(spec, tmp_path / "local", jobs=1, progress=False, log=lambda *_: None)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        res = run_sweep(spec, tmp_path / "dask", jobs=2, executor="dask",
                        scheduler=cluster.scheduler_address, progress=False,
                        log=lambda *_: None)
    assert res["computed"] == 6 and res["reused"] == 0
    skip = {"run_id", "computed_at", "synth_cached"}
    a = [{k: v for k, v in r.items() if k not in skip} for r in local["rows"]]
    b = [{k: v for k, v in r.items() if k not in skip} for r in res["rows"]]
    assert a == b
    assert {"results.csv", "results.md", "pareto.png"} <= {f.name for f in
                                                           (tmp_path / "dask").iterdir()}
    md = (tmp_path / "dask" / "results.md").read_text()
    assert md.count("| t-") == 6 and "speedup vs dense" in md


@pytest.mark.parametrize("fmt, sp, nm", [("dense", 0.5, None), ("bitmap", 0.75, None),
                                         ("block", 0.5, None), ("nm", 0.5, (2, 4))])
def test_tile_model_source_is_never_below_the_roofline(fmt, sp, nm):
    """The roofline is a lower bound on any execution: the tile model must not beat it."""
    from sparsemac.flow.cycles import resolve_source, tile_model_source

    assert resolve_source("auto") == "tile_model"
    cfg = AcceleratorConfig.preset("tiny").replace(tiles=2)
    wl = Workload("fc", "matmul", (("M", 16), ("K", 64), ("N", 4)), fmt, sp, nm)
    c = tile_model_source(wl, cfg, seed=1)
    assert c["cycles"] >= c["roofline_cycles"] > 0, c
    assert c["cycles"] == c["compute_cycles"] + c["load_cycles"], c


def test_grid_mapping_value_sets_parameters_together(tmp_path):
    """A grid value that is a mapping sets several parameters at once."""
    text = GOOD.replace("rows: [1, 2]", "shape: [{rows: 1, cols: 2}, {rows: 2, cols: 4}]")
    spec = load_spec(_spec(tmp_path, text))
    assert [(c.rows, c.cols) for c in spec.configs] == [(1, 2), (2, 4)]


def test_rtl_sample_points_spread_evenly():
    from sparsemac.flow.sweep import rtl_sample_points
    assert rtl_sample_points(10, 0) == set()
    assert rtl_sample_points(10, 1) == {0}
    assert rtl_sample_points(10, 3) == {0, 4, 9} or rtl_sample_points(10, 3) == {0, 5, 9}
    assert rtl_sample_points(3, 8) == {0, 1, 2}


def test_area_overhead_table():
    """Each config over the same config built dense-only; other varied parameters matched."""
    from sparsemac.flow.sweep import area_overhead

    def row(rows, formats, lut, ff):
        return {"params": json.dumps({"rows": rows, "formats": formats}), "LUT": lut, "FF": ff}
    got = area_overhead([row(2, ["dense"], 100, 50), row(2, ["dense", "nm"], 130, 70),
                         row(4, ["dense"], 200, 100), row(4, ["dense", "nm"], 300, 100),
                         row(8, ["dense", "nm"], 999, 9)])     # no dense twin: left out
    assert [(o["rows"], o["formats"]) for o in got] == [(2, "dense+nm"), (4, "dense+nm")]
    assert got[0]["lut_pct"] == pytest.approx(30) and got[0]["lutff_pct"] == pytest.approx(
        100 * (200 / 150 - 1))
    assert got[1]["lut_pct"] == pytest.approx(50) and got[1]["lutff_pct"] == pytest.approx(
        100 * (400 / 300 - 1))
    assert area_overhead([{"params": json.dumps({"rows": 2}), "LUT": 1, "FF": 1}]) == []


def test_rtl_sample_runs_the_tile_and_reports_the_model_error(tmp_path):
    """A point of the RTL sample runs the tile's RTL: its cycles sit next to the model's, the
    result equals golden, and the report has the comparison table."""
    text = """\
    name: r
    base: {preset: tiny}
    grid:
      formats: [[dense], [dense, nm]]
    top: pe
    synth: {target: generic}
    cycles: auto
    rtl_sample: 3
    workloads:
      - {name: fc, op: matmul, M: 8, K: 64, N: 2, format: [dense]}
      - {name: fc, op: matmul, M: 8, K: 64, N: 2, format: nm, nm: "2:4"}
    """
    spec = load_spec(_spec(tmp_path, text))
    res = run_sweep(spec, tmp_path / "out", progress=False, log=lambda *a: None)
    rtl = [r for r in res["rows"] if r["rtl_cycles"]]
    assert len(rtl) == 3, res["rows"]
    for r in rtl:
        assert r["rtl_exact"] == 1, r
        # the model is within 1 % of the RTL on the tile (docs/reports/sparsity.md)
        assert abs(r["rtl_model_error_pct"]) < 1.0, r
    md = (tmp_path / "out" / "results.md").read_text()
    assert "## Cycle model against the RTL (sample)" in md
    assert "## Sparse against dense area, same MAC count" in md


def test_network_source_is_what_sparsemac_run_reports():
    """``cycles: network``: the workload as a one-layer network on the whole accelerator
    (model engine + host.cycles), the same cycles ``sparsemac run --engine model`` reports
    (a too-wide matmul split into the same column jobs), never below the roofline; a conv2d
    past the tile buffers does not run on the build (no cycles, bound 'does not fit')."""
    from sparsemac.flow.cycles import network_source
    from sparsemac.host.network import network_from_dict
    from sparsemac.host.run import run

    cfg = AcceleratorConfig.preset("tiny").replace(tiles=2)
    for wl in (Workload("fc", "matmul", (("M", 16), ("K", 32), ("N", 4)), "nm", 0.5, (2, 4)),
               Workload("wide", "matmul", (("M", 4), ("K", 32), ("N", 300)), "dense", 0.0),
               Workload("cv", "conv2d", (("C", 1), ("H", 4), ("W", 4), ("O", 4), ("R", 2),
                                         ("S", 2), ("stride", 1), ("padding", 0),
                                         ("dilation", 1)), "bitmap", 0.5)):
        c = network_source(wl, cfg, seed=3)
        rep = run(network_from_dict(wl.network()), cfg, seed=3).report
        assert (c["cycles"], c["roofline_cycles"], c["jobs"]) == (
            rep["cycles"], rep["roofline_cycles"], rep["jobs"]), (wl.name, c, rep)
        assert c["cycles"] >= c["roofline_cycles"] > 0, c
        assert c["cycles"] == sum(c[f"{p}_cycles"] for p in ("fixed", "load", "compute",
                                                             "writeback")), c
        d = dict(wl.dims)
        macs = d["M"] * d["K"] * d["N"] if wl.op == "matmul" else 4 * 4 * 3 * 3
        assert c["dense_macs"] == macs, c       # the conv: O x C*R*S x OH*OW = 4 x 4 x 9
    assert network_source(Workload("wide", "matmul", (("M", 4), ("K", 32), ("N", 300)),
                                   "dense", 0.0), cfg)["jobs"] > 1
    big = Workload("big", "conv2d", (("C", 8), ("H", 40), ("W", 40), ("O", 4), ("R", 3),
                                     ("S", 3), ("stride", 1), ("padding", 1), ("dilation", 1)),
                   "dense", 0.0)
    c = network_source(big, cfg)
    assert c["cycles"] is None and c["bound"] == "does not fit" and "BAD_SHAPE" in c["note"]


def test_sweep_with_network_cycles_reports_points_that_do_not_fit(tmp_path):
    """A sweep with ``cycles: network``: every point's cycles from the whole-accelerator model;
    a point whose layer the build cannot run has no cycles ("does not fit"), not invented ones.
    Nothing is synthesized, so no point has a clock: no throughput anywhere (not target_mhz)."""
    text = """\
        name: net
        base: {preset: tiny}
        grid:
          tiles: [1, 2]
        top: accelerator
        synth: none
        cycles: network
        workloads:
          - {name: fc, op: matmul, M: 16, K: 32, N: 4, format: [dense, bitmap], sparsity: 0.5}
          - {name: cv, op: conv2d, C: 1, H: 4, W: 4, O: 4, R: 2, S: 2, format: nm, nm: "2:4"}
          - {name: big, op: conv2d, C: 8, H: 40, W: 40, O: 4, R: 3, S: 3, padding: 1,
             format: dense}
        """
    res = run_sweep(load_spec(_spec(tmp_path, text)), tmp_path / "out", jobs=1, progress=False,
                    log=lambda *_: None)
    rows = {(r["config"], r["workload"], r["format"]): r for r in res["rows"]}
    assert len(rows) == 8 and all(r["cycle_source"] == "network" for r in rows.values())
    for (_cfg, wl, _fmt), r in rows.items():
        assert (r["clock_source"], r["clock_mhz"], r["gops"]) == ("none", None, None), r
        if wl == "big":
            assert r["cycles"] is None and r["bound"] == "does not fit"
        else:
            assert r["cycles"] > 0 and r["dense_macs"] > 0, r
    md = (tmp_path / "out" / "results.md").read_text()
    assert "cycles from `network`" in md and "| does not fit |" in md
