"""Board self-test of the compute tile alone: a sparse matmul from on-chip ROMs, all checked.

The whole accelerator (DMA, descriptor checks, sequencer, ring, output pipeline) needs about
15k LUT4 at its smallest, three times an iCE40 UP5K (docs/flow.md section 5).  The sparse
compute tile alone (`hw.tile.Tile`: the zero-skipping lane decoders, the weight and activation
buffers and the MAC array; built without its conv2d path) needs about 2.9k.  On such a board
:class:`TileSelfTest` feeds that tile from ROMs built at elaboration and checks what it
returns:

1. it issues one matmul command ``Y[M, N] = W[M, K] @ X[K, N]`` (a sparse ``W`` packed by
   `golden.formats.pack_weights`, the same bytes the accelerator would fetch);
2. streams the weight-image words and the activation entries (``sim.tile_driver``'s
   ``tile_job``) into the tile, both at one word per cycle;
3. compares every result entry ``(m, cg)`` (``cols`` ``acc_width``-bit accumulators) with a ROM of
   `golden.ops.matmul` (``acc_width`` wrap-around), in whatever order the lanes deliver them: an
   entry that differs, an index outside ``M x ceil(N / cols)`` or an entry seen twice counts
   as a mismatch; the tile's ``error`` flag fails the test;
4. lights ``ok`` when all ``M * ceil(N / cols)`` entries arrived, each once and equal, and the
   tile is idle again; else ``fail`` (also after ``timeout_cycles`` without the last result).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["TileSelfTest", "TileSelfTestJob", "compile_tile_selftest"]

_FORMAT_PREFERENCE = ("bitmap", "nm", "block", "dense")


@dataclass(frozen=True)
class TileSelfTestJob:
    """What :class:`TileSelfTest` is built from (computed in Python at elaboration).

    Members
    -------
    fmt : str
    shape : (int, int, int)
        ``(M, K, N)``.
    cmd : dict
        The tile command (``hw.tile.tile_command_layout`` fields).
    words : list of int
        The weight image as ``axi_data_width``-bit words (header first).
    acts : list of int
        The activation entries, ``cols`` int8 values packed little-endian per entry.
    expected : numpy.ndarray, shape (M, ceil(N / cols) * cols)
        ``W @ X`` (``acc_width``-bit wrap), columns past ``N`` zero (the tile computes them on zero
        activations).
    density : float
        Non-zero weights / all weights.
    """

    fmt: str
    shape: tuple
    cmd: dict
    words: list
    acts: list
    expected: np.ndarray
    density: float


def compile_tile_selftest(cfg, *, fmt: str | None = None, m: int | None = None,
                          k: int | None = None, n: int | None = None, seed: int = 1,
                          corrupt: int | None = None) -> TileSelfTestJob:
    """The tile self-test matmul for build ``cfg``.

    Defaults: ``fmt`` the first of bitmap, nm, block, dense in ``cfg.formats`` (nm 2:4, the
    others at 50 % density), ``M = 2 * rows`` (two passes of the array), ``N = 2 * cols``
    (two column groups), ``K = min(32, act_buf_depth // ceil(N / cols))``.  ``corrupt`` flips
    bit 0 of that (flat) expected value (a test of the checker).

    Raises
    ------
    ValueError
        ``fmt`` is not built, a dimension is out of range, the image or the activations do not
        fit the tile buffers, or ``corrupt`` is outside the expected values.
    """
    from sparsemac.golden.formats import pack_weights
    from sparsemac.golden.ops import matmul
    from sparsemac.golden.prune import prune
    from sparsemac.sim.tile_driver import tile_job

    fmt = fmt or next(f for f in _FORMAT_PREFERENCE if f in cfg.formats)
    if fmt not in cfg.formats:
        raise ValueError(f"fmt must be one of the built formats {', '.join(cfg.formats)}, "
                         f"not {fmt!r}")
    m = m or 2 * cfg.rows
    n = n or 2 * cfg.cols
    ncg = -(-n // cfg.cols)
    k = k or min(32, cfg.act_buf_depth // ncg)
    for name, v, hi in (("m", m, 1 << 15), ("k", k, 1 << 15), ("n", n, 1 << 15)):
        if not 1 <= v <= hi:
            raise ValueError(f"{name} must be between 1 and {hi}, not {v!r}")
    if ncg * k > cfg.act_buf_depth:
        raise ValueError(f"ceil(n / cols) * k must be at most act_buf_depth = "
                         f"{cfg.act_buf_depth}, not {ncg * k} (n={n}, k={k})")
    rng = np.random.default_rng(seed)
    W = rng.integers(-128, 128, (m, k))
    kw = {}
    if fmt == "nm":
        W, kw = prune(W, "nm", nm=(2, 4))[0], {"nm": (2, 4)}
    elif fmt == "block":
        W, kw = prune(W, "block", density=0.5, block_size=cfg.block_size)[0], \
            {"block_size": cfg.block_size}
    elif fmt == "bitmap":
        W, kw = prune(W, "unstructured", density=0.5)[0], {"group_size": cfg.group_size}
    X = rng.integers(-128, 128, (k, n))
    pw = pack_weights(W, fmt, **kw)
    job = tile_job(pw, X, cfg.cols, cfg.axi_bytes, act_skip=False)
    if len(job["words"]) > cfg.weight_buf_depth:
        raise ValueError(f"the weight image must fit weight_buf_depth = {cfg.weight_buf_depth} "
                         f"words, not {len(job['words'])} ({fmt} {m}x{k})")
    exp = np.zeros((m, ncg * cfg.cols), dtype=np.int64)
    exp[:, :n] = matmul(W, X, acc_width=cfg.acc_width)
    if corrupt is not None:
        if not 0 <= corrupt < exp.size:
            raise ValueError(f"corrupt must be a value index between 0 and {exp.size - 1}, "
                             f"not {corrupt!r}")
        exp.flat[corrupt] ^= 1
    acts = [sum((v & 0xFF) << (8 * c) for c, v in enumerate(e)) for e in job["acts"]]
    return TileSelfTestJob(fmt=fmt, shape=(m, k, n), cmd=job["cmd"], words=job["words"],
                           acts=acts, expected=exp,
                           density=float(np.count_nonzero(W)) / W.size)


class TileSelfTest(wiring.Component):
    """The compute tile on ROMs, started and checked by a small FSM (module docstring).

    Latency: a few cycles, then the load (``max(len(words), len(acts))`` cycles), then the
    compute (about ``M / rows * ceil(N / cols) * nnz_per_row`` cycles).

    Parameters
    ----------
    cfg : hw.config.AcceleratorConfig
        ``rows``, ``cols``, ``formats``, ``axi_data_width`` and the buffer depths of the tile.
    corrupt : int, optional
        Flip a bit of this expected value (the check must then fail).
    timeout_cycles : int
        Cycles from the command to the last result before failing (>= 1).
    **job
        ``fmt``, ``m``, ``k``, ``n``, ``seed`` of :func:`compile_tile_selftest`.

    Members
    -------
    wrong_value : In(1)
        Compare against a wrong expected value (bit 0 of the first entry's first value
        flipped, like ``corrupt=0`` without rebuilding): the test must then fail.  Tie to 0.
    done : Out(1)
        The test has finished (stays high until reset).
    ok, fail : Out(1)
        ``done`` and passed / failed.
    mismatches : Out(16)
        Result entries that differed, were out of range or came twice.
    results : Out(16)
        Result entries received.
    tile_error : Out(1)
        The tile's ``error`` flag after the layer.
    cycles : Out(32)
        Cycles from the command to the last result.
    timed_out : Out(1)
    """

    def __init__(self, cfg, *, corrupt: int | None = None, timeout_cycles: int = 1 << 16,
                 **job):
        if isinstance(timeout_cycles, bool) or not isinstance(timeout_cycles, int) \
                or timeout_cycles < 1:
            raise ValueError(f"timeout_cycles must be a positive integer, not {timeout_cycles!r}")
        self.cfg = cfg
        self.timeout_cycles = timeout_cycles
        self.test = compile_tile_selftest(cfg, corrupt=corrupt, **job)
        super().__init__({"wrong_value": In(1), "done": Out(1), "ok": Out(1), "fail": Out(1),
                          "mismatches": Out(16), "results": Out(16), "tile_error": Out(1),
                          "cycles": Out(32), "timed_out": Out(1)})

    def describe(self) -> dict:
        """The self-test for a board report."""
        t = self.test
        mm, kk, nn = t.shape
        return {"core": "tile", "format": t.fmt, "mkn": [mm, kk, nn],
                "weight_density": round(t.density, 4), "weight_words": len(t.words),
                "act_entries": len(t.acts), "result_entries": int(t.expected.size
                                                                  // self.cfg.cols),
                "summary": f"compute tile only: {t.fmt} matmul {mm}x{kk}x{nn} "
                           f"(int{self.cfg.acc_width} accumulators) from on-chip ROMs, every "
                           f"accumulator compared"}

    def elaborate(self, platform):
        from sparsemac.hw.tile.tile import Tile, TileOp

        m = Module()
        cfg, t = self.cfg, self.test
        cols, acc_w = cfg.cols, cfg.acc_width
        mm, _, nn = t.shape
        ncg = -(-nn // cols)
        lg_ncg = max(1, (ncg - 1).bit_length())
        lg_m = max(1, (mm - 1).bit_length())
        n_results = mm * ncg
        m.submodules.tile = tile = Tile(cfg, conv=False)

        # -- ROMs: weight words, activation entries, expected entries at (m << lg_ncg) | cg --
        wrom = Memory(shape=cfg.axi_data_width, depth=len(t.words), init=t.words)
        arom = Memory(shape=cols * 8, depth=len(t.acts), init=t.acts)
        mask = (1 << acc_w) - 1
        exp_words = [0] * (mm << lg_ncg)
        for r in range(mm):
            for cg in range(ncg):
                exp_words[(r << lg_ncg) | cg] = sum(
                    (int(v) & mask) << (acc_w * c)
                    for c, v in enumerate(t.expected[r, cg * cols:(cg + 1) * cols]))
        erom = Memory(shape=cols * acc_w, depth=len(exp_words), init=exp_words)
        m.submodules.wrom, m.submodules.arom, m.submodules.erom = wrom, arom, erom

        running = Signal()

        def feed(rom, stream, n, name):
            """``rom[0:n]`` into ``stream`` at one entry per cycle: the read address is the
            pointer after this cycle's transfer, so the data always belongs to the pointer."""
            rd = rom.read_port()
            ptr = Signal(range(n + 1), name=f"{name}_ptr")
            nxt = Signal.like(ptr, name=f"{name}_next")
            m.d.comb += [stream.valid.eq(running & (ptr < n)), stream.payload.eq(rd.data),
                         nxt.eq(ptr + (stream.valid & stream.ready)), rd.addr.eq(nxt)]
            m.d.sync += ptr.eq(nxt)

        feed(wrom, tile.weights, len(t.words), "w")
        feed(arom, tile.acts, len(t.acts), "a")

        # -- the command: a constant ------------------------------------------------------------
        cmd = tile.cmd.payload
        m.d.comb += [cmd.op.eq(TileOp.MATMUL), cmd.fmt.eq(t.cmd["fmt"]),
                     cmd.act_skip.eq(t.cmd["act_skip"]), cmd.m.eq(t.cmd["m"]),
                     cmd.k.eq(t.cmd["k"]), cmd.n.eq(t.cmd["n"])]

        # -- results: look up the expected entry, compare one cycle later -----------------------
        res = tile.results
        m.d.comb += res.ready.eq(1)
        erd = erom.read_port()
        r_m, r_cg = res.payload.m, res.payload.cg
        in_range = (r_m < mm) & (r_cg < ncg)
        idx = Signal(lg_m + lg_ncg)
        m.d.comb += [idx.eq(Cat(r_cg[:lg_ncg], r_m[:lg_m])), erd.addr.eq(idx)]
        seen = Signal(mm << lg_ncg)
        c_valid, c_ok_idx, c_first = Signal(), Signal(), Signal()
        c_acc = Signal(cols * acc_w)
        m.d.sync += c_valid.eq(0)
        errors, count = Signal(16), Signal(16)
        m.d.comb += [self.mismatches.eq(errors), self.results.eq(count)]
        with m.If(res.valid):
            m.d.sync += [c_valid.eq(1), c_ok_idx.eq(in_range), c_first.eq(~seen.bit_select(
                idx, 1)), c_acc.eq(res.payload.acc), count.eq(count + 1),
                seen.bit_select(idx, 1).eq(1)]
        wrong_first = Signal()     # the entry being compared is (0, 0)
        m.d.sync += wrong_first.eq(res.valid & (idx == 0))
        expected = erd.data ^ (wrong_first & self.wrong_value)   # flips bit 0 of value 0
        with m.If(c_valid & ((c_acc != expected) | ~c_ok_idx | ~c_first)):
            m.d.sync += errors.eq(errors + 1)

        # -- the controller ----------------------------------------------------------------------
        wait = Signal(range(self.timeout_cycles + 1))
        with m.FSM(name="tile_selftest"):
            with m.State("COMMAND"):
                m.d.comb += tile.cmd.valid.eq(1)
                with m.If(tile.cmd.ready):
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += running.eq(1)
                m.d.sync += [wait.eq(wait + 1), self.cycles.eq(self.cycles + 1)]
                with m.If((count >= n_results) & ~tile.busy & ~c_valid):
                    m.next = "CHECKED"
                with m.Elif(wait == self.timeout_cycles):
                    m.d.sync += self.timed_out.eq(1)
                    m.next = "FAIL"
            with m.State("CHECKED"):
                good = (errors == 0) & (count == n_results) & ~tile.error
                m.d.sync += [self.done.eq(1), self.ok.eq(good), self.fail.eq(~good),
                             self.tile_error.eq(tile.error)]
            with m.State("FAIL"):
                m.d.sync += [self.done.eq(1), self.fail.eq(1), self.tile_error.eq(tile.error)]
        return m
