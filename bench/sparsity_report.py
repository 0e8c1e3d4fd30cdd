"""Sparsity sweep of the compute tile on the RTL: docs/reports/sparsity.md + sparsity.png.

For each format (nm, block 8x8, bitmap) and sparsity 0, 50, 75, 87.5, 93.75, 96.9 % the same
pruned weights run twice on one Verilator build of the tile: packed in the format (zero
skipping) and packed ``dense`` (no skipping).  Speedup = dense cycles / sparse cycles (compute
phase); achieved/roofline = cycles / ceil(MACs issued by the format / (rows*cols)).  The
``bitmap+relu`` rows run a matrix-vector product (N = 1) with 50 % zero activations, with and
without dual-side skipping.  The cycle
model (golden/tile_model.py) predicts every point; its error vs the RTL is in the table.

Run: ``.venv/bin/python bench/sparsity_report.py [--quick]`` (about 5-10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))   # after PYTHONPATH and the installed package

from sparsemac.golden.formats import pack_weights  # noqa: E402
from sparsemac.golden.ops import matmul  # noqa: E402
from sparsemac.golden.perf import layer_stats  # noqa: E402
from sparsemac.golden.prune import prune  # noqa: E402
from sparsemac.golden.tile_model import tile_cycles  # noqa: E402
from sparsemac.hw.config import AcceleratorConfig  # noqa: E402
from sparsemac.sim.bench_layer import run_rtl  # noqa: E402
from sparsemac.sim.tile_driver import tile_job  # noqa: E402

SPARSITY = [0.0, 0.5, 0.75, 0.875, 0.9375, 0.96875]
NM = [(2, 2), (2, 4), (1, 4), (1, 8), (1, 16), (1, 32)]


def _points(M, K, N, rng):
    W0 = rng.integers(-128, 128, (M, K))
    X = rng.integers(-128, 128, (K, N))
    # dual-side skipping drops all-zero activation entries (cols values of one k): ReLU-like
    # activations (half zeros) of a matrix-vector product (N = 1 <= cols)
    Xr = rng.integers(-128, 128, (K, 1)) * (rng.random((K, 1)) < 0.5)
    pts = []
    for s, nm in zip(SPARSITY, NM):
        pts.append(("nm", s, f"{nm[0]}:{nm[1]}", prune(W0, "nm", nm=nm)[0], X, {"nm": nm},
                    False))
    for s in SPARSITY:
        pts.append(("block", s, "8x8", prune(W0, "block", density=1 - s, block_size=8)[0], X,
                    {"block_size": 8}, False))
    for s in SPARSITY + [0.9]:
        Wb = prune(W0, "unstructured", density=1 - s)[0]
        pts.append(("bitmap", s, "G=16", Wb, X, {"group_size": 16}, False))
        pts.append(("bitmap+relu", s, "weight-only", Wb, Xr, {"group_size": 16}, False))
        pts.append(("bitmap+relu", s, "dual-side", Wb, Xr, {"group_size": 16}, True))
    return pts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smaller layer (smoke run)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "reports"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--render-only", action="store_true",
                    help="re-render the .md/.png from the saved sparsity.json (no simulation)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if a.render_only:
        saved = json.loads((out / "sparsity.json").read_text())
        cfg = AcceleratorConfig.from_dict(saved["config"])
        _write(out, saved["rows"], cfg, tuple(saved["shape"]), saved["mismatches"],
               saved["dense_util"], saved["dense_util_total"], a)
        print((out / "sparsity.md").read_text())
        return 0
    M, K, N = (16, 256, 8) if a.quick else (64, 1024, 16)
    cfg = AcceleratorConfig.preset("default").replace(
        tiles=1, weight_buf_depth=16384, act_buf_depth=4096)
    tcfg = SimpleNamespace(rows=cfg.rows, cols=cfg.cols, tiles=1,
                           axi_data_width=cfg.axi_data_width, acc_width=cfg.acc_width)
    rng = np.random.default_rng(a.seed)
    pts = _points(M, K, N, rng)
    jobs, meta = [], []
    dense_done = {}
    for fam, s, label, W, X, kw, skip in pts:
        pw = pack_weights(W, fam.split("+")[0], **kw)
        jobs.append(tile_job(pw, X, cfg.cols, cfg.axi_bytes, skip))
        meta.append(("sparse", fam, s, label, W, X, pw, skip))
        key = (fam, s)
        if key not in dense_done:  # the dense baseline of these pruned weights
            pd = pack_weights(W, "dense")
            dense_done[key] = len(jobs)
            jobs.append(tile_job(pd, X, cfg.cols, cfg.axi_bytes, False))
            meta.append(("dense", fam, s, label, W, X, pd, False))
    print(f"[report] {len(jobs)} RTL runs of W[{M},{K}] @ X[{K},{N}] on a {cfg.rows}x{cfg.cols} "
          f"tile", flush=True)
    res = run_rtl(cfg, jobs, seed=a.seed)
    rows = []
    mismatches = 0
    for _i, ((kind, fam, s, label, W, X, pw, skip), r) in enumerate(zip(meta, res)):
        mismatches += int(np.count_nonzero(r["Y"] != matmul(W, X)))
        if kind == "dense":
            continue
        d = res[dense_done[(fam, s)]]
        pred = tile_cycles(pw, X, cfg, act_skip=skip)
        st = layer_stats(pw, X, pw.fmt, tcfg, bias=False, requant=False)
        roof = max(1, st.compute_cycles if skip else st.weight_compute_cycles)
        rows.append({
            "family": fam, "label": label, "sparsity": s,
            "density": np.count_nonzero(W) / W.size, "cycles": r["cycles"],
            "dense_cycles": d["cycles"], "speedup": d["cycles"] / r["cycles"],
            "roofline": roof, "ratio": r["cycles"] / roof,
            "model": pred["cycles"], "model_err": (pred["cycles"] - r["cycles"]) / r["cycles"],
            "load": r["load_cycles"], "total": r["total_cycles"],
            "total_speedup": d["total_cycles"] / r["total_cycles"],
        })
    dense_util = 0.0
    for (kind, fam, s, *_), r in zip(meta, res):
        if kind == "dense" and s == 0.0 and fam == "nm":
            dense_util = M * K * N / (cfg.rows * cfg.cols * r["cycles"])
            dense_util_total = M * K * N / (cfg.rows * cfg.cols * r["total_cycles"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "sparsity.json").write_text(json.dumps(
        {"config": cfg.to_dict(), "shape": [M, K, N], "mismatches": mismatches,
         "dense_util": dense_util, "dense_util_total": dense_util_total,
         "rows": [{k: (float(v) if isinstance(v, np.floating) else v) for k, v in r.items()}
                  for r in rows]}, indent=1))
    _write(out, rows, cfg, (M, K, N), mismatches, dense_util, dense_util_total, a)
    print((out / "sparsity.md").read_text())
    return 1 if mismatches else 0


def _targets(rows, dense_util):
    def get(fam, label=None, s=None):
        return [r for r in rows if r["family"] == fam and (label is None or r["label"] == label)
                and (s is None or abs(r["sparsity"] - s) < 1e-9)]

    t = []
    nm_ok = all(r["ratio"] <= 1.15 for r in get("nm"))
    bl_ok = all(r["ratio"] <= 1.15 for r in get("block"))
    t.append(("N:M achieved <= 1.15 x roofline at every sparsity", nm_ok,
              f"max {max(r['ratio'] for r in get('nm')):.3f}"))
    t.append(("8x8 block achieved <= 1.15 x roofline at every sparsity", bl_ok,
              f"max {max(r['ratio'] for r in get('block')):.3f}"))
    for lab, want in (("2:4", 1.9), ("1:8", 7), ("1:32", 25)):
        sp = get("nm", lab)[0]["speedup"]
        t.append((f"{lab} >= {want}x over dense", sp >= want, f"{sp:.2f}x"))
    sp = get("block", s=0.5)[0]["speedup"]
    t.append(("block 50% >= 1.9x over dense", sp >= 1.9, f"{sp:.2f}x"))
    sp = get("bitmap", s=0.9)[0]["speedup"]
    t.append(("bitmap >= 5x at 90% weight sparsity", sp >= 5, f"{sp:.2f}x"))
    wo = get("bitmap+relu", "weight-only", 0.9)[0]["cycles"]
    du = get("bitmap+relu", "dual-side", 0.9)[0]["cycles"]
    t.append(("dual-side faster than weight-only on 50%-zero activations (bitmap, 90%)",
              du < wo, f"{wo} -> {du} cycles ({wo / du:.2f}x)"))
    t.append(("dense >= 95% MAC utilization (load included)", dense_util >= 0.95,
              f"{100 * dense_util:.1f}%"))
    err = max(abs(r["model_err"]) for r in rows)
    t.append(("cycle model within 5% of RTL on every point", err <= 0.05,
              f"max |error| {100 * err:.2f}%"))
    return t


def _write(out, rows, cfg, shape, mismatches, util, util_total, a):
    M, K, N = shape
    lines = [
        "# Sparsity sweep of the compute tile (RTL, Verilator)", "",
        f"Generated by `bench/sparsity_report.py{' --quick' if a.quick else ''}` (seed "
        f"{a.seed}). Layer `W[{M},{K}] @ X[{K},{N}]` (random int8, magnitude-pruned), one "
        f"{cfg.rows}x{cfg.cols} tile, {cfg.axi_data_width}-bit weight words, "
        f"mul_pipeline={cfg.mul_pipeline}. Compute bound by construction: every weight is "
        f"used N/cols = {N // cfg.cols} times. `bitmap+relu` rows: the same weights times a "
        f"vector `x[{K},1]` with 50% zeros (ReLU-like), weight-only vs dual-side skipping "
        f"(MAC utilization of a matrix-vector product is at most 1/cols, so their "
        f"achieved/roofline is at least cols = {cfg.cols}; the plot divides it by cols, i.e. "
        f"compares with the lane bound ceil(effectual pairs / rows)).",
        "",
        "`cycles`: the lanes' start -> last result. Since session 19 the load overlaps it "
        "(docs/tile.md \"Load and compute\"): the lanes start once the image header is in "
        "(bitmap: once the whole image is), fetch each weight word once it is in and fire "
        "each pair once its activation entry is in; the activations arrive one entry "
        "(`cols` bytes) per cycle, `ceil(N/cols) * K` cycles, which now bounds the sparse "
        "points (a lane's first row needs every column group's entries, and an nm lane's "
        "first index word follows all the values). `load`: command -> the lanes' start, so "
        "`total` = load + cycles. `roofline` = ceil(MACs the format must issue / "
        "(rows*cols)): weight-effectual MACs, or effectual MACs for dual-side. Speedup = "
        "dense cycles / sparse cycles for the same pruned weights packed `dense` on the same "
        "tile.",
        "", f"Bit-exact check of all RTL runs against golden.matmul: **{mismatches} "
        "mismatches**.", "",
        "| format | point | sparsity | cycles | dense cycles | speedup | roofline | "
        "achieved/roofline | model | model err | load | total speedup |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['family']} | {r['label']} | {100 * r['sparsity']:.2f}% | {r['cycles']} | "
            f"{r['dense_cycles']} | {r['speedup']:.2f}x | {r['roofline']} | "
            f"{r['ratio']:.3f} | {r['model']} | {100 * r['model_err']:+.2f}% | {r['load']} | "
            f"{r['total_speedup']:.2f}x |")
    lines += ["", "## Targets", "", "| target | met | measured |", "|---|---|---|"]
    for name, ok, val in _targets(rows, util):
        lines.append(f"| {name} | {'yes' if ok else '**no**'} | {val} |")
    lines += ["", f"Dense MAC utilization including the load: {100 * util_total:.1f}% "
              "(the load overlaps the compute since session 19; 88.8 % before).", ""]
    (out / "sparsity.md").write_text("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for fam, label in (("nm", None), ("block", None), ("bitmap", None),
                       ("bitmap+relu", "dual-side")):
        sel = [r for r in rows if r["family"] == fam and (label is None or r["label"] == label)]
        sel.sort(key=lambda r: r["sparsity"])
        xs = [100 * r["sparsity"] for r in sel]
        name = fam if label is None else f"{fam} {label}"
        ax1.plot(xs, [r["speedup"] for r in sel], "o-", label=name)
        if fam == "bitmap+relu":  # N = 1: one of cols PEs per lane is useful
            ax2.plot(xs, [r["ratio"] / cfg.cols for r in sel], "o-",
                     label=f"{name} (N=1: vs lane bound pairs/rows)")
        else:
            ax2.plot(xs, [r["ratio"] for r in sel], "o-", label=name)
    xs = [100 * s for s in SPARSITY]
    ax1.plot(xs, [1 / (1 - s) for s in SPARSITY], "k--", label="ideal 1/(1-s)")
    ax1.set_yscale("log")
    ax1.set_xlabel("weight sparsity (%)")
    ax1.set_ylabel("speedup over dense (compute cycles)")
    ax1.legend(fontsize=8)
    ax2.axhline(1.15, color="r", ls=":", label="1.15 target")
    ax2.set_xlabel("weight sparsity (%)")
    ax2.set_ylabel("achieved / roofline cycles")
    ax2.legend(fontsize=8)
    fig.suptitle(f"sparsemac tile {cfg.rows}x{cfg.cols}, W[{M},{K}] @ X[{K},{N}] (RTL)")
    fig.tight_layout()
    fig.savefig(out / "sparsity.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
