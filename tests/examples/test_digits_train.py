"""examples/digits/train.py's hand-written backward passes against numeric gradients.

Every model's ``Net.loss_grads`` (the residual Add and the depthwise Conv included) is checked
against central differences of its loss on a few random parameters, in float64.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

TRAIN_PY = Path(__file__).resolve().parents[2] / "examples" / "digits" / "train.py"


@pytest.fixture(scope="module")
def train():
    spec = importlib.util.spec_from_file_location("digits_train", TRAIN_PY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _loss(net, x, y):
    return net.loss_grads(x, y)[0]


@pytest.mark.parametrize("kind", ["mlp", "cnn", "cnn_pool", "cnn_res", "cnn_dw"])
def test_gradients_match_central_differences(train, kind):
    seed = 7
    rng = np.random.default_rng(seed)
    net = train.Net(kind, rng)
    for k in net.params:        # non-zero biases, so every ReLU sees both signs
        if k.endswith(".bias"):
            net.params[k] = rng.standard_normal(net.params[k].shape) * 0.1
    x = rng.random((4, 1, 8, 8))
    y = rng.integers(0, 10, size=4)
    _, grads = net.loss_grads(x, y)
    assert set(grads) == set(net.params)
    eps = 1e-6
    for k, p in net.params.items():
        assert grads[k].shape == p.shape, k
        for flat in rng.choice(p.size, size=min(6, p.size), replace=False):
            idx = np.unravel_index(flat, p.shape)
            old = p[idx]
            p[idx] = old + eps
            lp = _loss(net, x, y)
            p[idx] = old - eps
            lm = _loss(net, x, y)
            p[idx] = old
            num = (lp - lm) / (2 * eps)
            assert abs(num - grads[k][idx]) <= 1e-5 + 1e-4 * abs(num), \
                f"{kind} {k}{list(idx)}: numeric {num!r}, backward {grads[k][idx]!r} " \
                f"(seed {seed})"


def test_residual_and_depthwise_layers(train):
    """The Conv before the residual Add has no ReLU, the Add has one; a depthwise Conv's
    forward is the per-channel correlation."""
    spec = train.MODELS["cnn_res"]
    ops = [op for _, op, _, _, _ in spec]
    i = ops.index("add")
    assert not train._relu_after(spec, i - 1) and train._relu_after(spec, i)
    rng = np.random.default_rng(3)
    net = train.Net("cnn_dw", rng)
    x = rng.random((2, 1, 8, 8))
    W = net.params["dw1.weight"]
    h = rng.random((2, 8, 8, 8))
    cols, _ = train._conv_cols(h, 3, 3, 1, 1)
    got = train._dwconv(cols, W)
    hp = np.pad(h, ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.zeros_like(h)
    for c in range(8):
        for r in range(3):
            for s in range(3):
                want[:, c] += W[c, 0, r, s] * hp[:, c, r:r + 8, s:s + 8]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert net.forward(x).shape == (2, 10)
