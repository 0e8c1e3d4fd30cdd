"""The network cycle model against the accelerator RTL -> docs/reports/network_model.md, .json
and docs/reports/network_cycles.png.

Every network runs on the accelerator top on Verilator (`sparsemac.sim.rtl_engine.rtl_job`, the
RTL engine of ``sparsemac run --engine rtl``: cocotbext-axi ``AxiRam`` as the memory, cycles per
descriptor from the sequencer's ``desc_index``, ``BUSY_CYCLES`` in total) and through the model
(`sparsemac.host.cycles.layer_cycles` -> `sparsemac.golden.net_cycles.descriptor_cycles`).  The
report gives per network and per descriptor the RTL cycles, the model's, the error, the
roofline and the model's phases (fixed, load, compute, write-back), and the stacked bars of
where each network's cycles go.  Every run must be bit-exact (the RTL engine compares every
output buffer with golden).

The RTL engine's count of descriptor 0 starts before ``CONTROL.start`` (the driver programs the
registers: `HARNESS_BEFORE` cycles) and the count of the last descriptor ends at the interrupt
read; those testbench cycles (their sum is ``sum(counts) - BUSY_CYCLES``) are taken off the
first and last descriptor before comparing, so both sides count the sequencer's cycles.

With a baseline (``--baseline``, default ``docs/reports/network_model_baseline.json``: the
same networks measured before the work of issue 17's later steps) the summary gives the
baseline's RTL cycles next to today's and the plot draws its phases under each network's bar.

Usage: ``python bench/network_model.py [--only NAME ...] [--from-json FILE] [--baseline FILE]
[--out DIR]`` (about 15 minutes on 2 cores: one Verilator run per network, a build per
config).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))   # after PYTHONPATH and the installed package

#: Cycles the RTL engine counts for descriptor 0 before ``CONTROL.start`` (tests/sim/
#: test_net_cycles.py checks the same split).
HARNESS_BEFORE = 21
#: (name, network file, input file, inputs, config overrides)
NETWORKS = [
    ("demo_net", "examples/demo_net.yaml", None, None, []),
    ("mlp", "examples/mlp.yaml", None, None, []),
    ("digits MLP dense", "examples/digits/mlp_dense_int8.onnx", "examples/digits/test.npz", 16,
     []),
    ("digits MLP 2:4", "examples/digits/mlp_nm24_int8.onnx", "examples/digits/test.npz", 16,
     []),
    ("digits CNN dense", "examples/digits/cnn_dense_int8.onnx", "examples/digits/test.npz", 2,
     []),
    ("digits CNN 2:4", "examples/digits/cnn_nm24_int8.onnx", "examples/digits/test.npz", 2,
     []),
    ("demo_net, 2 tiles", "examples/demo_net.yaml", None, None, ["tiles=2"]),
    ("mlp, 1 tile", "examples/mlp.yaml", None, None, ["tiles=1"]),
    ("mlp, 128-bit bus", "examples/mlp.yaml", None, None,
     ["axi_data_width=128", "ring_payload_width=128"]),
    ("mlp, 32-bit bus", "examples/mlp.yaml", None, None, ["axi_data_width=32"]),
    ("mlp, 4x8 array", "examples/mlp.yaml", None, None, ["cols=8", "out_lanes=8"]),
]
PHASE_KEYS = ("fixed_cycles", "load_cycles", "compute_cycles", "writeback_cycles")
PHASE_NAMES = ("fixed", "load", "compute", "write-back")


def _network(path: str, inputs: str | None, limit: int | None, cfg):
    """The network of ``path`` (a layer list, or an ONNX model on the first ``limit`` inputs
    of ``inputs``, as ``sparsemac run`` reads them)."""
    from sparsemac.host import load_network

    if not path.endswith(".onnx"):
        return load_network(ROOT / path)
    from sparsemac.host.onnx_import import load_onnx

    model = load_onnx(ROOT / path, cfg=cfg)
    x = np.load(ROOT / inputs)["images"][:limit]
    shp = model.network.input_shape
    if model.input_layout == "image":
        x = x.reshape(len(x), *shp)
    else:
        x = x.reshape(len(x), -1)
    return model.with_input(x)


def measure(name: str, path: str, inputs, limit, overrides: list[str]) -> dict:
    """One network on the RTL and through the model: per-descriptor rows and totals."""
    from sparsemac.host.compiler import check_tile_buffers
    from sparsemac.host.cycles import table_cycles
    from sparsemac.host.model_engine import run_model
    from sparsemac.host.run import run
    from sparsemac.hw.config import load_config
    from sparsemac.sim.rtl_engine import rtl_job

    cfg = load_config(None, overrides)
    net = _network(path, inputs, limit, cfg)
    jobs = []

    def engine(cn):
        res = rtl_job(cn)
        mr = run_model(cn.image, base=cn.base, desc_base=cn.desc_base,
                       desc_count=cn.desc_count, cfg=cn.config)
        jobs.append((cn, res, table_cycles(mr.layers, cn.config)))
        return res

    t0 = time.monotonic()
    rr = run(net, cfg, engine=engine, engine_name="rtl", check_job=check_tile_buffers)
    rep = rr.report
    if rep["status"] != "OK" or rep["mismatches"]:
        raise SystemExit(f"{name}: RTL run not bit-exact: {rep['status']}, "
                         f"{rep['mismatches']} mismatches")
    rows = []
    busy = model = 0
    for j, (cn, res, est) in enumerate(jobs):
        rtl = list(res.layer_cycles)
        harness = sum(rtl) - res.cycles
        rtl[0] -= HARNESS_BEFORE
        rtl[-1] -= harness - HARNESS_BEFORE
        busy += res.cycles
        chains = len(cn.networks) > 1
        for i, (cl, r, e) in enumerate(zip(cn.layers, rtl, est, strict=True)):
            d = cl.descriptor
            model += e["cycles"]
            rows.append({
                "job": j, "descriptor": i,
                "layer": cl.spec.name + (f" [{cl.chain}]" if chains else ""),
                "op": cl.spec.op, "format": cl.spec.fmt, "m": d.m, "k": d.k, "n": d.n,
                "requant": cl.spec.requant, "rtl_cycles": int(r),
                "rtl_count": int(res.layer_cycles[i]), "model_cycles": e["cycles"],
                "error": (e["cycles"] - r) / r, "roofline_cycles": e["roofline_cycles"],
                **{k: e[k] for k in PHASE_KEYS}, "phases": e["phases"], "writes": e["writes"],
                "limited_by": e["limited_by"], "tile_cycles": e["tile_cycles"],
                "output_beats": -(-d.m * d.n * (1 if cl.spec.requant else 4)
                                  // cn.config.axi_bytes),
            })
    worst = max(rows, key=lambda r: abs(r["error"]))
    return {"name": name, "network": path, "inputs": limit, "config": overrides,
            "rtl_busy_cycles": busy, "model_cycles": model,
            "error": (model - busy) / busy, "worst_error": worst["error"],
            "worst_layer": worst["layer"], "jobs": len(jobs),
            "phases": {k: sum(r[k] for r in rows) for k in PHASE_KEYS},
            "roofline_cycles": sum(r["roofline_cycles"] for r in rows),
            "rows": rows, "seconds": round(time.monotonic() - t0, 1)}


def _pct(x: float) -> str:
    return f"{100 * x:+.1f} %"


def render(results: list[dict], out: Path, baseline: dict | None = None) -> None:
    from sparsemac.golden import net_cycles as nc

    base = {b["name"]: b for b in (baseline or {}).get("results", [])}
    worst = max((abs(r["error"]) for n in results for r in n["rows"]), default=0.0)
    lines = [
        "# Network cycle model vs the accelerator RTL",
        "",
        "Generated by `python bench/network_model.py`.  RTL: the accelerator top on Verilator "
        "(`sparsemac run --engine rtl`: default build unless stated, memory = cocotbext-axi "
        "`AxiRam` without wait states), every output buffer bit-exact with golden; cycles per "
        "descriptor = cycles the sequencer spent on it (the RTL engine's count without the "
        f"testbench's {HARNESS_BEFORE} cycles before `CONTROL.start` on descriptor 0 and the "
        "interrupt read after the last one), total = `BUSY_CYCLES`.  Model: "
        "`sparsemac.host.cycles.layer_cycles` (`sparsemac.golden.net_cycles`, docs/host.md "
        "\"Cycles\").",
        "",
        f"**Worst per-descriptor error: {100 * worst:.1f} %** (target: 5 %).",
        "",
        "| network | config | descriptors | RTL `BUSY_CYCLES` | model | error | worst descriptor "
        "| roofline | fixed | load | compute | write-back |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for n in results:
        tot = n["model_cycles"]
        ph = " | ".join(f"{100 * n['phases'][k] / tot:.0f} %" for k in PHASE_KEYS)
        lines.append(f"| {n['name']} | {', '.join(n['config']) or 'default'} | "
                     f"{len(n['rows'])} | {n['rtl_busy_cycles']:,} | {tot:,} | "
                     f"{_pct(n['error'])} | {n['worst_layer']} {_pct(n['worst_error'])} | "
                     f"{n['roofline_cycles']:,} | {ph} |")
    if base:
        lines += [
            "",
            f"Against the baseline ({baseline['what']}; `--baseline`):",
            "",
            "| network | config | baseline RTL | RTL today | change | today / roofline |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for n in results:
            b = base.get(n["name"])
            if b is None:
                continue
            was, now = b["rtl_busy_cycles"], n["rtl_busy_cycles"]
            lines.append(f"| {n['name']} | {', '.join(n['config']) or 'default'} | {was:,} | "
                         f"{now:,} | {_pct((now - was) / was)} | "
                         f"{now / max(1, n['roofline_cycles']):.2f}x |")
    lines += [
        "",
        "Phases (model, share of the cycles; they add up to the descriptor's cycles): **fixed** "
        "= descriptor fetch and checks, image headers (one read and check per tile; since "
        "session 23 the next header is read while one is checked and sent, a layer's first "
        "one during the previous wait; since session 24 a column split's one header is "
        "checked once and multicast to its tiles), "
        "activation table and requant records (for a LATE_TABLES layer, read after the bodies "
        "while the tiles compute: the compiler's per-layer choice since session 22), end of "
        "layer; **load** = activations (read "
        "once, multicast) and image bodies (tile after tile on the one read port, one multicast "
        "body for a layer whose columns are split across the tiles; since session 19 the "
        "tiles' lanes compute while the bodies stream, so part of the compute hides here); "
        "**compute** "
        "= im2col and compute of the last tile left after the last body (without stalls); "
        "**write-back** = the rest of the wait: results still to be written (posted "
        "single-beat writes and the end markers' line flushes).",
        "",
        "![where the cycles go](network_cycles.png)",
        "",
        "The same cycles by sequencer phase (model, sum over the descriptors; `wait` = from the "
        "last stream (the last body, or a LATE_TABLES layer's records) to the end: the last "
        "tiles' im2col and compute, then the write-back; "
        "`writes` = AXI write commands, against the output's bus beats):",
        "",
        "| network | fetch + check | headers | tables | activations | bodies | wait | writes "
        "/ output beats |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in results:
        f = {k: sum(r["phases"][k] for r in n["rows"]) for k in nc.PHASES}
        w = sum(r["writes"] for r in n["rows"])
        b = sum(r["output_beats"] for r in n["rows"])
        lines.append(f"| {n['name']} | {f['fetch_check']:,} | {f['headers']:,} | "
                     f"{f['tables']:,} | {f['acts']:,} | {f['bodies']:,} | "
                     f"{f['wait'] + f['done']:,} | {w:,} / {b:,} |")
    lines += [
        "",
        "## Model constants (measured on the RTL)",
        "",
        f"- DMA read: `READ_LATENCY` = {nc.READ_LATENCY} cycles from the command to the first "
        f"beat, `READ_TAIL` = {nc.READ_TAIL} from the last beat to the status: a read of `b` "
        f"beats keeps the sequencer `b + {nc.READ_LATENCY + nc.READ_TAIL}` cycles.",
        f"- Write-back: the ResultWriter takes a flit per cycle (two-entry queue, address "
        f"stage, a merge cycle per beat); posted single-beat writes through a skid buffer to "
        f"the BeatWriter, a write per cycle (AW and W loaded together) while fewer than "
        f"`max_outstanding` responses are due, each response `WRITE_RESPONSE` = "
        f"{nc.WRITE_RESPONSE} cycles after its beat was taken.",
        f"- Header check: `HeaderChecker.latency` = {nc.HEADER_CHECK_LATENCY}; the descriptor "
        "check counted exactly from the DescChecker's op list (`checker_cycles`: 31-47 "
        "cycles for a matmul, 102-121 for a 3x3 conv); every descriptor after the first is "
        "prefetched while the previous layer waits (2 cycles left, plus what outlasts the "
        f"wait; `PREFETCH_START` = {nc.PREFETCH_START}).",
        "- Tables: every node writes the activation table a bus word per cycle into its "
        "shadow table (256 / beat cycles), then the requant records at one beat (at most 16 "
        "bytes) per cycle.",
        f"- Ring: {nc.HOP_CYCLES} cycles per hop, credits and round-robin as in the routers.",
        "",
    ]
    for n in results:
        lines += [f"## {n['name']}", "",
                  f"`{n['network']}`" + (f", first {n['inputs']} inputs" if n["inputs"] else "")
                  + f", config {', '.join(n['config']) or 'default'}, {n['jobs']} job(s).", "",
                  "| # | layer | op | format | M x K x N | RTL | model | error | roofline | "
                  "fixed | load | compute | write-back | writes | limited by |",
                  "|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in n["rows"]:
            lines.append(
                f"| {r['descriptor']} | {r['layer']} | {r['op']} | {r['format']} | "
                f"{r['m']}x{r['k']}x{r['n']}{'' if r['requant'] else ' (int32)'} | "
                f"{r['rtl_cycles']:,} | {r['model_cycles']:,} | {_pct(r['error'])} | "
                f"{r['roofline_cycles']:,} | "
                + " | ".join(f"{r[k]:,}" for k in PHASE_KEYS)
                + f" | {r['writes']} | {r['limited_by']} |")
        lines.append("")
    (out / "network_model.md").write_text("\n".join(lines))
    (out / "network_model.json").write_text(json.dumps(results, indent=1) + "\n")
    _plot(results, out / "network_cycles.png", base)


def _plot(results: list[dict], path: Path, base: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n["name"] for n in results]
    base = base or {}
    y = np.arange(len(results))[::-1] * (1.6 if base else 1.0)
    fig, ax = plt.subplots(figsize=(10, (0.9 if base else 0.55) * len(results) + 1.6))
    left = np.zeros(len(results))
    colors = ("#9e9e9e", "#4c72b0", "#55a868", "#c44e52")
    for k, label, col in zip(PHASE_KEYS, PHASE_NAMES, colors):
        v = np.array([n["phases"][k] for n in results], dtype=float)
        ax.barh(y, v, left=left, color=col, label=f"{label} (model)", height=0.6)
        left += v
    if base:        # the baseline's phases, hatched, under each network's bar
        left = np.zeros(len(results))
        for k, col in zip(PHASE_KEYS, colors):
            v = np.array([base[n["name"]]["phases"][k] if n["name"] in base else 0
                          for n in results], dtype=float)
            ax.barh(y - 0.65, v, left=left, color=col, alpha=0.45, hatch="//", height=0.5,
                    label="baseline" if k == PHASE_KEYS[0] else None)
            left += v
    ax.scatter([n["rtl_busy_cycles"] for n in results], y, marker="|", s=400, color="k",
               zorder=3, label="RTL BUSY_CYCLES")
    ax.scatter([n["roofline_cycles"] for n in results], y, marker="x", color="k", zorder=3,
               label="roofline")
    ax.set_yticks(y, names)
    ax.set_xlabel("cycles per job")
    ax.set_title("Where each network's cycles go (model phases, RTL total)"
                 + ("; hatched: baseline" if base else ""))
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", default=None, help="network names to run")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="re-render the report from a previous run's JSON")
    ap.add_argument("--baseline", type=Path,
                    default=ROOT / "docs" / "reports" / "network_model_baseline.json",
                    help="an earlier run's JSON with a 'what' line (skipped when missing)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "reports")
    args = ap.parse_args()
    baseline = json.loads(args.baseline.read_text()) if args.baseline.is_file() else None
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        results = []
        for spec in NETWORKS:
            if args.only and spec[0] not in args.only:
                continue
            print(f"[network_model] {spec[0]} ...", file=sys.stderr, flush=True)
            r = measure(*spec)
            print(f"[network_model] {spec[0]}: RTL {r['rtl_busy_cycles']}, model "
                  f"{r['model_cycles']} ({_pct(r['error'])}), worst descriptor "
                  f"{_pct(r['worst_error'])}, {r['seconds']} s", file=sys.stderr, flush=True)
            results.append(r)
    args.out.mkdir(parents=True, exist_ok=True)
    render(results, args.out, baseline)
    print(f"wrote {args.out / 'network_model.md'}, .json and network_cycles.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
