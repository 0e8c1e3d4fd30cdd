"""The residual add on the hardware (host/add_matmul.py, `golden.add_matmul_params`): the int8
ratios against float64, the identity with a matmul over both inputs side by side, the
placement (second input ``R`` rows after the first, the rows between zero and unwritten), the
format choice, the refused graphs, and the memory plan's reservations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sparsemac.golden import add_matmul_params, add_requant, matmul
from sparsemac.golden.descriptors import Opcode
from sparsemac.golden.lut import build_lut
from sparsemac.host import NetworkError, compile_network, network_from_dict
from sparsemac.host.add_matmul import add_format, add_weights, pair_rows
from sparsemac.host.model_engine import read_output, run_model
from sparsemac.host.placement import ALIGN, MemoryPlan
from sparsemac.hw.config import AcceleratorConfig

CFG = AcceleratorConfig()


def _scales(rng):
    """Scales of two inputs and an output: ratios from 1:1 to 1:1000 either way."""
    s_a = float(rng.uniform(0.001, 0.1))
    s_b = s_a * float(10 ** rng.uniform(-3, 3))
    return s_a, s_b, float(max(s_a, s_b) * rng.uniform(0.5, 4))


@pytest.mark.parametrize("rep", range(20))
def test_int8_ratios_match_a_matmul_and_float64(rng, seed, rep):
    """``add_requant`` with `add_matmul_params` equals the section 1 requantization of
    ``w_a * a + w_b * b`` (golden.matmul of ``[w_a I | w_b I]`` over the stacked inputs) bit for
    bit, with and without a table, on random and extreme int8 data; the unsaturated results
    are within ``0.5 + error_lsb`` of the float64 sum, and ``error_lsb`` is the ratio error."""
    s_a, s_b, s_y = _scales(rng)
    p = add_matmul_params(s_a, s_b, s_y)
    ctx = f"seed={seed} rep={rep} scales={(s_a, s_b, s_y)} p={p}"
    assert 1 <= p["w_a"] <= 127 and 1 <= p["w_b"] <= 127, ctx
    assert 2**23 <= p["mult"] < 2**24 or p["shift"] == 63, ctx
    assert p["mult_a"] == p["w_a"] * p["mult"] <= 2**31 - 1, ctx
    assert p["mult_b"] == p["w_b"] * p["mult"] and p["shift_a"] == p["shift_b"] == p["shift"]
    q = p["mult"] / 2.0 ** p["shift"]
    err = 128 * (abs(p["w_a"] * q - s_a / s_y) + abs(p["w_b"] * q - s_b / s_y))
    assert err == pytest.approx(p["error_lsb"], rel=1e-9, abs=1e-15), ctx
    c, n = 3, 40
    a = rng.integers(-128, 128, size=(c, n)).astype(np.int8)
    b = rng.integers(-128, 128, size=(c, n)).astype(np.int8)
    a[0, :4], b[0, :4] = [-128, 127, -128, 127], [-128, 127, 127, -128]   # the corners
    kw = {k: p[k] for k in ("mult_a", "shift_a", "mult_b", "shift_b")}
    w = np.concatenate([np.eye(c, dtype=np.int64) * p["w_a"],
                        np.eye(c, dtype=np.int64) * p["w_b"]], axis=1).astype(np.int8)
    lut = build_lut("gelu", s_y, s_y)
    for t in (None, lut):
        y = add_requant(a, b, **kw, lut=t)
        mm = matmul(w, np.concatenate([a, b]), bias=np.zeros(c, dtype=np.int64),
                    mult=p["mult"], shift=p["shift"], lut=t)
        np.testing.assert_array_equal(y, mm, err_msg=ctx)
    real = (a.astype(np.float64) * s_a + b.astype(np.float64) * s_b) / s_y
    y = add_requant(a, b, **kw).astype(np.float64)
    free = np.abs(real) < 127
    assert np.all(np.abs(y[free] - real[free]) <= 0.5 + p["error_lsb"] + 1e-9), ctx


def test_ratio_bounds_and_errors():
    """Equal scales are exact; a ratio of 1:254 or beyond keeps weight 1 (its error is
    reported); the 24-bit multiplier's range ends just inside ``2**30`` and ``2**-40``; bad
    scales name the parameter."""
    p = add_matmul_params(1.0, 1.0, 1.0)
    assert p["w_a"] == p["w_b"] and p["error_lsb"] == 0.0
    p = add_matmul_params(1.0, 1e-6, 1.0)
    q = p["mult"] / 2.0 ** p["shift"]
    assert (p["w_a"], p["w_b"]) == (127, 1) and p["error_lsb"] == pytest.approx(
        128 * (abs(127 * q - 1.0) + q - 1e-6), rel=1e-9)
    assert 1.0 < p["error_lsb"] < 1.01        # about 128 / 127: b's weight 1 stands for 1/127
    assert add_matmul_params(2.0**29, 1.0, 1.0)["shift"] >= 1
    assert add_matmul_params(2.0**-40, 2.0**-40, 1.0)["shift"] <= 63
    with pytest.raises(ValueError, match=r"max\(scale_a, scale_b\) / scale_y must be between"):
        add_matmul_params(2.0**31, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"max\(scale_a, scale_b\) / scale_y must be between"):
        add_matmul_params(2.0**-50, 2.0**-50, 1.0)
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="scale_b must be a positive finite number"):
            add_matmul_params(1.0, bad, 1.0)


@pytest.mark.parametrize("n", [1, 3, 15, 16, 31, 32, 33, 49, 64, 96])
def test_pair_rows_is_the_least_aligned_gap(n):
    """``R``: the least ``R >= C`` with ``R * N`` a multiple of the alignment (brute force),
    so both inputs start aligned; ``R - C < lcm(N, align) / N``."""
    for c in (1, 2, 5, 8, 33):
        r = pair_rows(c, n, ALIGN)
        want = next(v for v in range(c, c + 2 * ALIGN + 1) if v * n % ALIGN == 0)
        assert r == want and r - c < math.lcm(n, ALIGN) // n, (c, n, r)


def test_add_format_takes_the_cheapest_built_format():
    """bitmap when built; else 1:M with the largest ``M <= nm_max_m`` whose groups hold one
    weight (the two columns of a row ``R >= C`` apart), else 2:4; else block; else dense."""
    w2 = add_weights(4, 4, 3, 5)
    assert add_format(w2, CFG) == ("bitmap", None)
    nm8 = AcceleratorConfig(formats=("dense", "nm"), nm_max_m=8)
    assert add_format(w2, nm8) == ("nm", (1, 4))          # K = 8: M = 8 puts both in one group
    assert add_format(add_weights(4, 12, 3, 5), nm8) == ("nm", (1, 8))
    assert add_format(w2, AcceleratorConfig(formats=("dense", "block"))) == ("block", None)
    assert add_format(w2, AcceleratorConfig(formats=("dense",))) == ("dense", None)
    w = add_weights(3, 8, 7, -2)
    assert w.shape == (3, 11) and np.count_nonzero(w) == 6
    assert list(w[1, [1, 9]]) == [7, -2]


def _net(c, h, w, order=("c", "network_input"), fmt="bitmap", act="relu"):
    return network_from_dict({"seed": 5, "input": {"shape": [c, h, w]}, "layers": [
        {"name": "c", "op": "conv2d", "out_channels": c, "kernel": 3, "padding": 1,
         "format": fmt, "activation": "relu"},
        {"name": "s", "op": "add", "inputs": list(order), "activation": act},
        {"name": "fc", "op": "matmul", "out_features": 3, "input": "network_input"}]})


@pytest.mark.parametrize("hw", [(4, 4), (5, 7), (3, 3)])
@pytest.mark.parametrize("order", [("c", "network_input"), ("network_input", "c")])
def test_inputs_sit_side_by_side_and_the_add_is_bit_exact(rng, seed, hw, order):
    """The add compiles to a matmul ``(C, R + C, H*W)`` reading from the first input (the
    network input); the conv's output lands ``R`` rows after it; the rows between are zero in
    the image and no buffer overlaps them; the model engine with the hardware's limits gives
    golden's `add_requant` with the int8 ratios, whichever input is ``a``; the gap stays
    unwritten (canary fill)."""
    c = 3
    net = _net(c, *hw, order=order)
    cn = compile_network(net, CFG, out_fill="random")
    add, conv = cn.layers[1], cn.layers[0]
    n = hw[0] * hw[1]
    r = pair_rows(c, n, ALIGN)
    d = add.descriptor
    assert d.opcode == Opcode.MATMUL and (d.m, d.k, d.n) == (c, r + c, n)
    inp = next(g for g in cn.regions if g.name == "input")
    assert d.acts == inp.offset and conv.descriptor.out == inp.offset + r * n
    gap = (inp.offset + c * n, inp.offset + r * n)
    assert all(g.end <= gap[0] or g.offset >= gap[1] for g in cn.regions), cn.regions
    assert not any(cn.image[gap[0]:gap[1]])
    res = run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=cn.desc_count,
                    cfg=cn.config)
    assert res.ok, f"seed={seed}: {res.message}"
    assert not any(res.image[gap[0]:gap[1]]), f"seed={seed}: the gap was written"
    x = cn.input.reshape(c, n).astype(np.int8)
    y = read_output(res.image, conv.descriptor).reshape(c, n)
    a, b = (y, x) if order[0] == "c" else (x, y)
    p = add_matmul_params(*((conv.out_scale, cn.input_scales[0]) if order[0] == "c"
                            else (cn.input_scales[0], conv.out_scale)), add.requant_scale)
    assert add.add_weights == (p["w_a"], p["w_b"])
    kw = {k: p[k] for k in ("mult_a", "shift_a", "mult_b", "shift_b")}
    np.testing.assert_array_equal(read_output(res.image, d).reshape(c, n),
                                  add_requant(a, b, **kw, lut=add.lut), err_msg=f"seed={seed}")


def test_graphs_the_hardware_add_cannot_place():
    """An add of a tensor with itself, and a tensor two adds read: one line naming the layer
    and the way out (limits architecture), which runs them as opcode 5."""
    def net(layers):
        return network_from_dict({"seed": 1, "input": {"shape": [2, 4, 4]}, "layers": layers})

    conv = {"name": "c", "op": "conv2d", "out_channels": 2, "kernel": 1}
    same = net([conv, {"name": "s", "op": "add", "inputs": ["c", "c"]}])
    with pytest.raises(NetworkError) as e:
        compile_network(same, CFG)
    assert str(e.value) == (
        "network: layers[1].inputs must name two different tensors for the hardware add (a "
        "matmul over both side by side), not the same one twice; use limits architecture")
    shared = net([conv, {"name": "s", "op": "add", "inputs": ["c", "network_input"]},
                  {"name": "t", "op": "add", "inputs": ["network_input", "s"]}])
    with pytest.raises(NetworkError) as e:
        compile_network(shared, CFG)
    assert str(e.value) == (
        "network: layers[2].inputs must not share a tensor with another add on the hardware "
        "(layer 1, 's', reads it too; each add's inputs sit side by side in memory); use "
        "limits architecture")
    for ok in (same, shared):
        cn = compile_network(ok, CFG, limits="architecture")
        assert cn.layers[-1].descriptor.opcode == Opcode.ADD


def test_memory_plan_reserve_and_place():
    """`reserve` keeps bytes for `place`; a place outside the reservation, misaligned or
    overlapping is refused with the name."""
    plan = MemoryPlan()
    a = plan.alloc("a", 40)
    assert a == 0 and plan.end == 40
    plan.reserve(64 + 10 - plan.end)
    assert plan.end == 74
    assert plan.place("b", 64, 10) == 64
    assert plan.alloc("c", 1) == 96
    for name, off, size in (("d", 64, 10), ("e", 48, 8), ("f", 32, 8), ("g", 200, 1)):
        with pytest.raises(ValueError, match=f"'{name}' at"):
            plan.place(name, off, size)
    plan.check()


def test_an_add_splits_its_columns(seed):
    """The add's matmul takes a column split like any matmul (``cols``, or ``auto`` when the
    cycle model finds it faster): 16 x 8 x 8 on the default preset's four tiles, 16 columns a
    tile, bit-exact on the model engine.  A 64 x 8 x 8 add fits neither split
    (``K = R + C = 128``: 2048 im2col entries by rows, a 2048-entry image by columns, 1024
    each): `tile_buffer_needs` says so (`check_tile_buffers` refuses it)."""
    from sparsemac.host.compiler import check_tile_buffers, tile_buffer_needs

    cfg = AcceleratorConfig.preset("default")
    cn = compile_network(_net(16, 8, 8, fmt="dense"), cfg, split="cols")
    add = cn.layers[1]
    assert (add.descriptor.k, add.descriptor.col_split) == (32, 16)
    check_tile_buffers(cn)
    res = run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=cn.desc_count,
                    cfg=cfg)
    assert res.ok, f"seed={seed}: {res.message}"
    for cl in cn.layers:
        np.testing.assert_array_equal(read_output(res.image, cl.descriptor).reshape(
            cl.expected.shape), cl.expected, err_msg=f"seed={seed}")
    wide = compile_network(_net(64, 8, 8, fmt="dense"), cfg)
    assert wide.layers[1].descriptor.col_split == 0
    assert tile_buffer_needs(wide.layers[1], cfg)["act_buf_depth"] == (2048, 2048)
