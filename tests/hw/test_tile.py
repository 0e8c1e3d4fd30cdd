"""Tile under amaranth.sim: small matmuls of every format vs golden.matmul (bit exact)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.formats import pack_weights
from golden.ops import matmul
from golden.quant import wrap
from hw.config import AcceleratorConfig
from hw.tile import Tile

FMT_CODE = {"dense": 0, "bitmap": 1, "block": 2, "nm": 3}


def act_entries(X, cols):
    """Activation stream of the tile: entry (cg, k) = X[k, cg*cols:(cg+1)*cols], cg outer."""
    K, N = X.shape
    ncg = -(-N // cols)
    Xp = np.zeros((K, ncg * cols), dtype=np.int64)
    Xp[:, :N] = X
    return [Xp[k, cg * cols:(cg + 1) * cols] for cg in range(ncg) for k in range(K)]


def weight_words(image, wb):
    img = np.asarray(image, dtype=np.uint8)
    return [int.from_bytes(img[i:i + wb].tobytes(), "little") for i in range(0, img.size, wb)]


def run_tile(cfg, jobs, rng, stall=0.0):
    """Run (W, X, fmt, params, act_skip) jobs back to back; return the result matrices."""
    dut = Tile(cfg)
    outs = []

    async def driver(ctx):
        for W, X, fmt, kw, skip in jobs:
            pw = pack_weights(W, fmt, **kw)
            M, K = W.shape
            ctx.set(dut.cmd.payload, {"op": 0, "fmt": FMT_CODE[fmt], "act_skip": skip,
                                      "m": M, "k": K, "n": X.shape[1]})
            ctx.set(dut.cmd.valid, 1)
            await ctx.tick().until(dut.cmd.ready)
            ctx.set(dut.cmd.valid, 0)
            words = weight_words(pw.image, cfg.axi_bytes)
            acts = act_entries(X, cfg.cols)
            wi = ai = 0
            while wi < len(words) or ai < len(acts):
                if wi < len(words) and rng.random() >= stall:
                    ctx.set(dut.weights.payload, words[wi])
                    ctx.set(dut.weights.valid, 1)
                else:
                    ctx.set(dut.weights.valid, 0)
                if ai < len(acts) and rng.random() >= stall:
                    ctx.set(dut.acts.payload, [int(v) for v in acts[ai]])
                    ctx.set(dut.acts.valid, 1)
                else:
                    ctx.set(dut.acts.valid, 0)
                _, _, wr, wv, ar, av = await ctx.tick().sample(
                    dut.weights.ready, dut.weights.valid, dut.acts.ready, dut.acts.valid)
                wi += int(wr and wv)
                ai += int(ar and av)
            ctx.set(dut.weights.valid, 0)
            ctx.set(dut.acts.valid, 0)
            await ctx.tick().until(~dut.busy)

    async def sink(ctx):
        for W, X, *_ in jobs:
            M, N = W.shape[0], X.shape[1]
            ncg = -(-N // cfg.cols)
            Y = np.full((M, ncg * cfg.cols), 0x7FFFFFFF, dtype=np.int64)
            for _ in range(M * ncg):
                while True:
                    ctx.set(dut.results.ready, int(rng.random() >= stall))
                    _, _, v, r, pl = await ctx.tick().sample(dut.results.valid,
                                                             dut.results.ready,
                                                             dut.results.payload)
                    if v and r:
                        break
                Y[pl.m, pl.cg * cfg.cols:(pl.cg + 1) * cfg.cols] = [int(a) for a in pl.acc]
            outs.append(Y[:, :N])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(sink, background=False)
    sim.run()
    return outs


def _jobs(rng, cfg):
    jobs = []
    for fmt, kw in (("dense", {}), ("nm", {"nm": (2, 4)}), ("nm", {"nm": (1, 8)}),
                    ("bitmap", {"group_size": 16}), ("block", {"block_size": 4}),
                    ("block", {"block_size": 16})):
        M, K, N = int(rng.integers(1, 7)), int(rng.integers(1, 40)), int(rng.integers(1, 6))
        W = rng.integers(-128, 128, (M, K))
        if fmt == "nm":
            n, mm = kw["nm"]
            g = np.zeros_like(W)
            for r in range(M):
                for s in range(0, K, mm):
                    keep = rng.choice(np.arange(s, min(K, s + mm)),
                                      min(n, min(K, s + mm) - s), replace=False)
                    g[r, keep] = W[r, keep]
            W = g
        elif fmt != "dense":
            W = W * (rng.random((M, K)) < 0.3)
        X = rng.integers(-128, 128, (K, N)) * (rng.random((K, N)) < 0.6)
        jobs.append((W, X, fmt, kw, int(rng.integers(0, 2))))
    return jobs


@pytest.mark.parametrize("rows,cols,stall", [(2, 2, 0.0), (3, 2, 0.3)])
def test_tile_matmul_formats(rows, cols, stall, rng, seed):
    cfg = AcceleratorConfig(rows=rows, cols=cols, out_lanes=1, weight_buf_depth=256,
                            act_buf_depth=256, mul_pipeline=1)
    jobs = _jobs(rng, cfg)
    jobs.append((np.full((3, 9), -128), np.full((9, 3), -128), "bitmap", {"group_size": 8}, 1))
    jobs.append((np.zeros((2, 5), dtype=int), rng.integers(-128, 128, (5, 2)), "nm",
                 {"nm": (1, 4)}, 0))
    outs = run_tile(cfg, jobs, rng, stall)
    for (W, X, fmt, kw, skip), Y in zip(jobs, outs):
        exp = matmul(W, X, acc_width=cfg.acc_width)
        assert np.array_equal(Y, exp), (
            f"seed={seed} fmt={fmt} {kw} skip={skip} W{W.shape} X{X.shape}:\n"
            f"expected\n{exp}\ngot\n{Y}")
        assert np.array_equal(exp, wrap(W.astype(np.int64) @ X, 32))
