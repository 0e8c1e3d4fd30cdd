"""One layer on the tile RTL (Verilator) or the tile cycle model, checked against golden.

``run_layer`` runs a packed weight image and dense activations on one compute tile and returns
the cycles (compute phase, load phase) and, on the RTL, the accumulators.  ``check_capacity``
says which tile buffer parameter a layer does not fit.  The ``sparsemac bench matmul|conv2d``
command (:mod:`sparsemac.cli.bench_layer`) is built on these.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["run_rtl", "run_layer", "check_capacity", "CapacityError"]


class CapacityError(ValueError):
    """A layer does not fit one tile's buffers; the message names the parameter to raise."""


def check_capacity(cfg, pw, K, N):
    """Raise `CapacityError` (naming the parameter to raise) when ``W[M, K] @ X[K, N]`` packed as
    ``pw`` does not fit one tile of ``cfg``: weight words, activation entries, zero-flag words,
    16-bit dimensions (the buffer rule is `sparsemac.golden.tiling.tile_buffer_shortfall`)."""
    from sparsemac.golden.tiling import tile_buffer_shortfall

    short = tile_buffer_shortfall(cfg, k=K, n=N, weight_bytes=pw.nbytes,
                                  checks=("weight_words", "act_entries", "flag_words"))
    ncg = -(-N // cfg.cols)
    if short is not None:
        raise CapacityError({
            "weight_words": f"the weight image ({pw.nbytes} bytes) does not fit weight_buf_depth="
                            f"{cfg.weight_buf_depth} words of {cfg.axi_bytes} bytes: raise it "
                            f"with --set",
            "act_entries": f"the activations ({ncg} column groups x K={K} entries) do not fit "
                           f"act_buf_depth={cfg.act_buf_depth}: raise it with --set",
            "flag_words": f"act_buf_depth={cfg.act_buf_depth} is too small for the zero flags of "
                          f"{ncg} column groups: raise it with --set",
        }[short.check])
    if K >= 1 << 16 or N >= 1 << 16 or pw.shape[0] >= 1 << 16:
        raise CapacityError("M, K and N must be below 65536 on one tile")


def run_rtl(cfg, jobs: list[dict], *, seed: int = 1) -> list[dict]:
    """Run tile jobs (see `sim.tile_driver.tile_job`) back to back on one RTL build."""
    from sparsemac.hw.tile.tile import Tile
    from sparsemac.sim.runner import run_cocotb

    with tempfile.TemporaryDirectory(prefix="sparsemac-bench-") as tmp:
        jpath, opath = Path(tmp) / "job.json", Path(tmp) / "out.json"
        jpath.write_text(json.dumps(jobs))
        stdout = sys.stdout
        sys.stdout = sys.stderr  # keep --json output clean
        try:
            run_cocotb(Tile(cfg), toplevel="tile", test_module="sparsemac.sim.tile_driver",
                       cfg=cfg, params={"bench_job": str(jpath), "bench_out": str(opath)},
                       seed=seed, tag="bench")
        finally:
            sys.stdout = stdout
        res = json.loads(opath.read_text())
    for r in res:
        r["Y"] = np.array(r["Y"], dtype=np.int64)
    return res


def run_layer(cfg, pw, X, *, engine: str, act_skip: bool, seed: int = 1,
              conv: dict | None = None) -> dict:
    """Cycles (and the RTL result) of one packed layer on one tile (``conv``: the conv2d
    geometry and input ``x`` for the tile's implicit im2col)."""
    from sparsemac.golden.tile_model import tile_cycles
    from sparsemac.sim.tile_driver import conv_job, tile_job

    img = None if conv is None else int(conv["x"].size)
    pred = tile_cycles(pw, X, cfg, act_skip=act_skip, image_bytes=img)
    if engine == "model":
        return dict(pred, Y=None, model_cycles=pred["cycles"],
                    model_total_cycles=pred["total_cycles"])
    if conv is None:
        job = tile_job(pw, X, cfg.cols, cfg.axi_bytes, act_skip)
    else:
        job = conv_job(pw, conv["x"], (conv["kh"], conv["kw"]), stride=conv["stride"],
                       padding=conv["pad"], dilation=conv["dilation"], cols=cfg.cols,
                       word_bytes=cfg.axi_bytes, act_skip=act_skip)
    res = run_rtl(cfg, [job], seed=seed)[0]
    res["model_cycles"] = pred["cycles"]
    res["model_total_cycles"] = pred["total_cycles"]
    res["pairs"] = pred["pairs"]
    return res
