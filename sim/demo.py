"""``make demo``: the main job on a configuration, with a one-screen result.

Steps: resolve the config, generate its Verilog (deterministic) and lint-check it with the
project's Verilator, then run a sparse layer on the RTL against the golden model and print
cycles, roofline and speedup.  Exit code 0 only if every value matched.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path


def _step(msg: str) -> None:
    print(f"\n== {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.demo", description=__doc__)
    ap.add_argument("--config", default="configs/default.yaml")
    ap.add_argument("--out", default="build/demo")
    args = ap.parse_args(argv)

    from hw.config import AcceleratorConfig

    from .toolchain import apply_tool_env, verilator_version

    apply_tool_env()
    cfg = AcceleratorConfig.from_yaml(args.config)
    _step(f"config {cfg.name}: {cfg.tiles} tile(s) of {cfg.rows}x{cfg.cols} MACs "
          f"({cfg.macs} MACs), formats {', '.join(cfg.formats)}")
    print(verilator_version())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    if importlib.util.find_spec("sim.cmd_generate") and importlib.util.find_spec("hw.tops"):
        from .cli import main as cli

        _step("generate Verilog (sparsemac generate)")
        rc = cli(["generate", "--config", args.config, "-o", str(out / "verilog")])
        if rc:
            return rc
    if importlib.util.find_spec("sim.bench_layer"):
        from .cli import main as cli

        _step("sparse layer on the RTL vs the golden model (sparsemac bench matmul)")
        rcs = []
        for fmt, extra in (("nm", ["--nm", "1:4"]), ("dense", ["--nm", "1:4"])):
            rcs.append(cli(["bench", "matmul", "--config", args.config, "--engine", "rtl",
                            "--m", "32", "--k", "128", "--n", "8", "--format", fmt, *extra,
                            "--seed", "1"]))
        rc = max(rcs)
    else:
        from hw.pe import ProcessingElement

        from .runner import run_cocotb

        _step("toolchain check: one PE on Verilator vs golden")
        pe = ProcessingElement(acc_width=cfg.acc_width, mul_pipeline=cfg.mul_pipeline)
        run_cocotb(pe, toplevel="pe", test_module="tests.sim.cocotb_pe",
                   env={"SPARSEMAC_ACC_WIDTH": str(cfg.acc_width),
                        "SPARSEMAC_LATENCY": str(pe.latency)}, seed=1, tag="demo")
        print("PE: all dot products match the golden model")
        rc = 0
    _step(f"demo {'PASSED' if rc == 0 else 'FAILED'} in {time.time() - t0:.1f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
