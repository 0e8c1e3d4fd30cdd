"""Compiler (host/compiler.py): placement, descriptors, requant choice, golden chaining."""

import importlib.util
import math
import re

import numpy as np
import pytest
from sparsemac.golden.desc_rules import validate_descriptor
from sparsemac.golden.descriptors import (
    DESC_BYTES,
    ErrorCode,
    Flags,
    Opcode,
    buffer_sizes,
    unpack_descriptor,
)
from sparsemac.golden.format_check import parse_weights
from sparsemac.golden.ops import matmul
from sparsemac.host import compile_network, network_from_dict
from sparsemac.host.compiler import col_split_fits, col_split_of, hardware_nm, requant_params
from sparsemac.host.placement import MemoryPlan, Region, check_regions
from sparsemac.hw.config import AcceleratorConfig

from .nets import valid_network

CFG = AcceleratorConfig()


def _compiled(rng, **kw):
    d, net = valid_network(rng, **kw)
    return d, compile_network(net, CFG)


def _slices(image, d):
    """The per-tile weight images at ``d.weights`` (spec section 8.1), decoded from memory."""
    off, rows, out = d.weights, 0, []
    while rows < d.m:
        total = int.from_bytes(image[off + 28:off + 32], "little")
        out.append(parse_weights(np.frombuffer(image[off:off + total], np.uint8)))
        rows, off = rows + out[-1].shape[0], off + total
    return out


def _slices_bytes(image, d):
    return sum(pw.nbytes for pw in _slices(image, d))


def _buffers(cn):
    """Every (name, offset, size) the descriptors use, from the image alone."""
    out = [("descriptors", cn.desc_offset, DESC_BYTES * cn.desc_count)]
    for i in range(cn.desc_count):
        raw = cn.image[cn.desc_offset + DESC_BYTES * i:cn.desc_offset + DESC_BYTES * (i + 1)]
        d = unpack_descriptor(raw)
        sizes = buffer_sizes(d)
        sizes["weights"] = _slices_bytes(cn.image, d)
        out += [(f"{i}.{k}", getattr(d, k), v) for k, v in sizes.items() if v]
    return out


@pytest.mark.parametrize("rep", range(6))
def test_placement_invariants(rng, seed, rep):
    _, cn = _compiled(rng, conv=(None, True, False)[rep % 3])
    bufs = _buffers(cn)
    for name, off, size in bufs:
        assert off % 32 == 0, f"seed={seed}: {name} at {off:#x} not 32-byte aligned"
        assert 0 <= off and off + size <= cn.window_bytes, f"seed={seed}: {name} outside"
    # only a layer's acts may coincide with the previous layer's output (chaining)
    outs = {off: (name, size) for name, off, size in bufs if name.endswith(".out")}
    for name, off, size in bufs:
        for name2, off2, size2 in bufs:
            if name >= name2 or off + size <= off2 or off2 + size2 <= off:
                continue
            pair = sorted([name, name2], key=lambda n: n.endswith(".out"))
            i = int(pair[0].split(".")[0]) if pair[0][0].isdigit() else -1
            ok = (pair[0].endswith(".acts") and pair[1] == f"{i - 1}.out" and off == off2
                  and size == size2)
            # or two layers' activation tables with the same bytes: one copy (session 26)
            if name.endswith(".lut") and name2.endswith(".lut") and (off, size) == (off2, size2):
                la, lb = (cn.layers[int(n.split(".")[0])].lut for n in (name, name2))
                ok = la is not None and lb is not None and np.array_equal(la, lb)
            assert ok, f"seed={seed}: {name} [{off:#x}+{size}] overlaps {name2} [{off2:#x}+{size2}]"
    first = unpack_descriptor(cn.image[cn.desc_offset:cn.desc_offset + DESC_BYTES])
    assert first.acts not in outs, f"seed={seed}: the network input is some layer's output"
    for a, b in zip(cn.layers, cn.layers[1:], strict=False):
        assert b.descriptor.acts == a.descriptor.out, f"seed={seed}: layers not chained"
    assert cn.window_bytes % 4096 == 0 and cn.base % 4096 == 0
    check_regions(cn.regions, cn.window_bytes)


def test_placement_checker_catches_errors():
    plan = MemoryPlan()
    assert [plan.alloc(n, s) for n, s in (("a", 1), ("b", 33), ("c", 64))] == [0, 32, 96]
    assert plan.window_bytes == 4096
    plan.check()
    with pytest.raises(AssertionError, match="b \\[0x20, 0x41\\) overlaps c at 0x40"):
        check_regions([Region("b", 32, 33), Region("c", 64, 1)], 4096)
    with pytest.raises(AssertionError, match="x at 0x8 is not 32-byte aligned"):
        check_regions([Region("x", 8, 1)], 4096)
    with pytest.raises(AssertionError, match="outside the window"):
        check_regions([Region("x", 4064, 64)], 4096)
    with pytest.raises(ValueError, match="align must be a power of two >= 32, not 16"):
        MemoryPlan(16)


@pytest.mark.parametrize("rep", range(4))
def test_descriptor_round_trip(rng, seed, rep):
    d, cn = _compiled(rng, conv=(None, True, False, None)[rep])
    for i, cl in enumerate(cn.layers):
        raw = cn.image[cn.desc_offset + DESC_BYTES * i:cn.desc_offset + DESC_BYTES * (i + 1)]
        desc = unpack_descriptor(raw)
        assert desc == cl.descriptor and desc.pack() == raw, f"seed={seed} layer {i}"
        assert validate_descriptor(desc, CFG, window_bytes=cn.window_bytes) == ErrorCode.OK
        s = cl.spec
        assert (desc.m, desc.k, desc.n) == s.mkn, f"seed={seed} layer {i}"
        assert desc.opcode == (Opcode.MATMUL if s.op == "matmul" else Opcode.CONV2D)
        assert bool(desc.flags & Flags.REQUANT) == s.requant
        assert bool(desc.flags & Flags.LUT) == (s.activation is not None)
        assert bool(desc.flags & Flags.IRQ) == (i == len(cn.layers) - 1)
        # the per-tile weight images in memory decode to the pruned weights, rows split in
        # slices of ceil(M / tiles), or one image of all rows with the columns split
        # (spec section 8.1)
        slices = _slices(cn.image, desc)
        c = s.out if desc.col_split else -(-s.out // CFG.tiles)
        assert [pw.shape[0] for pw in slices] == [min(c, s.out - r) for r in range(0, s.out, c)]
        assert all(pw.fmt == s.fmt for pw in slices) and len(slices) <= CFG.tiles
        np.testing.assert_array_equal(np.concatenate([pw.unpack() for pw in slices]),
                                      cl.weights.reshape(s.out, -1),
                                      err_msg=f"seed={seed} layer {i}")
        if desc.col_split:
            assert desc.col_split == col_split_of(desc.n, CFG) and col_split_fits(cl, CFG)
        elif importlib.util.find_spec("sparsemac.sim.accel_driver"):  # the RTL driver's own
            from sparsemac.sim.accel_driver import split_weights

            wb = _slices_bytes(cn.image, desc)
            assert split_weights(cl.weights.reshape(s.out, -1), s.fmt, CFG,
                                 nm=hardware_nm(s.nm or (2, 4))) == \
                cn.image[desc.weights:desc.weights + wb]
        if s.op == "conv2d":
            assert (desc.c, desc.h, desc.w) == s.in_shape and (desc.kh, desc.kw) == s.kernel
            assert (desc.stride_h, desc.stride_w, desc.pad_h, desc.pad_w) == (*s.stride,
                                                                             *s.padding)


def test_requant_params_exact_and_ranges():
    for r in (1.0, 0.5, 3.0e-7, 127 / 5, 2.0**-40, 0.999999999, 1e-20, 2.0**29):
        m, s = (int(v[0]) for v in requant_params(r))
        assert 1 <= m <= 2**31 - 1 and 1 <= s <= 63, (r, m, s)
        if 2.0**-32 <= r < 2.0**29:
            assert 2**30 <= m < 2**31 and abs(m / 2**s - r) <= r * 2.0**-30, (r, m, s)
    assert [int(v[0]) for v in requant_params(1e-20)] == [1, 63]
    assert [int(v[0]) for v in requant_params(2.0**31)] == [2**31 - 1, 1]
    assert [int(v[0]) for v in requant_params(0.0)] == [1, 1]


def _conv_ref(x, w, stride, pad):
    """Direct-loop NCHW conv in int64 (an independent oracle)."""
    c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((c, h + 2 * pad[0], wd + 2 * pad[1]), dtype=np.int64)
    xp[:, pad[0]:pad[0] + h, pad[1]:pad[1] + wd] = x
    oh = (h + 2 * pad[0] - kh) // stride[0] + 1
    ow = (wd + 2 * pad[1] - kw) // stride[1] + 1
    y = np.zeros((o, oh, ow), dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw]
            y[:, i, j] = np.tensordot(w.astype(np.int64), patch, axes=([1, 2, 3], [0, 1, 2]))
    return y.reshape(o, -1)


def _requant_ref(acc, bias, mult, shift):
    out = np.empty(acc.shape, dtype=np.int64)
    for c in range(acc.shape[0]):
        for j in range(acc.shape[1]):
            s = (int(acc[c, j]) + int(bias[c]) + 2**31) % 2**32 - 2**31
            r = (s * int(mult[c]) + (1 << (int(shift[c]) - 1))) >> int(shift[c])
            out[c, j] = min(127, max(-128, r))
    return out


@pytest.mark.parametrize("rep", range(6))
def test_expected_equals_independent_chain(rng, seed, rep):
    _, cn = _compiled(rng, conv=(True, False, None)[rep % 3], n_layers=2 + rep % 2)
    x = cn.input.astype(np.int64)
    for i, cl in enumerate(cn.layers):
        s = cl.spec
        w = cl.weights.astype(np.int64)
        if s.op == "matmul":
            acc = w @ x.reshape(s.in_shape)
        else:
            acc = _conv_ref(x.reshape(s.in_shape), w, s.stride, s.padding)
        acc = (acc + 2**31) % 2**32 - 2**31
        if s.requant:
            y = _requant_ref(acc, cl.bias, cl.mult, cl.shift)
            # calibrated on this input: the layer uses the int8 range
            assert np.abs(y).max() >= 126 or not np.any(acc), f"seed={seed} layer {i}"
            if cl.lut is not None:
                y = cl.lut.astype(np.int64)[y + 128]
        else:
            y = acc
        np.testing.assert_array_equal(cl.expected, y, err_msg=f"seed={seed} layer {i}")
        x = y.ravel()


def test_float_weights_and_input_are_quantized():
    rng = np.random.default_rng(3)
    wf = rng.normal(size=(4, 6))
    xf = rng.normal(size=(6, 2))
    net = network_from_dict({"input": {"values": xf},
                             "layers": [{"op": "matmul", "weights": wf, "bias": False}]})
    cn = compile_network(net, CFG)
    cl = cn.layers[0]
    sx = np.abs(xf).max() / 127
    np.testing.assert_array_equal(cn.input, np.rint(xf / sx).astype(np.int8).ravel())
    sw = np.abs(wf).max(axis=1) / 127
    np.testing.assert_array_equal(cl.weights, np.rint(wf / sw[:, None]).astype(np.int8))
    # output scale: max |real| of the layer maps to 127; the int8 result tracks float math
    yf = wf @ xf
    assert math.isclose(cl.out_scale, np.abs(cl.x.astype(float).T @ (cl.weights * sw[:, None]).T
                                              * sx).max() / 127, rel_tol=1e-9)
    err = np.abs(cl.expected * cl.out_scale - yf).max()
    assert err < 0.05 * np.abs(yf).max(), (err, np.abs(yf).max())
    assert cl.expected.dtype.kind == "i" and np.array_equal(
        cl.expected, matmul(cl.weights, cl.x, bias=cl.bias, mult=cl.mult, shift=cl.shift))


def test_seed_changes_weights_and_base_moves_window():
    d = {"input": {"shape": [8, 3]}, "layers": [{"op": "matmul", "out_features": 4}]}
    net = network_from_dict(d)
    a, b = compile_network(net, CFG, seed=1), compile_network(net, CFG, seed=2)
    assert not np.array_equal(a.layers[0].weights, b.layers[0].weights)
    c = compile_network(net, CFG, seed=1, base=0x8000_0000)
    assert c.image == a.image and c.desc_base == 0x8000_0000 + c.desc_offset
    with pytest.raises(ValueError, match="base must be a non-negative multiple of 4096, not 100"):
        compile_network(net, CFG, base=100)


def test_per_layer_choices_name_the_option():
    """``split`` and ``tables``: one value for every layer or one per layer; a bad value or a
    list of the wrong length names the option, its choices and the layer count; a list with a
    batch of images is refused; with one of each the LATE_TABLES flag follows ``tables``."""
    d = {"input": {"shape": [8, 3]}, "layers": [{"op": "matmul", "out_features": 4},
                                                {"op": "matmul", "out_features": 4}]}
    net = network_from_dict(d)
    for name, bad in (("split", "diagonal"), ("split", ["rows"]), ("tables", "never"),
                      ("tables", ["early", "late", "late"])):
        with pytest.raises(ValueError, match=rf"{name} must be one of .* or 2 of them \(one "
                                             rf"per layer\), not {re.escape(repr(bad))}"):
            compile_network(net, CFG, **{name: bad})
    conv = {"op": "conv2d", "out_channels": 2, "kernel": 3, "padding": 1}
    batch = network_from_dict({"input": {"shape": [2, 1, 4, 4]}, "layers": [conv, conv]})
    assert batch.batch == 2
    with pytest.raises(ValueError, match="tables must be one string for a batch of images"):
        compile_network(batch, CFG, tables=["early", "late"])
    cn = compile_network(net, CFG, tables=["late", "early"])
    assert [bool(cl.descriptor.flags & Flags.LATE_TABLES) for cl in cn.layers] == [True, False]


def test_tile_buffer_needs_and_check(rng, seed):
    """`tile_buffer_needs` against counts derived by hand for demo_net on the tiny preset, and
    `check_tile_buffers` accepting each limit at exactly the need and refusing one below."""
    import dataclasses
    import types
    from pathlib import Path

    from sparsemac.host import NetworkError, load_network
    from sparsemac.host.compiler import check_tile_buffers, tile_buffer_needs

    cfg = AcceleratorConfig.preset("tiny")
    path = Path(__file__).resolve().parents[2] / "examples" / "demo_net.yaml"
    cn = compile_network(load_network(path), cfg)
    needs = [tile_buffer_needs(cl, cfg) for cl in cn.layers]
    # conv1: N = 144 -> 72 column groups of 2, K = 27: im2col 1944 > image 216 > flags 8 * 72
    assert needs[0]["act_buf_depth"] == (2048, 1944), needs[0]
    # conv2: N = 36 -> 18 groups, K = 72 -> 1296 (image 8*12*12 / 2 = 576, flags 8 * 36)
    assert needs[1]["act_buf_depth"] == (2048, 1296), needs[1]
    for cl, nd in zip(cn.layers, needs):
        total = max(int.from_bytes(pw.image[28:32].tobytes(), "little") for pw in cl.slices)
        assert nd["weight_buf_depth"][1] == -(-total // cfg.axi_bytes), (cl.spec.name, nd)
        assert nd["out_buf_depth"][1] == cl.spec.out, (cl.spec.name, nd)  # one tile
    for name in ("act_buf_depth", "weight_buf_depth", "out_buf_depth"):
        fit = {p: max(nd[p][1] for nd in needs) for p in needs[0]}
        ns = types.SimpleNamespace(**{**dataclasses.asdict(cfg), **fit}, axi_bytes=cfg.axi_bytes)
        check_tile_buffers(dataclasses.replace(cn, config=ns))
        i = max(range(len(needs)), key=lambda j: needs[j][name][1])
        fit[name] -= 1
        ns = types.SimpleNamespace(**{**dataclasses.asdict(cfg), **fit}, axi_bytes=cfg.axi_bytes)
        with pytest.raises(NetworkError, match=rf"layers\[{i}\] \({cn.layers[i].spec.name}\) "
                           rf"needs {name} >= {needs[i][name][0]} \({needs[i][name][1]} "
                           rf"entries\) for the rtl engine, this configuration has "
                           rf"{fit[name]}$"):
            check_tile_buffers(dataclasses.replace(cn, config=ns))


@pytest.mark.parametrize("fmt,kernel,stride,padding", [("bitmap", 3, 1, 1), ("dense", 3, 2, 0),
                                                       ("bitmap", (2, 3), 1, (1, 0))])
def test_depthwise_is_the_block_diagonal_conv(rng, seed, fmt, kernel, stride, padding):
    """``groups: C``: the compiled weights are the block-diagonal expansion of the ``(C, 1, KH,
    KW)`` taps, the expected output equals the independent `golden.depthwise_conv2d` (spec
    2.5) with the layer's own requant parameters and table, and the model engine reproduces it
    bit-exact from the memory image alone."""
    from sparsemac.golden.depthwise import depthwise_conv2d
    from sparsemac.host.model_engine import read_output, run_model

    C = int(rng.integers(2, 9))
    net = network_from_dict({
        "name": "dw", "seed": int(rng.integers(1 << 30)), "input": {"shape": [C, 7, 6]},
        "layers": [{"op": "conv2d", "groups": C, "kernel": kernel, "stride": stride,
                    "padding": padding, "format": fmt, "prune": "none",
                    "activation": "relu"}]})
    cfg = AcceleratorConfig.preset("default")
    cn = compile_network(net, cfg)
    cl = cn.layers[0]
    kh, kw = cl.spec.kernel
    w = cl.weights
    assert w.shape == (C, C, kh, kw)
    taps = w[np.arange(C), np.arange(C)]
    off = w.copy()
    off[np.arange(C), np.arange(C)] = 0
    assert not off.any() and taps.any(), f"seed={seed}: not block-diagonal"
    x = cn.input.reshape(1, C, 7, 6)
    ref = depthwise_conv2d(x, taps[:, None], bias=cl.bias, stride=stride, padding=padding,
                           mult=cl.mult, shift=cl.shift, lut=cl.lut)
    np.testing.assert_array_equal(cl.expected.reshape(ref.shape), ref, err_msg=f"seed={seed}")
    run = run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=cn.desc_count,
                    cfg=cfg)
    got = read_output(run.image, cl.descriptor)
    np.testing.assert_array_equal(got.reshape(ref.shape), ref, err_msg=f"seed={seed}")
    # frozen (the parameters of a batch's later images): the same taps, the same output
    from sparsemac.host.compiler import freeze

    again = compile_network(freeze(cn), cfg).layers[0]
    np.testing.assert_array_equal(again.weights, w, err_msg=f"seed={seed}: frozen taps")
    np.testing.assert_array_equal(again.expected, cl.expected, err_msg=f"seed={seed}")


@pytest.mark.parametrize("layer,msg", [
    ({"groups": 2}, "layers[0].groups must be 1 or 4 (the input channels: depthwise), not 2"),
    ({"groups": 4, "out_channels": 8},
     "layers[0].out_channels must be 4 for a depthwise conv2d (groups = in_channels: one "
     "output channel per input channel), not 8"),
    ({"groups": True}, "layers[0].groups must be 1 or 4 (the input channels: depthwise), "
                       "not True"),
])
def test_depthwise_bad_groups(layer, msg):
    from sparsemac.host.network import NetworkError

    with pytest.raises(NetworkError, match=re.escape(msg)):
        network_from_dict({"input": {"shape": [4, 5, 5]},
                           "layers": [{"op": "conv2d", "kernel": 3, "out_channels": 4,
                                       **layer}]})


def test_auto_split_takes_the_columns_when_only_they_fit():
    """A layer whose row split overflows the activation buffer (the 8-channel depthwise conv of
    the digits cnn_dw: K = 72, N = 64, ``72 * 16 = 1152`` entries > 1024) but whose column
    split fits (two tiles, ``32`` columns each: ``72 * 8 = 576``): ``auto`` takes the columns
    whatever the cycle model says, `check_tile_buffers` counts the column share, ``rows`` is
    refused."""
    from sparsemac.host import NetworkError
    from sparsemac.host.compiler import check_tile_buffers, tile_buffer_needs

    cfg = AcceleratorConfig()
    net = network_from_dict({"seed": 3, "input": {"shape": [8, 8, 8]}, "layers": [
        {"name": "dw", "op": "conv2d", "groups": 8, "kernel": 3, "padding": 1,
         "format": "bitmap", "prune": "none", "activation": "relu"}]})
    auto = compile_network(net, cfg)
    assert cfg.tiles == 2 and cfg.cols == 4 and cfg.act_buf_depth == 1024
    assert auto.layers[0].descriptor.col_split == 32
    assert tile_buffer_needs(auto.layers[0], cfg)["act_buf_depth"] == (1024, 576)
    check_tile_buffers(auto)
    rows = compile_network(net, cfg, split="rows")
    assert tile_buffer_needs(rows.layers[0], cfg)["act_buf_depth"] == (2048, 1152)
    with pytest.raises(NetworkError, match=r"layers\[0\] \(dw\) needs act_buf_depth >= 2048 "
                       r"\(1152 entries\) for the rtl engine, this configuration has 1024$"):
        check_tile_buffers(rows)


def test_batch_auto_choices_made_on_the_first_image(monkeypatch):
    """A batch of images with ``split`` and ``tables`` ``auto``: the cycle model decides each
    layer once, on the batch's first image, and every image gets that choice; the first
    image's choices are those of compiling it alone; a ``decisions`` dict carries them to the
    next job (no model run at all)."""
    from sparsemac.host import cycles as cyc
    from sparsemac.host.compiler import Flags, batch_networks

    cfg = AcceleratorConfig.preset("default")
    net = network_from_dict({"seed": 11, "input": {"shape": [5, 3, 6, 6]}, "layers": [
        {"name": "c1", "op": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1,
         "format": "bitmap", "density": 0.5, "activation": "relu"},
        {"name": "fc", "op": "matmul", "out_features": 10, "format": "nm", "nm": "2:4"}]})
    calls = {"split": 0, "tables": 0}
    real_split, real_tables = cyc.prefer_col_split, cyc.prefer_late_tables

    def count_split(*a, **k):
        calls["split"] += 1
        return real_split(*a, **k)

    def count_tables(*a, **k):
        calls["tables"] += 1
        return real_tables(*a, **k)

    monkeypatch.setattr(cyc, "prefer_col_split", count_split)
    monkeypatch.setattr(cyc, "prefer_late_tables", count_tables)
    decisions: dict = {}
    cn = compile_network(net, cfg, decisions=decisions)
    assert len(cn.networks) == 5
    # once per layer with weights (split; only where the column split fits) and per
    # requantized layer (tables), not once per image
    assert 1 <= calls["split"] <= 2 and calls["tables"] == 2, calls
    flags = [[(cl.descriptor.col_split, bool(cl.descriptor.flags & Flags.LATE_TABLES))
              for cl in cn.chain(j)] for j in range(5)]
    assert all(f == flags[0] for f in flags), flags
    first = batch_networks(net, cfg)[0]
    alone = compile_network(first, cfg)
    assert [(cl.descriptor.col_split, bool(cl.descriptor.flags & Flags.LATE_TABLES))
            for cl in alone.layers] == flags[0]
    calls.update(split=0, tables=0)
    again = compile_network(net, cfg, decisions=decisions)
    assert calls == {"split": 0, "tables": 0}
    assert [(cl.descriptor.col_split, bool(cl.descriptor.flags & Flags.LATE_TABLES))
            for cl in again.chain(4)] == flags[0]
