"""``sparsemac bench matmul|conv2d``: one layer on the tile RTL or the tile cycle model.

The layer is random int8 data (``--seed``), pruned to the requested sparsity, packed in
``--format`` and checked bit-exact against ``golden.matmul``.  ``--format dense`` runs the
same pruned weights without any skipping, so ``speedup = dense cycles / sparse cycles`` on the
same hardware.  ``cycles`` is the tile's compute phase (lanes start -> last result; the weight
image and the activations keep arriving during it, docs/tile.md "Load and compute"); the
command to the lanes' start is ``load_cycles``.
conv2d sends the raw NCHW image; the tile builds the im2col entries itself (implicit im2col,
padding never fetched; docs/tile.md).  The flags describe one layer of the
`sparsemac.host.network` schema (:func:`layer_spec`), which validates it.
"""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import numpy as np

from ..sim.bench_layer import CapacityError, check_capacity, run_layer
from .cmd_config import add_config_arguments, config_from_args
from .main import UsageError

__all__ = ["register", "build_layer", "layer_spec"]


def _nm(text: str):
    try:
        n, m = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--nm must be N:M, not {text!r}") from None
    return n, m


def _common(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--engine", choices=("rtl", "model"), default="model",
                   help="rtl: the compute tile on Verilator; model: the tile cycle model")
    p.add_argument("--format", choices=("dense", "bitmap", "block", "nm"), default="dense",
                   help="weight memory format (docs/spec.md section 3)")
    p.add_argument("--prune", choices=("auto", "none", "unstructured", "block", "nm"),
                   default="auto", help="pruning (auto: from --format, or for dense from "
                   "--nm / --block / --density)")
    p.add_argument("--density", type=float, default=None, help="kept weight fraction")
    p.add_argument("--nm", type=_nm, default=None, metavar="N:M",
                   help="N:M structure of --format nm or --prune nm (default: 2:4)")
    p.add_argument("--block", type=int, default=None, metavar="B", help="block size")
    p.add_argument("--group", type=int, default=None, metavar="G", help="bitmap group size")
    p.add_argument("--act-density", type=float, default=1.0,
                   help="fraction of non-zero activations (ReLU-like: 0.5)")
    p.add_argument("--no-act-skip", action="store_true",
                   help="weight-only skipping (no dual-side zero-activation skipping)")
    p.add_argument("--seed", type=int, default=1, help="seed of the random layer")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")


def register(sub) -> None:
    p = sub.add_parser("matmul", help="Y[M,N] = W[M,K] @ X[K,N] on one tile")
    _common(p)
    for f, d, h in (("--m", 64, "output rows M (weight rows)"), ("--k", 256, "reduction K"),
                    ("--n", 16, "output columns N")):
        p.add_argument(f, type=int, default=d, help=h)
    p.set_defaults(func=lambda a: _main(a, "matmul"))
    p = sub.add_parser("conv2d", help="NCHW x OIHW convolution on one tile (im2col lowered)")
    _common(p)
    for f, d, h in (("--c", 4, "input channels"), ("--h", 8, "input height"),
                    ("--w", 8, "input width"), ("--kout", 16, "output channels"),
                    ("--kh", 3, "kernel height"), ("--kw", 3, "kernel width"),
                    ("--stride", 1, "stride (both axes)"), ("--pad", 1, "zero padding (both axes)"),
                    ("--dilation", 1, "dilation (both axes)")):
        p.add_argument(f, type=int, default=d, help=h)
    p.set_defaults(func=lambda a: _main(a, "conv2d"))


def _prune_method(a) -> str:
    if a.prune != "auto":
        return a.prune
    if a.format != "dense":
        return {"bitmap": "unstructured", "block": "block", "nm": "nm"}[a.format]
    if a.nm:
        return "nm"
    if a.block:
        return "block"
    return "unstructured" if a.density is not None and a.density < 1 else "none"


#: the flags of each `sparsemac.host.network` field of the layer
_FLAGS = {"matmul": {"out_features": "--m", "input.shape": "--k, --n"},
          "conv2d": {"out_channels": "--kout", "input.shape": "--c, --h, --w",
                     "kernel": "--kh, --kw", "stride": "--stride", "padding": "--pad",
                     "dilation": "--dilation"},
          "": {"density": "--density", "nm": "--nm", "prune": "--prune", "format": "--format"}}


def layer_spec(a, op: str):
    """The layer of the parsed flags as a `sparsemac.host.network.LayerSpec` (the schema
    checks it; its errors name the flags)."""
    from sparsemac.host.network import NetworkError, network_from_dict

    method = _prune_method(a)
    layer = {"op": op, "format": a.format, "prune": method, "requant": False}
    if method == "nm":
        layer["nm"] = "{}:{}".format(*(a.nm or (2, 4)))
    elif method != "none":
        layer["density"] = 1.0 if a.density is None else a.density
    elif a.prune == "auto" and a.density is not None:    # dense: prunes when density < 1
        layer.update(prune="auto", density=a.density)
    if op == "matmul":
        layer["out_features"], shape = a.m, [a.k, a.n]
    else:
        layer.update(out_channels=a.kout, kernel=[a.kh, a.kw], stride=a.stride, padding=a.pad,
                     dilation=a.dilation)
        shape = [a.c, a.h, a.w]
    try:
        return network_from_dict({"input": {"shape": shape}, "layers": [layer]},
                                 source="flags").layers[0]
    except NetworkError as exc:
        path, rest = str(exc).removeprefix("flags: ").split(" ", 1)
        field = path if path.startswith("input") else path.rsplit(".", 1)[-1]
        flag = _FLAGS[op].get(field) or _FLAGS[""].get(field, path)
        raise UsageError(f"{flag} {rest}") from None


def build_layer(a, op: str, cfg):
    """(W2d, X, meta) of the layer described by the parsed flags (`layer_spec`)."""
    from sparsemac.golden.ops import im2col
    from sparsemac.golden.prune import prune

    spec = layer_spec(a, op)
    m, k, n = spec.mkn
    _bound_sizes(op, m, k, n, spec, cfg)
    rng = np.random.default_rng(a.seed)
    if op == "matmul":
        W = rng.integers(-128, 128, (m, k))
        X = rng.integers(-128, 128, (a.k, a.n))
        X = X * (rng.random(X.shape) < a.act_density)
        meta = {"m": a.m, "k": a.k, "n": a.n}
    else:
        x = rng.integers(-128, 128, (1, *spec.in_shape))
        x = x * (rng.random(x.shape) < a.act_density)
        W = rng.integers(-128, 128, (m, k))
        X, _ = im2col(x, *spec.kernel, spec.stride[0], spec.padding[0], spec.dilation[0])
        meta = {"m": m, "k": k, "n": X.shape[1], "c": a.c, "h": a.h, "w": a.w,
                "kh": a.kh, "kw": a.kw, "stride": a.stride, "pad": a.pad,
                "dilation": a.dilation, "x": x}
    if spec.prune != "none":
        W = prune(W, spec.prune, density=spec.density, block_size=a.block or cfg.block_size,
                  nm=spec.nm or (2, 4))[0]
    meta["prune"] = spec.prune
    return W.astype(np.int64), X.astype(np.int64), meta


#: Largest weight matrix the bench builds (values; checked before anything is allocated).
MAX_WEIGHTS = 1 << 24


def _bound_sizes(op, m, k, n, spec, cfg) -> None:
    """Refuse a layer that cannot fit one tile before its arrays are allocated: the
    activations must fit the activation buffer and the dense weights must fit the weight
    buffer even at the highest sparsity a format reaches (1:32), and at most MAX_WEIGHTS."""
    flags = "--m, --k" if op == "matmul" else "--kout, --c, --kh, --kw"
    w_cap = min(MAX_WEIGHTS, cfg.weight_buf_depth * cfg.axi_bytes * 32)
    if m * k > w_cap:
        raise UsageError(f"{flags}: the weights ({m} x {k} = {m * k:,} values) must be at most "
                         f"{w_cap:,} values (weight_buf_depth={cfg.weight_buf_depth} words at "
                         f"up to 32x sparsity)")
    acts = k * n if op == "matmul" else int(np.prod(spec.in_shape))
    a_cap = cfg.act_buf_depth * cfg.cols
    if acts > a_cap:
        what = ("--k, --n: the activations" if op == "matmul"
                else "--c, --h, --w: the input image")
        raise UsageError(f"{what} ({acts:,} bytes) must fit act_buf_depth={cfg.act_buf_depth} "
                         f"entries of {cfg.cols} bytes ({a_cap:,} bytes)")


def _pack(a, W, cfg):
    from sparsemac.golden.formats import pack_weights

    return pack_weights(W, a.format, group_size=a.group or cfg.group_size,
                        block_size=a.block or cfg.block_size, nm=a.nm or (2, 4))


def _main(a, op: str) -> int:
    from sparsemac.golden.ops import matmul
    from sparsemac.golden.perf import layer_stats

    cfg = config_from_args(a)
    if not 0 <= a.act_density <= 1:
        raise UsageError(f"--act-density must be between 0 and 1, not {a.act_density!r}")
    layer_spec(a, op)                   # the schema first: N <= M, M a power of two ...
    if a.nm and (a.nm[0] & (a.nm[0] - 1)):
        raise UsageError(f"--nm N must be a power of two on the tile (N:M = {a.nm[0]}:"
                         f"{a.nm[1]}); see docs/tile.md")
    W, X, meta = build_layer(a, op, cfg)
    pw = _pack(a, W, cfg)
    K, N = X.shape
    try:
        check_capacity(cfg, pw, K, N)
    except CapacityError as exc:
        raise UsageError(str(exc)) from None
    conv = None
    if op == "conv2d":
        conv = meta
        if meta["x"].size > cfg.act_buf_depth * cfg.cols:
            raise UsageError(f"the input image ({meta['x'].size} bytes) does not fit "
                             f"act_buf_depth={cfg.act_buf_depth} entries of {cfg.cols} bytes")
        if max(a.kh, a.kw, a.stride, a.pad, a.dilation) > 15:
            raise UsageError("--kh, --kw, --stride, --pad and --dilation must be at most 15")
    act_skip = a.format != "dense" and not a.no_act_skip
    res = run_layer(cfg, pw, X, engine=a.engine, act_skip=act_skip, seed=a.seed, conv=conv)
    meta = {k: v for k, v in meta.items() if k != "x"}
    tile_cfg = SimpleNamespace(rows=cfg.rows, cols=cfg.cols, tiles=1,
                               axi_data_width=cfg.axi_data_width, acc_width=cfg.acc_width)
    st = layer_stats(pw, X, a.format, tile_cfg, requant=False, bias=False)
    if a.format == "dense":
        croof = st.dense_compute_cycles
    else:
        croof = st.compute_cycles if act_skip else st.weight_compute_cycles
    mism = 0
    if res["Y"] is not None:
        mism = int(np.count_nonzero(res["Y"] != matmul(W, X, acc_width=cfg.acc_width)))
    cyc = res["cycles"]
    out = {
        "op": op, "engine": a.engine, "format": a.format, **meta,
        "density": float(np.count_nonzero(W) / W.size), "act_density": a.act_density,
        "act_skip": act_skip, "rows": cfg.rows, "cols": cfg.cols, "seed": a.seed,
        "cycles": cyc, "load_cycles": res["load_cycles"], "total_cycles": res["total_cycles"],
        "roofline_cycles": int(max(croof, 1)), "memory_cycles": st.memory_cycles,
        "full_roofline_cycles": st.roofline_cycles,
        "achieved_over_roofline": cyc / max(croof, 1),
        "mac_utilization": st.effectual_macs / (cfg.rows * cfg.cols * max(cyc, 1))
        if a.format != "dense" else st.dense_macs / (cfg.rows * cfg.cols * max(cyc, 1)),
        "model_cycles": res["model_cycles"],
        "model_error": (res["model_cycles"] - cyc) / max(cyc, 1),
        "model_total_cycles": res["model_total_cycles"],
        "weight_bytes": pw.nbytes, "mismatches": mism,
    }
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>24}: {v:.4f}" if isinstance(v, float) else f"{k:>24}: {v}")
    return 1 if mism else 0
