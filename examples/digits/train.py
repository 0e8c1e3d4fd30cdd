#!/usr/bin/env python
"""Train, prune, export and quantize five small sparse networks on scikit-learn's digits.

    .venv/bin/python examples/digits/train.py          # regenerates every file of examples/digits
    .venv/bin/python examples/digits/train.py --models cnn_res cnn_dw   # those models' files
                                                       # (and the JSON / README of all)

Only NumPy, scikit-learn (its bundled ``load_digits``: no download), onnx and onnxruntime are
used; training runs on one core in plain NumPy (hand-written forward and backward passes).

Five models, in the weight formats of the accelerator (README.md next to this file):

- ``mlp``: Gemm 64->64, ReLU, Gemm 64->32, ReLU, Gemm 32->10 on the 64 pixels / 16;
- ``cnn``: Conv 1->8 3x3 pad 1, ReLU, Conv 8->16 3x3 stride 2 pad 1, ReLU, Flatten,
  Gemm 256->10 on the 1x8x8 image / 16;
- ``cnn_pool`` (formats dense and nm24 only): Conv 1->8 3x3 pad 1, ReLU, MaxPool 2x2,
  Conv 8->32 3x3 pad 1, ReLU, GlobalAveragePool, Flatten, Gemm 32->10 (docs/spec.md section
  2.3); its QDQ model keeps each pool's input scale at its output (`pool_scale_overrides`, a
  second ``quantize_static`` pass), and its int8 accuracy on sparsemac's model engine is
  measured too (``sparsemac_accuracy``);
- ``cnn_res`` (dense, nm24): Conv 1->16 3x3 pad 1, ReLU, MaxPool 2x2, a residual block
  [Conv 16->16 3x3 pad 1, ReLU, Conv 16->16 3x3 pad 1] + the MaxPool output, Add, ReLU,
  GlobalAveragePool, Flatten, Gemm 16->10 (docs/spec.md section 2.4: sparsemac's ``add`` layer
  with the Relu as its activation; on the accelerator a matmul over its two inputs);
- ``cnn_dw`` (dense, nm24): Conv 1->8 3x3 pad 1, ReLU, depthwise Conv 3x3 pad 1 (group 8),
  ReLU, pointwise Conv 8->16 1x1, ReLU, MaxPool 2x2, depthwise Conv 3x3 pad 1 (group 16), ReLU,
  pointwise Conv 16->32 1x1, ReLU, GlobalAveragePool, Flatten, Gemm 32->10 (a depthwise Conv
  is compiled as the block-diagonal conv2d; it stays dense in nm24, ``KEEP_DENSE``).

The last three are measured on sparsemac's model engine too (``SPARSEMAC_MODELS``).

Formats: ``dense``; ``nm24`` (2:4 along K); ``nm18`` (1:8 along K); ``block50`` (8x8 blocks, 50 %
of the elements kept); ``bitmap75`` (unstructured, 75 % zeros).  Masks come from the project's
own ``sparsemac.golden.prune`` on the ``[M, K]`` view of each weight (a Gemm weight is
``[out, in]``; a conv weight OIHW is ``[O, C*KH*KW]``, K order c, kh, kw as in
``golden.ops.im2col``).  ``prune`` takes integers, so float weights are ranked on an integer
grid ``rint(W / max|W| * 2**20)`` of the whole tensor (magnitude order kept to 1e-6).  Each
sparse variant starts from the trained dense weights, is pruned once, then fine-tuned with the
mask fixed.  A few layers stay dense in some formats where the pattern does not fit them
(``KEEP_DENSE``, with the reasons); each such decision is re-checked on every run by a trial
with the layer pruned too.

Every variant is written as a float ONNX model (opset 17) and as a QDQ int8 model from
``onnxruntime.quantization.quantize_static`` (symmetric int8 activations and per-channel
weights, calibrated on 200 training images).  Accuracies are measured with onnxruntime on the
test split and written to ``accuracy_train.json`` and ``README.md``.

The run is deterministic: fixed seeds, one BLAS thread, fixed zip timestamps in the .npz files;
on the same machine and library versions it rewrites the same bytes.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one core, and a reproducible BLAS summation order

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnxruntime.quantization import (  # noqa: E402
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sparsemac.golden.prune import prune  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED = 0
N_CALIB = 200
OPSET = 17
IR_VERSION = 8  # the IR version of opset 17 (onnx 1.12); read by every onnxruntime since 1.12
GRID = 2 ** 20  # integer grid of the float weights handed to golden prune

#: Weight formats: name -> (prune method, prune keyword arguments, golden pack format, pack args).
FORMATS = {
    "dense": (None, {}, "dense", {}),
    "nm24": ("nm", {"nm": (2, 4)}, "nm", {"nm": (2, 4)}),
    "nm18": ("nm", {"nm": (1, 8)}, "nm", {"nm": (1, 8)}),
    "block50": ("block", {"density": 0.5, "block_size": 8}, "block", {"block_size": 8}),
    "bitmap75": ("unstructured", {"density": 0.25}, "bitmap", {"group_size": 16}),
}

#: Layers of each model: (name, op, weight shape (a max pool: its kernel), stride, pad).
MODELS = {
    "mlp": [("fc1", "gemm", (64, 64), None, None),
            ("fc2", "gemm", (32, 64), None, None),
            ("fc3", "gemm", (10, 32), None, None)],
    "cnn": [("conv1", "conv", (8, 1, 3, 3), 1, 1),
            ("conv2", "conv", (16, 8, 3, 3), 2, 1),
            ("fc", "gemm", (10, 16 * 4 * 4), None, None)],
    "cnn_pool": [("conv1", "conv", (8, 1, 3, 3), 1, 1),
                 ("pool1", "maxpool", (2, 2), 2, 0),
                 ("conv2", "conv", (32, 8, 3, 3), 1, 1),
                 ("gap", "gap", None, None, None),
                 ("fc", "gemm", (10, 32), None, None)],
    # a residual block on the pool's output: the "add" row names its skip source in the
    # weight-shape column; the Conv before an Add has no ReLU, the Add has one
    "cnn_res": [("conv1", "conv", (16, 1, 3, 3), 1, 1),
                ("pool1", "maxpool", (2, 2), 2, 0),
                ("conv2a", "conv", (16, 16, 3, 3), 1, 1),
                ("conv2b", "conv", (16, 16, 3, 3), 1, 1),
                ("add", "add", "pool1", None, None),
                ("gap", "gap", None, None, None),
                ("fc", "gemm", (10, 16), None, None)],
    # MobileNet-style: depthwise ("dwconv", group = channels, weights [C, 1, KH, KW]) and
    # pointwise (1x1) convolutions
    "cnn_dw": [("conv1", "conv", (8, 1, 3, 3), 1, 1),
               ("dw1", "dwconv", (8, 1, 3, 3), 1, 1),
               ("pw1", "conv", (16, 8, 1, 1), 1, 0),
               ("pool1", "maxpool", (2, 2), 2, 0),
               ("dw2", "dwconv", (16, 1, 3, 3), 1, 1),
               ("pw2", "conv", (32, 16, 1, 1), 1, 0),
               ("gap", "gap", None, None, None),
               ("fc", "gemm", (10, 32), None, None)],
}
#: Weight formats of each model (default: every one of `FORMATS`).
MODEL_FORMATS = {"cnn_pool": ("dense", "nm24"), "cnn_res": ("dense", "nm24"),
                 "cnn_dw": ("dense", "nm24")}
#: The models whose int8 accuracy is also measured on sparsemac's model engine.
SPARSEMAC_MODELS = ("cnn_pool", "cnn_res", "cnn_dw")
#: ``limits`` of sparsemac's compiler and model engine per model (`sparsemac.host.run.run`),
#: "hardware" when not named: every model runs as the accelerator runs it (cnn_res's residual
#: add as a matmul over its two inputs, docs/host.md "The add on the hardware").
SPARSEMAC_LIMITS: dict[str, str] = {}


def formats_of(kind: str) -> tuple[str, ...]:
    return MODEL_FORMATS.get(kind, tuple(FORMATS))


WEIGHT_OPS = ("conv", "dwconv", "gemm")


def weight_layers(kind: str) -> list:
    """The layers of ``kind`` with weights (Conv, depthwise Conv, Gemm): the pools and the
    residual add have none."""
    return [L for L in MODELS[kind] if L[1] in WEIGHT_OPS]

_CLASSIFIER = {
    "nm18": "classifier: 1:8 along K leaves each class logit 1/8 of its inputs, which costs "
            "several points of accuracy",
    "block50": "classifier with M = 10 rows = one 8-row block row plus a 2-row edge block row: "
               "golden block prune ranks blocks by squared L2 norm, so the 2x8 edge blocks rank "
               "below the 8x8 blocks and the rows of classes 8 and 9 are pruned to all zeros",
}
_DEPTHWISE = ("depthwise: sparsemac compiles it as the block-diagonal conv2d [C, C*KH*KW] "
              "(density 1/C) whose zeros its bitmap format skips; 2:4 of the 9 taps of a "
              "filter (groups 4 + 4 + 1 along K) would keep 5 of the 9")
#: Layers kept dense: (model, layer) -> {format: reason}.  Every decision is re-measured on each
#: run: the variant is also fine-tuned with that layer pruned too, and both accuracies are
#: printed and written to accuracy_train.json ("kept_dense_trials") and README.md.
KEEP_DENSE = {
    ("cnn", "conv1"): {
        "nm18": "K = C*KH*KW = 9: groups of 8 along K are 8 taps plus a 1-tap group that is "
                "always kept, so 1:8 keeps 2 of the 9 taps of each filter (density 0.22, not "
                "0.125)",
        "block50": "the [8, 9] matrix is one 8x8 block plus an 8x1 edge block, so a 50 % target "
                   "keeps the 8x8 block: 64 of 72 weights, no block sparsity to speak of",
    },
    ("mlp", "fc3"): dict(_CLASSIFIER),
    ("cnn", "fc"): dict(_CLASSIFIER),
    ("cnn_dw", "dw1"): {"nm24": _DEPTHWISE},
    ("cnn_dw", "dw2"): {"nm24": _DEPTHWISE},
}


def kept_dense(kind: str, name: str, fmt: str) -> str | None:
    """Why layer ``name`` of ``kind`` stays dense in format ``fmt`` (None: it is pruned)."""
    return KEEP_DENSE.get((kind, name), {}).get(fmt)


#: Training schedule: (epochs, Adam learning rate) of the dense run and of each fine-tuning.
TRAIN = {"mlp": (60, 2e-3), "cnn": (40, 3e-3), "cnn_pool": (40, 3e-3), "cnn_res": (40, 3e-3),
         "cnn_dw": (40, 3e-3)}
FINETUNE = {"mlp": (30, 1e-3), "cnn": (30, 1e-3), "cnn_pool": (30, 1e-3),
            "cnn_res": (30, 1e-3), "cnn_dw": (30, 1e-3)}
BATCH = 32
WEIGHT_DECAY = 1e-4

QUANT_SETTINGS = dict(
    quant_format="QuantFormat.QDQ",
    activation_type="QuantType.QInt8",
    weight_type="QuantType.QInt8",
    per_channel=True,
    calibrate_method="CalibrationMethod.MinMax",
    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
)


# ----------------------------------------------------------------------------------- data


def load_data():
    """Pixels / 16 as float32 NCHW [N, 1, 8, 8], labels int64; fixed stratified 80/20 split."""
    d = load_digits()
    x = (d.data.astype(np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    calib_idx = np.sort(np.random.default_rng(SEED).permutation(len(xtr))[:N_CALIB])
    return xtr, ytr, xte, yte, calib_idx


def save_npz(path: Path, **arrays):
    """``np.savez_compressed`` with a fixed zip timestamp, so the bytes are reproducible."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


# ------------------------------------------------------------------------- NumPy network


def _conv_cols(x, kh, kw, stride, pad):
    """Patches of NCHW ``x`` as [N, OH, OW, C, KH, KW] (K order c, kh, kw as golden im2col)."""
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((n, oh, ow, c, kh, kw), dtype=x.dtype)
    for r in range(kh):
        for s in range(kw):
            patch = xp[:, :, r:r + stride * oh:stride, s:s + stride * ow:stride]
            cols[..., r, s] = patch.transpose(0, 2, 3, 1)
    return cols, (oh, ow)


def _conv_cols_back(dcols, xshape, stride, pad):
    n, c, h, w = xshape
    _, oh, ow, _, kh, kw = dcols.shape
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=dcols.dtype)
    for r in range(kh):
        for s in range(kw):
            dxp[:, :, r:r + stride * oh:stride, s:s + stride * ow:stride] += \
                dcols[..., r, s].transpose(0, 3, 1, 2)
    return dxp[:, :, pad:pad + h, pad:pad + w]


def _relu_after(spec, i: int) -> bool:
    """A ReLU follows every Conv / Gemm but the last layer (none after a pool: its input is
    already non-negative) and but a Conv right before a residual Add; one follows the Add."""
    if spec[i][1] == "add":
        return True
    if i + 1 < len(spec) and spec[i + 1][1] == "add":
        return False
    return spec[i][1] in WEIGHT_OPS and i < len(spec) - 1


def _dwconv(cols, W):
    """Depthwise conv of patches ``cols`` [N, OH, OW, C, KH, KW] with ``W`` [C, 1, KH, KW] ->
    [N, C, OH, OW] (no bias)."""
    return np.einsum("nhwcrs,crs->nchw", cols, W[:, 0], optimize=True)


class Net:
    """The layers of ``MODELS[kind]`` with ReLU after each Conv / Gemm but the last, float64."""

    def __init__(self, kind: str, rng: np.random.Generator):
        self.kind = kind
        self.spec = MODELS[kind]
        self.params = {}
        for name, _, shape, _, _ in weight_layers(kind):
            fan_in = int(np.prod(shape[1:]))
            self.params[f"{name}.weight"] = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
            self.params[f"{name}.bias"] = np.zeros(shape[0])

    def copy(self) -> Net:
        other = object.__new__(Net)
        other.kind, other.spec = self.kind, self.spec
        other.params = {k: v.copy() for k, v in self.params.items()}
        return other

    def round_to_float32(self):
        """Round the weights to the float32 values the ONNX models hold (weights of hidden units
        that never activate decay below the float32 range and become exact zeros)."""
        self.params = {k: v.astype(np.float32).astype(np.float64) for k, v in self.params.items()}

    def forward(self, x, keep=False):
        h = x.reshape(len(x), -1) if self.kind == "mlp" else x
        cache = []
        outs = {}           # layer name -> its output (the skip source of a residual add)
        for i, (name, op, shape, stride, pad) in enumerate(self.spec):
            if op == "maxpool":     # k x k, stride k (the only max pool here)
                n, c, hh, ww = h.shape
                k = shape[0]
                win = h.reshape(n, c, hh // k, k, ww // k, k)
                out = win.max(axis=(3, 5))
                cache.append((h.shape, win, out))
                h = outs[name] = out
                continue
            if op == "gap":
                out = h.mean(axis=(2, 3), keepdims=True)
                cache.append((h.shape, None, out))
                h = outs[name] = out
                continue
            if op == "add":         # h + the output of layer `shape`, then ReLU
                out = np.maximum(h + outs[shape], 0.0)
                cache.append((h.shape, None, out))
                h = outs[name] = out
                continue
            W, b = self.params[f"{name}.weight"], self.params[f"{name}.bias"]
            if op == "gemm":
                h_in = h.reshape(len(h), -1)  # Flatten (a no-op for the MLP)
                out = h_in @ W.T + b
                cache.append((h.shape, h_in))
            elif op == "dwconv":
                cols, _ = _conv_cols(h, shape[2], shape[3], stride, pad)
                out = _dwconv(cols, W) + b[:, None, None]
                cache.append((h.shape, cols))
            else:
                cols, (oh, ow) = _conv_cols(h, shape[2], shape[3], stride, pad)
                out2 = cols.reshape(-1, W[0].size) @ W.reshape(shape[0], -1).T + b
                out = out2.reshape(len(h), oh, ow, shape[0]).transpose(0, 3, 1, 2)
                cache.append((h.shape, cols))
            if _relu_after(self.spec, i):
                out = np.maximum(out, 0.0)
            cache[-1] += (out,)
            h = outs[name] = out
        return (h, cache) if keep else h

    def loss_grads(self, x, y):
        logits, cache = self.forward(x, keep=True)
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(len(y)), y] + 1e-12).mean()
        d = p
        d[np.arange(len(y)), y] -= 1.0
        d /= len(y)
        grads = {}
        skip = {}           # layer name -> the gradient a residual add sends to its output
        for i in reversed(range(len(self.spec))):
            name, op, shape, stride, pad = self.spec[i]
            in_shape, saved, out = cache[i]
            if name in skip:
                d = d + skip.pop(name)
            if op == "add":         # through the ReLU, then to both summands
                d = d * (out > 0)
                skip[shape] = d
                continue
            if op == "maxpool":     # to the first maximum of each window
                n, c, oh, k, ow, _ = saved.shape
                flat = saved.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, oh, ow, k * k)
                first = flat.argmax(axis=-1)
                dflat = np.zeros_like(flat)
                np.put_along_axis(dflat, first[..., None], d[..., None], axis=-1)
                d = dflat.reshape(n, c, oh, ow, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(
                    in_shape)
                continue
            if op == "gap":
                d = np.broadcast_to(d / (in_shape[2] * in_shape[3]), in_shape).copy()
                continue
            if _relu_after(self.spec, i):
                d = d * (out > 0)
            W = self.params[f"{name}.weight"]
            if op == "gemm":
                grads[f"{name}.weight"] = d.T @ saved
                grads[f"{name}.bias"] = d.sum(axis=0)
                d = (d @ W).reshape(in_shape)
            elif op == "dwconv":
                grads[f"{name}.weight"] = np.einsum("nchw,nhwcrs->crs", d, saved,
                                                    optimize=True)[:, None]
                grads[f"{name}.bias"] = d.sum(axis=(0, 2, 3))
                if i > 0:
                    dcols = np.einsum("nchw,crs->nhwcrs", d, W[:, 0], optimize=True)
                    d = _conv_cols_back(dcols, in_shape, stride, pad)
            else:
                d2 = d.transpose(0, 2, 3, 1).reshape(-1, shape[0])
                cols2 = saved.reshape(-1, W[0].size)
                grads[f"{name}.weight"] = (d2.T @ cols2).reshape(shape)
                grads[f"{name}.bias"] = d2.sum(axis=0)
                if i > 0:
                    dcols = (d2 @ W.reshape(shape[0], -1)).reshape(saved.shape)
                    d = _conv_cols_back(dcols, in_shape, stride, pad)
        return loss, grads

    def accuracy(self, x, y) -> float:
        return 100.0 * float(np.mean(self.forward(x).argmax(axis=1) == y))


def train(net: Net, xtr, ytr, xte, yte, epochs, lr, rng, masks=None, tag="", quiet=False):
    """Adam with cosine learning-rate decay and L2 weight decay; ``masks`` stay applied."""
    m = {k: np.zeros_like(v) for k, v in net.params.items()}
    v = {k: np.zeros_like(p) for k, p in net.params.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    n = len(xtr)
    steps = epochs * (-(-n // BATCH))
    t = 0
    for ep in range(epochs):
        perm = rng.permutation(n)
        tot = 0.0
        for i in range(0, n, BATCH):
            idx = perm[i:i + BATCH]
            loss, grads = net.loss_grads(xtr[idx], ytr[idx])
            tot += loss * len(idx)
            lr_t = lr * 0.5 * (1.0 + np.cos(np.pi * t / steps))
            t += 1
            for k, g in grads.items():
                if k.endswith(".weight"):
                    g = g + WEIGHT_DECAY * net.params[k]
                m[k] = b1 * m[k] + (1 - b1) * g
                v[k] = b2 * v[k] + (1 - b2) * g * g
                mh, vh = m[k] / (1 - b1 ** t), v[k] / (1 - b2 ** t)
                net.params[k] -= lr_t * mh / (np.sqrt(vh) + eps)
                if masks is not None and k in masks:
                    net.params[k] *= masks[k]
        if not quiet and (ep == 0 or (ep + 1) % 10 == 0 or ep == epochs - 1):
            print(f"  {tag} epoch {ep + 1:3d}/{epochs}: loss {tot / n:.4f}, "
                  f"train {net.accuracy(xtr, ytr):6.2f} %, test {net.accuracy(xte, yte):6.2f} %",
                  flush=True)


# ------------------------------------------------------------------------------- pruning


def prune_masks(net: Net, fmt: str, layers) -> dict[str, np.ndarray]:
    """Golden-prune masks of ``layers`` (weight name -> bool mask, same shape as the weight)."""
    method, kwargs, _, _ = FORMATS[fmt]
    masks = {}
    for name, _, shape, _, _ in weight_layers(net.kind):
        if method is None or name not in layers:
            continue
        W = net.params[f"{name}.weight"]
        Wi = np.rint(W / np.abs(W).max() * GRID).astype(np.int64)  # magnitude order of W
        _, mask = prune(Wi.reshape(shape[0], -1), method, **kwargs)  # the [M, K] view
        masks[f"{name}.weight"] = mask.reshape(shape)
    return masks


def prune_finetune(base: Net, fmt: str, layers, data, seed, tag, verbose=True) -> tuple[Net, dict]:
    """Copy of ``base`` with ``layers`` golden-pruned to ``fmt`` and fine-tuned, mask fixed."""
    xtr, ytr, xte, yte, _ = data
    net = base.copy()
    masks = prune_masks(net, fmt, layers)
    if masks:
        for k, mask in masks.items():
            net.params[k] *= mask
        if verbose:
            print(f"  {tag}: pruned {', '.join(k.split('.')[0] for k in masks)}; test "
                  f"{net.accuracy(xte, yte):.2f} % before fine-tuning")
        ep, lr = FINETUNE[net.kind]
        train(net, xtr, ytr, xte, yte, ep, lr, np.random.default_rng(seed), masks, tag,
              quiet=not verbose)
        net.round_to_float32()
    return net, masks


# ---------------------------------------------------------------------------------- ONNX


def export_onnx(net: Net, path: Path):
    """Float32 ONNX model: Gemm(transB=1) / Conv (depthwise: group = channels) / Relu /
    MaxPool / GlobalAveragePool / Add (residual) / Flatten, opset 17, input "input"."""
    inits, nodes = [], []
    if net.kind == "mlp":
        in_shape = ["N", 64]
    else:
        in_shape = ["N", 1, 8, 8]
    x = "input"
    outs = {}       # layer name -> its output tensor (after its ReLU)
    for i, (name, op, shape, stride, pad) in enumerate(net.spec):
        if op == "add":
            nodes.append(helper.make_node("Add", [x, outs[shape]], [f"{name}_out"], name=name))
            nodes.append(helper.make_node("Relu", [f"{name}_out"], [f"{name}_relu"],
                                          name=f"{name}_relu"))
            x = outs[name] = f"{name}_relu"
            continue
        if op in ("maxpool", "gap"):
            nodes.append(helper.make_node("MaxPool", [x], [f"{name}_out"], name=name,
                                          kernel_shape=list(shape), strides=[stride] * 2)
                         if op == "maxpool" else
                         helper.make_node("GlobalAveragePool", [x], [f"{name}_out"], name=name))
            x = outs[name] = f"{name}_out"
            continue
        wname, bname = f"{name}.weight", f"{name}.bias"
        inits.append(numpy_helper.from_array(net.params[wname].astype(np.float32), wname))
        inits.append(numpy_helper.from_array(net.params[bname].astype(np.float32), bname))
        last = i == len(net.spec) - 1
        out = "logits" if last else f"{name}_out"
        if op == "gemm":
            if net.kind != "mlp":
                nodes.append(helper.make_node("Flatten", [x], ["flatten_out"], name="flatten",
                                              axis=1))
                x = "flatten_out"
            nodes.append(helper.make_node("Gemm", [x, wname, bname], [out], name=name,
                                          transB=1))
        else:
            group = {"group": shape[0]} if op == "dwconv" else {}
            nodes.append(helper.make_node("Conv", [x, wname, bname], [out], name=name,
                                          kernel_shape=list(shape[2:]), strides=[stride] * 2,
                                          pads=[pad] * 4, **group))
        x = out
        if _relu_after(net.spec, i):
            nodes.append(helper.make_node("Relu", [x], [f"{name}_relu"], name=f"{name}_relu"))
            x = f"{name}_relu"
        outs[name] = x
    graph = helper.make_graph(
        nodes, f"digits_{net.kind}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="sparsemac examples/digits/train.py",
                              ir_version=IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


def model_input(kind: str, images: np.ndarray) -> np.ndarray:
    """``images`` [N, 1, 8, 8] in the input layout of ``kind`` ([N, 64] for the MLP)."""
    return images.reshape(len(images), 64) if kind == "mlp" else images


def ort_session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    # the QDQ graph as written, not ORT's fused int8 kernels (sparsemac.host.onnx_reference)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_accuracy(path: Path, kind: str, images, labels) -> tuple[float, int]:
    logits = ort_session(path).run(["logits"], {"input": model_input(kind, images)})[0]
    correct = int(np.sum(logits.argmax(axis=1) == labels))
    return 100.0 * correct / len(labels), correct


class CalibReader(CalibrationDataReader):
    """The calibration images (training split) in batches of 50."""

    def __init__(self, kind: str, images: np.ndarray):
        x = model_input(kind, images)
        self._batches = iter([{"input": x[i:i + 50]} for i in range(0, len(x), 50)])

    def get_next(self):
        return next(self._batches, None)


def quantize(float_path: Path, int8_path: Path, kind: str, calib: np.ndarray) -> dict:
    """``quantize_static`` QDQ; where it gives a pool's output a scale of its own (a
    GlobalAveragePool), a second pass with the same calibration and the overrides that keep
    the pool's input scale (`sparsemac.host.onnx_import.pool_scale_overrides`: sparsemac's
    pools do not requantize).  Returns the overrides used ({} for the models without pools)."""
    from sparsemac.host.onnx_import import pool_scale_overrides

    opts = {"ActivationSymmetric": True, "WeightSymmetric": True}
    used = {}
    with tempfile.TemporaryDirectory() as tmp:  # quantize_static writes helper models there
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            for _ in range(2):
                quantize_static(
                    str(float_path), str(int8_path), CalibReader(kind, calib),
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options=opts,
                )
                over = pool_scale_overrides(int8_path)
                if not over:
                    break
                used = {k: float(v[0]["scale"]) for k, v in over.items()}
                opts = {**opts, "TensorQuantOverrides": over}
        finally:
            os.chdir(cwd)
    return used


def sparsemac_accuracy(int8_path: Path, kind: str, images, labels) -> dict:
    """The QDQ model on sparsemac's model engine (bit-exact with golden; default
    configuration; no cycle model): int8 accuracy, mismatches against golden, agreement with
    ONNX Runtime in output LSBs."""
    from sparsemac.host.onnx_import import load_onnx
    from sparsemac.host.onnx_reference import compare
    from sparsemac.host.run import model_job, run
    from sparsemac.hw.config import AcceleratorConfig

    cfg = AcceleratorConfig.preset("default")
    x = model_input(kind, images)
    # outputs only: no cycle model (cycles=False), no per-layer split choice by it (auto);
    # cols: column groups where they fit a tile, else rows (rows alone does not fit cnn_dw's
    # dw1, K x N = 72 x 64, into a tile's activation buffer); the outputs are the same bytes
    # for any split
    limits = SPARSEMAC_LIMITS.get(kind, "hardware")
    rr = run(load_onnx(int8_path, cfg=cfg).with_input(x), cfg, labels=labels,
             engine=partial(model_job, cycles=False), tile_split="cols", limits=limits)
    ref = ort_session(int8_path).run(["logits"], {"input": x})[0]
    agree = compare(rr.values, ref, rr.report["output_scale"])
    extra = {} if limits == "hardware" else {"limits": limits}
    return {"accuracy": round(100.0 * rr.report["accuracy"], 4), **extra,
            "status": rr.report["status"], "mismatches": rr.report["mismatches"],
            "max_lsb_vs_onnxruntime": agree["max_lsb"],
            "over_1_lsb_vs_onnxruntime": agree["over_1_lsb"],
            "predictions_agree_with_onnxruntime": round(agree["predictions_agree"], 6)}


def int8_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Layer name -> int8 weight (OIHW or [M, K]) of a QDQ model: the DequantizeLinear input
    feeding input 1 of each Conv / Gemm."""
    inits = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    out = {}
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            dq = producer[node.input[1]]
            assert dq.op_type == "DequantizeLinear", dq.op_type
            out[node.name] = numpy_helper.to_array(inits[dq.input[0]])
    return out


def zero_points(model: onnx.ModelProto) -> list[tuple[str, np.ndarray]]:
    inits = {t.name: t for t in model.graph.initializer}
    return [(n.input[2], numpy_helper.to_array(inits[n.input[2]])) for n in model.graph.node
            if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2]


def op_list(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


# ---------------------------------------------------------------------------------- main


def run_model(kind, data, out_dir: Path) -> dict:
    xtr, ytr, xte, yte, calib_idx = data
    kidx = list(MODELS).index(kind)
    names = [n for n, _, _, _, _ in weight_layers(kind)]
    print(f"\n=== {kind}: " + ", ".join(f"{n} {op} {s}" for n, op, s, _, _ in MODELS[kind]))
    t0 = time.perf_counter()
    rng = np.random.default_rng([SEED, kidx])
    base = Net(kind, rng)
    epochs, lr = TRAIN[kind]
    train(base, xtr, ytr, xte, yte, epochs, lr, rng, tag=f"{kind} dense")
    base.round_to_float32()
    print(f"  dense training: {time.perf_counter() - t0:.1f} s")
    result = {"layers": [{"name": n, "op": op, "weight_shape": list(s),
                          "mk": [s[0], int(np.prod(s[1:]))]}
                         for n, op, s, _, _ in weight_layers(kind)],
              "input_shape": ["N", 64] if kind == "mlp" else ["N", 1, 8, 8],
              "variants": {}}
    if len(weight_layers(kind)) < len(MODELS[kind]):
        result["pools"] = [{"name": n, "op": op, "kernel": None if s is None else list(s),
                            "stride": st} for n, op, s, st, _ in MODELS[kind]
                           if op in ("maxpool", "gap")]
    adds = [{"name": n, "inputs": [MODELS[kind][i - 1][0], s], "activation": "relu"}
            for i, (n, op, s, _, _) in enumerate(MODELS[kind]) if op == "add"]
    if adds:
        result["adds"] = adds
    for fmt in formats_of(kind):
        fidx = list(FORMATS).index(fmt)
        t1 = time.perf_counter()
        keep = {n: kept_dense(kind, n, fmt) for n in names}
        keep = {n: why for n, why in keep.items() if why}
        for n, why in keep.items():
            print(f"  {kind} {fmt}: {n} stays dense: {why}")
        pruned = [n for n in names if n not in keep] if fmt != "dense" else []
        seed = [SEED, kidx, fidx]
        net, masks = prune_finetune(base, fmt, pruned, data, seed, f"{kind} {fmt}")
        trials = {}
        for n in keep:  # the same variant with the kept-dense layer pruned too, for comparison
            alt, _ = prune_finetune(base, fmt, pruned + [n], data, seed, "", verbose=False)
            trials[n] = {"test_accuracy_layer_dense": round(net.accuracy(xte, yte), 4),
                         "test_accuracy_layer_pruned": round(alt.accuracy(xte, yte), 4)}
            print(f"  {kind} {fmt}: trial with {n} pruned too: test {alt.accuracy(xte, yte):.2f} "
                  f"% (NumPy float64) against {net.accuracy(xte, yte):.2f} % with {n} dense")
        float_path = out_dir / f"{kind}_{fmt}.onnx"
        int8_path = out_dir / f"{kind}_{fmt}_int8.onnx"
        export_onnx(net, float_path)
        overrides = quantize(float_path, int8_path, kind, xtr[calib_idx])
        acc_f, cor_f = ort_accuracy(float_path, kind, xte, yte)
        acc_q, cor_q = ort_accuracy(int8_path, kind, xte, yte)
        qmodel = onnx.load(int8_path)
        onnx.checker.check_model(qmodel, full_check=True)
        zps = zero_points(qmodel)
        assert zps and all(not np.any(z) for _, z in zps), "non-zero zero point"
        qw = int8_weights(qmodel)
        layers = {}
        for name, _, shape, _, _ in weight_layers(kind):
            W = net.params[f"{name}.weight"]
            Wq = qw[name]
            assert Wq.dtype == np.int8 and Wq.shape == tuple(shape)
            mask = masks.get(f"{name}.weight")
            if mask is not None:  # pruned zeros stay exact zeros through symmetric quantization
                assert not np.any(W[~mask]) and not np.any(Wq[~mask]), (kind, fmt, name)
                Wq2 = Wq.reshape(shape[0], -1).astype(np.int64)
                method, kwargs, pack_fmt, pack_args = FORMATS[fmt]
                assert np.array_equal(prune(Wq2, method, **kwargs)[0], Wq2), (kind, fmt, name)
            layers[name] = {
                "pruned": mask is not None,
                "method": FORMATS[fmt][0] if mask is not None else None,
                "kept_dense_reason": keep.get(name),
                "density": round(float(np.count_nonzero(W)) / W.size, 6),
                "int8_density": round(float(np.count_nonzero(Wq)) / Wq.size, 6),
                "mask_density": None if mask is None else round(float(mask.mean()), 6),
            }
        print(f"  {kind} {fmt}: float onnxruntime {acc_f:.2f} %, QDQ int8 onnxruntime "
              f"{acc_q:.2f} %; density " + ", ".join(f"{n} {v['density']:.3f}"
                                                     for n, v in layers.items())
              + f"  ({time.perf_counter() - t1:.1f} s)", flush=True)
        result["variants"][fmt] = {
            "float_accuracy": round(acc_f, 4), "float_correct": cor_f,
            "qdq_accuracy": round(acc_q, 4), "qdq_correct": cor_q,
            "numpy_float64_accuracy": round(net.accuracy(xte, yte), 4),
            "layers": layers,
            "kept_dense_trials": trials,
            "float_ops": op_list(onnx.load(float_path)),
            "qdq_ops": op_list(qmodel),
            "files": [float_path.name, int8_path.name],
        }
        if kind in SPARSEMAC_MODELS:    # the pools and adds on sparsemac's model engine
            t2 = time.perf_counter()
            sm = sparsemac_accuracy(int8_path, kind, xte, yte)
            result["variants"][fmt].update(tensor_quant_overrides=overrides,
                                           sparsemac=sm)
            print(f"  {kind} {fmt}: sparsemac model engine int8 {sm['accuracy']:.2f} % "
                  f"({sm['mismatches']} mismatches, max {sm['max_lsb_vs_onnxruntime']} LSB "
                  f"from onnxruntime; {time.perf_counter() - t2:.1f} s)", flush=True)
    return result


def write_readme(out_dir: Path, res: dict):
    fmt_text = {
        "dense": "dense",
        "nm24": "2:4 along K (N:M, `prune(W, 'nm', nm=(2, 4))`)",
        "nm18": "1:8 along K (`prune(W, 'nm', nm=(1, 8))`)",
        "block50": "8x8 blocks, 50 % of the elements kept (`prune(W, 'block', density=0.5)`)",
        "bitmap75": "unstructured, 75 % zeros (`prune(W, 'unstructured', density=0.25)`)",
    }
    rows = []
    for kind in MODELS:
        for fmt in formats_of(kind):
            v = res["models"][kind]["variants"][fmt]
            dens = ", ".join(f"{n} {d['density']:.3f}" + ("" if d["pruned"] or fmt == "dense"
                                                            else " (dense)")
                             for n, d in v["layers"].items())
            rows.append(f"| {kind} | {fmt} | {v['float_accuracy']:.2f} | "
                        f"{v['qdq_accuracy']:.2f} | {dens} |")
    ops = {kind: (" ".join(res["models"][kind]["variants"]["dense"]["float_ops"]))
           for kind in MODELS}
    pool_header = ("| model | format | float % | QDQ int8 ONNX Runtime % | int8 sparsemac % | "
                   "mismatches | max LSB vs ONNX Runtime | same class as ONNX Runtime % | "
                   "pool scale overrides |\n" + "|---" * 9 + "|")
    pool_lines = []
    for kind in MODELS:
        for fmt in formats_of(kind):
            v = res["models"][kind]["variants"][fmt]
            if "sparsemac" not in v:
                continue
            sm = v["sparsemac"]
            pool_lines.append(
                f"| {kind} | {fmt} | {v['float_accuracy']:.2f} | {v['qdq_accuracy']:.2f} | "
                f"{sm['accuracy']:.2f} | {sm['mismatches']} | {sm['max_lsb_vs_onnxruntime']} | "
                f"{100 * sm['predictions_agree_with_onnxruntime']:.2f} | "
                + ", ".join(f"`{t}` {sc:.6g}" for t, sc in v["tensor_quant_overrides"].items())
                + " |")
    kept = []
    for (kind, name), reasons in KEEP_DENSE.items():
        fmts = list(reasons)
        trials = "; ".join(
            f"{fmt}: {t['test_accuracy_layer_dense']:.2f} % dense, "
            f"{t['test_accuracy_layer_pruned']:.2f} % pruned"
            for fmt in fmts
            for t in [res["models"][kind]["variants"][fmt]["kept_dense_trials"][name]])
        kept.append(textwrap.fill(f"- `{kind}` `{name}` in " + "; in ".join(
            f"{fmt}: {why}" for fmt, why in reasons.items()) + ".", 100,
            subsequent_indent="  "))
        kept.append(textwrap.fill(f"Trial (NumPy float64 test accuracy of the variant "
                                  f"fine-tuned with the layer dense / pruned too): {trials}.",
                                  100, initial_indent="  ", subsequent_indent="  "))
    kept = "\n".join(kept)
    limits_text = "".join(f"`{kind}` runs with `limits=\"{lim}\"` (`--limits {lim}`, "
                          f"`SPARSEMAC_LIMITS` in `train.py`).\n"
                          for kind, lim in SPARSEMAC_LIMITS.items())
    n_train, n_test = res["dataset"]["n_train"], res["dataset"]["n_test"]
    cr = dict((n, s) for n, _, s, _, _ in MODELS["cnn_res"])["conv1"][0]
    models_table = "\n".join([
        "| model | input | layers (ReLU between layers, none after the last) |",
        "|---|---|---|",
        "| mlp | `input` float32 [N, 64] (pixels / 16) | Gemm 64->64, Gemm 64->32, Gemm 32->10 |",
        "| cnn | `input` float32 [N, 1, 8, 8] (pixels / 16) | Conv 1->8 3x3 pad 1, "
        "Conv 8->16 3x3 stride 2 pad 1, Flatten, Gemm 256->10 |",
        "| cnn_pool | `input` float32 [N, 1, 8, 8] (pixels / 16) | Conv 1->8 3x3 pad 1, "
        "MaxPool 2x2, Conv 8->32 3x3 pad 1, GlobalAveragePool, Flatten, Gemm 32->10 |",
        f"| cnn_res | `input` float32 [N, 1, 8, 8] (pixels / 16) | Conv 1->{cr} 3x3 pad 1, "
        f"MaxPool 2x2, residual block: Conv {cr}->{cr} 3x3 pad 1, Conv {cr}->{cr} 3x3 pad 1 "
        f"(no ReLU), Add of the MaxPool output, ReLU; GlobalAveragePool, Flatten, "
        f"Gemm {cr}->10 |",
        "| cnn_dw | `input` float32 [N, 1, 8, 8] (pixels / 16) | Conv 1->8 3x3 pad 1, "
        "depthwise Conv 3x3 pad 1 (group 8), pointwise Conv 8->16 1x1, MaxPool 2x2, depthwise "
        "Conv 3x3 pad 1 (group 16), pointwise Conv 16->32 1x1, GlobalAveragePool, Flatten, "
        "Gemm 32->10 |"])
    files_table = "\n".join([
        "| file | content |",
        "|---|---|",
        f"| `{{mlp,cnn}}_{{{','.join(FORMATS)}}}.onnx`, "
        f"`{{cnn_pool,cnn_res,cnn_dw}}_{{{','.join(formats_of('cnn_pool'))}}}.onnx` | float32 "
        "model (pruned zeros are exact zeros) |",
        "| `<model>_<format>_int8.onnx` | QDQ int8 model of the same weights "
        "(`quantize_static`) |",
        f"| `test.npz` | `images` float32 [{n_test}, 1, 8, 8] (pixels / 16), `labels` int64 "
        f"[{n_test}]: the test split; the MLP takes `images.reshape(-1, 64)` |",
        f"| `calib.npz` | `images` float32 [{N_CALIB}, 1, 8, 8], `labels` int64: the calibration "
        "images, drawn from the training split |",
        "| `accuracy_train.json` | every number measured by `train.py` (accuracy, densities, "
        "op lists, settings) |"])
    text = f"""# digits: five small sparse int8 networks (scikit-learn digits)

Real, small example networks for the accelerator: an MLP and four CNNs (a plain one, one with
pooling, one with a residual block and one MobileNet-style depthwise / pointwise stack) trained
on scikit-learn's bundled `load_digits` (8x8 grey images, 10 classes; no download), pruned to
each weight format of the accelerator with the project's own `sparsemac.golden.prune`,
fine-tuned with the mask fixed, exported to ONNX and quantized to int8 QDQ models with
onnxruntime.

Everything in this folder is written by `train.py` (NumPy only for training, one core,
fixed seeds; about three minutes, byte-identical files on a rerun on the same machine;
`--models cnn_res cnn_dw` retrains those two only, under two minutes):

```sh
.venv/bin/python examples/digits/train.py      # needs numpy, scikit-learn, onnx, onnxruntime
.venv/bin/python -m pytest tests/examples/test_digits_models.py
```

## Models

{models_table}

Output `logits` float32 [N, 10]; the class is the arg-max.  ONNX ops (opset {OPSET}, IR version
{IR_VERSION}): mlp `{ops['mlp']}`; cnn `{ops['cnn']}`; cnn_pool `{ops['cnn_pool']}`;
cnn_res `{ops['cnn_res']}`; cnn_dw `{ops['cnn_dw']}` (the last three in formats
{', '.join(formats_of('cnn_pool'))} only; a depthwise Conv has `group` = channels).  The QDQ
models add a DequantizeLinear on every weight (int8, per output channel) and bias (int32), and a
QuantizeLinear + DequantizeLinear pair on the input and on the output of every Conv, Gemm, Relu,
pool, Add and Flatten (op lists in `accuracy_train.json`).
Weights are `[out, in]` (Gemm `transB=1`) and OIHW; the `[M, K]` view of a conv weight is
`[O, C*KH*KW]`, K order c, kh, kw (as `golden.ops.im2col`).

## Files

{files_table}

Split: `train_test_split(test_size=0.2, random_state=0, stratify=labels)`, {n_train} training and
{n_test} test images.  Calibration: {N_CALIB} training images (`default_rng({SEED})`
permutation, first {N_CALIB}, sorted).

## Formats and pruning

{chr(10).join(f"- `{k}`: {t}" for k, t in fmt_text.items())}

Masks are `golden.prune` masks of the `[M, K]` view of each weight, the patterns the packed
formats of docs/spec.md section 3 hold (`prune` takes integers: the float weights are ranked
on the grid `rint(W / max|W| * 2**20)` of the whole tensor).  Each sparse variant starts from
the trained dense model, is pruned once and fine-tuned for {FINETUNE['mlp'][0]} epochs with the
mask fixed.  Every layer is pruned except:

{kept}

## Quantization

`onnxruntime.quantization.quantize_static(float_model, int8_model, reader,
quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
per_channel=True, calibrate_method=CalibrationMethod.MinMax,
extra_options={{"ActivationSymmetric": True, "WeightSymmetric": True}})`, `reader` giving the
{N_CALIB} calibration images in batches of 50.  Every zero point is 0; pruned weights stay exact
int8 zeros (checked by `train.py` and the test).  With symmetric activations onnxruntime keeps
the Relu nodes.  It gives MaxPool the scale of its input but a GlobalAveragePool an output scale
of its own, which sparsemac's pools cannot follow (they do not requantize, docs/spec.md section
2.3): the models with one (`cnn_pool`, `cnn_res`, `cnn_dw`) are quantized a second time with
the same calibration and
`extra_options["TensorQuantOverrides"]` from `sparsemac.host.onnx_import.pool_scale_overrides`,
which gives the pool's output its input's scale (the scales are in the table below).

## Accuracy (test split, {n_test} images, onnxruntime {res['versions']['onnxruntime']} CPU)

Density = non-zero fraction of each layer's float weights (the int8 densities, a little lower
where small kept weights round to 0, are in `accuracy_train.json`).  The MLP's "dense" layers
hold a few exact zeros: the incoming weights of hidden units that never activate decay under
weight decay below the float32 range.

| model | format | float % | QDQ int8 % | density per layer |
|---|---|---|---|---|
{chr(10).join(rows)}

The pooling, residual and depthwise models on sparsemac's model engine (`sparsemac run
<model>_<format>_int8.onnx --input test.npz --labels test.npz`, default configuration;
bit-exact with the golden model, "mismatches" counts the values that are not), against ONNX
Runtime on the same QDQ model (the other models: docs/reports/accuracy.md; the residual add
runs as the accelerator runs it, a matmul over its two inputs, docs/host.md).
{limits_text}
{pool_header}
{chr(10).join(pool_lines)}

Measured by `train.py` with numpy {res['versions']['numpy']}, scikit-learn
{res['versions']['sklearn']}, onnx {res['versions']['onnx']}.  Training in float64 on another
CPU or BLAS can round differently and give slightly different weights; the test
(`tests/examples/test_digits_models.py`) checks the committed models against
`accuracy_train.json`.
"""
    (out_dir / "README.md").write_text(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: %(default)s)")
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    args = ap.parse_args(argv)
    import sklearn

    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_data()
    xtr, ytr, xte, yte, calib_idx = data
    print(f"digits: {len(xtr)} training, {len(xte)} test images; {len(calib_idx)} calibration "
          f"images from the training split")
    save_npz(args.out / "test.npz", images=xte, labels=yte)
    save_npz(args.out / "calib.npz", images=xtr[calib_idx], labels=ytr[calib_idx])
    res = {
        "dataset": {"source": "sklearn.datasets.load_digits", "scale": "pixels / 16",
                    "split": "train_test_split(test_size=0.2, random_state=0, stratify=y)",
                    "n_train": len(xtr), "n_test": len(xte), "n_calib": len(calib_idx),
                    "test_file": "test.npz", "calib_file": "calib.npz",
                    "layout": "images float32 [N, 1, 8, 8]; the MLP input is "
                              "images.reshape(N, 64)"},
        "formats": {k: {"prune_method": v[0],
                        "prune_args": {a: list(b) if isinstance(b, tuple) else b
                                       for a, b in v[1].items()},
                        "pack_format": v[2],
                        "pack_args": {a: list(b) if isinstance(b, tuple) else b
                                      for a, b in v[3].items()}}
                    for k, v in FORMATS.items()},
        "quantize_static": {**QUANT_SETTINGS, "calibration": f"{N_CALIB} training images, "
                                                             "batches of 50"},
        "training": {"seed": SEED, "batch": BATCH, "weight_decay": WEIGHT_DECAY,
                     "optimizer": "Adam, cosine learning-rate decay",
                     "dense": {k: {"epochs": e, "lr": lr} for k, (e, lr) in TRAIN.items()},
                     "finetune": {k: {"epochs": e, "lr": lr} for k, (e, lr) in FINETUNE.items()},
                     "prune_grid": "rint(W / max|W| * 2**20) (int64) per tensor"},
        "versions": {"numpy": np.__version__, "sklearn": sklearn.__version__,
                     "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                     "opset": OPSET, "ir_version": IR_VERSION},
        "models": {},
    }
    old = args.out / "accuracy_train.json"
    if set(args.models) != set(MODELS) and old.exists():
        res["models"] = json.loads(old.read_text())["models"]
    for kind in args.models:
        res["models"][kind] = run_model(kind, data, args.out)
    res["models"] = {k: res["models"][k] for k in MODELS if k in res["models"]}
    (args.out / "accuracy_train.json").write_text(json.dumps(res, indent=1) + "\n")
    if set(res["models"]) == set(MODELS):
        write_readme(args.out, res)
    print("\nmodel  format    float %  QDQ int8 %")
    for kind, r in res["models"].items():
        for fmt, v in r["variants"].items():
            print(f"{kind:5s}  {fmt:8s}  {v['float_accuracy']:7.2f}  {v['qdq_accuracy']:10.2f}")
    print(f"\ntotal {time.perf_counter() - t0:.1f} s; files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
