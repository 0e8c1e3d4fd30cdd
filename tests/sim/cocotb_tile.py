"""cocotb testbench of the compute tile: random matmuls of every format and edge cases, and
random conv2d geometries through the tile's implicit im2col, with and without idle /
backpressure, bit-exact against golden.matmul / golden.conv2d (int32 accumulators).

The config comes from ``SPARSEMAC_CFG`` (``sim.tb.base.config_from_env``), the seed from the
run (``SPARSEMAC_SEED``), ``cases`` (random cases per format) from ``SPARSEMAC_PARAMS``.
"""

import cocotb
import numpy as np
from cocotb.triggers import with_timeout
from sparsemac.golden.formats import pack_weights
from sparsemac.golden.ops import conv2d, conv_output_shape, matmul
from sparsemac.golden.pool import avgpool2d, maxpool2d, pool_output_shape
from sparsemac.golden.prune import prune
from sparsemac.hw.hub.desc_checker import nz_depth
from sparsemac.sim.tb.base import config_from_env, params_from_env, run_seed
from sparsemac.sim.tile_driver import TileDriver, conv_job, pool_job, tile_job

SEED = run_seed()
CFG = config_from_env()
CASES = int(params_from_env(cases=2)["cases"])
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
            N = min(N, CFG.act_buf_depth // K * CFG.cols)  # fits the activation buffer
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


def _conv_cases(rng):
    """(name, x, w, stride, pad, dil, fmt, kw): random geometries of every format."""
    out = []
    for fmt, kw in FORMATS:
        for i in range(max(1, CASES // 2)):
            while True:
                C, H, Wd = (int(v) for v in rng.integers(1, [4, 8, 8]))
                kh, kwd = (int(v) for v in rng.integers(1, 4, 2))
                st = tuple(int(v) for v in rng.integers(1, 3, 2))
                pd = tuple(int(v) for v in rng.integers(0, 3, 2))
                dl = tuple(int(v) for v in rng.integers(1, 3, 2))
                try:
                    oh, ow = conv_output_shape((H, Wd), (kh, kwd), st, pd, dl)
                except ValueError:
                    continue
                ncg = -(-oh * ow // CFG.cols)
                flag_words = ncg * -(-C * kh * kwd // CFG.axi_data_width)  # bitmap flags
                if (ncg * C * kh * kwd <= CFG.act_buf_depth and C * H * Wd <= CFG.act_buf_depth
                        and flag_words <= nz_depth(CFG)):
                    break
            kout = int(rng.integers(1, CFG.rows + 3))
            x = rng.integers(-128, 128, (1, C, H, Wd)) * (rng.random((1, C, H, Wd)) < 0.6)
            w = _weights(rng, fmt, kw, kout, C * kh * kwd, float(rng.choice([0.2, 0.7, 1.0])))
            out.append((f"conv {fmt}{kw} {i} x{x.shape} k{(kh, kwd)} s{st} p{pd} d{dl}", x,
                        w.reshape(kout, C, kh, kwd), st, pd, dl, fmt, kw))
    return out


async def _run_cases(dut, stall):
    rng = np.random.default_rng(SEED)
    drv = TileDriver(dut, CFG, seed=SEED, stall=stall)
    await drv.reset()
    for name, W, X, fmt, kw in _cases(rng):
        pw = pack_weights(W, fmt, **kw)
        for skip in (False, True):
            job = tile_job(pw, X, CFG.cols, CFG.axi_bytes, skip)
            bound = 20 * (W.size * len(job["acts"]) // max(1, W.shape[1]) + len(job["words"])
                          + len(job["acts"])) + 2000
            res = await with_timeout(drv.run(job), bound * 10, "ns")
            exp = matmul(W, X, acc_width=CFG.acc_width)
            bad = np.argwhere(res["Y"] != exp)
            assert bad.size == 0, (
                f"seed={SEED} {name} act_skip={skip} W{W.shape} X{X.shape}: "
                f"{len(bad)} mismatches, first at {tuple(bad[0])}: "
                f"expected {exp[tuple(bad[0])]}, got {res['Y'][tuple(bad[0])]} "
                f"(tile error flag {res['error']})")
            assert res["error"] == 0, f"seed={SEED} {name}: tile flagged an error"
    for name, x, w, st, pd, dl, fmt, kw in _conv_cases(rng):
        pw = pack_weights(w.reshape(w.shape[0], -1), fmt, **kw)
        job = conv_job(pw, x, w.shape[2:], stride=st, padding=pd, dilation=dl, cols=CFG.cols,
                       word_bytes=CFG.axi_bytes, act_skip=bool(rng.integers(0, 2)))
        res = await with_timeout(drv.run(job), 200000 * 10, "ns")
        exp = conv2d(x, w, stride=st, padding=pd, dilation=dl,
                     acc_width=CFG.acc_width)[0].reshape(w.shape[0], -1)
        bad = np.argwhere(res["Y"] != exp)
        assert bad.size == 0, (
            f"seed={SEED} {name}: {len(bad)} mismatches, first at {tuple(bad[0])}: "
            f"expected {exp[tuple(bad[0])]}, got {res['Y'][tuple(bad[0])]}")
        assert res["error"] == 0, f"seed={SEED} {name}: tile flagged an error"


@cocotb.test()
async def matmul_conv_all_formats(dut):
    """Every format: random matmul shapes and edges, then random conv2d geometries."""
    await _run_cases(dut, 0.0)


@cocotb.test()
async def matmul_conv_all_formats_stalls(dut):
    """Same with random idle input cycles and output backpressure (30%)."""
    await _run_cases(dut, 0.3)


def _pool_cases(rng, n):
    """(name, x, kernel, stride, pad, avg, include_pad, c0, m): random max / average pools
    (padding counted, or each window divided by its real positions, spec 2.3) of random
    channel ranges, and the largest windows (15x15: a global average pool; padded 14 without
    INCLUDE_PAD, counts 1 to 225)."""
    out = []
    while len(out) < n:
        C, H, Wd = (int(v) for v in rng.integers(1, [5, 11, 11]))
        k = tuple(int(v) for v in rng.integers(1, 6, 2))
        st = tuple(int(v) for v in rng.integers(1, 4, 2))
        pd = tuple(int(rng.integers(0, kk)) for kk in k)
        try:
            oh, ow = pool_output_shape((H, Wd), k, st, pd)
        except ValueError:
            continue
        c0 = int(rng.integers(0, C))
        m = int(rng.integers(1, C - c0 + 1))
        # the tile's buffer bounds (hw/tile/tile.py `overflow`): the image, and the gathered
        # entries (m * KH*KW per column group) in the activation buffer
        if (C * H * Wd > CFG.act_buf_depth
                or -(-oh * ow // CFG.cols) * m * k[0] * k[1] > CFG.act_buf_depth):
            continue
        avg = bool(rng.integers(0, 2))
        out.append((C, H, Wd, k, st, pd, avg, avg and bool(rng.integers(0, 2)), c0, m))
    if 15 * 15 <= CFG.act_buf_depth:
        out.append((1, 15, 15, (15, 15), (1, 1), (0, 0), True, True, 0, 1))
    # without INCLUDE_PAD: counts 15, 225, 15 (the full window between two of one real row);
    # 1, 14, 14, 196 (the corner); 3 and 4 output pixels
    for st, pd, pixels in (((14, 1), (14, 0), 3), ((15, 15), (14, 14), 4)):
        if -(-pixels // CFG.cols) * 15 * 15 <= CFG.act_buf_depth:
            out.append((1, 15, 15, (15, 15), st, pd, True, False, 0, 1))
    cases = []
    for C, H, Wd, k, st, pd, avg, include, c0, m in out:
        x = rng.integers(-128, 128, (1, C, H, Wd))
        if not avg and any(pd) and rng.random() < 0.5:
            x = np.minimum(x, -1)       # all negative: a padding byte must not win a max
        kind = "max" if not avg else "avg" if include else "avg(real count)"
        cases.append((f"{kind}pool x{x.shape} k{k} s{st} p{pd} channels [{c0}, {c0 + m})",
                       x, k, st, pd, avg, include, c0, m))
    return cases


@cocotb.test(skip=not CFG.pool_enabled)
async def pools_between_convs(dut):
    """Random max and average pools (padding counted or not) on the tile (the im2col gather
    over channels ``[c0, c0 + m)`` and the PoolReducer), a conv between them (the lanes'
    state must survive a pool), with 30 % stalls: every value bit-exact with golden.pool."""
    rng = np.random.default_rng(SEED + 7)
    drv = TileDriver(dut, CFG, seed=SEED, stall=0.3)
    await drv.reset()
    convs = _conv_cases(rng)[:2]
    cases = _pool_cases(rng, 6 + 2 * CASES)
    for i, (name, x, k, st, pd, avg, include, c0, m) in enumerate(cases):
        job = pool_job(x, k, stride=st, padding=pd, avg=avg, include_pad=include, c0=c0, m=m,
                       cols=CFG.cols, word_bytes=CFG.axi_bytes)
        res = await with_timeout(drv.run(job), 200000 * 10, "ns")
        y = (avgpool2d(x, k, st, pd, count_include_pad=include) if avg
             else maxpool2d(x, k, st, pd))
        exp = y[0, c0:c0 + m].reshape(m, -1)
        bad = np.argwhere(res["Y"] != exp)
        assert bad.size == 0, (
            f"seed={SEED} {name}: {len(bad)} mismatches, first at {tuple(bad[0])}: "
            f"expected {exp[tuple(bad[0])]}, got {res['Y'][tuple(bad[0])]}")
        assert res["error"] == 0, f"seed={SEED} {name}: tile flagged an error"
        if i % 3 == 2:
            cname, cx, w, cst, cpd, cdl, fmt, kw = convs[(i // 3) % len(convs)]
            pw = pack_weights(w.reshape(w.shape[0], -1), fmt, **kw)
            cjob = conv_job(pw, cx, w.shape[2:], stride=cst, padding=cpd, dilation=cdl,
                            cols=CFG.cols, word_bytes=CFG.axi_bytes, act_skip=True)
            res = await with_timeout(drv.run(cjob), 200000 * 10, "ns")
            cexp = conv2d(cx, w, stride=cst, padding=cpd, dilation=cdl,
                          acc_width=CFG.acc_width)[0].reshape(w.shape[0], -1)
            assert np.array_equal(res["Y"], cexp), f"seed={SEED} {cname} after a pool"
    dut._log.info(f"pools: {len(cases)} (random, and the 15x15 windows) bit-exact")
