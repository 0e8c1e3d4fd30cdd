"""Descriptors of pooling, residual add and depthwise conv (docs/spec.md section 8.2): the
constructors' shapes against the golden operations' own outputs, each validation rule of the
section exactly at its bound and just past it, the hardware's refusal (BAD_OPCODE) while its
config does not build them, and the hardware limits of the pools it builds
(`hardware_descriptor_code`)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sparsemac.golden import avgpool2d, depthwise_conv2d, global_avgpool, maxpool2d
from sparsemac.golden.desc_rules import hardware_descriptor_code, validate_descriptor
from sparsemac.golden.descriptors import (
    ADD_QUANT_BYTES,
    HW_OPS,
    LUT_BYTES,
    ErrorCode,
    Flags,
    Opcode,
    add_descriptor,
    avgpool2d_descriptor,
    buffer_sizes,
    depthwise_conv2d_descriptor,
    global_avgpool_descriptor,
    maxpool2d_descriptor,
    unpack_descriptor,
)

E = ErrorCode
ALL_OPS = tuple(o.name.lower() for o in Opcode)
CFG = SimpleNamespace(formats=("dense", "bitmap", "block", "nm"), group_size=16, block_size=8,
                      nm_max_m=32, axi_data_width=64, lut_enabled=True, ops=ALL_OPS)
HW = SimpleNamespace(**{**vars(CFG), "ops": HW_OPS})
WIN = 1 << 20
BEAT = CFG.axi_data_width // 8


def _code(d, cfg=CFG, win=WIN):
    code = validate_descriptor(d, cfg, window_bytes=win)
    assert validate_descriptor(d.pack(), cfg, window_bytes=win) == code   # raw bytes agree
    return code


def good(op: str) -> object:
    """A runnable descriptor of each new opcode, buffers at distinct aligned offsets."""
    bufs = dict(acts=0x1000, out=0x8000)
    if op == "maxpool2d":
        return maxpool2d_descriptor(c=3, h=9, w=7, kernel=(3, 2), stride=(2, 1), pad=(1, 0),
                                    **bufs)
    if op == "avgpool2d":
        return avgpool2d_descriptor(c=3, h=9, w=7, kernel=3, stride=2, pad=1,
                                    count_include_pad=False, **bufs)
    if op == "global_avgpool":
        return global_avgpool_descriptor(c=5, h=6, w=4, **bufs)
    if op == "add":
        return add_descriptor(c=4, h=5, w=3, a=0x1000, b=0x2000, out=0x8000, quant=0x9000,
                              lut=0xA000, flags=Flags.REQUANT | Flags.LUT)
    return depthwise_conv2d_descriptor(c=6, h=8, w=8, kh=3, kw=3, stride=(2, 1), pad=(1, 1),
                                       weights=0x4000, quant=0x9000, **bufs)


NEW = ("maxpool2d", "avgpool2d", "global_avgpool", "add", "depthwise_conv2d")


@pytest.mark.parametrize("op", NEW)
def test_runnable_where_built_refused_by_the_hardware(op):
    d = good(op)
    assert d.opcode == Opcode[op.upper()]
    assert _code(d) == E.OK
    assert unpack_descriptor(d.pack()) == d
    # today's hardware does not build them: BAD_OPCODE (check 2), before every later check
    assert _code(d, HW) == E.BAD_OPCODE
    assert hardware_descriptor_code(d, HW, window_bytes=WIN) == E.BAD_OPCODE
    assert _code(d.replace(flags=0xFFFF, out=3), HW) == E.BAD_OPCODE
    assert _code(d.replace(magic=0), HW) == E.BAD_DESC_MAGIC
    assert _code(d.replace(opcode=7)) == E.BAD_OPCODE          # past the last opcode


def test_shapes_match_the_golden_operations(rng, seed):
    """m, k, n and the buffer sizes of the constructors against the shapes the golden
    operations return on random inputs (independent of the descriptor code)."""
    for _ in range(40):
        c, h, w = (int(v) for v in rng.integers(1, 12, size=3))
        kh, kw = int(rng.integers(1, min(h, 16) + 1)), int(rng.integers(1, min(w, 16) + 1))
        sh, sw = (int(v) for v in rng.integers(1, 17, size=2))
        ph, pw = int(rng.integers(0, kh)), int(rng.integers(0, kw))
        x = rng.integers(-128, 128, size=(1, c, h, w)).astype(np.int8)
        ctx = f"seed={seed} x={x.shape} k={(kh, kw)} s={(sh, sw)} p={(ph, pw)}"
        y = maxpool2d(x, (kh, kw), (sh, sw), (ph, pw))
        d = maxpool2d_descriptor(c=c, h=h, w=w, kernel=(kh, kw), stride=(sh, sw), pad=(ph, pw))
        assert (d.m, d.k, d.n) == (c, kh * kw, y.shape[2] * y.shape[3]), ctx
        assert buffer_sizes(d) == dict(weights=0, acts=x.size, out=y.size, quant=0, lut=0), ctx
        assert _code(d) == E.OK, ctx
        ya = avgpool2d(x, (kh, kw), (sh, sw), (ph, pw), count_include_pad=True)
        da = avgpool2d_descriptor(c=c, h=h, w=w, kernel=(kh, kw), stride=(sh, sw),
                                  pad=(ph, pw), count_include_pad=True)
        assert da.flags == Flags.INCLUDE_PAD and buffer_sizes(da)["out"] == ya.size, ctx
        assert _code(da) == E.OK, ctx
        yg = global_avgpool(x)
        dg = global_avgpool_descriptor(c=c, h=h, w=w)
        assert (dg.m, dg.k, dg.n) == (c, h * w, 1) and buffer_sizes(dg)["out"] == yg.size, ctx
        wt = rng.integers(-128, 128, size=(c, 1, kh, kw)).astype(np.int8)
        dh = int(rng.integers(1, 3))
        if h + 2 * ph - dh * (kh - 1) - 1 >= 0 and w + 2 * pw - (kw - 1) - 1 >= 0:
            yd = depthwise_conv2d(x, wt, stride=(sh, sw), padding=(ph, pw), dilation=(dh, 1))
            dd = depthwise_conv2d_descriptor(c=c, h=h, w=w, kh=kh, kw=kw, stride=(sh, sw),
                                             pad=(ph, pw), dilation=(dh, 1), flags=0)
            assert (dd.m, dd.k, dd.n) == (c, kh * kw, yd.shape[2] * yd.shape[3]), ctx
            assert buffer_sizes(dd)["out"] == yd.size * 4, ctx          # int32 without REQUANT
            assert _code(dd) == E.OK, ctx


# -- each rule of section 8.2 at its bound (accepted) and just past it -----------------------

def _pool(**kw):
    base = dict(c=2, h=20, w=20, kernel=2, stride=2, pad=0)
    base.update(kw)
    return maxpool2d_descriptor(**base)


@pytest.mark.parametrize("field,at,past", [("kernel", 16, 17), ("stride", 16, 17)])
def test_pool_kernel_and_stride_bounds(field, at, past):
    assert _code(_pool(**{field: at})) == E.OK
    assert _code(_pool(**{field: past})) == E.BAD_SHAPE
    assert _code(_pool(**{field: 0})) == E.BAD_SHAPE


def test_pool_padding_below_the_kernel():
    assert _code(_pool(kernel=(3, 2), pad=(2, 1))) == E.OK           # pad == kernel - 1
    assert _code(_pool(kernel=(3, 2), pad=(3, 1))) == E.BAD_SHAPE    # pad == kernel
    assert _code(_pool(kernel=(3, 2), pad=(2, 2))) == E.BAD_SHAPE


def test_pool_kernel_must_fit_the_padded_input():
    assert _code(_pool(h=4, kernel=(6, 2), pad=(1, 0))) == E.OK      # 4 + 2 == 6
    d = _pool(h=3, kernel=(6, 2), pad=(1, 0))                          # 3 + 2 < 6: OH = 0
    assert d.n == 0 and _code(d) == E.BAD_SHAPE
    assert _code(d.replace(n=1)) == E.BAD_SHAPE                        # n != OH*OW


def test_pool_lowered_shape_fields():
    d = _pool()
    assert _code(d.replace(m=d.m + 1)) == E.BAD_SHAPE
    assert _code(d.replace(k=d.k + 1)) == E.BAD_SHAPE
    assert _code(d.replace(n=d.n - 1)) == E.BAD_SHAPE
    assert _code(d.replace(dil_h=2)) == E.BAD_SHAPE
    assert _code(d.replace(dil_w=0)) == E.BAD_SHAPE
    assert _code(d.replace(c=0, m=0)) == E.BAD_SHAPE


def test_global_pool_area_bound():
    assert _code(global_avgpool_descriptor(c=1, h=256, w=256)) == E.OK          # 65536
    assert _code(global_avgpool_descriptor(c=1, h=257, w=255)) == E.OK          # 65535
    assert _code(global_avgpool_descriptor(c=1, h=256, w=257)) == E.BAD_SHAPE   # 65792
    assert _code(global_avgpool_descriptor(c=1, h=65535, w=2)) == E.BAD_SHAPE
    d = global_avgpool_descriptor(c=3, h=4, w=4)
    assert _code(d.replace(n=2)) == E.BAD_SHAPE
    assert _code(d.replace(k=15)) == E.BAD_SHAPE
    assert _code(d.replace(kh=1)) == E.BAD_FLAGS                      # unused geometry set


def test_add_shape_fields():
    d = good("add")
    assert _code(d.replace(k=2)) == E.BAD_SHAPE
    assert _code(d.replace(n=d.n + 1)) == E.BAD_SHAPE
    assert _code(d.replace(m=d.c + 1)) == E.BAD_SHAPE


def test_depthwise_shape_fields():
    d = good("depthwise_conv2d")
    assert _code(d.replace(m=d.c - 1)) == E.BAD_SHAPE                 # one filter per channel
    assert _code(d.replace(k=d.c * d.kh * d.kw)) == E.BAD_SHAPE        # the conv2d k is wrong
    assert _code(d.replace(opcode=Opcode.CONV2D)) == E.BAD_SHAPE       # ... and vice versa


@pytest.mark.parametrize("op,change,code", [
    # the flags each opcode takes
    ("maxpool2d", dict(flags=int(Flags.INCLUDE_PAD)), E.BAD_FLAGS),
    ("avgpool2d", dict(flags=int(Flags.INCLUDE_PAD)), E.OK),
    ("avgpool2d", dict(flags=int(Flags.INCLUDE_PAD | Flags.IRQ)), E.OK),
    ("global_avgpool", dict(flags=int(Flags.INCLUDE_PAD)), E.BAD_FLAGS),
    ("maxpool2d", dict(flags=int(Flags.REQUANT)), E.BAD_FLAGS),
    ("avgpool2d", dict(flags=int(Flags.ACCUMULATE)), E.BAD_FLAGS),
    ("global_avgpool", dict(flags=int(Flags.REQUANT | Flags.LUT)), E.BAD_FLAGS),
    ("add", dict(flags=int(Flags.IRQ)), E.BAD_FLAGS),                  # REQUANT required
    ("add", dict(flags=int(Flags.REQUANT | Flags.ACCUMULATE)), E.BAD_FLAGS),
    ("add", dict(flags=int(Flags.REQUANT | Flags.INCLUDE_PAD)), E.BAD_FLAGS),
    ("depthwise_conv2d", dict(flags=int(Flags.REQUANT | Flags.ACCUMULATE)), E.BAD_FLAGS),
    ("depthwise_conv2d", dict(flags=int(Flags.LUT)), E.BAD_FLAGS),     # LUT without REQUANT
    ("maxpool2d", dict(flags=0x20), E.BAD_FLAGS),                      # LATE_TABLES
    ("avgpool2d", dict(flags=int(Flags.LATE_TABLES | Flags.INCLUDE_PAD)), E.BAD_FLAGS),
    ("maxpool2d", dict(flags=0x40), E.BAD_FLAGS),                      # unknown bit
    ("add", dict(flags=int(Flags.REQUANT | Flags.LUT | Flags.LATE_TABLES)), E.OK),
    ("add", dict(flags=int(Flags.LATE_TABLES)), E.BAD_FLAGS),          # REQUANT required
    # fields the opcode does not use must be 0
    ("maxpool2d", dict(weights=0x4000), E.BAD_FLAGS),
    ("avgpool2d", dict(quant=0x4000), E.BAD_FLAGS),
    ("global_avgpool", dict(lut=0x4000), E.BAD_FLAGS),
    ("add", dict(flags=int(Flags.REQUANT)), E.BAD_FLAGS),              # lut set, LUT clear
    ("add", dict(kh=1), E.BAD_FLAGS),
    ("add", dict(col_split=4), E.BAD_FLAGS),
    # no weight image: format and parameters 0 (checks 3 and 5)
    ("maxpool2d", dict(format=1), E.BAD_FORMAT),
    ("add", dict(format=3), E.BAD_FORMAT),
    ("global_avgpool", dict(param_a=1), E.BAD_PARAM),
    ("avgpool2d", dict(param_b=4), E.BAD_PARAM),
    ("depthwise_conv2d", dict(format=3, param_a=2, param_b=4), E.OK),
    ("depthwise_conv2d", dict(format=4), E.BAD_FORMAT),
])
def test_flags_and_unused_fields(op, change, code):
    assert _code(good(op).replace(**change)) == code


def test_lut_needs_a_built_table():
    no_lut = SimpleNamespace(**{**vars(CFG), "lut_enabled": False})
    assert _code(good("add"), no_lut) == E.BAD_FLAGS
    assert _code(good("add").replace(flags=int(Flags.REQUANT), lut=0), no_lut) == E.OK


def test_a_weight_format_not_built():
    dense = SimpleNamespace(**{**vars(CFG), "formats": ("dense",)})
    d = good("depthwise_conv2d")
    assert _code(d.replace(format=3, param_a=2, param_b=4), dense) == E.FORMAT_UNSUPPORTED
    assert _code(good("maxpool2d"), dense) == E.OK                     # no weights, no format


@pytest.mark.parametrize("op", NEW)
def test_every_used_buffer_at_the_window_edge(op):
    """Each buffer the opcode uses: ending exactly at the window end is accepted, 1 .. beat
    bytes past it is OUT_OF_WINDOW; a misaligned one is MISALIGNED; unused buffers are 0."""
    d = good(op)
    sizes = buffer_sizes(d)
    used = {name: size for name, size in sizes.items() if size}
    expect = {"maxpool2d": {"acts", "out"}, "avgpool2d": {"acts", "out"},
              "global_avgpool": {"acts", "out"}, "add": {"weights", "acts", "out", "quant", "lut"},
              "depthwise_conv2d": {"weights", "acts", "out", "quant"}}[op]
    assert set(used) == expect
    if op == "add":
        assert sizes["weights"] == sizes["acts"] == sizes["out"] == d.c * d.h * d.w
        assert (sizes["quant"], sizes["lut"]) == (ADD_QUANT_BYTES, LUT_BYTES)
    win = 1 << 16
    for name, size in used.items():
        end = win - 4 * BEAT                      # an aligned end below the other buffers' room
        at = d.replace(**{name: (end - size) // BEAT * BEAT})
        win_at = getattr(at, name) + size         # the window ends exactly at the buffer's end
        assert _code(at, win=win_at) == E.OK, (name, win_at)
        for over in range(1, BEAT + 1):
            assert _code(at, win=win_at - over) == E.OUT_OF_WINDOW, (name, over)
        assert _code(d.replace(**{name: getattr(d, name) + 1})) == E.MISALIGNED, name


# -- the pools on the hardware (hardware_descriptor_code): its limits at their bound ------------

#: A build with the pools (``AcceleratorConfig.ops`` with ``pool_enabled``).
POOL_HW = SimpleNamespace(**{**vars(CFG), "ops": HW_OPS + ("maxpool2d", "avgpool2d",
                                                            "global_avgpool")})


def _avg(include, **kw):
    base = dict(c=2, h=20, w=20, kernel=3, stride=2, pad=1, count_include_pad=include)
    base.update(kw)
    return avgpool2d_descriptor(**base)


def _glob(**kw):
    return global_avgpool_descriptor(**{**dict(c=3, h=8, w=8), **kw})


@pytest.mark.parametrize("name,d,arch,hw", [
    ("kernel 15", _pool(kernel=(15, 1)), E.OK, E.OK),
    ("kernel 16", _pool(kernel=(16, 1)), E.OK, E.BAD_SHAPE),
    ("kernel_w 16", _pool(kernel=(1, 16)), E.OK, E.BAD_SHAPE),
    ("stride 15", _pool(stride=(15, 1)), E.OK, E.OK),
    ("stride 16", _pool(stride=(16, 1)), E.OK, E.BAD_SHAPE),
    ("stride_w 16", _pool(stride=(1, 16)), E.OK, E.BAD_SHAPE),
    ("pad 14 kernel 15", _pool(kernel=15, pad=14), E.OK, E.OK),
    ("pad 15 kernel 16", _pool(kernel=16, pad=15), E.OK, E.BAD_SHAPE),
    ("kernel 17", _pool(kernel=17), E.BAD_SHAPE, E.BAD_SHAPE),
    ("global 15 x 15", _glob(h=15, w=15), E.OK, E.OK),
    ("global 16 x 15", _glob(h=16, w=15), E.OK, E.BAD_SHAPE),
    ("global 15 x 16", _glob(h=15, w=16), E.OK, E.BAD_SHAPE),
    ("global 256 x 256", _glob(h=256, w=256), E.OK, E.BAD_SHAPE),
    ("global 256 x 257", _glob(h=256, w=257), E.BAD_SHAPE, E.BAD_SHAPE),
    ("n 65535", _pool(c=1, h=65535, w=1, kernel=1, stride=1), E.OK, E.OK),
    ("n 65536", _pool(c=1, h=16384, w=4, kernel=1, stride=1), E.OK, E.BAD_SHAPE),
    ("avgpool pad 0, padding not counted", _avg(False, pad=0), E.OK, E.OK),
    # the real count (count_include_pad 0) runs on the hardware: padding need not count
    ("avgpool pad_h 1, padding not counted", _avg(False, pad=(1, 0)), E.OK, E.OK),
    ("avgpool pad_w 1, padding not counted", _avg(False, pad=(0, 1)), E.OK, E.OK),
    ("avgpool pad 14 kernel 15, padding not counted", _avg(False, kernel=15, pad=14), E.OK,
     E.OK),
    ("avgpool pad 15 kernel 16, padding not counted", _avg(False, kernel=16, pad=15), E.OK,
     E.BAD_SHAPE),
    ("avgpool pad 1, padding counted", _avg(True, pad=1), E.OK, E.OK),
    ("maxpool pad 1", _pool(kernel=3, pad=1), E.OK, E.OK),
    ("INCLUDE_PAD on a maxpool", _pool(kernel=3, pad=1, flags=int(Flags.INCLUDE_PAD)),
     E.BAD_FLAGS, E.BAD_FLAGS),
    ("INCLUDE_PAD on a global pool", _glob().replace(flags=int(Flags.INCLUDE_PAD)),
     E.BAD_FLAGS, E.BAD_FLAGS),
    # at their places of golden's order
    ("uncounted padding and kernel 17", _avg(False, kernel=17, pad=1), E.BAD_SHAPE,
     E.BAD_SHAPE),
    ("uncounted padding and kernel 16", _avg(False, kernel=16, pad=1), E.OK, E.BAD_SHAPE),
    ("INCLUDE_PAD on a maxpool before kernel 16",
     _pool(kernel=16, flags=int(Flags.INCLUDE_PAD)), E.BAD_FLAGS, E.BAD_FLAGS),
    ("uncounted padding after parameters", _avg(False).replace(param_b=1), E.BAD_PARAM,
     E.BAD_PARAM),
    ("uncounted padding and REQUANT", _avg(False).replace(flags=int(Flags.REQUANT)),
     E.BAD_FLAGS, E.BAD_FLAGS),
    ("kernel 16 after flags", _pool(kernel=16, flags=int(Flags.LUT)), E.BAD_FLAGS,
     E.BAD_FLAGS),
    ("kernel 16 before alignment", _pool(kernel=16, acts=3), E.MISALIGNED, E.BAD_SHAPE),
    ("global 16 before the window", _glob(h=16, out=WIN), E.OUT_OF_WINDOW, E.BAD_SHAPE),
    ("ACCUMULATE", _avg(True).replace(flags=int(Flags.ACCUMULATE | Flags.INCLUDE_PAD)),
     E.BAD_FLAGS, E.BAD_FLAGS),
])
def test_pool_hardware_limits(name, d, arch, hw):
    """The pools' hardware limits (docs/spec.md section 8.2) at their bound and just past it,
    each at its place of golden's order: kernel / stride / padding 15, a global pool's H and
    W 15 (BAD_SHAPE), m / k / n 65535; an average with padding runs whether the padding
    counts or not (INCLUDE_PAD still BAD_FLAGS on every other opcode)."""
    assert _code(d, POOL_HW) == arch, name
    assert hardware_descriptor_code(d, POOL_HW, window_bytes=WIN) == hw, name
    assert hardware_descriptor_code(d.pack(), POOL_HW, window_bytes=WIN) == hw, name
    # a build without the pools refuses them all at the opcode
    assert hardware_descriptor_code(d, HW, window_bytes=WIN) == E.BAD_OPCODE, name


def test_hardware_builds_the_pools_of_its_config():
    """``AcceleratorConfig.ops`` names the pools when ``pool_enabled``: the hardware code of a
    pool is then its own, else BAD_OPCODE; add and depthwise conv are BAD_OPCODE in both."""
    from sparsemac.hw.config import AcceleratorConfig

    on, off = AcceleratorConfig(), AcceleratorConfig(pool_enabled=False)
    assert tuple(off.ops) == HW_OPS and set(on.ops) == set(POOL_HW.ops)
    for op in NEW:
        d = good(op)
        want = {"maxpool2d": E.OK, "avgpool2d": E.OK,              # pad 1, not counted
                "global_avgpool": E.OK}.get(op, E.BAD_OPCODE)
        assert hardware_descriptor_code(d, on, window_bytes=WIN) == want, op
        assert hardware_descriptor_code(d, off, window_bytes=WIN) == E.BAD_OPCODE, op
