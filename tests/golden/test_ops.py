"""matmul / conv2d / im2col (docs/spec.md section 2) against independent references: Python
loops, float64 NumPy, scipy.signal.correlate and ONNX's reference evaluator."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from scipy.signal import correlate
from sparsemac.golden import conv2d, conv_output_shape, im2col, matmul, pack_weights

from .hyp import hsettings
from .util import rand_int8, show

# ----------------------------------------------------------------------------------------------
# References


def onnx_run(op: str, a, b, **attrs) -> np.ndarray:
    vi = [helper.make_tensor_value_info(n, t, None) for n, t in
          (("A", TensorProto.INT8), ("B", TensorProto.INT8), ("Y", TensorProto.INT32))]
    node = helper.make_node(op, ["A", "B"], ["Y"], **attrs)
    model = helper.make_model(helper.make_graph([node], "g", vi[:2], vi[2:]))
    return ReferenceEvaluator(model).run(None, {"A": a, "B": b})[0]


def py_wrap(v: int, width: int) -> int:
    return ((v + (1 << (width - 1))) % (1 << width)) - (1 << (width - 1))


def py_requant(acc, bias, mult, shift, width):
    s = py_wrap(acc + bias, width)
    return max(-128, min(127, (s * mult + (1 << (shift - 1))) >> shift))


def py_matmul(W, X, width):
    M, K = W.shape
    N = X.shape[1]
    return np.array([[py_wrap(sum(int(W[m, k]) * int(X[k, n]) for k in range(K)), width)
                      for n in range(N)] for m in range(M)], dtype=np.int64)


def py_conv(x, w, stride, pad, dil):
    """Direct loop of spec 2.2 (exact Python ints)."""
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dil
    n_, c_, h, wd = x.shape
    o_, _, kh, kw = w.shape
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n_, o_, oh, ow), dtype=np.int64)
    for n in range(n_):
        for o in range(o_):
            for i in range(oh):
                for j in range(ow):
                    acc = 0
                    for c in range(c_):
                        for r in range(kh):
                            for s in range(kw):
                                ih, iw = i * sh - ph + r * dh, j * sw - pw + s * dw
                                if 0 <= ih < h and 0 <= iw < wd:
                                    acc += int(x[n, c, ih, iw]) * int(w[o, c, r, s])
                    y[n, o, i, j] = acc
    return y


def scipy_conv(x, w, stride, pad, dil):
    """float64 scipy correlate on the padded input with a dilated kernel, then strided."""
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dil
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    o_, c_, kh, kw = w.shape
    wd = np.zeros((o_, c_, dh * (kh - 1) + 1, dw * (kw - 1) + 1))
    wd[:, :, ::dh, ::dw] = w
    out = []
    for n in range(x.shape[0]):
        out.append([correlate(xp[n], wd[o], mode="valid")[0, ::sh, ::sw] for o in range(o_)])
    return np.rint(np.array(out)).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# matmul


def test_matmul_hand():
    W = np.array([[1, -2], [-128, 127]])
    X = np.array([[3, -128], [4, 5]])
    assert matmul(W, X).tolist() == [[3 - 8, -128 - 10], [-384 + 508, 16384 + 635]]
    # bias and requant: (acc + b) * 1 >> 1 round half up
    assert matmul(W, X, bias=[0, 1], mult=1, shift=1).tolist() == [[-2, -69], [63, 127]]
    assert matmul(W, X, bias=[10, -10]).tolist() == [[5, -128], [114, 17009]]


@hsettings(120)
@given(m=st.integers(1, 9), k=st.integers(1, 40), n=st.integers(1, 9),
       density=st.sampled_from([0.0, 0.3, 1.0]), width=st.sampled_from([20, 24, 32, 48]),
       seed=st.integers(0, 2**32 - 1))
def test_matmul_against_python_loop(m, k, n, density, width, seed):
    rng = np.random.default_rng(seed)
    W = rand_int8(rng, (m, k), density, zero_rows=True)
    X = rand_int8(rng, (k, n), 0.7)
    exp = py_matmul(W, X, width)
    got = matmul(W, X, acc_width=width)
    assert got.dtype == np.int64 and np.array_equal(got, exp), show("matmul", exp, got, seed)
    if width == 32:
        onnx = onnx_run("MatMulInteger", W, X)
        assert np.array_equal(got, onnx), show("matmul vs ONNX", onnx, got, seed)
    if width >= 32:  # no wrap possible at these sizes: float64 is exact
        ref = (W.astype(np.float64) @ X.astype(np.float64)).astype(np.int64)
        assert np.array_equal(got, ref), show("matmul vs float64", ref, got, seed)


@hsettings(80)
@given(m=st.integers(1, 6), k=st.integers(1, 30), n=st.integers(1, 6),
       width=st.sampled_from([20, 32, 48]), lut=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_matmul_requant_against_python(m, k, n, width, lut, seed):
    rng = np.random.default_rng(seed)
    W, X = rand_int8(rng, (m, k), 0.6), rand_int8(rng, (k, n), 0.8)
    bias = rng.integers(-2**31, 2**31, size=m)
    mult = rng.integers(1, 2**31, size=m)
    shift = rng.integers(1, 64, size=m)
    mult[0], shift[0] = 2**31 - 1, int(rng.choice([1, 63]))
    table = rng.integers(-128, 128, size=256).astype(np.int8) if lut else None
    got = matmul(W, X, bias=bias, mult=mult, shift=shift, lut=table, acc_width=width)
    acc = py_matmul(W, X, width)
    exp = np.array([[py_requant(int(acc[i, j]), int(bias[i]), int(mult[i]), int(shift[i]), width)
                     for j in range(n)] for i in range(m)])
    if lut:
        exp = table[exp + 128]
    assert got.dtype == np.int8 and np.array_equal(got, exp), show("requant", exp, got, seed)


def test_matmul_acc_wrap_32_against_onnx():
    """K = 140000 products of (-128)(-128) overflow int32: both wrap identically."""
    W = np.full((2, 140000), -128, np.int8)
    W[1, ::2] = 127
    X = np.full((140000, 3), -128, np.int8)
    X[::3, 1] = 127
    got = matmul(W, X)
    onnx = onnx_run("MatMulInteger", W, X)
    exact = W.astype(np.int64) @ X.astype(np.int64)
    exp = np.vectorize(lambda v: py_wrap(int(v), 32))(exact)
    assert np.array_equal(got, exp) and np.array_equal(got, onnx), show("wrap", onnx, got)
    assert not np.array_equal(exact, got)  # really wrapped
    assert np.array_equal(matmul(W, X, acc_width=48), exact)


def test_matmul_packed_weights_input(rng, seed):
    W = rand_int8(rng, (7, 19), 0.3)
    X = rand_int8(rng, (19, 5))
    for fmt in ("dense", "bitmap", "block"):
        got = matmul(pack_weights(W, fmt), X)
        assert np.array_equal(got, matmul(W, X)), show(fmt, matmul(W, X), got, seed)


def test_matmul_errors():
    W, X = np.ones((2, 3), np.int8), np.ones((3, 4), np.int8)
    with pytest.raises(ValueError, match="matching K"):
        matmul(W, X.T)
    with pytest.raises(TypeError, match="X must be an integer array"):
        matmul(W, X.astype(float))
    with pytest.raises(ValueError, match=r"W values must be int8"):
        matmul(W.astype(np.int64) * 200, X)
    with pytest.raises(ValueError, match="need mult"):
        matmul(W, X, lut=np.zeros(256, np.int8))
    with pytest.raises(ValueError, match="mult needs shift"):
        matmul(W, X, mult=1)
    with pytest.raises(ValueError, match="bias must have 1 or 2 entries"):
        matmul(W, X, bias=[1, 2, 3])
    with pytest.raises(ValueError, match="shift must be between 1 and 63, not 0"):
        matmul(W, X, mult=1, shift=0)


# ----------------------------------------------------------------------------------------------
# conv2d and im2col

pairs = st.tuples(st.integers(1, 3), st.integers(1, 3))


@hsettings(120)
@given(n=st.integers(1, 2), c=st.integers(1, 3), o=st.integers(1, 3), h=st.integers(1, 8),
       w=st.integers(1, 8), kh=st.integers(1, 3), kw=st.integers(1, 4), stride=pairs,
       pad=st.tuples(st.integers(0, 2), st.integers(0, 2)), dil=pairs,
       seed=st.integers(0, 2**32 - 1))
def test_conv2d_against_references(n, c, o, h, w, kh, kw, stride, pad, dil, seed):
    if h + 2 * pad[0] < dil[0] * (kh - 1) + 1 or w + 2 * pad[1] < dil[1] * (kw - 1) + 1:
        with pytest.raises(ValueError, match="must fit the padded input"):
            conv2d(np.zeros((n, c, h, w), np.int8), np.zeros((o, c, kh, kw), np.int8),
                   stride=stride, padding=pad, dilation=dil)
        return
    rng = np.random.default_rng(seed)
    x, wt = rand_int8(rng, (n, c, h, w), 0.7), rand_int8(rng, (o, c, kh, kw), 0.6)
    got = conv2d(x, wt, stride=stride, padding=pad, dilation=dil)
    ref = scipy_conv(x, wt, stride, pad, dil)
    assert np.array_equal(got, ref), show("conv2d vs scipy", ref, got, seed)
    onnx = onnx_run("ConvInteger", x, wt, strides=list(stride), dilations=list(dil),
                    pads=[pad[0], pad[1], pad[0], pad[1]])
    assert np.array_equal(got, onnx), show("conv2d vs ONNX", onnx, got, seed)
    assert got.shape == (n, o, *conv_output_shape((h, w), (kh, kw), stride, pad, dil))


@hsettings(40)
@given(seed=st.integers(0, 2**32 - 1), stride=pairs, pad=st.integers(0, 2),
       dil=st.tuples(st.integers(1, 3), st.integers(1, 2)),
       width=st.sampled_from([20, 32]))
def test_conv2d_requant_against_loop(seed, stride, pad, dil, width):
    rng = np.random.default_rng(seed)
    x, wt = rand_int8(rng, (2, 3, 6, 5)), rand_int8(rng, (4, 3, 2, 3), 0.5)
    bias = rng.integers(-2**20, 2**20, size=4)
    mult, shift = rng.integers(1, 2**31, size=4), rng.integers(1, 40, size=4)
    table = rng.integers(-128, 128, size=256).astype(np.int8)
    got = conv2d(x, wt, bias=bias, stride=stride, padding=pad, dilation=dil, mult=mult,
                 shift=shift, lut=table, acc_width=width)
    acc = py_conv(x, wt, stride, (pad, pad), dil)
    exp = np.empty(acc.shape, dtype=np.int64)
    for idx in np.ndindex(acc.shape):
        oc = idx[1]
        exp[idx] = table[py_requant(py_wrap(int(acc[idx]), width), int(bias[oc]), int(mult[oc]),
                                    int(shift[oc]), width) + 128]
    assert np.array_equal(got, exp), show("conv2d requant", exp, got, seed)
    raw = conv2d(x, wt, stride=stride, padding=pad, dilation=dil, acc_width=width)
    assert np.array_equal(raw, np.vectorize(lambda v: py_wrap(int(v), width))(acc))


def test_conv2d_wraps_like_matmul():
    x = np.full((1, 64, 16, 16), -128, np.int8)
    w = np.full((1, 64, 3, 3), -128, np.int8)
    got = conv2d(x, w, acc_width=20)
    assert got[0, 0, 0, 0] == py_wrap(64 * 9 * 16384, 20)


@hsettings(60)
@given(n=st.integers(1, 2), c=st.integers(1, 2), h=st.integers(1, 6), w=st.integers(1, 6),
       kh=st.integers(1, 3), kw=st.integers(1, 3), stride=pairs,
       pad=st.tuples(st.integers(0, 2), st.integers(0, 2)), dil=pairs,
       seed=st.integers(0, 2**32 - 1))
def test_im2col_against_formula(n, c, h, w, kh, kw, stride, pad, dil, seed):
    if h + 2 * pad[0] < dil[0] * (kh - 1) + 1 or w + 2 * pad[1] < dil[1] * (kw - 1) + 1:
        return
    x = rand_int8(np.random.default_rng(seed), (n, c, h, w)) | 1  # no zeros: padding is visible
    cols, is_pad = im2col(x, kh, kw, stride, pad, dil)
    oh, ow = conv_output_shape((h, w), (kh, kw), stride, pad, dil)
    assert cols.shape == is_pad.shape == (c * kh * kw, n * oh * ow)
    for k in range(c * kh * kw):
        ch, r, s = k // (kh * kw), (k // kw) % kh, k % kw
        for p in range(n * oh * ow):
            b, i, j = p // (oh * ow), (p // ow) % oh, p % ow
            ih = i * stride[0] - pad[0] + r * dil[0]
            iw = j * stride[1] - pad[1] + s * dil[1]
            inside = 0 <= ih < h and 0 <= iw < w
            assert is_pad[k, p] == (not inside), (k, p, seed)
            assert cols[k, p] == (x[b, ch, ih, iw] if inside else 0), (k, p, seed)


def test_conv_output_shape_and_errors():
    assert conv_output_shape((224, 224), (7, 7), 2, 3) == (112, 112)
    assert conv_output_shape((5, 9), (3, 1), (2, 3), (1, 0), (2, 1)) == (2, 3)
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        conv_output_shape((5, 5), (3, 3), stride=0)
    with pytest.raises(ValueError, match="padding must be an int >= 0"):
        conv_output_shape((5, 5), (3, 3), padding=(1, 2, 3))
    with pytest.raises(ValueError, match="must fit"):
        conv_output_shape((2, 5), (3, 3))
    with pytest.raises(ValueError, match="matching C"):
        conv2d(np.zeros((1, 2, 4, 4), np.int8), np.zeros((1, 3, 1, 1), np.int8))
