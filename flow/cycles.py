"""Pluggable cycle sources for sweeps: a workload + a config -> cycles.

A source is a function ``source(workload, cfg, seed) -> dict`` returning at least ``cycles``
(and whatever else it knows: ``bound``, ``effectual_macs``, ``dense_macs`` ...).  Registered:

``roofline``
    ``golden.perf`` limits on a synthetic layer: random int8 weights pruned to the workload's
    format and sparsity (``golden.prune``), random activations with ``act_sparsity`` zeros.
    Sparse formats skip ineffectual pairs (``roofline_cycles``); ``dense`` is the no-skip
    baseline (``dense_roofline_cycles``).
``tile_model``
    ``golden.tile_model.tile_cycles`` (the micro-architectural tile predictor) on the same
    synthetic layer, rows split over the tiles as the hardware splits them
    (``golden.tiling.tile_row_split``): load + compute cycles of the slowest tile.

``network``
    The whole accelerator, as `sparsemac run --engine model` runs the workload as a one-layer
    network (`Workload.network`): the host compiler's image and descriptor, the model
    engine, and `sparsemac.host.cycles.layer_cycles` (`golden.net_cycles`: descriptor fetch
    and checks, headers, tables, activations, bodies tile after tile, every tile's compute,
    the write-back; within 5 % of the accelerator RTL per descriptor,
    docs/reports/network_model.md).  A matrix workload too wide for the tile buffers is
    split into jobs by columns as ``sparsemac run`` splits it (cycles of all jobs); one that
    cannot run on the build (a conv2d past the buffers) has ``cycles`` None and a ``note``.

``auto`` uses ``network`` for the ``accelerator`` top (a whole-accelerator sweep: the whole
layer, start to interrupt, as the area is the whole chip's), else ``tile_model`` when it is
importable, else ``roofline``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json

import numpy as np

__all__ = ["CYCLE_SOURCES", "resolve_source", "synthetic_layer", "roofline_source",
           "tile_model_source", "network_source", "tile_rtl_cycles", "WHOLE_TOPS"]


def _rng(workload, seed: int) -> np.random.Generator:
    h = hashlib.sha256(json.dumps([workload.as_dict(), seed], sort_keys=True).encode())
    return np.random.default_rng(int.from_bytes(h.digest()[:8], "little"))


def synthetic_layer(workload, cfg, seed: int = 0):
    """``(W, X, act_bytes)``: a deterministic random layer pruned as the workload says.

    For ``conv2d`` ``X`` is the im2col matrix of an NCHW input (batch 1) and ``act_bytes`` the
    input tensor size.
    """
    from sparsemac.golden.ops import im2col
    from sparsemac.golden.prune import prune

    rng = _rng(workload, seed)
    d = dict(workload.dims)
    if workload.op == "matmul":
        m, k = d["M"], d["K"]
    else:
        m, k = d["O"], d["C"] * d["R"] * d["S"]
    W = rng.integers(-128, 128, size=(m, k), dtype=np.int64)
    W[W == 0] = 1  # zeros only where pruning puts them
    density = 1.0 - workload.sparsity
    if workload.format == "nm":
        W, _ = prune(W, "nm", nm=workload.nm)
    elif workload.format == "block":
        W, _ = prune(W, "block", density=density, block_size=cfg.block_size)
    else:  # dense stores the zeros, bitmap skips them: both unstructured
        W, _ = prune(W, "unstructured", density=density)

    def acts(shape):
        a = rng.integers(-128, 128, size=shape, dtype=np.int64)
        a[a == 0] = 1
        a[rng.random(shape) < workload.act_sparsity] = 0
        return a.astype(np.int8)

    if workload.op == "matmul":
        X = acts((k, d["N"]))
        return W.astype(np.int8), X, X.size
    x = acts((1, d["C"], d["H"], d["W"]))
    cols, _ = im2col(x, d["R"], d["S"], d["stride"], d["padding"], d["dilation"])
    return W.astype(np.int8), np.asarray(cols).reshape(k, -1), x.size


def roofline_source(workload, cfg, seed: int = 0) -> dict:
    from sparsemac.golden.perf import layer_stats

    W, X, act_bytes = synthetic_layer(workload, cfg, seed)
    st = layer_stats(W, X, workload.format, cfg, nm=workload.nm or (2, 4), act_bytes=act_bytes)
    if workload.format == "dense":  # no skipping: the dense limits
        cycles = st.dense_roofline_cycles
        bound = "compute" if st.dense_compute_cycles >= cycles else "memory"
    else:
        cycles, bound = st.roofline_cycles, st.bound
    return {"cycles": int(cycles), "bound": bound, "dense_macs": st.dense_macs,
            "effectual_macs": st.effectual_macs, "weight_bytes": st.weight_bytes,
            "dense_roofline_cycles": st.dense_roofline_cycles, "source": "roofline"}


def _slowest_tile(workload, cfg, seed: int):
    """``(model result, packed part, X, conv)`` of the tile that takes longest (model)."""
    from sparsemac.golden.formats import pack_weights
    from sparsemac.golden.tile_model import tile_cycles
    from sparsemac.golden.tiling import tile_row_split

    W, X, act_bytes = synthetic_layer(workload, cfg, seed)
    conv = workload.op == "conv2d"
    worst = None
    for r0, r1 in tile_row_split(W.shape[0], cfg.tiles):    # as the hardware splits the rows
        part = W[r0:r1]
        pw = pack_weights(part, workload.format, group_size=cfg.group_size,
                          block_size=cfg.block_size, nm=workload.nm or (2, 4))
        r = tile_cycles(pw, X, cfg, act_skip=_act_skip(workload),
                        image_bytes=act_bytes if conv else None)
        if worst is None or r["total_cycles"] > worst[0]["total_cycles"]:
            worst = (r, pw, X, conv)
    return worst


def _act_skip(workload) -> bool:
    return workload.act_sparsity > 0 and workload.format != "dense"


def tile_model_source(workload, cfg, seed: int = 0) -> dict:
    """``golden.tile_model.tile_cycles`` per tile, the rows of W split over the tiles as the
    hardware splits them (`golden.tiling.tile_row_split`; tiles run in parallel, shared-memory
    contention is not modelled): load + compute cycles of the slowest tile."""
    worst = _slowest_tile(workload, cfg, seed)[0]
    base = roofline_source(workload, cfg, seed)
    return {"cycles": int(worst["total_cycles"]), "compute_cycles": int(worst["cycles"]),
            "load_cycles": int(worst["load_cycles"]), "bound": base["bound"],
            "dense_macs": base["dense_macs"], "effectual_macs": base["effectual_macs"],
            "roofline_cycles": base["cycles"], "source": "tile_model"}


def tile_rtl_cycles(workload, cfg, seed: int = 0) -> dict:
    """The slowest tile's layer (as `tile_model_source` splits it) run on the compute tile's
    RTL (Verilator, `sim.bench_layer.run_layer`): ``rtl_cycles`` (load + compute) next to the
    model's, and whether the RTL result equals ``golden.matmul``.  A conv2d runs as its im2col
    matmul.  ``rtl_note`` says why nothing ran (the layer does not fit the tile's buffers)."""
    from sparsemac.golden.ops import matmul
    from sparsemac.sim.bench_layer import CapacityError, check_capacity, run_layer

    model, pw, X, conv = _slowest_tile(workload, cfg, seed)
    if conv:    # the RTL runs the im2col matmul: compare with the model of that same run
        from sparsemac.golden.tile_model import tile_cycles
        model = tile_cycles(pw, X, cfg, act_skip=_act_skip(workload))
    try:
        check_capacity(cfg, pw, X.shape[0], X.shape[1])
    except CapacityError as e:
        return {"rtl_cycles": None, "rtl_note": f"not run: {e}"}
    from sparsemac.golden.format_check import unpack_weights

    res = run_layer(cfg, pw, X, engine="rtl", act_skip=_act_skip(workload), seed=seed + 1)
    exact = bool(np.array_equal(res["Y"], matmul(unpack_weights(pw), X, acc_width=cfg.acc_width)))
    return {"rtl_cycles": int(res["total_cycles"]), "rtl_exact": exact,
            "rtl_model_cycles": int(model["total_cycles"]),
            "rtl_note": "" if exact else "RTL result differs from golden.matmul"}


def network_source(workload, cfg, seed: int = 0) -> dict:
    """The workload as a one-layer network on the whole accelerator (the model engine and
    `sparsemac.host.cycles.layer_cycles`, the cycles `sparsemac run` reports); split into
    column jobs like ``sparsemac run`` when it is too wide for the tile buffers."""
    from sparsemac.host.compiler import compile_network
    from sparsemac.host.cycles import layer_cycles
    from sparsemac.host.model_engine import run_model
    from sparsemac.host.network import NetworkError, network_from_dict
    from sparsemac.host.run import plan_jobs

    net = network_from_dict(workload.network(), source=f"workload {workload.name}")
    sums = ("cycles", "roofline_cycles", "dense_macs", "effectual_macs", "fixed_cycles",
            "load_cycles", "compute_cycles", "writeback_cycles")
    out = dict.fromkeys(sums, 0) | {"source": "network"}
    try:
        _fixed, jobs, _reason = plan_jobs(net, cfg, seed=seed)
        for job in jobs:
            cn = compile_network(job, cfg, seed=seed)
            r = run_model(cn.image, base=cn.base, desc_base=cn.desc_base,
                          desc_count=cn.desc_count, cfg=cfg)
            if not r.ok:
                raise NetworkError(f"the model engine stops with {r.error_code.name}: "
                                   f"{r.message}")
            c = layer_cycles(r.layers[0], cfg)
            for k in sums:
                out[k] += int(c[k])
            out["bound"] = c["bound"]
            out["limited_by"] = c["limited_by"]
    except NetworkError as exc:
        return {"cycles": None, "source": "network", "note": f"does not run on this build: {exc}",
                "dense_macs": None, "effectual_macs": None, "bound": "does not fit"}
    out["jobs"] = len(jobs)
    return out


CYCLE_SOURCES = {"roofline": roofline_source, "tile_model": tile_model_source,
                 "network": network_source}


#: tops whose area is the whole accelerator: ``auto`` counts the whole layer on them
WHOLE_TOPS = ("accelerator",)


def resolve_source(name: str, top: str | None = None) -> str:
    """``auto`` -> ``network`` for a whole-accelerator top (`WHOLE_TOPS`), else ``tile_model``
    if it is usable, else ``roofline``; other names unchanged."""
    if name != "auto":
        return name
    if top in WHOLE_TOPS:
        return "network"
    try:
        if importlib.util.find_spec("sparsemac.golden.tile_model") is not None and hasattr(
                importlib.import_module("sparsemac.golden.tile_model"), "tile_cycles"):
            return "tile_model"
    except Exception:
        pass
    return "roofline"
