"""A network end to end: jobs, an engine, outputs, accuracy, report (docs/host.md section 5).

`run` compiles a network into one or more jobs (a batch of images or columns too large for the
tile buffers is split; every job uses the same parameters, fixed once by `calibrate` on a
calibration set or on the whole input), runs each job on an engine, reads every layer's output
buffer back, compares it with the golden model and assembles the network's outputs batch-first.
``engine`` is a function ``(CompiledNetwork) -> JobResult``: `model_job` (the functional model,
this module) or `sparsemac.sim.rtl_engine.rtl_job` (the accelerator on Verilator).

The report dict is what ``sparsemac run --json`` prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
from sparsemac.golden.descriptors import Flags

from .compiler import (
    DEFAULT_BASE,
    CompiledNetwork,
    calibrate,
    compile_network,
    layer_buffer_shortfall,
    random_input,
)
from .network import Network, NetworkError, load_network

__all__ = ["run", "run_network", "RunResult", "JobResult", "model_job", "plan_jobs",
           "MAX_IMAGES_PER_JOB", "accuracy", "save_outputs"]

#: Images of a batch compiled into one job (one memory window, one descriptor table).
MAX_IMAGES_PER_JOB = 32


@dataclass
class JobResult:
    """What an engine returns for one job.

    Members
    -------
    outputs : list of numpy.ndarray
        The output buffer of every compiled layer, in descriptor order, as the engine left it
        (``(m, n)``: int8, or int32 accumulators without requantization).
    layer_cycles : list of int or None
        Cycles per descriptor (None: the engine has no cycle count for it).
    cycles : int
        Cycles of the whole job.
    status : str
        ``OK`` or the error code's name; ``error_desc`` / ``error`` say where and why.
    written : list of numpy.ndarray or None
        Each layer's output as the engine wrote it, when the engine can tell (the model
        engine; None for a descriptor that did not run); None when it can only read the
        buffers after the table (the RTL engine).  `run` compares it for a layer whose buffer
        a later layer overwrote (``reuse_buffers``).
    """

    outputs: list
    layer_cycles: list
    cycles: int
    roofline: list = field(default_factory=list)
    status: str = "OK"
    error_desc: int | None = None
    error: str | None = None
    model_cycles: list = field(default_factory=list)
    written: list | None = None


@dataclass
class RunResult:
    """`run`'s answer: the report dict and the network's outputs.

    Members
    -------
    report : dict
        What ``sparsemac run --json`` prints.
    outputs : numpy.ndarray
        The last layer's output buffer, batch first: ``(N, M)`` for a matrix network's ``N``
        columns or a flattened classifier, ``(N, Kout, OH, OW)`` for a conv2d; int8, or the
        int32 accumulators plus the layer's bias (``requant: false``).
    values : numpy.ndarray
        ``outputs`` as real numbers (dequantized with the layer's scales).
    """

    report: dict
    outputs: np.ndarray
    values: np.ndarray


def model_job(cn: CompiledNetwork, *, limits: str = "hardware",
              cycles: bool = True) -> JobResult:
    """Run one compiled job on the functional model (`sparsemac.host.model_engine`) with the
    hardware's limits (default) or the architecture's (`run_model`'s ``limits``).
    ``cycles=False`` skips the network cycle model (every count 0): outputs and accuracy
    only, several times faster on a large batch."""
    from .model_engine import read_output, run_model

    cfg = cn.config
    r = run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=cn.desc_count,
                  cfg=cfg, limits=limits)
    cyc = _table_cycles(r.layers, cfg) if cycles else \
        [{"cycles": 0, "roofline_cycles": 0} for _ in r.layers]
    return JobResult(outputs=[read_output(r.image, cl.descriptor) for cl in cn.layers],
                     layer_cycles=[c["cycles"] for c in cyc],
                     roofline=[c["roofline_cycles"] for c in cyc],
                     model_cycles=[c["cycles"] for c in cyc],
                     cycles=sum(c["cycles"] for c in cyc),
                     status=r.error_code.name, error_desc=r.error_desc,
                     error=r.message or None,
                     written=[lr.output for lr in r.layers]
                     + [None] * (len(cn.layers) - len(r.layers)))


#: How the report counts an add's cycles: no hardware runs it yet, so no cycle model.
ADD_CYCLE_SOURCE = ("add: the memory roofline only (read a and b, write y at one AXI beat a "
                    "cycle); no hardware or cycle model of the add yet")


def add_cycles(run, cfg) -> dict:
    """The cycles of an add descriptor (docs/spec.md section 8.2) as the report counts them:
    its memory roofline, ``ceil(3 * C*H*W / beat)`` (two inputs read, one output written,
    ``axi_data_width / 8`` bytes a cycle), the keys `layer_cycles` gives that `model_job` reads.
    The generated hardware does not run the add (BAD_OPCODE), so there is no better count."""
    d, beat = run.descriptor, max(1, int(cfg.axi_data_width) // 8)
    chw = d.c * d.h * d.w
    roof = -(-3 * chw // beat)
    return {"cycles": roof, "roofline_cycles": roof, "phases": None}


def _table_cycles(runs, cfg) -> list[dict]:
    """`host.cycles.table_cycles` with the adds counted by `add_cycles` (the descriptor after
    an add is counted as not prefetched)."""
    from sparsemac.golden.descriptors import Opcode

    from .cycles import table_cycles

    return table_cycles(runs, cfg, lambda r: add_cycles(r, cfg)
                        if r.descriptor.opcode == Opcode.ADD else None)


def _max_columns(net: Network, cfg) -> int:
    """The most input columns of a matrix network whose every layer fits the tile buffers
    (the rule of `sparsemac.host.compiler.layer_buffer_shortfall`); at least 1."""
    n_all = net.input_shape[1]

    def fits(n):
        return all(layer_buffer_shortfall(sp, cfg) is None
                   for sp in net.with_columns(n).layers)
    if fits(n_all):
        return n_all
    lo, hi = 1, n_all          # fits(lo) assumed; the answer is in [lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def plan_jobs(net: Network, cfg, *, seed: int | None = None, calib=None,
              max_images: int = MAX_IMAGES_PER_JOB,
              limits: str = "hardware") -> tuple[Network, list[Network], str]:
    """Split ``net``'s input into jobs: ``(fixed network, jobs, reason)``.

    A batch of images goes ``max_images`` images per job; the columns of a matrix network
    whose layers are all matmul go as many per job as the tile buffers hold
    (`_max_columns`).  When the input is split or a calibration set is given, the parameters
    are fixed first (`calibrate` on ``calib``, else on the whole input) so that every job
    uses the same ones.  ``reason`` says why the input was split ("" when one job)."""
    s = net.seed if seed is None else int(seed)
    values = net.input_values
    if len(net.input_shape) == 2:
        n_all = net.input_shape[1]
        per = _max_columns(net, cfg) if all(sp.op == "matmul" for sp in net.layers) else n_all
        parts = [(a, min(a + per, n_all)) for a in range(0, n_all, per)]
        reason = (f"{n_all} input columns in jobs of {per} (the tile buffers of this "
                  f"configuration hold {per} columns of every layer)") if len(parts) > 1 else ""
    else:
        n_all = net.batch
        parts = [(a, min(a + max_images, n_all)) for a in range(0, n_all, max_images)]
        reason = (f"{n_all} images in jobs of at most {max_images} images") \
            if len(parts) > 1 else ""
    if calib is None and len(parts) == 1 and net.batch == 1:
        return net, [net], ""
    if values is None:
        values = random_input(net, s)
        net = replace(net, input_values=values)
    fixed = calibrate(net, cfg, calib, seed=s, limits=limits)
    jobs = []
    for a, b in parts:
        if len(net.input_shape) == 2:
            jobs.append(replace(fixed.with_columns(b - a), input_values=values[:, a:b]))
        else:
            v = values if values.ndim == 4 else values[None]
            jobs.append(replace(fixed, input_values=v[a:b] if b - a > 1 else v[a],
                                batch=b - a))
    return fixed, jobs, reason


def accuracy(values: np.ndarray, labels) -> float:
    """Fraction of rows of ``values`` (batch first, any trailing shape) whose arg-max is the
    label."""
    labels = np.asarray(labels).reshape(-1)
    pred = np.asarray(values).reshape(len(values), -1).argmax(axis=1)
    if pred.shape != labels.shape:
        raise NetworkError(f"labels must have one label per input ({pred.size}), not "
                           f"{labels.size}")
    return float(np.mean(pred == labels))


def run(net, cfg, *, seed: int | None = None, base: int | None = None, calib=None,
        engine: Callable[[CompiledNetwork], JobResult] = model_job, engine_name: str = "model",
        labels=None, max_images: int = MAX_IMAGES_PER_JOB, check_job=None,
        progress: Callable[[str], None] | None = None, tile_split: str = "auto",
        tables: str = "auto", limits: str = "hardware",
        reuse_buffers: bool = False) -> RunResult:
    """Compile ``net`` (a `Network` or a layer-list file) for ``cfg``, run it on ``engine``
    job by job and return the report and the outputs.

    ``calib``: calibration inputs (images ``[B, C, H, W]`` or columns ``[K, B]``, float or
    int8) that fix every scale (`sparsemac.host.compiler.calibrate`); ``labels``: one class
    per input, adds ``accuracy`` to the report; ``check_job(cn)``: called on every compiled job
    before it runs (the RTL engine's tile-buffer check); ``progress(msg)``: called before every
    job of a split run; ``tile_split``: how each layer is spread over the tiles
    (`compile_network`'s ``split``: ``rows``, ``cols`` or ``auto``, docs/spec.md section 8.1);
    ``tables``: when each layer's table and records are read (`compile_network`'s ``tables``:
    ``early``, ``late`` or ``auto``);
    ``limits``: ``hardware`` (default) or ``architecture``, for the compiler and the model
    engine (`compile_network`, `run_model`: the spec's rules alone, e.g. a pool with kernel
    16); the model engine only; ``reuse_buffers``: compile with `compile_network`'s
    ``reuse_buffers`` (activation buffers share bytes once their last reader ran).  Every
    layer's output is compared with golden: read from its buffer after the table, or, for an
    output a later layer overwrote (reuse), as the engine wrote it (`JobResult.written`; an
    engine that cannot tell, the RTL, leaves such a layer uncompared: its report row says
    ``compared: "no"``).

    Raises
    ------
    NetworkError
        The network file is malformed, does not compile for ``cfg``, or ``calib`` / ``labels``
        do not fit it.
    """
    if not isinstance(net, Network):
        net = load_network(net)
    if limits != "hardware":        # model_job, or a partial of it (e.g. cycles=False)
        if model_job not in (engine, getattr(engine, "func", None)):
            raise NetworkError(f"limits {limits!r} runs on the model engine only, not on the "
                               f"{engine_name} engine")
        engine = partial(model_job, **{**getattr(engine, "keywords", {}), "limits": limits})
    base = DEFAULT_BASE if base is None else base
    fixed, jobs, reason = plan_jobs(net, cfg, seed=seed, calib=calib, max_images=max_images,
                                    limits=limits)
    t0 = time.monotonic()
    agg: dict[int, dict] = {}
    finals = []
    status, err_desc, err, total, roof_total, mism_total = "OK", None, None, 0, 0, 0
    first_cn = None
    model_total = 0
    decisions: dict = {}    # the auto split / tables choices, made on the first job's first image
    for ji, job in enumerate(jobs):
        if progress and len(jobs) > 1 and (engine_name != "model" or time.monotonic() - t0 > 2):
            progress(f"job {ji + 1}/{len(jobs)} ({time.monotonic() - t0:.0f} s)")
        cn = compile_network(job, cfg, seed=seed, base=base, split=tile_split, tables=tables,
                             limits=limits, reuse_buffers=reuse_buffers, decisions=decisions)
        if check_job is not None:
            check_job(cn)
        first_cn = first_cn or cn
        res = engine(cn)
        total += res.cycles
        model_total += sum(c for c in res.model_cycles if c is not None)
        if res.status != "OK" and status == "OK":
            status, err_desc, err = res.status, res.error_desc, res.error
        for i, cl in enumerate(cn.layers):
            out, how = res.outputs[i], "after the table"
            if cl.overwritten_by is not None:   # reuse: a later layer wrote over the buffer
                out = res.written[i] if res.written is not None and i < len(res.written) \
                    else None
                how = "when written" if out is not None else "no"
            got = None if out is None else np.asarray(out).reshape(cl.expected.shape)
            mism = 0 if got is None else int(np.count_nonzero(got != cl.expected))
            ran = i < len(res.layer_cycles) and res.layer_cycles[i] is not None
            e = agg.setdefault(cl.spec.index, _layer_entry(
                cl, [sp.name for sp in cn.networks[cl.chain].layers]))
            if cn.reuse_buffers:
                _compared(e, how, cn.layers[cl.overwritten_by].spec.name
                          if cl.overwritten_by is not None else None)
            if not ran:
                mism = int(cl.expected.size)
            e["mismatches"] += mism
            mism_total += mism
            if ran:
                e["cycles"] = e.get("cycles", 0) + int(res.layer_cycles[i])
                if i < len(res.roofline):
                    e["roofline_cycles"] = e.get("roofline_cycles", 0) + int(res.roofline[i])
                if i < len(res.model_cycles):
                    e["model_cycles"] = e.get("model_cycles", 0) + int(res.model_cycles[i])
        for j in range(len(cn.networks)):
            last = cn.chain(j)[-1]
            raw = np.asarray(res.outputs[cn.layers.index(last)]).reshape(last.expected.shape)
            finals.append((last, raw))
    outputs, values = _assemble(fixed, finals)
    layers = []
    for idx in sorted(agg):
        e = agg[idx]
        if "cycles" in e and "roofline_cycles" in e:
            e["achieved_over_roofline"] = e["cycles"] / max(e["roofline_cycles"], 1)
            roof_total += e["roofline_cycles"]
        layers.append(e)
    from .cycles import CYCLE_SOURCE, POOL_CYCLE_SOURCE

    cycle_model = CYCLE_SOURCE + (f"; pools: {POOL_CYCLE_SOURCE}" if any(
        sp.is_pool for sp in net.layers) else "") + (f"; {ADD_CYCLE_SOURCE}" if any(
            cl.spec.is_add and cl.as_matmul is None for cl in first_cn.layers) else "")

    rep = {
        "network": net.name, "engine": engine_name, "config": cfg.name,
        "seed": net.seed if seed is None else seed,
        "status": status, "error_desc": err_desc, "error": err,
        "cycles": total, "roofline_cycles": roof_total,
        "achieved_over_roofline": total / max(roof_total, 1), "mismatches": mism_total,
        "cycle_model": cycle_model, "limits": limits, "mem_base": first_cn.base,
        "mem_bytes": first_cn.window_bytes,
        "desc_base": first_cn.desc_base, "desc_count": first_cn.desc_count,
        "batch": int(outputs.shape[0]), "jobs": len(jobs), "split": reason or None,
        "input_scale": float(fixed.input_scale) if fixed.input_scale else
        float(first_cn.input_scales[0]),
        "output_scale": _output_scale(finals[0][0]),
        "wall_seconds": round(time.monotonic() - t0, 3),
        "layers": layers,
    }
    if reuse_buffers:
        rep["reuse_buffers"] = True
    if engine_name != "model":
        rep["model_cycles"] = model_total
    if labels is not None:
        rep["accuracy"] = accuracy(values, labels)
    return RunResult(report=rep, outputs=outputs, values=values)


def _compared(e: dict, how: str, by: str | None) -> None:
    """A report row's ``compared`` (how its output was compared: ``after the table``,
    ``when written`` or ``no``; the least of every job's) and ``overwritten_by`` (the layer
    that wrote over its buffer) under ``reuse_buffers``."""
    rank = ("no", "when written", "after the table")
    if rank.index(how) < rank.index(e.get("compared", rank[-1])):
        e["compared"] = how
    e.setdefault("compared", how)
    if by is not None:
        e["overwritten_by"] = by


def _output_scale(cl) -> float | list:
    if cl.spec.requant:
        return float(cl.out_scale)
    return [float(v) for v in cl.in_scale * cl.weight_scale]


def _layer_entry(cl, names=()) -> dict:
    """The report row of compiled layer ``cl``; ``names``: the network's layer names (an
    add's row names its inputs)."""
    s, d = cl.spec, cl.descriptor
    if s.is_pool:
        return _pool_entry(cl)
    if s.is_add:
        return _add_entry(cl, names)
    ws = np.asarray(cl.weight_scale, dtype=np.float64)
    return {
        "index": s.index, "name": s.name, "op": s.op, "format": s.fmt,
        **({"nm": f"{d.param_a}:{d.param_b}"} if s.fmt == "nm" else {}),  # N:M as run
        "in_shape": list(s.in_shape), "out_shape": list(s.out_shape),
        "m": d.m, "k": d.k, "n": d.n,
        "tile_split": "cols" if d.col_split else "rows", "col_split": d.col_split,
        "tables": _tables_of(d),
        "density": float(np.count_nonzero(cl.weights) / cl.weights.size),
        "activation": s.activation or "none", "weight_bytes": cl.packed.nbytes,
        "out_offset": d.out, "mismatches": 0,
        "in_scale": float(cl.in_scale),
        "weight_scale": [float(v) for v in ws] if np.ptp(ws) > 0 else float(ws[0]),
        "requant_scale": None if cl.requant_scale is None else float(cl.requant_scale),
        "out_scale": float(cl.out_scale) if s.requant else None,
    }


def _pool_entry(cl) -> dict:
    """The report row of a pool: no weights (``format`` and ``density`` None), the geometry,
    the input's scale kept."""
    s, d = cl.spec, cl.descriptor
    from .cycles import POOL_CYCLE_SOURCE

    geo = {} if s.op == "global_avgpool" else {
        "kernel": list(s.kernel), "stride": list(s.stride), "padding": list(s.padding)}
    if s.op == "avgpool2d":
        geo["count_include_pad"] = s.count_include_pad
    return {
        "index": s.index, "name": s.name, "op": s.op, "format": None,
        "in_shape": list(s.in_shape), "out_shape": list(s.out_shape),
        "m": d.m, "k": d.k, "n": d.n, **geo,
        "tile_split": "rows", "col_split": 0, "density": None, "activation": "none",
        "weight_bytes": 0, "out_offset": d.out, "mismatches": 0,
        "in_scale": float(cl.in_scale), "weight_scale": None, "requant_scale": None,
        "out_scale": float(cl.out_scale), "cycle_model": POOL_CYCLE_SOURCE,
    }


def _tables_of(d) -> str:
    """When the descriptor's table and records are read: ``early`` (before the activations),
    ``late`` (LATE_TABLES: after the bodies) or ``-`` (no requantization: no tables)."""
    if not d.flags & Flags.REQUANT:
        return "-"
    return "late" if d.flags & Flags.LATE_TABLES else "early"


def _add_entry(cl, names) -> dict:
    """The report row of an add: no weights, its two inputs (``inputs``: layer names,
    ``network_input``) and their scales, the output scale and table."""
    from .network import NETWORK_INPUT

    s, d = cl.spec, cl.descriptor
    if cl.as_matmul is not None:    # the matmul over both inputs side by side (docs/host.md)
        mm = cl.as_matmul
        return {
            "index": s.index, "name": s.name, "op": s.op, "as": "matmul", "format": mm.fmt,
            **({"nm": f"{d.param_a}:{d.param_b}"} if mm.fmt == "nm" else {}),
            "inputs": [NETWORK_INPUT if j < 0 else names[j] for j in s.sources],
            "in_shape": list(s.in_shape), "out_shape": list(s.out_shape),
            "m": d.m, "k": d.k, "n": d.n,
            "tile_split": "cols" if d.col_split else "rows", "col_split": d.col_split,
            "tables": _tables_of(d),
            "density": float(np.count_nonzero(cl.weights) / cl.weights.size),
            "activation": s.activation or "none", "weight_bytes": cl.packed.nbytes,
            "out_offset": d.out, "mismatches": 0, "in_scale": float(cl.in_scale),
            "in_scale_b": float(cl.in_scale_b), "weight_scale": None,
            "requant_scale": float(cl.requant_scale), "out_scale": float(cl.out_scale),
            "add_weights": list(cl.add_weights), "mult": int(cl.mult[0]),
            "shift": int(cl.shift[0]),
        }
    return {
        "index": s.index, "name": s.name, "op": s.op, "format": None,
        "inputs": [NETWORK_INPUT if j < 0 else names[j] for j in s.sources],
        "in_shape": list(s.in_shape), "out_shape": list(s.out_shape),
        "m": d.m, "k": d.k, "n": d.n,
        "tile_split": "-", "col_split": 0, "density": None,
        "activation": s.activation or "none", "weight_bytes": 0, "out_offset": d.out,
        "mismatches": 0, "in_scale": float(cl.in_scale),
        "in_scale_b": float(cl.in_scale_b), "weight_scale": None,
        "requant_scale": float(cl.requant_scale), "out_scale": float(cl.out_scale),
        "mult": [int(v) for v in cl.mult], "shift": [int(v) for v in cl.shift],
        "cycle_model": ADD_CYCLE_SOURCE,
    }


def _assemble(net: Network, finals: list) -> tuple[np.ndarray, np.ndarray]:
    """The last layer's outputs of every chain of every job, batch first (see `RunResult`),
    with the host-side bias of an int32 output added."""
    raws, vals = [], []
    for cl, raw in finals:
        r = raw.reshape(cl.spec.out, -1).astype(np.int64)
        if not cl.spec.requant and cl.bias is not None:
            r = r + cl.bias[:, None]
        raws.append(r)
        vals.append(cl.values(raw))
    if len(net.input_shape) == 2:        # columns are the batch
        return np.concatenate(raws, axis=1).T, np.concatenate(vals, axis=1).T
    last = finals[0][0].spec
    shape = tuple(last.out_shape) if last.op != "matmul" else (last.out, *(
        () if last.out_shape[1] == 1 else (last.out_shape[1],)))
    return (np.stack([r.reshape(shape) for r in raws]),
            np.stack([v.reshape(shape) for v in vals]))


def run_network(path, cfg, *, seed=None, base=None) -> dict:
    """Compile ``path`` for ``cfg``, run it on the model engine and return the report dict
    (`run` without outputs)."""
    return run(path, cfg, seed=seed, base=base).report


def save_outputs(result: RunResult, path) -> None:
    """Write ``outputs`` (as the accelerator wrote them, batch first; int32 outputs with the
    host-side bias), ``values`` (real numbers) and ``output_scale`` to an ``.npz`` file."""
    p = Path(path)
    np.savez(p, outputs=result.outputs, values=result.values,
             output_scale=np.asarray(result.report["output_scale"], dtype=np.float64))

