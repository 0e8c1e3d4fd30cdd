"""LayerSetup (hw/hub/layer_setup.py) under amaranth.sim: random descriptors of every opcode
the hardware runs; the layer registers against the rules of docs/accelerator.md and
docs/spec.md (a matmul is the 1x1 conv of a K x 1 x N image, a global average pool one H x W
window, stream lengths in bus words), loaded only on ``load``."""

import random

import pytest
from amaranth.sim import Simulator
from sparsemac.golden.descriptors import QUANT_RECORD_BYTES, Descriptor, Flags, Opcode
from sparsemac.golden.net_pool import pool_unicast
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.hub.layer_setup import LayerSetup
from sparsemac.hw.tile.tile import TileOp

OPS = [Opcode.MATMUL, Opcode.CONV2D, Opcode.MAXPOOL2D, Opcode.AVGPOOL2D, Opcode.GLOBAL_AVGPOOL]


def _random_desc(rng):
    op = rng.choice(OPS)
    f = {k: rng.randrange(1, 16) for k in ("kh", "kw", "stride_h", "stride_w", "dil_h",
                                            "dil_w")}
    f.update(pad_h=rng.randrange(16), pad_w=rng.randrange(16))
    requant = rng.random() < 0.5 or op not in (Opcode.MATMUL, Opcode.CONV2D)
    flags = (Flags.REQUANT if requant else 0) | (Flags.INCLUDE_PAD if rng.random() < 0.5 else 0)
    # a global average pool's window is the image: at most 15 x 15 (4-bit kernel fields; the
    # DescChecker refuses larger ones)
    hw_max = 16 if op == Opcode.GLOBAL_AVGPOOL else 64
    if rng.random() < 0.3:      # planes of whole bus words (sent plane by plane) more often
        h, w = rng.choice([(8, 8), (4, 4), (2, 8), (15, 8), (12, 4)]
                          + [(16, 16)] * (hw_max > 16))
        return _desc(op, rng, flags, f, h, w)
    return _desc(op, rng, flags, f, rng.randrange(1, hw_max), rng.randrange(1, hw_max))


def _desc(op, rng, flags, f, h, w):
    return Descriptor(opcode=op, format=rng.randrange(4), flags=flags,
                      m=rng.randrange(1, 1 << 12), k=rng.randrange(1, 1 << 12),
                      n=rng.randrange(1, 1 << 12), c=rng.randrange(1, 256), h=h, w=w,
                      out=rng.randrange(0, 1 << 20, 8), **f)


def _expected(d, cfg, oh, ow, act_bytes, mem_base, kept=False):
    beat = cfg.axi_bytes
    op = Opcode(d.opcode)
    requant = bool(d.flags & Flags.REQUANT)
    pool = op in (Opcode.MAXPOOL2D, Opcode.AVGPOOL2D, Opcode.GLOBAL_AVGPOOL)
    glob = op == Opcode.GLOBAL_AVGPOOL
    if op == Opcode.CONV2D or pool:
        geo = dict(c=d.c, h=d.h, w=d.w, kh=d.kh, kw=d.kw, sh=d.stride_h, sw=d.stride_w,
                   ph=d.pad_h, pw=d.pad_w, dh=d.dil_h, dw=d.dil_w)
        if pool:
            geo.update(dh=1, dw=1)
        if glob:
            geo.update(kh=d.h, kw=d.w, sh=1, sw=1, ph=0, pw=0)
    else:       # the 1x1 conv of a K x 1 x N image
        geo = dict(c=d.k, h=1, w=d.n, kh=1, kw=1, sh=1, sw=1, ph=0, pw=0, dh=1, dw=1)
    geo.update(oh=oh, ow=ow)
    tables = requant and not pool
    es = 0 if (requant or pool) else 2
    return {
        "op": (TileOp.MAXPOOL if op == Opcode.MAXPOOL2D else TileOp.AVGPOOL) if pool
        else TileOp.CONV2D,
        "exclude_pad": int(op == Opcode.AVGPOOL2D and not d.flags & Flags.INCLUDE_PAD),
        "fmt": d.format, "k": d.k, "n": d.n, "geo": geo,
        "requant": int(tables), "lg_esize": 0 if pool else 2,
        "act_beats": -(-act_bytes // beat),
        "quant_beats": -(-d.m * QUANT_RECORD_BYTES // beat) if tables else 0,
        # a table the tiles hold already (the sequencer's `table_kept`): none sent
        "lut_beats": 256 // beat if tables and not kept else 0,
        "out_base": mem_base + d.out, "row_bytes": d.n << es, "m_total": d.m,
        "lg_esize_out": es,
        # a pool of whole-word planes goes plane by plane to the tiles (else multicast)
        "pool_uni": int(pool and pool_unicast(d.h * d.w, beat)),
        "plane_last": d.h * d.w // beat - 1,
    }


@pytest.mark.parametrize("width", [32, 64, 128])
def test_layer_setup_matches_the_rules(width, seed):
    rng = random.Random(seed)
    cfg = AcceleratorConfig.preset("default").replace(axi_data_width=width,
                                                      ring_payload_width=max(64, width))
    dut = LayerSetup(cfg)

    async def bench(ctx):
        exp = None
        for i in range(300):
            d = _random_desc(rng)
            oh, ow = rng.randrange(1, 1 << 16), rng.randrange(1, 1 << 16)
            act, base = rng.randrange(1, 1 << 20), rng.randrange(0, 1 << 20, 8)
            load = exp is None or rng.random() < 0.6
            ctx.set(dut.desc.as_value(), int.from_bytes(d.pack(), "little"))
            ctx.set(dut.oh, oh)
            ctx.set(dut.ow, ow)
            ctx.set(dut.act_bytes, act)
            ctx.set(dut.mem_base, base)
            ctx.set(dut.pool, d.opcode in (Opcode.MAXPOOL2D, Opcode.AVGPOOL2D,
                                           Opcode.GLOBAL_AVGPOOL))
            kept = rng.random() < 0.3
            ctx.set(dut.table_kept, kept)
            ctx.set(dut.load, load)
            await ctx.tick()
            if load:
                exp = _expected(d, cfg, oh, ow, act, base, kept)
            lay = ctx.get(dut.layer)
            got = {
                "op": lay.op, "exclude_pad": lay.exclude_pad, "fmt": lay.fmt, "k": lay.k,
                "n": lay.n, "geo": {k: getattr(lay.geo, k) for k in exp["geo"]},
                "requant": lay.requant, "lg_esize": lay.lg_esize, "act_beats": lay.act_beats,
                "quant_beats": lay.quant_beats, "lut_beats": lay.lut_beats,
                "out_base": ctx.get(dut.out_base), "row_bytes": ctx.get(dut.row_bytes),
                "m_total": ctx.get(dut.m_total), "lg_esize_out": ctx.get(dut.lg_esize),
                "pool_uni": lay.pool_uni,
                # the plane's words, only read when the layer is sent plane by plane
                "plane_last": ctx.get(dut.plane_last) if exp["pool_uni"] else exp["plane_last"],
            }
            assert got == exp, f"seed {seed}, descriptor {i} (load {load}): {d}"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
