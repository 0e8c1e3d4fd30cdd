"""Pooling layers through the host flow (issue 16): the schema (host/network.py), the compiler's
descriptors, memory plan, scales and hardware limits (host/compiler.py), the model engine, the
cycle estimate (host/cycles.py) and `run` (host/run.py).  Every output is bit-exact with the
golden convolutions and pools applied in sequence (docs/spec.md sections 2.3 and 8.2)."""

from __future__ import annotations

import textwrap
from dataclasses import replace

import numpy as np
import pytest
from sparsemac.golden import avgpool2d, conv2d, global_avgpool, matmul, maxpool2d
from sparsemac.golden.desc_rules import hardware_descriptor_code
from sparsemac.golden.descriptors import ErrorCode, Flags, Opcode
from sparsemac.golden.net_cycles import READ_LATENCY, READ_TAIL
from sparsemac.host import NetworkError, compile_network, load_network, network_from_dict
from sparsemac.host.compiler import (
    calibrate,
    check_tile_buffers,
    global_pool_block,
    layer_buffer_shortfall,
)
from sparsemac.host.cycles import POOL_CYCLE_SOURCE, table_cycles
from sparsemac.host.model_engine import read_output, run_model
from sparsemac.host.run import run
from sparsemac.hw.config import AcceleratorConfig

from .nets import random_pool_network
from .test_network import _error

CFG = AcceleratorConfig()
_OPCODES = {"maxpool2d": Opcode.MAXPOOL2D, "avgpool2d": Opcode.AVGPOOL2D,
            "global_avgpool": Opcode.GLOBAL_AVGPOOL}


def _run(cn, limits="hardware"):
    r = run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=cn.desc_count,
                  cfg=cn.config, limits=limits)
    return r


def _golden_chain(cn) -> list[np.ndarray]:
    """The golden operations applied in sequence to the network input, with the compiled
    parameters (weights, bias, mult, shift, table): every layer's ``(M, N)`` output."""
    x = cn.input.astype(np.int8)
    outs = []
    for cl in cn.layers:
        s = cl.spec
        if s.op == "matmul":
            kw = dict(bias=cl.bias, mult=cl.mult, shift=cl.shift, lut=cl.lut) if s.requant \
                else {}
            y = matmul(cl.weights.reshape(s.out, -1), x.reshape(s.in_shape), **kw,
                       acc_width=cn.config.acc_width)
        elif s.op == "conv2d":
            y = conv2d(x.reshape(1, *s.in_shape), cl.weights, bias=cl.bias, mult=cl.mult,
                       shift=cl.shift, lut=cl.lut, stride=s.stride, padding=s.padding,
                       dilation=s.dilation, acc_width=cn.config.acc_width)
        elif s.op == "maxpool2d":
            y = maxpool2d(x.reshape(1, *s.in_shape), s.kernel, s.stride, s.padding)
        elif s.op == "avgpool2d":
            y = avgpool2d(x.reshape(1, *s.in_shape), s.kernel, s.stride, s.padding,
                          count_include_pad=s.count_include_pad)
        else:
            y = global_avgpool(x.reshape(1, *s.in_shape))
        y = np.asarray(y).reshape(s.out, -1)
        outs.append(y)
        x = y.astype(np.int8)
    return outs


POOL_NET = """\
name: t
input:
  shape: [3, 8, 8]
layers:
  - name: c1
    op: conv2d
    out_channels: 4
    kernel: 3
    padding: 1
    activation: relu
  - name: p1
    op: avgpool2d
    kernel: 2
    count_include_pad: true
  - name: fc
    op: matmul
    out_features: 5
"""


def test_pool_shapes_resolve(tmp_path):
    """Shapes follow the previous layer; stride defaults to the kernel, padding to 0; a
    global average pool gives C x 1 x 1; a matmul after a pool flattens it (K = C*OH*OW)."""
    p = tmp_path / "net.yaml"
    p.write_text(textwrap.dedent("""\
        input: {shape: [3, 12, 10]}
        layers:
          - {op: conv2d, out_channels: 6, kernel: 3, padding: 1}
          - {name: mp, op: maxpool2d, kernel: 2}
          - {name: ap, op: avgpool2d, kernel: [3, 2], stride: 1, padding: [1, 0],
             count_include_pad: true}
          - {name: gp, op: global_avgpool, in_channels: 6}
          - {name: fc, op: matmul, out_features: 4}
        """))
    net = load_network(p)
    _, mp, ap, gp, fc = net.layers
    assert (mp.in_shape, mp.out_shape, mp.kernel, mp.stride, mp.padding) == (
        (6, 12, 10), (6, 6, 5), (2, 2), (2, 2), (0, 0))
    assert mp.mkn == (6, 4, 30) and mp.is_pool and mp.weight_shape == ()
    assert (ap.out_shape, ap.stride, ap.padding, ap.count_include_pad) == (
        (6, 6, 4), (1, 1), (1, 0), True)
    assert ap.mkn == (6, 6, 24)
    assert (gp.in_shape, gp.out_shape, gp.mkn) == ((6, 6, 4), (6, 1, 1), (6, 24, 1))
    assert (fc.in_shape, fc.out_shape) == ((6, 1), (4, 1))
    # a pool after a matrix reads it back as an image with reshape, like a conv2d
    net = network_from_dict({"input": {"shape": [8, 4]}, "layers": [
        {"op": "matmul", "out_features": 6},
        {"op": "maxpool2d", "reshape": [6, 2, 2], "kernel": 2}]})
    assert net.layers[1].in_shape == (6, 2, 2) and net.layers[1].out_shape == (6, 1, 1)
    # without padding count_include_pad may be left out (both divisors are KH*KW)
    net = network_from_dict({"input": {"shape": [1, 4, 4]}, "layers": [
        {"op": "avgpool2d", "kernel": 2}]})
    assert net.layers[0].count_include_pad is False


@pytest.mark.parametrize("old,new,message", [
    ("    kernel: 2\n", "    kernel: 17\n",
     "net.yaml:13: layers[1].kernel must be an integer between 1 and 16 or a pair [h, w] of "
     "them, not 17"),
    ("    kernel: 2\n", "    kernel: 2\n    stride: [1, 0]\n",
     "net.yaml:14: layers[1].stride must be an integer between 1 and 16 or a pair [h, w] of "
     "them, not [1, 0]"),
    ("    kernel: 2\n", "    kernel: 2\n    padding: [1, 2]\n",
     "net.yaml:14: layers[1].padding must be at most kernel - 1 per axis ([1, 1] for kernel "
     "[2, 2]: every window must hold a real value), not [1, 2]"),
    ("    kernel: 2\n", "    kernel: 9\n",
     "net.yaml:13: layers[1].kernel must fit the padded input 8 x 8, not [9, 9]"),
    ("    kernel: 2\n", "",
     "net.yaml:11: layers[1].kernel must be given (an integer or [kh, kw])"),
    ("    count_include_pad: true\n", "    padding: 1\n",
     "net.yaml:11: layers[1].count_include_pad must be given when padding is not 0 (true: the "
     "padding counts as zeros, divide by KH*KW, PyTorch's default; false: divide by the real "
     "values only, ONNX's default)"),
    ("count_include_pad: true", "count_include_pad: 1",
     "net.yaml:14: layers[1].count_include_pad must be true or false, not 1"),
    ("    kernel: 2\n", "    kernel: 2\n    activation: relu\n",
     "net.yaml:14: layers[1].activation must not be given for a pool layer (avgpool2d): it has "
     "no weights, requantization or activation, its output keeps the input's scale"),
    ("    kernel: 2\n", "    kernel: 2\n    dilation: 2\n",
     "net.yaml:14: layers[1].dilation is not a known field; allowed: name, op, in_channels, "
     "kernel, stride, padding, count_include_pad, reshape, input"),
    ("    kernel: 2\n", "    kernel: 2\n    in_channels: 3\n",
     "net.yaml:14: layers[1].in_channels must be 4 (the channels of the input from layers[0] "
     "'c1'), not 3"),
    ("    activation: relu\n", "    requant: false\n",
     "net.yaml:11: layers[1] must not follow layer 'c1' whose requant is false (int32 "
     "accumulators are not an int8 input)"),
    ("    op: avgpool2d\n    kernel: 2\n    count_include_pad: true\n",
     "    op: global_avgpool\n    kernel: 2\n",
     "net.yaml:13: layers[1].kernel is not a known field; allowed: name, op, in_channels, "
     "reshape, input"),
])
def test_pool_schema_errors_are_pinned(tmp_path, old, new, message):
    assert old in POOL_NET, old
    assert _error(tmp_path, POOL_NET.replace(old, new, 1)) == message


def test_pool_after_matrix_and_huge_global_pool():
    with pytest.raises(NetworkError) as e:
        network_from_dict({"input": {"shape": [8, 4]}, "layers": [
            {"name": "fc", "op": "matmul", "out_features": 10},
            {"op": "maxpool2d", "kernel": 2}]})
    assert str(e.value) == ("network: layers[1].reshape must be given ([C, H, W] with C*H*W = "
                            "40) for a maxpool2d whose input is a matrix (layers[0] 'fc': "
                            "10 x 4)")
    with pytest.raises(NetworkError) as e:
        network_from_dict({"input": {"shape": [1, 300, 300]}, "layers": [
            {"op": "global_avgpool"}]})
    assert str(e.value) == ("network: layers[0] input must hold at most 65536 values per "
                            "channel (H*W) for a global_avgpool, not 300 x 300 (from the "
                            "network input)")


_HW_CASES = [
    ({"op": "maxpool2d", "kernel": 16}, [1, 16, 16], {},
     "network: layers[0].kernel must be at most 15 per axis on the hardware (the spec's 16 "
     "runs with limits architecture), not [16, 16]"),
    ({"op": "avgpool2d", "kernel": 2, "stride": [1, 16]}, [2, 5, 20], {},
     "network: layers[0].stride must be at most 15 per axis on the hardware (the spec's 16 "
     "runs with limits architecture), not [1, 16]"),
    ({"op": "global_avgpool"}, [3, 16, 15], {},
     "network: layers[0] (layer0) global_avgpool input must be at most 15 x 15 (H x W) on the "
     "hardware, not 16 x 15 (an avgpool2d with a smaller kernel first, or limits "
     "architecture)"),
    ({"op": "maxpool2d", "kernel": 2}, [2, 4, 4], {"pool_enabled": False},
     "network: layers[0].op must be one of the operations built into this configuration "
     "(matmul, conv2d), not 'maxpool2d' (pool_enabled: false)"),
]


@pytest.mark.parametrize("layer,shape,sets,message", _HW_CASES)
def test_hardware_limits_refuse_at_compile_time(rng, seed, layer, shape, sets, message):
    """A pool the configuration's hardware cannot run is one line naming the layer, the field
    and the allowed range; with ``limits="architecture"`` it compiles, and the architecture
    model engine runs it bit-exact with golden."""
    x = rng.integers(-128, 128, size=shape).astype(np.int8)
    net = network_from_dict({"input": {"values": x.tolist()}, "layers": [layer]})
    cfg = CFG.replace(**sets)
    with pytest.raises(NetworkError) as e:
        compile_network(net, cfg)
    assert str(e.value) == message
    with pytest.raises(NetworkError) as e:
        run(net, cfg)
    assert str(e.value) == message
    cn = compile_network(net, cfg, limits="architecture")
    r = _run(cn, "architecture")
    assert r.ok, f"seed={seed}: {r.error_code.name} {r.message}"
    want = _golden_chain(cn)[0]
    np.testing.assert_array_equal(read_output(r.image, cn.layers[0].descriptor), want,
                                  err_msg=f"seed={seed}")
    rep = run(net, cfg, limits="architecture").report
    assert rep["status"] == "OK" and rep["mismatches"] == 0 and rep["limits"] == "architecture"
    with pytest.raises(ValueError, match="^limits must be one of hardware, architecture, not "
                                         "'rtl'$"):
        compile_network(net, cfg, limits="rtl")


def test_padded_average_of_the_real_positions_runs_on_the_hardware(rng, seed):
    """An average pool with padding and ``count_include_pad: false`` (ONNX's default) compiles
    with the hardware limits (INCLUDE_PAD clear; `hardware_descriptor_code` OK: the tile divides
    by each window's count of real positions) and the model engine runs it with those limits
    bit-exact with golden and equal to the architecture run; counting the padding would give
    other border values."""
    x = rng.integers(-128, 128, size=(3, 7, 6)).astype(np.int8)
    net = network_from_dict({"seed": 6, "input": {"values": x.tolist()}, "layers": [
        {"name": "ap3", "op": "avgpool2d", "kernel": 3, "stride": 1, "padding": 1,
         "count_include_pad": False},
        {"name": "ap2", "op": "avgpool2d", "kernel": 2, "stride": 2, "padding": 1,
         "count_include_pad": False},               # corners: one real position
        {"name": "ap43", "op": "avgpool2d", "kernel": [4, 3], "stride": [3, 1],
         "padding": [3, 2], "count_include_pad": False}]})
    cn = compile_network(net, CFG)
    ctx = f"seed={seed}"
    for cl in cn.layers:
        assert not cl.descriptor.flags & Flags.INCLUDE_PAD, ctx
        assert hardware_descriptor_code(cl.descriptor, CFG, window_bytes=1 << 20) == (
            ErrorCode.OK), ctx
    r = _run(cn, "hardware")
    assert r.ok, f"{ctx}: {r.error_code.name} {r.message}"
    want = _golden_chain(cn)
    for cl, y in zip(cn.layers, want, strict=True):
        np.testing.assert_array_equal(read_output(r.image, cl.descriptor), y, err_msg=ctx)
    arch = _run(cn, "architecture")
    assert arch.ok and bytes(arch.image) == bytes(r.image), ctx
    counted = avgpool2d(x[None], 3, 1, 1, count_include_pad=True)[0].reshape(3, -1)
    assert not np.array_equal(counted, want[0]), ctx
    rep = run(net, CFG).report
    assert rep["status"] == "OK" and rep["mismatches"] == 0 and rep["limits"] == "hardware"
    assert [e["count_include_pad"] for e in rep["layers"]] == [False] * 3


@pytest.mark.parametrize("rep", range(8))
def test_random_pool_networks_are_bit_exact(rng, seed, rep):
    """conv2d -> pool -> ... -> matmul networks with random pools: the descriptors (opcode,
    m/k/n, INCLUDE_PAD only for an average pool with padding, no weights, records or table),
    the chaining (a pool reads the previous output in place), the scales (a pool keeps its
    input's) and every output buffer, as the model engine writes it, equal to the golden
    operations applied in sequence."""
    d = random_pool_network(rng)
    net = network_from_dict(d)
    cn = compile_network(net, CFG)
    ctx = f"seed={seed} rep={rep} {d['layers']}"
    r = _run(cn)
    # a random pool may not fit a tile's buffers (the whole image to every tile when a plane
    # is not whole bus words): the engine refuses exactly the first layer the compiler's
    # `layer_buffer_shortfall` names, with BAD_SHAPE, and runs every other network
    short = [i for i, cl in enumerate(cn.layers)
             if cl.spec.is_pool and layer_buffer_shortfall(cl.spec, CFG)]
    if short:
        assert not r.ok and r.error_code == ErrorCode.BAD_SHAPE, ctx
        assert r.error_desc == short[0], f"{ctx}: refused at {r.error_desc}, not {short[0]}"
        return
    assert r.ok, f"{ctx}: {r.error_code.name} at {r.error_desc}: {r.message}"
    want = _golden_chain(cn)
    prev = None
    for cl, y in zip(cn.layers, want, strict=True):
        dsc, s = cl.descriptor, cl.spec
        np.testing.assert_array_equal(read_output(r.image, dsc).reshape(y.shape), y, err_msg=ctx)
        np.testing.assert_array_equal(cl.expected, y, err_msg=ctx)
        if prev is not None:
            assert dsc.acts == prev.descriptor.out, ctx
            assert cl.in_scale == prev.out_scale, ctx
        if s.op == "global_avgpool" and dsc.opcode == Opcode.AVGPOOL2D:
            # compiled as the average pool of blocks of b channels (`global_pool_block`)
            c, h, w = s.in_shape
            b = global_pool_block(c, h, w, CFG)
            assert b > 1 and (dsc.c, dsc.h, dsc.w) == (c // b, b * h, w), ctx
            assert (dsc.kh, dsc.kw, dsc.stride_h, dsc.stride_w) == (h, w, h, w), ctx
            assert (dsc.m, dsc.k, dsc.n) == (c // b, h * w, b), ctx
            assert not dsc.flags & Flags.INCLUDE_PAD, ctx
        elif s.is_pool:
            assert dsc.opcode == _OPCODES[s.op], ctx
            assert (dsc.m, dsc.k, dsc.n) == s.mkn, ctx
            assert (dsc.weights, dsc.quant, dsc.lut, dsc.format) == (0, 0, 0, 0), ctx
            inc = s.op == "avgpool2d" and s.count_include_pad and s.padding != (0, 0)
            assert bool(dsc.flags & Flags.INCLUDE_PAD) == inc, ctx
            assert not dsc.flags & (Flags.REQUANT | Flags.LUT), ctx
            assert set(cl.regions) == {"acts", "out"}, ctx
            assert cl.out_scale == cl.in_scale, ctx
            assert (dsc.c, dsc.h, dsc.w) == s.in_shape, ctx
        if s.is_pool:
            assert (dsc.weights, dsc.quant, dsc.lut, dsc.format) == (0, 0, 0, 0), ctx
            assert not dsc.flags & (Flags.REQUANT | Flags.LUT), ctx
            assert set(cl.regions) == {"acts", "out"}, ctx
            assert cl.out_scale == cl.in_scale, ctx
        prev = cl
    assert cn.layers[-1].descriptor.flags & Flags.IRQ


def test_run_reports_pool_rows_and_outputs(rng, seed):
    """`run`: one report row per pool (no format, density or weight scale; the geometry, the
    kept scale, the cycle estimate), outputs of a network ending in a pool batch first as
    ``(N, C, OH, OW)``."""
    x = rng.integers(-100, 100, size=(2, 9, 9)).astype(np.int8)
    net = network_from_dict({"seed": 3, "input": {"values": x.tolist()}, "layers": [
        {"name": "c", "op": "conv2d", "out_channels": 5, "kernel": 3, "activation": "relu"},
        {"name": "mp", "op": "maxpool2d", "kernel": 3, "stride": 2, "padding": 1},
        {"name": "ap", "op": "avgpool2d", "kernel": 2, "stride": 1}]})
    rr = run(net, CFG)
    rep = rr.report
    assert rep["status"] == "OK" and rep["mismatches"] == 0, f"seed={seed}: {rep}"
    assert "pools: " + POOL_CYCLE_SOURCE in rep["cycle_model"]
    c, mp, ap = rep["layers"]
    assert (mp["op"], mp["format"], mp["density"], mp["weight_scale"]) == (
        "maxpool2d", None, None, None)
    assert (mp["kernel"], mp["stride"], mp["padding"]) == ([3, 3], [2, 2], [1, 1])
    assert mp["in_scale"] == mp["out_scale"] == c["out_scale"] == ap["out_scale"]
    assert ap["count_include_pad"] is False and ap["cycle_model"] == POOL_CYCLE_SOURCE
    for e in rep["layers"]:
        assert e["cycles"] >= e["roofline_cycles"] >= 1, e
    assert rr.outputs.shape == (1, 5, 3, 3)
    cn = compile_network(net, CFG)
    assert np.array_equal(rr.outputs[0].reshape(5, 9), _golden_chain(cn)[-1])
    assert np.allclose(rr.values, rr.outputs * ap["out_scale"])


def test_batch_of_images_with_pools(rng, seed):
    """A batch runs one chain per image (as conv networks do), the parameters fixed once;
    split into jobs, every image's output equals the image alone with those parameters."""
    x = rng.integers(-80, 80, size=(5, 2, 8, 8)).astype(np.int8)
    net = network_from_dict({"seed": 4, "input": {"values": x.tolist()}, "layers": [
        {"op": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1, "activation": "relu"},
        {"op": "maxpool2d", "kernel": 2},
        {"op": "conv2d", "out_channels": 6, "kernel": 3, "padding": 1, "activation": "relu"},
        {"op": "global_avgpool"},
        {"op": "matmul", "out_features": 3}]})
    rr = run(net, CFG, max_images=2)
    assert rr.report["jobs"] == 3 and rr.report["mismatches"] == 0, f"seed={seed}"
    fixed = calibrate(net, CFG)
    for b in range(5):
        one = compile_network(replace(fixed, input_values=x[b], batch=1), CFG)
        assert np.array_equal(rr.outputs[b], one.layers[-1].expected.ravel()), (seed, b)
        assert np.array_equal(one.layers[-1].expected, _golden_chain(one)[-1]), (seed, b)


def test_pool_cycles_model():
    """`pool_cycles` (golden/net_pool.py): the parts and phases add up, the image is read once
    at bus width inside the load phase, every output beat is written, the cycles lie above
    the memory roofline and above the gather of the busiest tile, fewer tiles take longer,
    the second descriptor is prefetched while the first waits.  (Against the RTL:
    tests/sim/test_net_cycles.py; the tile's token times: tests/hw/test_tile.py.)"""
    net = network_from_dict({"input": {"shape": [8, 12, 12]}, "layers": [
        {"op": "maxpool2d", "kernel": 2}, {"op": "global_avgpool"}]})
    totals = {}
    for tiles in (4, 1):
        cfg = CFG.replace(tiles=tiles)
        cn = compile_network(net, cfg)
        r = _run(cn)
        assert r.ok
        cyc = table_cycles(r.layers, cfg)
        beat = cfg.axi_data_width // 8
        # the busiest tile's gather: its channels' column groups of KK entries (the global
        # pool runs as blocks of 4 channels: 2 blocks of one column group of 36 entries)
        steps = [-(-cl.descriptor.m // tiles) * -(-cl.descriptor.n // cfg.cols)
                 * cl.descriptor.k for cl in cn.layers]
        assert steps == [9 * -(-8 // tiles) * 4, -(-2 // tiles) * 36], steps
        for c, chw, out, step in zip(cyc, (8 * 144, 8 * 36), (8 * 36, 8), steps):
            assert c["load_cycles"] >= READ_LATENCY + -(-chw // beat) + READ_TAIL
            assert c["writes"] >= -(-out // beat)
            assert c["cycles"] == sum(c[k] for k in ("fixed_cycles", "load_cycles",
                                                     "compute_cycles", "writeback_cycles"))
            assert c["cycles"] == sum(c["phases"].values())
            assert c["roofline_cycles"] == max(-(-chw // beat), -(-out // beat))
            assert c["cycles"] > c["roofline_cycles"] + step and c["bound"] == "memory"
        assert cyc[1]["phases"]["fetch_check"] < cyc[0]["phases"]["fetch_check"]
        totals[tiles] = sum(c["cycles"] for c in cyc)
    assert totals[1] > totals[4], totals


def test_pool_image_must_fit_the_tile(rng):
    """A pool's tile holds its whole C x H x W input (ceil(C*H*W / cols) act-buffer entries)
    when the planes are multicast (7 x 9 = 63 bytes, not whole bus words): the model engine
    refuses a larger one with BAD_SHAPE before writing, the RTL check and the job planner say
    which parameter to raise.  Planes of whole bus words go each to its own tile, which holds
    only its own: one 64-byte 8 x 8 plane a tile fits 16 entries exactly, two (32 entries) do
    not."""
    cfg = CFG.replace(act_buf_depth=16)
    net = network_from_dict({"input": {"shape": [2, 7, 9]}, "layers": [
        {"op": "maxpool2d", "kernel": 2}]})
    cn = compile_network(net, cfg)
    r = _run(cn, "hardware")
    assert (r.error_code, r.error_desc) == (ErrorCode.BAD_SHAPE, 0)
    assert r.message == "descriptor 0: activations exceed a tile's buffers (image_entries 32 > 16)"
    with pytest.raises(NetworkError) as e:
        check_tile_buffers(cn)
    assert str(e.value) == ("network: layers[0] (layer0) needs act_buf_depth >= 32 (32 entries) "
                            "for the rtl engine, this configuration has 16")
    short = layer_buffer_shortfall(net.layers[0], cfg)
    assert (short.check, short.used, short.capacity) == ("image_entries", 32, 16)
    assert layer_buffer_shortfall(net.layers[0], CFG) is None
    for c, fits in ((cfg.tiles, True), (2 * cfg.tiles, False)):
        planes = network_from_dict({"input": {"shape": [c, 8, 8]}, "layers": [
            {"op": "maxpool2d", "kernel": 1, "stride": 4}]})
        r = _run(compile_network(planes, cfg), "hardware")
        assert (r.error_code == ErrorCode.OK) == fits, (c, r.error_code, r.message)
        short = layer_buffer_shortfall(planes.layers[0], cfg)
        assert (short is None) == fits and (fits or (short.check, short.used) ==
                                            ("image_entries", 32)), (c, short)


def test_model_job_without_cycles(rng, seed):
    """``model_job(cycles=False)`` (accuracy runs): the same outputs, every cycle count 0; it
    combines with ``limits="architecture"``."""
    from functools import partial

    from sparsemac.host.run import model_job

    x = rng.integers(-100, 100, size=(3, 2, 7, 7)).astype(np.int8)
    net = network_from_dict({"seed": 5, "input": {"values": x.tolist()}, "layers": [
        {"op": "conv2d", "out_channels": 3, "kernel": 3, "padding": 1, "activation": "relu"},
        {"op": "avgpool2d", "kernel": 3, "stride": 2, "padding": 1, "count_include_pad": False},
        {"op": "matmul", "out_features": 4}]})
    full = run(net, CFG, limits="architecture")
    fast = run(net, CFG, limits="architecture", engine=partial(model_job, cycles=False))
    assert np.array_equal(full.outputs, fast.outputs), seed
    assert full.report["cycles"] > 0 and fast.report["cycles"] == 0
    assert fast.report["mismatches"] == 0 and fast.report["limits"] == "architecture"


@pytest.mark.parametrize("c,h,w,b", [(8, 6, 6, 4), (6, 3, 5, 3), (12, 15, 15, 4), (2, 1, 1, 2),
                                     (7, 4, 4, 1), (1, 9, 2, 1), (9, 2, 7, 3)])
def test_global_pool_runs_as_blocks_of_channels(c, h, w, b, rng, seed):
    """A global average pool compiles to the average pool of ``C / b`` blocks of ``b``
    channels (``b`` the largest divisor of ``C`` up to ``cols``; 1: the global_avgpool
    descriptor), kernel and stride ``(H, W)``: the model engine's output equals golden's
    global_avgpool bit for bit, on random and extreme planes (all -128, all 127, halves that
    round up and down)."""
    from sparsemac.golden.descriptors import Opcode

    x = rng.integers(-128, 128, size=(c, h, w)).astype(np.int8)
    x[0] = -128
    if c > 1:
        x[1] = 127
    if c > 2 and h * w > 1:       # sums whose average ends in exactly .5: both directions
        x[2] = 0
        x[2].flat[0] = 1 if (h * w) % 2 == 0 else 0
    net = network_from_dict({"seed": 1, "input": {"values": x.tolist()},
                             "layers": [{"name": "g", "op": "global_avgpool"}]})
    cn = compile_network(net, CFG)
    d = cn.layers[0].descriptor
    assert global_pool_block(c, h, w, CFG) == b
    if b > 1:
        assert d.opcode == Opcode.AVGPOOL2D and (d.c, d.h, d.w, d.kh, d.kw) == (
            c // b, b * h, w, h, w), f"seed={seed}"
    else:
        assert d.opcode == Opcode.GLOBAL_AVGPOOL, f"seed={seed}"
    r = _run(cn)
    assert r.ok, f"seed={seed}: {r.message}"
    want = global_avgpool(x.reshape(1, c, h, w)).reshape(-1)
    np.testing.assert_array_equal(read_output(r.image, d).reshape(-1), want,
                                  err_msg=f"seed={seed} c={c} h={h} w={w}")
    np.testing.assert_array_equal(cn.layers[0].expected.reshape(-1), want)


def test_global_pool_block_limits():
    """The block is 1 for a plane larger than the hardware's kernel (the global_avgpool
    descriptor, run with limits architecture) and never more than ``cols``."""
    assert global_pool_block(8, 16, 4, CFG) == 1
    assert global_pool_block(64, 7, 7, CFG) == CFG.cols
    assert global_pool_block(64, 7, 7, CFG.replace(cols=8, out_lanes=8)) == 8
    assert global_pool_block(10, 3, 3, CFG.replace(cols=8, out_lanes=8)) == 5
