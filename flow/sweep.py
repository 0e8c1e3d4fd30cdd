"""``sparsemac sweep``: configs x workloads -> area, Fmax, cycles, throughput; table and plot.

One job per config point: synthesize the spec's top once (area, and Fmax when asked; cached by
:mod:`flow.synth`), then run the cycle source (:mod:`flow.cycles`) on each of its workloads.
Every finished point is written at once to ``results.sqlite`` under a key of (config, workload,
tool versions, cycle source, synthesis settings), so an interrupted or killed sweep resumes
without redoing finished points.  At the end ``results.csv``, ``results.md`` and ``pareto.png``
are rewritten from the database.

Throughput is dense-equivalent GOP/s: ``2 * M * K * N / (cycles / clock)``, the clock being the
measured Fmax when the sweep asks for it, else the config's ``target_mhz``.  Until the
accelerator top exists, the area of a per-tile top (``mac_array``, ``tile``) is multiplied by
``tiles`` (and a ``pe`` by the MAC count) to estimate the whole compute fabric.

Executors: a local process pool (``--jobs N``) or a Dask distributed cluster
(``--executor dask [--scheduler ADDR]``; without an address a LocalCluster of ``N`` workers).
"""

from __future__ import annotations

import csv
import json
import sqlite3
import time
import uuid
from pathlib import Path

from .cycles import CYCLE_SOURCES, resolve_source, tile_rtl_cycles
from .generate import sha256
from .spec import SweepSpec
from .versions import generator_versions, source_digest, synth_versions

__all__ = ["run_sweep", "run_config_job", "Results", "point_key", "write_reports",
           "rtl_sample_points", "area_overhead"]

COLUMNS = ["key", "run_id", "computed_at", "config", "params", "top", "target", "device",
           "area_copies", "LUT", "FF", "DSP", "BRAM", "fits", "fmax_mhz", "clock_mhz",
           "workload", "op", "format", "sparsity", "nm", "act_sparsity", "cycles", "bound",
           "dense_macs", "effectual_macs", "time_us", "layers_per_s", "gops", "cycle_source",
           "synth_cached", "rtl_cycles", "rtl_model_error_pct", "rtl_exact", "rtl_note"]


#: hw/ and golden/ of this checkout: a change to either recomputes the points (the synthesis
#: cache, keyed by the Verilog, still reuses what did not change)
_SOURCES = source_digest()


def _config_dict(cfg) -> dict:
    d = cfg.to_dict()
    d.pop("name", None)
    return d


def point_key(cfg, workload, spec: SweepSpec, source: str, rtl: bool = False) -> str:
    """Identity of one result: what it was computed from (config, workload, the ``hw/`` and
    ``golden/`` sources), and with which tools (a point of the RTL sample has its own key:
    adding the sample later recomputes just those)."""
    tools = generator_versions() | (synth_versions(spec.target) if spec.target else {})
    ident = {"config": _config_dict(cfg), "workload": workload.as_dict(), "top": spec.top,
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
    clock = fmax if fmax else cfg.target_mhz
    rows = []
    rtl_keys = set(job.get("rtl_keys", ()))
    for key, wl in zip(job["keys"], job["workloads"]):
        c = CYCLE_SOURCES[job["cycles"]](wl, cfg, job["seed"])
        t = c["cycles"] / (clock * 1e6) if c["cycles"] else None
        rtl = {}
        if key in rtl_keys:
            r = tile_rtl_cycles(wl, cfg, job["seed"])
            rtl = {"rtl_cycles": r["rtl_cycles"], "rtl_note": r["rtl_note"],
                   "rtl_exact": r.get("rtl_exact")}
            if r["rtl_cycles"]:
                rtl["rtl_model_error_pct"] = round(
                    100 * (r["rtl_model_cycles"] - r["rtl_cycles"]) / r["rtl_cycles"], 3)
        rows.append({
            "key": key, "config": cfg.name, "params": json.dumps(job["params"], sort_keys=True),
            "top": job["top"], "target": job["target"], "device": job["device"],
            "area_copies": _copies(job["top"], cfg), **area, "fits": fits, "fmax_mhz": fmax,
            "clock_mhz": clock, "workload": wl.name, "op": wl.op, "format": wl.format,
            "sparsity": round(wl.sparsity, 6), "nm": f"{wl.nm[0]}:{wl.nm[1]}" if wl.nm else "",
            "act_sparsity": wl.act_sparsity, "cycles": c["cycles"], "bound": c.get("bound"),
            "dense_macs": c.get("dense_macs"), "effectual_macs": c.get("effectual_macs"),
            "time_us": t * 1e6 if t else None, "layers_per_s": 1 / t if t else None,
            "gops": 2 * c["dense_macs"] / t / 1e9 if t and c.get("dense_macs") else None,
            "cycle_source": c.get("source", job["cycles"]), "synth_cached": cached, **rtl,
        })
    return rows


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


def _varying(spec: SweepSpec) -> list[str]:
    dicts = [_config_dict(c) for c in spec.configs]
    return [k for k in dicts[0] if len({json.dumps(d[k]) for d in dicts}) > 1]


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
    source = resolve_source(spec.cycles)
    db = Results(out / "results.sqlite")
    run_id, started = uuid.uuid4().hex[:12], time.time()
    varying = _varying(spec)
    all_keys, pending = [], []
    done = db.done()
    n_all = spec.n_points
    sample = rtl_sample_points(n_all, spec.rtl_sample if source == "tile_model" else 0)
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
                            "seed": spec.seed, "params": {k: getattr(cfg, k) for k in varying},
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
    rows = db.rows(all_keys)
    db.close()
    files = write_reports(rows, out, spec, varying)
    return {"run_id": run_id, "points": len(all_keys), "computed": computed, "reused": reused,
            "files": files, "rows": rows}


def write_reports(rows: list[dict], out: Path, spec: SweepSpec, varying: list[str]) -> list[str]:
    """``results.csv``, ``results.md`` and ``pareto.png`` from the finished rows."""
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    dense = {(r["config"], r["workload"]): r["cycles"] for r in rows if r["format"] == "dense"}
    head = ["config", *varying, "workload", "format", "sparsity", "LUT", "FF", "DSP", "BRAM",
            "clock MHz", "cycles", "bound", "GOP/s", "speedup vs dense"]
    lines = [f"# Sweep {spec.name}", "",
             f"Spec `{spec.path}`; top `{spec.top}` (area x tiles for per-tile tops), "
             f"synthesis {spec.target or 'none'} {spec.device or ''}, Fmax "
             f"{'measured' if spec.fmax else 'not measured (clock = target_mhz)'}, cycles from "
             f"`{rows[0]['cycle_source'] if rows else spec.cycles}`.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        p = json.loads(r["params"])
        sp = r["nm"] or f"{r['sparsity']:g}"
        base = dense.get((r["config"], r["workload"]))
        vals = [r["config"], *(p.get(k) for k in varying), r["workload"], r["format"], sp,
                r["LUT"], r["FF"], r["DSP"], r["BRAM"], f"{r['clock_mhz']:.1f}", r["cycles"],
                r["bound"], f"{r['gops']:.2f}" if r["gops"] is not None else "-",
                f"{base / r['cycles']:.2f}" if base and r["cycles"] else "-"]
        lines.append("| " + " | ".join("-" if v is None else str(v) for v in vals) + " |")
    sampled = [r for r in rows if r.get("rtl_cycles") or r.get("rtl_note")]
    if sampled:
        lines += ["", "## Cycle model against the RTL (sample)", "",
                  "The slowest tile's share of the layer run on the compute tile's RTL "
                  "(Verilator), load + compute cycles, against `golden.tile_model`.", "",
                  "| config | " + " | ".join(varying) + " | workload | format | sparsity | "
                  "model cycles | RTL cycles | model error | RTL == golden |",
                  "|" + "---|" * (len(varying) + 8)]
        for r in sampled:
            p = json.loads(r["params"])
            err = r.get("rtl_model_error_pct")
            lines.append("| " + " | ".join(str(v) for v in [
                r["config"], *(p.get(k) for k in varying), r["workload"], r["format"],
                r["nm"] or f"{r['sparsity']:g}", r["cycles"], r["rtl_cycles"] or "-",
                f"{err:+.2f} %" if err is not None else (r["rtl_note"] or "-"),
                {1: "yes", 0: "**no**"}.get(r.get("rtl_exact"), "-")]) + " |")
    ovh = area_overhead(rows)
    if ovh:
        pk = [k for k in ovh[0] if k not in ("formats", "LUT", "FF", "lut_pct", "lutff_pct")]
        lines += ["", "## Sparse against dense area, same MAC count", "",
                  "Each config against the same config built for `dense` only (the whole "
                  f"`{spec.top}` top).", "",
                  "| " + " | ".join(pk + ["formats", "LUT", "FF", "LUT over dense",
                                          "LUT+FF over dense"]) + " |",
                  "|" + "---|" * (len(pk) + 5)]
        for o in ovh:
            lines.append("| " + " | ".join([*(str(o[k]) for k in pk), o["formats"],
                                            str(o["LUT"]), str(o["FF"]),
                                            f"{o['lut_pct']:+.0f} %",
                                            f"{o['lutff_pct']:+.0f} %"]) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    files = ["results.sqlite", "results.csv", "results.md"]
    if rows and rows[0]["LUT"] is not None:
        _pareto_plot(rows, out / "pareto.png", spec.name)
        files.append("pareto.png")
    return files


def area_overhead(rows: list[dict]) -> list[dict]:
    """Area of each config over the same config with ``formats: [dense]`` (the other varied
    parameters equal): ``[{<params>, formats, LUT, FF, lut_pct, lutff_pct}]``; empty when
    the sweep does not vary ``formats`` or has no area."""
    configs = {}
    for r in rows:
        p = json.loads(r["params"])
        if "formats" not in p or r["LUT"] is None:
            return []
        configs[json.dumps(p, sort_keys=True)] = (p, r["LUT"], r["FF"])
    dense = {json.dumps({k: v for k, v in p.items() if k != "formats"}, sort_keys=True):
             (lut, ff) for p, lut, ff in configs.values() if list(p["formats"]) == ["dense"]}
    out = []
    for p, lut, ff in configs.values():
        rest = {k: v for k, v in p.items() if k != "formats"}
        base = dense.get(json.dumps(rest, sort_keys=True))
        if base is None or list(p["formats"]) == ["dense"]:
            continue
        out.append({**rest, "formats": "+".join(p["formats"]), "LUT": lut, "FF": ff,
                    "lut_pct": 100 * (lut / base[0] - 1),
                    "lutff_pct": 100 * ((lut + ff) / (base[0] + base[1]) - 1)})
    return out


def _pareto_plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # one point per (config, format): mean dense-equivalent GOP/s over its workloads
    agg: dict[tuple, list] = {}
    for r in rows:
        agg.setdefault((r["format"], r["config"], r["LUT"], r["DSP"]), []).append(r["gops"] or 0)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, res in zip(axes, ("LUT", "DSP")):
        for fmt in sorted({k[0] for k in agg}):
            pts = sorted((k[2] if res == "LUT" else k[3], sum(v) / len(v))
                         for k, v in agg.items() if k[0] == fmt)
            (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", alpha=0.6,
                              label=fmt)
            front, best = [], -1.0
            for x, y in pts:  # Pareto front: more throughput for more area only
                if y > best:
                    front.append((x, y))
                    best = y
            ax.step([p[0] for p in front], [p[1] for p in front], where="post",
                    color=line.get_color())
        ax.set_xlabel(f"{res}s (synthesized)")
        ax.set_ylabel("throughput, dense-equivalent GOP/s")
        ax.grid(True, alpha=0.3)
        ax.legend(title="format")
    fig.suptitle(f"sweep {title}: throughput against area (Pareto fronts)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
