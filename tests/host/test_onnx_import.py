"""ONNX import, calibration, batches and outputs (docs/host.md sections 5 and 6).

Random float models are built with onnx.helper and quantized by ONNX Runtime's own
``quantize_static`` (QDQ, symmetric int8, per-channel weights); ONNX Runtime is the independent
oracle: sparsemac's int8 outputs of a QDQ model must be within 1 LSB of its outputs on every
value (rounding: ONNX Runtime scales in float and rounds half to even, sparsemac multiplies by a
31-bit ``mult`` and shifts with rounding half up).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from sparsemac.host import NetworkError  # noqa: E402
from sparsemac.host.compiler import calibrate, compile_network  # noqa: E402
from sparsemac.host.network import network_from_dict  # noqa: E402
from sparsemac.host.onnx_import import OnnxError, detect_format, load_onnx  # noqa: E402
from sparsemac.host.onnx_reference import compare, float_graph, ort_run  # noqa: E402
from sparsemac.host.run import run  # noqa: E402
from sparsemac.hw.config import AcceleratorConfig  # noqa: E402

CFG = AcceleratorConfig.preset("default")
SEED = int(os.environ.get("SPARSEMAC_SEED", "0")) or int.from_bytes(os.urandom(2), "little")


@pytest.fixture(scope="module")
def rng():
    print(f"[seed] SPARSEMAC_SEED={SEED}")
    return np.random.default_rng(SEED)


def _model(nodes, inits, in_shape, out_shape):
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, in_shape)], [helper.make_tensor_value_info(
            "logits", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def mlp(rng, dims=(20, 16, 12, 5), zero_frac=0.0):
    nodes, inits, cur = [], {}, "input"
    for i, (k, m) in enumerate(zip(dims, dims[1:])):
        w = rng.normal(0, 1 / np.sqrt(k), (m, k))
        w[rng.random(w.shape) < zero_frac] = 0
        inits[f"w{i}"], inits[f"b{i}"] = w, rng.normal(0, 0.1, m)
        out = "logits" if i == len(dims) - 2 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"],
                                      [out if out == "logits" else f"g{i}"], name=f"fc{i}",
                                      transB=1))
        if out != "logits":
            nodes.append(helper.make_node("Relu", [f"g{i}"], [out], name=f"relu{i}"))
        cur = out
    return _model(nodes, inits, ["N", dims[0]], ["N", dims[-1]])


def cnn(rng, c=2, hw=7, classes=4):
    w1 = rng.normal(0, 0.4, (6, c, 3, 3))
    w2 = rng.normal(0, 0.2, (8, 6, 3, 3))
    oh = (hw + 2 - 3) // 2 + 1
    wf = rng.normal(0, 0.1, (classes, 8 * oh * oh))
    inits = {"w1": w1, "b1": rng.normal(0, .1, 6), "w2": w2, "b2": rng.normal(0, .1, 8),
             "wf": wf, "bf": rng.normal(0, .1, classes)}
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1",
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2",
                              pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Flatten", ["r2"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc", transB=1)]
    return _model(nodes, inits, ["N", c, hw, hw], ["N", classes])


def quantize(model, calib, tmp: Path, name: str, *, overrides=None) -> Path:
    """``quantize_static`` QDQ, symmetric int8, per channel; ``overrides(qdq_path)``: a second
    pass with the ``TensorQuantOverrides`` it returns for the first pass's model."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": calib[i:i + 32]} for i in range(0, len(calib), 32)])

        def get_next(self):
            return next(self.it, None)
    fp, qp = tmp / f"{name}.onnx", tmp / f"{name}_int8.onnx"
    onnx.save(model, fp)
    cwd = os.getcwd()
    os.chdir(tmp)
    opts = {"ActivationSymmetric": True, "WeightSymmetric": True}
    try:
        for _ in range(2 if overrides else 1):
            quantize_static(str(fp), str(qp), Reader(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            per_channel=True, extra_options=opts)
            if overrides:
                opts = {**opts, "TensorQuantOverrides": overrides(qp)}
    finally:
        os.chdir(cwd)
    return qp


@pytest.mark.parametrize("kind", ["gemm", "conv", "mlp", "mlp-sparse", "cnn"])
def test_qdq_model_agrees_with_onnxruntime(tmp_path, rng, kind):
    """A QDQ model on sparsemac (model engine, bit-exact with golden) against ONNX Runtime.

    One layer (gemm, conv): every output value within 1 LSB (the rounding rules differ only
    at ties and in the last bit of the multiplier).  Several layers: a 1-LSB difference in a
    hidden layer is multiplied by the next layer's weights, so a few outputs may differ by 2
    LSB: at most 1 % of the values more than 1 LSB, none more than 3, and nearly all equal."""
    if kind in ("cnn", "conv"):
        m = cnn(rng) if kind == "cnn" else _model(
            [helper.make_node("Conv", ["input", "w", "b"], ["logits"], name="c",
                              pads=[1, 1, 1, 1], strides=[1, 2])],
            {"w": rng.normal(0, .3, (5, 2, 3, 3)), "b": rng.normal(0, .1, 5)},
            ["N", 2, 7, 7], ["N", 5, 7, 4])
        x = rng.random((40, 2, 7, 7)).astype(np.float32)
    else:
        dims = (20, 7) if kind == "gemm" else (20, 16, 12, 5)
        m = mlp(rng, dims=dims, zero_frac=0.6 if kind == "mlp-sparse" else 0.0)
        x = rng.normal(0, 1, (70, 20)).astype(np.float32)
    q = quantize(m, x[:32], tmp_path, kind)
    model = load_onnx(q, cfg=CFG)
    assert model.quantized
    rr = run(model.with_input(x), CFG)
    assert rr.report["mismatches"] == 0 and rr.report["status"] == "OK"
    ref = ort_run(q, x)
    c = compare(rr.values, ref, rr.report["output_scale"])
    print(kind, c)
    if kind in ("gemm", "conv"):
        assert c["max_lsb"] <= 1, c
    else:
        assert c["max_lsb"] <= 3 and c["over_1_lsb"] <= 0.01 * c["values"], c
    assert c["exact"] >= 0.9 * c["values"], c


def test_depthwise_qdq_agrees_with_onnxruntime(tmp_path, rng):
    """A depthwise Conv (``group`` = channels) then a pointwise one, quantized by ONNX Runtime:
    imported as a block-diagonal conv2d in bitmap (auto), bit-exact with golden on the model
    engine, every output within 1 LSB of ONNX Runtime's (3 on the second layer at most)."""
    c = 4
    nodes = [helper.make_node("Conv", ["input", "wd", "bd"], ["d"], name="dw", group=c,
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["d"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "wp", "bp"], ["logits"], name="pw")]
    m = _model(nodes, {"wd": rng.normal(0, .4, (c, 1, 3, 3)), "bd": rng.normal(0, .1, c),
                       "wp": rng.normal(0, .4, (6, c, 1, 1)), "bp": rng.normal(0, .1, 6)},
               ["N", c, 6, 6], ["N", 6, 6, 6])
    x = rng.random((40, c, 6, 6)).astype(np.float32)
    q = quantize(m, x[:32], tmp_path, "dw")
    model = load_onnx(q, cfg=CFG)
    dw = model.network.layers[0]
    assert dw.groups == c and dw.fmt == "bitmap" and dw.weight_shape == (c, 1, 3, 3)
    assert "depthwise" in model.formats["dw"]["why"]
    rr = run(model.with_input(x), CFG)
    assert rr.report["mismatches"] == 0 and rr.report["status"] == "OK"
    c_ = compare(rr.values, ort_run(q, x), rr.report["output_scale"])
    print("depthwise", c_)
    assert c_["max_lsb"] <= 3 and c_["over_1_lsb"] <= 0.01 * c_["values"], c_
    assert c_["exact"] >= 0.9 * c_["values"], c_


def test_qdq_scales_are_the_models(tmp_path, rng):
    """The input scale and each layer's requantization scale are the model's Q scales."""
    x = rng.normal(0, 1, (40, 20)).astype(np.float32)
    q = quantize(mlp(rng), x, tmp_path, "s")
    g = onnx.load(q).graph
    init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    qs = [float(init[n.input[1]]) for n in g.node if n.op_type == "QuantizeLinear"]
    model = load_onnx(q, cfg=CFG)
    net = model.network
    assert net.input_scale == pytest.approx(qs[0], rel=1e-7)
    got = [net.input_scale] + [v for sp in net.layers
                               for v in (sp.requant_scale, sp.out_scale) if v is not None]
    for v in got:
        assert any(v == pytest.approx(s, rel=1e-7) for s in qs), (v, qs)
    rep = run(model.with_input(x), CFG).report
    assert rep["input_scale"] == pytest.approx(qs[0], rel=1e-7)
    assert rep["layers"][0]["requant_scale"] == pytest.approx(net.layers[0].requant_scale)


def test_float_model_with_calibration_matches_float(tmp_path, rng):
    """A float model calibrated on a separate set: the int32 logits (bias kept, dequantized)
    follow the float model closely and the predicted classes almost always agree."""
    m = mlp(rng)
    p = tmp_path / "f.onnx"
    onnx.save(m, p)
    x = rng.normal(0, 1, (80, 20)).astype(np.float32)
    calib = rng.normal(0, 1, (50, 20)).astype(np.float32)
    model = load_onnx(p, cfg=CFG)
    assert not model.quantized and not model.network.layers[-1].requant
    rr = run(model.with_input(x), CFG, calib=calib.T)
    ref = ort_run(p, x)
    err = np.abs(rr.values - ref).mean() / np.abs(ref).mean()
    assert err < 0.05, err       # int8 with max calibration on 50 samples: a few % on average
    assert np.mean(rr.values.argmax(1) == ref.argmax(1)) >= 0.9
    # the calibration set, not the input, fixed the scales: another input gives the same ones
    rr2 = run(model.with_input(x[:10] * 3), CFG, calib=calib.T)
    assert rr2.report["input_scale"] == rr.report["input_scale"]
    assert [e["requant_scale"] for e in rr2.report["layers"]] == \
        [e["requant_scale"] for e in rr.report["layers"]]


def test_split_jobs_equal_one_job(rng):
    """A matrix input too wide for the tile buffers runs as several jobs; with the scales fixed
    once (calibrated on the whole input) the outputs equal one job on a build that holds it."""
    small = AcceleratorConfig.preset("tiny")
    net = network_from_dict({"seed": 3, "input": {"shape": [24, 150]}, "layers": [
        {"op": "matmul", "out_features": 16, "activation": "relu"},
        {"op": "matmul", "out_features": 6, "requant": False}]})
    rr = run(net, small)
    assert rr.report["jobs"] > 1 and rr.report["split"], rr.report
    assert rr.report["mismatches"] == 0
    fixed = calibrate(replace(net, input_values=_random_input(net)), small)
    one = compile_network(fixed, CFG)
    last = one.layers[-1]
    exp = last.expected.astype(np.int64) + (0 if last.bias is None else last.bias[:, None])
    assert np.array_equal(rr.outputs, exp.T)
    assert rr.outputs.shape == (150, 6)


def _random_input(net):
    from sparsemac.host.compiler import random_input

    return random_input(net, net.seed)


def test_image_batch_shares_weights_and_splits(rng):
    """A batch of images is one chain per image with one copy of the parameters, several jobs
    past max_images, and the outputs equal each image run alone with the same parameters."""
    x = rng.integers(-60, 60, (7, 2, 6, 6)).astype(np.int8)
    net = network_from_dict({"seed": 1, "input": {"shape": [7, 2, 6, 6], "values": x.tolist()},
                             "layers": [{"op": "conv2d", "out_channels": 4, "kernel": 3,
                                         "padding": 1, "activation": "relu"},
                                        {"op": "matmul", "out_features": 3}]})
    assert net.batch == 7
    cn = compile_network(net, CFG)
    assert len(cn.networks) == 7
    w0 = {cl.descriptor.weights for cl in cn.layers if cl.spec.index == 0}
    assert len(w0) == 1            # one copy of conv's weights for the 7 images
    rr = run(net, CFG, max_images=3)
    assert rr.report["jobs"] == 3 and rr.report["mismatches"] == 0
    fixed = calibrate(net, CFG)
    for b in range(7):
        one = compile_network(replace(fixed, input_values=x[b], batch=1), CFG)
        assert np.array_equal(rr.outputs[b], one.layers[-1].expected.ravel()), b


def test_bias_kept_without_requant():
    """requant false keeps a given bias: the outputs are the int32 accumulators plus it."""
    net = network_from_dict({"input": {"shape": [4, 3], "values": [[1, 2, 3]] * 4},
                             "layers": [{"op": "matmul", "out_features": 2, "requant": False,
                                         "weights": [[1, 0, 0, 0], [0, 1, 1, 0]],
                                         "bias": [1000, -7]}]})
    rr = run(net, CFG)
    assert rr.outputs.tolist() == [[1001, -5], [1002, -3], [1003, -1]]


def test_near_dead_row_gets_its_bias():
    """A row of ~0 float weights with a real bias: no overflow, the output is the bias."""
    w = np.array([[1e-30, -1e-30, 0.0], [0.5, -0.25, 1.0]])
    net = network_from_dict({"input": {"shape": [3, 2], "values": [[0.5, 1.0]] * 3},
                             "layers": [{"op": "matmul", "weights": w.tolist(),
                                         "bias": [0.75, 0.0], "requant": False}]})
    rr = run(net, CFG)
    assert rr.values[:, 0] == pytest.approx([0.75, 0.75], rel=1e-6)
    assert rr.values[:, 1] == pytest.approx((w[1] @ np.array([[0.5, 1.0]] * 3)), abs=0.02)


@pytest.mark.parametrize("bad, message", [
    (np.array([[1000, 0], [0, 1]], dtype=np.int64), "must hold int8 values (-128..127) when "
     "given as integers, not range [0, 1000] (w.npy)"),
    (np.full((2, 2), np.nan), "must hold finite numbers only (no NaN or inf) (w.npy)"),
])
def test_npy_weights_checked_like_inline(tmp_path, bad, message):
    np.save(tmp_path / "w.npy", bad)
    with pytest.raises(NetworkError) as e:
        network_from_dict({"input": {"shape": [2, 1]}, "layers": [
            {"op": "matmul", "weights": "w.npy"}]}, base=tmp_path)
    assert str(e.value) == f"network: layers[0].weights {message}"


def test_int32_bias_list_accepted():
    net = network_from_dict({"input": {"shape": [2, 1]}, "layers": [
        {"op": "matmul", "out_features": 2, "bias": [100000, -2**31]}]})
    assert net.layers[0].bias.tolist() == [100000, -2**31]


@pytest.mark.parametrize("make, message", [
    (lambda: _model([helper.make_node("GlobalMaxPool", ["input"], ["logits"], name="pool")],
                    {}, ["N", 1, 4, 4], ["N", 1, 1, 1]),
     "node 'pool' (GlobalMaxPool) is not supported; supported ops: Conv, Gemm"),
    (lambda: _model([helper.make_node("Conv", ["input", "w"], ["logits"], name="grouped",
                                      group=2)], {"w": np.ones((4, 2, 3, 3))},
                    ["N", 4, 5, 5], ["N", 4, 3, 3]),
     "node 'grouped' (Conv) must have group 1, or group = channels with one filter per "
     "channel (depthwise), not group 2 with weights [4, 2, 3, 3]"),
    (lambda: _model([helper.make_node("Gemm", ["input", "w"], ["logits"], name="g",
                                      transA=1)], {"w": np.ones((3, 3))}, ["N", 3],
                    ["N", 3]),
     "node 'g' (Gemm) must have transA 0, alpha 1 and beta 1"),
])
def test_unsupported_models_are_one_line(tmp_path, make, message):
    p = tmp_path / "m.onnx"
    onnx.save(make(), p)
    with pytest.raises(OnnxError) as e:
        load_onnx(p, cfg=CFG)
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert str(e.value).startswith(str(p))


def test_asymmetric_activations_refused(tmp_path, rng):
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    x = rng.normal(0, 1, (20, 20)).astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": x}])

        def get_next(self):
            return next(self.it, None)
    fp, qp = tmp_path / "a.onnx", tmp_path / "a_u8.onnx"
    onnx.save(mlp(rng), fp)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        quantize_static(str(fp), str(qp), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        os.chdir(cwd)
    with pytest.raises(OnnxError, match="activations must be symmetric int8"):
        load_onnx(qp, cfg=CFG)


def test_detect_format():
    rng = np.random.default_rng(5)
    w = rng.integers(1, 100, (16, 32))
    assert detect_format(w, CFG)[0] == {"format": "dense"}
    nm = w.copy().reshape(16, 8, 4)
    nm[:, :, 2:] = 0
    assert detect_format(nm.reshape(16, 32), CFG)[0] == {"format": "nm", "nm": "2:4"}
    blk = w.copy()
    blk[:8, :16] = 0
    blk[8:, 16:] = 0
    assert detect_format(blk, CFG)[0] == {"format": "block"}
    sp = w * (rng.random(w.shape) < 0.3)
    assert detect_format(sp, CFG)[0]["format"] in ("bitmap", "nm")
    assert detect_format(sp, replace(CFG, formats=("dense", "bitmap")))[0] == \
        {"format": "bitmap"}
    # N is what the hardware runs, a power of two: exactly 3 of every 8 is not "3:8" (the
    # tiles would report BAD_PARAM) and 4:8 is too dense for it, so bitmap; 4 of 8 is 4:8
    for n, want in ((3, {"format": "bitmap"}), (4, {"format": "nm", "nm": "4:8"}),
                    (1, {"format": "nm", "nm": "1:8"})):
        g = w.copy().reshape(16, 4, 8)
        g[:, :, n:] = 0
        assert detect_format(g.reshape(16, 32), CFG)[0] == want, n


def test_float_graph_drops_activation_qdq(tmp_path, rng):
    x = rng.normal(0, 1, (30, 20)).astype(np.float32)
    m = mlp(rng)
    q = quantize(m, x, tmp_path, "fg")
    fg = float_graph(q)
    ops = [n.op_type for n in fg.graph.node]
    assert "QuantizeLinear" not in ops
    ref = ort_run(tmp_path / "fg.onnx", x)
    got = ort_run(fg, x)
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()


def test_digits_example_reaches_float_accuracy():
    """The shipped QDQ digits models: int8 accuracy within 1 point of float, 0 values more
    than 1 LSB from ONNX Runtime (a subset of 120 test images)."""
    ex = Path(__file__).resolve().parents[2] / "examples" / "digits"
    t = np.load(ex / "test.npz")
    x, y = t["images"][:120], t["labels"][:120]
    for name in ("mlp_dense_int8", "cnn_nm24_int8"):
        model = load_onnx(ex / f"{name}.onnx", cfg=CFG)
        xi = x.reshape(len(x), -1) if model.input_layout == "matrix" else x
        rr = run(model.with_input(xi), CFG, labels=y)
        ref = ort_run(ex / f"{name}.onnx", xi)
        c = compare(rr.values, ref, rr.report["output_scale"])
        assert c["over_1_lsb"] == 0, (name, c)
        fl = ort_run(ex / f"{name.removesuffix('_int8')}.onnx", xi)
        facc = float(np.mean(fl.argmax(1) == y))
        assert rr.report["accuracy"] >= facc - 0.01 - 1e-9, (name, rr.report["accuracy"], facc)
