"""ONNX Runtime as an independent oracle of an imported model (docs/host.md section 6).

`ort_run` runs an ONNX file on ONNX Runtime's CPU provider; `float_graph` removes the
activation ``QuantizeLinear -> DequantizeLinear`` pairs of a QDQ model (weights stay
dequantized int8), which gives the model's float behaviour without its float file; `compare`
measures how far sparsemac's int8 outputs are from ONNX Runtime's, in output LSBs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .onnx_import import OnnxError

__all__ = ["ort_run", "float_graph", "compare"]


def _ort():
    try:
        import onnxruntime as ort
    except ImportError:
        raise OnnxError("the ONNX Runtime reference needs onnxruntime: pip install "
                        "'sparsemac[models]'") from None
    ort.set_default_logger_severity(3)
    return ort


def ort_run(model, x: np.ndarray, *, batch: int = 256) -> np.ndarray:
    """Outputs of ``model`` (a path or an ``onnx.ModelProto``) on ``x`` (ONNX layout, batch
    first), ``batch`` rows at a time."""
    ort = _ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    # the QDQ graph as written (DequantizeLinear -> float op -> QuantizeLinear), not ONNX
    # Runtime's fused int8 kernels: from onnxruntime 1.32 its extended optimizations change
    # the digits MLP's logits by up to 56 output LSBs (predictions agree 99.4 %), while the
    # graph as written (no optimization) and the basic level (constant folding only) give
    # identical outputs
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    src = str(model) if isinstance(model, str | Path) else model.SerializeToString()
    sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.asarray(x, dtype=np.float32)
    return np.concatenate([sess.run(None, {name: x[i:i + batch]})[0]
                           for i in range(0, len(x), batch)])


def float_graph(path):
    """The QDQ model at ``path`` with every activation Q/DQ pair bypassed (a DequantizeLinear
    whose input comes from a QuantizeLinear of a non-constant tensor): float activations,
    the dequantized int8 weights."""
    import onnx

    m = onnx.load(str(path))
    g = m.graph
    consts = {t.name for t in g.initializer}
    prod = {o: n for n in g.node for o in n.output}
    rename = {}
    drop = set()
    for n in g.node:
        if n.op_type != "DequantizeLinear" or n.input[0] in consts:
            continue
        q = prod.get(n.input[0])
        if q is None or q.op_type != "QuantizeLinear" or q.input[0] in consts:
            continue
        rename[n.output[0]] = q.input[0]
        drop.update({id(n), id(q)})

    def src(t):
        while t in rename:
            t = rename[t]
        return t
    keep = [n for n in g.node if id(n) not in drop]
    for n in keep:
        for i, t in enumerate(n.input):
            n.input[i] = src(t)
    outs = {o.name for o in g.output}
    for o in g.output:
        if o.name in rename:   # the graph output came out of a removed DQ: add an Identity
            keep.append(onnx.helper.make_node("Identity", [src(o.name)], [o.name]))
    del g.node[:]
    g.node.extend(keep)
    del outs
    return m


def compare(values: np.ndarray, ref: np.ndarray, lsb) -> dict:
    """``values`` (sparsemac, real) against ``ref`` (ONNX Runtime) in units of the output LSB
    ``lsb`` (a number, or one per output channel along axis 1)."""
    v = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    r = np.asarray(ref, dtype=np.float64).reshape(len(ref), -1)
    if v.shape != r.shape:
        raise OnnxError(f"the outputs have shape {list(v.shape)}, ONNX Runtime's "
                        f"{list(r.shape)}")
    q = np.asarray(lsb, dtype=np.float64)
    q = q if q.ndim == 0 else q.reshape(1, -1)
    d = np.rint(np.abs(v - r) / q).astype(np.int64)
    return {"values": int(d.size), "max_lsb": int(d.max(initial=0)),
            "over_1_lsb": int(np.count_nonzero(d > 1)), "exact": int(np.count_nonzero(d == 0)),
            "predictions_agree": float(np.mean(v.argmax(1) == r.argmax(1))) if v.size else 1.0}
