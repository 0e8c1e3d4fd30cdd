"""ONNX models in: a float model or a QDQ-quantized one as a sparsemac `Network` (docs/host.md
section 6).

`load_onnx` reads the layers of an ONNX graph (in the file's topological order; a layer that
reads another tensor than the previous layer's output names it, `network.NETWORK_INPUT` for the
graph input):

* ``Conv`` (2-D, ``group=1``, or depthwise: ``group`` = channels, one filter each), ``Gemm``
  (``alpha = beta = 1``, ``transA = 0``) and ``MatMul`` with a constant weight, each optionally
  followed by ``Add`` of a constant bias;
* activations after a layer: ``Relu``, ``Clip(0, 6)`` (relu6), ``Sigmoid``, ``Tanh``, ``Exp``,
  ``Log``, ``Reciprocal``, ``Gelu``, ``Mul(x, Sigmoid(x))`` (SiLU) -> the LUT engine's tables;
* ``MaxPool``, ``AveragePool`` (``count_include_pad`` kept) and ``GlobalAveragePool``
  (docs/spec.md section 2.3: symmetric pads, no ``ceil_mode``, no dilations); in a QDQ model a
  pool must keep its input's scale (the ``QuantizeLinear`` after it has the scale of the one
  before it, as ``quantize_static`` does for MaxPool and AveragePool; for a
  GlobalAveragePool the error names the ``TensorQuantOverrides`` that makes it so);
* ``Flatten`` (axis 1) and ``Reshape`` to ``[N, -1]`` between a Conv or a pool and a Gemm;
* ``Add`` of two activations: a residual ``add`` layer (docs/spec.md section 2.4; in a QDQ model
  DequantizeLinear -> Add -> QuantizeLinear, QLinearAdd semantics); a branch starts after a
  layer's activation and quantization;
* ``Identity``, ``Dropout`` (inference: no-ops);
* QDQ models (``onnxruntime.quantization.quantize_static``, ``QuantFormat.QDQ``):
  ``QuantizeLinear`` / ``DequantizeLinear`` pairs on activations give each layer's fixed output
  scales, ``DequantizeLinear`` of int8 weights (per channel or per tensor, zero point 0) and of
  int32 biases give the exact integers.  Activations must be symmetric int8 (zero point 0):
  an asymmetric or uint8 model is refused with what to pass to ``quantize_static`` instead.

Anything else is one `OnnxError` naming the node, its op type and what is supported.  Weight
formats: ``formats`` maps a layer name (or ``"*"``) to ``auto`` (the weights' own sparsity
picks the format: `detect_format`), ``dense``, ``bitmap``, ``block``, or ``nm:N:M`` (prune to
N:M unless the weights already are).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .network import (
    MAX_ELEMENTS,
    NETWORK_INPUT,
    POOL_OPS,
    Network,
    NetworkError,
    network_from_dict,
)

__all__ = ["load_onnx", "OnnxError", "OnnxModel", "detect_format", "parse_formats",
           "SUPPORTED_OPS", "pool_scale_overrides"]

SUPPORTED_OPS = ("Conv", "Gemm", "MatMul", "Add", "Relu", "Clip", "Sigmoid", "Tanh", "Exp",
                 "Log", "Reciprocal", "Gelu", "Mul", "MaxPool", "AveragePool",
                 "GlobalAveragePool", "Flatten", "Reshape", "Identity", "Dropout",
                 "QuantizeLinear", "DequantizeLinear")
_POOLS = {"MaxPool": "maxpool2d", "AveragePool": "avgpool2d",
          "GlobalAveragePool": "global_avgpool"}
_ACT = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Exp": "exp", "Log": "log",
        "Reciprocal": "reciprocal", "Gelu": "gelu"}


class OnnxError(NetworkError):
    """An ONNX model sparsemac cannot run: one line naming the file, node and reason."""


@dataclass
class OnnxModel:
    """An imported model.

    Members
    -------
    network : Network
        The layers (weights, biases, fixed scales of a QDQ model); the input is not set
        (``input_values`` None) and has batch 1.
    path : Path
    quantized : bool
        A QDQ model: every scale is fixed by the model (no calibration needed).
    input_name : str
    input_layout : str
        ``"matrix"`` (ONNX ``[N, K]``; sparsemac columns ``[K, N]``) or ``"image"``
        (``[N, C, H, W]``).
    formats : dict
        Layer name -> the chosen format and why (``auto`` detection or option).
    """

    network: Network
    path: Path
    quantized: bool
    input_name: str
    input_layout: str
    formats: dict = field(default_factory=dict)

    def with_input(self, x, *, name: str | None = None) -> Network:
        """The network on the ONNX-layout input ``x`` (``[N, K]`` or ``[N, C, H, W]``; a
        single ``[C, H, W]`` image is a batch of one)."""
        from dataclasses import replace

        x = np.asarray(x)
        net = self.network
        if self.input_layout == "matrix":
            if x.ndim != 2 or x.shape[1] != net.input_shape[0]:
                raise OnnxError(f"{self.path}: the input must have the shape [N, "
                                f"{net.input_shape[0]}] of the model's input "
                                f"{self.input_name!r}, not {list(x.shape)}")
            return replace(net.with_columns(x.shape[0]), input_values=x.T.copy(),
                           name=name or net.name)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(net.input_shape):
            raise OnnxError(f"{self.path}: the input must have the shape [N, "
                            f"{', '.join(map(str, net.input_shape))}] of the model's input "
                            f"{self.input_name!r}, not {list(x.shape)}")
        return replace(net, input_values=x[0] if len(x) == 1 else x, batch=len(x),
                       name=name or net.name)


def parse_formats(spec) -> dict:
    """``"nm:2:4"`` or ``"conv1=dense,fc1=nm:1:8,*=auto"`` (or a dict) -> ``{layer: format}``
    (``"*"``: every other layer)."""
    if spec is None:
        return {"*": "auto"}
    if isinstance(spec, dict):
        out = dict(spec)
    else:
        out = {}
        for part in str(spec).split(","):
            part = part.strip()
            if not part:
                continue
            if "=" in part:
                k, v = part.split("=", 1)
                out[k.strip()] = v.strip()
            else:
                out["*"] = part
    for k, v in out.items():
        _format_fields(v, f"--format {k}={v}" if k != "*" else f"--format {v}")
    out.setdefault("*", "auto")
    return out


def _format_fields(v: str, where: str) -> dict:
    """``auto`` -> {}; ``dense``/``bitmap``/``block`` -> that storage, weights as they are;
    ``bitmap:D``/``block:D`` -> pruned to density ``D``; ``nm:N:M`` -> pruned to N:M."""
    if v == "auto":
        return {}
    if v in ("dense", "bitmap", "block"):
        return {"format": v, "prune": "none"}
    parts = v.split(":")
    if len(parts) == 3 and parts[0] == "nm" and all(p.isdigit() for p in parts[1:]):
        return {"format": "nm", "nm": f"{parts[1]}:{parts[2]}"}
    if len(parts) == 2 and parts[0] in ("bitmap", "block", "dense"):
        try:
            d = float(parts[1])
        except ValueError:
            d = -1.0
        if 0 < d <= 1:
            return {"format": parts[0], "density": d,
                    "prune": "block" if parts[0] == "block" else "unstructured"}
    raise OnnxError(f"{where} must be auto, dense, bitmap, block (weights as they are), "
                    f"bitmap:D, block:D, dense:D (pruned to density 0 < D <= 1) or nm:N:M "
                    f"(pruned to N:M, e.g. nm:2:4), not {v!r}")


def _nm_of(w2: np.ndarray, ms=(2, 4, 8, 16, 32)) -> tuple[int, int] | None:
    """The sparsest N:M pattern (N a power of two, N/M <= 1/2) every row of ``w2`` already
    satisfies along K."""
    best = None
    for m in ms:
        k = w2.shape[1]
        pad = (-k) % m
        g = np.pad(w2 != 0, ((0, 0), (0, pad))).reshape(w2.shape[0], -1, m)
        n = int(g.sum(axis=2).max(initial=0))
        n = 1 << max(n - 1, 0).bit_length()  # the hardware's N is a power of two (3:8 -> 4:8)
        if n * 2 <= m and (best is None or n / m < best[0] / best[1]):
            best = (n, m)
    return best


def detect_format(w2: np.ndarray, cfg, block_size: int | None = None) -> tuple[dict, str]:
    """Layer fields for weights ``w2`` (``[M, K]``) kept as they are, and why:
    B x B zero blocks >= 25 % (format block), else an N:M pattern the weights already satisfy
    with ``M <= K`` and N/M within 0.05 of their density (format nm, ``M <= nm_max_m``), else bitmap
    (density <= 60 %), else dense; only formats built into ``cfg``."""
    formats = tuple(getattr(cfg, "formats", ("dense", "bitmap", "block", "nm")))
    dens = float(np.count_nonzero(w2)) / max(w2.size, 1)
    b = block_size or getattr(cfg, "block_size", 8)
    if "block" in formats and w2.shape[0] >= b and w2.shape[1] >= b:
        mp, kp = (-w2.shape[0]) % b, (-w2.shape[1]) % b
        g = np.pad(w2 != 0, ((0, mp), (0, kp))).reshape(
            (w2.shape[0] + mp) // b, b, (w2.shape[1] + kp) // b, b)
        zero_blocks = float(np.mean(~g.any(axis=(1, 3))))
        if zero_blocks >= 0.25:
            return {"format": "block"}, f"{zero_blocks:.0%} zero {b}x{b} blocks"
    if "nm" in formats:
        nm = _nm_of(w2, tuple(m for m in (2, 4, 8, 16, 32)
                              if m <= min(getattr(cfg, "nm_max_m", 32), w2.shape[1])))
        if nm is not None and nm[0] / nm[1] <= dens + 0.05:  # the pattern fits the density
            return {"format": "nm", "nm": f"{nm[0]}:{nm[1]}"}, \
                f"weights already {nm[0]}:{nm[1]} (density {dens:.2f})"
    if "bitmap" in formats and dens <= 0.6:
        return {"format": "bitmap"}, f"density {dens:.2f}"
    return {"format": "dense"}, f"density {dens:.2f}"


class _Graph:
    def __init__(self, model, path):
        from onnx import numpy_helper

        self.path = path
        self.init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        for n in model.graph.node:          # Constant nodes are initializers too
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        self.init[n.output[0]] = numpy_helper.to_array(a.t)
        self.nodes = [n for n in model.graph.node if n.op_type != "Constant"]
        self.consumers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def fail(self, node, msg: str):
        what = f"node {node.name or node.output[0]!r} ({node.op_type})" if node is not None \
            else "the graph"
        raise OnnxError(f"{self.path}: {what} {msg}")

    def attr(self, node, name, default=None):
        from onnx import helper

        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def const(self, name: str):
        return self.init.get(name)


def _dq_const(g: _Graph, name: str):
    """A weight or bias: an initializer (float) or ``DequantizeLinear`` of one ->
    ``(float values, integers or None, scale or None, axis)``."""
    c = g.const(name)
    if c is not None:
        return c.astype(np.float64), None, None
    prod = next((n for n in g.nodes if name in n.output), None)
    if prod is None or prod.op_type != "DequantizeLinear":
        return None, None, None
    q = g.const(prod.input[0])
    s = g.const(prod.input[1])
    zp = g.const(prod.input[2]) if len(prod.input) > 2 and prod.input[2] else None
    if q is None or s is None:
        g.fail(prod, "must dequantize a constant (weights or bias)")
    if zp is not None and np.any(zp != 0):
        g.fail(prod, "has a non-zero zero point: weights and biases must be symmetric "
               "(quantize_static(..., extra_options={'WeightSymmetric': True}))")
    if q.dtype not in (np.int8, np.int32):
        g.fail(prod, f"must dequantize int8 weights or int32 biases, not {q.dtype}")
    axis = g.attr(prod, "axis", 1)
    s = np.asarray(s, dtype=np.float64)
    shape = [1] * q.ndim
    if s.size > 1:
        shape[axis] = -1
    return q.astype(np.float64) * s.reshape(shape), q, s


def load_onnx(path, *, formats=None, cfg=None, name: str | None = None) -> OnnxModel:
    """Read the ONNX model at ``path`` as a network (see the module docstring).

    Raises
    ------
    OnnxError
        The file is not a readable ONNX model, or a node / attribute / quantization is not
        supported (the message names the node and what is).
    """
    try:
        import onnx
    except ImportError:
        raise OnnxError("reading ONNX models needs the onnx package: pip install "
                        "'sparsemac[models]'") from None
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:          # onnx raises DecodeError, OSError, ...
        raise OnnxError(f"{path}: cannot read the ONNX model "
                        f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                        ) from None
    g = _Graph(model, path)
    fmts = parse_formats(formats)
    inputs = [i for i in model.graph.input if i.name not in g.init]
    if len(inputs) != 1:
        g.fail(None, f"must have one input, not {len(inputs)} ({[i.name for i in inputs]})")
    inp = inputs[0]
    dims = [d.dim_value if d.HasField("dim_value") else None
            for d in inp.type.tensor_type.shape.dim]
    if len(dims) == 2 and dims[1]:
        layout, in_shape = "matrix", [int(dims[1]), 1]
    elif len(dims) == 4 and all(dims[1:]):
        layout, in_shape = "image", [int(d) for d in dims[1:]]
    else:
        g.fail(None, f"input {inp.name!r} must be [N, K] or [N, C, H, W] with known K / C, H, "
               f"W, not {dims}")
    if any(d and d > MAX_ELEMENTS for d in dims):
        g.fail(None, f"input {inp.name!r} has a dimension above {MAX_ELEMENTS}: {dims}")
    for n in g.nodes:
        if n.op_type not in SUPPORTED_OPS:
            g.fail(n, f"is not supported; supported ops: {', '.join(SUPPORTED_OPS)}")
    outs = [o.name for o in model.graph.output]
    layers: list[dict] = []
    input_scale = None
    quantized = False
    chosen = {}
    # what each tensor holds: (layer whose output it is, -1 the network input; a Flatten
    # pending; the scale of the last QuantizeLinear on its path; the layer's version: an
    # activation, bias or new scale makes a new one, an older tensor is no layer's output)
    info = {inp.name: (-1, False, None, 0)}
    ver: dict[int, int] = {-1: 0}
    closed: set = set()     # layers another layer reads already (their output is final)
    last_q: dict = {}       # layer -> the scale of the last QuantizeLinear after it

    def lname(k):
        return NETWORK_INPUT if k < 0 else layers[k]["name"]

    def source(node, t):
        """The layer whose current output tensor ``t`` is (a new layer reads it)."""
        k, flat, _s, v = info[t]
        if v != ver[k]:
            g.fail(node, f"reads the output of {lname(k)!r} before its activation, bias or "
                   f"quantization, which another node applies: a branch must start after them")
        closed.add(k)
        return k

    def modify(node, k, what):
        if k in closed:
            g.fail(node, f"applies {what} to the output of {lname(k)!r}, which another layer "
                   f"reads already: a branch must start after a layer's activation and "
                   f"quantization")
        ver[k] += 1

    def append(node, L, k=None):
        if k is not None and k != len(layers) - 1:
            L["input"] = lname(k)
        layers.append(L)
        ver[len(layers) - 1] = 0
    for node in g.nodes:
        op = node.op_type
        if not node.input or node.input[0] not in info:
            if op in ("DequantizeLinear", "QuantizeLinear"):
                continue        # of a constant (weights, biases): read by _dq_const
            g.fail(node, "must read the network input or a layer's output")
        k, flat, scale, v = info[node.input[0]]
        out = (k, flat, scale, v)
        if op == "QuantizeLinear":
            s = g.const(node.input[1])
            zp = g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            if s is None or np.asarray(s).size != 1:
                g.fail(node, "must have one constant scale (per-tensor activations)")
            if zp is not None and (zp.dtype != np.int8 or np.any(zp != 0)):
                g.fail(node, f"quantizes to {zp.dtype} with zero point {zp.ravel()[:1]}: "
                       f"activations must be symmetric int8 (quantize_static(..., "
                       f"activation_type=QuantType.QInt8, extra_options="
                       f"{{'ActivationSymmetric': True}}))")
            quantized = True
            s = float(np.asarray(s).ravel()[0])
            if k >= 0 and k in closed and last_q.get(k) is not None and \
                    np.float32(last_q[k]) == np.float32(s):
                pass        # one more QuantizeLinear of a read output at its scale
            elif k < 0:
                input_scale = s
            elif layers[k]["op"] in POOL_OPS:
                _check_pool_scale(g, node, layers[k], s)
            else:
                modify(node, k, "a QuantizeLinear")
                L = layers[k]
                if "activation" in L and L.get("requant_scale") is not None:
                    L["out_scale"] = s
                elif L.get("requant_scale") is None:
                    L["requant_scale"] = s
                elif "activation" in L:
                    L["out_scale"] = s
            if k >= 0:
                last_q[k] = s
            out = (k, flat, s, ver[k])
        elif op in ("DequantizeLinear", "Identity", "Dropout"):
            pass
        elif op in ("Flatten", "Reshape"):
            if op == "Flatten" and g.attr(node, "axis", 1) != 1:
                g.fail(node, "must flatten from axis 1 (keep the batch)")
            if op == "Reshape":
                shp = g.const(node.input[1])
                if shp is None or list(shp.ravel()[1:]) != [-1] or len(shp.ravel()) != 2:
                    g.fail(node, "must reshape to [N, -1] (a flatten), not "
                           f"{None if shp is None else shp.tolist()}")
            out = (k, True, scale, v)
        elif op in _POOLS:
            if flat:
                g.fail(node, "must not follow a Flatten / Reshape: a pool reads an image "
                       "[N, C, H, W]")
            append(node, _pool_of(g, node, scale), source(node, node.input[0]))
            out = (len(layers) - 1, False, scale, 0)
        elif op in ("Conv", "Gemm", "MatMul"):
            src = source(node, node.input[0])
            append(node, _layer_of(g, node, len(layers), flat, fmts, cfg, chosen), src)
            out = (len(layers) - 1, False, scale, 0)
        elif op == "Add" and len(node.input) == 2 and node.input[1] in info:
            # two activations: a residual add (QLinearAdd semantics in a QDQ model)
            if flat or info[node.input[1]][1]:
                g.fail(node, "must add two tensors of one shape, not a flattened one")
            ka, kb = source(node, node.input[0]), source(node, node.input[1])
            append(node, {"name": node.name or node.output[0], "op": "add",
                          "inputs": [lname(ka), lname(kb)]})
            out = (len(layers) - 1, False, None, 0)
        elif op == "Add":
            if k < 0 or "bias" in layers[k] or layers[k].get("requant_scale") is not None \
                    or layers[k]["op"] in POOL_OPS or layers[k]["op"] == "add":
                g.fail(node, "must add a constant bias right after a Conv / Gemm / MatMul")
            b, bq, bs = _dq_const(g, node.input[1])
            if b is None:
                g.fail(node, "must add a constant (a bias); a second input is not supported")
            modify(node, k, "a bias")
            layers[k]["bias"] = b.ravel()
            out = (k, flat, scale, ver[k])
        elif op in _ACT or op in ("Clip", "Mul"):
            if k < 0 or "activation" in layers[k]:
                g.fail(node, "must follow a Conv / Gemm / MatMul (one activation per layer)")
            L = layers[k]
            if L["op"] in POOL_OPS:
                g.fail(node, f"must follow a Conv / Gemm / MatMul, not the pool "
                       f"{L['name']!r}: apply it before the pool (a monotone "
                       f"activation such as Relu commutes with MaxPool)")
            act = _ACT.get(op)
            if op == "Clip":
                lo = g.const(node.input[1]) if len(node.input) > 1 and node.input[1] else \
                    g.attr(node, "min")
                hi = g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else \
                    g.attr(node, "max")
                lo = None if lo is None else float(np.asarray(lo).ravel()[0])
                hi = None if hi is None else float(np.asarray(hi).ravel()[0])
                if (lo, hi) == (0.0, 6.0):
                    act = "relu6"
                elif lo == 0.0 and hi is None:
                    act = "relu"
                else:
                    g.fail(node, f"is supported as Clip(0, 6) (relu6) or Clip(0) (relu) only, "
                           f"not Clip({lo}, {hi})")
            if op == "Mul":
                g.fail(node, "is supported only as x * Sigmoid(x) (SiLU), which needs a "
                       "branch; export SiLU as a single node")
            modify(node, k, f"an activation ({op})")
            L["activation"] = act
            if act == "relu" and L.get("requant_scale") is None and last_q.get(k):
                L["requant_scale"] = last_q[k]
            out = (k, flat, scale, ver[k])
        for o in node.output:
            if o:
                info[o] = out
    if not layers:
        g.fail(None, "has no Conv, Gemm or MatMul layer")
    if len(outs) != 1 or outs[0] not in info or info[outs[0]][0] != len(layers) - 1 \
            or info[outs[0]][3] != ver[len(layers) - 1]:
        g.fail(None, f"must have one output, the last layer's ({layers[-1]['name']!r}), not "
               f"{outs}")
    for L in layers:
        L.pop("_in_scale", None)
    if layers[-1]["op"] in (*POOL_OPS, "add"):
        pass            # a pool's output is int8 at its input's scale, an add's is int8
    elif not layers[-1].get("activation") and (layers[-1].get("requant_scale") is None
                                                or not quantized):
        # a float classifier output: the int32 accumulators (+ bias on the host), exact
        layers[-1]["requant"] = False
        layers[-1].pop("requant_scale", None)
    for L in layers:   # a QDQ relu whose output scale equals its input's needs no out_scale
        if L.get("activation") and L.get("out_scale") is None and L.get("requant_scale"):
            L["out_scale"] = L["requant_scale"]
        if not L.get("activation"):
            L.pop("out_scale", None)
    if not quantized:
        for L in layers:
            L.pop("requant_scale", None)
            L.pop("out_scale", None)
    data = {"name": name or path.stem, "input": {"shape": in_shape}, "layers": layers}
    if input_scale is not None:
        data["input"]["scale"] = input_scale
    net = network_from_dict(data, source=str(path))
    return OnnxModel(network=net, path=path, quantized=quantized, input_name=inp.name,
                     input_layout=layout, formats=chosen)


def _pool_of(g: _Graph, node, in_scale: float | None) -> dict:
    """A ``MaxPool`` / ``AveragePool`` / ``GlobalAveragePool`` node as a pool layer (docs/spec.md
    section 2.3); ``in_scale``: the scale of its input in a QDQ model (checked against the
    ``QuantizeLinear`` after it, `_check_pool_scale`)."""
    op = node.op_type
    L = {"name": node.name or node.output[0], "op": _POOLS[op], "_in_scale": in_scale}
    if op == "GlobalAveragePool":
        return L
    if len(node.output) > 1 and node.output[1]:
        g.fail(node, "must not output the Indices (only the pooled values)")
    kern = list(g.attr(node, "kernel_shape", []))
    if len(kern) != 2:
        g.fail(node, f"must be a 2-D pool (kernel_shape [kh, kw]), not kernel_shape {kern}")
    if g.attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        g.fail(node, "must use explicit pads (auto_pad NOTSET)")
    if g.attr(node, "ceil_mode", 0) != 0:
        g.fail(node, "must have ceil_mode 0 (floor: the last window fits the padded input)")
    dil = list(g.attr(node, "dilations", [1, 1]))
    if dil != [1, 1]:
        g.fail(node, f"must not be dilated (dilations [1, 1]), not {dil}")
    if g.attr(node, "storage_order", 0) != 0:
        g.fail(node, "must have storage_order 0 (row major)")
    pads = list(g.attr(node, "pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:]:
        g.fail(node, f"must have symmetric pads (top = bottom, left = right), not {pads}")
    L.update(kernel=[int(v) for v in kern],
             stride=[int(v) for v in g.attr(node, "strides", [1, 1])],
             padding=[int(v) for v in pads[:2]])
    if op == "AveragePool":     # ONNX's default is 0: divide by the real positions only
        L["count_include_pad"] = bool(g.attr(node, "count_include_pad", 0))
    return L


def _check_pool_scale(g: _Graph, node, pool: dict, s: float) -> None:
    """A ``QuantizeLinear`` after a pool must keep the pool's input scale: the accelerator's
    pools do not requantize (docs/spec.md section 2.3).  ONNX Runtime rounds the pool's float
    result to the new scale; sparsemac's pool rounds it to the input's grid, which is another
    number: refused, with the ``quantize_static`` option that keeps the scale."""
    s_in = pool.get("_in_scale")
    if s_in is None:
        g.fail(node, f"quantizes the output of pool {pool['name']!r}, whose input has no "
               f"QuantizeLinear: a pool keeps its input's scale, so its input must be "
               f"quantized too (QDQ around every layer)")
    if np.float32(s) == np.float32(s_in):
        return
    g.fail(node, f"requantizes the output of pool {pool['name']!r} to scale {s!r}, not its "
           f"input's {s_in!r}: a pool keeps its input's scale on sparsemac (it does not "
           f"requantize, so it would round to another grid than ONNX Runtime); quantize with "
           f"extra_options={{'TensorQuantOverrides': {{{node.input[0]!r}: [{{'scale': "
           f"numpy.array({s_in!r}, numpy.float32), 'zero_point': numpy.array(0, "
           f"numpy.int8)}}]}}}} (pool_scale_overrides(model) gives them all)")


def pool_scale_overrides(path) -> dict:
    """The ``TensorQuantOverrides`` (``quantize_static``'s ``extra_options``) that give every pool
    of the QDQ model at ``path`` its input's scale at its output, so that sparsemac runs it:
    ``{pool output: [{"scale": float32 array, "zero_point": int8 array 0}]}`` for each pool
    whose ``QuantizeLinear`` has another scale (``quantize_static`` gives a GlobalAveragePool
    its own; MaxPool and AveragePool keep their input's already).  Quantize again with the
    same calibration data and these overrides."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    prod = {o: n for n in m.graph.node for o in n.output}
    outs = {o.name for o in m.graph.output}
    users: dict = {}
    for n in m.graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    out = {}
    for n in m.graph.node:
        if n.op_type not in _POOLS:
            continue
        dq = prod.get(n.input[0])
        q = prod.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" \
            else None
        after = [u for u in users.get(n.output[0], []) if u.op_type == "QuantizeLinear"]
        if q is None or q.op_type != "QuantizeLinear" or not after:
            continue
        s_in = float(np.asarray(init[q.input[1]]).ravel()[0])
        if float(np.asarray(init[after[0].input[1]]).ravel()[0]) != s_in:
            # quantize_static renames a graph output X it quantizes: the pool writes
            # X_QuantizeLinear_Input and the DequantizeLinear after it writes X
            name = n.output[0]
            dq_after = [u for u in users.get(after[0].output[0], [])
                        if u.op_type == "DequantizeLinear" and u.output[0] in outs]
            if dq_after:
                name = dq_after[0].output[0]
            out[name] = [{"scale": np.array(s_in, dtype=np.float32),
                          "zero_point": np.array(0, dtype=np.int8)}]
    return out


def _layer_of(g: _Graph, node, index: int, flatten: bool, fmts: dict, cfg, chosen) -> dict:
    op = node.op_type
    lname = node.name or node.output[0]
    w, wq, ws = _dq_const(g, node.input[1])
    if w is None:
        g.fail(node, "must have constant weights (an initializer or DequantizeLinear of one)")
    L: dict = {"name": lname}
    if op == "Conv":
        if w.ndim != 4:
            g.fail(node, f"must be a 2-D convolution (OIHW weights), not {w.ndim - 2}-D")
        group = int(g.attr(node, "group", 1))
        depthwise = group > 1 and w.shape[0] == group and w.shape[1] == 1
        if group != 1 and not depthwise:
            g.fail(node, f"must have group 1, or group = channels with one filter per channel "
                   f"(depthwise), not group {group} with weights {list(w.shape)} (grouped "
                   f"convolution is not supported)")
        pads = list(g.attr(node, "pads", [0, 0, 0, 0]))
        if pads[:2] != pads[2:]:
            g.fail(node, f"must have symmetric pads (top = bottom, left = right), not {pads}")
        if g.attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            g.fail(node, "must use explicit pads (auto_pad NOTSET)")
        L.update(op="conv2d", out_channels=int(w.shape[0]), kernel=[int(w.shape[2]),
                 int(w.shape[3])], stride=list(g.attr(node, "strides", [1, 1])),
                 padding=pads[:2], dilation=list(g.attr(node, "dilations", [1, 1])))
        if depthwise:       # compiled as the block-diagonal conv2d (docs/host.md)
            L["groups"] = group
        w2 = w.reshape(w.shape[0], -1)
        wint = None if wq is None else wq
    else:
        if op == "Gemm":
            if g.attr(node, "transA", 0) != 0 or g.attr(node, "alpha", 1.0) != 1.0 or \
                    g.attr(node, "beta", 1.0) != 1.0:
                g.fail(node, "must have transA 0, alpha 1 and beta 1")
            trans_b = g.attr(node, "transB", 0)
        else:
            trans_b = 0
        if w.ndim != 2:
            g.fail(node, f"must have 2-D weights, not {list(w.shape)}")
        # ONNX Y[N, M] = X[N, K] @ B (B: [K, M], or [M, K] with transB)
        w2 = w if trans_b else w.T
        wint = None if wq is None else (wq if trans_b else wq.T)
        if ws is not None and ws.size > 1 and not trans_b:
            ws = ws.ravel()   # per output channel either way (axis 1 of B[K, M])
        L.update(op="matmul", out_features=int(w2.shape[0]))
        if flatten:
            L["flatten"] = True
    if len(node.input) > 2 and node.input[2]:
        b, _bq, _bs = _dq_const(g, node.input[2])
        if b is None:
            g.fail(node, "must have a constant bias")
        L["bias"] = b.ravel()
        if _bq is not None:
            L["bias"] = _bq.astype(np.int64).ravel()
    if wint is not None:
        L["weights"] = wint.astype(np.int8).reshape(w.shape if op == "Conv" else w2.shape)
        s = np.asarray(ws, dtype=np.float64).ravel()
        L["weight_scale"] = s if s.size > 1 else float(s[0])
    else:
        L["weights"] = w.reshape(w.shape) if op == "Conv" else w2
    spec = fmts.get(lname, fmts.get("*", "auto"))
    fields = _format_fields(spec, f"--format {lname}={spec}")
    if not fields and L.get("groups", 1) > 1:
        fields = {"format": "bitmap", "prune": "none"}
        chosen[lname] = {**fields, "why": "auto: depthwise, a block-diagonal conv whose zeros "
                                          "bitmap skips"}
    elif not fields:
        fields, why = detect_format(w2, cfg) if cfg is not None else \
            ({"format": "dense"}, "no configuration given")
        if fields["format"] != "nm":       # nm prunes to the pattern it already has: a no-op
            fields = dict(fields, prune="none")
        chosen[lname] = {**fields, "why": f"auto: {why}"}
    else:
        chosen[lname] = {**fields, "why": "option"}
    L.update(fields)
    return L
