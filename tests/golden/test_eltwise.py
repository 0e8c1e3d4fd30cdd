"""Quantized residual add (docs/spec.md section 2.4) against independent references.

Exact: a Python `Fraction` model (the sum of the two rationals ``a*mult_a/2**shift_a`` and
``b*mult_b/2**shift_b``, then round half up) and a float64 model of the same formula (exact while
``|shift_a - shift_b| <= 14``: both terms and their sum then fit 53 bits).  Within 1 LSB: the
real-valued add in float64 (``round_half_even(a*s_a/s_y + b*s_b/s_y)``) and ONNX's reference
evaluator running the QDQ form of QLinearAdd (DequantizeLinear x2, Add, QuantizeLinear, float32,
ties to even); the difference is the 31-bit scale ratios and the tie rule.
"""

import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from sparsemac.golden import add_params, add_requant
from sparsemac.golden.eltwise import MAX_SHIFT_DIFF

from .hyp import hsettings
from .util import rand_int8, show

# ----------------------------------------------------------------------------------------------
# References


def py_add(a, b, ma, sa, mb, sb, bias=0):
    """Element by element with fractions: round half up of the exact rational sum."""
    out = np.empty(np.shape(a), dtype=np.int64)
    for i in np.ndindex(out.shape):
        q = Fraction(int(a[i]) * ma, 2**sa) + Fraction(int(b[i]) * mb, 2**sb) + Fraction(1, 2)
        out[i] = min(127, max(-128, q.numerator // q.denominator + bias))
    return out


def f64_add(a, b, ma, sa, mb, sb, bias=0):
    """float64 model of the integer formula; exact for |sa - sb| <= 14."""
    v = (np.ldexp(a.astype(np.float64) * ma, -sa) + np.ldexp(b.astype(np.float64) * mb, -sb))
    fl = np.floor(v)
    y = fl + (v >= fl + 0.5)  # floor(v + 1/2) without rounding v + 1/2
    return np.clip(y + bias, -128, 127).astype(np.int64)


def ideal_add(a, b, scale_a, scale_b, scale_y):
    v = a * (scale_a / scale_y) + b.astype(np.float64) * (scale_b / scale_y)
    return np.clip(np.rint(v), -128, 127).astype(np.int64)


def onnx_qdq_add(a, b, scale_a, scale_b, scale_y):
    """QLinearAdd as ONNX QDQ nodes (float32 scales, zero points 0, saturating int8 output)."""
    inits = [helper.make_tensor(n, TensorProto.FLOAT, [], [v])
             for n, v in (("sa", scale_a), ("sb", scale_b), ("sy", scale_y))]
    inits.append(helper.make_tensor("zp", TensorProto.INT8, [], [0]))
    nodes = [helper.make_node("DequantizeLinear", ["A", "sa", "zp"], ["FA"]),
             helper.make_node("DequantizeLinear", ["B", "sb", "zp"], ["FB"]),
             helper.make_node("Add", ["FA", "FB"], ["S"]),
             helper.make_node("QuantizeLinear", ["S", "sy", "zp"], ["Y"])]
    vi = [helper.make_tensor_value_info(n, TensorProto.INT8, None) for n in ("A", "B", "Y")]
    model = helper.make_model(helper.make_graph(nodes, "g", vi[:2], vi[2:], inits))
    return ReferenceEvaluator(model).run(None, {"A": a, "B": b})[0].astype(np.int64)


# ----------------------------------------------------------------------------------------------
# Exact agreement


@hsettings(150)
@given(shape=st.sampled_from([(7,), (2, 3, 4), (1, 4, 3, 5)]),
       ma=st.integers(1, 2**31 - 1), mb=st.integers(1, 2**31 - 1), s=st.integers(1, 63),
       diff=st.integers(-MAX_SHIFT_DIFF, MAX_SHIFT_DIFF), bias=st.integers(-300, 300),
       lut=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_add_requant_exact(shape, ma, mb, s, diff, bias, lut, seed):
    sa, sb = s, s + diff
    if not 1 <= sb <= 63:
        sb = s - diff if 1 <= s - diff <= 63 else s
    rng = np.random.default_rng(seed)
    a, b = rand_int8(rng, shape, 0.8), rand_int8(rng, shape, 0.8)
    table = rng.integers(-128, 128, size=256).astype(np.int8) if lut else None
    got = add_requant(a, b, mult_a=ma, shift_a=sa, mult_b=mb, shift_b=sb, bias=bias, lut=table)
    exp = py_add(a, b, ma, sa, mb, sb, bias)
    if lut:
        exp = table[exp + 128]
    assert got.dtype == np.int8 and got.shape == a.shape
    assert np.array_equal(got, exp), show(f"add ma={ma} sa={sa} mb={mb} sb={sb} bias={bias}",
                                          exp, got, seed)
    if abs(sa - sb) <= 14 and not lut:
        f64 = f64_add(a, b, ma, sa, mb, sb, bias)
        assert np.array_equal(got, f64), show("add vs float64 model", f64, got, seed)


@pytest.mark.parametrize("a, b, exp", [(1, 0, 1), (-1, 0, 0), (-3, 0, -1), (3, 0, 2),
                                       (1, 1, 1), (-1, -2, -1), (-2, -3, -2), (5, 0, 3),
                                       (-5, 0, -2), (127, 127, 127), (-128, -128, -128)])
def test_ties_go_up(a, b, exp):
    """mult 1, shift 1: ``(a + b) / 2`` rounded half up (``-2.5 -> -2``), as section 1."""
    got = add_requant(np.array([a]), np.array([b]), mult_a=1, shift_a=1, mult_b=1, shift_b=1)
    assert int(got[0]) == exp


def test_saturation_both_ends():
    p = add_params(1.0, 1.0, 1.0)
    assert (p["mult_a"], p["shift_a"]) == (2**30, 30)
    a = np.array([127, -128, 100, -100, 0, 0, 64, -64], np.int8)
    b = np.array([127, -128, 28, -28, 0, 0, 63, -65], np.int8)
    assert add_requant(a, b, **p).tolist() == [127, -128, 127, -128, 0, 0, 127, -128]
    assert add_requant(a, b, **p, bias=2**31 - 1).tolist() == [127] * 8
    assert add_requant(a, b, **p, bias=-2**31).tolist() == [-128] * 8
    assert add_requant(a[4:6], b[4:6], **p, bias=127).tolist() == [127, 127]
    assert add_requant(a[4:6], b[4:6], **p, bias=-129).tolist() == [-128, -128]


@pytest.mark.parametrize("sa, sb", [(25, 1), (1, 25), (63, 39), (39, 63), (63, 63), (1, 1)])
@pytest.mark.parametrize("va, vb", [(-128, -128), (127, 127), (-128, 127), (127, -128)])
def test_extreme_alignment_fits(sa, sb, va, vb):
    """Largest mults at the largest shift difference: the aligned sum stays inside int64."""
    a, b = np.array([va, 0, va], np.int8), np.array([vb, vb, 0], np.int8)
    m = 2**31 - 1
    got = add_requant(a, b, mult_a=m, shift_a=sa, mult_b=m, shift_b=sb)
    exp = py_add(a, b, m, sa, m, sb)
    assert np.array_equal(got, exp), show(f"extreme sa={sa} sb={sb}", exp, got)


# ----------------------------------------------------------------------------------------------
# Against the real-valued add (within 1 LSB)


@hsettings(80)
@given(la=st.floats(-8, 8), lb=st.floats(-8, 8), ly=st.floats(-12, -2),
       shape=st.sampled_from([(50,), (2, 3, 4, 5)]), seed=st.integers(0, 2**32 - 1))
def test_add_params_within_one_lsb_of_float_and_onnx(la, lb, ly, shape, seed):
    """Scale ratios 2**-10 .. 2**10: one LSB at most against float64 and ONNX QDQ, exact
    against the Fraction model of the integer parameters."""
    sa, sb, sy = (float(np.float32(2.0**v)) for v in (la + ly, lb + ly, ly))
    rng = np.random.default_rng(seed)
    a, b = rand_int8(rng, shape), rand_int8(rng, shape)
    p = add_params(sa, sb, sy)
    got = add_requant(a, b, **p).astype(np.int64)
    for name, ref in (("float64", ideal_add(a, b, sa, sb, sy)),
                      ("ONNX QDQ", onnx_qdq_add(a, b, sa, sb, sy))):
        assert np.abs(got - ref).max() <= 1, show(f"add vs {name} {p}", ref, got, seed)
    exp = py_add(a, b, p["mult_a"], p["shift_a"], p["mult_b"], p["shift_b"])
    assert np.array_equal(got, exp), show("add vs Fraction", exp, got, seed)


@hsettings(60)
@given(la=st.floats(-60, 22.9), lb=st.floats(-60, 22.9), seed=st.integers(0, 2**32 - 1))
def test_add_params_wide_ratios(la, lb, seed):
    """Ratios 2**-60 .. 2**22.9, shift differences far beyond 24 (reduced by add_params): still
    within one LSB of the real-valued add (below 2**23 the two 31-bit ratios err by less than
    one output LSB together, ``128 * (r_a + r_b) * 2**-31 < 1``)."""
    sa, sb = 2.0**la, 2.0**lb
    p = add_params(sa, sb, 1.0)
    assert abs(p["shift_a"] - p["shift_b"]) <= MAX_SHIFT_DIFF
    rng = np.random.default_rng(seed)
    a, b = rand_int8(rng, (64,)), rand_int8(rng, (64,))
    got = add_requant(a, b, **p).astype(np.int64)
    ref = ideal_add(a, b, sa, sb, 1.0)
    assert np.abs(got - ref).max() <= 1, show(f"wide ratios {p}", ref, got, seed)


# ----------------------------------------------------------------------------------------------
# add_params at its limits


def test_add_params_fixed_point_rule():
    p = add_params(0.1, 0.05, 0.12)
    for m, s, r in ((p["mult_a"], p["shift_a"], 0.1 / 0.12), (p["mult_b"], p["shift_b"],
                                                                0.05 / 0.12)):
        assert 2**30 <= m < 2**31 and abs(m / 2**s - r) <= 2.0 ** -(s + 1)
    # at the ratio bounds: 2**29 (shift 1), just below 2**30 (clamped mult), 2**-33 (shift 63)
    assert add_params(2.0**29, 2.0**6, 1.0) == {"mult_a": 2**30, "shift_a": 1,
                                                "mult_b": 2**30, "shift_b": 24}
    assert add_params(2.0**-33, 2.0**-10, 1.0) == {"mult_a": 2**30, "shift_a": 63,
                                                   "mult_b": 2**30, "shift_b": 40}
    p = add_params(2.0**30 * (1 - 2.0**-40), 1.0, 1.0)
    assert (p["mult_a"], p["shift_a"]) == (2**31 - 1, 1)
    with pytest.raises(ValueError, match=re.escape(
            "scale_a / scale_y must be below 2**30, not 1073741824.0")):
        add_params(2.0**30, 1.0, 1.0)
    with pytest.raises(ValueError, match=re.escape("scale_b / scale_y must be below 2**30, not "
                                                   "inf")):
        add_params(1e-300, 1e300, 1e-300)


def test_add_params_shift_difference():
    """Difference 24 kept; 25 and more: the smaller ratio's mult is rounded to fewer bits."""
    assert add_params(1.0, 2.0**-24, 1.0) == {"mult_a": 2**30, "shift_a": 30,
                                              "mult_b": 2**30, "shift_b": 54}
    assert add_params(2.0**-24, 1.0, 1.0) == {"mult_a": 2**30, "shift_a": 54,
                                              "mult_b": 2**30, "shift_b": 30}
    assert add_params(1.0, 2.0**-25, 1.0) == {"mult_a": 2**30, "shift_a": 30,
                                              "mult_b": 2**29, "shift_b": 54}
    # dropping 7 bits of 2**30 + 64 is a tie: up; of 2**30 + 63: down
    rb = (2**30 + 64) / 2.0**61
    p = add_params(1.0, rb, 1.0)
    assert (p["mult_b"], p["shift_b"]) == (2**23 + 1, 54)
    p = add_params(rb, 1.0, 1.0)
    assert (p["mult_a"], p["shift_a"]) == (2**23 + 1, 54)
    p = add_params(1.0, (2**30 + 63) / 2.0**61, 1.0)
    assert (p["mult_b"], p["shift_b"]) == (2**23, 54)
    # so far below that the mult would round to 0: kept at 1
    assert add_params(2.0**20, 2.0**-40, 1.0) == {"mult_a": 2**30, "shift_a": 10,
                                                  "mult_b": 1, "shift_b": 34}
    # below 2**-33: shift 63 and fewer mult bits; an underflowed ratio gives (1, 63)
    assert add_params(2.0**-34, 2.0**-70, 1.0) == {"mult_a": 2**29, "shift_a": 63,
                                                   "mult_b": 1, "shift_b": 63}
    assert add_params(1e-300, 1e-300, 1e300)["mult_a"] == 1


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), True, "1"])
def test_add_params_bad_scales(bad):
    for i, name in enumerate(("scale_a", "scale_b", "scale_y")):
        args = [1.0, 1.0, 1.0]
        args[i] = bad
        with pytest.raises(ValueError, match=re.escape(
                f"{name} must be a positive finite number, not {bad!r}")):
            add_params(*args)


# ----------------------------------------------------------------------------------------------
# add_requant bounds: at the bound and just past it


def test_add_requant_bounds():
    a, b = np.array([3, -4], np.int8), np.array([5, 6], np.int8)
    ok = dict(mult_a=1, shift_a=1, mult_b=1, shift_b=1)

    def run(**kw):
        return add_requant(a, b, **{**ok, **kw})

    for kw in (dict(mult_a=2**31 - 1), dict(mult_b=2**31 - 1), dict(shift_a=63, shift_b=63),
               dict(shift_a=25, shift_b=1), dict(shift_a=1, shift_b=25), dict(bias=2**31 - 1),
               dict(bias=-2**31), dict(shift_a=63, shift_b=39)):
        assert np.array_equal(run(**kw), py_add(a, b, *(
            {**ok, **kw}[k] for k in ("mult_a", "shift_a", "mult_b", "shift_b")),
            kw.get("bias", 0))), kw
    bad = [(dict(mult_a=2**31), "mult_a must be between 1 and 2147483647, not 2147483648"),
           (dict(mult_a=0), "mult_a must be between 1 and 2147483647, not 0"),
           (dict(mult_b=2**31), "mult_b must be between 1 and 2147483647, not 2147483648"),
           (dict(mult_b=0), "mult_b must be between 1 and 2147483647, not 0"),
           (dict(shift_a=0), "shift_a must be between 1 and 63, not 0"),
           (dict(shift_a=64, shift_b=63), "shift_a must be between 1 and 63, not 64"),
           (dict(shift_b=0), "shift_b must be between 1 and 63, not 0"),
           (dict(shift_a=63, shift_b=64), "shift_b must be between 1 and 63, not 64"),
           (dict(shift_a=26, shift_b=1), "shift_a - shift_b must be between -24 and 24, not 25"),
           (dict(shift_a=1, shift_b=26), "shift_a - shift_b must be between -24 and 24, not -25"),
           (dict(bias=2**31), "bias must be between -2147483648 and 2147483647, not 2147483648"),
           (dict(bias=-2**31 - 1),
            "bias must be between -2147483648 and 2147483647, not -2147483649")]
    for kw, msg in bad:
        with pytest.raises(ValueError, match=re.escape(msg)):
            run(**kw)
    with pytest.raises(TypeError, match=re.escape("mult_a must be an integer, not 1.5")):
        run(mult_a=1.5)
    with pytest.raises(ValueError, match=re.escape(
            "a and b must have the same shape, not (2,) and (1, 2)")):
        add_requant(a, b[None], **ok)
    with pytest.raises(ValueError, match=re.escape(
            "b values must be int8 (-128..127), not range [-128, 128]")):
        add_requant(a, np.array([128, -128]), **ok)
    assert add_requant(np.array([127]), np.array([-128]), **ok).tolist() == [0]
    with pytest.raises(ValueError, match=re.escape(
            "a values must be int8 (-128..127), not range [-129, -129]")):
        add_requant(np.array([-129]), np.array([0]), **ok)
    with pytest.raises(ValueError, match="table must have 256 entries"):
        add_requant(a, b, **ok, lut=np.zeros(255, np.int8))


def test_add_requant_lut(rng, seed):
    a, b = rand_int8(rng, (3, 17)), rand_int8(rng, (3, 17))
    table = rng.integers(-128, 128, size=256).astype(np.int8)
    p = add_params(0.03, 0.07, 0.05)
    plain = add_requant(a, b, **p)
    got = add_requant(a, b, **p, lut=table)
    assert np.array_equal(got, table[plain.astype(np.int64) + 128]), show("lut", plain, got, seed)
