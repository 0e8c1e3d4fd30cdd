"""LaneDecoder under amaranth.sim: the pairs of every format vs the unpacked matrix.

A harness holds the packed image and the activation non-zero flags in real memories; the test
checks, per (row, column group) of the lane, that the emitted pairs are exactly the effectual
ones (k ascending, value read back from the image at ``vaddr``), then one end token with the
right ``empty`` flag, with random ``ready`` stalls.  In the streaming cases the image arrives
while the lane runs (a word per cycle with random gaps, ``w_avail`` counting them, the memory
holding random garbage until then): a word fetched before it is in gives wrong pairs.
"""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator
from sparsemac.golden.formats import pack_weights
from sparsemac.golden.prune import prune
from sparsemac.hw.config import FORMATS
from sparsemac.hw.tile.lane_decoder import LaneDecoder

WB = 8


class _Harness(wiring.Component):
    """The decoder on real memories.  ``stream``: the weight memory starts as ``init``
    (garbage) and the testbench writes the image word by word (``ld_en``/``ld_data``) while
    the lane runs; ``w_avail`` counts the words written, ``w_all`` follows the last one."""

    def __init__(self, dec, words, nzwords, stream=False, init=None, ncg=1, nz_init=None):
        self.dec, self.words, self.nzwords, self.stream = dec, words, nzwords, stream
        self.init, self.ncg, self.nz_init = init, ncg, nz_init
        self.ld_en, self.ld_data = Signal(), Signal(64)
        # ``nz_init``: the flag memory starts as garbage and the testbench writes it
        # (``nz_en``/``nz_addr``/``nz_data``) and raises ``cg_avail`` group by group
        self.nz_en, self.nz_addr, self.nz_data = Signal(), Signal(10), Signal(64)
        self.cg_avail = Signal(16)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dec = d = self.dec
        m.submodules.wmem = wmem = Memory(shape=64, depth=len(self.words),
                                          init=self.init if self.stream else self.words)
        cnt = Signal(range(len(self.words) + 1))
        if self.stream:
            wp = wmem.write_port()
            m.d.comb += [wp.addr.eq(cnt), wp.data.eq(self.ld_data), wp.en.eq(self.ld_en)]
            with m.If(self.ld_en):
                m.d.sync += cnt.eq(cnt + 1)
            m.d.comb += [d.w_avail.eq(cnt), d.w_all.eq(cnt == len(self.words))]
        else:
            m.d.comb += d.w_all.eq(1)
        m.submodules.nzmem = nzmem = Memory(shape=64, depth=len(self.nzwords),
                                            init=self.nz_init or self.nzwords)
        if d.has_bm:
            if self.nz_init:
                nw = nzmem.write_port()
                m.d.comb += [nw.addr.eq(self.nz_addr), nw.data.eq(self.nz_data),
                             nw.en.eq(self.nz_en), d.cg_avail.eq(self.cg_avail)]
            else:
                m.d.comb += d.cg_avail.eq(self.ncg)
        ports = [(wmem, d.scan_en, d.scan_addr, d.scan_data)]
        if d.has_aux:
            ports.append((wmem, d.aux_en, d.aux_addr, d.aux_data))
        if d.has_bm:
            ports += [(nzmem, d.nz_en, d.nz0_addr, d.nz0_data),
                      (nzmem, d.nz_en, d.nz1_addr, d.nz1_data)]
        for mem, en, addr, dat in ports:
            rp = mem.read_port()
            m.d.comb += [rp.en.eq(en), rp.addr.eq(addr), dat.eq(rp.data)]
        return m


def _case(fmt, kw, W, X, lane, rows, cols, act_skip, rng, seed, formats=FORMATS,
          stream=False, nz_stream=False):
    M, K = W.shape
    pw = pack_weights(W, fmt, **kw)
    img = np.concatenate([pw.image, np.zeros(64 * WB, dtype=np.uint8)])
    words = [int.from_bytes(img[i:i + WB].tobytes(), "little") for i in range(0, img.size, WB)]
    ncg = -(-X.shape[1] // cols)
    Xp = np.zeros((K, ncg * cols), dtype=np.int64)
    Xp[:, :X.shape[1]] = X
    nz = Xp.reshape(K, ncg, cols).any(axis=2).T  # (ncg, K)
    kw_words = -(-K // 64)
    nzwords = []
    for cg in range(ncg):
        bits = np.concatenate([nz[cg], np.zeros(kw_words * 64 - K, dtype=bool)])
        nzwords += [int(sum(1 << i for i in range(64) if bits[w * 64 + i]))
                    for w in range(kw_words)]
    nzwords += [0, 0]
    dec = LaneDecoder(lane=lane, rows=rows, word_bytes=WB, byte_addr_width=16,
                      act_addr_width=12, nz_addr_width=10, formats=formats)
    garbage = [int(x) for x in rng.integers(0, 1 << 63, len(words))]
    nz_garbage = [int(x) for x in rng.integers(0, 1 << 63, len(nzwords))] if nz_stream else None
    h = _Harness(dec, words, nzwords, stream=stream, init=garbage, ncg=ncg, nz_init=nz_garbage)
    a, b = pw.param_a, pw.param_b
    lg = {1: 0, 2: 1, 4: 2, 8: 3, 16: 4, 32: 5}
    row_len = {"dense": K, "bitmap": -(-K // max(a, 1)) * max(a, 1),
               "nm": -(-K // max(b, 1)) * a, "block": 0}[fmt]

    def expected(m, cg):
        ks = [k for k in range(K) if W[m, k] != 0 or fmt == "dense"]
        if act_skip and fmt == "bitmap":
            ks = [k for k in ks if nz[cg, k]]
        return [(k, int(W[m, k])) for k in ks]

    async def bench(ctx):
        for name, v in (("fmt", {"dense": 0, "bitmap": 1, "block": 2, "nm": 3}[fmt]),
                        ("act_skip", int(act_skip)), ("lg_n", lg.get(a, 0)),
                        ("lg_m", lg.get(b, 0)), ("lg_b", lg.get(a, 0)), ("dim_m", M),
                        ("dim_k", K), ("ncg", ncg), ("row_len", row_len), ("kw", kw_words),
                        ("sec_a", pw.sec_a), ("sec_b", pw.sec_b), ("sec_c", pw.sec_c)):
            ctx.set(getattr(dec, name), v)
        ctx.set(dec.start, 1)
        await ctx.tick()
        ctx.set(dec.start, 0)
        for m in range(lane, M, rows):
            for cg in range(ncg):
                want = expected(m, cg)
                got = []
                while True:
                    ctx.set(dec.pairs.ready, int(rng.random() < 0.7))
                    _, _, vld, rdy, p = await ctx.tick().sample(dec.pairs.valid,
                                                                dec.pairs.ready,
                                                                dec.pairs.payload)
                    if not (vld and rdy):
                        continue
                    where = f"seed={seed} {fmt}{kw} lane {lane}/{rows} row {m} cg {cg}"
                    if p.end:       # tokens carry no (m, cg): the order is the contract
                        assert bool(p.empty) == (not want), f"{where}: empty flag {p.empty}"
                        break
                    assert p.abase == cg * K, f"{where}: abase {p.abase}, expected {cg * K}"
                    assert bool(p.clear) == (not got), f"{where}: clear flag {p.clear}"
                    # bitmap values are read by the consumer at vaddr; the others ride along
                    w = img[int(p.vaddr)] if fmt == "bitmap" else p.w
                    got.append((int(p.k), int(np.uint8(int(w)).view(np.int8))))
                assert got == want, f"{where}:\nexpected {want}\ngot      {got}"
        await ctx.tick().until(dec.done)

    async def loader(ctx):      # the image, a word per cycle with random gaps
        i = 0
        while i < len(words):
            go = rng.random() < 0.6
            ctx.set(h.ld_en, int(go))
            ctx.set(h.ld_data, words[i])
            await ctx.tick()
            i += int(go)
        ctx.set(h.ld_en, 0)

    async def flag_writer(ctx):
        # column group after column group, a flag word per cycle with random gaps; the
        # group's count rises in the cycle its last word is written (a cycle earlier than the
        # tile's `a_cg`, which counts from the same write)
        for cg in range(ncg):
            for w in range(kw_words):
                while rng.random() < 0.5:
                    await ctx.tick()
                ctx.set(h.nz_en, 1)
                ctx.set(h.nz_addr, cg * kw_words + w)
                ctx.set(h.nz_data, nzwords[cg * kw_words + w])
                if w == kw_words - 1:
                    ctx.set(h.cg_avail, cg + 1)
                await ctx.tick()
                ctx.set(h.nz_en, 0)

    sim = Simulator(h)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if stream:
        sim.add_testbench(loader, background=True)
    if nz_stream:
        sim.add_testbench(flag_writer, background=True)
    sim.run()


def _weights(fmt, kw, M, K, rng, *, block_density, bitmap_density):
    """A random int8 ``M x K`` matrix with the zeros of format ``fmt`` (nm pruned to its N:M,
    block pruned to ``block_density`` of its blocks, bitmap ``bitmap_density`` non-zero)."""
    W = rng.integers(-128, 128, (M, K))
    if fmt == "nm":
        return prune(W, "nm", nm=kw["nm"])[0]
    if fmt == "block":
        return prune(W, "block", density=block_density, block_size=kw["block_size"])[0]
    if fmt == "bitmap":
        return W * (rng.random(W.shape) < bitmap_density)
    return W


@pytest.mark.parametrize("fmt,kw", [("dense", {}), ("nm", {"nm": (2, 4)}),
                                    ("nm", {"nm": (1, 16)}), ("bitmap", {"group_size": 8}),
                                    ("bitmap", {"group_size": 32}), ("block", {"block_size": 4}),
                                    ("block", {"block_size": 16})])
def test_lane_decoder_pairs(fmt, kw, rng, seed):
    for lane, rows in ((0, 1), (1, 3)):
        M, K, N = int(rng.integers(2, 8)), int(rng.integers(1, 150)), int(rng.integers(1, 9))
        W = _weights(fmt, kw, M, K, rng, block_density=0.4, bitmap_density=0.2)
        if fmt == "block":      # zeros inside the stored blocks too
            W = W * (rng.random(W.shape) < 0.8)
        X = rng.integers(-128, 128, (K, N)) * (rng.random((K, N)) < 0.5)
        # every format once in a build of all formats and once in a build of dense + it
        formats = FORMATS if lane == 0 else ("dense", fmt)
        _case(fmt, kw, W, X, lane, rows, 2, bool(rng.integers(0, 2)), rng, seed, formats)


@pytest.mark.parametrize("fmt,kw", [("dense", {}), ("nm", {"nm": (2, 4)}),
                                    ("nm", {"nm": (1, 8)}), ("block", {"block_size": 4}),
                                    ("bitmap", {"group_size": 8})])
def test_lane_decoder_streaming_image(fmt, kw, rng, seed):
    """The image arrives while the lane runs (docs/tile.md "Load and compute"): every pair is
    still exact, so no word was fetched before it was written.  (Bitmap: the tile starts it
    only once its image is in; its row set-up is gated all the same.)"""
    for lane, rows in ((0, 1), (2, 3)):
        M, K, N = int(rng.integers(3, 9)), int(rng.integers(20, 150)), int(rng.integers(1, 6))
        W = _weights(fmt, kw, M, K, rng, block_density=0.5, bitmap_density=0.3)
        X = rng.integers(-128, 128, (K, N))
        _case(fmt, kw, W, X, lane, rows, 2, False, rng, seed, stream=True)


@pytest.mark.parametrize("group_size", [8, 32])
def test_lane_decoder_bitmap_waits_for_flag_words(group_size, rng, seed):
    """Bitmap skipping zero activations starts with the im2col gather (session 24): the flag
    memory holds garbage until each column group's flag words are written and ``cg_avail``
    counts the group, so every pair is exact only if no row fetched before its group's
    flags were in (several groups per lane, K across more than one flag word)."""
    for lane, rows in ((0, 1), (1, 2)):
        M, K, N = int(rng.integers(2, 6)), int(rng.integers(40, 150)), int(rng.integers(5, 9))
        W = _weights("bitmap", {"group_size": group_size}, M, K, rng, block_density=0.5,
                     bitmap_density=0.5)
        X = rng.integers(-128, 128, (K, N)) * (rng.random((K, N)) < 0.4)
        _case("bitmap", {"group_size": group_size}, W, X, lane, rows, 2, True, rng, seed,
              nz_stream=True)


def test_lane_decoder_builds_only_its_formats():
    """Ports of formats that are not built do not exist; the pair carries vaddr only with
    bitmap."""
    kw = dict(lane=0, rows=1, word_bytes=8, byte_addr_width=12, act_addr_width=8,
              nz_addr_width=4)
    for formats, aux, nz in ((("dense",), False, False), (("dense", "nm"), True, False),
                             (("dense", "block"), True, False), (("dense", "bitmap"), False, True),
                             (FORMATS, True, True)):
        dec = LaneDecoder(formats=formats, **kw)
        names = set(dec.signature.members.keys())
        assert ("aux_addr" in names) == aux, f"{formats}: aux port {names}"
        assert ("nz0_addr" in names) == nz, f"{formats}: nz ports {names}"
        fields = {n for n, _ in dec.pairs.payload.shape()}
        assert ("vaddr" in fields) == ("bitmap" in formats), f"{formats}: pair fields {fields}"


def test_lane_decoder_parameter_errors():
    with pytest.raises(ValueError, match=r"formats must be a subset of dense, bitmap, block, nm "
                                         r"that contains 'dense', not \('nm',\)"):
        LaneDecoder(lane=0, rows=1, word_bytes=8, byte_addr_width=12, act_addr_width=8,
                    nz_addr_width=4, formats=("nm",))
    with pytest.raises(ValueError, match=r"word_bytes must be one of 4, 8, 16, 32, not 6"):
        LaneDecoder(lane=0, rows=1, word_bytes=6, byte_addr_width=12, act_addr_width=8,
                    nz_addr_width=4)
    with pytest.raises(ValueError, match=r"lane must be between 0 and 1, not 2"):
        LaneDecoder(lane=2, rows=2, word_bytes=8, byte_addr_width=12, act_addr_width=8,
                    nz_addr_width=4)
