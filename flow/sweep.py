"""``sparsemac sweep``: configs x workloads -> area, Fmax, cycles, throughput; table and plot.

One job per config point: synthesize the spec's top once (area, and Fmax when asked; cached by
:mod:`flow.synth`), then run the cycle source (:mod:`flow.cycles`) on each of its workloads.
Every finished point is written at once to ``results.sqlite`` under a key of (config, workload,
tool versions, cycle source, synthesis settings), so an interrupted or killed sweep resumes
without redoing finished points.  At the end ``results.csv``, ``results.md`` and ``pareto.png``
are rewritten from the database (:mod:`flow.sweep_report`, :mod:`flow.sweep_plot`).

Cycles: ``cycles: auto`` is the whole layer on the whole accelerator (``network``: descriptor,
tables, weight and activation load, compute, write-back) for ``top: accelerator``, the
slowest tile's load + compute (``tile_model``) for a per-tile top; the report names the source.

Throughput is dense-equivalent GOP/s: ``2 * M * K * N / (cycles / clock)``, at a clock the
point reaches, never the config's ``target_mhz`` (`flow.sweep_report.choose_clock`, column
``clock_source``): ``placed`` (the whole accelerator top placed and routed in this sweep),
``ooc-estimate`` (a block top placed alone: its Fmax stands in for the chip, an upper bound),
``estimate`` (the spec's ``clock: {estimate_mhz, note}`` for points not placed), else ``none``
and no throughput ("-").  The clock is applied when the report is written, so a store of an
older version gets its throughput chosen again.  ``top: accelerator`` synthesizes the whole
chip; the area of a per-tile top (``mac_array``, ``tile``) is multiplied by ``tiles`` (and a
``pe`` by the MAC count) to estimate the compute fabric alone.

Executors: a local process pool (``--jobs N``) or a Dask distributed cluster
(``--executor dask [--scheduler ADDR]``; without an address a LocalCluster of ``N`` workers).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

from .cycles import CYCLE_SOURCES, resolve_source, tile_rtl_cycles
from .generate import sha256
from .spec import SweepSpec
from .sweep_report import (
    COLUMNS,
    apply_clock,
    area_overhead,
    config_dict,
    spec_clock,
    varying_params,
    write_reports,
)
from .versions import generator_versions, source_digest, synth_versions

__all__ = ["run_sweep", "run_config_job", "Results", "point_key", "write_reports",
           "rtl_sample_points", "area_overhead"]

#: hw/ and golden/ of this checkout: a change to either recomputes the points (the synthesis
#: cache, keyed by the Verilog, still reuses what did not change)
_SOURCES = source_digest()


def point_key(cfg, workload, spec: SweepSpec, source: str, rtl: bool = False) -> str:
    """Identity of one result: what it was computed from (config, workload, the ``hw/`` and
    ``golden/`` sources), and with which tools (a point of the RTL sample has its own key:
    adding the sample later recomputes just those)."""
    tools = generator_versions() | (synth_versions(spec.target) if spec.target else {})
    ident = {"config": config_dict(cfg), "workload": workload.as_dict(), "top": spec.top,
             "synth": [spec.target, spec.device, spec.fmax], "cycles": source, "seed": spec.seed,
             "tools": tools, "sources": _SOURCES}
    if rtl:
        ident["rtl"] = True
    return sha256(json.dumps(ident, sort_keys=True))


def rtl_sample_points(n_points: int, sample: int) -> set[int]:
    """Indices of the ``sample`` points (of ``n_points``, in spec order) run on the RTL: spread
    evenly from the first to the last."""
    if sample <= 0 or n_points == 0:
        return set()
    if sample >= n_points:
        return set(range(n_points))
    if sample == 1:
        return {0}
    return {round(i * (n_points - 1) / (sample - 1)) for i in range(sample)}


def _copies(top: str, cfg) -> int:
    return {"mac_array": cfg.tiles, "tile": cfg.tiles, "pe": cfg.macs}.get(top, 1)


def run_config_job(job: dict) -> list[dict]:
    """Measure one config on its workloads (runs in a worker; arguments are plain data)."""
    from sparsemac.hw.config import AcceleratorConfig

    from .synth import synth

    cfg = AcceleratorConfig.from_dict(job["config"])
    area = {"LUT": None, "FF": None, "DSP": None, "BRAM": None}
    fits, fmax, cached = None, None, None
    if job["target"]:
        res = synth(cfg, job["top"], target=job["target"], device=job["device"],
                    pnr=job["fmax"])
        n = _copies(job["top"], cfg)
        area = {k: res["area"][k] * n for k in area}
        fits, fmax, cached = res["fits"], res["fmax_mhz"], res["cached"]
    rows = []
    rtl_keys = set(job.get("rtl_keys", ()))
    for key, wl in zip(job["keys"], job["workloads"]):
        c = CYCLE_SOURCES[job["cycles"]](wl, cfg, job["seed"])
        rtl = {}
        if key in rtl_keys:
            r = tile_rtl_cycles(wl, cfg, job["seed"])
            rtl = {"rtl_cycles": r["rtl_cycles"], "rtl_note": r["rtl_note"],
                   "rtl_exact": r.get("rtl_exact"), "rtl_model_cycles": r.get("rtl_model_cycles")}
            if r["rtl_cycles"]:
                rtl["rtl_model_error_pct"] = round(
                    100 * (r["rtl_model_cycles"] - r["rtl_cycles"]) / r["rtl_cycles"], 3)
        rows.append({
            "key": key, "config": cfg.name, "params": json.dumps(job["params"], sort_keys=True),
            "top": job["top"], "target": job["target"], "device": job["device"],
            "area_copies": _copies(job["top"], cfg), **area, "fits": fits, "fmax_mhz": fmax,
            "workload": wl.name, "op": wl.op, "format": wl.format,
            "sparsity": round(wl.sparsity, 6), "nm": f"{wl.nm[0]}:{wl.nm[1]}" if wl.nm else "",
            "act_sparsity": wl.act_sparsity, "cycles": c["cycles"], "bound": c.get("bound"),
            "dense_macs": c.get("dense_macs"), "effectual_macs": c.get("effectual_macs"),
            "cycle_source": c.get("source", job["cycles"]), "synth_cached": cached, **rtl,
        })
    return apply_clock(rows, *job.get("clock", ("auto", None, None)))


class Results:
    """The sweep's SQLite store: one row per finished point, written as soon as it is done."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.db = sqlite3.connect(self.path)
        cols = ", ".join(f'"{c}"' + (" PRIMARY KEY" if c == "key" else "") for c in COLUMNS)
        self.db.execute(f"CREATE TABLE IF NOT EXISTS points ({cols})")
        have = {r[1] for r in self.db.execute("PRAGMA table_info(points)")}
        for c in COLUMNS:           # a store from an older version: add the new columns
            if c not in have:
                self.db.execute(f'ALTER TABLE points ADD COLUMN "{c}"')
        self.db.execute("CREATE TABLE IF NOT EXISTS runs (run_id PRIMARY KEY, spec, started, "
                        "finished, computed, reused)")
        self.db.commit()

    def done(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT key FROM points")}

    def add(self, rows: list[dict]) -> None:
        q = (f"INSERT OR REPLACE INTO points ({', '.join(chr(34) + c + chr(34) for c in COLUMNS)})"
             f" VALUES ({', '.join('?' for _ in COLUMNS)})")
        self.db.executemany(q, [[r.get(c) for c in COLUMNS] for r in rows])
        self.db.commit()

    def rows(self, keys: list[str] | None = None) -> list[dict]:
        cur = self.db.execute(f"SELECT {', '.join(chr(34) + c + chr(34) for c in COLUMNS)} "
                              "FROM points")
        out = [dict(zip(COLUMNS, r)) for r in cur]
        if keys is not None:
            order = {k: i for i, k in enumerate(keys)}
            out = sorted((r for r in out if r["key"] in order), key=lambda r: order[r["key"]])
        return out

    def log_run(self, run_id, spec, started, finished, computed, reused) -> None:
        self.db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?)",
                        (run_id, spec, started, finished, computed, reused))
        self.db.commit()

    def close(self) -> None:
        self.db.close()


def _executor(kind: str, jobs: int, scheduler: str | None):
    """``(submit(fn, arg) -> future, as_completed(futures), close())``."""
    if kind == "dask":
        from distributed import Client, LocalCluster, as_completed

        if scheduler:
            client, cluster = Client(scheduler), None
        else:
            cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, dashboard_address=None)
            client = Client(cluster)

        def close():
            client.close()
            if cluster is not None:
                cluster.close()

        return (lambda fn, a: client.submit(fn, a, pure=False)), as_completed, close
    if kind != "local":
        raise ValueError(f"executor must be local or dask, not {kind!r}")
    if jobs <= 1:  # in this process: lightest, and a kill leaves no orphan workers
        from concurrent.futures import Future

        def submit(fn, a):
            f = Future()
            f.fn, f.arg = fn, a
            return f

        def completed(futs):
            for f in futs:
                f.set_result(f.fn(f.arg))
                yield f

        return submit, completed, lambda: None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
    return pool.submit, as_completed, lambda: pool.shutdown(cancel_futures=True)


def run_sweep(spec: SweepSpec, out_dir: str | Path, *, jobs: int = 1, executor: str = "local",
              scheduler: str | None = None, progress: bool = True, log=print) -> dict:
    """Run (or resume) ``spec`` into ``out_dir``; return a summary dictionary."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = resolve_source(spec.cycles, spec.top)
    db = Results(out / "results.sqlite")
    run_id, started = uuid.uuid4().hex[:12], time.time()
    varying = varying_params(spec)
    all_keys, pending = [], []
    done = db.done()
    n_all = spec.n_points
    sample = rtl_sample_points(n_all, spec.rtl_sample if source != "roofline" else 0)
    idx = 0
    for cfg in spec.configs:
        # a workload runs on the configs that build its format (a grid may vary `formats`)
        wls = [w for w in spec.workloads if w.format in cfg.formats]
        rtl = [idx + i in sample for i in range(len(wls))]
        idx += len(wls)
        keys = [point_key(cfg, w, spec, source, r) for w, r in zip(wls, rtl)]
        all_keys += keys
        todo = [(k, w, r) for k, w, r in zip(keys, wls, rtl) if k not in done]
        if todo:
            pending.append({"config": cfg.to_dict(), "top": spec.top, "target": spec.target,
                            "device": spec.device, "fmax": spec.fmax, "cycles": source,
                            "seed": spec.seed, "clock": spec_clock(spec),
                            "params": {k: getattr(cfg, k) for k in varying},
                            "keys": [k for k, _, _ in todo], "workloads": [w for _, w, _ in todo],
                            "rtl_keys": [k for k, _, r in todo if r]})
    reused = len(all_keys) - sum(len(p["keys"]) for p in pending)
    log(f"sweep {spec.name}: {len(spec.configs)} configs x {len(spec.workloads)} workloads -> "
        f"{len(all_keys)} points (formats each config builds); {reused} already done, "
        f"{len(all_keys) - reused} to compute "
        f"({executor}, {jobs} job(s), cycles: {source})")
    computed = 0
    submit, completed, close = _executor(executor, jobs, scheduler)
    bar = tqdm(total=len(all_keys), initial=reused, unit="pt", disable=not progress,
               desc=spec.name)
    try:
        futs = [submit(run_config_job, p) for p in pending]
        for f in completed(futs):
            rows = f.result()
            now = time.strftime("%Y-%m-%dT%H:%M:%S")
            for r in rows:
                r["run_id"], r["computed_at"] = run_id, now
            db.add(rows)
            computed += len(rows)
            bar.update(len(rows))
    finally:
        bar.close()
        close()
        db.log_run(run_id, spec.path, started, time.time(), computed, reused)
    rows = apply_clock(db.rows(all_keys), *spec_clock(spec))  # also rows of older stores
    db.close()
    files = write_reports(rows, out, spec, varying)
    return {"run_id": run_id, "points": len(all_keys), "computed": computed, "reused": reused,
            "files": files, "rows": rows}
