"""Tile under amaranth.sim: small matmuls of every format vs golden.matmul (bit exact)."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsemac.golden.formats import pack_weights
from sparsemac.golden.ops import conv2d, matmul
from sparsemac.golden.pool import avgpool2d, maxpool2d
from sparsemac.golden.prune import prune
from sparsemac.golden.quant import wrap
from sparsemac.golden.tile_model import tile_cycles
from sparsemac.hw.config import FORMATS, AcceleratorConfig
from sparsemac.hw.tile.tile import Tile, tile_command_layout
from sparsemac.sim.tile_driver import conv_job, pack_struct, pool_job, tile_job


def run_tile(cfg, jobs, rng, stall=0.0, status=None, conv=True):
    """Run tile jobs (sim.tile_driver.tile_job / conv_job) back to back; return the results.

    ``status`` (a list) receives ``(error flag, compute cycles)`` per job.  A job with
    ``"refused": True`` is only commanded: the tile must go idle with ``error`` set without
    taking a word or an activation, and it returns no results (``None`` in the list)."""
    dut = Tile(cfg, conv=conv)
    layout = tile_command_layout()
    outs = []
    computing = []

    async def count(ctx):
        async for _, _, c in ctx.tick().sample(dut.computing):
            if c:
                computing[-1] += 1

    async def driver(ctx):
        for job in jobs:
            ctx.set(dut.cmd.payload.as_value(), pack_struct(layout, job["cmd"]))
            ctx.set(dut.cmd.valid, 1)
            await ctx.tick().until(dut.cmd.ready)
            ctx.set(dut.cmd.valid, 0)
            computing.append(0)
            if job.get("refused"):
                for _ in range(4):   # nothing is taken, the tile is idle again at once
                    _, _, wr, ar, ir, busy = await ctx.tick().sample(
                        dut.weights.ready, dut.acts.ready, dut.image.ready, dut.busy)
                    assert not wr and not ar and not ir, "a refused command took a word"
                assert not busy and ctx.get(dut.error) == 1, "refused command: not idle/error"
                if status is not None:
                    status.append((ctx.get(dut.error), 0))
                continue
            words = job["words"]
            # a matmul's activation entries, or a conv2d's image words
            src = dut.image if "image" in job else dut.acts
            acts = job["image"] if "image" in job else job["acts"]
            wi = ai = 0
            limit = 50 * (len(words) + len(acts)) + 1000
            while wi < len(words) or ai < len(acts):
                limit -= 1
                assert limit > 0, (f"the tile stopped taking input: {wi} of {len(words)} "
                                   f"weight words, {ai} of {len(acts)} activations")
                if wi < len(words) and rng.random() >= stall:
                    ctx.set(dut.weights.payload, words[wi])
                    ctx.set(dut.weights.valid, 1)
                else:
                    ctx.set(dut.weights.valid, 0)
                if ai < len(acts) and rng.random() >= stall:
                    ctx.set(src.payload, acts[ai])
                    ctx.set(src.valid, 1)
                else:
                    ctx.set(src.valid, 0)
                _, _, wr, wv, ar, av = await ctx.tick().sample(
                    dut.weights.ready, dut.weights.valid, src.ready, src.valid)
                # the tile never asks for a word past its image (the next layer's first)
                assert not (wr and wi == len(words)), "weights.ready past the image's last word"
                wi += int(wr and wv)
                ai += int(ar and av)
            ctx.set(dut.weights.valid, 0)
            ctx.set(src.valid, 0)
            while True:
                _, _, busy, wr = await ctx.tick().sample(dut.busy, dut.weights.ready)
                assert not wr, "weights.ready past the image's last word"
                if not busy:
                    break
            if status is not None:
                status.append((ctx.get(dut.error), computing[-1]))

    async def sink(ctx):
        for job in jobs:
            if job.get("refused"):
                outs.append(None)
                continue
            M, N = job["M"], job["N"]
            ncg = -(-N // cfg.cols)
            first, groups = slice_groups(job["cmd"], ncg)
            Y = np.full((M, ncg * cfg.cols), 0x7FFFFFFF, dtype=np.int64)
            held = None     # a result offered and not taken: it stays, unchanged
            for _ in range(M * groups):
                while True:
                    ctx.set(dut.results.ready, int(rng.random() >= stall))
                    _, _, v, r, pl = await ctx.tick().sample(dut.results.valid,
                                                             dut.results.ready,
                                                             dut.results.payload)
                    now = (pl.m, pl.cg, tuple(int(a) for a in pl.acc)) if v else None
                    assert held is None or now == held, (
                        f"results changed while not taken: {held} -> {now}")
                    held = now if v and not r else None
                    if v and r:
                        break
                assert first <= pl.cg < first + groups, (
                    f"result of column group {pl.cg} outside the slice [{first}, "
                    f"{first + groups})")
                Y[pl.m, pl.cg * cfg.cols:(pl.cg + 1) * cfg.cols] = [int(a) for a in pl.acc]
            outs.append(Y[:, :N])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(sink)
    sim.add_process(count)
    sim.run()
    return outs


async def _command(ctx, dut, cmd: dict):
    """Issue one tile command (the tile is idle: taken in the first cycle)."""
    ctx.set(dut.cmd.payload.as_value(), pack_struct(tile_command_layout(), cmd))
    ctx.set(dut.cmd.valid, 1)
    await ctx.tick()
    ctx.set(dut.cmd.valid, 0)


def slice_groups(cmd: dict, ncg: int) -> tuple[int, int]:
    """The column groups ``(first, count)`` a tile command computes (`Tile`: ``cg0`` and
    ``cgs``, clamped to the ``ncg`` groups that exist)."""
    cg0, cgs = cmd.get("cg0", 0), cmd.get("cgs", 0)
    first = min(cg0, ncg - 1)
    avail = ncg - first
    return first, min(avail, cgs or avail)


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
    # many short rows (K < 4): several rows per weight word while the image streams in
    jobs.append((rng.integers(-128, 128, (24, 2)), rng.integers(-128, 128, (2, 1)), "dense",
                 {}, 0))
    # bitmap with a long value section after its masks and one column: lanes that started
    # before the image was in would read values not written yet (mutant BITMAP-STARTS-EARLY)
    Wb = rng.integers(-128, 128, (24, 64)) * (rng.random((24, 64)) < 0.6)
    jobs.append((Wb, rng.integers(-128, 128, (64, 1)), "bitmap", {"group_size": 16}, 0))
    return jobs


@pytest.mark.parametrize("rows,cols,stall", [(2, 2, 0.0), (3, 2, 0.3)])
def test_tile_matmul_formats(rows, cols, stall, rng, seed):
    cfg = AcceleratorConfig(rows=rows, cols=cols, out_lanes=1, weight_buf_depth=256,
                            act_buf_depth=256, mul_pipeline=1)
    jobs = _jobs(rng, cfg)
    jobs.append((np.full((3, 9), -128), np.full((9, 3), -128), "bitmap", {"group_size": 8}, 1))
    jobs.append((np.zeros((2, 5), dtype=int), rng.integers(-128, 128, (5, 2)), "nm",
                 {"nm": (1, 4)}, 0))
    outs = run_tile(cfg, [tile_job(pack_weights(W, fmt, **kw), X, cfg.cols, cfg.axi_bytes, skip)
                          for W, X, fmt, kw, skip in jobs], rng, stall)
    for (W, X, fmt, kw, skip), Y in zip(jobs, outs):
        exp = matmul(W, X, acc_width=cfg.acc_width)
        assert np.array_equal(Y, exp), (
            f"seed={seed} fmt={fmt} {kw} skip={skip} W{W.shape} X{X.shape}:\n"
            f"expected\n{exp}\ngot\n{Y}")
        assert np.array_equal(exp, wrap(W.astype(np.int64) @ X, 32))


@pytest.mark.parametrize("rows,cols", [(2, 3), (1, 2)])
def test_tile_conv2d_im2col(rows, cols, rng, seed):
    cfg = AcceleratorConfig(rows=rows, cols=cols, out_lanes=1, weight_buf_depth=256,
                            act_buf_depth=512, mul_pipeline=2)
    cases = [((1, 2, 5, 6), (3, 2, 3, 3), 1, 1, 1, "bitmap", {"group_size": 8}),
             ((1, 1, 7, 5), (2, 1, 2, 3), (2, 1), (0, 2), (1, 2), "nm", {"nm": (1, 4)}),
             ((1, 3, 4, 4), (2, 3, 1, 1), 2, 0, 1, "dense", {}),
             ((1, 2, 6, 6), (3, 2, 3, 2), 1, 2, 2, "block", {"block_size": 2})]
    jobs, exps = [], []
    for xs, ws, st, pd, dl, fmt, kw in cases:
        x = rng.integers(-128, 128, xs) * (rng.random(xs) < 0.7)
        w = rng.integers(-128, 128, ws) * (rng.random(ws) < 0.6)
        if fmt == "nm":
            w = prune(w, "nm", nm=kw["nm"])[0]
        W2 = w.reshape(ws[0], -1)
        jobs.append(conv_job(pack_weights(W2, fmt, **kw), x, ws[2:], stride=st, padding=pd,
                             dilation=dl, cols=cfg.cols, word_bytes=cfg.axi_bytes,
                             act_skip=True))
        exps.append(conv2d(x, w, stride=st, padding=pd, dilation=dl)[0].reshape(ws[0], -1))
    outs = run_tile(cfg, jobs, rng, 0.2)
    for case, exp, Y in zip(cases, exps, outs):
        assert np.array_equal(Y, exp), f"seed={seed} conv {case}:\nexpected\n{exp}\ngot\n{Y}"


def test_tile_without_conv_runs_matmuls_and_refuses_conv2d(rng, seed):
    """``Tile(conv=False)`` (the iCE40 tile board build): matmuls bit-exact as before; a
    ``CONV2D`` command sets ``error``, takes nothing and leaves the tile ready for the next."""
    cfg = AcceleratorConfig(rows=2, cols=2, out_lanes=1, weight_buf_depth=256,
                            act_buf_depth=256, mul_pipeline=2, formats=("dense", "nm"))
    jobs = [j for j in _jobs(rng, cfg) if j[2] in cfg.formats]
    x = rng.integers(-128, 128, (1, 2, 4, 4))
    w = rng.integers(-128, 128, (2, 2, 3, 3))
    conv = conv_job(pack_weights(w.reshape(2, -1), "dense"), x, (3, 3), cols=cfg.cols,
                    word_bytes=cfg.axi_bytes, act_skip=False) | {"refused": True}
    tjobs = [tile_job(pack_weights(W, fmt, **kw), X, cfg.cols, cfg.axi_bytes, skip)
             for W, X, fmt, kw, skip in jobs]
    status = []
    outs = run_tile(cfg, [tjobs[0], conv] + tjobs[1:], rng, 0.2, status, conv=False)
    assert outs[1] is None and status[1][0] == 1, f"seed={seed}: conv2d not refused"
    for (W, X, fmt, kw, _skip), Y, (err, _) in zip(jobs, outs[:1] + outs[2:],
                                                   status[:1] + status[2:]):
        exp = matmul(W, X, acc_width=cfg.acc_width)
        assert err == 0 and np.array_equal(Y, exp), (
            f"seed={seed} conv=False {fmt} {kw} W{W.shape} X{X.shape}: err={err}\n"
            f"expected\n{exp}\ngot\n{Y}")
    with pytest.raises(TypeError, match="conv must be a bool, not 1"):
        Tile(cfg, conv=1)


@pytest.mark.parametrize("formats", [("dense",), ("dense", "nm"), ("dense", "block"),
                                     ("dense", "bitmap"), FORMATS])
def test_tile_builds_only_configured_formats(formats, rng, seed):
    """Each build runs its formats bit-exact, in the cycles of golden.tile_model; an image of
    a format that is not built sets ``error`` and the tile still finishes the layer."""
    cfg = AcceleratorConfig(rows=3, cols=2, out_lanes=1, weight_buf_depth=256,
                            act_buf_depth=256, mul_pipeline=1, formats=formats)
    jobs = _jobs(rng, cfg)
    jobs = ([j for j in jobs if j[2] in formats]
            + [j for j in jobs if j[2] not in formats][:1])
    status = []
    packed = [pack_weights(W, fmt, **kw) for W, X, fmt, kw, skip in jobs]
    outs = run_tile(cfg, [tile_job(pw, X, cfg.cols, cfg.axi_bytes, skip)
                          for pw, (W, X, fmt, kw, skip) in zip(packed, jobs)], rng, 0.0, status)
    for pw, (W, X, fmt, kw, skip), Y, (err, cyc) in zip(packed, jobs, outs, status):
        where = f"seed={seed} build {formats}: {fmt} {kw} skip={skip} W{W.shape} X{X.shape}"
        if fmt not in formats:
            assert err == 1, f"{where}: error flag not set for a format that is not built"
            continue
        assert err == 0, f"{where}: error flag set"
        exp = matmul(W, X, acc_width=cfg.acc_width)
        assert np.array_equal(Y, exp), f"{where}:\nexpected\n{exp}\ngot\n{Y}"
        model = tile_cycles(pw, X, cfg, act_skip=bool(skip))["cycles"]
        # within 3 cycles, as for conv2d (60 seeds: -2..+1; a block 4x20 image whose lanes
        # wait for streaming entries: the RTL 3 cycles early, seed 2126659688)
        assert abs(cyc - model) <= 3, f"{where}: {cyc} compute cycles, model {model}"


def test_tile_parameter_errors():
    with pytest.raises(TypeError, match=r"config must be an AcceleratorConfig, not None"):
        Tile(None)


def test_tile_flags_buffer_overflow(rng):
    """Activations beyond act_buf_depth set ``error`` by the end of the layer (results are
    not trusted; the lanes already run while the entries arrive) and the tile still
    finishes."""
    cfg = AcceleratorConfig(rows=1, cols=1, out_lanes=1, weight_buf_depth=64, act_buf_depth=16)
    W = rng.integers(-128, 128, (1, 20))
    job = tile_job(pack_weights(W, "dense"), rng.integers(-128, 128, (20, 1)), 1, 8, False)
    dut = Tile(cfg)
    flags = []

    async def bench(ctx):
        await _command(ctx, dut, job["cmd"])
        ctx.set(dut.results.ready, 1)
        wi = ai = 0
        while ai < len(job["acts"]):
            ctx.set(dut.weights.payload, job["words"][min(wi, len(job["words"]) - 1)])
            ctx.set(dut.weights.valid, int(wi < len(job["words"])))
            ctx.set(dut.acts.payload, job["acts"][ai])
            ctx.set(dut.acts.valid, 1)
            _, _, wr, ar = await ctx.tick().sample(dut.weights.ready, dut.acts.ready)
            wi += int(wr and wi < len(job["words"]))
            ai += int(ar)
        ctx.set(dut.weights.valid, 0)
        ctx.set(dut.acts.valid, 0)
        await ctx.tick().until(~dut.busy)
        flags.append(ctx.get(dut.error))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert flags == [1], f"expected error=1 after 20 entries into 16, got {flags}"


@pytest.mark.parametrize("rows,cols", [(2, 2), (4, 4), (3, 5)])
def test_tile_conv2d_gather_overlaps_compute(rows, cols, rng, seed):
    """conv2d: the lanes start with the im2col gather (a pair waits for its entry; bitmap with
    zero-activation skipping: a row waits for its column group's entries, since session 24):
    bit-exact, and the compute phase in
    the cycles of golden.tile_model's gated lane recurrence (within 3)."""
    from sparsemac.golden.ops import im2col
    from sparsemac.sim.tile_driver import conv_job

    cfg = AcceleratorConfig(rows=rows, cols=cols, out_lanes=1, weight_buf_depth=512,
                            act_buf_depth=1024, mul_pipeline=2)
    cases = [((1, 2, 6, 6), (3, 2, 3, 3), 1, 1, "dense", {}),
             ((1, 4, 6, 6), (5, 4, 3, 3), 1, 1, "nm", {"nm": (2, 4)}),
             ((1, 4, 6, 6), (5, 4, 3, 3), 2, 1, "nm", {"nm": (1, 8)}),
             ((1, 3, 5, 5), (7, 3, 2, 2), 1, 0, "block", {"block_size": 2}),
             ((1, 2, 6, 6), (3, 2, 3, 3), 1, 1, "bitmap", {"group_size": 8}),
             ((1, 8, 4, 4), (6, 8, 1, 1), 1, 0, "dense", {}),
             ((1, 16, 3, 3), (9, 16, 1, 1), 1, 0, "nm", {"nm": (1, 4)})]
    jobs, info = [], []
    for xs, ws, st, pd, fmt, kw in cases:
        x = rng.integers(-128, 128, xs) * (rng.random(xs) < 0.7)
        w = rng.integers(-128, 128, ws) * (rng.random(ws) < 0.6)
        if fmt == "nm":
            w = prune(w, "nm", nm=kw["nm"])[0]
        pw = pack_weights(w.reshape(ws[0], -1), fmt, **kw)
        jobs.append(conv_job(pw, x, ws[2:], stride=st, padding=pd, cols=cfg.cols,
                             word_bytes=cfg.axi_bytes, act_skip=True))
        info.append((fmt, kw, pw, im2col(x, ws[2], ws[3], stride=st, padding=pd)[0],
                     conv2d(x, w, stride=st, padding=pd)[0].reshape(ws[0], -1), x.size))
    status = []
    outs = run_tile(cfg, jobs, rng, 0.0, status)
    for (fmt, kw, pw, Xc, exp, ib), Y, (err, cyc) in zip(info, outs, status):
        where = f"seed={seed} {rows}x{cols} {fmt} {kw} K={Xc.shape[0]} N={Xc.shape[1]}"
        assert err == 0 and np.array_equal(Y, exp), f"{where}:\nexpected\n{exp}\ngot\n{Y}"
        model = tile_cycles(pw, Xc, cfg, act_skip=True, image_bytes=ib)["cycles"]
        assert abs(cyc - model) <= 3, f"{where}: {cyc} compute cycles, model {model}"


@pytest.mark.parametrize("conv", [False, True])
def test_tile_column_slices(conv, rng, seed):
    """A tile computing a slice ``[cg0, cg0 + cgs)`` of the column groups (the accelerator's
    column split): the slice's columns bit-exact, results tagged with the layer's ``cg``,
    nothing outside the slice; at the bounds (last group, ``cgs`` reaching exactly the end)
    no error, one group past them the error flag and the clamped slice."""
    cfg = AcceleratorConfig(rows=2, cols=2, out_lanes=1, weight_buf_depth=256,
                            act_buf_depth=512, mul_pipeline=1)
    if conv:
        x = rng.integers(-128, 128, (1, 2, 5, 6)) * (rng.random((1, 2, 5, 6)) < 0.7)
        w = rng.integers(-128, 128, (3, 2, 3, 3)) * (rng.random((3, 2, 3, 3)) < 0.6)
        exp = conv2d(x, w, stride=1, padding=1)[0].reshape(3, -1)
        base = conv_job(pack_weights(w.reshape(3, -1), "bitmap", group_size=8), x, (3, 3),
                        stride=1, padding=1, cols=cfg.cols, word_bytes=cfg.axi_bytes,
                        act_skip=False)
    else:
        W = rng.integers(-128, 128, (3, 11)) * (rng.random((3, 11)) < 0.5)
        X = rng.integers(-128, 128, (11, 7))
        exp = matmul(W, X, acc_width=cfg.acc_width)
        base = tile_job(pack_weights(W, "dense"), X, cfg.cols, cfg.axi_bytes, False)
    N = exp.shape[1]
    ncg = -(-N // cfg.cols)
    cases = [(0, 1, 0), (1, 2, 0), (ncg - 1, 1, 0), (ncg - 1, 0, 0), (2, ncg - 2, 0),
             (0, 0, 0), (ncg, 1, 1), (ncg - 2, 3, 1), (ncg, 0, 1), (ncg + 3, 2, 1),
             (ncg - 1, 2, 1)]
    jobs = [dict(base, cmd=dict(base["cmd"], cg0=c0, cgs=cs)) for c0, cs, _ in cases]
    status = []
    outs = run_tile(cfg, jobs, rng, 0.2, status)
    for (c0, cs, bad), job, Y, (err, _) in zip(cases, jobs, outs, status):
        first, groups = slice_groups(job["cmd"], ncg)
        lo, hi = first * cfg.cols, min(N, (first + groups) * cfg.cols)
        assert err == bad, f"seed={seed} slice cg0={c0} cgs={cs}: error flag {err}, want {bad}"
        assert np.array_equal(Y[:, lo:hi], exp[:, lo:hi]), (
            f"seed={seed} slice cg0={c0} cgs={cs} (groups [{first}, {first + groups})):\n"
            f"expected\n{exp[:, lo:hi]}\ngot\n{Y[:, lo:hi]}")
        assert (Y[:, :lo] == 0x7FFFFFFF).all() and (Y[:, hi:] == 0x7FFFFFFF).all()


@pytest.mark.parametrize("rows,cols,lanes", [(2, 3, 1), (2, 4, 2)])
def test_tile_pools(rows, cols, lanes, rng, seed):
    """Max and average pools (padding counted, or each window divided by its real positions)
    on the tile: the im2col gather over the tile's own channels ``[c0, c0 + m)`` and the
    PoolReducer, bit-exact with golden, between conv jobs (the lanes' state must survive a
    pool), with random stalls."""
    cfg = AcceleratorConfig(rows=rows, cols=cols, out_lanes=lanes, weight_buf_depth=256,
                            act_buf_depth=512, mul_pipeline=2)
    cases = [  # (C, H, W), kernel, stride, pad, avg (True: INCLUDE_PAD, "real": not), c0, m
        ((3, 6, 7), (2, 2), (2, 2), (0, 0), False, 0, 3),
        ((3, 6, 7), (3, 3), (2, 2), (1, 1), False, 1, 2),
        ((2, 5, 5), (3, 2), (1, 2), (1, 0), True, 0, 2),
        ((4, 4, 6), (2, 3), (2, 3), (0, 0), True, 3, 1),
        ((2, 3, 3), (3, 3), (1, 1), (0, 0), True, 0, 2),     # a global average pool
        ((1, 7, 5), (1, 1), (2, 1), (0, 0), False, 0, 1),
        ((2, 15, 15), (15, 15), (1, 1), (0, 0), True, 1, 1),  # the largest window, 225
        # more column groups than the bitmap flag buffer has words (a pool writes no flags)
        ((1, 16, 16), (1, 1), (1, 1), (0, 0), False, 0, 1),
        # count_include_pad 0: the corners of a padded 2x2 (count 1), every border of a 3x3
        ((2, 5, 6), (2, 2), (1, 1), (1, 1), "real", 0, 2),
        ((3, 5, 4), (3, 3), (2, 1), (1, 2), "real", 1, 2),
        ((1, 4, 7), (3, 4), (3, 2), (2, 3), "real", 0, 1),   # stride past the kernel's half
        # 15x15 kernels padded 14: counts 1 (the corner), 14, 196; and 15, 225 (the full
        # window between two of one real row), the bounds of the reciprocal table
        ((1, 15, 15), (15, 15), (15, 15), (14, 14), "real", 0, 1),
        ((1, 15, 15), (15, 15), (14, 1), (14, 0), "real", 0, 1),
        ((2, 3, 4), (2, 3), (1, 1), (0, 0), "real", 1, 1),   # no padding: KH*KW either way
        # interleaved channels (the accelerator's split over tiles, cgap = tiles - 1): c0,
        # c0 + cgap + 1, ...
        ((7, 5, 6), (2, 2), (2, 2), (0, 0), False, 1, (2, 3)),
        ((9, 4, 5), (3, 3), (1, 1), (1, 1), "real", 2, (3, 2)),
        ((5, 6, 3), (2, 3), (1, 2), (1, 1), True, 0, (2, 3)),
    ]
    jobs, exps = [], []
    x0 = rng.integers(-128, 128, (1, 2, 5, 6))
    w0 = rng.integers(-128, 128, (3, 2, 3, 3))
    conv = conv_job(pack_weights(w0.reshape(3, -1), "dense"), x0, (3, 3), padding=1,
                    cols=cfg.cols, word_bytes=cfg.axi_bytes, act_skip=True)
    conv_exp = conv2d(x0, w0, padding=1)[0].reshape(3, -1)
    for shape, k, st, pd, avg, c0, m in cases:
        m, cgap = m if isinstance(m, tuple) else (m, 0)
        chans = [c0 + i * (cgap + 1) for i in range(m)]
        x = rng.integers(-128, 128, (1, *shape))
        if not avg and any(pd):     # all negative: a padding byte must not win a max
            x = np.minimum(x, -1)
        x[0, c0, 0, :] = -128       # a row of the window minimum (max with padding = -128)
        x[0, c0, -1, :] = 127
        include = avg is True
        jobs.append(pool_job(x, k, stride=st, padding=pd, avg=bool(avg), include_pad=include,
                             c0=c0, m=m, cgap=cgap, cols=cfg.cols, word_bytes=cfg.axi_bytes))
        y = (avgpool2d(x, k, st, pd, count_include_pad=include) if avg
             else maxpool2d(x, k, st, pd))
        exps.append(y[0, chans].reshape(m, -1))
    all_jobs = [conv] + jobs[:3] + [conv] + jobs[3:]
    all_exps = [conv_exp] + exps[:3] + [conv_exp] + exps[3:]
    status = []
    outs = run_tile(cfg, all_jobs, rng, 0.2, status)
    for i, (job, exp, Y, (err, _)) in enumerate(zip(all_jobs, all_exps, outs, status)):
        assert err == 0, f"seed={seed} job {i}: error flag set"
        assert np.array_equal(Y, exp), (
            f"seed={seed} job {i} {job['cmd']['op']} geo {job['cmd']['geo']} "
            f"c0={job['cmd'].get('c0')}:\nexpected\n{exp}\ngot\n{Y}")


@pytest.mark.parametrize("kernel,stride,pad,avg,lanes,c0,cgap,gap", [
    ((2, 2), (2, 2), (0, 0), False, 4, 0, 0, 0),
    ((3, 3), (2, 2), (0, 0), True, 4, 1, 3, 0),
    ((2, 2), (1, 1), (0, 0), True, 1, 0, 1, 2),
    ((1, 1), (1, 1), (0, 0), False, 4, 2, 0, 3),
    ((8, 8), (1, 1), (0, 0), True, 2, 0, 0, 0),
    ((3, 3), (1, 1), (1, 1), "real", 4, 3, 3, 1),    # count_include_pad 0: the same cycles
    ((2, 2), (1, 1), (1, 1), "real", 1, 0, 2, 4),
    ((2, 2), (2, 2), (0, 0), False, 2, 1, 3, 6),     # the image slower than the gather
])
def test_pool_token_times_match_the_cycle_model(kernel, stride, pad, avg, lanes, c0, cgap, gap,
                                                rng, seed):
    """`golden.net_pool.pool_channel_tokens` (the network cycle model's pool results) against
    the tile: the cycle each window's result is offered, the image words arriving with up to
    ``gap`` idle cycles between them (random), the tile's channels ``c0, c0 + cgap + 1, ...``
    of 12, each pooled once its plane is in, results always taken.  An average of the real
    positions (``"real"``) takes the cycles of one counting padding."""
    from sparsemac.golden.net_pool import plane_words, pool_channel_tokens, pool_divide_beats
    from sparsemac.golden.tile_model import gather_gate

    cfg = AcceleratorConfig.preset("default").replace(out_lanes=lanes, act_buf_depth=2048)
    C, H, Wd = 12, 8, 8
    x = rng.integers(-128, 128, (1, C, H, Wd))
    job = pool_job(x, kernel, stride=stride, padding=pad, avg=bool(avg),
                   include_pad=avg is True, c0=c0, cgap=cgap, cols=cfg.cols,
                   word_bytes=cfg.axi_bytes)
    m = job["M"]
    dut = Tile(cfg)
    seen = {}

    async def bench(ctx):
        await _command(ctx, dut, job["cmd"])       # taken in cycle 0
        ctx.set(dut.results.ready, 1)
        ai, offered, taken, wait = 0, [], [], 0
        for cyc in range(1, 20000):
            more = ai < len(job["image"]) and wait == 0
            ctx.set(dut.image.valid, int(more))
            if more:
                ctx.set(dut.image.payload, job["image"][ai])
            if more and ctx.get(dut.image.ready):
                ai += 1
                taken.append(cyc)
                wait = int(rng.integers(0, gap + 1))
            elif wait:
                wait -= 1
            if ctx.get(dut.results.valid):
                offered.append(cyc)
            await ctx.tick()
            if cyc > 10 and not ctx.get(dut.busy):
                break
        seen["offered"], seen["taken"] = offered, taken

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    oh = (H + 2 * pad[0] - kernel[0]) // stride[0] + 1
    ow = (Wd + 2 * pad[1] - kernel[1]) // stride[1] + 1
    wb = cfg.axi_bytes
    taken = seen["taken"]

    def plane_in(i):        # the cycle the channel's last word was taken
        return taken[plane_words(c0 + i * (cgap + 1), H * Wd, wb) - 1]

    # the reducer starts (and its reciprocal divider) in LOAD once the channel sums are done:
    # command in cycle 0, SETUP 1, SIZE 2, LOAD from 3, max(c0, cgap + 1) sum cycles
    recip_at = 3 + max(c0, cgap + 1)
    want = list(pool_channel_tokens(m, -(-oh * ow // cfg.cols), kernel[0] * kernel[1],
                                    plane_in=plane_in, gate=gather_gate(cfg), avg=bool(avg),
                                    bpr=pool_divide_beats(cfg.cols), recip_at=recip_at))
    got = seen["offered"]
    assert got == want, (f"seed={seed} kernel {kernel} stride {stride} avg={avg} "
                         f"lanes={lanes} c0={c0} cgap={cgap} gap={gap}:\nmodel {want}\n"
                         f"tile  {got}")
