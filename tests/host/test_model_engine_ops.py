"""Model engine (host/model_engine.py) on the descriptors of docs/spec.md section 8.2: pools,
residual add and depthwise conv read from and written to a memory image exactly as the golden
operations compute them, chained through memory; bad add records give BAD_PARAM with nothing
written; the hardware limits refuse the opcodes (BAD_OPCODE) the generated hardware lacks."""

from __future__ import annotations

import numpy as np
import pytest
from sparsemac.golden import (
    add_params,
    add_requant,
    avgpool2d,
    build_lut,
    depthwise_conv2d,
    global_avgpool,
    maxpool2d,
    prune,
)
from sparsemac.golden.descriptors import (
    DESC_BYTES,
    ErrorCode,
    Flags,
    add_descriptor,
    avgpool2d_descriptor,
    buffer_sizes,
    depthwise_conv2d_descriptor,
    global_avgpool_descriptor,
    maxpool2d_descriptor,
)
from sparsemac.golden.quant_record import pack_quant_records
from sparsemac.host import run_model
from sparsemac.host.compiler import split_weights
from sparsemac.host.model_engine import read_output
from sparsemac.hw.config import AcceleratorConfig

CFG = AcceleratorConfig()
BASE = 0x4000_0000
WINDOW = 1 << 17


class _Image:
    """A memory window with a bump allocator (64-byte aligned) and a descriptor table at 0."""

    def __init__(self, n_desc: int):
        self.img = bytearray(WINDOW)
        self.next = -(-(n_desc * DESC_BYTES) // 64) * 64
        self.descs = []

    def put(self, data: bytes) -> int:
        off = self.next
        self.img[off:off + len(data)] = data
        self.next = -(-(off + max(len(data), 1)) // 64) * 64
        return off

    def room(self, size: int) -> int:
        return self.put(bytes(size))

    def run(self, limits="architecture", cfg=CFG):
        for j, d in enumerate(self.descs):
            self.img[j * DESC_BYTES:(j + 1) * DESC_BYTES] = d.pack()
        before = bytes(self.img)
        r = run_model(self.img, base=BASE, desc_base=BASE, desc_count=len(self.descs), cfg=cfg,
                      limits=limits)
        return r, before


def _x(rng, *shape):
    return rng.integers(-128, 128, size=shape).astype(np.int8)


def _outside_unchanged(before, after, descs):
    mask = np.ones(len(before), dtype=bool)
    for d in descs:
        mask[d.out:d.out + buffer_sizes(d)["out"]] = False
    a, b = np.frombuffer(before, np.uint8), np.frombuffer(bytes(after), np.uint8)
    return bool(np.array_equal(a[mask], b[mask]))


def test_pools_match_golden(rng, seed):
    for _ in range(20):
        c, h, w = (int(v) for v in rng.integers(1, 13, size=3))
        kh, kw = int(rng.integers(1, min(h, 16) + 1)), int(rng.integers(1, min(w, 16) + 1))
        st = tuple(int(v) for v in rng.integers(1, 4, size=2))
        pad = (int(rng.integers(0, kh)), int(rng.integers(0, kw)))
        include = bool(rng.integers(0, 2))
        x = _x(rng, 1, c, h, w)
        im = _Image(3)
        a = im.put(x.tobytes())
        geo = dict(c=c, h=h, w=w, kernel=(kh, kw), stride=st, pad=pad)
        d0 = maxpool2d_descriptor(**geo, acts=a)
        d0 = d0.replace(out=im.room(buffer_sizes(d0)["out"]))
        d1 = avgpool2d_descriptor(**geo, count_include_pad=include, acts=a)
        d1 = d1.replace(out=im.room(buffer_sizes(d1)["out"]))
        d2 = global_avgpool_descriptor(c=c, h=h, w=w, acts=a)
        d2 = d2.replace(out=im.room(c))
        im.descs = [d0, d1, d2]
        r, before = im.run()
        ctx = f"seed={seed} x={x.shape} k={(kh, kw)} s={st} p={pad} include={include}"
        assert r.ok, f"{ctx}: {r.error_code.name} {r.message}"
        want = [maxpool2d(x, (kh, kw), st, pad), avgpool2d(x, (kh, kw), st, pad,
                                                           count_include_pad=include),
                global_avgpool(x)]
        for d, y in zip(im.descs, want):
            np.testing.assert_array_equal(read_output(r.image, d), y.reshape(d.m, d.n),
                                          err_msg=ctx)
        assert _outside_unchanged(before, r.image, im.descs), ctx


def _add_job(rng, c, h, w, *, lut: bool):
    a, b = _x(rng, 1, c, h, w), _x(rng, 1, c, h, w)
    s_a, s_b = (float(v) for v in rng.uniform(0.01, 0.2, size=2))
    p = add_params(s_a, s_b, float(rng.uniform(0.02, 0.3)))
    bias = int(rng.integers(-20, 21))
    table = build_lut("gelu", 0.05, 0.05) if lut else None
    im = _Image(1)
    recs = pack_quant_records([bias, 0], [p["mult_a"], p["mult_b"]],
                              [p["shift_a"], p["shift_b"]])
    d = add_descriptor(c=c, h=h, w=w, a=im.put(a.tobytes()), b=im.put(b.tobytes()),
                       quant=im.put(recs), out=im.room(c * h * w),
                       lut=im.put(np.asarray(table, np.int8).tobytes()) if lut else 0,
                       flags=Flags.REQUANT | (Flags.LUT if lut else 0))
    im.descs = [d]
    want = add_requant(a, b, **p, bias=bias, lut=table)
    return im, d, want


@pytest.mark.parametrize("lut", [False, True])
def test_add_matches_golden(rng, seed, lut):
    for _ in range(10):
        c, h, w = (int(v) for v in rng.integers(1, 9, size=3))
        im, d, want = _add_job(rng, c, h, w, lut=lut)
        r, before = im.run()
        assert r.ok, f"seed={seed}: {r.error_code.name} {r.message}"
        np.testing.assert_array_equal(read_output(r.image, d), want.reshape(d.m, d.n),
                                      err_msg=f"seed={seed}")
        assert _outside_unchanged(before, r.image, im.descs)


@pytest.mark.parametrize("field,value", [
    ("mult_a", 0), ("shift_a", 0), ("shift_a", 64), ("mult_b", 0), ("shift_b", 64),
    ("bias_b", 1), ("pad", 1), ("shift_gap", 25)])
def test_add_records_out_of_range(rng, field, value):
    """A record breaking section 8.2's ranges: BAD_PARAM at the descriptor, nothing written;
    the gap of 24 between the shifts is accepted, 25 is not."""
    im, d, _ = _add_job(rng, 2, 3, 4, lut=False)
    recs = bytearray(im.img[d.quant:d.quant + 32])
    if field == "mult_a":
        recs[4:8] = value.to_bytes(4, "little")
    elif field == "shift_a":
        recs[8] = value
    elif field == "mult_b":
        recs[20:24] = value.to_bytes(4, "little")
    elif field == "shift_b":
        recs[24] = value
    elif field == "bias_b":
        recs[16:20] = value.to_bytes(4, "little")
    elif field == "pad":
        recs[31] = value
    else:                                              # shifts 1 + 24 (ok) and 1 + 25
        recs[8], recs[24] = 1, 1 + 24
        im.img[d.quant:d.quant + 32] = recs
        r, _ = im.run()
        assert r.ok, r.message
        recs[24] = 1 + value
    im.img[d.quant:d.quant + 32] = recs
    r, before = im.run()
    assert (r.error_code, r.error_desc) == (ErrorCode.BAD_PARAM, 0), (field, r.message)
    assert bytes(r.image) == before                    # nothing written


@pytest.mark.parametrize("fmt", ["dense", "nm", "bitmap", "block"])
@pytest.mark.parametrize("requant", [True, False])
def test_depthwise_matches_golden(rng, seed, fmt, requant):
    for _ in range(3):
        c, h, w = int(rng.integers(1, 11)), int(rng.integers(3, 10)), int(rng.integers(3, 10))
        k = int(rng.choice([1, 3]))
        st, pad = (int(rng.integers(1, 3)), 1), (int(rng.integers(0, 2)), k // 2)
        x = _x(rng, 1, c, h, w)
        wt = _x(rng, c, 1, k, k)
        w2 = wt.reshape(c, k * k)
        if fmt != "dense":
            w2, _ = (prune(w2, "nm", nm=(2, 4)) if fmt == "nm"
                     else prune(w2, "unstructured", density=0.5))
        images = split_weights(w2, fmt, CFG)
        im = _Image(1)
        wo = im.put(b"".join(pw.image.tobytes() for pw in images))
        bias = rng.integers(-500, 500, size=c)
        mult = rng.integers(1 << 20, 1 << 24, size=c)
        shift = rng.integers(20, 30, size=c)
        flags = Flags.REQUANT if requant else 0
        d = depthwise_conv2d_descriptor(c=c, h=h, w=w, kh=k, kw=k, stride=st, pad=pad, fmt=fmt,
                                        weights=wo, acts=im.put(x.tobytes()), flags=flags,
                                        group_size=CFG.group_size, block_size=CFG.block_size)
        d = d.replace(out=im.room(buffer_sizes(d)["out"]),
                      quant=im.put(pack_quant_records(bias, mult, shift)) if requant else 0)
        im.descs = [d]
        r, before = im.run()
        ctx = f"seed={seed} {fmt} x={x.shape} k={k} s={st} p={pad}"
        assert r.ok, f"{ctx}: {r.error_code.name} {r.message}"
        w4 = w2.reshape(c, 1, k, k)
        if requant:
            want = depthwise_conv2d(x, w4, bias=bias, mult=mult, shift=shift, stride=st,
                                    padding=pad)
        else:
            want = depthwise_conv2d(x, w4, stride=st, padding=pad)
        np.testing.assert_array_equal(read_output(r.image, d), want.reshape(d.m, d.n),
                                      err_msg=ctx)
        assert _outside_unchanged(before, r.image, im.descs), ctx


def test_a_chain_through_memory(rng, seed):
    """depthwise -> max pool -> residual add with the pool's input -> global average pool:
    each layer reads the previous one's output buffer."""
    c, h, w = 4, 8, 8
    x = _x(rng, 1, c, h, w)
    wt = _x(rng, c, 1, 3, 3)
    im = _Image(4)
    bias, mult, shift = (rng.integers(-50, 50, size=c), rng.integers(1 << 22, 1 << 23, size=c),
                         np.full(c, 28))
    d0 = depthwise_conv2d_descriptor(c=c, h=h, w=w, kh=3, kw=3, pad=(1, 1),
                                     weights=im.put(b"".join(
                                         pw.image.tobytes() for pw in split_weights(
                                             wt.reshape(c, 9), "dense", CFG))),
                                     acts=im.put(x.tobytes()),
                                     quant=im.put(pack_quant_records(bias, mult, shift)))
    d0 = d0.replace(out=im.room(c * h * w))
    d1 = maxpool2d_descriptor(c=c, h=h, w=w, kernel=3, stride=1, pad=1, acts=d0.out)
    d1 = d1.replace(out=im.room(c * h * w))
    p = add_params(0.05, 0.05, 0.08)
    d2 = add_descriptor(c=c, h=h, w=w, a=d1.out, b=d0.out, out=im.room(c * h * w),
                        quant=im.put(pack_quant_records([0, 0], [p["mult_a"], p["mult_b"]],
                                                        [p["shift_a"], p["shift_b"]])))
    d3 = global_avgpool_descriptor(c=c, h=h, w=w, acts=d2.out, out=im.room(c))
    im.descs = [d0, d1, d2, d3]
    r, _ = im.run()
    assert r.ok, f"seed={seed}: {r.error_code.name} at {r.error_desc}: {r.message}"
    y0 = depthwise_conv2d(x, wt, bias=bias, mult=mult, shift=shift, padding=1)
    y1 = maxpool2d(y0, 3, 1, 1)
    y2 = add_requant(y1, y0, **p)
    y3 = global_avgpool(y2)
    for d, y in zip(im.descs, (y0, y1, y2, y3)):
        np.testing.assert_array_equal(read_output(r.image, d), y.reshape(d.m, d.n),
                                      err_msg=f"seed={seed}")


def test_hardware_limits_refuse_the_new_opcodes(rng):
    """The hardware limits run only the opcodes the build has (``cfg.ops``): the pools with
    ``pool_enabled`` (the default), never the add or the depthwise conv (BAD_OPCODE, nothing
    written); the architecture limits run every opcode."""
    im = _Image(2)
    x = _x(rng, 1, 2, 4, 4)
    d0 = maxpool2d_descriptor(c=2, h=4, w=4, kernel=2, stride=2, acts=im.put(x.tobytes()))
    d0 = d0.replace(out=im.room(8))
    im.descs = [d0, d0]
    r, before = im.run(limits="hardware", cfg=CFG.replace(pool_enabled=False))
    assert (r.error_code, r.error_desc) == (ErrorCode.BAD_OPCODE, 0)
    assert bytes(r.image) == before
    r, _ = im.run(limits="hardware")
    assert r.ok and len(r.layers) == 2
    p = add_params(0.05, 0.05, 0.08)
    d1 = add_descriptor(c=2, h=4, w=4, a=d0.acts, b=d0.acts, out=im.room(32),
                        quant=im.put(pack_quant_records([0, 0], [p["mult_a"], p["mult_b"]],
                                                        [p["shift_a"], p["shift_b"]])))
    im.descs = [d0, d1]
    r, _ = im.run(limits="hardware")
    assert (r.error_code, r.error_desc) == (ErrorCode.BAD_OPCODE, 1)
    r, _ = im.run(limits="architecture", cfg=CFG.replace(pool_enabled=False))
    assert r.ok and len(r.layers) == 2
