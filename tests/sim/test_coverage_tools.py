"""The coverage tooling without a simulation: bench/coverage.py's merge and per-block parser on
a synthetic coverage.dat, and sim/coverage_bins.py's cover model."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from sparsemac.golden.descriptors import ErrorCode
from sparsemac.sim.coverage_bins import (
    Axis,
    CoverModel,
    accelerator_model,
    sample_job,
    sparsity_bin,
    stall_level,
    tile_bin,
)
from sparsemac.sim.runner import COVERAGE_ARGS, coverage_enabled

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_coverage", ROOT / "bench" / "coverage.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod            # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _key(design, module, kind, line, comment, root="/b/sim"):
    f = {"f": f"{root}/{design}/{design.split('-')[0]}.v", "l": str(line), "n": "5", "t": kind,
         "page": f"v_{kind}/{module}", "o": comment, "h": module}
    return "".join(f"\x01{k}\x02{v}" for k, v in f.items()) + "\x01"


def _dat(path, rows):
    path.write_text("# SystemC::Coverage-3\n" + "".join(
        f"C '{_key(*k)}' {n}\n" for k, n in rows))


def test_merge_and_per_block(tmp_path):
    cov = _bench()
    d = "tile-cov-0123456789abcdef"
    a = [((d, "tile", "line", 10, "block"), 3), ((d, "tile", "branch", 12, "if"), 0),
         ((d, "tile.mac.pe_0_0", "line", 40, "block"), 1),
         ((d, "tile.mac.pe_0_0", "toggle", 41, "acc[0]:0->1"), 1),
         ((d, "tile.mac.pe_0_0", "toggle", 41, "acc[31]:0->1"), 0),
         ((d, "tile", "toggle", 20, "dim_m[9]:1->0"), 0),
         ((d, "tile", "toggle", 21, "__0242495[3]:0->1"), 0)]
    b = [((d, "tile", "branch", 12, "if"), 2), ((d, "tile.mac.pe_1_0", "line", 40, "block"), 0)]
    _dat(tmp_path / "a.dat", a)
    _dat(tmp_path / "b.dat", b)
    merged = cov.merge_dats([tmp_path / "a.dat", tmp_path / "b.dat"])
    assert len(merged) == 8 and merged[cov.canonical_key(_key(d, "tile", "branch", 12, "if"))] == 2
    cov.write_dat(merged, tmp_path / "m.dat")
    assert cov.parse_dat(tmp_path / "m.dat") == dict(merged)       # round trip

    pts = cov.points_of(merged)
    assert {p.design for p in pts} == {d}
    assert cov.block_of("accelerator.tile0.tile.mac.pe_1_1") == "ProcessingElement (tile/pe)"
    assert cov.block_of("accelerator.tile0.tile") == "Tile (tile/tile)"
    assert cov.block_of("accelerator.tile0") == "TileNode (tile/tile_node)"
    assert cov.block_of("accelerator.seq.checker") == "DescChecker (hub/desc_checker)"
    assert cov.block_of("accelerator.tile0.checker") == "ImageChecker (tile/image_checker)"
    assert cov.block_of("ring.router3.fifo1") == "SyncFIFO (amaranth.lib.fifo)"
    assert cov.block_of("foo.widget7") == "widget (unmapped)"

    s = cov.summarize(pts)
    tile, pe = s["blocks"]["Tile (tile/tile)"], s["blocks"]["ProcessingElement (tile/pe)"]
    assert (tile["line_hit"], tile["line_points"], tile["line_pct"]) == (2, 2, 100.0)
    # one toggle point of the tile: an unhit bit 9 of M, waived; the $ temporary is left out
    assert (tile["toggle_points"], tile["toggle_hit"], tile["toggle_waived"]) == (1, 0, 1)
    assert tile["toggle_pct"] == 0.0 and tile["toggle_pct_waived"] is None
    assert s["internal_toggle"] == {"points": 1, "hit": 0}
    assert (pe["line_hit"], pe["line_points"], pe["line_pct"]) == (1, 2, 50.0)
    assert (pe["toggle_hit"], pe["toggle_points"], pe["toggle_pct"]) == (1, 2, 50.0)
    assert pe["uncovered_lines"] == [{"module": "tile.mac.pe_1_0", "line": 40, "kind": "line",
                                      "what": "block", "design": d, "instances": 1}]
    assert pe["uncovered_toggles"] == [{"module": "tile.mac.pe_0_0", "signal": "acc",
                                        "points": 1}]
    assert s["total"]["line_pct"] == 75.0
    m_waiver = cov.waiver_key(next(w for w in cov.WAIVERS if "dim_m" in w[1]))
    assert list(s["waivers"]) == [m_waiver] and s["waivers"][m_waiver]["points"] == 1
    # a line on a Yosys no-op ``dump_module`` if is left out
    s = cov.summarize(pts, artefacts=lambda f: frozenset({12}))
    assert s["artefact_lines"] == {"points": 1, "hit": 1}
    assert s["blocks"]["Tile (tile/tile)"]["line_points"] == 1
    assert cov.demangle("cmd___05Fpayload__024186") == "cmd__payload$186"


def test_same_design_under_two_build_roots_merges(tmp_path, monkeypatch):
    """A design built under two build roots (``build/sim`` and the user cache) is one design:
    its points merge (counts summed) instead of counting twice with the unhit copy, and the
    Verilog is found under whichever root has it."""
    cov = _bench()
    d = "accelerator-cov-0123456789abcdef"
    pts = [(d, "accelerator.csr", "line", 7, "case"), (d, "accelerator.csr", "toggle", 9,
                                                        "irq:0->1")]
    rows = [(tmp_path / "a.dat", "/work/build/sim", (3, 0)),
            (tmp_path / "b.dat", "/root/.cache/sparsemac/sim", (0, 2))]
    for path, root, counts in rows:
        path.write_text("# SystemC::Coverage-3\n" + "".join(
            f"C '{_key(*p, root=root)}' {n}\n" for p, n in zip(pts, counts, strict=True)))
    merged = cov.merge_dats([r[0] for r in rows])
    assert sorted(merged.values()) == [2, 3], merged
    assert {cov.key_fields(k)["f"] for k in merged} == {f"{d}/accelerator.v"}
    (tmp_path / "sim" / d).mkdir(parents=True)
    (tmp_path / "sim" / d / "accelerator.v").write_text("module top; endmodule\n")
    monkeypatch.setenv("SPARSEMAC_BUILD", str(tmp_path / "sim"))
    got = cov.points_of(merged)
    assert {p.design for p in got} == {d}
    assert {p.file for p in got} == {str(tmp_path / "sim" / d / "accelerator.v")}
    assert all(p.count for p in got)


def test_cover_model_bins_crosses_waivers():
    m = CoverModel([Axis("a", ("x", "y")), Axis("b", ("0", "1"), lambda v: str(int(v > 5)))],
                   {"a": ("a",), "ab": ("a", "b")}, {("ab", ("y", "1")): "impossible"})
    assert m.sample(a="x", b=9) == ["a", "ab"]
    assert m.sample(a="y") == ["a"]
    s = m.summary()
    assert (s["a"]["hit"], s["a"]["total"]) == (2, 2)
    assert (s["ab"]["hit"], s["ab"]["total"], s["ab"]["waived"]) == (1, 3, 1)
    assert s["ab"]["uncovered"] == [["x", "0"], ["y", "0"]]
    assert s["ab"]["waived_bins"] == [[["y", "1"], "impossible"]]
    with pytest.raises(ValueError, match=r"a value must fall in a bin of \('x', 'y'\), not 'z'"):
        m.sample(a="z")
    with pytest.raises(ValueError, match="sample must name known axes, not 'c'"):
        m.sample(c=1)
    with pytest.raises(ValueError, match=r"cross 'q' must name known axes, not \['c'\]"):
        CoverModel([Axis("a", ("x",))], {"q": ("a", "c")})
    other = CoverModel(m.axes, m.crosses)
    other.merge(m.to_json())
    other.merge(m.to_json())
    assert other.hits["ab"] == {("x", "1"): 2} and other.hits["a"] == {("x",): 2, ("y",): 2}


def test_accelerator_model_axes():
    assert [sparsity_bin(s) for s in (0.0, 0.04, 0.3, 0.5, 0.8, 0.9, 1.0)] == \
        ["0", "0", "<50", "50-75", "75-90", ">=90", ">=90"]
    assert [stall_level(p) for p in (0, 0.1, 0.4)] == ["0", "low", "high"]
    assert [tile_bin(t) for t in (1, 2, 4, 8)] == ["1", "2", "3+", "3+"]
    m = accelerator_model()
    m.sample(fmt="nm", op="conv2d", sparsity=0.93, stall=0.4, tiles=4)
    m.sample(error=int(ErrorCode.WATCHDOG), tiles=1)
    s = m.summary()
    assert m.hits["layer"] == {("nm", ">=90", "conv2d"): 1}
    assert m.hits["stall"] == {("nm", "conv2d", "high"): 1}
    assert m.hits["tiles"] == {("nm", "conv2d", "3+"): 1}
    assert m.hits["errors"] == {("WATCHDOG", "1"): 1}
    n_err = len(ErrorCode) - 1
    assert s["layer"]["total"] == 4 * 5 * 2 and s["stall"]["total"] == 24
    assert s["errors"]["total"] + s["errors"]["waived"] == 3 * n_err
    assert s["pools"]["total"] == 3 * 3 and not m.hits["pools"]


def test_sample_job_with_pool_layers():
    """A job of a conv2d and the pools `add_pool_layers` appends (``fmt`` "-", no weights):
    the conv samples the layer crosses, each pool the pool x tiles cross (a pool once raised
    "fmt value must fall in a bin" and stopped the `pools` bench on every coverage run)."""
    from types import SimpleNamespace

    job = SimpleNamespace(image=b"", layers=[
        {"op": "conv2d", "fmt": "dense", "density": None},
        {"op": "maxpool2d", "fmt": "-"}, {"op": "global_avgpool", "fmt": "-"}])
    m = accelerator_model()
    sample_job(m, job, tiles=2, stall=0.0)
    assert m.hits["layer"] == {("dense", "0", "conv2d"): 1}
    assert m.hits["pools"] == {("maxpool2d", "2"): 1, ("global_avgpool", "2"): 1}
    bad = SimpleNamespace(image=b"", layers=[{"op": "softmax", "fmt": "-"}])
    with pytest.raises(ValueError, match="pool value must fall in a bin"):
        sample_job(m, bad, tiles=1, stall=0.0)


def test_coverage_switch(monkeypatch):
    monkeypatch.delenv("SPARSEMAC_COVERAGE", raising=False)
    assert not coverage_enabled() and coverage_enabled(True)
    monkeypatch.setenv("SPARSEMAC_COVERAGE", "1")
    assert coverage_enabled() and not coverage_enabled(False)
    monkeypatch.setenv("SPARSEMAC_COVERAGE", "0")
    assert not coverage_enabled()
    assert COVERAGE_ARGS == ("--coverage-line", "--coverage-toggle")


def test_toggle_waiver_bits_fields_and_holes(tmp_path):
    """Bit-range waivers, struct fields from the Verilog, Verilator's wide-signal miscount."""
    cov = _bench()
    d = "tile-cov-0123456789abcdef"
    v = tmp_path / d / "tile.v"
    v.parent.mkdir()
    v.write_text("module tile(cmd__payload);\n  input [163:0] cmd__payload;\n"
                 "  assign \\cmd__payload.m  = cmd__payload[19:4];\n"
                 "  assign \\cmd.m  = cmd[19:4];\n  assign cmd = \\cmd__payload$3 ;\n"
                 "endmodule\n")
    fmap = cov.field_aliases(v)
    pt = cov.Point(d, "tile", "toggle", 1, "cmd__payload[11]:0->1", 0, str(v))
    assert pt.bit == 11 and cov.Point(d, "t", "toggle", 1, "storage[3][7]:1->0", 0).bit == 7
    assert cov.toggle_names(pt, fmap) == [("cmd__payload", 11), ("cmd__payload.m", 7)]
    alias = cov.Point(d, "tile", "toggle", 1, "cmd[6]:0->1", 0, str(v))     # cmd = cmd__payload$3
    assert ("cmd.m", 2) in cov.toggle_names(alias, fmap)

    waivers = {("Tile*", "*.m", 4): "M <= 12", ("tile", "cmd__payload", (0, 1)): "aligned",
               ("Tile*|Ring*", "a|b"): "alternatives"}

    def waived(comment, block="Tile (tile/tile)"):
        p = cov.Point(d, "tile", "toggle", 1, comment, 0, str(v))
        return cov.waiver_of(block, p, cov.toggle_names(p, fmap), waivers)

    assert waived("cmd__payload[11]:0->1") == "Tile* / *.m bits 4+"       # bit 7 of the field
    assert waived("cmd__payload[7]:0->1") is None                        # bit 3 of the field
    assert waived("cmd__payload[1]:1->0") == "tile / cmd__payload bits 0..1"   # module glob
    assert waived("cmd__payload[2]:1->0") is None
    assert waived("b:0->1", "Ring (ring/ring)") == "Tile*|Ring* / a|b"
    assert cov.waiver_bits(("x", "y", 7)) == "bits 7+" and cov.waiver_bits(("x", "y")) == ""
    assert cov.toggle_group([("cmd__payload$3", 11), ("cmd__payload$3.m", 7)]) == \
        "cmd__payload.m"

    # a 96-bit signal: Verilator credits a toggle of bit j to bits j+32, j+64 as well
    counts = {b: (5 if b % 32 == 3 else 0) for b in range(96)}   # bit 3 toggled 5 times ...
    counts[35] = counts[67] = 7                                  # ... bit 35 twice more
    pts = [cov.Point(d, "tile", "toggle", 1, f"w[{b}]:0->1", n, str(v))
           for b, n in counts.items()]
    fixed, st = cov.fix_wide_toggles(pts, bug=lambda f: True)
    got = {p.bit: p.count for p in fixed}
    assert (got[3], got[35], got[67]) == (5, 2, 0) and st == {"signals": 1, "points": 2,
                                                              "false_hits": 1}
    assert cov.fix_wide_toggles(pts, bug=lambda f: False)[0] == pts       # a fixed Verilator
    narrow = [cov.Point(d, "tile", "toggle", 1, f"q[{b}]:0->1", 1, str(v)) for b in range(64)]
    assert cov.fix_wide_toggles(narrow, bug=lambda f: True)[1] == {}      # <= 64 bits: exact

    # unwaived misses are listed as holes, by block and innermost field, with a reason
    s = cov.summarize([cov.Point(d, "tile", "toggle", 1, "cmd__payload[7]:0->1", 0, str(v)),
                       cov.Point(d, "tile", "toggle", 1, "cmd__payload[11]:0->1", 0, str(v))],
                      artefacts=lambda f: frozenset(), layouts={})
    holes = s["toggle_holes"]
    assert (holes["points"], holes["groups"]) == (1, 1)
    assert holes["largest"][0]["group"] == "cmd__payload.m"
    assert holes["largest"][0]["designs"] == ["tile"]
    # where the untoggled bits sit: above the signal's highest toggled bit (R), in a signal
    # that never toggled (Z), or below a toggled bit (M: the signal's value set)
    def hole(*pts):
        s = cov.summarize([cov.Point(d, "ring", "toggle", 1, c, n, "") for c, n in pts],
                          artefacts=lambda f: frozenset(), layouts={}, fields=lambda f: {})
        return [(h["group"], h["reason"], h["above_range"], h["never_toggled"])
                for h in s["toggle_holes"]["largest"]]
    assert hole(("q[0]:0->1", 3), ("q[1]:0->1", 0), ("q[2]:0->1", 0)) == [("q", "R", 2, 0)]
    assert hole(("q[0]:0->1", 0), ("q[1]:0->1", 0)) == [("q", "Z", 0, 2)]
    assert hole(("q[0]:0->1", 0), ("q[1]:0->1", 4)) == [("q", "M", 0, 0)]
    assert hole(("q[0]:0->1", 0), ("q[1]:0->1", 4), ("q[2]:0->1", 0)) == [("q", "M", 1, 0)]
    assert cov.hole_reason("Ring (ring/ring)", "q", {"points": 0, "above": 0, "never": 0}) == "-"
    # the block-type view: a bit toggled in one build of the block counts as covered there;
    # instances (two builds) count separately in the instance figures
    d2 = d.replace("-cov-", "-cov-x")
    s = cov.summarize([cov.Point(d, "ring", "toggle", 1, "q[0]:0->1", 2, ""),
                       cov.Point(d2, "ring", "toggle", 1, "q[0]:0->1", 0, ""),
                       cov.Point(d2, "ring", "toggle", 1, "q[1]:0->1", 0, "")],
                      artefacts=lambda f: frozenset(), layouts={}, fields=lambda f: {})
    assert (s["total"]["toggle_hit"], s["total"]["toggle_points"]) == (1, 3)
    assert {k: s["by_type"]["*"][k] for k in ("hit", "points", "waived")} == \
        {"hit": 1, "points": 2, "waived": 0}
    # every group is written to the holes file, with its reason and the reasons' table
    s = cov.summarize([cov.Point(d, "ring", "toggle", 1, c, n, "") for c, n in
                       (("q[0]:0->1", 3), ("q[1]:0->1", 0), ("z[0]:0->1", 0))],
                      artefacts=lambda f: frozenset(), layouts={}, fields=lambda f: {},
                      holes_listed=1)
    assert len(s["toggle_holes"]["largest"]) == 1 and len(s["toggle_holes"]["all"]) == 2
    md = tmp_path / "coverage_holes.md"
    cov.write_holes(s, md)
    text = md.read_text()
    assert "2 points in 2 groups" in text
    assert "| `q` | 1 | 1 | 0 | tile | R |" in text and "| `z` | 1 | 0 | 1 | tile | Z |" in text
    assert f"| R | 1 | 1 | {cov.RANGE_REASONS['R']} |" in text
