"""Requantization, wrap and LUT rules (docs/spec.md section 1) against Python-int references."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sparsemac.golden import apply_lut, requantize, wrap

from .hyp import hsettings
from .util import show


def py_wrap(v: int, width: int) -> int:
    v &= (1 << width) - 1
    return v - (1 << width) if v >> (width - 1) else v


def py_requant(acc: int, bias: int, mult: int, shift: int, width: int) -> int:
    """Spec section 1 with Python ints: wrap(acc + bias), exact product, +half, floor shift."""
    s = py_wrap(acc + bias, width)
    t = s * mult + 2 ** (shift - 1)
    r = t // 2**shift  # floor division == arithmetic shift
    return min(127, max(-128, r))


@pytest.mark.parametrize("acc, exp", [(5, 3), (-5, -2), (-3, -1), (3, 2), (1, 1), (-1, 0),
                                      (0, 0), (254, 127), (255, 127), (-256, -128),
                                      (-257, -128), (-258, -128), (253, 127), (-255, -127)])
def test_spec_corner_cases_shift1(acc, exp):
    """The pinned examples of spec section 1 (mult = 1, shift = 1): ties go up."""
    assert int(requantize(np.array([acc]), 0, 1, 1)[0]) == exp


@pytest.mark.parametrize("acc, bias, mult, shift, width", [
    (2**31 - 1, 0, 2**31 - 1, 63, 32),      # largest positive product, largest shift
    (-2**31, 0, 2**31 - 1, 63, 32),         # most negative product
    (-2**31, 0, 2**31 - 1, 62, 32),         # -> exactly -0.5 * 2: tie handling at the top
    (2**31 - 1, 1, 1, 1, 32),               # bias makes the sum wrap to -2**31
    (-2**31, -1, 3, 2, 32),                 # negative wrap to +2**31-1
    (2**47 - 1, 0, 2**31 - 1, 63, 48),      # acc_width 48: product needs 79 bits
    (-2**47, 0, 2**31 - 1, 63, 48),
    (-2**47, 0, 2**31 - 1, 1, 48),
    (2**47 - 1, 5, 7, 40, 48),              # wraps at 48 bits, not 32
    (3 * 2**40, 0, 2**31 - 1, 63, 48),
    (-(2**62), 0, 1, 63, 48),               # wrap of an out-of-range accumulator
    (-384, 0, 1, 8, 32),                    # -1.5 -> -1 (half up)
    (-640, 0, 1, 8, 32),                    # -2.5 -> -2
    (640, 0, 1, 8, 32),                     # 2.5 -> 3
    (100, -200, 1, 1, 20),                  # bias larger than acc
    (2**19 - 1, 1, 1, 1, 20),               # acc_width 20 wrap
])
def test_requant_corners(acc, bias, mult, shift, width):
    exp = py_requant(acc, bias, mult, shift, width)
    got = int(requantize(np.array([acc], dtype=np.int64), bias, mult, shift, acc_width=width)[0])
    assert got == exp, f"acc={acc} bias={bias} mult={mult} shift={shift} width={width}: " \
                       f"expected {exp}, actual {got}"


@hsettings(400)
@given(acc=st.integers(-2**40, 2**40), bias=st.integers(-2**31, 2**31 - 1),
       mult=st.one_of(st.integers(1, 2**31 - 1), st.sampled_from([1, 2**30, 2**31 - 1])),
       shift=st.integers(1, 63), width=st.sampled_from([20, 24, 32, 40, 48]))
def test_requant_random_scalar(acc, bias, mult, shift, width):
    acc = py_wrap(acc, width)
    exp = py_requant(acc, bias, mult, shift, width)
    got = int(requantize(np.array([acc], dtype=np.int64), bias, mult, shift, acc_width=width)[0])
    assert got == exp, f"expected {exp}, actual {got}"


@pytest.mark.parametrize("width", [20, 32, 48])
def test_requant_per_channel_vectors(rng, seed, width):
    m, n = 16, 50
    acc = rng.integers(-2**(width - 1), 2**(width - 1), size=(m, n))
    acc[0, :4] = [0, -1, 2**(width - 1) - 1, -2**(width - 1)]
    bias = rng.integers(-2**31, 2**31, size=m)
    mult = rng.integers(1, 2**31, size=m)
    shift = rng.integers(1, 64, size=m)
    shift[:2] = [1, 63]
    got = requantize(acc, bias, mult, shift, acc_width=width)
    exp = np.array([[py_requant(int(acc[i, j]), int(bias[i]), int(mult[i]), int(shift[i]), width)
                     for j in range(n)] for i in range(m)])
    assert got.dtype == np.int8 and np.array_equal(got, exp), show("requant", exp, got, seed)
    got_t = requantize(acc.T, bias, mult, shift, acc_width=width, channel_axis=1)
    assert np.array_equal(got_t, exp.T), show("channel_axis=1", exp.T, got_t, seed)


def test_requant_param_errors():
    with pytest.raises(ValueError, match=r"mult must be between 1 and 2147483647, not 0"):
        requantize(np.zeros(2), 0, [1, 0], 1)
    with pytest.raises(ValueError, match=r"mult must be between 1 and 2147483647, not 2147483648"):
        requantize(np.zeros(2), 0, 2**31, 1)
    with pytest.raises(ValueError, match="shift must be between 1 and 63, not 64"):
        requantize(np.zeros(2), 0, 1, 64)
    with pytest.raises(ValueError, match="shift must be between 1 and 63, not 0"):
        requantize(np.zeros(2), 0, 1, 0)


@hsettings(300)
@given(v=st.integers(-2**62, 2**62), width=st.integers(1, 63))
def test_wrap_against_python(v, width):
    assert int(wrap(np.array([v]), width)[0]) == py_wrap(v, width)


def test_wrap_edges():
    assert wrap(np.array([2**31, 2**31 - 1, -2**31 - 1, 2**32]), 32).tolist() == \
        [-2**31, 2**31 - 1, 2**31 - 1, 0]
    assert wrap(np.array([1, 2, 3], dtype=object), 2).tolist() == [1, -2, -1]
    with pytest.raises(ValueError, match="width must be between 1 and 64, not 0"):
        wrap(np.array([1]), 0)


def test_apply_lut(rng, seed):
    table = rng.integers(-128, 128, size=256).astype(np.int8)
    y = np.arange(-128, 128).reshape(16, 16)
    got = apply_lut(y, table)
    exp = np.array([[table[v + 128] for v in row] for row in y.tolist()])
    assert np.array_equal(got, exp), show("apply_lut", exp, got, seed)
    assert apply_lut(np.array([-128, 127]), np.arange(-128, 128)).tolist() == [-128, 127]
    with pytest.raises(ValueError, match="table must have 256 entries"):
        apply_lut(y, table[:255])
    with pytest.raises(ValueError, match="table entries must be between -128 and 127"):
        apply_lut(y, np.arange(256))
    with pytest.raises(ValueError, match=r"y must be int8 \(-128..127\), not range \[-129, 0\]"):
        apply_lut(np.array([-129, 0]), table)
