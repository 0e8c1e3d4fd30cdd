"""A network end to end on the model engine: compile, run, compare, report (docs/host.md).

The report dict is what ``sparsemac run --json`` prints; the RTL engine
(:mod:`sparsemac.sim.rtl_engine`) fills the same fields with cycles measured on the RTL.
"""

from __future__ import annotations

__all__ = ["run_network"]


def run_network(path, cfg, *, seed=None, base=None) -> dict:
    """Compile ``path`` for ``cfg``, run it on the model engine and return the report dict.

    Raises
    ------
    NetworkError
        The network file is malformed or does not compile for ``cfg``.
    """
    import numpy as np

    from . import (
        CYCLE_SOURCE,
        compile_network,
        layer_cycles,
        load_network,
        run_model,
    )
    from .compiler import DEFAULT_BASE
    from .model_engine import read_output

    net = load_network(path)
    cn = compile_network(net, cfg, seed=seed, base=DEFAULT_BASE if base is None else base)
    run = run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=cn.desc_count,
                    cfg=cfg)
    layers, total, roof_total, mism_total = [], 0, 0, 0
    for cl in cn.layers:
        s, d = cl.spec, cl.descriptor
        got = read_output(run.image, d)
        mism = int(np.count_nonzero(got != cl.expected))
        ran = cl.spec.index < len(run.layers)
        if not ran:
            mism = int(cl.expected.size)
        entry = {
            "index": s.index, "name": s.name, "op": s.op, "format": s.fmt,
            "in_shape": list(s.in_shape), "out_shape": list(s.out_shape),
            "m": d.m, "k": d.k, "n": d.n,
            "density": float(np.count_nonzero(cl.weights) / cl.weights.size),
            "activation": s.activation or "none", "weight_bytes": cl.packed.nbytes,
            "out_offset": d.out, "mismatches": mism,
        }
        if ran:
            c = layer_cycles(run.layers[s.index], cfg)
            entry.update(c)
            total += c["cycles"]
            roof_total += c["roofline_cycles"]
        layers.append(entry)
        mism_total += mism
    return {
        "network": net.name, "engine": "model", "config": cfg.name,
        "seed": net.seed if seed is None else seed,
        "status": run.error_code.name, "error_desc": run.error_desc, "error": run.message,
        "cycles": total, "roofline_cycles": roof_total,
        "achieved_over_roofline": total / max(roof_total, 1), "mismatches": mism_total,
        "cycle_model": CYCLE_SOURCE, "mem_base": cn.base, "mem_bytes": cn.window_bytes,
        "desc_base": cn.desc_base, "desc_count": cn.desc_count, "layers": layers,
    }
