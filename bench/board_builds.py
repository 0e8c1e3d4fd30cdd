"""Whole-accelerator board builds -> docs/reports/board_builds.json and .md.

For each build in ``BUILDS`` (a board, a config, a core clock made by the board's PLL and a
benchmark layer):

1. The benchmark layer runs on the build's self-test hardware in simulation (Verilator:
   the accelerator with its on-chip AXI4 SRAM and the self-test controller of
   ``flow/selftest.py``, exactly what the bitstream contains): dense, then every sparse
   variant.  Each run must pass (outputs bit-exact with the golden model); its ``cycles``
   (start to interrupt: descriptor fetch, weight and activation load, compute, write-back)
   are the layer's cycles.
2. The same config with only the dense format is synthesized (Yosys, not placed): the
   sparse-over-dense area at the same MAC count.
3. The board is built (Yosys, nextpnr with the PLL clock as constraint, ecppack) with the
   first sparse variant as its self-test: area, placed Fmax and the critical path.

Effective throughput = placed Fmax x dense MACs of the layer / sparse cycles (dense-equivalent
GMAC/s: what a dense array would need to do the same layer in the same time).  Every step's
result is kept in ``build/board_builds/<name>/`` and reused (``--force`` redoes them), so a
stopped run resumes.

Usage: ``python bench/board_builds.py [--only NAME] [--force] [--skip-board] [--seed N]``
(a 64-MAC ECP5 build takes 30-60 minutes on 2 shared cores, most of it nextpnr).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))   # after PYTHONPATH and the installed package
REPORT = ROOT / "docs" / "reports" / "board_builds"
WORK = ROOT / "build" / "board_builds"

# 64 MACs as one tile of 4 lanes x 16 columns: the zero-skipping front end (one decoder per
# lane) is shared by 16 columns; dense + nm (the formats whose area pays, docs/flow.md).
# An 8-entry result buffer per node (the default 32 x 544 bits is ~1,100 LUT of LUTRAM at 4x16;
# the benchmark layer is compute-bound and needs only a few entries to keep the lanes going).
_ULX3S_64 = dict(rows=4, cols=16, tiles=1, out_lanes=4, formats=["dense", "nm"],
                 axi_data_width=64, weight_buf_depth=2048, act_buf_depth=512,
                 out_buf_depth=64, result_buf_depth=8)

# the same array on a 128-bit bus (and ring): the benchmark layer's load and write-back take
# half the beats (the weight buffer keeps its bytes: half the words, twice as wide)
_ULX3S_64_W128 = dict(_ULX3S_64, axi_data_width=128, ring_payload_width=128,
                      weight_buf_depth=1024)

BUILDS = [
    {"name": "ulx3s-64mac", "board": "ulx3s-85f", "clock_mhz": 100.0, "config": _ULX3S_64,
     "layer": {"m": 64, "k": 128, "n": 64}, "sparse": ["2:4", "1:8"]},
    {"name": "ulx3s-64mac-w128", "board": "ulx3s-85f", "clock_mhz": 100.0,
     "config": _ULX3S_64_W128, "layer": {"m": 64, "k": 128, "n": 64}, "sparse": ["2:4", "1:8"]},
]


def _network(layer: dict, nm: str | None, seed: int = 1) -> dict:
    spec = {"name": "bench", "op": "matmul", "out_features": layer["m"],
            "format": "nm" if nm else "dense", "requant": True, "activation": "relu"}
    if nm:
        spec["nm"] = nm
    return {"name": f"bench-{nm or 'dense'}", "seed": seed,
            "input": {"shape": [layer["k"], layer["n"]]}, "layers": [spec]}


def _cached(path: Path, force: bool, fn):
    if path.is_file() and not force:
        return json.loads(path.read_text())
    res = fn()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    return res


def _selftest_sim(cfg, network: dict, tag: str) -> dict:
    """Run the self-test core on Verilator; return its outputs (done, ok, cycles, ...)."""
    import tempfile

    from sparsemac.flow.selftest import AccelSelfTest
    from sparsemac.sim.runner import run_cocotb

    with tempfile.TemporaryDirectory(prefix="sparsemac-board-") as tmp:
        out = Path(tmp) / "selftest.json"
        run_cocotb(AccelSelfTest(cfg, network=network), toplevel="accel_selftest",
                   test_module="tests.flow.cocotb_selftest",
                   env={"SPARSEMAC_MAX_CYCLES": "2000000", "SPARSEMAC_SELFTEST_OUT": str(out),
                        "SPARSEMAC_WRONG_BYTE": "0"}, seed=1, tag=tag)
        return json.loads(out.read_text())


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measure(build: dict, *, force: bool = False, skip_board: bool = False,
            seed: int | None = None) -> dict:
    from sparsemac.flow.boards import board_config, build_board

    name, board = build["name"], build["board"]
    wd = WORK / name
    cfg = board_config(board).replace(**build["config"], name=name)
    layer = build["layer"]
    macs_layer = layer["m"] * layer["k"] * layer["n"]
    runs = {}
    for nm in [None] + build["sparse"]:
        key = nm or "dense"
        t0 = time.monotonic()
        print(f"[{name}] self-test simulation, layer {key} ...", flush=True)
        res = _cached(wd / f"sim_{key.replace(':', '_')}.json", force,
                      lambda nm=nm, key=key: _selftest_sim(cfg, _network(layer, nm),
                                                            f"{name}-{key}"))
        if not (res.get("done") == 1 and res.get("ok") == 1):
            raise SystemExit(f"[{name}] self-test of layer {key} did not pass: {res}")
        runs[key] = res
        print(f"[{name}]   pass, {res['cycles']} cycles ({time.monotonic() - t0:.0f} s)",
              flush=True)
    print(f"[{name}] dense-only area (Yosys) ...", flush=True)
    dense_cfg = cfg.replace(formats=("dense",), name=f"{name}-dense")
    dense_area = _cached(wd / "dense_area.json", force, lambda: build_board(
        board, wd / "dense", dense_cfg, write_constraints=False, place=False,
        clock_mhz=build["clock_mhz"], network=_network(layer, None)))
    rep = None
    if not skip_board:
        print(f"[{name}] board build (Yosys + nextpnr at {build['clock_mhz']} MHz) ...",
              flush=True)
        rep = _cached(wd / "board.json", force, lambda: build_board(
            board, wd / "board", cfg, write_constraints=False, clock_mhz=build["clock_mhz"],
            network=_network(layer, build["sparse"][0]),
            seeds=(seed,) if seed else None))
    a = (rep or {}).get("area") or {}
    fmax = (rep or {}).get("fmax_mhz")
    head = build["sparse"][0]
    entry = {
        "name": name, "board": board, "rows": cfg.rows, "cols": cfg.cols, "tiles": cfg.tiles,
        "formats": list(cfg.formats), "macs": cfg.macs,
        "lut": a.get("LUT"), "ff": a.get("FF"), "dsp": a.get("DSP"), "bram": a.get("BRAM"),
        "fmax_mhz": fmax, "board_clock_mhz": (rep or {}).get("board_clock_mhz",
                                                            build["clock_mhz"]),
        "meets_board_clock": bool(fmax and fmax >= build["clock_mhz"]),
        "layer": f"matmul {layer['m']}x{layer['k']}x{layer['n']} nm {head}",
        "layer_macs": macs_layer,
        "dense_cycles": runs["dense"]["cycles"], "sparse_cycles": runs[head]["cycles"],
        "effective_gmac_s": (round(fmax * 1e6 * macs_layer / runs[head]["cycles"] / 1e9, 2)
                             if fmax else None),
        "layers": [{"layer": k, "cycles": r["cycles"],
                    "macs_per_cycle": round(macs_layer / r["cycles"], 2),
                    "speedup_over_dense": round(runs["dense"]["cycles"] / r["cycles"], 3),
                    "effective_gmac_s": (round(fmax * 1e6 * macs_layer / r["cycles"] / 1e9, 2)
                                         if fmax else None)} for k, r in runs.items()],
        "dense_only": {k: dense_area["area"].get(k) for k in ("LUT", "FF", "DSP", "BRAM")},
        "critical_paths": (rep or {}).get("critical_paths", []),
        "estimated_paths": _estimated_paths(wd / "board" / "build"),
        "result": (rep or {}).get("result", "board not built (--skip-board)"),
        "pnr_seed": (rep or {}).get("pnr_seed"),
        "commit": ((rep or {}).get("source") or {}).get("commit") or _commit(),
    }
    if a:
        d = entry["dense_only"]
        entry["sparse_over_dense_lut_ff"] = round((a["LUT"] + a["FF"]) / (d["LUT"] + d["FF"])
                                                  - 1, 4)
    return entry


def _estimated_paths(build_dir: Path, top: int = 10) -> list[dict]:
    """The slowest register-to-register paths of the board's Yosys netlist (flow/depth.py's
    estimate: every path, where nextpnr reports only the worst), one per (start, end bus)."""
    import re

    from sparsemac.flow.depth import analyze, load_netlist

    nets = sorted(build_dir.glob("sparsemac_*.json")) if build_dir.is_dir() else []
    nets = [n for n in nets if not n.name.startswith("build_")]
    if not nets:
        return []
    paths = analyze(load_netlist(nets[0]))
    out, seen = [], set()
    for p in paths:
        key = (p["start"], re.sub(r"\[\d+\]", "", p["end"]))
        if key in seen:
            continue
        seen.add(key)
        out.append({k: p[k] for k in ("delay_ns", "levels", "carry", "start", "end")})
        if len(out) == top:
            break
    return out


def _v(x) -> str:
    """A table cell: the value, or "-" where the step did not run."""
    return "-" if x is None else str(x)


def render(entries: list[dict]) -> str:
    lines = ["# Board builds of the whole accelerator", "",
             "Regenerated by `python bench/board_builds.py` (docs/flow.md). Each build: the "
             "accelerator (DMA hub, sequencer, ring, tiles, output pipeline) with its on-chip "
             "SRAM and self-test controller, clocked by the board's PLL, placed and routed by "
             "nextpnr. Cycles: the benchmark layer on the same self-test hardware in Verilator "
             "(start to interrupt, bit-exact). Effective GMAC/s = placed Fmax x dense MACs of the "
             "layer / cycles.", "",
             "| build | array | formats | MACs | LUT | FF | DSP | BRAM | Fmax | clock | layer "
             "| dense cyc | sparse cyc | speedup | eff. GMAC/s | +area vs dense |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        f = f"{e['fmax_mhz']} MHz" if e["fmax_mhz"] else "-"
        ratio = e.get("sparse_over_dense_lut_ff")
        lines.append(
            f"| {e['name']} | {e['tiles']} x {e['rows']}x{e['cols']} | {', '.join(e['formats'])} "
            f"| {e['macs']} | {_v(e['lut'])} | {_v(e['ff'])} | {_v(e['dsp'])} | {_v(e['bram'])} "
            f"| {f} | "
            f"{e['board_clock_mhz']} MHz | {e['layer']} | {e['dense_cycles']} | "
            f"{e['sparse_cycles']} | {e['dense_cycles'] / e['sparse_cycles']:.2f}x | "
            f"{e['effective_gmac_s'] or '-'} | "
            f"{'-' if ratio is None else f'{100 * ratio:+.1f} %'} |")
    for e in entries:
        lines += ["", f"## {e['name']}", "", f"Result: {e['result']}; commit {e['commit']}.", "",
                  "| layer | cycles | MACs/cycle | speedup over dense | eff. GMAC/s at Fmax |",
                  "|---|---|---|---|---|"]
        for r in e["layers"]:
            lines.append(f"| {r['layer']} | {r['cycles']} | {r['macs_per_cycle']} | "
                         f"{r['speedup_over_dense']}x | {r['effective_gmac_s'] or '-'} |")
        d = e["dense_only"]
        lines += ["", f"Dense-only build of the same array (Yosys): {d['LUT']} LUT, {d['FF']} FF, "
                      f"{d['DSP']} DSP, {d['BRAM']} BRAM."]
        for p in e["critical_paths"]:
            lines += ["", f"Critical path ({p['from']} -> {p['to']}): {p['delay_ns']} ns (logic "
                          f"{p['logic_ns']}, routing {p['routing_ns']}; {p['logic_cells']} logic "
                          f"cells, {p['carry_cells']} carry): " + " -> ".join(p["through"])]
        if e.get("estimated_paths"):
            lines += ["", "Slowest paths before placement (estimate of `flow/depth.py` on the "
                          "Yosys netlist: LUT, carry and fan-out delays, no placement; nextpnr "
                          "reports only the worst path):", "",
                      "| est. ns | LUT levels | carry cells | from | to |", "|---|---|---|---|---|"]
            for p in e["estimated_paths"]:
                lines.append(f"| {p['delay_ns']} | {p['levels']} | {p['carry']} | "
                             f"{p['start']} | {p['end']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help=f"build only these ({', '.join(b['name'] for b in BUILDS)})")
    ap.add_argument("--force", action="store_true", help="redo the cached steps")
    ap.add_argument("--skip-board", action="store_true",
                    help="simulation and dense area only (no place and route)")
    ap.add_argument("--seed", type=int, default=None, metavar="N",
                    help="nextpnr placer seed (default: seeds 1, 2, 3, the next one only when "
                         "a seed finds no legal placement; nextpnr is deterministic, so a build "
                         "that did not route is retried with another seed)")
    args = ap.parse_args(argv)
    if args.seed is not None and not 1 <= args.seed <= 2**31 - 1:
        ap.error(f"--seed must be 1 .. {2**31 - 1}, not {args.seed}")
    names = [b["name"] for b in BUILDS]
    bad = [n for n in args.only if n not in names]
    if bad:
        ap.error(f"--only must be one of {', '.join(names)}, not {bad[0]!r}")
    old = {}
    if REPORT.with_suffix(".json").is_file():
        old = {e["name"]: e for e in json.loads(REPORT.with_suffix(".json").read_text())}
    for b in BUILDS:
        if not args.only or b["name"] in args.only:
            old[b["name"]] = measure(b, force=args.force, skip_board=args.skip_board,
                                    seed=args.seed)
    entries = [old[n] for n in names if n in old]
    REPORT.with_suffix(".json").write_text(json.dumps(entries, indent=2) + "\n")
    REPORT.with_suffix(".md").write_text(render(entries))
    print(render(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
