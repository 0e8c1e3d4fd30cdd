"""Pruning (docs/spec.md section 4) against direct Python references and hand examples."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sparsemac.golden import pack_weights, prune, unpack_weights

from .hyp import hsettings
from .util import rand_int8, show


def ref_unstructured(W, density):
    flat = [int(v) for v in W.ravel()]
    k = round(density * len(flat))
    keep = sorted(range(len(flat)), key=lambda i: (-abs(flat[i]), i))[:k]
    mask = np.zeros(len(flat), dtype=bool)
    mask[keep] = True
    return mask.reshape(W.shape)


def ref_block(W, density, b):
    rows, cols = W.shape
    blocks = []
    for br in range(0, rows, b):
        for bc in range(0, cols, b):
            cells = [(r, c) for r in range(br, min(br + b, rows)) for c in range(bc, min(bc + b,
                                                                                       cols))]
            blocks.append((-sum(int(W[r, c]) ** 2 for r, c in cells), len(blocks), cells))
    blocks.sort()
    target = round(density * W.size)
    mask = np.zeros(W.shape, dtype=bool)
    kept = 0
    for _, _, cells in blocks:
        if kept >= target:
            break
        for r, c in cells:
            mask[r, c] = True
        kept += len(cells)
    return mask


def ref_nm(W, n, m):
    mask = np.zeros(W.shape, dtype=bool)
    for r in range(W.shape[0]):
        for g in range(0, W.shape[1], m):
            idx = list(range(g, min(g + m, W.shape[1])))
            for i in sorted(idx, key=lambda i: (-abs(int(W[r, i])), i))[:n]:
                mask[r, i] = True
    return mask


def test_unstructured_hand():
    W = np.array([[3, -3, 1], [-128, 0, 3]], dtype=np.int8)
    Wp, mask = prune(W, "unstructured", density=0.5)  # keep 3: -128, then the 3s at 0 and 1
    assert mask.tolist() == [[True, True, False], [True, False, False]]
    assert Wp.tolist() == [[3, -3, 0], [-128, 0, 0]] and Wp.dtype == np.int8
    assert prune(W, "unstructured", density=0.0)[1].sum() == 0
    assert prune(W, "unstructured", density=1.0)[1].all()
    # round half to even: 0.25 * 6 = 1.5 -> 2 ; 0.75 * 2 = 1.5 -> 2 ; 0.25 * 2 = 0.5 -> 0
    assert prune(W, "unstructured", density=0.25)[1].sum() == 2
    assert prune(np.ones((1, 2), np.int8), "unstructured", density=0.25)[1].sum() == 0


def test_block_hand():
    W = np.zeros((3, 5), dtype=np.int8)
    W[0, 0], W[2, 4], W[1, 3] = 1, 10, -10  # norms: (0,0)=1, (0,1)=100, (1,2)=100
    _, mask = prune(W, "block", density=0.2, block_size=2)  # target 3: (0,1) 4 elems
    assert mask.tolist() == [[False, False, True, True, False], [False, False, True, True, False],
                             [False] * 5]
    _, mask = prune(W, "block", density=0.34, block_size=2)  # target 5: + edge block (1,2)
    assert mask.sum() == 5 and mask[2, 4]


def test_nm_hand():
    W = np.array([[1, -4, 4, 0, 7, 0, -7]], dtype=np.int8)  # 2:4, last group has 3 elements
    Wp, mask = prune(W, "nm", nm=(2, 4))
    assert mask.tolist() == [[False, True, True, False, True, False, True]]
    assert Wp.tolist() == [[0, -4, 4, 0, 7, 0, -7]]


@hsettings(150)
@given(method=st.sampled_from(["unstructured", "block", "nm"]), rows=st.integers(1, 12),
       cols=st.integers(1, 40), density=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0]),
       b=st.sampled_from([1, 2, 3, 4, 8]), nm=st.sampled_from([(1, 2), (2, 4), (1, 8), (3, 8),
                                                               (4, 4), (2, 32)]),
       small=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_prune_against_reference(method, rows, cols, density, b, nm, small, seed):
    rng = np.random.default_rng(seed)
    W = rand_int8(rng, (rows, cols), 0.8, zero_rows=True)
    if small:  # many ties
        W = (W % 3 - 1).astype(np.int8)
    if method == "unstructured":
        Wp, mask = prune(W, method, density=density)
        exp = ref_unstructured(W, density)
    elif method == "block":
        Wp, mask = prune(W, method, density=density, block_size=b)
        exp = ref_block(W, density, b)
    else:
        Wp, mask = prune(W, method, nm=nm)
        exp = ref_nm(W, *nm)
        img = pack_weights(Wp, "nm", nm=nm).image  # always fits the format
        assert np.array_equal(unpack_weights(img), Wp)
    assert np.array_equal(mask, exp), show(f"prune {method}", exp, mask, seed)
    assert np.array_equal(Wp, np.where(exp, W, 0)), show("W_pruned", np.where(exp, W, 0), Wp)


def test_prune_oihw_is_flattened(rng, seed):
    w = rand_int8(rng, (4, 3, 3, 3))
    wp, mask = prune(w, "nm", nm=(1, 4))
    exp = ref_nm(w.reshape(4, -1), 1, 4).reshape(w.shape)
    assert wp.shape == w.shape and np.array_equal(mask, exp), show("oihw", exp, mask, seed)


def test_prune_errors():
    W = np.ones((4, 4), np.int8)
    with pytest.raises(ValueError, match="method must be one of"):
        prune(W, "random", density=0.5)
    with pytest.raises(ValueError, match="density must be given for method 'unstructured'"):
        prune(W, "unstructured")
    with pytest.raises(ValueError, match="density must be a number between 0 and 1, not 1.5"):
        prune(W, "block", density=1.5)
    with pytest.raises(ValueError, match="density must be a number between 0 and 1, not -0.1"):
        prune(W, "unstructured", density=-0.1)
    with pytest.raises(ValueError, match="density must be None for method 'nm'"):
        prune(W, "nm", density=0.5)
    with pytest.raises(ValueError, match="nm M must be a power of two in 2..32, not 3"):
        prune(W, "nm", nm=(1, 3))
    with pytest.raises(ValueError, match="nm M must be a power of two in 2..32, not 64"):
        prune(W, "nm", nm=(1, 64))
    with pytest.raises(ValueError, match="nm N must be between 1 and M=4, not 5"):
        prune(W, "nm", nm=(5, 4))
    with pytest.raises(ValueError, match="nm N must be between 1 and M=4, not 0"):
        prune(W, "nm", nm=(0, 4))
    with pytest.raises(ValueError, match="block_size must be a positive int, not 0"):
        prune(W, "block", density=0.5, block_size=0)
    with pytest.raises(TypeError, match="W must be an integer array"):
        prune(W.astype(float), "nm")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        prune(np.ones(4, np.int8), "nm")
