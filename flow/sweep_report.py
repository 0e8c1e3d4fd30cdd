"""Sweep reports: the clock of every point, its throughput, ``results.csv`` / ``.md`` / plot.

**The clock** a point's throughput is quoted at (`choose_clock`, column ``clock_source``) is
one that point reaches, or a labelled estimate; never the config's ``target_mhz``:

``placed``
    the point's own top, the whole ``accelerator``, placed and routed by nextpnr in this sweep
    (``synth: {fmax: true}``; ECP5 out of context: the core without its I/O; iCE40 inside the
    I/O harness).
``ooc-estimate``
    a block top (``pe``, ``mac_array``, ``tile`` ...) placed the same way, out of the
    accelerator's context: one block's Fmax standing in for the whole chip.  The whole
    accelerator (control path, ring, routing between blocks) closes lower: an upper bound.
``estimate``
    the spec's ``clock: {estimate_mhz: MHZ, note: TEXT}`` for a point that was not placed;
    the note (column ``clock_note``) says where the number comes from.
``none``
    no clock: the point was not placed (and the spec gives no estimate), ``clock: none``, or
    it does not fit the device.  Time, layers/s and GOP/s are empty ("-"); cycles, MACs per
    cycle and the speedups over dense do not depend on the clock and remain.

Throughput is dense-equivalent: ``gops = 2 * dense_macs / (cycles / clock)``; the plot's
effective GMAC/s is ``gops / 2`` (:mod:`flow.sweep_plot`).

``python -m sparsemac.flow.sweep_report SPEC CSV -o DIR [--stem NAME] [--cycles SOURCE]``
re-renders a finished sweep from its CSV (`rerender_rows`) without synthesizing again: area
and Fmax are kept, the cycles recomputed with the spec's cycle source at this checkout and the
clock chosen again by the rules above.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from .sweep_plot import BOARD_BUILDS

__all__ = ["COLUMNS", "CLOCK_SOURCES", "CYCLE_TEXT", "choose_clock", "apply_clock",
           "spec_clock", "write_reports", "area_overhead", "read_csv", "find_workload",
           "rerender_rows", "main", "config_dict", "varying_params"]


def config_dict(cfg) -> dict:
    """A config's parameters without its name (what identifies a sweep point)."""
    d = cfg.to_dict()
    d.pop("name", None)
    return d


def varying_params(spec) -> list[str]:
    """The config parameters that differ between the spec's points (the table's columns)."""
    dicts = [config_dict(c) for c in spec.configs]
    return [k for k in dicts[0] if len({json.dumps(d[k]) for d in dicts}) > 1]


COLUMNS = ["key", "run_id", "computed_at", "config", "params", "top", "target", "device",
           "area_copies", "LUT", "FF", "DSP", "BRAM", "fits", "fmax_mhz", "clock_mhz",
           "clock_source", "clock_note", "workload", "op", "format", "sparsity", "nm",
           "act_sparsity", "cycles", "bound", "dense_macs", "effectual_macs", "time_us",
           "layers_per_s", "gops", "cycle_source", "synth_cached", "rtl_cycles",
           "rtl_model_cycles", "rtl_model_error_pct", "rtl_exact", "rtl_note"]

#: what each ``clock_source`` means (the report's legend; module docstring)
CLOCK_SOURCES = {
    "placed": "the point's own whole-accelerator top placed and routed in this sweep",
    "ooc-estimate": "a block top placed alone, out of the accelerator's context: one block's "
                    "Fmax, an upper bound for the whole chip",
    "estimate": "the spec's clock estimate, for points that were not placed",
    "none": "no clock the point is known to reach: no throughput",
}

#: what each cycle source counts (the report says which one the points used)
CYCLE_TEXT = {
    "network": "the whole accelerator running the layer, start to interrupt: descriptor fetch "
               "and checks, tables, activation and weight load, every tile's compute, "
               "write-back (`golden/net_cycles.py`, within 5 % of the RTL per descriptor, "
               "docs/reports/network_model.md)",
    "tile_model": "the slowest tile's weight load + compute only (`golden/tile_model.py`): not "
                  "the whole layer (no descriptor, tables or write-back)",
    "roofline": "`golden/perf.py` compute and memory limits: a lower bound, not a run",
}

_WHOLE_TOPS = ("accelerator",)


def choose_clock(row: dict, mode: str = "auto", estimate_mhz: float | None = None,
                 note: str | None = None) -> tuple[float | None, str, str]:
    """``(MHz or None, clock_source, clock_note)`` of one point (module docstring).

    ``row`` has the point's ``top``, ``target``, ``device``, ``fits`` and ``fmax_mhz``; ``mode``
    is the spec's ``clock`` (``auto``, ``placed``, ``none`` or ``estimate`` with
    ``estimate_mhz`` and ``note``)."""
    if mode == "none":
        return None, "none", "clock: none in the spec"
    if row.get("fits") is not None and not row["fits"]:
        return None, "none", f"does not fit {row['target']} {row['device']}: not placed"
    fmax = row.get("fmax_mhz")
    if fmax:
        where = ("in the I/O harness" if row["target"] == "ice40" else "out of context")
        tool = f"nextpnr {row['target']} {row['device']}, {where}"
        if row["top"] in _WHOLE_TOPS:
            return float(fmax), "placed", tool
        return float(fmax), "ooc-estimate", f"`{row['top']}` placed alone ({tool})"
    if mode == "estimate" and estimate_mhz:
        return float(estimate_mhz), "estimate", note or ""
    return None, "none", ("no placed Fmax (synth fmax: false, or placement gave none) and no "
                          "clock estimate in the spec")


def apply_clock(rows: list[dict], mode: str = "auto", estimate_mhz: float | None = None,
                note: str | None = None) -> list[dict]:
    """Set ``clock_mhz``, ``clock_source``, ``clock_note`` and the throughput columns
    (``time_us``, ``layers_per_s``, ``gops``) of every row from its cycles; returns ``rows``."""
    for r in rows:
        mhz, src, why = choose_clock(r, mode, estimate_mhz, note)
        t = r["cycles"] / (mhz * 1e6) if mhz and r.get("cycles") else None
        r.update(clock_mhz=mhz, clock_source=src, clock_note=why,
                 time_us=t * 1e6 if t else None, layers_per_s=1 / t if t else None,
                 gops=2 * r["dense_macs"] / t / 1e9 if t and r.get("dense_macs") else None)
    return rows


def spec_clock(spec) -> tuple[str, float | None, str | None]:
    """The spec's ``(mode, estimate MHz, note)`` for `apply_clock`."""
    return spec.clock, spec.clock_mhz, spec.clock_note


def _names(stem: str | None) -> tuple[str, str, str]:
    if stem is None:
        return "results.csv", "results.md", "pareto.png"
    return f"{stem}.csv", f"{stem}.md", f"{stem}_pareto.png"


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _header(rows: list[dict], spec, plot: str | None) -> list[str]:
    src = rows[0]["cycle_source"] if rows else spec.cycles
    lines = [f"Spec `{spec.path}`; top `{spec.top}` (area x tiles for per-tile tops), "
             f"synthesis {spec.target or 'none'} {spec.device or ''}, Fmax "
             f"{'placed per point' if spec.fmax else 'not placed'}, cycles from `{src}`: "
             f"{CYCLE_TEXT.get(src, 'see flow/cycles.py')}.", ""]
    if plot:
        lines += [f"Pareto plot: [{plot}]({plot}).", ""]
    tmhz = {c.target_mhz for c in spec.configs}
    lines += ["**Clock** (column `clock source`): throughput (GOP/s, dense-equivalent "
              "`2 M K N / time`) is quoted only at a clock the point reaches or at a labelled "
              f"estimate, never at the config's target ({', '.join(map(str, sorted(tmhz)))} "
              "MHz); without one it is \"-\" (MAC/cycle and the speedups do not depend on the "
              "clock).", ""]
    seen: dict[tuple, list] = {}
    for r in rows:
        seen.setdefault((r["clock_source"], r["clock_note"]), []).append(r["clock_mhz"])
    for (src_, note), mhz in seen.items():
        known = sorted({m for m in mhz if m is not None})
        at = f" at {', '.join(f'{m:g}' for m in known)} MHz" if known else ""
        lines.append(f"- `{src_}` ({len(mhz)} points{at}): {CLOCK_SOURCES.get(src_, '')}"
                     + (f"; {note}" if note else "") + ".")
    return lines + [""]


def write_reports(rows: list[dict], out: Path, spec, varying: list[str], *,
                  stem: str | None = None, intro: str | None = None,
                  board_builds: Path | None = BOARD_BUILDS) -> list[str]:
    """``results.csv``, ``results.md`` and ``pareto.png`` (or ``<stem>.csv``, ``<stem>.md``,
    ``<stem>_pareto.png``) from the finished rows; ``intro`` replaces the markdown's title;
    ``board_builds``: the placed builds drawn on the plot (:mod:`flow.sweep_plot`)."""
    from .sweep_plot import pareto_plot

    out = Path(out)
    f_csv, f_md, f_png = _names(stem)
    with open(out / f_csv, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    plot = bool(rows) and rows[0]["LUT"] is not None
    dense = {(r["config"], r["workload"]): r["cycles"] for r in rows if r["format"] == "dense"}
    head = ["config", *varying, "workload", "format", "sparsity", "LUT", "FF", "DSP", "BRAM",
            "cycles", "bound", "MAC/cycle", "clock MHz", "clock source", "GOP/s",
            "speedup vs dense"]
    lines = [intro.rstrip() if intro else f"# Sweep {spec.name}", "",
             *_header(rows, spec, f_png if plot else None),
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        p = json.loads(r["params"])
        sp = r["nm"] or f"{r['sparsity']:g}"
        base = dense.get((r["config"], r["workload"]))
        mpc = r["dense_macs"] / r["cycles"] if r["cycles"] and r["dense_macs"] else None
        vals = [r["config"], *(p.get(k) for k in varying), r["workload"], r["format"], sp,
                r["LUT"], r["FF"], r["DSP"], r["BRAM"], r["cycles"], r["bound"],
                _fmt(mpc, ".1f"), _fmt(r["clock_mhz"], ".2f"), r["clock_source"],
                _fmt(r["gops"], ".2f"),
                f"{base / r['cycles']:.2f}" if base and r["cycles"] else "-"]
        lines.append("| " + " | ".join("-" if v is None else str(v) for v in vals) + " |")
    lines += _rtl_table(rows, varying) + _overhead_table(rows, spec)
    (out / f_md).write_text("\n".join(lines) + "\n")
    files = [f_csv, f_md]
    if plot:
        pareto_plot(rows, out / f_png, spec.name, target=rows[0]["target"],
                    device=rows[0]["device"], board_builds=board_builds)
        files.append(f_png)
    return files


def _rtl_table(rows: list[dict], varying: list[str]) -> list[str]:
    sampled = [r for r in rows if r.get("rtl_cycles") or r.get("rtl_note")]
    if not sampled:
        return []
    lines = ["", "## Cycle model against the RTL (sample)", "",
             "The slowest tile's share of the layer run on the compute tile's RTL "
             "(Verilator), load + compute cycles, against `golden.tile_model` (a check of the "
             "tile model; the points' own cycles are from "
             f"`{sampled[0]['cycle_source']}`).", "",
             "| config | " + " | ".join(varying) + " | workload | format | sparsity | "
             "tile model cycles | RTL cycles | model error | RTL == golden |",
             "|" + "---|" * (len(varying) + 8)]
    for r in sampled:
        p = json.loads(r["params"])
        err = r.get("rtl_model_error_pct")
        model = r.get("rtl_model_cycles")
        if model is None and r["cycle_source"] == "tile_model":
            model = r["cycles"]             # a row of an older store: the same number
        lines.append("| " + " | ".join(str(v) for v in [
            r["config"], *(p.get(k) for k in varying), r["workload"], r["format"],
            r["nm"] or f"{r['sparsity']:g}", "-" if model is None else model,
            r["rtl_cycles"] or "-",
            f"{err:+.2f} %" if err is not None else (r["rtl_note"] or "-"),
            {1: "yes", 0: "**no**"}.get(r.get("rtl_exact"), "-")]) + " |")
    return lines


def _overhead_table(rows: list[dict], spec) -> list[str]:
    ovh = area_overhead(rows)
    if not ovh:
        return []
    pk = [k for k in ovh[0] if k not in ("formats", "LUT", "FF", "lut_pct", "lutff_pct")]
    lines = ["", "## Sparse against dense area, same MAC count", "",
             "Each config against the same config built for `dense` only (the whole "
             f"`{spec.top}` top).", "",
             "| " + " | ".join(pk + ["formats", "LUT", "FF", "LUT over dense",
                                     "LUT+FF over dense"]) + " |",
             "|" + "---|" * (len(pk) + 5)]
    for o in ovh:
        lines.append("| " + " | ".join([*(str(o[k]) for k in pk), o["formats"], str(o["LUT"]),
                                        str(o["FF"]), f"{o['lut_pct']:+.0f} %",
                                        f"{o['lutff_pct']:+.0f} %"]) + " |")
    return lines


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


# -- re-rendering a finished sweep from its CSV -------------------------------------------------

_INTS = {"area_copies", "LUT", "FF", "DSP", "BRAM", "fits", "cycles", "dense_macs",
         "effectual_macs", "synth_cached", "rtl_cycles", "rtl_model_cycles", "rtl_exact"}
_FLOATS = {"fmax_mhz", "clock_mhz", "sparsity", "act_sparsity", "time_us", "layers_per_s",
           "gops", "rtl_model_error_pct"}


def _parse(col: str, text: str):
    if col in _INTS | _FLOATS:
        if text in ("", "None"):
            return None
        if text in ("True", "False"):
            return int(text == "True")
        return int(float(text)) if col in _INTS else float(text)
    return text


def read_csv(path: str | Path) -> list[dict]:
    """The rows of a sweep's ``results.csv`` with their types (empty cells -> None); columns
    a CSV of an older version lacks are None."""
    with open(path, newline="") as fh:
        return [{c: _parse(c, r.get(c) or "") for c in COLUMNS} for r in csv.DictReader(fh)]


def find_workload(spec, r: dict):
    """The workload of ``spec`` a report row was computed from (name, format, sparsity, N:M,
    activation sparsity); ``ValueError`` unless exactly one matches."""
    hits = [w for w in spec.workloads
            if w.name == r["workload"] and w.format == r["format"]
            and abs(w.sparsity - r["sparsity"]) < 1e-6 and (w.act_sparsity == r["act_sparsity"])
            and (f"{w.nm[0]}:{w.nm[1]}" if w.nm else "") == (r["nm"] or "")]
    if len(hits) != 1:
        raise ValueError(f"row {r['config']} {r['workload']}/{r['format']}: "
                         f"{len(hits)} workloads of {spec.path} match it, not 1")
    return hits[0]


def rerender_rows(spec, csv_path: str | Path, cycles: str | None = None) -> list[dict]:
    """The rows of ``csv_path`` (a finished sweep of ``spec``) with the cycles recomputed by
    ``cycles`` (default: the spec's source, resolved for its top) and the clock chosen again
    (`apply_clock`); area, Fmax and the RTL sample are kept.  A row whose config or workload is
    not (or no longer) in the spec raises ``ValueError``."""
    from .cycles import CYCLE_SOURCES, resolve_source

    source = resolve_source(cycles or spec.cycles, spec.top)
    cfgs = {c.name: c for c in spec.configs}
    rows = read_csv(csv_path)
    for r in rows:
        cfg = cfgs.get(r["config"])
        if cfg is None:
            raise ValueError(f"{csv_path}: config {r['config']!r} is not a point of {spec.path}")
        have = json.loads(json.dumps(config_dict(cfg)))
        for k, v in json.loads(r["params"]).items():
            if have.get(k) != v:
                raise ValueError(f"{csv_path}: {r['config']} has {k} = {v!r} in the CSV but "
                                 f"{have.get(k)!r} in {spec.path}")
        if r["rtl_model_cycles"] is None and r["rtl_cycles"] and \
                r["rtl_model_error_pct"] is not None:   # an older CSV: the model's cycles
            r["rtl_model_cycles"] = round(r["rtl_cycles"] * (1 + r["rtl_model_error_pct"] / 100))
        c = CYCLE_SOURCES[source](find_workload(spec, r), cfg, spec.seed)
        r.update(cycles=c["cycles"], bound=c.get("bound"), dense_macs=c.get("dense_macs"),
                 effectual_macs=c.get("effectual_macs"), cycle_source=c.get("source", source))
    return apply_clock(rows, *spec_clock(spec))


def main(argv: list[str] | None = None) -> int:
    from .cycles import CYCLE_SOURCES
    from .spec import load_spec

    ap = argparse.ArgumentParser(prog="python -m sparsemac.flow.sweep_report",
                                 description="re-render a finished sweep's report from its CSV "
                                             "(cycles recomputed, clock chosen again)")
    ap.add_argument("spec", help="the sweep spec the CSV was computed from")
    ap.add_argument("csv", help="the sweep's results.csv")
    ap.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder")
    ap.add_argument("--stem", help="file names <stem>.csv, <stem>.md, <stem>_pareto.png "
                                   "(default results.csv, results.md, pareto.png)")
    ap.add_argument("--cycles", choices=["auto", *CYCLE_SOURCES],
                    help="cycle source (default: the spec's)")
    args = ap.parse_args(argv)
    spec = load_spec(args.spec)
    rows = rerender_rows(spec, args.csv, args.cycles)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = write_reports(rows, out, spec, varying_params(spec), stem=args.stem)
    print(", ".join(str(out / f) for f in files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
