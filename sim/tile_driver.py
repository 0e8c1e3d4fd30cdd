"""cocotb driver of the compute tile (hw/tile.py): command, weight and activation streams in,
result stream out, with seeded idle/backpressure, and cycle measurement.  ``TileDriver`` is
the tile family's subclass of the testbench base class (``sim/tb/base.py``).

Used by tests/sim/cocotb_tile.py (bit-exact regression) and sim/bench_layer.py (benchmarks).
Host-side helpers (`tile_job`, `weight_words`, `act_entries`) are pure NumPy.
"""

from __future__ import annotations

import numpy as np

from .tb.base import TB, config_from_env, params_from_env

__all__ = ["TileDriver", "tile_job", "conv_job", "pool_job", "weight_words", "act_entries",
           "pack_struct", "FMT_CODES"]

FMT_CODES = {"dense": 0, "bitmap": 1, "block": 2, "nm": 3}


def weight_words(image, word_bytes: int) -> list[int]:
    """The image as little-endian ``word_bytes`` words (the ``weights`` stream)."""
    img = np.asarray(image, dtype=np.uint8)
    return [int.from_bytes(img[i:i + word_bytes].tobytes(), "little")
            for i in range(0, img.size, word_bytes)]


def act_entries(X, cols: int) -> list[list[int]]:
    """The ``acts`` stream of a matmul: entry ``(cg, k)`` = ``X[k, cg*cols:(cg+1)*cols]``
    (zero-padded past ``N``), column groups outer, ``k`` inner."""
    X = np.asarray(X, dtype=np.int64)
    K, N = X.shape
    ncg = -(-N // cols)
    Xp = np.zeros((K, ncg * cols), dtype=np.int64)
    Xp[:, :N] = X
    return [[int(v) for v in Xp[k, cg * cols:(cg + 1) * cols]]
            for cg in range(ncg) for k in range(K)]


def tile_job(pw, X, cols: int, word_bytes: int, act_skip: bool) -> dict:
    """Everything the tile needs for ``Y = W @ X`` with packed weights ``pw``."""
    M, K = pw.shape
    return {"cmd": {"op": 0, "fmt": FMT_CODES[pw.fmt], "act_skip": int(act_skip), "m": M,
                    "k": K, "n": int(X.shape[1])},
            "words": weight_words(pw.image, word_bytes), "acts": act_entries(X, cols),
            "M": M, "N": int(X.shape[1])}


def conv_job(pw, x, kernel, *, stride=1, padding=0, dilation=1, cols: int,
             word_bytes: int, act_skip: bool) -> dict:
    """The tile job of an NCHW (N=1) x OIHW conv2d: the image goes in raw on the tile's
    ``image`` stream (``word_bytes`` bytes per word, NCHW order, the last word zero-padded) and
    the tile's im2col address generator builds the entries."""
    from sparsemac.golden.ops import conv_output_shape

    x = np.asarray(x, dtype=np.int64)
    _, C, H, Wd = x.shape
    kh, kw = kernel
    st = (stride, stride) if np.isscalar(stride) else tuple(stride)
    pd = (padding, padding) if np.isscalar(padding) else tuple(padding)
    dl = (dilation, dilation) if np.isscalar(dilation) else tuple(dilation)
    oh, ow = conv_output_shape((H, Wd), (kh, kw), st, pd, dl)
    flat = x.ravel()
    raw = (flat & 0xFF).astype(np.uint8).tobytes()
    raw += bytes(-len(raw) % word_bytes)
    image = [int.from_bytes(raw[i:i + word_bytes], "little")
             for i in range(0, len(raw), word_bytes)]
    M, K = pw.shape
    geo = {"c": C, "h": H, "w": Wd, "oh": oh, "ow": ow, "kh": kh, "kw": kw, "sh": st[0],
           "sw": st[1], "ph": pd[0], "pw": pd[1], "dh": dl[0], "dw": dl[1]}
    return {"cmd": {"op": 1, "fmt": FMT_CODES[pw.fmt], "act_skip": int(act_skip), "m": M,
                    "k": K, "n": oh * ow, "geo": geo},
            "words": weight_words(pw.image, word_bytes), "image": image, "M": M,
            "N": oh * ow}


def pool_job(x, kernel, *, stride, padding=0, avg: bool, include_pad: bool = True, c0: int = 0,
             m: int | None = None, cgap: int = 0, cols: int, word_bytes: int) -> dict:
    """The tile job of a max (``avg`` False) or average pool (spec 2.3; ``include_pad``: the
    padding counts, else each window divides by its real positions) of the ``m`` channels
    ``c0, c0 + cgap + 1, ...`` (``cgap = 0``: ``[c0, c0 + m)``) of an NCHW (N=1) image: the
    whole image on ``image``, no weight words; the results are ``m`` rows of ``OH*OW`` int8
    values (`pool_channels` lists the channels)."""
    from sparsemac.golden.pool import pool_output_shape

    x = np.asarray(x, dtype=np.int64)
    _, C, H, Wd = x.shape
    kh, kw = (kernel, kernel) if np.isscalar(kernel) else tuple(kernel)
    st = (stride, stride) if np.isscalar(stride) else tuple(stride)
    pd = (padding, padding) if np.isscalar(padding) else tuple(padding)
    oh, ow = pool_output_shape((H, Wd), (kh, kw), st, pd)
    m = -(-(C - c0) // (cgap + 1)) if m is None else m
    raw = (x.ravel() & 0xFF).astype(np.uint8).tobytes()
    raw += bytes(-len(raw) % word_bytes)
    image = [int.from_bytes(raw[i:i + word_bytes], "little")
             for i in range(0, len(raw), word_bytes)]
    geo = {"c": C, "h": H, "w": Wd, "oh": oh, "ow": ow, "kh": kh, "kw": kw, "sh": st[0],
           "sw": st[1], "ph": pd[0], "pw": pd[1], "dh": 1, "dw": 1}
    return {"cmd": {"op": 3 if avg else 2, "fmt": 0, "act_skip": 0, "m": m, "k": 0,
                    "n": oh * ow, "geo": geo, "c0": c0, "cgap": cgap,
                    "exclude_pad": int(avg and not include_pad)},
            "words": [], "image": image, "M": m, "N": oh * ow}


def pack_struct(layout, values: dict) -> int:
    """Integer of an Amaranth StructLayout with plain integer / array field values."""
    out = 0
    for name, field in layout:
        v = values.get(name, 0)
        if isinstance(v, dict):
            v = pack_struct(field.shape, v)
        elif isinstance(v, (list, tuple)):
            ew = field.width // len(v)
            v = sum((int(e) & ((1 << ew) - 1)) << (i * ew) for i, e in enumerate(v))
        out |= (int(v) & ((1 << field.width) - 1)) << field.offset
    return out


def _signed(v: int, width: int) -> int:
    return v - (1 << width) if v >> (width - 1) else v


class TileDriver(TB):
    """Drives one Tile instance under cocotb (a :class:`sparsemac.sim.tb.base.TB`).

    Streams ``cmd``, ``weights`` and ``acts`` in with the base class's source (the stream
    rule: ``valid`` holds with its payload until ``ready``), takes ``results`` with its sink.

    Parameters
    ----------
    dut : cocotb handle of the ``tile`` top level.
    cfg : AcceleratorConfig
        The tile's config (``cols``, ``acc_width``).
    seed : int, optional
        Default: the run's seed.  One ``random.Random`` makes every stall decision.
    stall : float
        Probability of an idle cycle before each transfer of the ``weights`` and ``acts``
        sources and of ``ready = 0`` on ``results`` (the base's ``idle`` and
        ``backpressure``).
    """

    def __init__(self, dut, cfg, *, seed: int | None = None, stall: float = 0.0):
        from sparsemac.hw.tile.tile import tile_command_layout

        super().__init__(dut, seed=seed, idle=stall, backpressure=stall)
        self.cfg, self.cols, self.acc_width = cfg, cfg.cols, cfg.acc_width
        self.cmd_layout = tile_command_layout()
        self.results = self.sink("results")

    def quiet_inputs(self):
        d = self.dut
        return (d.cmd__valid, d.weights__valid, d.acts__valid, d.image__valid,
                d.results__ready)

    async def run(self, job: dict) -> dict:
        """Run one job; returns ``Y`` (int64 ``M x N``) and cycle counts."""
        import cocotb
        from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
        from cocotb.utils import get_sim_time

        d, cols, aw = self.dut, self.cols, self.acc_width
        await self.send("cmd", [pack_struct(self.cmd_layout, job["cmd"])], idle=0.0)
        t0 = get_sim_time(unit="ns")
        acts = [sum((v & 0xFF) << (8 * i) for i, v in enumerate(e))
                for e in job.get("acts", [])]
        fw = cocotb.start_soon(self.send("weights", job["words"]))
        fa = cocotb.start_soon(self.send("image", job["image"]) if "image" in job
                               else self.send("acts", acts))
        M, N = job["M"], job["N"]
        ncg = -(-N // cols)
        t_compute = []

        async def watch_compute():
            await ReadOnly()
            if not int(d.computing.value):
                await RisingEdge(d.computing)
            t_compute.append(get_sim_time(unit="ns"))

        wc = cocotb.start_soon(watch_compute())
        await self.results.collect(M * ncg)
        Y = np.full((M, ncg * cols), np.iinfo(np.int64).min, dtype=np.int64)
        seen = np.zeros((M, ncg), dtype=bool)
        for v, _ in self.results.take(M * ncg):
            m, cg = v & 0xFFFF, (v >> 16) & 0xFFFF
            assert m < M and cg < ncg and not seen[m, cg], (
                f"seed={self.seed}: unexpected or duplicate result (m={m}, cg={cg}) for M={M}, "
                f"groups={ncg}")
            seen[m, cg] = True
            for c in range(cols):
                Y[m, cg * cols + c] = _signed((v >> (32 + c * aw)) & ((1 << aw) - 1), aw)
        await ReadOnly()
        if int(d.busy.value):
            await FallingEdge(d.busy)
        t1 = get_sim_time(unit="ns")
        await RisingEdge(d.clk)
        await wc
        await fw
        await fa
        self.check_sinks_empty()
        total = int((t1 - t0) // self.clk_ns)
        load = int((t_compute[0] - t0) // self.clk_ns)
        return {"Y": Y[:, :N], "cycles": total - load, "load_cycles": load,
                "total_cycles": total, "error": int(d.error.value)}


if params_from_env().get("bench_job"):  # imported by cocotb for `sparsemac bench`
    import cocotb

    @cocotb.test()
    async def bench_layer(dut):
        """Run the jobs of the ``bench_job`` file (a JSON list) and write their results to the
        ``bench_out`` file (bench parameters, ``SPARSEMAC_PARAMS``)."""
        import json

        p = params_from_env()
        with open(p["bench_job"]) as fh:
            jobs = json.load(fh)
        drv = TileDriver(dut, config_from_env())
        await drv.reset()
        out = []
        for job in jobs:
            res = await drv.run(job)
            res["Y"] = res["Y"].tolist()
            out.append(res)
        with open(p["bench_out"], "w") as fh:
            json.dump(out, fh)
