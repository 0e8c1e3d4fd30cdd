"""Cycle estimate of one descriptor on the whole accelerator (docs/host.md, "Cycles").

Source: `golden.tile_model.tile_cycles` (the compute tile's micro-architectural predictor),
composed for ``tiles`` tiles under a stated assumption, since the accelerator top does not exist
yet: the output rows ``M`` are split in ``tiles`` contiguous slices (one weight image per tile,
docs/spec.md section 8.1), each tile loads its image and the whole input and computes in
parallel; the layer takes the slowest tile's ``total_cycles`` (load + compute), but never less
than the shared AXI port's ``memory_cycles`` (`golden.perf`, spec section 6).  Descriptor fetch
and hand-over between layers are not modelled.  The roofline is `golden.perf.layer_stats`:
``roofline_cycles`` for the sparse formats (zero skipping on both sides) and
``dense_roofline_cycles`` for ``dense`` (the baseline skips nothing).
"""

from __future__ import annotations

from types import SimpleNamespace

from sparsemac.golden.descriptors import Flags, Opcode
from sparsemac.golden.formats import pack_weights
from sparsemac.golden.perf import layer_stats
from sparsemac.golden.tile_model import tile_cycles

__all__ = ["layer_cycles", "CYCLE_SOURCE"]

CYCLE_SOURCE = ("sparsemac.golden.tile_model per tile (output rows split across tiles, tiles in "
                "parallel), at least golden.perf memory_cycles")


def layer_cycles(run, cfg) -> dict:
    """Cycles and roofline of a `sparsemac.host.model_engine.LayerRun` on the build ``cfg``.

    Returns
    -------
    dict
        ``cycles`` (the estimate), ``tile_cycles`` (slowest tile, load + compute),
        ``compute_cycles`` and ``load_cycles`` (of that tile), ``memory_cycles``,
        ``roofline_cycles``, ``bound``, ``achieved_over_roofline`` (``cycles / roofline``),
        ``efficiency`` (``roofline / cycles``), ``effectual_macs``, ``dense_macs``,
        ``bytes_read``, ``bytes_written``, ``ideal_speedup``.
    """
    d = run.descriptor
    fmt = run.slices[0].fmt
    tile_cfg = SimpleNamespace(rows=cfg.rows, cols=cfg.cols, tiles=1,
                               axi_data_width=cfg.axi_data_width,
                               mul_pipeline=getattr(cfg, "mul_pipeline", 2))
    img = int(run.x.size) if d.opcode == Opcode.CONV2D else None
    best = None
    for sub in run.slices:
        r = tile_cycles(sub, run.cols, tile_cfg, act_skip=fmt != "dense", image_bytes=img)
        if best is None or r["total_cycles"] > best["total_cycles"]:
            best = r
    pw = pack_weights(run.weights, fmt, group_size=cfg.group_size, block_size=cfg.block_size,
                      nm=(d.param_a, d.param_b) if fmt == "nm" else (2, 4))
    requant = bool(d.flags & Flags.REQUANT)
    st = layer_stats(pw, run.cols, pw.fmt, cfg, bias=requant, requant=requant,
                     lut=bool(d.flags & Flags.LUT), act_bytes=int(run.x.size))
    roof = st.dense_roofline_cycles if pw.fmt == "dense" else st.roofline_cycles
    comp = st.dense_compute_cycles if pw.fmt == "dense" else st.compute_cycles
    cycles = max(best["total_cycles"], st.memory_cycles)
    return {
        "cycles": int(cycles), "tile_cycles": int(best["total_cycles"]),
        "compute_cycles": int(best["cycles"]), "load_cycles": int(best["load_cycles"]),
        "memory_cycles": st.memory_cycles, "roofline_cycles": int(max(roof, 1)),
        "bound": "compute" if comp >= st.memory_cycles else "memory",
        "achieved_over_roofline": cycles / max(roof, 1),
        "efficiency": max(roof, 1) / cycles, "effectual_macs": st.effectual_macs,
        "dense_macs": st.dense_macs, "bytes_read": st.bytes_read,
        "bytes_written": st.bytes_written, "ideal_speedup": st.ideal_speedup,
    }
