"""Soak: the random tests of the regression over many seeds, in parallel.

``make test`` runs each random test with one seed per run (printed).  The soak runs the random
accelerator, tile, DMA, ring, CSR and descriptor-checker tests once per seed for ``--seeds``
seeds (default 50, seeds 1..50 unless ``--first`` says otherwise; ``SPARSEMAC_SEED`` fixes
every random choice of a test), ``--jobs`` seeds at a time, and writes each failure with the
seed that reproduces it::

    make soak                               # 50 seeds, 2 at a time
    python bench/soak.py --seeds 5 --jobs 2 --tests tests/sim/test_ring.py
    SPARSEMAC_SEED=17 pytest tests/sim/test_accelerator.py   # replay one failure

The report (``docs/reports/soak.md``, or ``--report``) lists seeds run, tests run, failures
and the totals the benches print (jobs, layers, resets, injected errors) where they print
``[soak] key=value`` lines.  Not part of ``make test``: one seed takes about 2.5 minutes (96
tests; the tile 4x8 and the three accelerator configs most of it, once their Verilog is in the
cache: the 4-tile accelerator's elaboration alone takes 40 s; 4.5 minutes for the first seeds,
which elaborate and build), two seeds run at a time on 2 cores, so 50 seeds take about 65
minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The random tests of the regression (pytest node ids); each reads SPARSEMAC_SEED.
DEFAULT_TESTS = (
    # the tiny builds (the default build, d4, runs once per `make test`: its bench takes
    # about 90 s, a 50-seed soak of it another 40 minutes on 2 cores)
    "tests/sim/test_accelerator.py::test_accelerator[t1]",
    "tests/sim/test_accelerator.py::test_accelerator[t2]",
    "tests/sim/test_accelerator.py::test_accelerator[t4]",
    "tests/sim/test_tile.py::test_tile_matmul",
    "tests/sim/test_dma.py",
    "tests/sim/test_ring.py::test_ring_traffic",
    "tests/sim/test_csr.py",
    "tests/hw/test_desc_checker.py",
    "tests/hw/test_image_checker.py",
    "tests/hw/test_sequencer.py",
    "tests/hw/test_dma_reader.py",
    "tests/hw/test_dma_writer.py",
    "tests/hw/test_activation_lut.py",
    # random network graphs with residual adds (the adds as matmuls over both inputs)
    "tests/sim/test_residual_rtl.py",
)

#: What a soak result depends on (`hw_commit`): the hardware, the benches and VIP, the soaked
#: tests and their cocotb modules.
DESIGN_PATHS = ("hw", "sim/tb", "sim/axi_vip.py", "sim/accel_driver.py", "sim/tile_driver.py",
                "sim/coverage_bins.py", "tests/sim/cocotb_*.py")

_STAT_LINE = re.compile(r"\[soak\]((?: \w+=\d+)+)")
_STAT = re.compile(r"(\w+)=(\d+)")


def run_seed(seed: int, tests: list[str]) -> dict:
    env = dict(os.environ, SPARSEMAC_SEED=str(seed),
               SPARSEMAC_BUILD=os.environ.get("SPARSEMAC_BUILD", str(ROOT / "build" / "sim")))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           "-m", "not slow", *tests], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    out = proc.stdout + proc.stderr
    failed = [ln.split(" ", 1)[1].split(" - ")[0] for ln in out.splitlines()
              if ln.startswith(("FAILED ", "ERROR "))]
    passed = re.search(r"(\d+) passed", out)
    stats = Counter()
    for line in _STAT_LINE.findall(out):            # "[soak] jobs=3 layers=9" lines
        for key, val in _STAT.findall(line):
            stats[key] += int(val)
    return dict(seed=seed, ok=proc.returncode == 0, failed=failed, seconds=time.monotonic() - t0,
                passed=int(passed.group(1)) if passed else 0, stats=stats,
                tail="\n".join(out.splitlines()[-20:]) if proc.returncode else "")


def write_report(rows: list[dict], tests: list[str], path: Path, wall: float,
                 hw: str = "") -> None:
    stats = Counter()
    for r in rows:
        stats.update(r["stats"])
    bad = [r for r in rows if not r["ok"]]
    lines = ["# Soak", "",
             f"`python bench/soak.py --seeds {len(rows)}` (`make soak`): the random tests below,",
             "once per seed (`SPARSEMAC_SEED`); a failure is replayed with "
             "`SPARSEMAC_SEED=<seed> pytest <test>`.", "",
             f"- seeds: {len(rows)} ({min(r['seed'] for r in rows)}.."
             f"{max(r['seed'] for r in rows)}), failed seeds: **{len(bad)}**",
             f"- design: sha256 of {', '.join(DESIGN_PATHS)} and the tests: `{hw[:12]}`",
             f"- test runs: {sum(r['passed'] for r in rows) + sum(len(r['failed']) for r in rows)}"
             f", wall time {wall / 60:.1f} min",
             *(f"- {k}: {v}" for k, v in sorted(stats.items())),
             "", "Tests:", "", *(f"- `{t}`" for t in tests), "", "## Failures", ""]
    lines += [f"- seed {r['seed']}: {', '.join(r['failed']) or 'error'}" for r in bad] or ["None."]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seeds", type=int, default=50, help="how many seeds")
    p.add_argument("--first", type=int, default=1, help="first seed")
    p.add_argument("--jobs", type=int, default=2, help="seeds run at the same time")
    p.add_argument("--tests", nargs="+", default=list(DEFAULT_TESTS), help="pytest node ids")
    p.add_argument("--report", type=Path, default=ROOT / "docs" / "reports" / "soak.md",
                   help="markdown report (rewritten after every seed; the seeds' results are "
                   "kept next to it in <report>.json)")
    p.add_argument("--resume", action="store_true",
                   help="keep the seeds already in <report>.json (same commit of hw/) and run "
                   "only the missing ones")
    a = p.parse_args(argv)
    if a.seeds < 1 or a.jobs < 1:
        p.error(f"--seeds and --jobs must be >= 1, not {a.seeds} and {a.jobs}")
    seeds = range(a.first, a.first + a.seeds)
    store = a.report.with_suffix(".json")
    hw = hw_commit(a.tests)
    rows, t0, spent = [], time.monotonic(), 0.0
    if a.resume and store.is_file():
        old = json.loads(store.read_text())
        if old.get("hw_commit") == hw and old.get("tests") == a.tests:
            rows = [dict(r, stats=Counter(r["stats"])) for r in old["rows"]
                    if r["seed"] in seeds]
            spent = float(old.get("seconds", 0.0))
            print(f"[soak] resuming: {len(rows)} seeds already run on design {hw[:12]}")
        else:
            print(f"[soak] {store} is of another hw/ commit or test list: starting again")
    done = {r["seed"] for r in rows}
    todo = [s for s in seeds if s not in done]

    def save():
        rows.sort(key=lambda r: r["seed"])
        wall = spent + time.monotonic() - t0
        write_report(rows, a.tests, a.report, wall, hw)
        store.write_text(json.dumps({"hw_commit": hw, "tests": a.tests, "seconds": wall,
                                     "rows": rows}, indent=1))

    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        futs = {pool.submit(run_seed, s, a.tests): s for s in todo}
        for fut in as_completed(futs):
            r = fut.result()
            rows.append(r)
            print(f"[soak {len(rows)}/{a.seeds}] seed {r['seed']}: "
                  f"{'ok' if r['ok'] else 'FAILED ' + ', '.join(r['failed'])} "
                  f"({r['passed']} passed, {r['seconds']:.0f} s)", flush=True)
            if not r["ok"]:
                print(r["tail"], flush=True)
            save()
    save()
    bad = [r["seed"] for r in rows if not r["ok"]]
    print(f"[soak] {len(rows) - len(bad)} / {a.seeds} seeds green; report {a.report}"
          + (f"; failing seeds: {bad}" if bad else ""))
    return 1 if bad else 0


def hw_commit(tests=DEFAULT_TESTS) -> str:
    """sha256 of the files a soak result depends on (`DESIGN_PATHS` and the soaked test files):
    seeds of a resumed soak must have run on the same design and tests."""
    import hashlib

    files = set()
    for pat in DESIGN_PATHS:
        p = ROOT / pat
        files.update(p.rglob("*.py") if p.is_dir() else ROOT.glob(pat))
    files.update(ROOT / t.split("::")[0] for t in tests)
    h = hashlib.sha256()
    for f in sorted(f for f in files if f.is_file()):
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


if __name__ == "__main__":
    sys.exit(main())
