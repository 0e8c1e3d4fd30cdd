"""Max / average / global average pooling (docs/spec.md section 2.3) against independent
references: direct Python loops with exact integer rounding, and ONNX's reference evaluator on
float64 inputs holding int8 values.

ONNX's AveragePool / GlobalAveragePool return the unrounded float mean, so the ONNX comparison
recovers the exact window sum (``round(mean * count)``, the count from the same pool run on ones)
and checks the golden sums and the spec's rounding of them (half up: ``-2.5 -> -2``; TFLite's
int8 kernel rounds half away from zero, ``-2.5 -> -3``; the two differ only at negative ties).
ONNX's own ``pads`` are used only where ``ph == pw`` (see `onnx_maxpool`); otherwise the input is
padded before the ONNX node.
"""

import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from sparsemac.golden import avg_divide, avgpool2d, global_avgpool, maxpool2d
from sparsemac.golden.pool import (
    AVG_SHIFT,
    avg_recip,
    avg_shift,
    avgpool2d_sums,
    pool_output_shape,
)

from .hyp import hsettings
from .util import rand_int8, show

# ----------------------------------------------------------------------------------------------
# References


def onnx_pool(op: str, x, **attrs) -> np.ndarray:
    """Run one ONNX pooling node on float64 (exact for int8 values and sums)."""
    vi = [helper.make_tensor_value_info(n, TensorProto.DOUBLE, None) for n in ("X", "Y")]
    node = helper.make_node(op, ["X"], ["Y"], **attrs)
    model = helper.make_model(helper.make_graph([node], "g", vi[:1], vi[1:]))
    return ReferenceEvaluator(model).run(None, {"X": np.asarray(x, dtype=np.float64)})[0]


def onnx_attrs(k, s, p):
    return {"kernel_shape": list(k), "strides": list(s), "pads": [p[0], p[1], p[0], p[1]]}


def onnx_maxpool(x, k, s, p):
    """ONNX MaxPool on the input padded with -inf beforehand (no ``pads``), and with ONNX's own
    ``pads`` when ``ph == pw``: onnx 1.23's reference evaluator reads a 4-entry ``pads`` as
    (top, bottom, left, right) in its stride-1 path instead of ONNX's (h_begin, w_begin, h_end,
    w_end), so asymmetric per-axis padding would test the evaluator's bug, not ours."""
    pre = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])),
                 constant_values=-np.inf)
    yield onnx_pool("MaxPool", pre, **onnx_attrs(k, s, (0, 0)))
    if p[0] == p[1]:
        yield onnx_pool("MaxPool", x, **onnx_attrs(k, s, p))


def onnx_avg_sums(x, k, s, p):
    """Exact window sums and ``{count_include_pad: counts}`` from ONNX AveragePool on inputs
    zero-padded beforehand (count_include_pad=1: the mean times the area is the sum)."""
    area = k[0] * k[1]
    pads = ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1]))
    attrs = onnx_attrs(k, s, (0, 0))
    sums = np.rint(onnx_pool("AveragePool", np.pad(x.astype(np.float64), pads),
                             count_include_pad=1, **attrs) * area).astype(np.int64)
    real = np.rint(onnx_pool("AveragePool", np.pad(np.ones(x.shape), pads), count_include_pad=1,
                             **attrs) * area).astype(np.int64)
    return sums, {False: real, True: np.full(real.shape, area)}


def py_windows(x, k, s, p):
    """Yield ``(index, real values, window area)`` of every output position (Python loops)."""
    n_, c_, h, w = x.shape
    oh = (h + 2 * p[0] - k[0]) // s[0] + 1
    ow = (w + 2 * p[1] - k[1]) // s[1] + 1
    for n in range(n_):
        for c in range(c_):
            for i in range(oh):
                for j in range(ow):
                    vals = [int(x[n, c, i * s[0] - p[0] + r, j * s[1] - p[1] + t])
                            for r in range(k[0]) for t in range(k[1])
                            if 0 <= i * s[0] - p[0] + r < h and 0 <= j * s[1] - p[1] + t < w]
                    yield (n, c, i, j), vals, k[0] * k[1]


def out_shape(x, k, s, p):
    return (*x.shape[:2], (x.shape[2] + 2 * p[0] - k[0]) // s[0] + 1,
            (x.shape[3] + 2 * p[1] - k[1]) // s[1] + 1)


def round_half_up(num: int, den: int) -> int:
    """Exact ``floor(num / den + 1/2)`` with fractions (independent of the golden rule)."""
    q = Fraction(num, den) + Fraction(1, 2)
    return q.numerator // q.denominator


def py_maxpool(x, k, s, p):
    y = np.zeros(out_shape(x, k, s, p), dtype=np.int64)
    for idx, vals, _ in py_windows(x, k, s, p):
        y[idx] = max(vals)  # real values only: padding never takes part
    return y


def py_avgpool(x, k, s, p, include):
    y = np.zeros(out_shape(x, k, s, p), dtype=np.int64)
    sums, counts = np.zeros_like(y), np.zeros_like(y)
    for idx, vals, area in py_windows(x, k, s, p):
        sums[idx], counts[idx] = sum(vals), area if include else len(vals)
        y[idx] = round_half_up(int(sums[idx]), int(counts[idx]))
    return y, sums, counts


# ----------------------------------------------------------------------------------------------
# The division rule, exhaustively


def test_avg_divide_exhaustive_every_window_count():
    """Every count 1..256 (16 x 16 windows) and every reachable sum ``-128c .. 127c``: the
    multiply-shift equals round half up, ``floor((2*sum + c) / (2*c))``."""
    for c in range(1, 257):
        sums = np.arange(-128 * c, 127 * c + 1, dtype=np.int64)
        exp = (2 * sums + c) // (2 * c)
        got = avg_divide(sums, c, max_count=256)
        assert np.array_equal(got, exp), show(f"avg_divide count={c}", exp, got)
        # the same with the per-window counts of count_include_pad=False (max_count larger)
        got = avg_divide(sums, np.full(sums.shape, c), max_count=max(c, 1))
        assert np.array_equal(got, exp), show(f"avg_divide count={c} (own max)", exp, got)


def test_avg_shift_25_is_the_smallest_fixed_shift():
    """S = 24 with R = ceil(2**24 / c) already fails inside a 16 x 16 window."""
    assert AVG_SHIFT == 25 and avg_shift(1) == 25 and avg_shift(256) == 25
    c, u = 195, 43387
    r24 = -(-(1 << 24) // c)
    assert ((u * r24 + (1 << 23)) >> 24) != (2 * u + c) // (2 * c)
    r25 = int(avg_recip(c, 25))
    assert ((u * r25 + (1 << 24)) >> 25) == (2 * u + c) // (2 * c)


def test_avg_shift_bound_holds_for_every_count():
    """The proof's condition ``510 c (c - 1) < 2**S`` for every count up to 65536, and the
    reciprocal is the ceiling (``0 <= R*c - 2**S < c``)."""
    for c in range(1, 65537, 1):
        s = avg_shift(c)
        assert 510 * c * (c - 1) < (1 << s) and (s == 25 or 510 * c * (c - 1) >= (1 << (s - 1)))
    cs = np.arange(1, 65537, dtype=np.int64)
    for s in (25, 41):
        r = avg_recip(cs, s)
        assert np.all(r * cs - (1 << s) >= 0) and np.all(r * cs - (1 << s) < cs)
    assert avg_shift(65536) == 41


@pytest.mark.parametrize("c", [257, 1000, 3136, 65536])
def test_avg_divide_exhaustive_large_counts(c):
    """Global pooling counts (56 x 56 = 3136, 256 x 256 = 65536): every reachable sum."""
    s_all = np.arange(-128 * c, 127 * c + 1, dtype=np.int64)
    for lo in range(0, s_all.size, 1 << 22):
        sums = s_all[lo:lo + (1 << 22)]
        exp = (2 * sums + c) // (2 * c)
        got = avg_divide(sums, c, max_count=c)
        assert np.array_equal(got, exp), show(f"avg_divide count={c}", exp, got)


@pytest.mark.parametrize("s, c, exp", [(-5, 2, -2), (5, 2, 3), (-3, 2, -1), (3, 2, 2),
                                       (-1, 2, 0), (1, 2, 1), (-2, 4, 0), (-6, 4, -1),
                                       (2, 3, 1), (-2, 3, -1), (1, 3, 0), (-1, 3, 0),
                                       (-128 * 256, 256, -128), (127 * 256, 256, 127),
                                       (-32768, 65536, 0), (32768, 65536, 1),
                                       (-32769, 65536, -1)])
def test_avg_divide_ties_go_up(s, c, exp):
    """Pinned: ties toward +inf, also for negative sums (TFLite would give -3 for -5 / 2)."""
    assert int(avg_divide([s], c, max_count=max(c, 256))[0]) == exp


def test_avg_divide_bounds():
    assert int(avg_divide([127], 1, max_count=1)[0]) == 127
    assert int(avg_divide([-128], 1, max_count=1)[0]) == -128
    with pytest.raises(ValueError, match=re.escape(
            "sums must be between -128 * count and 127 * count, not 128 for count 1")):
        avg_divide([128], 1, max_count=1)
    with pytest.raises(ValueError, match=re.escape(
            "sums must be between -128 * count and 127 * count, not -257 for count 2")):
        avg_divide([-257], 2, max_count=2)
    assert int(avg_divide([0], 4, max_count=4)[0]) == 0
    with pytest.raises(ValueError, match=re.escape(
            "counts must be between 1 and 4 (max_count), not 5")):
        avg_divide([0], 5, max_count=4)
    with pytest.raises(ValueError, match=re.escape(
            "counts must be between 1 and 4 (max_count), not 0")):
        avg_divide([0], 0, max_count=4)
    assert avg_shift(65536) == 41
    with pytest.raises(ValueError, match=re.escape(
            "max_count must be between 1 and 65536, not 65537")):
        avg_shift(65537)
    with pytest.raises(ValueError, match=re.escape("max_count must be between 1 and 65536, not 0")):
        avg_shift(0)


# ----------------------------------------------------------------------------------------------
# Pools against the references

geometry = st.tuples(st.integers(1, 4), st.integers(1, 4)).flatmap(
    lambda k: st.tuples(st.just(k), st.tuples(st.integers(1, 5), st.integers(1, 5)),
                        st.tuples(st.integers(0, k[0] - 1), st.integers(0, k[1] - 1))))


@hsettings(100)
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       geo=geometry, seed=st.integers(0, 2**32 - 1))
def test_pools_against_references(n, c, h, w, geo, seed):
    k, s, p = geo
    x = rand_int8(np.random.default_rng(seed), (n, c, h, w), 0.8)
    if h + 2 * p[0] < k[0] or w + 2 * p[1] < k[1]:
        for f in (lambda: maxpool2d(x, k, s, p),
                  lambda: avgpool2d(x, k, s, p, count_include_pad=True)):
            with pytest.raises(ValueError, match="must fit the padded input"):
                f()
        return
    got = maxpool2d(x, k, s, p)
    exp = py_maxpool(x, k, s, p)
    assert got.dtype == np.int8 and np.array_equal(got, exp), show("maxpool", exp, got, seed)
    for onnx in onnx_maxpool(x, k, s, p):
        assert np.array_equal(got, onnx), show("maxpool vs ONNX", onnx, got, seed)
    o_sums, o_counts = onnx_avg_sums(x, k, s, p)
    for include in (False, True):
        exp, exp_sums, exp_counts = py_avgpool(x, k, s, p, include)
        got = avgpool2d(x, k, s, p, count_include_pad=include)
        assert got.dtype == np.int8 and np.array_equal(got, exp), show(
            f"avgpool include={include}", exp, got, seed)
        sums, counts = avgpool2d_sums(x, k, s, p, count_include_pad=include)
        assert np.array_equal(sums, exp_sums) and np.array_equal(counts, exp_counts), (seed,)
        assert np.array_equal(sums, o_sums), show("avgpool sums vs ONNX", o_sums, sums, seed)
        assert np.array_equal(counts, o_counts[include]), (seed, include)
        if p[0] == p[1]:  # ONNX's own padding (see onnx_maxpool) and its unrounded mean
            mean = onnx_pool("AveragePool", x, count_include_pad=int(include),
                             **onnx_attrs(k, s, p))
            assert np.array_equal(np.rint(mean * counts), sums), (seed, include)
            assert np.all(np.abs(got - mean) <= 0.5 + 1e-9), (seed, include)
            ties = np.isclose(np.abs(mean - np.floor(mean)), 0.5)
            assert np.array_equal(got[ties], np.rint(mean[ties] + 0.5)), (seed, include)


@pytest.mark.parametrize("value", [-128, 127])
@pytest.mark.parametrize("k, s, p", [((3, 3), (1, 1), (2, 2)), ((16, 16), (16, 16), (15, 15)),
                                     ((2, 5), (3, 1), (1, 4)), ((1, 1), (1, 1), (0, 0))])
def test_constant_inputs(value, k, s, p):
    """All -128 / all 127: max and exclude-pad average give the value everywhere; the
    include-pad average of border windows mixes in zeros (checked against the loop)."""
    x = np.full((1, 2, 16, 17), value, np.int8)
    assert np.all(maxpool2d(x, k, s, p) == value)
    assert np.all(avgpool2d(x, k, s, p, count_include_pad=False) == value)
    exp, _, _ = py_avgpool(x, k, s, p, True)
    got = avgpool2d(x, k, s, p, count_include_pad=True)
    assert np.array_equal(got, exp), show("include-pad constant", exp, got)


def test_kernel_equals_input_and_largest_window(rng, seed):
    """Kernel = input size (16 x 16, one output): the global max / average."""
    x = rand_int8(rng, (2, 3, 16, 16))
    assert maxpool2d(x, 16, 1).shape == (2, 3, 1, 1)
    assert np.array_equal(maxpool2d(x, 16, 1)[..., 0, 0], x.max(axis=(2, 3))), seed
    exp = np.array([[round_half_up(int(x[n, c].astype(np.int64).sum()), 256) for c in range(3)]
                    for n in range(2)])
    for include in (False, True):
        got = avgpool2d(x, (16, 16), 5, count_include_pad=include)[..., 0, 0]
        assert np.array_equal(got, exp), show("16x16 window", exp, got, seed)
    assert np.array_equal(global_avgpool(x)[..., 0, 0], exp), seed


def test_stride_larger_than_kernel_and_one_by_one(rng, seed):
    x = rand_int8(rng, (1, 2, 11, 9))
    assert np.array_equal(maxpool2d(x, 1, 1), x) and np.array_equal(
        avgpool2d(x, 1, 1, count_include_pad=True), x), seed
    got = maxpool2d(x, (2, 1), (5, 4))  # rows 0-1, 5-6 (skips 2-4, 7-8, and row 10)
    exp = np.maximum(x[:, :, [0, 5]], x[:, :, [1, 6]])[:, :, :, ::4]
    assert np.array_equal(got, exp), show("stride > kernel", exp, got, seed)
    assert np.array_equal(avgpool2d(x, 1, (16, 3), count_include_pad=False), x[:, :, ::16, ::3])


def test_max_padding_never_chosen():
    """padding = kernel - 1: the corner window holds one real value, which -128 padding never
    beats (equal at -128), and the exclude-pad average divides by 1."""
    x = np.array([[[[-128, -7], [-100, -128]]]], np.int8)
    got = maxpool2d(x, 3, 1, 2)
    assert got[0, 0, 0, 0] == -128 and got[0, 0, 0, 3] == -7 and got[0, 0, 3, 0] == -100
    assert np.array_equal(got, py_maxpool(x, (3, 3), (1, 1), (2, 2)))
    avg = avgpool2d(x, 3, 1, 2, count_include_pad=False)
    assert avg[0, 0, 0, 3] == -7 and avg[0, 0, 3, 0] == -100
    inc = avgpool2d(x, 3, 1, 2, count_include_pad=True)
    assert inc[0, 0, 0, 3] == round_half_up(-7, 9) == -1


def test_global_avgpool_against_references(rng, seed):
    for shape in ((2, 3, 7, 7), (1, 4, 1, 1), (1, 2, 5, 13), (1, 1, 56, 56)):
        x = rand_int8(rng, shape)
        got = global_avgpool(x)
        hw = shape[2] * shape[3]
        exp = np.array([[round_half_up(int(x[n, c].astype(np.int64).sum()), hw)
                         for c in range(shape[1])] for n in range(shape[0])])
        assert got.shape == (*shape[:2], 1, 1) and got.dtype == np.int8
        assert np.array_equal(got[..., 0, 0], exp), show(f"global {shape}", exp, got, seed)
        mean = onnx_pool("GlobalAveragePool", x)
        o_sums = np.rint(mean * hw).astype(np.int64)[..., 0, 0]
        assert np.array_equal(o_sums, x.astype(np.int64).sum(axis=(2, 3))), seed
        assert np.array_equal(exp, (2 * o_sums + hw) // (2 * hw)), seed


def test_global_avgpool_count_bound():
    """H * W = 65536 (the bound) with exact ties at +-0.5; 65537 refused."""
    x = np.zeros((1, 4, 256, 256), np.int8)
    x[0, 0] = 127
    x[0, 1] = -128
    x[0, 2, :128] = 1    # sum 32768: 0.5 -> 1
    x[0, 3, :128] = -1   # sum -32768: -0.5 -> 0
    assert global_avgpool(x)[:, :, 0, 0].tolist() == [[127, -128, 1, 0]]
    with pytest.raises(ValueError, match=re.escape("H * W must be between 1 and 65536, not 65537")):
        global_avgpool(np.zeros((1, 1, 1, 65537), np.int8))
    assert global_avgpool(np.full((1, 1, 1, 1), -3, np.int8))[0, 0, 0, 0] == -3
    with pytest.raises(ValueError, match=re.escape("H * W must be between 1 and 65536, not 0")):
        global_avgpool(np.zeros((1, 1, 0, 3), np.int8))


# ----------------------------------------------------------------------------------------------
# Parameter bounds: at the bound and just past it


def test_pool_bounds():
    x = np.zeros((1, 1, 20, 20), np.int8)
    ok = [(16, 1, 0), (1, 1, 0), (3, 16, 0), (3, 1, 2), ((16, 2), (1, 16), (15, 1))]
    for k, s, p in ok:
        for f in (maxpool2d, lambda *a: avgpool2d(*a, count_include_pad=False)):
            assert f(x, k, s, p).shape == (1, 1, *pool_output_shape((20, 20), k, s, p))
    bad = [(17, 1, 0, "kernel must be between 1 and 16, not 17"),
           (0, 1, 0, "kernel must be between 1 and 16, not 0"),
           ((3, 17), 1, 0, "kernel must be between 1 and 16, not 17"),
           (3, 17, 0, "stride must be between 1 and 16, not 17"),
           (3, 0, 0, "stride must be between 1 and 16, not 0"),
           (3, 1, 3, "padding must be between 0 and 2, not 3"),
           (3, 1, -1, "padding must be between 0 and 2, not -1"),
           ((3, 1), 1, (1, 1), "padding must be between 0 and 0, not 1"),
           ((1, 2, 3), 1, 0, "kernel must be an int or a pair of ints, not (1, 2, 3)")]
    for k, s, p, msg in bad:
        for f in (maxpool2d, lambda *a: avgpool2d(*a, count_include_pad=True)):
            with pytest.raises(ValueError, match=re.escape(msg)):
                f(x, k, s, p)
    with pytest.raises(TypeError, match=re.escape("stride must be an integer, not 1.5")):
        maxpool2d(x, 2, 1.5)


def test_pool_fit_and_input_bounds():
    x = np.zeros((1, 1, 2, 5), np.int8)
    assert maxpool2d(x, (4, 3), 1, (1, 0)).shape == (1, 1, 1, 3)  # 2 + 2*1 == 4: fits exactly
    with pytest.raises(ValueError, match=re.escape(
            "kernel (5, 3) must fit the padded input (4, 5)")):
        maxpool2d(x, (5, 3), 1, (1, 0))
    with pytest.raises(ValueError, match=re.escape(
            "kernel (3, 6) must fit the padded input (2, 5)")):
        avgpool2d(x, (3, 6), 1, count_include_pad=False)
    assert maxpool2d(np.array([[[[127, -128]]]]), (1, 2), 1)[0, 0, 0, 0] == 127
    with pytest.raises(ValueError, match=re.escape("x values must be int8 (-128..127), not "
                                                   "range [-128, 128]")):
        maxpool2d(np.array([[[[128, -128]]]]), 1, 1)
    with pytest.raises(ValueError, match=re.escape("x values must be int8 (-128..127), not "
                                                   "range [-129, 0]")):
        avgpool2d(np.array([[[[-129, 0]]]]), 1, 1, count_include_pad=True)
    with pytest.raises(TypeError, match="x must be an integer array"):
        maxpool2d(np.zeros((1, 1, 2, 2)), 1, 1)
    with pytest.raises(ValueError, match=re.escape("x must be 4-D (N, C, H, W), not shape (2, 2)")):
        maxpool2d(np.zeros((2, 2), np.int8), 1, 1)
    with pytest.raises(TypeError, match="count_include_pad must be a bool, not 1"):
        avgpool2d(x, 1, 1, count_include_pad=1)


def spec_counts(hw, k, s, p):
    """The count of section 2.3's closed form: ``(min(ih0 + KH, H) - max(ih0, 0)) * (...)``
    with ``ih0 = oh*sh - ph`` (and the same for the columns)."""
    (h, w), (oh, ow) = hw, pool_output_shape(hw, k, s, p)
    ih0 = np.arange(oh) * s[0] - p[0]
    iw0 = np.arange(ow) * s[1] - p[1]
    ch = np.minimum(ih0 + k[0], h) - np.maximum(ih0, 0)
    cw = np.minimum(iw0 + k[1], w) - np.maximum(iw0, 0)
    return ch[:, None] * cw[None, :]


@pytest.mark.parametrize("hw, k, s, p", [
    ((15, 15), (15, 15), (1, 1), (14, 14)),     # every count a*b (a, b 1..15) of 15x15
    ((15, 16), (15, 15), (4, 3), (14, 7)),      # stride > 1 over the padded edges
    ((16, 16), (15, 15), (15, 15), (14, 14)),   # stride 15: corners of count 1, then 2 x 14
    ((7, 5), (3, 2), (2, 3), (2, 1)),           # stride past the kernel
    ((4, 9), (4, 4), (1, 2), (3, 0)),           # padding on one axis
    ((1, 1), (15, 15), (1, 1), (14, 14)),       # a 1x1 input: every window holds it alone
    ((2, 2), (2, 2), (2, 2), (1, 1)),           # the hardware bench's 2x2 / 2 pad 1
])
def test_real_count_rule_of_the_spec(hw, k, s, p, rng, seed):
    """``count_include_pad`` false: the spec's closed-form count per output position (the
    hardware's divisor) equals golden's `avgpool2d_sums` counts and ONNX's (AveragePool over
    ones), corners included (``(KH - ph) * (KW - pw)``), for kernels up to 15x15, strides > 1
    and paddings up to ``K - 1``; the averages equal the direct loops (exact fractions) and,
    where ONNX pads itself, its float64 mean rounded half up."""
    x = rand_int8(rng, (1, 2, *hw))
    want = spec_counts(hw, k, s, p)
    assert want.min() >= 1, (hw, k, s, p)
    assert want[0, 0] == (min(k[0] - p[0], hw[0])) * (min(k[1] - p[1], hw[1]))
    sums, counts = avgpool2d_sums(x, k, s, p, count_include_pad=False)
    assert np.array_equal(counts[0, 0], want), show("counts vs spec", want, counts[0, 0], seed)
    o_sums, o_counts = onnx_avg_sums(x, k, s, p)
    assert np.array_equal(o_counts[False][0, 0], want), seed
    assert np.array_equal(o_sums, sums), seed
    exp, _, exp_counts = py_avgpool(x, k, s, p, False)
    assert np.array_equal(exp_counts[0, 0], want), seed
    got = avgpool2d(x, k, s, p, count_include_pad=False)
    assert np.array_equal(got, exp), show(f"avgpool real count {k} {s} {p}", exp, got, seed)
    if p[0] == p[1]:
        mean = onnx_pool("AveragePool", x, count_include_pad=0, **onnx_attrs(k, s, p))
        assert np.array_equal(got, np.floor(mean + 0.5)), seed
    if hw == k == (15, 15) and s == (1, 1):     # the hardware table's ends: 1 and 225
        want_set = {a * b for a in range(1, 16) for b in range(1, 16)}
        assert set(want.ravel().tolist()) == want_set and want.max() == 225
