"""Build an Amaranth component into a Verilator model once, and run cocotb tests on it.

Amaranth parameters are fixed when the Verilog is generated, so each parameter set is its own
build.  The build directory is keyed by a hash of the Verilog text, so a build is reused by every
test (and every pytest-xdist worker, guarded by a file lock) that needs the same hardware; ccache
makes a rebuild after ``make clean`` cheap too.

Typical use from pytest::

    from sparsemac.sim.runner import run_cocotb
    run_cocotb(MyBlock(width=8), toplevel="my_block", test_module="mypkg.cocotb_my_block",
               env={"SPARSEMAC_ROWS": "2"})

A failing cocotb test raises :class:`CocotbFailure` whose message carries the failing tests
(from the results XML) and the log file path.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..paths import cache_dir
from .toolchain import apply_tool_env

__all__ = ["run_cocotb", "build_verilator", "CocotbFailure", "BUILD_ROOT", "to_verilog"]

#: Verilator builds: ``$SPARSEMAC_BUILD`` (the regression and the Makefile use the checkout's
#: ``build/sim``), else the user cache (``sparsemac.paths.cache_dir("sim")``).
BUILD_ROOT = Path(os.environ.get("SPARSEMAC_BUILD") or cache_dir("sim"))


class CocotbFailure(AssertionError):
    """One or more cocotb tests failed; the message lists them."""


def to_verilog(component, name: str) -> str:
    """Deterministic Verilog text of an Amaranth component (top module ``name``)."""
    from sparsemac.hw.verilog import generate_verilog

    return generate_verilog(component, name=name)


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_verilator(verilog: str, toplevel: str, *, extra_args: Sequence[str] = (),
                    waves: bool = False) -> Path:
    """Build (or reuse) the Verilator model of ``verilog``; returns its build directory."""
    from cocotb_tools.runner import get_runner

    key = hashlib.sha256((verilog + repr(tuple(extra_args)) + str(waves)).encode()).hexdigest()
    build_dir = BUILD_ROOT / f"{toplevel}-{key[:16]}"
    with _locked(BUILD_ROOT / f".{toplevel}-{key[:16]}.lock"):
        done = build_dir / ".built"
        if done.is_file():
            return build_dir
        build_dir.mkdir(parents=True, exist_ok=True)
        src = build_dir / f"{toplevel}.v"
        src.write_text(verilog)
        apply_tool_env()
        runner = get_runner("verilator")
        runner.build(
            sources=[src],
            hdl_toplevel=toplevel,
            build_dir=build_dir,
            build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-initial", "0",
                        "--x-assign", "0", *extra_args],
            timescale=("1ns", "1ps"),
            waves=waves,
            log_file=build_dir / "build.log",
        )
        done.write_text("ok\n")
    return build_dir


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
               testcase: str | Sequence[str] | None = None, env: Mapping[str, str] | None = None,
               seed: int | None = None, verilog: str | None = None, waves: bool = False,
               tag: str = "") -> Path:
    """Elaborate ``component`` (or use ``verilog``), build it and run ``test_module`` on it.

    ``seed`` (default: ``SPARSEMAC_SEED`` or random) is printed and passed to cocotb as
    ``COCOTB_RANDOM_SEED``, so a failure is reproducible.  Raises :class:`CocotbFailure` when any
    test fails.  Returns the directory holding ``results.xml`` and the log.
    """
    from cocotb_tools.runner import get_runner

    if verilog is None:
        verilog = to_verilog(component, toplevel)
    build_dir = build_verilator(verilog, toplevel, waves=waves)
    if seed is None:
        seed = int(os.environ.get("SPARSEMAC_SEED", random.randrange(1 << 31)))
    print(f"[sparsemac] cocotb {test_module} on {toplevel}: seed={seed} "
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
    extra.update(env or {})
    runner = get_runner("verilator")
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
