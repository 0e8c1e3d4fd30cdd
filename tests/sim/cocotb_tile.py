"""cocotb testbench of the compute tile: random matmuls of every format and edge cases,
with and without idle/backpressure, bit-exact against golden.matmul (int32 accumulators).

Environment: SPARSEMAC_SEED, SPARSEMAC_TILE_CFG (config as YAML text), SPARSEMAC_TILE_CASES
(number of random cases per format).
"""

import os
import random

import cocotb
import numpy as np
import yaml

from golden.formats import pack_weights
from golden.ops import matmul
from golden.prune import prune
from hw.config import AcceleratorConfig
from sim.tile_driver import TileDriver, tile_job

SEED = int(os.environ.get("SPARSEMAC_SEED", "1"))
CFG = AcceleratorConfig.from_dict(yaml.safe_load(os.environ.get("SPARSEMAC_TILE_CFG", "{}")))
CASES = int(os.environ.get("SPARSEMAC_TILE_CASES", "2"))
FORMATS = [("dense", {}), ("nm", {"nm": (2, 4)}), ("nm", {"nm": (1, 8)}),
           ("nm", {"nm": (1, 32)}), ("bitmap", {"group_size": CFG.group_size}),
           ("block", {"block_size": CFG.block_size}), ("block", {"block_size": 2})]


def _weights(rng, fmt, kw, M, K, density):
    W = rng.integers(-128, 128, (M, K))
    if fmt == "nm":
        return prune(W, "nm", nm=kw["nm"])[0]
    if fmt == "block":
        return prune(W, "block", density=density, block_size=kw["block_size"])[0]
    return prune(W, "unstructured", density=density)[0]


def _cases(rng):
    """(name, W, X, fmt, kw) tuples: random shapes plus the edges."""
    out = []
    wb_max = max(8, CFG.rows + 3)
    for fmt, kw in FORMATS:
        for i in range(CASES):
            M = int(rng.integers(1, wb_max))
            K = int(rng.integers(1, 70))
            N = int(rng.integers(1, 2 * CFG.cols + 2))
            dens = float(rng.choice([0.05, 0.3, 0.6, 1.0]))
            W = _weights(rng, fmt, kw, M, K, dens)
            X = rng.integers(-128, 128, (K, N)) * (rng.random((K, N)) < rng.random())
            out.append((f"{fmt}{kw} random {i}", W, X, fmt, kw))
        K = int(rng.integers(33, 80))
        out.append((f"{fmt}{kw} zero W", np.zeros((CFG.rows + 1, K), dtype=int),
                    rng.integers(-128, 128, (K, 3)), fmt, kw))
        out.append((f"{fmt}{kw} zero X", _weights(rng, fmt, kw, 3, K, 0.5),
                    np.zeros((K, CFG.cols + 1), dtype=int), fmt, kw))
        Wm = _weights(rng, fmt, kw, CFG.rows + 1, K, 1.0)
        out.append((f"{fmt}{kw} -128", np.where(Wm != 0, -128, 0), np.full((K, 1), -128), fmt,
                    kw))
    return out


async def _run_cases(dut, stall):
    rng = np.random.default_rng(SEED)
    drv = TileDriver(dut, cols=CFG.cols, acc_width=CFG.acc_width, rng=random.Random(SEED),
                     stall=stall)
    await drv.start()
    for name, W, X, fmt, kw in _cases(rng):
        pw = pack_weights(W, fmt, **kw)
        for skip in (False, True):
            res = await drv.run(tile_job(pw, X, CFG.cols, CFG.axi_bytes, skip))
            exp = matmul(W, X, acc_width=CFG.acc_width)
            bad = np.argwhere(res["Y"] != exp)
            assert bad.size == 0, (
                f"seed={SEED} {name} act_skip={skip} W{W.shape} X{X.shape}: "
                f"{len(bad)} mismatches, first at {tuple(bad[0])}: "
                f"expected {exp[tuple(bad[0])]}, got {res['Y'][tuple(bad[0])]}")
            assert res["error"] == 0, f"seed={SEED} {name}: tile flagged an error"


@cocotb.test()
async def matmul_all_formats(dut):
    """Every format, random shapes and edges, no stalls."""
    await _run_cases(dut, 0.0)


@cocotb.test()
async def matmul_all_formats_stalls(dut):
    """Same with random idle input cycles and output backpressure (30%)."""
    await _run_cases(dut, 0.3)
