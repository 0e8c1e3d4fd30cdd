"""Im2colAddress under amaranth.sim: every entry's addresses vs golden.ops.im2col of an index
image (padding positions must be flagged, never addressed)."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsemac.golden.ops import conv_output_shape, im2col
from sparsemac.hw.tile.im2col_address import Im2colAddress

GEOMS = [  # (C, H, W, KH, KW, stride, pad, dilation)
    (2, 5, 6, 3, 3, (1, 1), (1, 1), (1, 1)),
    (1, 7, 5, 2, 3, (2, 1), (0, 2), (1, 2)),
    (3, 4, 4, 1, 1, (2, 2), (0, 0), (1, 1)),
    (1, 3, 9, 3, 2, (1, 3), (2, 1), (2, 1)),
]


async def _start(ctx, dut, k, first, end):
    """A one-cycle ``start`` for ``k`` entries per group and the groups ``[first, end)``."""
    ctx.set(dut.k, k)
    ctx.set(dut.ncg, end)
    ctx.set(dut.cg_first, first)
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)


async def _run(ctx, dut, cols, geom, exp, is_pad, first, end, cbase=0):
    """One start of ``dut`` on ``geom`` for the column groups ``[first, end)``: every entry's
    addresses and padding flags against golden's im2col of an index image (``exp``,
    ``is_pad``; rows of channels from ``cbase``'s on)."""
    C, H, W, kh, kw, st, pd, dl = geom
    oh, ow = conv_output_shape((H, W), (kh, kw), st, pd, dl)
    K, P = exp.shape
    ctx.set(dut.cbase, cbase)
    ctx.set(dut.geo, {"c": C, "h": H, "w": W, "oh": oh, "ow": ow, "kh": kh, "kw": kw,
                      "sh": st[0], "sw": st[1], "ph": pd[0], "pw": pd[1],
                      "dh": dl[0], "dw": dl[1]})
    await _start(ctx, dut, K, first, end)
    got = []
    while len(got) < (end - first) * K:
        _, _, v, a, inb = await ctx.tick().sample(dut.valid, dut.addr, dut.inb)
        if v:
            got.append(([int(x) for x in a], int(inb)))
    await ctx.tick().until(dut.done)
    for i, (addrs, inb) in enumerate(got):
        cg, k = divmod(i, K)
        cg += first
        for j in range(cols):
            p = cg * cols + j
            want_in = p < P and not is_pad[k, p]
            assert bool(inb >> j & 1) == want_in, (
                f"geometry {geom} cols={cols} groups [{first}, {end}) entry (cg={cg}, "
                f"k={k}) column {j}: expected inb={want_in}, got {bool(inb >> j & 1)}")
            if want_in:
                assert addrs[j] == exp[k, p], (
                    f"geometry {geom} cols={cols} groups [{first}, {end}) entry "
                    f"(cg={cg}, k={k}) column {j}: expected address {exp[k, p]}, "
                    f"got {addrs[j]}")


def _golden(geom):
    C, H, W, kh, kw, st, pd, dl = geom
    idx = np.arange(C * H * W).reshape(1, C, H, W)
    return im2col(idx, kh, kw, st, pd, dl)


def _simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("cols", [1, 2, 3, 4, 11, 16])
def test_im2col_addresses(cols, seed):
    dut = Im2colAddress(cols=cols, addr_width=16)

    async def bench(ctx):
        for geom in GEOMS:
            C, H, W, kh, kw, st, pd, dl = geom
            exp, is_pad = _golden(geom)
            K, P = exp.shape
            ncg = -(-P // cols)
            for first, end in ((0, ncg), (ncg // 3, min(ncg, ncg // 3 + 2)), (ncg - 1, ncg)):
                await _run(ctx, dut, cols, geom, exp, is_pad, first, end)
            # a pooling tile's share: channels [c0, c0 + n) only (cbase = c0 * H * W)
            kk = kh * kw
            for c0 in range(C):
                n = C - c0
                await _run(ctx, dut, cols, geom, exp[c0 * kk:(c0 + n) * kk],
                           is_pad[c0 * kk:(c0 + n) * kk], 0, ncg, cbase=c0 * H * W)

    _simulate(dut, bench)


# images that fill a 512-byte buffer (addr_width 10: coordinates of 10 bits, -512 .. 511) along
# one axis, with the largest padding and dilation: input coordinates from -15 to 526 (a
# coordinate of 511 is inside the image, one of 512 .. 526 is past it); exact only if the
# coordinates are wide enough (9 bits: 256 .. 511 would read as negative)
BOUND_GEOMS = [
    (1, 1, 512, 1, 15, (1, 1), (0, 15), (1, 15)),
    (1, 512, 1, 15, 1, (15, 1), (15, 0), (15, 1)),
    (2, 16, 16, 15, 15, (1, 2), (15, 15), (2, 1)),
]


@pytest.mark.parametrize("cols", [4, 16])
def test_im2col_coordinate_bound(cols, seed):
    """Images at the buffer's size (``C*H*W = 2**(addr_width - 1)``) with padding 15 and
    dilation 15: every address and padding flag exact (`coord_width` is wide enough)."""
    dut = Im2colAddress(cols=cols, addr_width=10)

    async def bench(ctx):
        for geom in BOUND_GEOMS:
            C, H, W = geom[:3]
            assert C * H * W == 2 ** 9
            exp, is_pad = _golden(geom)
            await _run(ctx, dut, cols, geom, exp, is_pad, 0, -(-exp.shape[1] // cols))

    _simulate(dut, bench)


@pytest.mark.parametrize("cols", [1, 4, 16])
def test_im2col_entry_cycles(cols):
    """Entry ``i`` of a run is valid exactly ``cols + 4 + cg_first + i`` cycles after the start
    pulse (set-up one cycle per column, PREP, the groups before ``cg_first`` stepped over one
    per cycle, two pipeline stages; the tile model's `gather_gate` counts on it), one entry per
    cycle, and ``done`` follows the last entry: the registered group-step decisions must not
    move a cycle."""
    dut = Im2colAddress(cols=cols, addr_width=16)
    runs = [(1, 0, 3), (9, 0, 2), (9, 2, 4), (2, 3, 5), (1, 1, 4)]   # (K, cg_first, ncg)

    async def bench(ctx):
        ctx.set(dut.geo, {"c": 1, "h": 9, "w": 9, "oh": 9, "ow": 9, "kh": 3, "kw": 3,
                          "sh": 1, "sw": 1, "ph": 1, "pw": 1, "dh": 1, "dw": 1})
        for K, first, end in runs:
            await _start(ctx, dut, K, first, end)
            valid_at, t = [], 1
            while not ctx.get(dut.done):
                if ctx.get(dut.valid):
                    valid_at.append(t)
                await ctx.tick()
                t += 1
            n = (end - first) * K
            want = [cols + 4 + first + i for i in range(n)]
            assert valid_at == want, (
                f"cols={cols} K={K} groups [{first}, {end}): expected entries at cycles "
                f"{want}, got {valid_at}")
            assert t == want[-1] + 1, (
                f"cols={cols} K={K} groups [{first}, {end}): expected done at cycle "
                f"{want[-1] + 1}, got {t}")
            await ctx.tick()

    _simulate(dut, bench)
