"""Cycle estimate of one descriptor on the whole accelerator (docs/host.md, "Cycles").

Source: `sparsemac.golden.net_cycles.descriptor_cycles`, the accelerator top's rules phase by
phase: the descriptor fetch and its checks, the image headers, the activation table and requant
records (with ``REQUANT``), the activations (read once, multicast), the image bodies tile after
tile on the one read port, every tile's im2col and compute (`golden.tile_model`, exact lane
recurrence) from the moment its body arrived, and the write-back: the results cross the ring
and the ResultWriter writes them one single-beat AXI write at a time; the ring, the tiles'
result paths and the ResultWriter are replayed cycle by cycle.  Measured against the RTL's
cycles per descriptor: docs/reports/network_model.md (within 3 % per descriptor).  The roofline is
`golden.perf.layer_stats`: ``roofline_cycles`` for the sparse formats (zero skipping on both
sides) and ``dense_roofline_cycles`` for ``dense`` (the baseline skips nothing).

Pools (docs/spec.md section 8.2) are not replayed: `pool_cycles` is a closed-form **estimate**
(the image read once and multicast, the window steps of every tile's channels, the output
written a beat per write command), until the hardware that runs them is measured.
"""

from __future__ import annotations

from types import SimpleNamespace

from sparsemac.golden.descriptors import Flags, Opcode
from sparsemac.golden.formats import pack_weights
from sparsemac.golden.net_cycles import descriptor_cycles, table_key, tables_held_after
from sparsemac.golden.net_pool import pool_descriptor_cycles
from sparsemac.golden.perf import layer_stats
from sparsemac.golden.tile_model import tile_cycles
from sparsemac.golden.tiling import tile_col_split

__all__ = ["layer_cycles", "table_cycles", "prefer_col_split", "prefer_late_tables",
           "pool_cycles", "CYCLE_SOURCE", "POOL_CYCLE_SOURCE"]

CYCLE_SOURCE = ("sparsemac.golden.net_cycles: descriptor phases (fetch and checks, headers, "
                "tables, activations, bodies tile after tile or one multicast for a column split), "
                "golden.tile_model per tile, "
                "ring and result write-back replayed cycle by cycle")
POOL_CYCLE_SOURCE = ("sparsemac.golden.net_pool: the DescChecker's ops, the image multicast, "
                     "every tile's gather (ceil(OH*OW/cols) * ceil(C/tiles) * KH*KW entries) "
                     "and PoolReducer, ring and write-back replayed cycle by cycle")
_POOLS = (Opcode.MAXPOOL2D, Opcode.AVGPOOL2D, Opcode.GLOBAL_AVGPOOL)


def table_cycles(runs, cfg, other=None) -> list[dict]:
    """`layer_cycles` of every `LayerRun` of one descriptor table, in order: each descriptor
    after the first was prefetched while the one before it waited (``prev_wait``); a table
    every tile holds from a layer before is not sent again (``table_held``).  ``other(run)``:
    counts a descriptor the cycle model does not (returns its dict, or None for the model;
    a dict whose ``phases`` is None: the next descriptor is counted as not prefetched)."""
    out, prev, held = [], None, None
    for r in runs:
        c = other(r) if other is not None else None
        if c is None:
            # the table every tile holds from a layer before (`tables_held_after`): not sent
            key = table_key(r.descriptor)
            wait = None if prev is None or prev.get("phases") is None else \
                prev["phases"]["wait"]
            c = layer_cycles(r, cfg, prev_wait=wait,
                             table_held=key is not None and key == held)
            held = tables_held_after(held, r.descriptor, c.get("tiles_started", 0),
                                     int(cfg.tiles))
        out.append(c)
        prev = c
    return out


def layer_cycles(run, cfg, *, prev_wait: int | None = None, table_held: bool = False) -> dict:
    """Cycles and roofline of a `sparsemac.host.model_engine.LayerRun` on the build ``cfg``.

    ``prev_wait``: the previous descriptor's ``wait`` phase (`table_cycles` passes it): the
    sequencer prefetches a descriptor while the layer before it waits.  ``table_held``: the
    tiles hold this layer's activation table already (`table_cycles` decides it with
    `golden.net_cycles.table_key`): none is sent.

    Returns
    -------
    dict
        ``cycles`` (the estimate: the descriptor's cycles on the sequencer, the table check
        included for descriptor 0), its phases ``fixed_cycles`` (descriptor fetch and
        checks, image headers, activation table and requant records, the end of the layer),
        ``load_cycles`` (activations and image bodies, up to the last body),
        ``compute_cycles`` (the last tile's im2col and compute left after the last body) and
        ``writeback_cycles`` (the rest: results the write-back has not written yet); they add
        up to ``cycles``.  ``phases`` (the finer split of
        `sparsemac.golden.net_cycles.PHASES`), ``writes`` (AXI write commands),
        ``limited_by`` (the largest of the four phases), ``tile_cycles`` (the slowest tile
        alone, load + compute, `golden.tile_model`), ``memory_cycles``, ``roofline_cycles``,
        ``bound`` (of the roofline), ``achieved_over_roofline`` (``cycles / roofline``),
        ``efficiency`` (``roofline / cycles``), ``effectual_macs``, ``dense_macs``,
        ``bytes_read``, ``bytes_written``, ``ideal_speedup``.
    """
    d = run.descriptor
    if d.opcode in _POOLS:
        return pool_cycles(run, cfg, prev_wait=prev_wait)
    fmt = run.slices[0].fmt
    act_bytes = int(run.x.size)
    est = descriptor_cycles(d, run.slices, run.cols, cfg, act_bytes=act_bytes,
                            first=run.index == 0, prev_wait=prev_wait,
                            table_held=table_held)
    tile_cfg = SimpleNamespace(rows=cfg.rows, cols=cfg.cols, tiles=1,
                               axi_data_width=cfg.axi_data_width,
                               mul_pipeline=getattr(cfg, "mul_pipeline", 2))
    if d.col_split:     # every tile: the one image, its share of the column groups
        c = int(cfg.cols)
        shares = [(run.slices[0], run.cols[:, g0 * c:(g0 + g) * c], g0)
                  for g0, g in tile_col_split(d.n, c, d.col_split, cfg.tiles)]
    else:
        shares = [(sub, run.cols, 0) for sub in run.slices]
    slowest = max(tile_cycles(sub, x, tile_cfg, act_skip=True, image_bytes=act_bytes,
                              cg0=g0)["total_cycles"] for sub, x, g0 in shares)
    pw = pack_weights(run.weights, fmt, group_size=cfg.group_size, block_size=cfg.block_size,
                      nm=(d.param_a, d.param_b) if fmt == "nm" else (2, 4))
    requant = bool(d.flags & Flags.REQUANT)
    st = layer_stats(pw, run.cols, pw.fmt, cfg, bias=requant, requant=requant,
                     lut=bool(d.flags & Flags.LUT), act_bytes=act_bytes)
    roof = max(st.dense_roofline_cycles if pw.fmt == "dense" else st.roofline_cycles, 1)
    comp = st.dense_compute_cycles if pw.fmt == "dense" else st.compute_cycles
    cycles = est["cycles"]
    parts = {k: est[k] for k in ("fixed_cycles", "load_cycles", "compute_cycles",
                                 "writeback_cycles")}
    return {
        "cycles": int(cycles), **parts,
        "phases": {k: est[k] for k in ("fetch_check", "headers", "tables", "acts", "bodies",
                                       "wait", "done")},
        "writes": est["writes"], "limited_by": max(parts, key=parts.get)[:-len("_cycles")],
        "tile_cycles": int(slowest), "memory_cycles": st.memory_cycles,
        "roofline_cycles": int(roof),
        "bound": "compute" if comp >= st.memory_cycles else "memory",
        "achieved_over_roofline": cycles / roof, "efficiency": roof / cycles,
        "effectual_macs": st.effectual_macs, "dense_macs": st.dense_macs,
        "bytes_read": st.bytes_read, "bytes_written": st.bytes_written,
        "ideal_speedup": st.ideal_speedup, "tiles_started": len(shares),
    }


def pool_cycles(run, cfg, *, prev_wait: int | None = None) -> dict:
    """Cycles of a pool descriptor (max, average or global average pool, docs/spec.md section
    8.2), with the keys of `layer_cycles`: `sparsemac.golden.net_pool.pool_descriptor_cycles`
    (the DescChecker's op list, the channel shares, the image multicast, every tile's gather
    and PoolReducer, the ring and the write-back replayed; within -8.0 .. -1.8 % of the RTL
    on docs/reports/pools.md's cases).  The roofline is the memory bound (no MACs):
    ``max(ceil(C*H*W / beat), ceil(C*OH*OW / beat))``."""
    d = run.descriptor
    beat = int(cfg.axi_data_width) // 8
    est = pool_descriptor_cycles(d, cfg, first=run.index == 0, prev_wait=prev_wait)
    read, written = d.c * d.h * d.w, d.m * d.n
    parts = {k: est[k] for k in ("fixed_cycles", "load_cycles", "compute_cycles",
                                 "writeback_cycles")}
    memory = max(-(-read // beat), -(-written // beat))
    roof = max(memory, 1)
    cycles = est["cycles"]
    return {
        "cycles": int(cycles), **parts,
        "phases": {k: est[k] for k in ("fetch_check", "headers", "tables", "acts", "bodies",
                                       "wait", "done")},
        "writes": est["writes"], "limited_by": max(parts, key=parts.get)[:-len("_cycles")],
        "tile_cycles": int(est["load_cycles"] + est["compute_cycles"]),
        "memory_cycles": memory, "roofline_cycles": roof, "bound": "memory",
        "achieved_over_roofline": cycles / roof, "efficiency": roof / cycles,
        "effectual_macs": 0, "dense_macs": 0, "bytes_read": read, "bytes_written": written,
        "ideal_speedup": 1.0, "estimate": POOL_CYCLE_SOURCE,
    }


def prefer_col_split(cl, cfg, row_slices, col_split: int) -> bool:
    """Whether compiled layer ``cl`` runs in fewer cycles with its columns split across the
    tiles (``col_split`` columns per tile, one image: ``cl.packed``) than with its rows split
    (the per-tile images ``row_slices``): `descriptor_cycles` of both, as a descriptor of its
    own (the compiler's ``split="auto"``, before the layer's descriptor is built: its shapes
    and flags; the fetch and checks cost the same for both)."""
    from sparsemac.golden.descriptors import Descriptor

    sp = cl.as_matmul or cl.spec        # an add: the matmul over its two inputs
    m, k, n = sp.mkn
    flags = (Flags.REQUANT if sp.requant else 0) | (Flags.LUT if cl.lut is not None else 0)
    d = Descriptor(m=m, k=k, n=n, flags=int(flags))
    cols = _im2col_of(cl)
    act = int(cl.x.size)
    by_rows = descriptor_cycles(d.replace(col_split=0), row_slices, cols, cfg, act_bytes=act)
    by_cols = descriptor_cycles(d.replace(col_split=col_split), [cl.packed], cols, cfg,
                                act_bytes=act)
    return by_cols["cycles"] < by_rows["cycles"]


def prefer_late_tables(cl, d, cfg, *, table_held: bool = False) -> bool:
    """Whether compiled layer ``cl`` with descriptor ``d`` (REQUANT, its split decided) runs in
    fewer cycles with ``LATE_TABLES``: the table and records read after the weight image bodies,
    while the tiles compute (their output pipelines wait for the records), than before the
    activations: `descriptor_cycles` of both, as a descriptor of its own (the compiler's
    ``tables="auto"``).  Late wins where a tile computes long after its body arrived (a conv's
    gather, a write-back bound layer); early where the tiles compute while the bodies stream
    (a compute-bound matmul: with late tables its lanes stop at their first results).
    ``table_held``: the tiles hold the layer's activation table already (only the records
    are read)."""
    cols = _im2col_of(cl)
    act = int(cl.x.size)
    early = descriptor_cycles(d.replace(flags=d.flags & ~Flags.LATE_TABLES), cl.slices, cols,
                              cfg, act_bytes=act, table_held=table_held)
    late = descriptor_cycles(d.replace(flags=d.flags | Flags.LATE_TABLES), cl.slices, cols,
                             cfg, act_bytes=act, table_held=table_held)
    return late["cycles"] < early["cycles"]


def _im2col_of(cl):
    """The layer's ``X`` as the tiles see it: a matmul's input, a conv2d's im2col matrix."""
    from sparsemac.golden.ops import im2col

    sp = cl.as_matmul or cl.spec
    if sp.op == "matmul":
        return cl.x
    cols, _ = im2col(cl.x, sp.kernel[0], sp.kernel[1], stride=sp.stride, padding=sp.padding,
                     dilation=sp.dilation)
    return cols
