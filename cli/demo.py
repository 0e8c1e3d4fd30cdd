"""``make demo``: the main job on a configuration, with a one-screen result.

1. Resolve the config and generate its Verilog (``sparsemac generate``: deterministic, with
   the register map and a manifest).
2. Run one sparse layer, pruned once, on the compute tile's RTL (Verilator) in every weight
   format, check every output value against the golden model and print cycles, roofline and
   speedup over the same weights run dense on the same hardware.
3. Run the small sparse network ``examples/demo_net.yaml`` end to end on the whole accelerator
   RTL (``sparsemac run --engine rtl``).
4. A trained model from ONNX: the digits MLP (``examples/digits``) in every weight format, its
   int8 accuracy on the model engine next to float and ONNX Runtime, and 8 test images of the
   2:4 model on the accelerator RTL (bit-exact with the model engine).

Exit code 0 only if every value matched.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _step(msg: str) -> None:
    print(f"\n== {msg}", flush=True)


def _layer_table(cfg, seed: int) -> int:
    """Dense vs nm / block / bitmap on one RTL build of the tile; returns the mismatch count."""
    from sparsemac.golden.formats import pack_weights
    from sparsemac.golden.ops import matmul
    from sparsemac.golden.perf import layer_stats
    from sparsemac.golden.prune import prune
    from sparsemac.golden.tile_model import tile_cycles

    from ..sim.bench_layer import run_rtl
    from ..sim.tile_driver import tile_job

    rng = np.random.default_rng(seed)
    M, K, N = 32, 256, 2 * cfg.cols
    W = rng.integers(-128, 128, (M, K))
    X = rng.integers(-128, 128, (K, N))
    cases = [("dense", "dense", W, {}),
             ("nm 1:4", "nm", prune(W, "nm", nm=(1, 4))[0], {"nm": (1, 4)}),
             ("block 8x8 25%", "block", prune(W, "block", density=0.25, block_size=8)[0],
              {"block_size": 8}),
             ("bitmap 25%", "bitmap", prune(W, "unstructured", density=0.25)[0],
              {"group_size": cfg.group_size})]
    jobs, packs = [], []
    for _, fmt, Wp, kw in cases:
        for f in (fmt, "dense"):  # each pruned matrix sparse and dense on the same tile
            pw = pack_weights(Wp, f, **kw) if f == fmt else pack_weights(Wp, "dense")
            packs.append((pw, Wp))
            jobs.append(tile_job(pw, X, cfg.cols, cfg.axi_bytes, act_skip=False))
    res = run_rtl(cfg, jobs, seed=seed)
    tile = type("TileCfg", (), {"rows": cfg.rows, "cols": cfg.cols, "tiles": 1,
                                "axi_data_width": cfg.axi_data_width})()
    print(f"layer W[{M},{K}] @ X[{K},{N}] on one {cfg.rows}x{cfg.cols} tile (lanes start "
          f"-> last result, the load overlapped), every output compared with golden.matmul")
    hdr = f"{'format':<15}{'cycles':>8}{'dense':>8}{'speedup':>9}{'roofline':>10}" \
          f"{'ach/roof':>10}{'model':>8}{'mismatch':>10}"
    print(hdr + "\n" + "-" * len(hdr))
    bad = 0
    for i, (name, fmt, Wp, _) in enumerate(cases):
        sparse, dense = res[2 * i], res[2 * i + 1]
        pw = packs[2 * i][0]
        mism = 0
        for r in (sparse, dense):
            mism += int(np.count_nonzero(r["Y"] != matmul(Wp, X)))
        bad += mism
        roof = layer_stats(Wp, X, fmt, tile).compute_cycles
        model = tile_cycles(pw, X, cfg, act_skip=False)["cycles"]
        print(f"{name:<15}{sparse['cycles']:>8}{dense['cycles']:>8}"
              f"{dense['cycles'] / sparse['cycles']:>8.2f}x{roof:>10}"
              f"{sparse['cycles'] / roof:>10.3f}{model:>8}{mism:>10}")
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sparsemac.cli.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/default.yaml",
                    help="configuration file (default: configs/default.yaml)")
    ap.add_argument("--out", default="build/demo",
                    help="folder for the generated Verilog (default: build/demo)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the random data (default: 1)")
    args = ap.parse_args(argv)

    from sparsemac.hw.config import AcceleratorConfig

    from ..sim.toolchain import apply_tool_env, verilator_version
    from .main import main as cli

    apply_tool_env()
    t0 = time.time()
    cfg = AcceleratorConfig.from_yaml(args.config)
    _step(f"config {cfg.name}: {cfg.tiles} tile(s) of {cfg.rows}x{cfg.cols} MACs "
          f"({cfg.macs} MACs), formats {', '.join(cfg.formats)}")
    print(verilator_version())
    out = Path(args.out)

    _step("generate Verilog (sparsemac generate)")
    rc = cli(["generate", "--config", args.config, "-o", str(out / "verilog")])
    if rc:
        return rc

    _step("one sparse layer on the tile RTL, every format, vs the golden model")
    bad = _layer_table(cfg, args.seed)

    engine = "rtl"
    _step(f"network examples/demo_net.yaml end to end (sparsemac run --engine {engine})")
    rc = cli(["run", "examples/demo_net.yaml", "--config", args.config, "--engine", engine,
              "--seed", str(args.seed)])
    _step("a trained model from ONNX: the digits MLP per weight format (docs/reports/accuracy.md)")
    from .accuracy_table import FORMATS, markdown_table, measure

    rows = []
    for v in FORMATS:
        rows.append(measure("mlp", v, cfg, rtl_images=8 if v == "nm24" else 0,
                            log=lambda m: None))
    print("\n".join(markdown_table(rows)))
    onnx_bad = sum(r["mismatches"] for r in rows) + sum(
        not r.get("rtl_bit_exact", True) for r in rows)
    ok = bad == 0 and rc == 0 and onnx_bad == 0
    _step(f"demo {'PASSED' if ok else 'FAILED'} in {time.time() - t0:.1f} s "
          f"({bad} mismatching values in the layer table, run exit code {rc}, "
          f"{onnx_bad} mismatches in the ONNX models)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
