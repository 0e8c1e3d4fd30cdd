"""The committed digits example models (examples/digits, written by examples/digits/train.py).

Each float and QDQ int8 ONNX model passes the ONNX checker, reproduces the test accuracy that
``train.py`` measured (accuracy_train.json) in onnxruntime, holds only the ops the accelerator
maps, has the sparsity pattern of its format in every pruned layer (golden prune, golden image
round trip and a direct count), and the int8 models are symmetric (every zero point 0).  The
pooling, residual and depthwise models (``cnn_pool``, ``cnn_res``, ``cnn_dw``) run on sparsemac's
model engine bit-exact with golden, at the int8 accuracy ``train.py`` measured and within a
point of the float model.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from sparsemac.golden import pack_weights, prune, unpack_weights

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from sparsemac.host.onnx_reference import ort_run  # noqa: E402

numpy_helper = onnx.numpy_helper

DIR = Path(__file__).resolve().parents[2] / "examples" / "digits"
RES = json.loads((DIR / "accuracy_train.json").read_text())
MODELS = ("mlp", "cnn", "cnn_pool", "cnn_res", "cnn_dw")
FORMATS = ("dense", "nm24", "nm18", "block50", "bitmap75")
#: formats of each model (cnn_pool, cnn_res, cnn_dw: two)
MODEL_FORMATS = {"mlp": FORMATS, "cnn": FORMATS, "cnn_pool": ("dense", "nm24"),
                 "cnn_res": ("dense", "nm24"), "cnn_dw": ("dense", "nm24")}
CASES = [(kind, fmt) for kind in MODELS for fmt in MODEL_FORMATS[kind]]
FLOAT_OPS = {"Gemm", "Conv", "Relu", "Flatten", "MaxPool", "GlobalAveragePool", "Add"}
#: ``limits`` of sparsemac's model engine per model (train.py's SPARSEMAC_LIMITS), "hardware"
#: when not named
LIMITS: dict[str, str] = {}
QDQ_OPS = FLOAT_OPS | {"QuantizeLinear", "DequantizeLinear"}


def path_of(kind, fmt, int8):
    return DIR / f"{kind}_{fmt}{'_int8' if int8 else ''}.onnx"


def test_files_and_json_cover_every_model_and_format():
    assert tuple(RES["models"]) == MODELS
    for kind in MODELS:
        assert tuple(RES["models"][kind]["variants"]) == MODEL_FORMATS[kind]
    names = {path_of(k, f, q).name for k, f in CASES for q in (False, True)}
    names |= {"test.npz", "calib.npz", "accuracy_train.json", "README.md", "train.py"}
    assert names <= {p.name for p in DIR.iterdir()}
    assert sum(p.stat().st_size for p in DIR.iterdir() if p.is_file()) < 1 << 20
    with np.load(DIR / "test.npz") as t:
        assert t["images"].dtype == np.float32 and t["images"].shape[1:] == (1, 8, 8)
        assert t["labels"].dtype == np.int64 and len(t["labels"]) == len(t["images"])
        assert t["images"].min() >= 0 and t["images"].max() <= 1
    with np.load(DIR / "calib.npz") as c:
        assert c["images"].shape == (RES["dataset"]["n_calib"], 1, 8, 8)


@pytest.fixture(scope="module")
def test_set():
    with np.load(DIR / "test.npz") as t:
        return t["images"], t["labels"]


@pytest.mark.parametrize("int8", [False, True], ids=["float", "int8"])
@pytest.mark.parametrize("kind,fmt", CASES)
def test_model_checks_and_accuracy(kind, fmt, int8, test_set):
    images, labels = test_set
    model = onnx.load(path_of(kind, fmt, int8))
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    g = model.graph
    assert [i.name for i in g.input] == ["input"] and [o.name for o in g.output] == ["logits"]
    dims = [d.dim_param or d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    assert dims == (["N", 64] if kind == "mlp" else ["N", 1, 8, 8])
    ops = [n.op_type for n in g.node]
    v = RES["models"][kind]["variants"][fmt]
    assert ops == v["qdq_ops" if int8 else "float_ops"]
    assert set(ops) <= (QDQ_OPS if int8 else FLOAT_OPS)

    x = images.reshape(len(images), 64) if kind == "mlp" else images
    logits = ort_run(path_of(kind, fmt, int8), x)   # the project's ONNX Runtime oracle
    assert logits.shape == (len(labels), 10)
    acc = 100.0 * np.mean(logits.argmax(axis=1) == labels)
    want = v["qdq_accuracy" if int8 else "float_accuracy"]
    assert abs(acc - want) <= 0.1, f"{kind} {fmt} {'int8' if int8 else 'float'}: accuracy " \
                                   f"{acc:.4f} %, train.py measured {want} %"


def float_weights(kind, fmt):
    inits = {t.name: numpy_helper.to_array(t)
             for t in onnx.load(path_of(kind, fmt, False)).graph.initializer}
    return {lay["name"]: inits[f"{lay['name']}.weight"] for lay in RES["models"][kind]["layers"]}


def qdq_parts(kind, fmt):
    """Layer name -> (int8 weight, scale, axis) of the DequantizeLinear feeding Conv / Gemm."""
    model = onnx.load(path_of(kind, fmt, True))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    out = {}
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            dq = producer[node.input[1]]
            assert dq.op_type == "DequantizeLinear"
            axis = [a.i for a in dq.attribute if a.name == "axis"]
            out[node.name] = (inits[dq.input[0]], inits[dq.input[1]], axis[0] if axis else 1)
    return out


def check_pattern(W2, fmt):
    """Direct count of the sparsity pattern of ``fmt`` on an [M, K] matrix."""
    spec = RES["formats"][fmt]
    rows, cols = W2.shape
    nz = W2 != 0
    if spec["prune_method"] == "nm":
        n, m = spec["prune_args"]["nm"]
        ng = -(-cols // m)
        padded = np.zeros((rows, ng * m), dtype=bool)
        padded[:, :cols] = nz
        assert padded.reshape(rows, ng, m).sum(axis=-1).max() <= n
    elif spec["prune_method"] == "block":
        b = spec["prune_args"]["block_size"]
        assert rows % b == 0 and cols % b == 0  # the pruned layers have full blocks only
        nzb = nz.reshape(rows // b, b, cols // b, b).any(axis=(1, 3))
        assert nzb.sum() <= round(spec["prune_args"]["density"] * nzb.size)
    else:
        assert nz.sum() <= round(spec["prune_args"]["density"] * nz.size)


@pytest.mark.parametrize("kind,fmt", CASES)
def test_pruned_layers_fit_their_format(kind, fmt):
    spec = RES["formats"][fmt]
    wf = float_weights(kind, fmt)
    wq = qdq_parts(kind, fmt)
    variant = RES["models"][kind]["variants"][fmt]
    for lay in RES["models"][kind]["layers"]:
        name, (m, k) = lay["name"], lay["mk"]
        info = variant["layers"][name]
        W, (Wq, _, _) = wf[name], wq[name]
        assert W.shape == Wq.shape == tuple(lay["weight_shape"]) and Wq.dtype == np.int8
        assert not np.any(Wq[W == 0]), f"{kind} {fmt} {name}: a pruned zero is not an int8 zero"
        assert np.count_nonzero(W) / W.size == pytest.approx(info["density"], abs=1e-6)
        assert np.count_nonzero(Wq) / Wq.size == pytest.approx(info["int8_density"], abs=1e-6)
        assert info["pruned"] == (fmt != "dense" and info["kept_dense_reason"] is None)
        if not info["pruned"]:
            continue
        Wq2 = Wq.reshape(m, k)
        for mat in (W.reshape(m, k), Wq2):
            check_pattern(mat, fmt)
        # golden prune leaves a matrix of the pattern unchanged
        Wi = Wq2.astype(np.int64)
        assert np.array_equal(prune(Wi, spec["prune_method"], **{
            a: tuple(v) if isinstance(v, list) else v for a, v in spec["prune_args"].items()
        })[0], Wi), f"{kind} {fmt} {name}"
        # and the golden image of the format holds it exactly
        pack_args = {a: tuple(v) if isinstance(v, list) else v
                     for a, v in spec["pack_args"].items()}
        pw = pack_weights(Wq2, spec["pack_format"], **pack_args)
        assert np.array_equal(unpack_weights(pw.image), Wq2)


@pytest.mark.parametrize("kind,fmt", CASES)
def test_int8_models_are_symmetric(kind, fmt):
    model = onnx.load(path_of(kind, fmt, True))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for n in qdq:
        assert len(n.input) == 3, f"{n.name}: no zero point input"
        zp = inits[n.input[2]]
        assert zp.dtype in (np.int8, np.int32) and not np.any(zp), f"{n.name}: zero point {zp}"
        assert np.all(inits[n.input[1]] > 0)
    for name, (Wq, scale, axis) in qdq_parts(kind, fmt).items():  # per output channel
        assert axis == 0 and scale.shape == (Wq.shape[0],), name


@pytest.mark.parametrize("fmt", MODEL_FORMATS["cnn_pool"])
def test_pool_model_on_the_model_engine(fmt, test_set):
    """cnn_pool's QDQ model on sparsemac's model engine (MaxPool and GlobalAveragePool as the
    accelerator's pools): bit-exact with golden, the int8 accuracy train.py recorded, within
    1 point of the float model, the pools' scales kept (the GlobalAveragePool's output
    QuantizeLinear has its input's scale, the override train.py used)."""
    from functools import partial

    from sparsemac.host.onnx_import import load_onnx, pool_scale_overrides
    from sparsemac.host.run import model_job, run
    from sparsemac.hw.config import AcceleratorConfig

    images, labels = test_set
    v = RES["models"]["cnn_pool"]["variants"][fmt]
    q = path_of("cnn_pool", fmt, True)
    assert pool_scale_overrides(q) == {} and v["tensor_quant_overrides"]
    cfg = AcceleratorConfig.preset("default")
    model = load_onnx(q, cfg=cfg)
    assert [sp.op for sp in model.network.layers] == ["conv2d", "maxpool2d", "conv2d",
                                                      "global_avgpool", "matmul"]
    rr = run(model.with_input(images), cfg, labels=labels, tile_split="rows",
             engine=partial(model_job, cycles=False))
    assert rr.report["status"] == "OK" and rr.report["mismatches"] == 0
    acc = 100.0 * rr.report["accuracy"]
    assert abs(acc - v["sparsemac"]["accuracy"]) <= 1e-3, (fmt, acc, v["sparsemac"])
    assert acc >= v["float_accuracy"] - 1.0, (fmt, acc, v["float_accuracy"])


def _engine_run(kind, fmt, images, labels):
    from functools import partial

    from sparsemac.host.onnx_import import load_onnx
    from sparsemac.host.run import model_job, run
    from sparsemac.hw.config import AcceleratorConfig

    cfg = AcceleratorConfig.preset("default")
    model = load_onnx(path_of(kind, fmt, True), cfg=cfg)
    rr = run(model.with_input(images), cfg, labels=labels, tile_split="cols",
             engine=partial(model_job, cycles=False), limits=LIMITS.get(kind, "hardware"))
    return model, rr


@pytest.mark.parametrize("kind,fmt", [(k, f) for k in ("cnn_res", "cnn_dw")
                                      for f in MODEL_FORMATS[k]])
def test_residual_and_depthwise_models_on_the_model_engine(kind, fmt, test_set):
    """cnn_res (a residual Add + Relu as sparsemac's ``add`` layer with a relu table) and
    cnn_dw (depthwise Convs as ``groups`` = C conv2d layers) on sparsemac's model engine:
    bit-exact with golden on the whole test split, the int8 accuracy train.py recorded, within
    1 point of the float model and of ONNX Runtime's QDQ int8."""
    from sparsemac.host.onnx_import import pool_scale_overrides

    images, labels = test_set
    v = RES["models"][kind]["variants"][fmt]
    assert pool_scale_overrides(path_of(kind, fmt, True)) == {} and v["tensor_quant_overrides"]
    model, rr = _engine_run(kind, fmt, images, labels)
    layers = model.network.layers
    if kind == "cnn_res":
        assert [sp.op for sp in layers] == ["conv2d", "maxpool2d", "conv2d", "conv2d", "add",
                                            "global_avgpool", "matmul"]
        add = layers[4]
        # the add reads conv2b (no activation of its own) and the max pool's output, and the
        # Relu after the Add is its activation
        assert add.activation == "relu" and layers[3].activation is None
        assert [layers[i].name for i in add.inputs] == ["conv2b", "pool1"]
        assert add.in_shape == add.out_shape == (16, 4, 4)
    else:
        assert [sp.op for sp in layers] == ["conv2d", "conv2d", "conv2d", "maxpool2d", "conv2d",
                                            "conv2d", "global_avgpool", "matmul"]
        assert [sp.groups for sp in layers] == [1, 8, 1, 1, 16, 1, 1, 1]
    assert rr.report["status"] == "OK" and rr.report["mismatches"] == 0, rr.report["error"]
    assert rr.report["limits"] == LIMITS.get(kind, "hardware")
    acc = 100.0 * rr.report["accuracy"]
    assert abs(acc - v["sparsemac"]["accuracy"]) <= 1e-3, (kind, fmt, acc, v["sparsemac"])
    assert acc >= v["float_accuracy"] - 1.0, (kind, fmt, acc, v["float_accuracy"])
    assert abs(acc - v["qdq_accuracy"]) <= 1.0, (kind, fmt, acc, v["qdq_accuracy"])


@pytest.mark.parametrize("fmt", MODEL_FORMATS["cnn_dw"])
def test_depthwise_layers_compile_block_diagonal(fmt, test_set):
    """cnn_dw's depthwise Convs compile to the block-diagonal conv2d of their ONNX taps (zeros
    off the diagonal, which the bitmap format skips: ``auto`` picks it), kept dense in every
    format (KEEP_DENSE); the pointwise Convs hold the format's pattern."""
    from sparsemac.host.compiler import compile_network
    from sparsemac.host.onnx_import import load_onnx
    from sparsemac.hw.config import AcceleratorConfig

    images, _ = test_set
    cfg = AcceleratorConfig.preset("default")
    model = load_onnx(path_of("cnn_dw", fmt, True), cfg=cfg)
    cn = compile_network(model.with_input(images[:1]), cfg)
    wq = qdq_parts("cnn_dw", fmt)
    info = RES["models"]["cnn_dw"]["variants"][fmt]["layers"]
    for cl in cn.layers:
        name = cl.spec.name
        if cl.spec.groups == 1:
            continue
        taps = wq[name][0]
        C = taps.shape[0]
        assert taps.shape == (C, 1, 3, 3) and cl.spec.groups == C
        assert cl.spec.fmt == "bitmap" and model.formats[name]["format"] == "bitmap"
        assert not info[name]["pruned"] and (fmt == "dense" or info[name]["kept_dense_reason"])
        w = cl.weights
        assert w.shape == (C, C, 3, 3)
        np.testing.assert_array_equal(w[np.arange(C), np.arange(C)], taps[:, 0])
        off = w.copy()
        off[np.arange(C), np.arange(C)] = 0
        assert not off.any(), f"{name}: not block-diagonal"
        m, k, n = cl.spec.mkn
        assert (m, k) == (C, C * 9)
    assert sum(cl.spec.groups > 1 for cl in cn.layers) == 2


@pytest.mark.parametrize("kind", ["cnn_res", "cnn_dw"])
def test_residual_and_depthwise_models_on_the_rtl(kind, test_set):
    """cnn_res nm24 (max pool, residual block: the add as a matmul over its two inputs) and
    cnn_dw nm24 (depthwise / pointwise stack) on the accelerator RTL (Verilator, the default
    build and split): three test images, every layer bit-exact with golden, the outputs read
    back equal to the model engine's."""
    from functools import partial

    from sparsemac.host.onnx_import import load_onnx
    from sparsemac.host.run import model_job, run
    from sparsemac.hw.config import AcceleratorConfig
    from sparsemac.sim.rtl_engine import rtl_job

    images, labels = test_set
    cfg = AcceleratorConfig.preset("default")
    net = load_onnx(path_of(kind, "nm24", True), cfg=cfg).with_input(images[:3])
    rtl = run(net, cfg, labels=labels[:3], engine=rtl_job, engine_name="rtl")
    assert rtl.report["status"] == "OK" and rtl.report["mismatches"] == 0, rtl.report["error"]
    ops = [e["op"] for e in rtl.report["layers"]]
    assert ("add" in ops) == (kind == "cnn_res")
    ref = run(net, cfg, labels=labels[:3], engine=partial(model_job, cycles=False))
    np.testing.assert_array_equal(rtl.outputs, ref.outputs)
    assert rtl.report["cycles"] > rtl.report["roofline_cycles"] > 0
