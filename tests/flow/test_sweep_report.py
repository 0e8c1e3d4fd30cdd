"""``sparsemac sweep`` reports (issue 18, sweeps tell the truth): the clock of every point
(placed, OOC estimate, spec estimate, none; never target_mhz), the whole-layer cycles of the
accelerator top, the Pareto plot's reference points and the re-render from a CSV.  Synthesis
is faked (`fake_synth`): nothing here runs Yosys or nextpnr."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest
from sparsemac.flow.spec import load_spec
from sparsemac.flow.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[2]


def _spec(tmp_path, text, name="s.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


#: tiles -> the Fmax the fake place and route gives; a config of 3 tiles "does not fit"
FAKE_FMAX = {1: 47.5, 2: 61.25}
TARGET_MHZ = 123        # the configs' target clock: never the clock of a throughput

ACCEL = f"""\
name: clk
base: {{preset: tiny}}
set: {{target_mhz: {TARGET_MHZ}}}
grid:
  tiles: [1, 2]
top: accelerator
synth: {{target: ecp5, device: 85k, fmax: true}}
workloads:
  - {{name: fc, op: matmul, M: 16, K: 32, N: 4, format: dense}}
  - {{name: fc, op: matmul, M: 16, K: 32, N: 4, format: nm, nm: "2:4"}}
"""


@pytest.fixture
def fake_synth(monkeypatch):
    """Synthesis without the tools: LUTs from the tile count, the Fmax of `FAKE_FMAX` when the
    sweep asks for place and route; the calls are recorded."""
    import sparsemac.flow.synth as synth_mod

    calls = []

    def synth(cfg, top, *, target, device, pnr):
        calls.append((cfg.tiles, top, target, pnr))
        fits = cfg.tiles in FAKE_FMAX
        return {"area": {"LUT": 9000 * cfg.tiles, "FF": 4000, "DSP": 9, "BRAM": 8},
                "fits": fits, "fmax_mhz": FAKE_FMAX[cfg.tiles] if pnr and fits else None,
                "cached": False}

    monkeypatch.setattr(synth_mod, "synth", synth)
    return calls


def _run(tmp_path, text, name="clk"):
    spec = load_spec(_spec(tmp_path, text, f"{name}.yaml"))
    res = run_sweep(spec, tmp_path / name, progress=False, log=lambda *_: None)
    csv_rows = list(__import__("csv").DictReader(open(tmp_path / name / "results.csv")))
    return spec, res["rows"], csv_rows, (tmp_path / name / "results.md").read_text()


def _gops(r, mhz):
    """Dense-equivalent GOP/s of a row at ``mhz``, from its own cycles and MAC count."""
    return 2 * r["dense_macs"] / (r["cycles"] / (mhz * 1e6)) / 1e9


def _md_rows(md: str, config: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines()
            if line.startswith(f"| {config} |")]


def test_placed_clock_is_the_points_own_fmax(tmp_path, fake_synth):
    """``top: accelerator`` placed per point: each point's throughput is at its own placed
    Fmax (``placed``), never at target_mhz; the cycles are the whole layer (``network``)."""
    from sparsemac.flow.cycles import network_source

    spec, rows, csv_rows, md = _run(tmp_path, ACCEL)
    assert {c[3] for c in fake_synth} == {True} and len(rows) == 4
    for r, c in zip(rows, csv_rows):
        tiles = json.loads(r["params"])["tiles"]
        cfg = next(x for x in spec.configs if x.name == r["config"])
        wl = next(w for w in spec.workloads if w.format == r["format"])
        assert r["cycle_source"] == "network"
        assert r["cycles"] == network_source(wl, cfg, spec.seed)["cycles"]
        assert r["dense_macs"] == 16 * 32 * 4
        assert (r["clock_source"], r["clock_mhz"]) == ("placed", FAKE_FMAX[tiles]), r
        assert r["gops"] == pytest.approx(_gops(r, FAKE_FMAX[tiles]))
        assert r["gops"] != pytest.approx(_gops(r, TARGET_MHZ))
        assert r["time_us"] == pytest.approx(r["cycles"] / FAKE_FMAX[tiles])
        assert (c["clock_source"], float(c["clock_mhz"])) == ("placed", FAKE_FMAX[tiles])
        assert "nextpnr ecp5 85k, out of context" in c["clock_note"]
    assert "cycles from `network`" in md and f"{TARGET_MHZ} MHz" in md
    for cells in _md_rows(md, "clk-1"):
        assert cells[-4:-2] == [f"{FAKE_FMAX[2]:.2f}", "placed"], cells


def test_block_top_clock_is_an_ooc_estimate(tmp_path, fake_synth):
    """A block top (`mac_array`) placed alone: its Fmax is labelled ``ooc-estimate`` and the
    cycles are the tile model's (the area is the compute fabric, not the chip)."""
    _spec_, rows, csv_rows, md = _run(tmp_path, ACCEL.replace("top: accelerator",
                                                              "top: mac_array"))
    for r, c in zip(rows, csv_rows):
        tiles = json.loads(r["params"])["tiles"]
        assert (r["clock_source"], r["clock_mhz"]) == ("ooc-estimate", FAKE_FMAX[tiles])
        assert r["cycle_source"] == "tile_model"
        assert r["gops"] == pytest.approx(_gops(r, FAKE_FMAX[tiles]))
        assert c["clock_source"] == "ooc-estimate" and "`mac_array` placed alone" in \
            c["clock_note"]
    assert all(cells[-3] == "ooc-estimate" for cells in _md_rows(md, "clk-0"))
    assert "`ooc-estimate` (4 points" in md and "upper bound" in md


def test_clock_estimate_from_the_spec_is_labelled(tmp_path, fake_synth):
    """Not placed, with ``clock: {estimate_mhz, note}``: the estimate, labelled ``estimate``,
    its note in the CSV and the report; a point that does not fit gets no clock at all."""
    note = "placed Fmax of a related board build"
    text = ACCEL.replace("fmax: true", "fmax: false").replace(
        "tiles: [1, 2]", "tiles: [1, 3]") + f"clock: {{estimate_mhz: 38.5, note: {note}}}\n"
    _s, rows, csv_rows, md = _run(tmp_path, text)
    assert {c[3] for c in fake_synth} == {False}
    for r, c in zip(rows, csv_rows):
        if json.loads(r["params"])["tiles"] == 3:           # does not fit: no clock
            assert (r["clock_source"], r["clock_mhz"], r["gops"]) == ("none", None, None)
            assert "does not fit ecp5 85k" in r["clock_note"]
            continue
        assert (r["clock_source"], r["clock_mhz"], r["clock_note"]) == ("estimate", 38.5, note)
        assert r["gops"] == pytest.approx(_gops(r, 38.5))
        assert (c["clock_source"], c["clock_note"]) == ("estimate", note)
    assert "`estimate` (2 points at 38.5 MHz)" in md and note in md
    assert "`none` (2 points)" in md


@pytest.mark.parametrize("edit", [("fmax: true", "fmax: false"),
                                  ("fmax: true}", "fmax: true}\nclock: none")])
def test_no_clock_means_no_throughput(tmp_path, fake_synth, edit):
    """Not placed and no estimate (or ``clock: none``): no clock, no time and no GOP/s (the
    table shows "-"), whatever target_mhz says; cycles, MAC/cycle and speedups remain."""
    _s, rows, csv_rows, md = _run(tmp_path, ACCEL.replace(*edit))
    for r, c in zip(rows, csv_rows):
        assert r["clock_source"] == "none" and r["cycles"] > 0, r
        assert [r[k] for k in ("clock_mhz", "time_us", "layers_per_s", "gops")] == [None] * 4
        assert (c["clock_source"], c["clock_mhz"], c["gops"]) == ("none", "", "")
    cells = _md_rows(md, "clk-0")[0]
    assert cells[-5:] == [f"{16 * 32 * 4 / rows[0]['cycles']:.1f}", "-", "none", "-", "1.00"]
    assert f"{TARGET_MHZ:.2f}" not in md


def test_clock_is_chosen_again_for_an_older_store(tmp_path, fake_synth):
    """A store written by an older version (throughput at target_mhz) gets honest clocks when
    the report is written again: the clock is not part of the stored measurement."""
    spec, rows, _c, _m = _run(tmp_path, ACCEL.replace("fmax: true", "fmax: false"))
    con = sqlite3.connect(tmp_path / "clk" / "results.sqlite")
    con.execute("UPDATE points SET clock_mhz = ?, gops = 1.5, clock_source = NULL",
                (TARGET_MHZ,))
    con.commit()
    con.close()
    res = run_sweep(spec, tmp_path / "clk", progress=False, log=lambda *_: None)
    assert res["computed"] == 0
    assert {(r["clock_source"], r["clock_mhz"], r["gops"]) for r in res["rows"]} == {
        ("none", None, None)}


def test_auto_cycles_count_the_whole_layer_on_the_accelerator():
    from sparsemac.flow.cycles import resolve_source

    assert resolve_source("auto", "accelerator") == "network"
    assert resolve_source("auto", "mac_array") == resolve_source("auto") == "tile_model"
    assert resolve_source("tile_model", "accelerator") == "tile_model"


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("sweep_*.yaml")),
                         ids=lambda p: p.name)
def test_example_specs_still_load(path):
    spec = load_spec(path)
    assert spec.n_points > 0 and spec.clock in ("auto", "placed", "none", "estimate")


def _doc_references():
    """The dense 8x8 numbers as docs/reports/synth_mac_array_ecp5.md states them."""
    import re

    text = (ROOT / "docs" / "reports" / "synth_mac_array_ecp5.md").read_text()
    m = re.search(r"peers reach (\d+)-(\d+) MHz at (\d+)-(\d+) LUT4\s+per MAC", text)
    row = next(line for line in text.splitlines() if line.startswith("| 8x8 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    return [float(x) for x in m.groups()], int(cells[1]), float(cells[6])


def test_plot_points_have_the_dense_8x8_references_and_the_board_builds(tmp_path):
    from sparsemac.flow.sweep_plot import pareto_plot, plot_points

    (f0, f1, l0, l1), own_lut, own_mhz = _doc_references()
    builds = [{"name": "b85", "board": "ulx3s-85f", "lut": 50123, "fmax_mhz": 41.0,
               "layers": [{"layer": "dense", "effective_gmac_s": 1.25, "macs_per_cycle": 30.5},
                          {"layer": "2:4", "effective_gmac_s": 2.5, "macs_per_cycle": 61.0}]},
              {"name": "ice", "board": "icebreaker", "lut": 5000, "fmax_mhz": 20.0,
               "layers": [{"layer": "dense", "effective_gmac_s": 0.1}]}]
    bb = tmp_path / "board_builds.json"
    bb.write_text(json.dumps(builds))
    rows = [{"config": "c0", "format": "dense", "workload": "fc", "LUT": 20000, "cycles": 1000,
             "dense_macs": 4000, "gops": None, "clock_source": "none"},
            {"config": "c1", "format": "nm", "workload": "fc", "LUT": 30000, "cycles": 500,
             "dense_macs": 4000, "gops": 0.4, "clock_source": "placed"}]
    pts = plot_points(rows, target="ecp5", device="85k", board_builds=bb)
    refs = [p for p in pts if p["kind"] == "reference"]
    peer = next(p for p in refs if "peers" in p["label"])
    assert peer["lut_range"] == (64 * l0, 64 * l1) and peer["macs_per_cycle"] == 64
    assert peer["gmac_range"] == pytest.approx((64 * f0 / 1000, 64 * f1 / 1000))
    assert peer["lut_range"][0] <= peer["lut"] <= peer["lut_range"][1]
    assert "8x8" in peer["label"] and f"{f0:g}-{f1:g} MHz" in peer["label"]
    own = next(p for p in refs if "this project" in p["label"])
    assert own["lut"] == own_lut and own["gmac_s"] == pytest.approx(64 * own_mhz / 1000)
    board = [p for p in pts if p["kind"] == "board"]
    assert [(p["lut"], p["layer"], p["gmac_s"], p["macs_per_cycle"]) for p in board] == [
        (50123, "dense", 1.25, 30.5), (50123, "2:4", 2.5, 61.0)]       # not the iCE40 build
    sweep = {p["label"]: p for p in pts if p["kind"] == "sweep"}
    assert sweep["c0"]["gmac_s"] is None and sweep["c0"]["macs_per_cycle"] == 4.0
    assert sweep["c1"]["gmac_s"] == pytest.approx(0.2) and sweep["c1"]["macs_per_cycle"] == 8
    assert [p["kind"] for p in plot_points(rows, target="generic", board_builds=bb)] == \
        ["sweep", "sweep"]
    png = tmp_path / "p.png"
    drawn = pareto_plot(rows, png, "t", target="ecp5", device="85k", board_builds=bb)
    assert png.stat().st_size > 10_000 and peer in drawn


def test_pareto_front():
    from sparsemac.flow.sweep_plot import pareto_front

    pts = [(10, 1.0), (5, 2.0), (20, 1.5), (30, 3.0), (30, 2.0), (40, 2.9)]
    assert pareto_front(pts) == [(5, 2.0), (30, 3.0)]


def test_report_rerendered_from_the_csv(tmp_path, fake_synth):
    """`python -m sparsemac.flow.sweep_report`: a finished sweep's CSV (here one computed
    with the tile model) re-rendered without synthesis: area kept, cycles recomputed by the
    spec's source (the whole layer for the accelerator), clocks chosen again; an older CSV's
    RTL sample gets its model cycles back; a second pass changes nothing."""
    import csv

    from sparsemac.flow.cycles import network_source
    from sparsemac.flow.sweep_report import main, read_csv

    text = ACCEL.replace("fmax: true", "fmax: false")
    spec, rows, _c, _m = _run(tmp_path, text.replace("workloads:", "cycles: tile_model\n"
                                                                   "workloads:"), "old")
    src = tmp_path / "old" / "results.csv"
    old = list(csv.DictReader(open(src)))
    old[0].update(rtl_cycles="1000", rtl_model_error_pct="-0.24", rtl_exact="1",
                  gops="9.99", clock_mhz=str(TARGET_MHZ))
    for r in old:
        del r["rtl_model_cycles"], r["clock_source"], r["clock_note"]   # an older CSV
    with open(src, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(old[0]))
        w.writeheader()
        w.writerows(old)
    spec_path = _spec(tmp_path, text)
    out = tmp_path / "new"
    assert main([str(spec_path), str(src), "-o", str(out), "--stem", "acc"]) == 0
    assert {f.name for f in out.iterdir()} == {"acc.csv", "acc.md", "acc_pareto.png"}
    new = read_csv(out / "acc.csv")
    spec = load_spec(spec_path)
    for a, b in zip(old, new):
        assert (b["config"], b["LUT"], b["FF"]) == (a["config"], int(a["LUT"]), int(a["FF"]))
        cfg = next(c for c in spec.configs if c.name == b["config"])
        wl = next(w for w in spec.workloads if w.format == b["format"])
        assert (b["cycle_source"], b["cycles"]) == ("network",
                                                    network_source(wl, cfg, spec.seed)["cycles"])
        assert (b["clock_source"], b["clock_mhz"], b["gops"]) == ("none", None, None)
    assert new[0]["rtl_model_cycles"] == round(1000 * (1 - 0.0024))
    md = (out / "acc.md").read_text()
    assert "cycles from `network`" in md and "| 998 | 1000 | -0.24 % | yes |" in md
    assert main([str(spec_path), str(out / "acc.csv"), "-o", str(tmp_path / "again")]) == 0
    assert read_csv(tmp_path / "again" / "results.csv") == new
