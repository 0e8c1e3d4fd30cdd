"""Pools on the accelerator RTL: cycles per pool descriptor against the roofline and the cycle
model, and the AXI read rate (docs/reports/pools.md).

    python bench/pool_report.py [--preset default] [--seed 1] [--out docs/reports/pools.md]

Every case is one descriptor table of its own (one pool on a random int8 input of the largest
shape the build's tile buffers take), run on the accelerator top on Verilator (cocotbext-axi
memory, no wait states); the outputs are compared byte for byte with golden.  Reported: the
descriptor's cycles (its index appearing to the interrupt, as ``sparsemac run --engine rtl``
counts), the roofline (the memory bound: ``max(read beats, write beats)``, a pool has no MACs),
the cycle model (`sparsemac.host.cycles.pool_cycles`), the input's read beats per cycle of
the descriptor and of its stream (from the image's first AXI read beat to its last), whether
the image went to the tiles plane by plane or multicast, and where the cycles go.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (name, pool layer for sim.accel_driver.add_pool_layers); shapes sized for the default build
#: (act_buf_depth 1024 x cols 4: a 4 KiB image, 1024 entries per tile)
CASES = [
    ("maxpool 2x2/2, 16x16x16", dict(op="maxpool2d", c=16, h=16, w=16, kernel=(2, 2),
                                     stride=(2, 2), pad=(0, 0))),
    ("maxpool 3x3/2 pad 1, 16x16x16", dict(op="maxpool2d", c=16, h=16, w=16, kernel=(3, 3),
                                           stride=(2, 2), pad=(1, 1))),
    ("maxpool 2x2/2, 64x8x8", dict(op="maxpool2d", c=64, h=8, w=8, kernel=(2, 2),
                                   stride=(2, 2), pad=(0, 0))),
    ("maxpool 2x2/2, 32x16x16 (8 KiB: fits plane by plane only)",
     dict(op="maxpool2d", c=32, h=16, w=16, kernel=(2, 2), stride=(2, 2), pad=(0, 0))),
    ("maxpool 2x2/2, 16x14x14 (multicast)", dict(op="maxpool2d", c=16, h=14, w=14,
                                                 kernel=(2, 2), stride=(2, 2), pad=(0, 0))),
    ("avgpool 2x2/2, 16x16x16", dict(op="avgpool2d", c=16, h=16, w=16, kernel=(2, 2),
                                     stride=(2, 2), pad=(0, 0), include_pad=False)),
    ("avgpool 3x3/1 pad 1 (incl.), 4x16x16", dict(op="avgpool2d", c=4, h=16, w=16,
                                                  kernel=(3, 3), stride=(1, 1), pad=(1, 1),
                                                  include_pad=True)),
    ("avgpool 3x3/1 pad 1 (real), 4x16x16", dict(op="avgpool2d", c=4, h=16, w=16,
                                                 kernel=(3, 3), stride=(1, 1), pad=(1, 1),
                                                 include_pad=False)),
    ("global avgpool, 64x8x8", dict(op="global_avgpool", c=64, h=8, w=8)),
    ("global avgpool, 32x4x4", dict(op="global_avgpool", c=32, h=4, w=4)),
    # the same global pools as the compiler runs them (host.compiler.global_pool_block): the
    # average pool of blocks of 4 channels, kernel and stride (H, W), the same result bytes
    ("global avgpool, 64x8x8 as 16 blocks of 4", dict(op="avgpool2d", c=16, h=32, w=8,
                                                       kernel=(8, 8), stride=(8, 8),
                                                       pad=(0, 0), include_pad=False)),
    ("global avgpool, 32x4x4 as 8 blocks of 4", dict(op="avgpool2d", c=8, h=16, w=4,
                                                      kernel=(4, 4), stride=(4, 4),
                                                      pad=(0, 0), include_pad=False)),
]


def _run(cfg, job, seed: int) -> dict:
    from sparsemac.hw.top.accelerator import Accelerator
    from sparsemac.sim.runner import cached_verilog, run_cocotb

    spec = {"base": job.base, "image": bytes(job.image).hex(), "desc_base": job.desc_base,
            "count": job.count, "max_cycles": 2_000_000,
            "outputs": [[a, len(e)] for a, e in job.outputs]}
    with tempfile.TemporaryDirectory(prefix="sparsemac-pools-") as tmp:
        jpath, opath = Path(tmp) / "job.json", Path(tmp) / "out.json"
        jpath.write_text(json.dumps(spec))
        verilog = cached_verilog(lambda: Accelerator(cfg), "accelerator",
                                 json.dumps(cfg.to_dict(), sort_keys=True))
        run_cocotb(None, toplevel="accelerator", test_module="sparsemac.sim.tb.network",
                   cfg=cfg, params={"run_job": str(jpath), "run_out": str(opath), "r_trace": 1},
                   seed=seed,
                   tag="pools", verilog=verilog)
        return json.loads(opath.read_text())


def measure(cfg, seed: int) -> list[dict]:
    import numpy as np
    from sparsemac.golden.descriptors import unpack_descriptor
    from sparsemac.golden.net_pool import pool_unicast
    from sparsemac.host.cycles import pool_cycles
    from sparsemac.sim.accel_driver import Job, add_pool_layers, pool_fits

    rng = np.random.default_rng(seed)
    beat = cfg.axi_bytes
    jobs, rows = [], []
    for name, P in CASES:
        if not pool_fits(cfg, P):
            print(f"[pools] {name}: does not fit this build's tile buffers, skipped",
                  file=sys.stderr)
            continue
        job = add_pool_layers(rng, cfg, Job(base=0x10000, image=bytearray(), desc_base=0x10000,
                                            count=0), [P])
        jobs.append((name, P, job))
    for i, (name, P, job) in enumerate(jobs):
        print(f"[pools] {i + 1}/{len(jobs)} {name} ...", file=sys.stderr, flush=True)
        res = _run(cfg, job, seed)
        if res["error"]:
            raise SystemExit(f"{name}: accelerator error code {res['code']}")
        got = bytes.fromhex(res["outputs"][0])
        want = job.outputs[0][1]
        if got != want:
            raise SystemExit(f"{name}: output differs from golden (seed {seed})")
        d = unpack_descriptor(bytes(job.image[job.desc_base - job.base:][:64]))
        cycles = int(res["layer_cycles"][0])
        read_beats = -(-d.c * d.h * d.w // beat)
        write_beats = -(-d.m * d.n // beat)
        roof = max(read_beats, write_beats)
        run = type("Run", (), {"descriptor": d, "index": 0})()
        model = pool_cycles(run, cfg)
        gather = -(-d.n // cfg.cols) * -(-d.m // cfg.tiles) * d.k
        # RESULT flits of the output rows (ring_payload_width / 8 - 4 data bytes each): they
        # share the ring's links with the image's ACTS flits (one flit per link per cycle)
        dbytes = cfg.ring_payload_width // 8 - 4
        flits = d.m * sum(-(-min(cfg.cols, d.n - g * cfg.cols) // dbytes)
                          for g in range(-(-d.n // cfg.cols)))
        # the image's beats are the run's last `read_beats` AXI read beats (after the
        # descriptor's): their first to their last is the stream
        rb = res["r_beats"][-read_beats:]
        stream = rb[-1] - rb[0] + 1
        rows.append({"case": name, "op": P["op"], "cycles": cycles, "roofline": roof,
                     "stream_cycles": stream, "stream_rate": read_beats / stream,
                     "sent": "planes" if pool_unicast(d.h * d.w, beat) else "multicast",
                     "model": int(model["cycles"]), "read_beats": read_beats,
                     "write_beats": write_beats, "gather": gather, "result_flits": flits,
                     "read_rate": read_beats / cycles,
                     "model_error": model["cycles"] / cycles - 1})
    return rows


def report(rows: list[dict], cfg, seed: int) -> str:
    lines = [
        "# Pools on the accelerator RTL",
        "",
        f"Regenerate: `python bench/pool_report.py --preset {cfg.name}` (seed {seed}). Build "
        f"`{cfg.name}`: {cfg.tiles} tiles of {cfg.rows}x{cfg.cols}, {cfg.axi_data_width}-bit "
        f"AXI, `act_buf_depth` {cfg.act_buf_depth}. One pool descriptor per run on a random "
        "int8 input, outputs bit-exact with golden; cycles from the descriptor's index "
        "appearing to the interrupt (fetch and checks included).",
        "",
        "Roofline: the memory bound `max(read beats, write beats)` (no MACs). `gather`: the "
        "entries one tile steps through, `ceil(OH*OW / cols) * ceil(C / tiles) * KH*KW`, one "
        "per cycle, each channel once its plane is in (the channels interleaved over the "
        "tiles). `result flits`: the RESULT flits of the output (`ring_payload_width / 8 - "
        "4` data bytes each), which share the ring's links with the image's read beats. "
        "`read rate`: input beats per cycle of the descriptor. `stream rate`: input beats per "
        "cycle from the image's first AXI read beat to its last (the issue's target for a "
        "standalone pool: >= 0.9). `sent`: `planes` when every channel's plane is a whole "
        "number of bus words and each word goes only to the tile that pools its channel "
        "(session 26, `golden.net_pool.pool_unicast`), else `multicast` to every tile. "
        "`model`: `sparsemac.host.cycles.pool_cycles`.",
        "",
        "| case | sent | cycles | roofline | cycles / roofline | read beats | gather | "
        "result flits | read rate | stream rate | model | model error |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['sent']} | {r['cycles']:,} | {r['roofline']:,} | "
                     f"{r['cycles'] / r['roofline']:.2f} | {r['read_beats']:,} | "
                     f"{r['gather']:,} | {r.get('result_flits', 0):,} | "
                     f"{r['read_rate']:.2f} | {r['stream_rate']:.2f} | {r['model']:,} | "
                     f"{100 * r['model_error']:+.1f} % |")
    lines += ["", "Where the gap to the roofline is (since session 25 the gather of each "
              "channel starts once its plane is in, so it overlaps the load; since session 26 "
              "a plane of whole bus words goes only to its own tile): the fetch and checks of "
              "the descriptor (about 90 cycles, hidden behind the layer before in a network); "
              "the results' flits (4 data bytes each at the default 64-bit ring payload), "
              "which since session 27 wait in their tile's result buffer while image words "
              "pass (the routers' streams first, `ring_inject_yield`, docs/ring.md section 4: "
              "the stream at 0.91-1.00, and the results of the last planes drain after it; a "
              "multicast image, whose words pass every tile, leaves its results the longest "
              "tail); the pooling of the last plane after the stream; and a stride-1 pool's "
              "gather (`KH*KW` entries per window, one per cycle per tile). "
              "docs/accelerator.md \"Pooling\".", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "docs" / "reports" / "pools.md"))
    args = ap.parse_args(argv)
    sys.path.append(str(ROOT))   # after PYTHONPATH and the installed package
    from sparsemac.hw.config import AcceleratorConfig

    cfg = AcceleratorConfig.preset(args.preset)
    rows = measure(cfg, args.seed)
    text = report(rows, cfg, args.seed)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
