"""Every CNN operation on the accelerator RTL, one small network per case: cycles against the
roofline and the cycle model, plus the ECP5 area each op costs (docs/reports/ops.md, issue 16).

    python bench/ops_report.py [--preset default] [--seed 1] [--only TEXT] [--engine rtl]
                               [--out docs/reports/ops.md]

Every case is a one-layer network (the residual add: a 1x1 conv, then the add of its output and
the network input) built with `sparsemac.host.network_from_dict`, compiled with the hardware's
limits and run by `sparsemac.host.run.run` on the accelerator top on Verilator
(`sparsemac.sim.rtl_engine.rtl_job`, as ``sparsemac run --engine rtl``: cocotbext-axi memory,
no wait states); every output buffer is compared byte for byte with golden (the run report's
``mismatches`` must be 0).  Reported per case, from the run report's row of the layer: the
descriptor's RTL cycles (its index appearing to the next, or to the interrupt), the cycle
model's (`sparsemac.host.cycles` through the model engine), the roofline
(`golden.perf.layer_stats`: MACs over the PEs with zero skipping for a sparse format, or the
memory bound; a pool's is ``max(read beats, write beats)``), RTL / roofline and the model's
error.  A case the build's tile buffers do not take (the model engine's BAD_SHAPE with the
hardware's limits) is listed with the reason instead of run.  ``--engine model`` runs the
model engine alone (seconds; the RTL columns are then the model's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _conv(**kw) -> dict:
    d = dict(name="op", op="conv2d", kernel=3, padding=1, format="dense")
    d.update(kw)
    return d


def _add(c: int) -> list[dict]:
    """A 1x1 conv of the input, then the add of its output and the network input (the add's
    two tensors; the conv's own row is not reported)."""
    return [_conv(name="pre", out_channels=c, kernel=1, padding=0),
            dict(name="op", op="add", inputs=["pre", "network_input"])]


_TAPS = "block-diagonal conv2d W[C, C*KH*KW], bitmap (the taps only; the gather builds all rows)"

#: (op, case, where it runs and how, input shape, layers (the reported one is named ``op``),
#: tile split).  Shapes sized for the default build (act_buf_depth 1024 x cols 4: a 4 KiB
#: image, 1024 im2col entries per tile; a 3x3 conv with 8 or more input channels fits only
#: with its columns split across the tiles).
CASES = [
    ("conv2d 3x3", "4x16x16 -> 16, pad 1", "tile MAC array, conv2d (implicit im2col), dense",
     [4, 16, 16], [_conv(out_channels=16)], "cols"),
    ("conv2d 3x3", "8x8x8 -> 32, pad 1", "tile MAC array, conv2d, dense",
     [8, 8, 8], [_conv(out_channels=32)], "cols"),
    ("conv2d 3x3", "16x8x8 -> 16, pad 1", "tile MAC array, conv2d, dense",
     [16, 8, 8], [_conv(out_channels=16)], "cols"),
    ("conv2d 3x3", "16x8x8 -> 16, pad 1, 50 %", "tile MAC array, conv2d, bitmap (zero skip)",
     [16, 8, 8], [_conv(out_channels=16, format="bitmap", density=0.5)], "cols"),
    ("conv2d 3x3", "16x8x8 -> 16, pad 1, 2:4", "tile MAC array, conv2d, N:M 2:4",
     [16, 8, 8], [_conv(out_channels=16, format="nm", nm="2:4")], "cols"),
    ("conv2d 7x7/2 (stem)", "3x16x16 -> 16, pad 3", "tile MAC array, conv2d, dense",
     [3, 16, 16], [_conv(out_channels=16, kernel=7, stride=2, padding=3)], "cols"),
    ("pointwise 1x1", "16x8x8 -> 16", "tile MAC array, conv2d 1x1, dense",
     [16, 8, 8], [_conv(out_channels=16, kernel=1, padding=0)], "auto"),
    ("pointwise 1x1", "64x8x8 -> 64", "tile MAC array, conv2d 1x1, dense",
     [64, 8, 8], [_conv(out_channels=64, kernel=1, padding=0)], "auto"),
    ("pointwise 1x1", "32x8x8 -> 128", "tile MAC array, conv2d 1x1, dense",
     [32, 8, 8], [_conv(out_channels=128, kernel=1, padding=0)], "auto"),
    ("depthwise 3x3", "8x8x8, pad 1", _TAPS,
     [8, 8, 8], [_conv(out_channels=8, groups=8, format="bitmap")], "cols"),
    ("depthwise 3x3", "16x8x8, pad 1", _TAPS,
     [16, 8, 8], [_conv(out_channels=16, groups=16, format="bitmap")], "cols"),
    ("depthwise 3x3", "32x4x4, pad 1", _TAPS,
     [32, 4, 4], [_conv(out_channels=32, groups=32, format="bitmap")], "cols"),
    ("depthwise 3x3/2", "16x8x8, pad 1", _TAPS,
     [16, 8, 8], [_conv(out_channels=16, groups=16, format="bitmap", stride=2)], "cols"),
    ("matmul (fc)", "256 -> 64, N = 1", "tile MAC array, matmul, dense",
     [256, 1], [dict(name="op", op="matmul", out_features=64)], "auto"),
    ("matmul (fc)", "1024 -> 10, N = 1", "tile MAC array, matmul, dense",
     [1024, 1], [dict(name="op", op="matmul", out_features=10)], "auto"),
    ("matmul (fc)", "256 -> 64, N = 16", "tile MAC array, matmul, dense",
     [256, 16], [dict(name="op", op="matmul", out_features=64)], "auto"),
    ("maxpool2d", "2x2/2, 16x16x16", "tile PoolReducer, opcode 2",
     [16, 16, 16], [dict(name="op", op="maxpool2d", kernel=2)], "auto"),
    ("maxpool2d", "3x3/2 pad 1, 16x16x16", "tile PoolReducer, opcode 2",
     [16, 16, 16], [dict(name="op", op="maxpool2d", kernel=3, stride=2, padding=1)], "auto"),
    ("avgpool2d", "2x2/2, 16x16x16", "tile PoolReducer, opcode 3",
     [16, 16, 16], [dict(name="op", op="avgpool2d", kernel=2)], "auto"),
    ("avgpool2d", "3x3/1 pad 1 (incl.), 4x16x16", "tile PoolReducer, opcode 3, INCLUDE_PAD",
     [4, 16, 16], [dict(name="op", op="avgpool2d", kernel=3, stride=1, padding=1,
                        count_include_pad=True)], "auto"),
    ("global_avgpool", "64x8x8", "tile PoolReducer, opcode 3 (blocks of 4 channels)",
     [64, 8, 8], [dict(name="op", op="global_avgpool")], "auto"),
    ("global_avgpool", "16x15x15 (the largest H, W)",
     "tile PoolReducer, opcode 3 (blocks of 4 channels)",
     [16, 15, 15], [dict(name="op", op="global_avgpool")], "auto"),
    ("residual add", "16x8x8 + 16x8x8", "matmul over both inputs side by side "
     "(host/add_matmul.py)", [16, 8, 8], _add(16), "auto"),
    ("residual add", "4x16x16 + 4x16x16", "matmul over both inputs side by side "
     "(host/add_matmul.py)", [4, 16, 16], _add(4), "auto"),
    ("residual add", "64x8x8 + 64x8x8", "matmul over both inputs side by side "
     "(host/add_matmul.py)", [64, 8, 8], _add(64), "auto"),
]

#: ECP5 area per op (yosys `synth_ecp5`, not placed), from the measurements cited in `source`;
#: the bench runs no synthesis (a default tile takes ~5 min of yosys, twice for on / off).
AREA = [
    ("conv2d, pointwise, matmul", "the tile (MAC array, implicit im2col, lane decoders, "
     "output pipeline)", "the base: 23,840 LUT, 7,741 FF, 25 MULT18 per default 4x4 tile "
     "(all four formats, `pool_enabled=false`)", "docs/accelerator.md \"Pooling\" (6d4bed5)"),
    ("sparse formats (bitmap, N:M, block)", "lane decoders, bitmap flags",
     "in the base: all four formats +163 % LUT4 over a dense-only 4x4 tile (21,263 vs 8,076 "
     "LUT4; bitmap alone +118 %, N:M alone +47 %)",
     "[area_formats](area_formats.md) (weight_buf_depth 1024)"),
    ("depthwise conv", "the conv2d path, bitmap decoder", "0: no new hardware "
     "(block-diagonal conv2d compiled by the host)", "docs/host.md \"Depthwise\""),
    ("residual add", "the matmul path, bitmap decoder (else N:M 1:M, block, dense), output "
     "pipeline", "0: no new hardware (a matmul with 2 weights a row)",
     "docs/host.md \"The add on the hardware\", spec 2.4.1"),
    ("maxpool2d, avgpool2d, global_avgpool", "a `PoolReducer` per tile, a mux on lane 0's "
     "entry port and result FIFO (`pool_enabled`)", "+1,001 LUT (+4.2 %), +436 FF (+5.6 %), "
     "+3 MULT18 per tile (24,841 / 8,177 / 28 with pools); 4 tiles in the default build",
     "docs/accelerator.md \"Pooling\", docs/flow.md (6d4bed5)"),
]


def _network(case: tuple, seed: int):
    from sparsemac.host import network_from_dict

    op, name, _, shape, layers, _ = case
    return network_from_dict({"name": f"ops_{op}_{name}", "seed": seed,
                              "input": {"shape": list(shape)}, "layers": layers})


def _model_detail(net, cfg, seed: int, split: str) -> tuple[str | None, dict | None]:
    """Compile ``net`` and run it on the model engine (hardware limits): ``(error, cycles of
    the reported layer)``; ``error`` is the model engine's (e.g. BAD_SHAPE: the tile buffers do
    not take it), the cycles `host.cycles.table_cycles`' dict (``bound``, ``effectual_macs``)."""
    from sparsemac.host.compiler import compile_network
    from sparsemac.host.cycles import table_cycles
    from sparsemac.host.model_engine import run_model

    cn = compile_network(net, cfg, seed=seed, split=split)
    r = run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=cn.desc_count,
                  cfg=cfg)
    if r.error_code.name != "OK":
        return f"{r.error_code.name}: {r.message}", None
    i = next(j for j, cl in enumerate(cn.layers) if cl.spec.name == "op")
    return None, table_cycles(r.layers, cfg)[i]


def measure(cfg, seed: int, *, engine: str = "rtl", only: str = "",
            log=None) -> tuple[list[dict], list[dict]]:
    """Run every case of `CASES` whose op or name contains ``only``: ``(rows, skipped)``."""
    from sparsemac.host.run import model_job, run

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    cases = [c for c in CASES if only.lower() in f"{c[0]} {c[1]}".lower()]
    rows, skipped = [], []
    for i, case in enumerate(cases):
        op, name, how, _, _, split = case
        net = _network(case, seed)
        err, mc = _model_detail(net, cfg, seed, split)
        if err:
            log(f"[ops] {i + 1}/{len(cases)} {op} {name}: does not run on this build ({err})")
            skipped.append({"op": op, "case": name, "how": how, "reason": err})
            continue
        log(f"[ops] {i + 1}/{len(cases)} {op} {name} ({engine}) ...")
        t0 = time.monotonic()
        if engine == "rtl":
            from sparsemac.sim.rtl_engine import rtl_job

            rr = run(net, cfg, seed=seed, tile_split=split, engine_name="rtl",
                     engine=lambda cn: rtl_job(cn, seed=seed))
        else:
            rr = run(net, cfg, seed=seed, tile_split=split, engine=model_job)
        rep = rr.report
        if rep["status"] != "OK" or rep["mismatches"]:
            raise SystemExit(f"{op} {name}: status {rep['status']} ({rep['error']}), "
                             f"{rep['mismatches']} output bytes differ from golden "
                             f"(seed {seed})")
        row = next(r for r in rep["layers"] if r["name"] == "op")
        cycles = int(row["cycles"])
        model = int(row.get("model_cycles", cycles))
        fmt = row.get("format")
        rows.append({
            "op": op, "case": name, "how": how, "in_shape": row["in_shape"],
            "out_shape": row["out_shape"], "m": row["m"], "k": row["k"], "n": row["n"],
            "format": fmt, "nm": row.get("nm"), "as": row.get("as"),
            "tile_split": row["tile_split"], "col_split": row["col_split"],
            "density": row["density"], "cycles": cycles, "model_cycles": model,
            "roofline": int(row["roofline_cycles"]), "bound": mc["bound"],
            "effectual_macs": int(mc["effectual_macs"]),
            "over_roofline": cycles / max(int(row["roofline_cycles"]), 1),
            "model_error": model / cycles - 1, "mismatches": rep["mismatches"],
            "busy_cycles": int(rep["cycles"]), "layers": len(rep["layers"]),
            "wall_seconds": round(time.monotonic() - t0, 1)})
        log(f"[ops]   {cycles:,} cycles, model {model:,} ({100 * rows[-1]['model_error']:+.1f} "
            f"%), roofline {rows[-1]['roofline']:,}, bit-exact, {rows[-1]['wall_seconds']} s")
    return rows, skipped


def how_cell(r: dict) -> str:
    """The "where and how" cell: the case's text, the add's matmul format, the tile split."""
    how = r["how"]
    if r.get("as") == "matmul":
        how += f", {r['format']}" + (f" {r['nm']}" if r.get("nm") else "")
    if r["m"] and r["format"] is not None:
        how += f"; {r['tile_split']} split"
    return how


def _span(rows: list[dict], keep) -> str:
    """``min-max`` of RTL / roofline over the rows ``keep(row)`` accepts (``-`` when none)."""
    v = [r["over_roofline"] for r in rows if keep(r)]
    return "-" if not v else f"{min(v):.2f}" if len(v) == 1 else f"{min(v):.2f}-{max(v):.2f}"


def _lo_hi(lo: int, hi: int) -> str:
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _dw_vs_dense(rows: list[dict]) -> str:
    """`` (16x8x8: N cycles, P % of the dense 16 -> 16 conv's M for 1/16 of its MACs)`` when
    both rows ran."""
    dw = next((r for r in rows if r["op"] == "depthwise 3x3" and r["m"] == 16), None)
    dense = next((r for r in rows if r["op"] == "conv2d 3x3" and r["format"] == "dense"
                  and dw and (r["m"], r["k"], r["n"]) == (dw["m"], dw["k"], dw["n"])), None)
    if not dw or not dense:
        return ""
    return (f" (16x8x8: {dw['cycles']:,} cycles, {100 * dw['cycles'] / dense['cycles']:.0f} % "
            f"of the dense 16 -> 16 conv's {dense['cycles']:,} for 1/16 of its MACs)")


def reading(rows: list[dict]) -> list[str]:
    """The paragraph under the table: RTL / roofline per kind of op, and why."""
    def group(r):
        if r["op"].startswith("depthwise"):
            return "dw"
        if r["as"] == "matmul":
            return "add"
        if r["format"] is None:
            return "pool"
        return "dense" if r["format"] == "dense" else "sparse"
    err = [abs(r["model_error"]) for r in rows]
    one = [r for r in rows if r["layers"] == 1]
    gap = [r["cycles"] - r["busy_cycles"] for r in one]
    busy_err = [r["model_cycles"] / r["busy_cycles"] - 1 for r in one]
    busy = "" if not one or not max(gap) else (
        f" A one-layer case's RTL count exceeds the job's `BUSY_CYCLES` counter by "
        f"{_lo_hi(min(gap), max(gap))} cycles (descriptor 0 is counted from the testbench's first "
        "sample, before the registers are programmed); against `BUSY_CYCLES` the model is "
        f"within {100 * min(busy_err):+.1f} .. {100 * max(busy_err):+.1f} %.")
    return [
        f"Reading the table (RTL / roofline): dense conv2d, pointwise and matmul "
        f"{_span(rows, lambda r: group(r) == 'dense')}x: the fixed cost of a descriptor "
        "(fetch, checks, headers, the image load before the first column group) weighs on "
        "layers of a few thousand cycles, most on the smallest (16x8x8 1x1: 256 MACs a PE). "
        f"Sparse 3x3 convs {_span(rows, lambda r: group(r) == 'sparse')}x: their roofline "
        "counts only the effectual MACs (non-zero weight times non-zero activation). Depthwise "
        f"{_span(rows, lambda r: group(r) == 'dw')}x: the implicit im2col gather still "
        "builds all `C*KH*KW` rows of the block-diagonal matrix (one entry a cycle per tile) "
        "while only `KH*KW` taps a row are MACs, so the gather, not the MACs or the memory, "
        f"sets the time{_dw_vs_dense(rows)}. The add "
        f"{_span(rows, lambda r: group(r) == 'add')}x: its matmul has "
        "two MACs an output, so it is bound by the gather of its `R + C` rows and the "
        f"descriptor's fixed cost too. Pools {_span(rows, lambda r: group(r) == 'pool')}x: "
        "the stride-2 and global pools stream their input at 0.9+ beats a cycle and pool "
        "each plane as it arrives, so the descriptor's fetch and check and the last planes' "
        "results after the stream make the gap; a stride-1 pool is bound by its gather "
        "(`KH*KW` entries a window) ([pools](pools.md)). The cycle model "
        f"is within {max(err, default=0) * 100:.1f} % of the RTL on every case." + busy,
    ]


def report(rows: list[dict], skipped: list[dict], cfg, *, seed: int, engine: str,
           commit: str, wall: float, argv: str) -> str:
    lines = [
        "# CNN operations on the accelerator RTL (issue 16)",
        "",
        f"Generated by `python bench/ops_report.py{argv}` (do not edit by hand): design "
        f"`{commit}`, seed {seed}, engine `{engine}`, {wall / 60:.1f} min. Build "
        f"`{cfg.name}`: {cfg.tiles} tiles of {cfg.rows}x{cfg.cols} MACs, "
        f"{cfg.axi_data_width}-bit AXI, `act_buf_depth` {cfg.act_buf_depth}, "
        f"`weight_buf_depth` {cfg.weight_buf_depth}, `out_buf_depth` {cfg.out_buf_depth}, "
        f"formats {', '.join(cfg.formats)}, `pool_enabled` {cfg.pool_enabled}.",
        "",
        "Every case is its own network (one layer; the add: a 1x1 conv, then the add of its "
        "output and the network input), compiled with the hardware's limits and run by "
        "`sparsemac.host.run.run` on the accelerator top on Verilator (`sparsemac run --engine "
        "rtl`'s engine, AXI memory without wait states); every output buffer is bit-exact with "
        "golden. Random int8 weights and inputs from the seed, requantized with the calibrated "
        "scales. `RTL`: the layer's descriptor cycles (its index appearing to the next "
        "descriptor or the interrupt: fetch and checks included). `model`: the cycle model "
        "(`sparsemac.host.cycles`, the run report's `model_cycles`). `roofline`: "
        "`golden.perf.layer_stats` - `max(effectual MACs / PEs, read beats, write beats)` "
        "(dense: all MACs; a sparse format skips zero weights and zero activations; a pool has "
        "no MACs: `max(read beats, write beats)`), with the bound it is. Shape: input -> "
        "output, and the matrix `M x K x N` the tiles run.",
        "",
        "Which cases fit is the model engine's check with the hardware's limits (it sizes a "
        "column-split layer by one tile's share of the columns, as the RTL's DescChecker does; "
        "`sparsemac.host.compiler.check_tile_buffers`, which `sparsemac run --engine rtl` "
        "calls before a run, counts the same share).",
        "",
        "| op | case | where it runs and how | M x K x N | RTL cycles | model cycles | "
        "roofline | RTL / roofline | model error |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['op']} | {r['case']} | {how_cell(r)} | {r['m']} x {r['k']} x {r['n']} | "
            f"{r['cycles']:,} | {r['model_cycles']:,} | {r['roofline']:,} ({r['bound']}) | "
            f"{r['over_roofline']:.2f} | {100 * r['model_error']:+.1f} % |")
    if skipped:
        lines += ["", "Not run (the build's tile buffers do not take it; the model engine's "
                  "answer with the hardware's limits, what the RTL's DescChecker refuses "
                  "before anything is sent):", ""]
        lines += [f"- {s['op']} {s['case']}: {s['reason']}" for s in skipped]
    lines += [
        "",
        *reading(rows),
        "",
        "## ECP5 area per op",
        "",
        "No synthesis in this bench (a default tile takes about 5 minutes of yosys, twice for "
        "pools on and off); the numbers are the measurements cited. `yosys synth_ecp5`, not "
        "placed.",
        "",
        "| op | hardware | area on ECP5 | source |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in AREA]
    lines += ["", *NEEDS, ""]
    return "\n".join(lines)


#: What a MobileNet / ResNet-18 layer list would still need (docs/accelerator.md "Pooling",
#: docs/host.md sections 2-3, docs/spec.md 8.1-8.2, golden.tiling; default build numbers).
NEEDS = [
    "## What a MobileNet / ResNet-18 layer list would still need",
    "",
    "Every op of the two networks runs above, bit-exact; what stops the real layer lists is "
    "size. Numbers for the default build:",
    "",
    "- **Feature maps larger than a tile's image buffer.** A conv or pool multicasts its "
    "whole `C x H x W` input to every tile, which holds `act_buf_depth * cols` = 4 KiB "
    "(ResNet-18's first block: 64x56x56 = 196 KiB; MobileNet's first depthwise: 32x112x112 "
    "= 392 KiB). The host would have to tile H and W (row bands with a halo of `KH - 1` "
    "rows, one descriptor each); the compiler splits only a batch of images or a matmul's "
    "columns into jobs today (docs/host.md section 5).",
    "- **Channel depth of a 3x3 conv (im2col entries).** One tile's share of the im2col "
    "matrix, `ceil(N_tile / cols) * C*KH*KW`, must fit `act_buf_depth` = 1024 entries: at "
    "64 input channels (`K = 576`) one column group (4 output pixels) a tile, at 128 "
    "(`K = 1152`) not even that. There is no split of `K` across descriptors on the hardware "
    "(`ACCUMULATE` is refused with `BAD_FLAGS`, spec 8.1), so ResNet-18's 128-512-channel "
    "3x3 layers need it (or larger `act_buf_depth`). The weights fit more easily: "
    "`weight_buf_depth` 4096 x 8 B = 32 KiB a tile (a 64->64 3x3 layer is 36 KiB over 4 "
    "tiles; 512->512 is 2.25 MiB and needs output-channel jobs).",
    "- **The add at ResNet widths.** The add's matmul has `K = R + C` rows (`R >= C`): by "
    "rows `ceil(H*W / cols) * (R + C) <= 1024` entries, and a column split still loads the "
    "whole `(R + C) x H*W` input into each tile's image buffer (`act_buf_depth * cols` "
    "bytes), so 64 channels take at most 32 positions (the 64x8x8 case above is refused "
    "either way). Larger adds need the H/W tiling above (an add is element-wise: any "
    "slice of positions is an add of its own).",
    "- **Depthwise cost, not function.** Stride 1 and stride 2 both run (block-diagonal "
    "conv2d), but the gather builds all `C*KH*KW` rows, so a depthwise layer takes a good "
    "part of the time of the dense `C -> C` conv of the same shape (the table above), and the "
    "block-diagonal matrix grows as `C^2 * KH*KW` (MobileNet's 1024-channel depthwise: a "
    "9 MiB dense matrix of which bitmap stores the 9,216 taps and the non-zero flags; `K = "
    "9,216` is also far past the im2col limit above). A per-channel gather (opcode 6, "
    "spec 2.5) is what would make it cheap.",
    "- **7x7 stem.** The geometry fits (kernel, stride and padding `<= 15`), the 3x224x224 "
    "input does not (the image-buffer limit above).",
    "- **Global pool.** `H, W <= 15` on the hardware (ResNet-18's 7x7 and MobileNet's 7x7 "
    "final maps are fine); larger maps need a pool in two steps.",
    "- **Fused pool / add.** Every pool and add is a pass over memory of its own (the rows "
    "above); a pool fused into a conv's output (`conv -> relu -> maxpool`) and the add fused "
    "into the second conv of a block are not built (docs/accelerator.md \"Pooling\").",
    "- **A memory plan that frees buffers.** Every output keeps its buffer until the table "
    "ends (docs/host.md section 3: no liveness), so a whole network's activations add up in "
    "one window: fine for these cases, not for 18 layers of 56x56 maps.",
]


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "hw", "golden", "host",
                                "sim"], cwd=ROOT, text=True, capture_output=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default="", help="run the cases whose op or name contains this")
    ap.add_argument("--engine", choices=("rtl", "model"), default="rtl")
    ap.add_argument("--out", default=str(ROOT / "docs" / "reports" / "ops.md"))
    args = ap.parse_args(argv)
    sys.path.append(str(ROOT))   # after PYTHONPATH and the installed package
    from sparsemac.hw.config import AcceleratorConfig

    cfg = AcceleratorConfig.preset(args.preset)
    t0 = time.monotonic()
    rows, skipped = measure(cfg, args.seed, engine=args.engine, only=args.only)
    wall = time.monotonic() - t0
    opts = "".join(f" --{k} {v}" for k, v in (("preset", args.preset), ("seed", args.seed))
                   if v != ap.get_default(k))
    opts += f" --only {args.only!r}" if args.only else ""
    opts += " --engine model" if args.engine != "rtl" else ""
    text = report(rows, skipped, cfg, seed=args.seed, engine=args.engine, commit=_commit(),
                  wall=wall, argv=opts)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps(
        {"config": cfg.to_dict(), "seed": args.seed, "engine": args.engine,
         "commit": _commit(), "wall_seconds": round(wall, 1), "rows": rows,
         "skipped": skipped}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
