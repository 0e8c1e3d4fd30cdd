"""ONNX graphs with a residual add (issue 16): ``Add`` of two activations (in a QDQ model
DequantizeLinear -> Add -> QuantizeLinear, ONNX's QLinearAdd semantics) and the graph around it
imported as a network whose layers name their inputs (host/onnx_import.py), run on the model
engine with the architecture's limits (the hardware does not run the add yet) against ONNX
Runtime, the independent oracle.

Rounding: docs/spec.md section 2.4 aligns both terms exactly and rounds once (half up); ONNX
Runtime dequantizes to float32, adds and rounds the sum half to even.  Both round once, so on
the add alone every value is within 1 LSB (ties and the 31-bit ratios); the differences are
counted and bounded, not assumed away.  Through a residual block the 1-LSB differences of the
convolutions before the add propagate, bounded as the multi-layer tests of
tests/host/test_onnx_import.py bound them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import helper  # noqa: E402
from sparsemac.host.onnx_import import OnnxError, load_onnx  # noqa: E402
from sparsemac.host.onnx_reference import compare, ort_run  # noqa: E402
from sparsemac.host.run import run  # noqa: E402

from .test_onnx_import import CFG, _model, quantize  # noqa: E402

SEED = int(os.environ.get("SPARSEMAC_SEED", "0")) or int.from_bytes(os.urandom(2), "little")


@pytest.fixture(scope="module")
def rng():
    print(f"[seed] SPARSEMAC_SEED={SEED}")
    return np.random.default_rng(SEED)


def residual_cnn(rng, c=4, hw=6, classes=5):
    """stem conv -> relu -> [conv -> relu -> conv] + skip(stem) -> Add -> Relu -> Flatten ->
    Gemm."""
    inits = {"w0": rng.normal(0, .4, (c, 2, 3, 3)), "b0": rng.normal(0, .1, c),
             "w1": rng.normal(0, .3, (c, c, 3, 3)), "b1": rng.normal(0, .1, c),
             "w2": rng.normal(0, .3, (c, c, 3, 3)), "b2": rng.normal(0, .1, c),
             "wf": rng.normal(0, .1, (classes, c * hw * hw)), "bf": rng.normal(0, .1, classes)}
    p = [1, 1, 1, 1]
    nodes = [helper.make_node("Conv", ["input", "w0", "b0"], ["c0"], name="stem", pads=p),
             helper.make_node("Relu", ["c0"], ["r0"], name="relu0"),
             helper.make_node("Conv", ["r0", "w1", "b1"], ["c1"], name="conv1", pads=p),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=p),
             helper.make_node("Add", ["c2", "r0"], ["s"], name="res"),
             helper.make_node("Relu", ["s"], ["r2"], name="relu2"),
             helper.make_node("Flatten", ["r2"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc", transB=1)]
    return _model(nodes, inits, ["N", 2, hw, hw], ["N", classes])


def test_residual_block_imports_as_a_graph(tmp_path, rng):
    """The float and the QDQ model import as the same graph: the add names conv2 and the
    stem, the relu after the add is the add's table; the QDQ model's scales are its own (the
    add's QuantizeLinear is its requant_scale)."""
    m = residual_cnn(rng)
    x = rng.random((40, 2, 6, 6)).astype(np.float32)
    q = quantize(m, x[:32], tmp_path, "res")
    for path in (tmp_path / "res.onnx", q):
        net = load_onnx(path, cfg=CFG).network
        assert [(s.name, s.op, s.sources) for s in net.layers] == [
            ("stem", "conv2d", (-1,)), ("conv1", "conv2d", (0,)), ("conv2", "conv2d", (1,)),
            ("res", "add", (2, 0)), ("fc", "matmul", (3,))], path
        assert net.layers[3].activation == "relu"
    qm = load_onnx(q, cfg=CFG)
    model = onnx.load(q)
    init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert qm.network.layers[3].requant_scale == pytest.approx(float(init["s_scale"]))


def test_add_alone_within_one_lsb_of_onnxruntime(tmp_path, rng):
    """The add alone: ``Add(input, input)`` of a QDQ model through the import (every value
    within 1 LSB), and the integer rule itself against ONNX Runtime's QDQ form on int8 inputs:
    ``DequantizeLinear(a, s_a) + DequantizeLinear(b, s_b) -> QuantizeLinear(s_y)`` for random
    scales against `golden.add_requant` with `golden.add_params`: every value within 1 LSB,
    the differences counted (ONNX Runtime rounds the float32 sum half to even, spec 2.4 the
    exact sum half up)."""
    from onnx import TensorProto
    from sparsemac.golden import add_params, add_requant

    m = _model([helper.make_node("Add", ["input", "input"], ["logits"], name="twice")], {},
               ["N", 3, 5, 5], ["N", 3, 5, 5])
    x = (rng.normal(0, 1, (64, 3, 5, 5))).astype(np.float32)
    q = quantize(m, x[:32], tmp_path, "twice")
    qm = load_onnx(q, cfg=CFG)
    assert [(s.op, s.sources) for s in qm.network.layers] == [("add", (-1, -1))]
    rr = run(qm.with_input(x), CFG, limits="architecture")
    assert rr.report["status"] == "OK" and rr.report["mismatches"] == 0
    c = compare(rr.values, ort_run(q, x), rr.report["output_scale"])
    print(f"seed={SEED} add of the input with itself: {c}")
    assert c["max_lsb"] <= 1, (SEED, c)

    def scalar(name, v, dt=TensorProto.FLOAT):
        return helper.make_tensor(name, dt, [], [v])
    total = diff = 0
    for rep in range(21):
        s_a, s_b, s_y = (float(np.float32(v)) for v in 10.0 ** rng.uniform(-3, 0, 3))
        if rep == 20:       # every odd a + b a tie: (a + b) / 2
            s_a = s_b = 0.5
            s_y = 1.0
        g = helper.make_graph(
            [helper.make_node("DequantizeLinear", ["a", "sa", "z"], ["fa"]),
             helper.make_node("DequantizeLinear", ["b", "sb", "z"], ["fb"]),
             helper.make_node("Add", ["fa", "fb"], ["f"]),
             helper.make_node("QuantizeLinear", ["f", "sy", "z"], ["y"])], "qadd",
            [helper.make_tensor_value_info(n, TensorProto.INT8, [None]) for n in "ab"],
            [helper.make_tensor_value_info("y", TensorProto.INT8, [None])],
            [scalar("sa", s_a), scalar("sb", s_b), scalar("sy", s_y),
             scalar("z", 0, TensorProto.INT8)])
        mod = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        sess = ort.InferenceSession(mod.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        a = rng.integers(-127, 128, 4096).astype(np.int8)
        b = rng.integers(-127, 128, 4096).astype(np.int8)
        want = sess.run(None, {"a": a, "b": b})[0].astype(np.int64)
        got = add_requant(a, b, **add_params(s_a, s_b, s_y)).astype(np.int64)
        d = np.abs(got - want)
        assert d.max() <= 1, (SEED, s_a, s_b, s_y, int(d.max()))
        if rep == 20:       # ties: half up here, half to even in ONNX Runtime
            t = a.astype(np.int64) + b
            np.testing.assert_array_equal(d != 0, (t % 2 == 1) & ((t // 2) % 2 == 0),
                                          err_msg=f"seed={SEED}")
            print(f"seed={SEED} ties: {int(np.count_nonzero(d))} of {d.size} differ by 1 LSB")
            continue
        total, diff = total + d.size, diff + int(np.count_nonzero(d))
    print(f"seed={SEED} QDQ add vs golden: {diff} of {total} values differ by 1 LSB")
    assert diff <= 0.01 * total, (SEED, diff, total)


def test_residual_qdq_agrees_with_onnxruntime(tmp_path, rng):
    """The residual CNN, QDQ, on sparsemac (model engine, architecture limits, bit-exact with
    golden) against ONNX Runtime: the logits within the multi-layer bound (at most 1 % of the
    values over 1 LSB, none over 3), nearly all equal, predictions agreeing; the CLI runs it
    with ``--limits architecture`` and without (the add as a matmul, host/add_matmul.py: the
    same bounds against ONNX Runtime)."""
    m = residual_cnn(rng)
    x = rng.random((60, 2, 6, 6)).astype(np.float32)
    q = quantize(m, x[:32], tmp_path, "res")
    qm = load_onnx(q, cfg=CFG)
    rr = run(qm.with_input(x), CFG, limits="architecture")
    assert rr.report["status"] == "OK" and rr.report["mismatches"] == 0
    c = compare(rr.values, ort_run(q, x), rr.report["output_scale"])
    print(f"seed={SEED} residual: {c}")
    assert c["max_lsb"] <= 3 and c["over_1_lsb"] <= 0.01 * c["values"], (SEED, c)
    assert c["exact"] >= 0.9 * c["values"], (SEED, c)
    np.save(tmp_path / "x.npy", x[:8])
    cmd = [sys.executable, "-m", "sparsemac", "run", str(q), "--input", str(tmp_path / "x.npy"),
           "--json"]
    r = subprocess.run(cmd + ["--limits", "architecture"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["status"] == "OK" and rep["mismatches"] == 0
    assert [e["op"] for e in rep["layers"]] == ["conv2d", "conv2d", "conv2d", "add", "matmul"]
    h = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert h.returncode == 0 and "add" in h.stdout, h.stderr
    rh = run(qm.with_input(x), CFG)       # the hardware's limits: the add as a matmul
    assert rh.report["status"] == "OK" and rh.report["mismatches"] == 0
    ch = compare(rh.values, ort_run(q, x), rh.report["output_scale"])
    print(f"seed={SEED} residual, add as matmul: {ch}")
    assert ch["max_lsb"] <= 3 and ch["over_1_lsb"] <= 0.01 * ch["values"], (SEED, ch)


def test_branch_before_the_activation_is_refused(tmp_path):
    """A skip that reads a conv's output before the Relu another layer reads after it cannot
    be one layer output: one line naming the node."""
    inits = {"w0": np.ones((2, 2, 1, 1)), "w1": np.ones((2, 2, 1, 1))}
    m = _model([helper.make_node("Conv", ["input", "w0"], ["c0"], name="stem"),
                helper.make_node("Relu", ["c0"], ["r0"], name="relu0"),
                helper.make_node("Conv", ["r0", "w1"], ["c1"], name="conv1"),
                helper.make_node("Add", ["c1", "c0"], ["logits"], name="res")], inits,
               ["N", 2, 3, 3], ["N", 2, 3, 3])
    p = tmp_path / "m.onnx"
    onnx.save(m, p)
    with pytest.raises(OnnxError) as e:
        load_onnx(p, cfg=CFG)
    assert str(e.value) == (f"{p}: node 'res' (Add) reads the output of 'stem' before its "
                            f"activation, bias or quantization, which another node applies: "
                            f"a branch must start after them")
