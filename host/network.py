"""The layer-list schema of ``sparsemac run``: parse, validate and resolve shapes (docs/host.md).

A network is a mapping (YAML file or Python dict) with an ``input`` and a list of ``layers``
(``matmul``, ``conv2d``, the pools ``maxpool2d``, ``avgpool2d``, ``global_avgpool`` and the
residual ``add``).  Each layer reads the previous layer's output unless it names its input
(``input: <earlier layer>`` or ``input: network_input``; an ``add`` names two, ``inputs``): the
layers form a graph in which a layer reads only earlier layers.
:func:`load_network` / :func:`network_from_dict` check every field and the shapes between
layers, and return a resolved :class:`Network` whose layers know their input and output
shapes.  Every error is a :class:`NetworkError` whose one-line message names the
file and line (YAML input), the field path and the allowed values, e.g.
``net.yaml:7: layers[1].format must be one of dense, bitmap, block, nm, not 'csr'``.
Configuration-dependent checks (formats built in, LUT engine) are done by the compiler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sparsemac.yamlfile import MarkedDict, load_file

__all__ = ["Network", "LayerSpec", "NetworkError", "load_network", "network_from_dict",
           "OPS", "WEIGHT_FORMATS", "ACTIVATIONS", "PRUNE_FOR_FORMAT", "PRUNE_METHODS",
           "MAX_ELEMENTS", "MAX_BATCH", "POOL_OPS", "NETWORK_INPUT"]

#: Pooling layers (docs/spec.md section 2.3): no weights, int8 in and out at the input's scale.
POOL_OPS = ("maxpool2d", "avgpool2d", "global_avgpool")
OPS = ("matmul", "conv2d", *POOL_OPS, "add")
#: The name a layer's ``input`` / ``inputs`` gives to the network input (reserved: no layer
#: may be named so).
NETWORK_INPUT = "network_input"
WEIGHT_FORMATS = ("dense", "bitmap", "block", "nm")
#: pruning method used for each weight format (dense prunes only when ``density`` is given)
PRUNE_FOR_FORMAT = {"dense": "unstructured", "bitmap": "unstructured", "block": "block",
                    "nm": "nm"}
#: values of a layer's ``prune`` field (``auto``: `PRUNE_FOR_FORMAT`)
PRUNE_METHODS = ("auto", "none", "unstructured", "block", "nm")
_NM_MS = (2, 4, 8, 16, 32)
_TOP_KEYS = ("name", "seed", "input", "layers")
_INPUT_KEYS = ("shape", "values", "scale", "density")
_COMMON_KEYS = ("name", "op", "format", "prune", "density", "nm", "activation", "requant",
                "bias", "weights", "weight_scale", "requant_scale", "out_scale")
#: Largest number of values of one tensor (weights, input, output of a layer): sizes are
#: checked against it before anything is allocated.
MAX_ELEMENTS = 1 << 24
#: Largest batch of images (``input.shape`` ``[N, C, H, W]``).
MAX_BATCH = 65536
_OP_KEYS = {"matmul": ("out_features", "in_features", "flatten"),
            "conv2d": ("out_channels", "in_channels", "kernel", "stride", "padding", "dilation",
                       "reshape", "groups"),
            "maxpool2d": ("in_channels", "kernel", "stride", "padding", "reshape"),
            "avgpool2d": ("in_channels", "kernel", "stride", "padding", "count_include_pad",
                          "reshape"),
            "global_avgpool": ("in_channels", "reshape"),
            "add": ("inputs",)}
#: fields of an add besides ``name`` and ``op`` (no weights, bias or per-channel records)
_ADD_KEYS = ("inputs", "activation", "requant_scale", "out_scale")


def _activations() -> tuple[str, ...]:
    from sparsemac.golden.lut import FUNCTIONS

    return ("none", *FUNCTIONS)


ACTIVATIONS = _activations()


class NetworkError(ValueError):
    """A layer list breaks the schema: one line naming the place, the field and allowed values."""


# YAML files are read by sparsemac.yamlfile (UTF-8 check, duplicate keys refused, line
# numbers on every mapping, YAML 1.2 integers so an unquoted ``2:4`` stays a string)
_Map = MarkedDict


@dataclass(frozen=True)
class LayerSpec:
    """One validated layer with resolved shapes.

    Members
    -------
    index, name, op : int, str, str
        Position, unique name, ``"matmul"``, ``"conv2d"`` or a pool (`POOL_OPS`).
    out : int
        Output features ``M`` (matmul), output channels ``Kout`` (conv2d), channels ``C``
        (pools).
    in_shape, out_shape : tuple of int
        matmul ``(K, N)`` -> ``(M, N)``; conv2d ``(C, H, W)`` -> ``(Kout, OH, OW)``; pools
        ``(C, H, W)`` -> ``(C, OH, OW)`` (global average: ``(C, 1, 1)``).
    kernel, stride, padding, dilation : (int, int)
        conv2d and pool geometry (``(0, 0)`` for matmul; a global average pool has the
        window ``(H, W)``, stride ``(1, 1)``, padding ``(0, 0)``).
    count_include_pad : bool
        avgpool2d: padding positions count in the divisor (docs/spec.md section 2.3).
    groups : int
        conv2d: 1, or ``C`` (depthwise: output channel ``c`` sees input channel ``c`` only;
        weights ``(C, 1, KH, KW)``; compiled as the conv2d of the block-diagonal
        ``(C, C, KH, KW)`` matrix, whose zeros a sparse format skips).
    fmt, prune, density, nm : str, str, float or None, (int, int) or None
        Weight format, pruning method (``"none"``, ``"unstructured"``, ``"block"``, ``"nm"``;
        the ``prune`` field ``auto``, the default, takes `PRUNE_FOR_FORMAT`) and its parameters
        (``nm`` for format nm or prune nm).
    activation : str or None
        Name of a `golden.lut.FUNCTIONS` table, None for no table.
    requant : bool
        Requantize to int8 (else the int32 accumulators are the layer's output; last layer only).
    bias : bool or numpy.ndarray
        Random bias (True), none (False) or given values (float: real, int: int32).
    weights : numpy.ndarray or None
        Given weights (float: quantized per output channel; int: int8 as is), else random.
    weight_scale : float, numpy.ndarray or None
        Real value of one weight LSB for given int8 weights, one value or one per output
        channel (default: He-like, docs/host.md).
    requant_scale, out_scale : float or None
        Fixed real value of one LSB of the requantized output and of the activation table's
        output (an imported quantized model, or a calibration; docs/host.md section 2); None:
        calibrated on the input the image carries.
    inputs : tuple of int
        Indices of the layers read (``-1``: the network input), as the ``input`` / ``inputs``
        fields name them; ``()`` (no ``input`` field): the previous layer (`sources`).
    line : int or None
        Line of the layer in its YAML file.
    lines : dict of str to int
        Line of each field given in the YAML file.
    """

    index: int
    name: str
    op: str
    out: int
    in_shape: tuple
    out_shape: tuple
    kernel: tuple = (0, 0)
    stride: tuple = (0, 0)
    padding: tuple = (0, 0)
    dilation: tuple = (0, 0)
    groups: int = 1
    count_include_pad: bool = False
    fmt: str = "dense"
    prune: str = "none"
    density: float | None = None
    nm: tuple | None = None
    activation: str | None = None
    requant: bool = True
    bias: object = True
    weights: np.ndarray | None = None
    weight_scale: object = None
    requant_scale: float | None = None
    out_scale: float | None = None
    line: int | None = None
    lines: dict = field(default_factory=dict, compare=False)
    inputs: tuple = ()

    @property
    def sources(self) -> tuple[int, ...]:
        """Indices of the layers whose outputs this layer reads (``-1``: the network input):
        `inputs`, else the previous layer."""
        return self.inputs or (self.index - 1,)

    @property
    def is_add(self) -> bool:
        """A residual add (docs/spec.md section 2.4): two int8 inputs, no weights."""
        return self.op == "add"

    @property
    def has_weights(self) -> bool:
        """matmul or conv2d (a pool or an add has no weights, packed image or tile split)."""
        return self.op in ("matmul", "conv2d")

    @property
    def is_pool(self) -> bool:
        """A pooling layer (`POOL_OPS`): no weights, no requantization, no table."""
        return self.op in POOL_OPS

    @property
    def weight_shape(self) -> tuple:
        """matmul ``(M, K)``; conv2d ``(Kout, C, KH, KW)`` (OIHW; depthwise ``(C, 1, KH, KW)``);
        ``()`` for a pool."""
        if self.op == "matmul":
            return (self.out, self.in_shape[0])
        if not self.has_weights:
            return ()
        return (self.out, self.in_shape[0] // self.groups, *self.kernel)

    @property
    def mkn(self) -> tuple[int, int, int]:
        """The descriptor's ``(m, k, n)`` (conv2d: ``Kout, C*KH*KW, OH*OW``; pools
        ``C, KH*KW, OH*OW``, global average ``C, H*W, 1``: docs/spec.md section 8.2)."""
        if self.op == "matmul":
            return self.out, self.in_shape[0], self.in_shape[1]
        if self.is_add:     # C x H x W (a matrix M x N: C = M, H = 1, W = N)
            return self.out, 1, math.prod(self.out_shape[1:])
        c = self.in_shape[0]
        k = self.kernel[0] * self.kernel[1] * (1 if self.is_pool else c)
        return self.out, k, self.out_shape[1] * self.out_shape[2]


@dataclass(frozen=True)
class Network:
    """A validated network: input description and resolved layers.

    Members
    -------
    name : str
    seed : int
        Seed of the random weights, biases and input (``--seed`` overrides it).
    input_shape : tuple of int
        ``(K, N)`` for a matrix input, ``(C, H, W)`` for one image (NCHW).
    input_values : numpy.ndarray or None
        Given input, ``input_shape`` or ``(batch, C, H, W)`` (float: quantized with
        ``input_scale`` when given, else ``max|x| / 127``; int: int8 as is), else random.
    input_scale : float or None
        Real value of one input LSB (default 1/64 for int8 inputs).
    batch : int
        Images of an image input (``input.shape`` ``[N, C, H, W]``); 1 for a matrix input,
        whose batch is its N columns.
    input_density : float
        Fraction of non-zero values of a random input.
    layers : tuple of LayerSpec
    source : str
        File name or ``"network"``.
    """

    name: str
    seed: int
    input_shape: tuple
    input_values: np.ndarray | None
    input_scale: float | None
    input_density: float
    layers: tuple
    source: str = "network"
    batch: int = 1


    def with_columns(self, n: int) -> Network:
        """The network on an input matrix of ``n`` columns instead of ``input_shape[1]``
        (the columns of a matrix input are its batch): every matmul's ``N`` follows.

        Raises
        ------
        NetworkError
            The input is an image, or a conv2d follows the matrix (its reshape fixes N)."""
        if len(self.input_shape) != 2:
            raise NetworkError(f"{self.source}: only a network with a matrix input [K, N] can "
                               f"change its columns N, not an image {list(self.input_shape)}")
        if n == self.input_shape[1]:
            return self
        if any(sp.op not in ("matmul", "add") for sp in self.layers):
            raise NetworkError(f"{self.source}: the columns N of the input are fixed by the "
                               f"reshape of a conv2d; only a chain of matmul layers takes "
                               f"{n} columns instead of {self.input_shape[1]}")
        layers = tuple(replace(sp, in_shape=(sp.in_shape[0], n), out_shape=(sp.out, n))
                       for sp in self.layers)
        values = self.input_values
        if values is not None and values.shape[1] != n:
            values = None
        return replace(self, input_shape=(self.input_shape[0], n), layers=layers,
                       input_values=values)


class _Checker:
    def __init__(self, source: str):
        self.source = source

    def fail(self, m, key, path: str, msg: str):
        line = None
        if isinstance(m, _Map):
            line = m.lines.get(key, m.line) if key is not None else m.line
        where = f"{self.source}:{line}" if line else self.source
        raise NetworkError(f"{where}: {path} {msg}")

    def keys(self, m, allowed, path):
        for k in m:
            if k not in allowed:
                self.fail(m, k, f"{path}.{k}" if path else str(k),
                          f"is not a known field; allowed: {', '.join(allowed)}")

    def integer(self, m, key, path, lo, default=None, hi=None):
        if key not in m:
            if default is None:
                self.fail(m, None, path, f"must be given (an integer >= {lo})")
            return default
        v = m[key]
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo \
                or (hi is not None and v > hi):
            req = f"an integer >= {lo}" if hi is None else f"an integer between {lo} and {hi}"
            self.fail(m, key, path, f"must be {req}, not {v!r}")
        return int(v)

    def pair(self, m, key, path, lo, default, hi=255):
        if key not in m:
            return default
        v = m[key]
        t = [v, v] if isinstance(v, int | np.integer) and not isinstance(v, bool) else v
        if not isinstance(t, list | tuple) or len(t) != 2 or any(
                isinstance(x, bool) or not isinstance(x, int | np.integer) or x < lo or x > hi
                for x in t):
            self.fail(m, key, path, f"must be an integer between {lo} and {hi} or a pair "
                      f"[h, w] of them, not {v!r}")
        return int(t[0]), int(t[1])

    def number(self, m, key, path, lo, hi, default):
        if key not in m:
            return default
        v = m[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            self.fail(m, key, path, f"must be a number between {lo} and {hi}, not {v!r}")
        return float(v)

    def choice(self, m, key, path, allowed, default=None):
        if key not in m:
            if default is None:
                self.fail(m, None, path, f"must be given (one of {', '.join(allowed)})")
            return default
        v = m[key]
        if v not in allowed or isinstance(v, bool):
            self.fail(m, key, path, f"must be one of {', '.join(allowed)}, not {v!r}")
        return v

    def array(self, m, key, path, base: Path | None, *, int_range=(-128, 127),
              int_what="int8"):
        """A nested list, an array or a ``.npy`` file name: numbers only, finite, integers
        within ``int_range`` (the same checks for a file as for an inline list)."""
        v = m[key]
        src = ""
        if isinstance(v, str):
            p = Path(v) if base is None or Path(v).is_absolute() else base / v
            try:
                a = np.load(p, allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                self.fail(m, key, path, f"must be a readable .npy file, not {v!r} "
                          f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
            if not isinstance(a, np.ndarray):
                self.fail(m, key, path, f"must be a .npy file holding one array, not {v!r} "
                          f"(an .npz archive)")
            src = f" ({v})"
        else:
            try:
                a = np.asarray(v)
            except ValueError:
                a = None
        if a is None or a.dtype == object or a.dtype == bool or not (
                np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            self.fail(m, key, path, "must be a nested list of numbers, an array or a .npy "
                      f"file name of numbers, not a ragged or non-numeric value{src}")
        if a.size > MAX_ELEMENTS:
            self.fail(m, key, path, f"must hold at most {MAX_ELEMENTS} values, not {a.size}{src}")
        if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            self.fail(m, key, path, f"must hold finite numbers only (no NaN or inf){src}")
        lo, hi = int_range
        if np.issubdtype(a.dtype, np.integer) and a.size and (a.min() < lo or a.max() > hi):
            self.fail(m, key, path, f"must hold {int_what} values ({lo}..{hi}) when given as "
                      f"integers, not range [{int(a.min())}, {int(a.max())}]{src}")
        return a


def _nm_value(ck: _Checker, m, path):
    v = m["nm"]
    try:
        if isinstance(v, str):
            n, mm = (int(s) for s in v.split(":"))
        else:
            n, mm = (int(s) for s in v)
            if any(isinstance(s, bool) or not isinstance(s, int | np.integer) for s in v):
                raise ValueError
    except (TypeError, ValueError):
        ck.fail(m, "nm", path, f"must be 'N:M' or [N, M], not {v!r}")
    if mm not in _NM_MS:
        ck.fail(m, "nm", path, f"must have M a power of two in 2..32, not {v!r}")
    if not 1 <= n <= mm:
        ck.fail(m, "nm", path, f"must have 1 <= N <= M, not {v!r}")
    return n, mm


def _image_input(ck: _Checker, m, p: str, op: str, prev: tuple, prev_name: str) -> tuple:
    """The ``(C, H, W)`` image a conv2d or a pool reads: the previous image, or a matrix read
    back as an image with ``reshape`` (the same bytes); checks ``in_channels``."""
    kind, shp = prev
    if kind == "mat":
        if "reshape" not in m:
            ck.fail(m, None, f"{p}.reshape", f"must be given ([C, H, W] with C*H*W = "
                    f"{shp[0] * shp[1]}) for a {op} whose input is a matrix "
                    f"({prev_name}: {shp[0]} x {shp[1]})")
        r = m["reshape"]
        if not isinstance(r, list | tuple) or len(r) != 3 or any(
                isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in r) \
                or r[0] * r[1] * r[2] != shp[0] * shp[1]:
            ck.fail(m, "reshape", f"{p}.reshape", f"must be [C, H, W] with C*H*W = "
                    f"{shp[0] * shp[1]} (the {shp[0]} x {shp[1]} output of {prev_name}), "
                    f"not {r!r}")
        shp = tuple(int(x) for x in r)
    elif "reshape" in m:
        ck.fail(m, "reshape", f"{p}.reshape", f"must only be given when the input is a "
                f"matrix, not after {prev_name}")
    c, h, w = shp
    if "in_channels" in m:
        ck.integer(m, "in_channels", f"{p}.in_channels", 1)
        if m["in_channels"] != c:
            ck.fail(m, "in_channels", f"{p}.in_channels", f"must be {c} (the channels of "
                    f"the input from {prev_name}), not {m['in_channels']!r}")
    if max(c, h, w) > 65535:
        ck.fail(m, None, p, f"input must be at most 65535 per dimension (u16 descriptor "
                f"fields), not {shp!r}")
    return shp


def _pool_layer(ck: _Checker, m, i: int, op: str, prev: tuple, prev_name: str) -> LayerSpec:
    """A pooling layer (docs/spec.md section 2.3): the spec's ranges (kernel and stride
    1..16, padding 0..kernel-1 per axis, no dilation); the hardware's narrower ones are the
    compiler's (they depend on the configuration)."""
    from sparsemac.golden.descriptors import GLOBAL_POOL_MAX, POOL_GEO_MAX

    p = f"layers[{i}]"
    for k in m:
        if k in _COMMON_KEYS and k not in ("name", "op"):
            ck.fail(m, k, f"{p}.{k}", f"must not be given for a pool layer ({op}): it has no "
                    f"weights, requantization or activation, its output keeps the input's scale")
    ck.keys(m, ("name", "op") + _OP_KEYS[op] + ("input",), p)
    name = m.get("name", f"layer{i}")
    if not isinstance(name, str) or not name:
        ck.fail(m, "name", f"{p}.name", f"must be a non-empty string, not {name!r}")
    c, h, w = _image_input(ck, m, p, op, prev, prev_name)
    include = False
    if op == "global_avgpool":
        if h * w > GLOBAL_POOL_MAX:
            ck.fail(m, None, p, f"input must hold at most {GLOBAL_POOL_MAX} values per channel "
                    f"(H*W) for a global_avgpool, not {h} x {w} (from {prev_name})")
        geo = dict(kernel=(h, w), stride=(1, 1), padding=(0, 0))
        oh = ow = 1
    else:
        kern = ck.pair(m, "kernel", f"{p}.kernel", 1, None, hi=POOL_GEO_MAX)
        if kern is None:
            ck.fail(m, None, f"{p}.kernel", "must be given (an integer or [kh, kw])")
        stride = ck.pair(m, "stride", f"{p}.stride", 1, kern, hi=POOL_GEO_MAX)
        pad = ck.pair(m, "padding", f"{p}.padding", 0, (0, 0), hi=POOL_GEO_MAX)
        if pad[0] > kern[0] - 1 or pad[1] > kern[1] - 1:
            ck.fail(m, "padding", f"{p}.padding", f"must be at most kernel - 1 per axis "
                    f"({[kern[0] - 1, kern[1] - 1]} for kernel {list(kern)}: every window "
                    f"must hold a real value), not {m['padding']!r}")
        if h + 2 * pad[0] < kern[0] or w + 2 * pad[1] < kern[1]:
            ck.fail(m, "kernel", f"{p}.kernel", f"must fit the padded input {h + 2 * pad[0]} x "
                    f"{w + 2 * pad[1]}, not {list(kern)!r}")
        if op == "avgpool2d":
            if "count_include_pad" in m:
                include = m["count_include_pad"]
                if not isinstance(include, bool):
                    ck.fail(m, "count_include_pad", f"{p}.count_include_pad", f"must be true or "
                            f"false, not {include!r}")
            elif pad != (0, 0):
                ck.fail(m, None, f"{p}.count_include_pad", "must be given when padding is not 0 "
                        "(true: the padding counts as zeros, divide by KH*KW, PyTorch's "
                        "default; false: divide by the real values only, ONNX's default)")
        geo = dict(kernel=tuple(kern), stride=tuple(stride), padding=tuple(pad))
        oh = (h + 2 * pad[0] - kern[0]) // stride[0] + 1
        ow = (w + 2 * pad[1] - kern[1]) // stride[1] + 1
    for what, shp_ in (("input", (c, h, w)), ("output", (c, oh, ow))):
        if math.prod(shp_) > MAX_ELEMENTS:
            ck.fail(m, None, p, f"{what} must hold at most {MAX_ELEMENTS} values, not "
                    f"{math.prod(shp_)} (shape {' x '.join(map(str, shp_))})")
    return LayerSpec(index=i, name=name, op=op, out=c, in_shape=(c, h, w),
                     out_shape=(c, oh, ow), dilation=(1, 1), count_include_pad=include,
                     bias=False, line=getattr(m, "line", None),
                     lines=dict(getattr(m, "lines", {})), **geo)


def _layer(ck: _Checker, m, i: int, prev: tuple, prev_name: str, base) -> LayerSpec:
    p = f"layers[{i}]"
    if not isinstance(m, dict):
        ck.fail(None, None, p, f"must be a mapping of layer fields, not {m!r}")
    op = ck.choice(m, "op", f"{p}.op", OPS)
    if op in POOL_OPS:
        return _pool_layer(ck, m, i, op, prev, prev_name)
    if op == "add":
        return _add_layer(ck, m, i, prev)
    ck.keys(m, _COMMON_KEYS + _OP_KEYS[op] + ("input",), p)
    name = m.get("name", f"layer{i}")
    if not isinstance(name, str) or not name:
        ck.fail(m, "name", f"{p}.name", f"must be a non-empty string, not {name!r}")
    fmt = ck.choice(m, "format", f"{p}.format", WEIGHT_FORMATS, "dense")
    prune = ck.choice(m, "prune", f"{p}.prune", PRUNE_METHODS, "auto")
    if fmt == "nm" and prune not in ("auto", "nm"):
        ck.fail(m, "prune", f"{p}.prune", f"must be auto or nm for format nm (the format "
                f"stores N:M weights only), not {prune!r}")
    density = ck.number(m, "density", f"{p}.density", 0, 1, None)
    nm = None
    if fmt == "nm" or prune == "nm":
        if density is not None:
            why = "format nm" if fmt == "nm" else "prune nm"
            ck.fail(m, "density", f"{p}.density", f"must not be given for {why} "
                    f"(N:M fixes the density), not {density!r}")
        nm = _nm_value(ck, m, f"{p}.nm") if "nm" in m else (2, 4)
        prune = "nm"
    else:
        if "nm" in m:
            ck.fail(m, "nm", f"{p}.nm", f"must only be given with format nm or prune nm, not "
                    f"with {fmt!r}")
        if prune == "none" and density is not None:
            ck.fail(m, "density", f"{p}.density", f"must not be given for prune none, not "
                    f"{density!r}")
        if prune == "auto" and fmt == "dense":
            prune = "none" if density is None or density >= 1.0 else "unstructured"
        elif prune != "none":
            density = 0.5 if density is None else density
            prune = PRUNE_FOR_FORMAT[fmt] if prune == "auto" else prune
    act = ck.choice(m, "activation", f"{p}.activation", ACTIVATIONS, "none")
    requant = m.get("requant", True)
    if not isinstance(requant, bool):
        ck.fail(m, "requant", f"{p}.requant", f"must be true or false, not {requant!r}")
    if act != "none" and not requant:
        ck.fail(m, "activation", f"{p}.activation", f"must be none when requant is false, "
                f"not {act!r}")
    bias = m.get("bias", True)
    if not isinstance(bias, bool):
        bias = ck.array(m, "bias", f"{p}.bias", base, int_range=(-2**31, 2**31 - 1),
                        int_what="int32").ravel()
    wscale = None
    if "weight_scale" in m:
        ws = m["weight_scale"]
        if isinstance(ws, int | float) and not isinstance(ws, bool):
            wscale = ck.number(m, "weight_scale", f"{p}.weight_scale", 1e-30, 1e30, None)
        else:
            wscale = ck.array(m, "weight_scale", f"{p}.weight_scale", base).astype(
                np.float64).ravel()
            if wscale.size == 0 or not np.all((wscale >= 1e-30) & (wscale <= 1e30)):
                ck.fail(m, "weight_scale", f"{p}.weight_scale", "must be a number or a list of "
                        "numbers between 1e-30 and 1e+30 (one per output channel)")
    fixed = {k: ck.number(m, k, f"{p}.{k}", 1e-30, 1e30, None)
             for k in ("requant_scale", "out_scale")}
    if fixed["out_scale"] is not None and act == "none":
        ck.fail(m, "out_scale", f"{p}.out_scale", "must only be given with an activation "
                "(the output LSB of its table; requant_scale is the LSB without one)")
    if not requant and any(v is not None for v in fixed.values()):
        ck.fail(m, "requant_scale" if fixed["requant_scale"] is not None else "out_scale",
                f"{p}.requant_scale", "must not be given when requant is false")
    weights = ck.array(m, "weights", f"{p}.weights", base) if "weights" in m else None

    kind, shp = prev
    geo = {}
    if op == "matmul":
        if kind == "img":
            flatten = m.get("flatten", True)
            if not isinstance(flatten, bool):
                ck.fail(m, "flatten", f"{p}.flatten", f"must be true or false, not {flatten!r}")
            c, h, w = shp
            k, n = (c * h * w, 1) if flatten else (c, h * w)
        else:
            if "flatten" in m:
                ck.fail(m, "flatten", f"{p}.flatten", f"must only be given when the input is "
                        f"an image (after a conv2d), not after {prev_name}")
            k, n = shp
        if "in_features" in m:
            ck.integer(m, "in_features", f"{p}.in_features", 1)
            if m["in_features"] != k:
                ck.fail(m, "in_features", f"{p}.in_features", f"must be {k} (the rows K of the "
                        f"input from {prev_name}), not {m['in_features']!r}")
        out = _out(ck, m, "out_features", p, weights, 0)
        in_shape, out_shape = (k, n), (out, n)
        if weights is not None and weights.shape != (out, k):
            ck.fail(m, "weights", f"{p}.weights", f"must have shape {(out, k)} (M, K), not "
                    f"{weights.shape}")
    else:
        shp = _image_input(ck, m, p, op, prev, prev_name)
        c, h, w = shp
        kern = ck.pair(m, "kernel", f"{p}.kernel", 1,
                       None if weights is None or weights.ndim != 4 else weights.shape[2:])
        if kern is None:
            ck.fail(m, None, f"{p}.kernel", "must be given (an integer or [kh, kw])")
        geo = dict(kernel=tuple(kern), stride=ck.pair(m, "stride", f"{p}.stride", 1, (1, 1)),
                   padding=ck.pair(m, "padding", f"{p}.padding", 0, (0, 0)),
                   dilation=ck.pair(m, "dilation", f"{p}.dilation", 1, (1, 1)))
        (kh, kw), (sh, sw) = geo["kernel"], geo["stride"]
        (ph, pw), (dh, dw) = geo["padding"], geo["dilation"]
        oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if oh < 1 or ow < 1:
            ck.fail(m, "kernel", f"{p}.kernel", f"must fit the padded input {h + 2 * ph} x "
                    f"{w + 2 * pw} (dilated kernel {dh * (kh - 1) + 1} x {dw * (kw - 1) + 1}), "
                    f"not {list(kern)!r}")
        groups = m.get("groups", 1)
        if isinstance(groups, bool) or groups not in (1, c):
            ck.fail(m, "groups", f"{p}.groups", f"must be 1 or {c} (the input channels: "
                    f"depthwise), not {groups!r}")
        geo["groups"] = groups
        if groups > 1 and "out_channels" not in m and weights is None:
            out = c
        else:
            out = _out(ck, m, "out_channels", p, weights, 0)
        if groups > 1 and out != c:
            ck.fail(m, "out_channels", f"{p}.out_channels", f"must be {c} for a depthwise "
                    f"conv2d (groups = in_channels: one output channel per input channel), "
                    f"not {out!r}")
        in_shape, out_shape = (c, h, w), (out, oh, ow)
        wexp = (out, c // groups, kh, kw)
        if weights is not None and weights.shape != wexp:
            ck.fail(m, "weights", f"{p}.weights", f"must have shape {wexp} "
                    f"({'C, 1' if groups > 1 else 'O, C'}, KH, KW), not {weights.shape}")
    if not isinstance(bias, bool) and bias.size != out:
        ck.fail(m, "bias", f"{p}.bias", f"must have {out} values (one per output channel), "
                f"not {bias.size}")
    if isinstance(wscale, np.ndarray) and wscale.size not in (1, out):
        ck.fail(m, "weight_scale", f"{p}.weight_scale", f"must be one number or {out} (one per "
                f"output channel), not {wscale.size}")
    wshape = ((out, in_shape[0]) if op == "matmul"
              else (out, in_shape[0] // geo["groups"], *geo["kernel"]))
    for what, shp_ in (("weights", wshape), ("input", in_shape), ("output", out_shape)):
        if math.prod(shp_) > MAX_ELEMENTS:
            ck.fail(m, None, p, f"{what} must hold at most {MAX_ELEMENTS} values, not "
                    f"{math.prod(shp_)} (shape {' x '.join(map(str, shp_))})")
    return LayerSpec(index=i, name=name, op=op, out=out, in_shape=in_shape,
                     out_shape=out_shape, fmt=fmt, prune=prune, density=density, nm=nm,
                     activation=None if act == "none" else act, requant=requant, bias=bias,
                     weights=weights, weight_scale=wscale, line=getattr(m, "line", None),
                     requant_scale=fixed["requant_scale"], out_scale=fixed["out_scale"],
                     lines=dict(getattr(m, "lines", {})),
                     **geo)


def _add_layer(ck: _Checker, m, i: int, srcs: list) -> LayerSpec:
    """A residual add (docs/spec.md section 2.4) of the two tensors ``srcs`` (``(kind, shape,
    what)`` each, resolved from ``inputs`` by the caller): the same ``C x H x W`` image or
    ``M x N`` matrix shape, int8 out at a calibrated (or given) scale, an optional table."""
    p = f"layers[{i}]"
    for k in m:
        if k in _COMMON_KEYS and k not in ("name", "op") + _ADD_KEYS:
            ck.fail(m, k, f"{p}.{k}", "must not be given for an add layer: it has no weights, "
                    "bias or per-channel requantization (its output scale is calibrated, or "
                    "requant_scale)")
    ck.keys(m, ("name", "op") + _ADD_KEYS, p)
    name = m.get("name", f"layer{i}")
    if not isinstance(name, str) or not name:
        ck.fail(m, "name", f"{p}.name", f"must be a non-empty string, not {name!r}")
    (ka, sa, wa), (kb, sb, wb) = srcs
    if (ka, sa) != (kb, sb):
        ck.fail(m, "inputs", f"{p}.inputs", f"must name two tensors of one shape, not "
                f"{' x '.join(map(str, sa))} ({wa}) and {' x '.join(map(str, sb))} ({wb})")
    chw = sa if ka == "img" else (sa[0], 1, sa[1])
    if max(chw) > 65535:
        ck.fail(m, None, p, f"input must be at most 65535 per dimension (u16 descriptor "
                f"fields), not {sa!r}")
    act = ck.choice(m, "activation", f"{p}.activation", ACTIVATIONS, "none")
    fixed = {k: ck.number(m, k, f"{p}.{k}", 1e-30, 1e30, None)
             for k in ("requant_scale", "out_scale")}
    if fixed["out_scale"] is not None and act == "none":
        ck.fail(m, "out_scale", f"{p}.out_scale", "must only be given with an activation "
                "(the output LSB of its table; requant_scale is the LSB without one)")
    return LayerSpec(index=i, name=name, op="add", out=sa[0], in_shape=tuple(sa),
                     out_shape=tuple(sa), bias=False,
                     activation=None if act == "none" else act,
                     requant_scale=fixed["requant_scale"], out_scale=fixed["out_scale"],
                     line=getattr(m, "line", None), lines=dict(getattr(m, "lines", {})))


def _source(ck: _Checker, m, key: str, path: str, v, i: int, outs: dict, names: list) -> int:
    """The index of the tensor a layer's ``input`` (or one of its ``inputs``) names: an
    earlier layer (its int8 output) or `NETWORK_INPUT` (``-1``)."""
    if not isinstance(v, str) or not v:
        ck.fail(m, key, path, f"must be the name of an earlier layer or {NETWORK_INPUT}, "
                f"not {v!r}")
    if v == NETWORK_INPUT:
        return -1
    if v not in outs:
        if v in names[i:]:
            j = names.index(v, i)
            ck.fail(m, key, path, f"must name an earlier layer (a layer reads only the layers "
                    f"before it) or {NETWORK_INPUT}, not {v!r} (layers[{j}]"
                    f"{', the layer itself' if j == i else ', later'})")
        ck.fail(m, key, path, f"must name an earlier layer or {NETWORK_INPUT}, not {v!r} "
                f"(no layer has that name)")
    j, spec = outs[v]
    if not spec.requant:
        ck.fail(m, key, path, f"must not name layer {v!r} whose requant is false (int32 "
                f"accumulators are not an int8 input)")
    return j


def _out(ck, m, key, p, weights, axis):
    if key not in m and weights is not None:
        return int(weights.shape[axis])
    return ck.integer(m, key, f"{p}.{key}", 1, hi=MAX_ELEMENTS)


def network_from_dict(data, *, source: str = "network", base: Path | None = None) -> Network:
    """Validate a layer list given as a Python mapping (same schema as the YAML file).

    Raises
    ------
    NetworkError
        A field is missing, unknown or out of range, or shapes do not chain between layers.
    """
    ck = _Checker(source)
    if not isinstance(data, dict):
        ck.fail(None, None, "network", f"must be a mapping with input and layers, not "
                f"{next(t for t in type(data).__mro__ if t.__module__ == 'builtins').__name__}")
    ck.keys(data, _TOP_KEYS, "")
    name = data.get("name", Path(source).stem if source != "network" else "network")
    if not isinstance(name, str):
        ck.fail(data, "name", "name", f"must be a string, not {name!r}")
    seed = ck.integer(data, "seed", "seed", 0, default=0)
    inp = data.get("input")
    if not isinstance(inp, dict):
        ck.fail(data, "input" if "input" in data else None, "input",
                "must be given (a mapping with shape and optional values, scale, density)")
    ck.keys(inp, _INPUT_KEYS, "input")
    values = ck.array(inp, "values", "input.values", base) if "values" in inp else None
    if "shape" in inp:
        shape = inp["shape"]
        if not isinstance(shape, list | tuple) or len(shape) not in (2, 3, 4) or any(
                isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in shape):
            ck.fail(inp, "shape", "input.shape", f"must be [K, N] (matrix), [C, H, W] (image) "
                    f"or [N, C, H, W] (a batch of images) of positive integers, not {shape!r}")
        shape = tuple(int(x) for x in shape)
        if values is not None and values.shape != shape:
            ck.fail(inp, "values", "input.values", f"must have the shape {shape} of "
                    f"input.shape, not {values.shape}")
    elif values is not None:
        if values.ndim not in (2, 3, 4):
            ck.fail(inp, "values", "input.values", f"must be 2-D [K, N], 3-D [C, H, W] or 4-D "
                    f"[N, C, H, W], not shape {values.shape}")
        shape = values.shape
    else:
        ck.fail(inp, None, "input.shape", "must be given ([K, N], [C, H, W] or [N, C, H, W])")
    batch = 1
    if len(shape) == 4:
        batch, shape = shape[0], tuple(shape[1:])
        if batch > MAX_BATCH:
            ck.fail(inp, "shape", "input.shape", f"must have a batch N of at most {MAX_BATCH} "
                    f"images, not {batch}")
    if math.prod(shape) > MAX_ELEMENTS:
        ck.fail(inp, "shape" if "shape" in inp else "values", "input.shape", f"must hold at "
                f"most {MAX_ELEMENTS} values{' per image' if len(shape) == 3 else ''}, not "
                f"{math.prod(shape)}")
    scale = ck.number(inp, "scale", "input.scale", 1e-30, 1e30, None)
    density = ck.number(inp, "density", "input.density", 0, 1, 1.0)
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        ck.fail(data, "layers" if "layers" in data else None, "layers",
                "must be given (a non-empty list of layers)")
    prev = ("mat" if len(shape) == 2 else "img", tuple(shape))
    prev_name, specs, names = "the network input", [], set()
    # tensors a layer may read: -1 the network input, i layer i's output
    tensors = {-1: (prev, prev_name)}
    outs: dict = {}     # name -> (index, spec) of the layers so far
    all_names = [m.get("name", f"layer{i}") if isinstance(m, dict) else None
                 for i, m in enumerate(layers)]
    for i, m in enumerate(layers):
        srcs = ()
        if isinstance(m, dict) and m.get("op") == "add":
            v = m.get("inputs")
            if not isinstance(v, list | tuple) or len(v) != 2:
                ck.fail(m, "inputs" if "inputs" in m else None, f"layers[{i}].inputs",
                        f"must be given as a list [a, b] of two earlier layer names (or "
                        f"{NETWORK_INPUT}){'' if 'inputs' not in m else f', not {v!r}'}")
            srcs = tuple(_source(ck, m, "inputs", f"layers[{i}].inputs[{k}]", x, i, outs,
                                 all_names) for k, x in enumerate(v))
            spec = _add_layer(ck, m, i, [(*tensors[j][0], tensors[j][1]) for j in srcs])
        else:
            if isinstance(m, dict) and "input" in m:
                srcs = (_source(ck, m, "input", f"layers[{i}].input", m["input"], i, outs,
                                all_names),)
                prev, prev_name = tensors[srcs[0]]
            spec = _layer(ck, m, i, prev, prev_name, base)
        if spec.name in names:
            ck.fail(m, "name", f"layers[{i}].name", f"must be unique, not {spec.name!r} again")
        if spec.name == NETWORK_INPUT:
            ck.fail(m, "name", f"layers[{i}].name", f"must not be {NETWORK_INPUT!r} (the name "
                    f"input fields give to the network input)")
        if not specs[-1].requant if specs else False:
            ck.fail(m, None, f"layers[{i}]", f"must not follow layer {specs[-1].name!r} whose "
                    "requant is false (int32 accumulators are not an int8 input)")
        if srcs:
            spec = replace(spec, inputs=srcs)
        names.add(spec.name)
        outs[spec.name] = (i, spec)
        specs.append(spec)
        prev = ("mat" if len(spec.out_shape) == 2 else "img", spec.out_shape)
        prev_name = f"layers[{i}] {spec.name!r}"
        tensors[i] = (prev, prev_name)
    return Network(name=name, seed=seed, input_shape=tuple(shape), input_values=values,
                   input_scale=scale, input_density=density, layers=tuple(specs),
                   source=source, batch=int(batch))


def load_network(path) -> Network:
    """Read and validate a YAML layer list (``.npy`` file names resolve next to it).

    Raises
    ------
    NetworkError
        The file cannot be read, is not YAML, or breaks the schema (one-line message).
    """
    path = Path(path)
    data = load_file(path, "network file", NetworkError)
    return network_from_dict(data, source=str(path), base=path.parent)
