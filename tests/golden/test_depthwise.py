"""Depthwise conv2d (docs/spec.md section 2.5) against independent references: a direct Python
loop with Python-int requantization, ONNX's reference ``Conv`` with ``group = C`` on float64
inputs holding int8 values (exact: every sum is below 2**53), and `conv2d` channel by channel."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from sparsemac.golden import conv2d, conv_output_shape, depthwise_conv2d

from .hyp import hsettings
from .util import rand_int8, show

# ----------------------------------------------------------------------------------------------
# References


def onnx_depthwise(x, w, stride, pad, dil) -> np.ndarray:
    vi = [helper.make_tensor_value_info(n, TensorProto.DOUBLE, None) for n in ("X", "W", "Y")]
    node = helper.make_node("Conv", ["X", "W"], ["Y"], group=x.shape[1], strides=list(stride),
                            dilations=list(dil), pads=[pad[0], pad[1], pad[0], pad[1]])
    model = helper.make_model(helper.make_graph([node], "g", vi[:2], vi[2:]))
    y = ReferenceEvaluator(model).run(None, {"X": x.astype(np.float64),
                                             "W": w.astype(np.float64)})[0]
    return np.rint(y).astype(np.int64)


def py_wrap(v: int, width: int) -> int:
    v &= (1 << width) - 1
    return v - (1 << width) if v >> (width - 1) else v


def py_depthwise(x, w, stride, pad, dil, width=64):
    """Direct loop (exact Python ints), wrapped to ``width`` bits."""
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dil
    n_, c_, h, wd = x.shape
    kh, kw = w.shape[2:]
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n_, c_, oh, ow), dtype=np.int64)
    for n in range(n_):
        for c in range(c_):
            for i in range(oh):
                for j in range(ow):
                    acc = 0
                    for r in range(kh):
                        for s in range(kw):
                            ih, iw = i * sh - ph + r * dh, j * sw - pw + s * dw
                            if 0 <= ih < h and 0 <= iw < wd:
                                acc += int(x[n, c, ih, iw]) * int(w[c, 0, r, s])
                    y[n, c, i, j] = py_wrap(acc, width)
    return y


def py_requant(acc, bias, mult, shift, width):
    s = py_wrap(acc + bias, width)
    return max(-128, min(127, (s * mult + (1 << (shift - 1))) >> shift))


# ----------------------------------------------------------------------------------------------
# Against the references

pairs = st.tuples(st.integers(1, 3), st.integers(1, 3))


@hsettings(100)
@given(n=st.integers(1, 2), c=st.integers(1, 4), h=st.integers(1, 8), w=st.integers(1, 8),
       kh=st.integers(1, 4), kw=st.integers(1, 4), stride=pairs,
       pad=st.tuples(st.integers(0, 2), st.integers(0, 3)), dil=pairs,
       seed=st.integers(0, 2**32 - 1))
def test_depthwise_against_references(n, c, h, w, kh, kw, stride, pad, dil, seed):
    rng = np.random.default_rng(seed)
    x, wt = rand_int8(rng, (n, c, h, w), 0.8), rand_int8(rng, (c, 1, kh, kw), 0.7)
    if h + 2 * pad[0] < dil[0] * (kh - 1) + 1 or w + 2 * pad[1] < dil[1] * (kw - 1) + 1:
        with pytest.raises(ValueError, match="must fit the padded input"):
            depthwise_conv2d(x, wt, stride=stride, padding=pad, dilation=dil)
        return
    got = depthwise_conv2d(x, wt, stride=stride, padding=pad, dilation=dil)
    exp = py_depthwise(x, wt, stride, pad, dil)
    assert got.dtype == np.int64 and np.array_equal(got, exp), show("depthwise", exp, got, seed)
    assert got.shape == (n, c, *conv_output_shape((h, w), (kh, kw), stride, pad, dil))
    onnx = onnx_depthwise(x, wt, stride, pad, dil)
    assert np.array_equal(got, onnx), show("depthwise vs ONNX group=C", onnx, got, seed)
    per_channel = np.concatenate([conv2d(x[:, i:i + 1], wt[i:i + 1], stride=stride, padding=pad,
                                         dilation=dil) for i in range(c)], axis=1)
    assert np.array_equal(got, per_channel), show("depthwise vs conv2d per channel",
                                                  per_channel, got, seed)


@hsettings(40)
@given(seed=st.integers(0, 2**32 - 1), stride=pairs, pad=st.integers(0, 2),
       dil=st.tuples(st.integers(1, 2), st.integers(1, 3)), width=st.sampled_from([16, 20, 32]),
       lut=st.booleans())
def test_depthwise_requant_against_loop(seed, stride, pad, dil, width, lut):
    rng = np.random.default_rng(seed)
    c = 5
    x, wt = rand_int8(rng, (2, c, 7, 6)), rand_int8(rng, (c, 1, 3, 2), 0.8)
    bias = rng.integers(-2**15, 2**15, size=c)
    mult, shift = rng.integers(1, 2**31, size=c), rng.integers(1, 40, size=c)
    mult[0], shift[0] = 2**31 - 1, 63
    table = rng.integers(-128, 128, size=256).astype(np.int8) if lut else None
    got = depthwise_conv2d(x, wt, bias=bias, stride=stride, padding=pad, dilation=dil,
                           mult=mult, shift=shift, lut=table, acc_width=width)
    acc = py_depthwise(x, wt, stride, (pad, pad), dil, width)
    exp = np.empty(acc.shape, dtype=np.int64)
    for idx in np.ndindex(acc.shape):
        ch = idx[1]
        exp[idx] = py_requant(int(acc[idx]), int(bias[ch]), int(mult[ch]), int(shift[ch]), width)
    if lut:
        exp = table[exp + 128]
    assert got.dtype == np.int8 and np.array_equal(got, exp), show("depthwise requant", exp, got,
                                                                   seed)
    raw = depthwise_conv2d(x, wt, bias=bias, stride=stride, padding=pad, dilation=dil,
                           acc_width=width)
    exp_raw = np.vectorize(py_wrap)(acc + bias[None, :, None, None], width)
    assert np.array_equal(raw, exp_raw), show("depthwise + bias, no requant", exp_raw, raw, seed)


@pytest.mark.parametrize("value", [-128, 127])
def test_depthwise_extremes_and_wrap(value):
    """All -128 / 127 inputs and weights, 16 x 16 kernel = input size (one output): 256 products
    of 16384 (2**22) exceed a 20-bit accumulator, which wraps like the hardware."""
    x = np.full((1, 3, 16, 16), value, np.int8)
    w = np.full((3, 1, 16, 16), -128, np.int8)
    w[1] = 127
    w[2] = 0
    exact = [256 * value * -128, 256 * value * 127, 0]
    got = depthwise_conv2d(x, w)
    assert got.shape == (1, 3, 1, 1) and got[0, :, 0, 0].tolist() == exact
    got20 = depthwise_conv2d(x, w, acc_width=20)
    assert got20[0, :, 0, 0].tolist() == [py_wrap(v, 20) for v in exact]
    y = depthwise_conv2d(x, w, mult=1, shift=1, bias=[0, 0, 5])
    assert y[0, :, 0, 0].tolist() == [127 if value == -128 else -128,
                                       -128 if value == -128 else 127, 3]


def test_depthwise_one_by_one_is_a_channel_scale(rng, seed):
    x = rand_int8(rng, (2, 4, 5, 3))
    w = rand_int8(rng, (4, 1, 1, 1))
    got = depthwise_conv2d(x, w)
    exp = x.astype(np.int64) * w.reshape(1, 4, 1, 1)
    assert np.array_equal(got, exp), show("1x1 depthwise", exp, got, seed)
    # stride larger than the kernel skips rows and columns
    got = depthwise_conv2d(x, w, stride=(4, 2))
    assert np.array_equal(got, exp[:, :, ::4, ::2]), show("stride > kernel", exp, got, seed)


# ----------------------------------------------------------------------------------------------
# Bounds: at the bound and just past it


def test_depthwise_bounds():
    x, w = np.ones((1, 2, 4, 5), np.int8), np.ones((2, 1, 3, 3), np.int8)
    assert depthwise_conv2d(x, w, stride=1, padding=0, dilation=1).shape == (1, 2, 2, 3)
    for kw, msg in ((dict(stride=0), "stride must be an int >= 1"),
                    (dict(padding=-1), "padding must be an int >= 0"),
                    (dict(dilation=(1, 0)), "dilation must be an int >= 1"),
                    (dict(acc_width=0), "acc_width must be between 1 and 64, not 0"),
                    (dict(acc_width=65), "acc_width must be between 1 and 64, not 65")):
        with pytest.raises(ValueError, match=re.escape(msg)):
            depthwise_conv2d(x, w, **kw)
    assert depthwise_conv2d(x, w, acc_width=64).shape == (1, 2, 2, 3)
    assert depthwise_conv2d(x, w, acc_width=1)[0, 0, 0, 0] == py_wrap(9, 1)
    # dilated kernel height 3 * (2 - 1) + 1 = 4 = H fits exactly; dilation 4 does not
    w2 = np.ones((2, 1, 2, 3), np.int8)
    assert depthwise_conv2d(x, w2, dilation=(3, 1)).shape == (1, 2, 1, 3)
    with pytest.raises(ValueError, match=re.escape(
            "dilated kernel (5, 3) must fit the padded input (4, 5)")):
        depthwise_conv2d(x, w2, dilation=(4, 1))
    assert depthwise_conv2d(x, np.ones((2, 1, 5, 5), np.int8), padding=(1, 0)).shape == (
        1, 2, 2, 1)
    with pytest.raises(ValueError, match=re.escape(
            "dilated kernel (5, 6) must fit the padded input (6, 5)")):
        depthwise_conv2d(x, np.ones((2, 1, 5, 6), np.int8), padding=(1, 0))
    shape_msg = "x (N, C, H, W) and w (C, 1, KH, KW) must be 4-D with matching C"
    for bad_w in (np.ones((3, 1, 3, 3), np.int8), np.ones((2, 2, 3, 3), np.int8),
                  np.ones((2, 3, 3), np.int8)):
        with pytest.raises(ValueError, match=re.escape(shape_msg)):
            depthwise_conv2d(x, bad_w)
    assert depthwise_conv2d(x, w, bias=[1, 2]).shape == (1, 2, 2, 3)
    with pytest.raises(ValueError, match=re.escape(
            "bias must have 1 or 2 entries (output channels), not 3")):
        depthwise_conv2d(x, w, bias=[1, 2, 3])
    with pytest.raises(ValueError, match=re.escape(
            "mult must have 1 or 2 entries (output channels), not 3")):
        depthwise_conv2d(x, w, mult=[1, 2, 3], shift=1)
    with pytest.raises(ValueError, match="shift must be between 1 and 63, not 64"):
        depthwise_conv2d(x, w, mult=1, shift=[63, 64])
    with pytest.raises(ValueError, match="mult must be between 1 and 2147483647, not 2147483648"):
        depthwise_conv2d(x, w, mult=[2**31 - 1, 2**31], shift=1)
    with pytest.raises(ValueError, match=re.escape(
            "w values must be int8 (-128..127), not range [1, 128]")):
        depthwise_conv2d(x, np.where(np.arange(9).reshape(3, 3) == 4, 128, w.astype(np.int64)))
    with pytest.raises(ValueError, match=re.escape(
            "x values must be int8 (-128..127), not range [-129, -129]")):
        depthwise_conv2d(x.astype(np.int64) * -129, w)
    with pytest.raises(ValueError, match="need mult"):
        depthwise_conv2d(x, w, lut=np.zeros(256, np.int8))
